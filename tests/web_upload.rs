//! A 1 GiB upload to the demo's `PUT /upload` over a real socket: the body is streamed
//! through the handler (hashed piece by piece), so the process's memory grows by far less
//! than the body — under 32 MiB — on both drivers.

use eddy::core::ListenOptions;
use eddy::drivers::{spawn_threads, DriverConfig, DriverKind};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const SIZE: u64 = 1 << 30;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_one_gib_upload_streams_through_in_bounded_memory_on_both_drivers() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipping: no /proc to read the memory from");
        return;
    }
    let piece: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut expected = Sha256::new();
    for _ in 0..SIZE / piece.len() as u64 {
        expected.update(&piece);
    }
    let expected: String = expected
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let server = spawn_threads(
            &DriverConfig::with_kind(kind),
            1,
            ([127, 0, 0, 1], 0).into(),
            |io, addr| {
                let options = ListenOptions {
                    reuse_port: true,
                    ..ListenOptions::default()
                };
                eddy::web_demo::app(b"upload test").listen(io, addr, options);
            },
        )
        .unwrap();
        let before = rss_kib();
        let mut conn = TcpStream::connect(server.local_addr()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        write!(
            conn,
            "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n\r\n"
        )
        .unwrap();
        let mut peak = before;
        for i in 0..SIZE / piece.len() as u64 {
            conn.write_all(&piece).unwrap();
            if i % 1024 == 0 {
                peak = peak.max(rss_kib());
            }
        }
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&response).contains("\"}") {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the answer");
            response.extend_from_slice(&buf[..n]);
        }
        peak = peak.max(rss_kib());
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200"), "{kind:?}: {text}");
        assert!(text.contains(&format!("\"bytes\": {SIZE}")), "{text}");
        assert!(
            text.contains(&expected),
            "{kind:?}: the hash of what was sent"
        );
        let grew = peak.saturating_sub(before);
        assert!(
            grew < 32 * 1024,
            "{kind:?}: memory grew by {grew} KiB during a 1 GiB upload"
        );
        eprintln!("{kind:?}: RSS grew by {grew} KiB during the 1 GiB upload");
        server.shutdown(Duration::from_secs(1));
        server.join().unwrap();
    }
}

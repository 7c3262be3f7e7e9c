//! A 1 GiB file (sparse, so the disk holds nothing) downloaded whole from `eddy serve`'s
//! application on mio and on poll: the bytes arrive complete and the process's resident
//! memory grows by less than 16 MiB, because the body is a file range sent with sendfile(2)
//! in bounded pieces, never a buffer. Its own test binary: no other test shares the RSS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use eddy::drivers::{DriverConfig, DriverKind, OsFiles};
use eddy::serve::{serve_files, spawn_file_server};

const SIZE: u64 = 1 << 30;
const RSS_BUDGET: u64 = 16 << 20;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn a_one_gib_download_keeps_memory_flat_on_mio_and_poll() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc/self/status to read resident memory from");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    file.set_len(SIZE).unwrap(); // sparse: reads as zeros
    drop(file);
    let files = serve_files(Arc::new(OsFiles::new(dir.path()).unwrap()), false);
    for kind in [DriverKind::Mio, DriverKind::Poll] {
        let files = files.clone();
        let server = spawn_file_server(&DriverConfig::with_kind(kind), files).unwrap();
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let zeros = vec![0u8; buf.len()];
        let before = rss_bytes();
        let mut peak = before;
        let (mut head, mut body) = (Vec::new(), 0u64);
        let mut reads = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            let mut data = &buf[..n];
            // The head (short) byte by byte until its blank line; then the body in bulk.
            let mut i = 0;
            while i < data.len() && !head.ends_with(b"\r\n\r\n") {
                head.push(data[i]);
                i += 1;
            }
            data = &data[i..];
            assert!(data == &zeros[..data.len()], "{kind:?}: a non-zero byte");
            body += data.len() as u64;
            reads += 1;
            if reads % 256 == 0 {
                peak = peak.max(rss_bytes());
            }
        }
        peak = peak.max(rss_bytes());
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains(&format!("content-length: {SIZE}")), "{head}");
        assert_eq!(body, SIZE, "{kind:?}: the whole file");
        let growth = peak.saturating_sub(before);
        println!(
            "{kind:?}: 1 GiB sent; resident memory grew {} KiB",
            growth / 1024
        );
        assert!(growth < RSS_BUDGET, "{kind:?}: RSS grew {growth} bytes");
        drop(server);
    }
}

//! Opens N WebSocket connections to a server's `/ws` (the opening handshake only), then
//! holds them idle for a while so the caller can read the server's memory. Loopback only;
//! bounded.
//!
//! Usage: ws_idle PORT N HOLD_SECS
//! Prints `ready` once every connection has its 101, `done` when it lets go.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|v| v.parse().ok()).expect("PORT");
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).expect("N");
    let hold: u64 = args.get(3).and_then(|v| v.parse().ok()).expect("HOLD_SECS");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    let mut conns = Vec::with_capacity(n);
    let mut buf = [0u8; 1024];
    for i in 0..n {
        let mut s = match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("connection {i}: {e}");
                std::process::exit(1);
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let k = s.read(&mut buf).expect("handshake response");
            assert!(k > 0, "server closed connection {i}");
            got.extend_from_slice(&buf[..k]);
        }
        assert!(got.starts_with(b"HTTP/1.1 101"), "connection {i}: not upgraded");
        conns.push(s);
    }
    println!("ready");
    std::thread::sleep(Duration::from_secs(hold));
    drop(conns);
    println!("done");
}

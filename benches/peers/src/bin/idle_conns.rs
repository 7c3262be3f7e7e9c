//! Opens N idle connections to a server so the caller can read the server's memory: HTTP
//! keep-alive connections after one request each, or (`ws`) WebSocket sessions after the
//! opening handshake on `/ws`. Loopback only; bounded.
//!
//! Usage: idle_conns PORT N HOLD_SECS [http|ws]
//! Prints `ready` once every connection has its answer, `done` when it lets go.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|v| v.parse().ok()).expect("PORT");
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).expect("N");
    let hold: u64 = args.get(3).and_then(|v| v.parse().ok()).expect("HOLD_SECS");
    let ws = args.get(4).is_some_and(|m| m == "ws");
    let request = if ws {
        format!(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
    } else {
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_owned()
    };
    // The end of the answer: the 101's blank line, or the hello body.
    let answered = |got: &[u8]| {
        if ws {
            got.windows(4).any(|w| w == b"\r\n\r\n")
        } else {
            got.ends_with(b"Hello, World!")
        }
    };
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
        while !answered(&got) {
            let k = s.read(&mut buf).expect("response");
            assert!(k > 0, "server closed connection {i}");
            got.extend_from_slice(&buf[..k]);
        }
        assert!(
            !ws || got.starts_with(b"HTTP/1.1 101"),
            "connection {i}: not upgraded"
        );
        conns.push(s);
    }
    println!("ready");
    std::thread::sleep(Duration::from_secs(hold));
    drop(conns);
    println!("done");
}

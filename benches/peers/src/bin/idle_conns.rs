//! Opens N keep-alive HTTP connections to a server, makes one request on each, then holds
//! them idle for a while so the caller can read the server's memory. Loopback only; bounded.
//!
//! Usage: idle_conns PORT N HOLD_SECS
//! Prints `ready` once every connection has its response, `done` when it lets go.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|v| v.parse().ok()).expect("PORT");
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).expect("N");
    let hold: u64 = args.get(3).and_then(|v| v.parse().ok()).expect("HOLD_SECS");
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
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
        s.write_all(request).unwrap();
        // One small response; read until its body ("Hello, World!") has arrived.
        let mut got = Vec::new();
        while !got.ends_with(b"Hello, World!") {
            let k = s.read(&mut buf).expect("response");
            assert!(k > 0, "server closed connection {i}");
            got.extend_from_slice(&buf[..k]);
        }
        conns.push(s);
    }
    println!("ready");
    std::thread::sleep(Duration::from_secs(hold));
    drop(conns);
    println!("done");
}

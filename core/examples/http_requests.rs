//! Runs N hello-world requests through the whole server path (IoLoop, HttpServer glue,
//! ServerConn) with no syscalls, for instruction counts: run it under callgrind twice with
//! different N and divide the difference by the difference in requests.
//!
//! ```text
//! cargo build --release -p eddy-core --example http_requests
//! valgrind --tool=callgrind target/release/examples/http_requests 10000 16
//! ```
//! Arguments: requests (default 10000), pipeline depth per read (default 1).

use eddy_core::testing::DirectConn;

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";

fn main() {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let depth: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let (mut io, server, mut conn) = DirectConn::hello_server(b"Hello, World!");
    let input = REQUEST.repeat(depth);
    let mut written = 0;
    for _ in 0..requests / depth {
        written += conn.exchange(&mut io, &input);
    }
    println!(
        "{} requests, {written} bytes written",
        server.stats().requests
    );
}

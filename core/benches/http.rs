//! User-space cost of one HTTP request through the whole server path (IoLoop, HttpServer glue,
//! ServerConn), with no syscalls: what eddy adds on top of the kernel's work per request.
//!
//! Run with `cargo bench -p eddy-core --bench http`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eddy_core::testing::DirectConn;

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";

/// The hello-world server and its connection (the server handle itself is not needed).
fn hello() -> (eddy_core::IoLoop, DirectConn) {
    let (io, _server, conn) = DirectConn::hello_server(b"Hello, World!");
    (io, conn)
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_server");
    for batch in [1usize, 16] {
        g.throughput(Throughput::Elements(batch as u64));
        let input = REQUEST.repeat(batch);
        g.bench_function(format!("hello_keepalive_batch_{batch}"), |b| {
            let (mut io, mut conn) = hello();
            b.iter(|| conn.exchange(&mut io, &input));
        });
    }
    g.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);

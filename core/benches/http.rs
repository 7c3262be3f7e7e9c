//! User-space cost of one HTTP request through the whole server path (IoLoop, HttpServer glue,
//! ServerConn), with no syscalls: what eddy adds on top of the kernel's work per request.
//!
//! Run with `cargo bench -p eddy-core --bench http`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eddy_core::http::{HttpServer, Request, Responder};
use eddy_core::testing::DirectConn;
use eddy_core::{IoLoop, ListenOptions};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";

fn hello_server() -> (IoLoop, DirectConn) {
    let mut io = IoLoop::default();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let server = HttpServer::new(move |io: &mut IoLoop, _req: Request, resp: Responder| {
        let _ = resp.respond(
            io,
            StatusCode::OK,
            &headers,
            Bytes::from_static(b"Hello, World!"),
        );
    });
    let listener = server.listen(
        &mut io,
        ([127, 0, 0, 1], 80).into(),
        ListenOptions::default(),
    );
    io.handle_listening(listener, Ok(([127, 0, 0, 1], 80).into()));
    let conn = DirectConn::accept(&mut io, listener);
    (io, conn)
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_server");
    for batch in [1usize, 16] {
        g.throughput(Throughput::Elements(batch as u64));
        let input = REQUEST.repeat(batch);
        g.bench_function(format!("hello_keepalive_batch_{batch}"), |b| {
            let (mut io, mut conn) = hello_server();
            b.iter(|| conn.exchange(&mut io, &input));
        });
    }
    g.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);

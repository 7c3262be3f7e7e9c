//! User-space cost of one HTTP request through the whole server path (IoLoop, HttpServer glue,
//! ServerConn), with no syscalls: what eddy adds on top of the kernel's work per request.
//!
//! Run with `cargo bench -p eddy-core --bench http`.

use bytes::{BufMut, Bytes};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use eddy_core::http::{HttpServer, Request, Responder};
use eddy_core::{Instant, IoLoop, ListenOptions, StreamId};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";

fn hello_server() -> (IoLoop, StreamId) {
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
    while io.poll_io().is_some() {}
    io.handle_listening(listener, Ok(([127, 0, 0, 1], 80).into()));
    let id = io
        .handle_accepted(listener, ([127, 0, 0, 1], 9).into())
        .unwrap();
    (io, id)
}

/// Feeds `batch` pipelined requests in one read and writes out what the server answers.
fn cycle(io: &mut IoLoop, id: StreamId, now: &mut u64, batch: usize) {
    for _ in 0..batch {
        let mut buf = io.read_buf(id).expect("stream reads");
        buf.put_slice(REQUEST);
        io.handle_read(id, REQUEST.len());
    }
    for _ in 0..2 {
        *now += 1000;
        io.handle_timeout(Instant::from_nanos(*now));
        while io.poll_io().is_some() {}
        let n: usize = io.write_chunks(id).map(<[u8]>::len).sum();
        if n > 0 {
            io.handle_written(id, n);
        }
    }
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_server");
    for batch in [1usize, 16] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("hello_keepalive_batch_{batch}"), |b| {
            let (mut io, id) = hello_server();
            let mut now = 0;
            b.iter(|| cycle(&mut io, id, &mut now, batch));
        });
    }
    g.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);

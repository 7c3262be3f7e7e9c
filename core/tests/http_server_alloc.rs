//! Zero heap allocations per request on the hello-world keep-alive path after warm-up: the
//! whole server path — IoLoop, stream buffers, HttpServer glue, ServerConn — counted by a
//! counting global allocator, driven by a minimal allocation-free fake driver.

use bytes::{BufMut, Bytes};
use eddy_core::http::{HttpServer, Request, Responder};
use eddy_core::{Instant, IoAction, IoLoop, ListenOptions, StreamId};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";
const RESPONSE_BODY: &[u8] = b"Hello, World!";

/// One request/response cycle through the loop, as a driver would run it; returns bytes written.
fn cycle(io: &mut IoLoop, id: StreamId, now: &mut u64) -> usize {
    let mut buf = io.read_buf(id).expect("stream reads");
    buf.put_slice(REQUEST);
    io.handle_read(id, REQUEST.len());
    let mut written = 0;
    for _ in 0..4 {
        *now += 1000;
        io.handle_timeout(Instant::from_nanos(*now));
        while let Some(action) = io.poll_io() {
            assert!(matches!(action, IoAction::Interest { .. }), "{action:?}");
        }
        let n: usize = io.write_chunks(id).map(<[u8]>::len).sum();
        if n > 0 {
            io.handle_written(id, n);
            written += n;
        }
    }
    written
}

#[test]
fn hello_keep_alive_request_allocates_nothing_after_warm_up_through_the_whole_server() {
    let mut io = IoLoop::default();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let server = HttpServer::new(move |io: &mut IoLoop, _req: Request, resp: Responder| {
        let _ = resp.respond(
            io,
            StatusCode::OK,
            &headers,
            Bytes::from_static(RESPONSE_BODY),
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
    let mut now = 0u64;
    for _ in 0..200 {
        assert!(cycle(&mut io, id, &mut now) > RESPONSE_BODY.len());
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    const N: u64 = 1000;
    for _ in 0..N {
        cycle(&mut io, id, &mut now);
    }
    let per_request = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / N as f64;
    assert_eq!(server.stats().requests, 1200);
    assert!(
        per_request == 0.0,
        "{per_request} heap allocations per request on the hello path"
    );
}

//! Zero heap allocations per request on the hello-world keep-alive path after warm-up: the
//! whole server path — IoLoop, stream buffers, HttpServer glue, ServerConn — counted by a
//! counting global allocator, driven by `DirectConn`, which allocates nothing itself.

use eddy_core::testing::DirectConn;
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

#[test]
fn hello_keep_alive_request_allocates_nothing_after_warm_up_through_the_whole_server() {
    let (mut io, server, mut conn) = DirectConn::hello_server(RESPONSE_BODY);
    for _ in 0..200 {
        assert!(conn.exchange(&mut io, REQUEST) > RESPONSE_BODY.len());
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    const N: u64 = 1000;
    for _ in 0..N {
        conn.exchange(&mut io, REQUEST);
    }
    let per_request = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / N as f64;
    assert_eq!(server.stats().requests, 1200);
    assert!(
        per_request == 0.0,
        "{per_request} heap allocations per request on the hello path"
    );
}

//! The hello-world keep-alive path allocates nothing per request after warm-up, when the
//! glue recycles header maps and reuses its read and write buffers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use eddy_core::http::{AfterResponse, HttpConfig, HttpDate, ServerConn, ServerEvent};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};

struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; only counts calls.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn hello_world_keep_alive_cycle_allocates_nothing_after_warm_up() {
    let mut conn = ServerConn::new(Arc::new(HttpConfig::default()));
    let mut buf = BytesMut::with_capacity(8192);
    let mut out = BytesMut::with_capacity(8192);
    let date = HttpDate::from_unix_secs(1_700_000_000);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("13"));
    let request = b"GET /hello HTTP/1.1\r\nHost: localhost:8888\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n";
    let mut counted = 0;
    for round in 0..500 {
        if round == 50 {
            COUNTING.with(|c| c.set(true));
        }
        buf.extend_from_slice(request);
        let ServerEvent::Head(head) = conn.poll_event(&mut buf) else {
            panic!("no head")
        };
        assert_eq!(head.path(), "/hello");
        conn.recycle_head(head);
        assert!(matches!(conn.poll_event(&mut buf), ServerEvent::End(None)));
        conn.send_response(StatusCode::OK, &headers, Some(&date), &mut out)
            .unwrap();
        conn.send_data(Bytes::from_static(b"Hello, world!"), &mut out)
            .unwrap();
        assert_eq!(conn.send_end(&mut out), Ok(AfterResponse::KeepAlive));
        assert!(matches!(conn.poll_event(&mut buf), ServerEvent::NeedData));
        out.clear();
        if round >= 50 {
            counted += 1;
        }
    }
    COUNTING.with(|c| c.set(false));
    let allocs = ALLOCS.with(Cell::get);
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in {counted} keep-alive requests"
    );
}

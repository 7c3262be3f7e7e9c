//! What an idle keep-alive connection costs in heap bytes, component by component
//! (`eddy_core::testing::idle_connection_parts`): the allocations of its own must be exactly
//! what a counting allocator sees idle connections (one request each) hold, and the total
//! with the table slots must stay within the budget.

use eddy_core::testing::{idle_connection_parts, DirectConn};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts the bytes asked for.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";

/// Heap bytes (requested sizes) the server side of one idle keep-alive connection holds;
/// the allocator's headers and rounding come on top (the bench script's RSS figure).
const IDLE_CONNECTION_BUDGET: usize = 1024;

fn open_idle(io: &mut eddy_core::IoLoop, conns: &mut Vec<DirectConn>, n: usize) {
    for _ in 0..n {
        let mut c = DirectConn::accept_another(io);
        assert!(c.exchange(io, REQUEST) > 0);
        conns.push(c);
    }
}

#[test]
fn idle_keep_alive_connection_heap_bytes_are_the_listed_parts_and_within_budget() {
    let (mut io, _server, mut first) = DirectConn::hello_server(b"Hello, World!");
    first.exchange(&mut io, REQUEST);
    let mut conns: Vec<DirectConn> = Vec::with_capacity(1024);
    // 600 connections grow the loop's tables (streams, timers) to their 1,024-slot size;
    // 400 more then fill slots already allocated, so what grows is their own allocations.
    open_idle(&mut io, &mut conns, 600);
    let before = LIVE.load(Ordering::Relaxed);
    const N: usize = 400;
    open_idle(&mut io, &mut conns, N);
    let own_measured = (LIVE.load(Ordering::Relaxed) - before) as f64 / N as f64;

    let parts = idle_connection_parts();
    for p in &parts {
        let kind = if p.own_allocation { "own" } else { "slot" };
        println!("{:>5}  {kind:<4}  {}", p.bytes, p.what);
    }
    let own: usize = parts
        .iter()
        .filter(|p| p.own_allocation)
        .map(|p| p.bytes)
        .sum();
    let total: usize = parts.iter().map(|p| p.bytes).sum();
    println!("{total:>5}  total ({own} in own allocations; measured {own_measured:.1})");
    assert_eq!(
        own_measured, own as f64,
        "idle connections hold {own_measured:.1} bytes of their own, the parts list {own}"
    );
    assert!(
        total <= IDLE_CONNECTION_BUDGET,
        "{total} bytes per idle connection"
    );
}

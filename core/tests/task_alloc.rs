//! Memory of tasks, counted by a global allocator: 100,000 spawned tasks finish and the
//! loop's memory returns to where it started; a wake on the loop's thread allocates nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use eddy_core::{Instant, IoLoop};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls and bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn round(io: &mut IoLoop) {
    io.handle_timeout(Instant::ZERO);
}

// One test function, so no other test allocates concurrently in this binary.
#[test]
fn task_memory_returns_after_a_burst_and_same_thread_wakes_allocate_nothing() {
    let mut io = IoLoop::default();
    // Warm up: a few tasks, so lazily made thread-locals and pools exist before measuring.
    for _ in 0..100 {
        io.spawn(async { task_body().await });
    }
    for _ in 0..10 {
        round(&mut io);
    }
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for _ in 0..100_000 {
        io.spawn(async { task_body().await });
    }
    let peak = LIVE_BYTES.load(Ordering::Relaxed);
    for _ in 0..10 {
        round(&mut io);
    }
    assert_eq!(io.task_count(), 0);
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    assert!(
        peak - before > 10_000_000,
        "100,000 tasks took memory: {}",
        peak - before
    );
    assert!(
        after - before < 32 * 1024,
        "memory after the burst: {} bytes more than before (peak +{})",
        after - before,
        peak - before
    );

    // A task parked on a waker the test holds: wake it on this thread, again and again.
    let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
    let s = slot.clone();
    io.spawn(std::future::poll_fn(move |cx: &mut Context<'_>| {
        *s.borrow_mut() = Some(cx.waker().clone());
        Poll::<()>::Pending
    }));
    round(&mut io);
    let waker = slot.borrow().clone().unwrap();
    for _ in 0..10 {
        waker.wake_by_ref();
        round(&mut io);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..1000 {
        waker.wake_by_ref();
        round(&mut io);
    }
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed) - allocations,
        0,
        "a same-thread wake and the poll it causes allocate nothing"
    );
}

async fn task_body() {
    eddy_core::task::yield_now().await;
}

//! Micro-benchmarks of the core's hot paths: timers and callback dispatch.
//!
//! Run with `cargo bench -p eddy-core`.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use eddy_core::{Duration, Instant, IoLoop, TimerHeap};

const N: u64 = 1000;

fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer_heap");
    g.throughput(Throughput::Elements(N));
    // A realistic mix: every timer inserted; half cancelled (timeouts that did not fire);
    // the rest popped in deadline order.
    g.bench_function("insert_cancel_half_pop_rest_1000", |b| {
        let mut heap = TimerHeap::new();
        let mut ids = Vec::with_capacity(N as usize);
        b.iter(|| {
            ids.clear();
            for i in 0..N {
                let deadline = Instant::from_nanos((i * 7919) % 10_007);
                ids.push(heap.insert(deadline, i));
            }
            for id in ids.iter().step_by(2) {
                black_box(heap.cancel(*id));
            }
            while let Some(x) = heap.pop_expired(Instant::from_nanos(20_000)) {
                black_box(x);
            }
        });
    });
    g.bench_function("insert_pop_1000", |b| {
        let mut heap = TimerHeap::new();
        b.iter(|| {
            for i in 0..N {
                heap.insert(Instant::from_nanos((i * 7919) % 10_007), i);
            }
            while let Some(x) = heap.pop_expired(Instant::from_nanos(20_000)) {
                black_box(x);
            }
        });
    });
    g.finish();
}

fn callbacks(c: &mut Criterion) {
    let mut g = c.benchmark_group("io_loop");
    g.throughput(Throughput::Elements(N));
    g.bench_function("add_callback_and_dispatch_1000", |b| {
        let mut io = IoLoop::default();
        b.iter(|| {
            for i in 0..N {
                io.add_callback(move |_| {
                    black_box(i);
                });
            }
            io.handle_timeout(Instant::ZERO);
        });
    });
    g.bench_function("call_later_remove_1000", |b| {
        b.iter_batched_ref(
            IoLoop::default,
            |io| {
                for i in 0..N {
                    let h = io.call_later(Duration::from_millis(i), |_| {});
                    if i % 2 == 0 {
                        io.remove_timeout(h);
                    }
                }
                io.handle_timeout(Instant::from_nanos(u64::MAX / 2));
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(benches, timers, callbacks);
criterion_main!(benches);

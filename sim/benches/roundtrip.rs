//! Simulator throughput: 50 clients doing 64-byte round trips with an echo server, on one
//! core, with and without 1-10 ms link latency; and the wall time of 9 idle virtual hours.
//!
//! The same workload is also written with async/await (an accept loop and one task per
//! connection on the server, one task per client), so the two styles compare in one run.
//!
//! Run with `cargo bench -p eddy-sim`. Prints simulated round trips per wall-clock second.

use eddy_core::{Duration, Instant, IoLoop, ListenOptions, StreamId};
use eddy_sim::{FaultConfig, Sim};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

const CLIENTS: usize = 50;
const MSG: [u8; 64] = [7u8; 64];

fn echo(io: &mut IoLoop, s: StreamId) {
    let _ = io.read_some(s, 64 * 1024, move |io, r| {
        if let Ok(data) = r {
            if io.write(s, data).is_ok() {
                echo(io, s);
            }
        }
    });
}

fn round_trip(io: &mut IoLoop, s: StreamId, left: u64, done: Rc<Cell<u64>>) {
    if left == 0 {
        done.set(done.get() + 1);
        if done.get() == CLIENTS as u64 {
            io.stop();
        }
        return;
    }
    let _ = io.write(s, &MSG[..]);
    let _ = io.read_bytes(s, MSG.len(), move |io, r| {
        if r.is_ok() {
            round_trip(io, s, left - 1, done);
        }
    });
}

fn world(seed: u64, faults: FaultConfig, trips: u64) -> Sim {
    let mut sim = Sim::with_faults(seed, faults);
    let addr = SocketAddr::new(Sim::ip_of_nth_host(0), 7);
    sim.host("server", move |io| {
        io.listen(addr, ListenOptions::default(), |io, s, _| echo(io, s));
    });
    sim.host("clients", move |io| {
        let done = Rc::new(Cell::new(0));
        for _ in 0..CLIENTS {
            let done = done.clone();
            io.connect(addr, None, move |io, r| {
                if let Ok(s) = r {
                    round_trip(io, s, trips, done);
                }
            });
        }
    });
    sim
}

/// The same world written with tasks.
fn world_async(seed: u64, faults: FaultConfig, trips: u64) -> Sim {
    use eddy_core::task::{self, TcpListener, TcpStream};
    let mut sim = Sim::with_faults(seed, faults);
    let addr = SocketAddr::new(Sim::ip_of_nth_host(0), 7);
    sim.host("server", move |io| {
        let mut listener = TcpListener::listen_on(io, addr, ListenOptions::default());
        io.spawn_detached(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                task::spawn(async move {
                    while let Ok(data) = conn.read_some(64 * 1024).await {
                        if conn.write(data).is_err() {
                            break;
                        }
                    }
                });
            }
        });
    });
    sim.host("clients", move |io| {
        let done = Rc::new(Cell::new(0));
        for _ in 0..CLIENTS {
            let done = done.clone();
            io.spawn_detached(async move {
                let Ok(mut conn) = TcpStream::connect(addr).await else {
                    return;
                };
                for _ in 0..trips {
                    if conn.write(&MSG[..]).is_err() || conn.read_exact(MSG.len()).await.is_err() {
                        return;
                    }
                }
                done.set(done.get() + 1);
                if done.get() == CLIENTS as u64 {
                    task::with_loop(|io| io.stop());
                }
            });
        }
    });
    sim
}

type World = fn(u64, FaultConfig, u64) -> Sim;

fn bench_round_trips(label: &str, world: World, faults: FaultConfig, trips: u64) {
    // Warm up once, then measure the best of three.
    let mut best = f64::MAX;
    let mut virt = Duration::ZERO;
    for seed in 0..4 {
        let mut sim = world(seed, faults.clone(), trips);
        let clients = sim.host_id("clients").expect("host exists");
        let started = std::time::Instant::now();
        sim.run_until_done(Duration::from_secs(1 << 30), |s| s.is_stopped(clients))
            .expect("benchmark world finishes");
        let wall = started.elapsed().as_secs_f64();
        virt = sim.now() - Instant::ZERO;
        if seed > 0 {
            best = best.min(wall);
        }
    }
    let total = trips * CLIENTS as u64;
    println!(
        "{label:<28} {total:>9} round trips in {:>8.2} ms wall ({:>10.0} round trips/s), {:.3} s virtual",
        best * 1e3,
        total as f64 / best,
        virt.as_secs_f64()
    );
}

fn bench_idle_hours() {
    let mut sim = world(1, FaultConfig::none(), 1);
    sim.host("sleeper", |io| {
        io.call_later(Duration::from_secs(9 * 3600), |io| io.stop());
    });
    sim.run_until_done(Duration::from_secs(60), |s| s.is_stopped("clients"))
        .expect("warm-up finishes");
    let started = std::time::Instant::now();
    sim.run_until_done(Duration::from_secs(10 * 3600), |s| s.is_stopped("sleeper"))
        .expect("the sleeper wakes");
    let wall = started.elapsed();
    println!(
        "{:<28} 9 h virtual in {:.3} ms wall (50 idle connections, one 9 h timer)",
        "idle",
        wall.as_secs_f64() * 1e3
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench -p eddy-sim -- latency` runs only the benchmarks whose name contains it.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |name: &str| filter.as_deref().map_or(true, |f| name.contains(f));
    let trips = std::env::var("EDDY_BENCH_TRIPS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(20_000);
    let latency = FaultConfig::latency(Duration::from_millis(1), Duration::from_millis(10));
    for (label, world, faults) in [
        ("no latency", world as World, FaultConfig::none()),
        ("1-10 ms latency", world, latency.clone()),
        ("async no latency", world_async, FaultConfig::none()),
        ("async 1-10 ms latency", world_async, latency),
    ] {
        if wanted(label) {
            bench_round_trips(label, world, faults, trips);
        }
    }
    if wanted("idle") {
        bench_idle_hours();
    }
}

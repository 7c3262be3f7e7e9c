//! Turmoil throughput on eddy-sim's `roundtrip` workload: an echo server and 50 clients doing
//! 64-byte round trips, with no link latency and with 1-10 ms latency, so turmoil 0.7 and
//! eddy's simulator can be compared in the same run.
//!
//! Unlike `sim/benches/roundtrip.rs`, which puts all 50 clients on one simulated host, this
//! puts each client on its own turmoil client host (turmoil's natural model: `Sim::run`
//! returns once every client host's future has finished). Each scenario is run once to warm
//! up and then three times, and the best `sim.run()` wall time is printed in the same format
//! as `roundtrip.rs`.
//!
//! Not quite the same world: turmoil draws link latency as `min + (max - min) * Exp(5)`, in
//! whole milliseconds and capped at `max` (eddy-sim draws it uniformly), and its virtual clock
//! moves in 1 ms ticks, so even a round trip without latency takes 1 ms of virtual time.
//!
//! Run with
//! `cargo run --release --bin turmoil_echo [-- FILTER]` in `benches/peers`; FILTER runs only
//! the scenarios whose name contains it. `EDDY_BENCH_TRIPS` sets the round trips per client
//! for both scenarios (default 2000 without latency, 200 with it).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

const CLIENTS: usize = 50;
const MSG: [u8; 64] = [7u8; 64];
const PORT: u16 = 7;

async fn echo_server() -> turmoil::Result {
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    loop {
        let (sock, _) = listener.accept().await?;
        tokio::task::spawn_local(eddy_bench_peers::echo_connection(sock));
    }
}

async fn client(trips: u64, done: Rc<Cell<u64>>) -> turmoil::Result {
    let mut sock = TcpStream::connect(("server", PORT)).await?;
    let mut buf = [0u8; MSG.len()];
    for _ in 0..trips {
        sock.write_all(&MSG).await?;
        sock.read_exact(&mut buf).await?;
        assert_eq!(buf, MSG, "the echo matches");
        done.set(done.get() + 1);
    }
    Ok(())
}

fn world<'a>(
    seed: u64,
    latency: (Duration, Duration),
    trips: u64,
    done: &Rc<Cell<u64>>,
) -> turmoil::Sim<'a> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .min_message_latency(latency.0)
        .max_message_latency(latency.1)
        .simulation_duration(Duration::from_secs(1 << 30))
        .build();
    sim.host("server", echo_server);
    for i in 0..CLIENTS {
        sim.client(format!("client{i}"), client(trips, done.clone()));
    }
    sim
}

fn bench_round_trips(label: &str, latency: (Duration, Duration), trips: u64) {
    // Warm up once, then measure the best of three.
    let mut best = f64::MAX;
    let mut virt = Duration::ZERO;
    let total = trips * CLIENTS as u64;
    for seed in 0..4 {
        let done = Rc::new(Cell::new(0));
        let mut sim = world(seed, latency, trips, &done);
        let started = std::time::Instant::now();
        sim.run().expect("benchmark world finishes");
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(done.get(), total, "every round trip completed");
        virt = sim.elapsed();
        if seed > 0 {
            best = best.min(wall);
        }
    }
    println!(
        "{label:<28} {total:>9} round trips in {:>8.2} ms wall ({:>10.0} round trips/s), {:.3} s virtual",
        best * 1e3,
        total as f64 / best,
        virt.as_secs_f64()
    );
}

fn main() {
    // `turmoil_echo latency` runs only the scenarios whose name contains "latency".
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let trips: Option<u64> = std::env::var("EDDY_BENCH_TRIPS")
        .ok()
        .and_then(|t| t.parse().ok());
    if wanted("no latency") {
        bench_round_trips(
            "no latency",
            (Duration::ZERO, Duration::ZERO),
            trips.unwrap_or(2_000),
        );
    }
    if wanted("1-10 ms latency") {
        bench_round_trips(
            "1-10 ms latency",
            (Duration::from_millis(1), Duration::from_millis(10)),
            trips.unwrap_or(200),
        );
    }
}

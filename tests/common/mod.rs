//! Test harness: run one test body on every backend — the OS drivers (mio, poll) and the
//! simulator, where the same body meets latency, short reads and writes, split and coalesced
//! segments and small socket buffers (faults that never cut a connection).
//!
//! Bodies are written against `IoLoop` only — clients use `io.connect`, `io.write`,
//! `io.read_*` — so the same body can run on real loopback sockets or a simulated network.
//! A body ends the run by calling `io.stop()`; every run is bounded by a wall-clock limit.
#![allow(dead_code)] // each test file uses a different part of the harness

use eddy::core::{IoLoop, ListenerId, LoopConfig};
use eddy::drivers::{new_driver, Driver, DriverConfig, DriverKind};
use eddy_sim::FaultConfig;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a test body runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The epoll/kqueue driver on loopback sockets.
    Mio,
    /// The poll(2) driver on loopback sockets.
    Poll,
    /// The simulated network (server and client on two hosts), from a fixed seed.
    Sim,
}

impl Backend {
    /// The driver kind of a real backend.
    pub fn driver_kind(self) -> Option<DriverKind> {
        match self {
            Backend::Mio => Some(DriverKind::Mio),
            Backend::Poll => Some(DriverKind::Poll),
            Backend::Sim => None,
        }
    }
}

/// Every backend a body should run on.
pub fn backends() -> Vec<Backend> {
    vec![Backend::Mio, Backend::Poll, Backend::Sim]
}

/// The OS backends, for bodies that need real sockets, threads or the real clock.
pub fn real_backends() -> Vec<Backend> {
    vec![Backend::Mio, Backend::Poll]
}

/// Seed of simulated runs (`EDDY_SEED` overrides it, to explore or replay).
pub fn sim_seed() -> u64 {
    std::env::var("EDDY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// A simulated world that is slow and choppy but never cuts a connection.
pub fn sim_faults() -> FaultConfig {
    FaultConfig {
        latency_min: Duration::from_micros(50),
        latency_max: Duration::from_millis(5),
        p_slow: 0.02,
        slow_latency_max: Duration::from_millis(200),
        socket_buffer_min: 4 * 1024,
        socket_buffer_max: 256 * 1024,
        p_short_read: 0.3,
        p_short_write: 0.3,
        p_split: 0.3,
        p_coalesce: 0.3,
        coalesce_delay_max: Duration::from_millis(5),
        p_accept_delay: 0.2,
        accept_delay_max: Duration::from_millis(100),
        ..FaultConfig::none()
    }
}

/// The loopback address tests bind to (ephemeral port).
pub fn loopback_v4() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

/// A driver for a real backend.
pub fn driver_for(backend: Backend) -> Box<dyn Driver> {
    let kind = backend.driver_kind().expect("a real backend");
    new_driver(&DriverConfig::with_kind(kind)).expect("driver starts")
}

/// Runs `server` then `client` on one loop over 127.0.0.1 until the client calls `io.stop()`.
///
/// `server` gets the address to bind and returns its listener; `client` gets the address the
/// server actually bound. Panics if the body has not stopped within `wall_limit`.
///
/// Returns the (shared) loop on a real backend; `None` on the simulator, where server and
/// client run on two hosts.
pub fn run_pair(
    backend: Backend,
    server: impl FnOnce(&mut IoLoop, SocketAddr) -> ListenerId + 'static,
    client: impl FnOnce(&mut IoLoop, SocketAddr) + 'static,
    wall_limit: Duration,
) -> Option<IoLoop> {
    run_pair_at(backend, loopback_v4(), server, client, wall_limit)
}

/// [`run_pair`] with the server bound at `bind` (e.g. `[::1]:0`).
pub fn run_pair_at(
    backend: Backend,
    bind: SocketAddr,
    server: impl FnOnce(&mut IoLoop, SocketAddr) -> ListenerId + 'static,
    client: impl FnOnce(&mut IoLoop, SocketAddr) + 'static,
    wall_limit: Duration,
) -> Option<IoLoop> {
    if backend == Backend::Sim {
        // Virtual time: an hour of it costs milliseconds, so the wall limit does not apply.
        let seed = sim_seed();
        if let Err(e) = eddy_sim::run_pair(
            seed,
            sim_faults(),
            server,
            client,
            Duration::from_secs(3600),
        ) {
            panic!(
                "[Sim] seed {seed}: {e}\nreplay: EDDY_SEED={seed} cargo test --test <this test>"
            );
        }
        return None;
    }
    let mut io = IoLoop::new(LoopConfig::default());
    let mut driver = driver_for(backend);
    let listener = server(&mut io, bind);
    driver.perform_actions(&mut io).expect("actions");
    let addr = io.listener_addr(listener).unwrap_or_else(|| {
        panic!(
            "[{backend:?}] server failed to listen on {bind}: {:?}",
            io.listener_error(listener)
        )
    });
    client(&mut io, addr);
    drive(backend, &mut *driver, &mut io, wall_limit);
    Some(io)
}

/// Runs `body` on a fresh loop until it calls `io.stop()`, bounded by `wall_limit`.
pub fn run_single(
    backend: Backend,
    body: impl FnOnce(&mut IoLoop),
    wall_limit: Duration,
) -> IoLoop {
    let mut io = IoLoop::new(LoopConfig::default());
    let mut driver = driver_for(backend);
    body(&mut io);
    drive(backend, &mut *driver, &mut io, wall_limit);
    io
}

fn drive(backend: Backend, driver: &mut dyn Driver, io: &mut IoLoop, wall_limit: Duration) {
    let start = Instant::now();
    while !io.is_stopped() {
        if start.elapsed() > wall_limit {
            panic!(
                "[{backend:?}] the test body did not call io.stop() within {wall_limit:?} \
                 ({} streams open, {} callbacks run)",
                io.open_streams(),
                io.stats().callbacks_run
            );
        }
        driver
            .turn(io, Some(Duration::from_millis(50)))
            .expect("driver turn");
    }
    driver.perform_actions(io).expect("final actions");
}

/// Deterministic pseudo-random bytes (xorshift), so failures replay.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Deterministic sizes in `1..=max` summing to `total`.
pub fn random_sizes(seed: u64, total: usize, max: usize) -> Vec<usize> {
    let mut x = seed | 1;
    let mut left = total;
    let mut out = Vec::new();
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (x as usize % max + 1).min(left);
        out.push(n);
        left -= n;
    }
    out
}

//! Test harness: run one test body on every backend (the OS drivers now, the simulator later).
//!
//! Bodies are written against `IoLoop` only — clients use `io.connect`, `io.write`,
//! `io.read_*` — so the same body can run on real loopback sockets or a simulated network.
//! A body ends the run by calling `io.stop()`; every run is bounded by a wall-clock limit.
#![allow(dead_code)] // each test file uses a different part of the harness

use eddy::core::{IoLoop, ListenerId, LoopConfig};
use eddy::drivers::{new_driver, Driver, DriverConfig, DriverKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a test body runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The epoll/kqueue driver on loopback sockets.
    Mio,
    /// The poll(2) driver on loopback sockets.
    Poll,
}

impl Backend {
    /// The driver kind of a real backend.
    pub fn driver_kind(self) -> Option<DriverKind> {
        match self {
            Backend::Mio => Some(DriverKind::Mio),
            Backend::Poll => Some(DriverKind::Poll),
        }
    }
}

/// Every backend a body should run on.
pub fn backends() -> Vec<Backend> {
    vec![Backend::Mio, Backend::Poll]
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
pub fn run_pair(
    backend: Backend,
    server: impl FnOnce(&mut IoLoop, SocketAddr) -> ListenerId,
    client: impl FnOnce(&mut IoLoop, SocketAddr),
    wall_limit: Duration,
) -> IoLoop {
    run_pair_at(backend, loopback_v4(), server, client, wall_limit)
}

/// [`run_pair`] with the server bound at `bind` (e.g. `[::1]:0`).
pub fn run_pair_at(
    backend: Backend,
    bind: SocketAddr,
    server: impl FnOnce(&mut IoLoop, SocketAddr) -> ListenerId,
    client: impl FnOnce(&mut IoLoop, SocketAddr),
    wall_limit: Duration,
) -> IoLoop {
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
    io
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

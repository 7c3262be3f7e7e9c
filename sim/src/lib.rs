//! eddy-sim: runs eddy `IoLoop`s on a deterministic simulated network and clock.
//!
//! A [`Sim`] is a world of hosts (10.0.0.1, 10.0.0.2, …), each running one or more `IoLoop`s
//! built by a setup closure — the same application code that runs on the real driver, using
//! only the `IoLoop` API. TCP between hosts is simulated (listen, connect, accept, refused
//! connects, half-close, reset); time is virtual and jumps to the next event, so an hour-long
//! timer costs nothing. One seeded ChaCha8 generator makes every random choice and nothing
//! iterates a hash map, so `seed → trace` is a function: same seed, same trace hash, on every
//! platform.
//!
//! Faults (latency with jitter and a slow tail, bandwidth, short reads and writes, splitting
//! and coalescing, bounded socket buffers, delayed accepts, resets, refused connects,
//! partitions, crashes and restarts, clock jumps) are set by a [`FaultConfig`] — by default
//! drawn per seed ([`FaultConfig::swarm`], swarm testing) — or scheduled as data by a
//! [`FaultPlan`] (with the `proptest` feature, `plan::strategy` generates and shrinks plans).
//!
//! # Testing with it
//!
//! * One world: [`Sim::new`] / [`Sim::with_faults`], [`Sim::host`], then
//!   [`Sim::run_until_done`] or [`Sim::run_faults_then_heal`] (safety while faults run, then
//!   heal and require liveness). A world that goes quiet with work outstanding is a
//!   [`SimError::Hang`]; an `assert!` that fails inside a simulated callback fails the run
//!   with [`SimError::Panic`].
//! * A server and a client: [`run_pair`].
//! * Many seeds: [`assert_seeds`] / [`run_seeds`] run a range in parallel (each world is built
//!   in its own thread) and print, for a failure, the seed and the command that replays it;
//!   `EDDY_SEED=n` narrows any range to that seed. [`check_determinism`] runs a seed twice and
//!   compares trace hashes. From the shell: `eddy sim --scenario echo --seeds 0..1000`.
//! * Traces: [`Sim::record_trace`] keeps every event; export with [`Trace::to_json_lines`] or
//!   [`Trace::to_chrome_json`] (`eddy sim … --trace out.json`). A failed world leaves its
//!   trace for [`take_last_trace`].
//!
//! Files: [`SimFiles`] is an in-memory [`FileSystem`](eddy_core::file::FileSystem) with
//! seeded faults of its own ([`FileFaults`]: short reads, `EIO`, files changing or vanishing
//! after their stat, slow disks in virtual time), for the web layer's static files.
//!
//! Simulated code must be deterministic too: take randomness from a generator seeded from the
//! run's seed, never iterate a `HashMap` to decide anything, and never read the OS clock.
//!
//! # The TCP model, and what it leaves out
//!
//! Bytes are never lost, reordered or corrupted (they travel over TCP); they are delayed,
//! split, coalesced and held back by bounded receive buffers. A packet for a partitioned link
//! or a crashed host is held (as if retransmitted) and delivered when the link heals or the
//! host restarts; held longer than [`FaultConfig::tcp_give_up`] (15 minutes), the connection
//! fails with a timeout on both ends, as TCP's retransmission limit makes it. A crash drops the host's loops without running a callback; each of its open
//! sockets sends a reset (if it had unread data) or end of file, as a killed process's kernel
//! would; later packets to dead sockets are answered with resets. Bandwidth is limited per
//! connection direction (not shared per link). Clocks only jump forward.
//!
//! ```
//! use eddy_sim::{run_pair, FaultConfig};
//! use eddy_core::{Duration, IoLoop, ListenOptions};
//! let report = run_pair(
//!     1,
//!     FaultConfig::latency(Duration::from_millis(1), Duration::from_millis(10)),
//!     |io: &mut IoLoop, addr| {
//!         io.listen(addr, ListenOptions::default(), |io, s, _| {
//!             let _ = io.read_bytes(s, 5, move |io, r| {
//!                 let _ = io.write(s, r.unwrap());
//!             });
//!         })
//!     },
//!     |io: &mut IoLoop, addr| {
//!         io.connect(addr, None, |io, s| {
//!             let s = s.unwrap();
//!             io.write(s, &b"hello"[..]).unwrap();
//!             let _ = io.read_bytes(s, 5, |io, r| {
//!                 assert_eq!(&r.unwrap()[..], b"hello");
//!                 io.stop();
//!             });
//!         });
//!     },
//!     Duration::from_secs(60),
//! )
//! .unwrap();
//! assert!(report.virtual_time < Duration::from_secs(1));
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod fs;
pub mod pair;
mod panics;
pub mod plan;
mod recv_buf;
pub mod seeds;
pub mod trace;
pub mod world;

pub use config::FaultConfig;
pub use error::SimError;
pub use fs::{FileFaults, SimFiles};
pub use pair::{pair_server_addr, run_pair};
pub use plan::{FaultOp, FaultPlan, FaultStep};
pub use seeds::{
    assert_seeds, check_determinism, replay_command, run_seeds, seeds_from_env, SeedRun,
    SeedSummary,
};
pub use trace::{Trace, TraceEvent, TraceHash, TraceKind};
pub use world::{take_last_trace, HostId, HostRef, RunReport, Sim, SimStats};

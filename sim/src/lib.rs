//! eddy-sim: runs eddy `IoLoop`s on a deterministic simulated network and clock.
//!
//! A [`Sim`] is a world of hosts (10.0.0.1, 10.0.0.2, …), each running one or more `IoLoop`s
//! built by a setup closure — the same application code that runs on the real driver. TCP
//! between hosts is simulated (listen, connect, accept, refused connects, half-close, reset);
//! time is virtual and jumps to the next event. One seeded ChaCha8 generator makes every
//! random choice, so a seed replays a run exactly: same seed, same trace hash.
//!
//! Faults (latency and jitter, bandwidth, short reads and writes, splitting and coalescing,
//! bounded buffers, delayed accepts, resets, refused connects, partitions, crashes and
//! restarts, clock jumps) are set by a [`FaultConfig`] — by default drawn per seed (swarm
//! testing) — or scheduled as data by a [`FaultPlan`].
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
pub mod pair;
mod panics;
pub mod plan;
pub mod seeds;
pub mod trace;
pub mod world;

pub use config::FaultConfig;
pub use error::SimError;
pub use pair::{pair_server_addr, run_pair};
pub use plan::{FaultOp, FaultPlan, FaultStep};
pub use seeds::{
    assert_seeds, check_determinism, replay_command, run_seeds, seeds_from_env, SeedRun,
    SeedSummary,
};
pub use trace::{Trace, TraceEvent, TraceHash, TraceKind};
pub use world::{take_last_trace, HostId, HostRef, RunReport, Sim, SimStats};

//! `SimError`: every way a simulated run can fail, each naming the seed that replays it.
//!
//! It owns the failure vocabulary only; detecting failures is the world's job.

use eddy_core::Instant;

/// Why a simulated run failed; every variant carries the seed that replays it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// Nothing is runnable, no timer is set, no packet is in flight, and the run is not done.
    #[error("seed {seed}: hang at {at:?}: nothing runnable, no timer, no packet in flight, and the run is not done ({detail})")]
    Hang {
        /// The seed.
        seed: u64,
        /// Virtual time when the world went quiet.
        at: Instant,
        /// What was still outstanding (open connections, held packets, loops not stopped).
        detail: String,
    },
    /// The run was not done by its virtual deadline (after faults healed: a liveness failure).
    #[error("seed {seed}: not done by the virtual deadline {deadline:?} ({phase})")]
    Deadline {
        /// The seed.
        seed: u64,
        /// The deadline that passed.
        deadline: Instant,
        /// Which phase ran out of time ("faults" or "liveness after heal").
        phase: &'static str,
    },
    /// Loops kept stepping without virtual time advancing (a busy loop in simulated code).
    #[error("seed {seed}: livelock at {at:?}: {steps} loop steps without virtual time advancing")]
    Livelock {
        /// The seed.
        seed: u64,
        /// The virtual time that never advanced.
        at: Instant,
        /// Steps taken at that instant.
        steps: u64,
    },
    /// A callback on a simulated host panicked (an assertion in simulated code failed).
    #[error("seed {seed}: callback panicked on host {host} at {at:?}: {message}")]
    Panic {
        /// The seed.
        seed: u64,
        /// The host's name.
        host: String,
        /// Virtual time of the panic.
        at: Instant,
        /// The panic message.
        message: String,
    },
    /// A scenario's invariant failed after the run.
    #[error("seed {seed}: invariant violated: {message}")]
    Invariant {
        /// The seed.
        seed: u64,
        /// What was violated.
        message: String,
    },
    /// The same seed produced two different traces.
    #[error("seed {seed}: nondeterminism: trace hashes {first:#018x} and {second:#018x} differ")]
    Nondeterministic {
        /// The seed.
        seed: u64,
        /// The first run's trace hash.
        first: u64,
        /// The second run's trace hash.
        second: u64,
    },
}

impl SimError {
    /// The seed that replays this failure.
    pub fn seed(&self) -> u64 {
        match self {
            SimError::Hang { seed, .. }
            | SimError::Deadline { seed, .. }
            | SimError::Livelock { seed, .. }
            | SimError::Panic { seed, .. }
            | SimError::Invariant { seed, .. }
            | SimError::Nondeterministic { seed, .. } => *seed,
        }
    }
}

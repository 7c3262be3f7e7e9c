//! `FaultConfig`: how hostile a simulated world is — latency, buffers, and fault probabilities.
//!
//! It owns the knobs and the swarm-testing draw (each seed picks its own probabilities); it
//! never decides an individual fault — the world does that, with its seeded generator.

use eddy_core::Duration;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Fault probabilities and network shape of one world; see [`FaultConfig::swarm`].
///
/// Probabilities are per opportunity: `p_short_read` per read, `p_reset` per write, and the
/// `p_partition` / `p_crash` / `p_clock_jump` trio per fault tick (one tick every
/// `fault_tick_mean` on average, while the fault phase lasts).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Smallest one-way latency of a link.
    pub latency_min: Duration,
    /// Largest one-way latency of a link in the fast case (uniform between min and max).
    pub latency_max: Duration,
    /// Probability that a segment takes the slow tail instead.
    pub p_slow: f64,
    /// Extra latency of the slow tail (uniform up to this).
    pub slow_latency_max: Duration,
    /// Bandwidth of each connection direction in bytes per second (`None`: unlimited).
    pub bandwidth_bytes_per_sec: Option<u64>,
    /// Receive buffer of a socket: the most bytes in flight plus unread per direction (min).
    pub socket_buffer_min: usize,
    /// Receive buffer of a socket (max; each connection draws its own size).
    pub socket_buffer_max: usize,
    /// Probability that a read returns fewer bytes than are available.
    pub p_short_read: f64,
    /// Probability that a write accepts fewer bytes than offered.
    pub p_short_write: f64,
    /// Probability that a write is split into several segments with their own latencies.
    pub p_split: f64,
    /// Probability that readiness is reported late, so later segments coalesce into one read.
    pub p_coalesce: f64,
    /// How late a coalescing readiness report may come.
    pub coalesce_delay_max: Duration,
    /// Probability that an accept is delayed.
    pub p_accept_delay: f64,
    /// How long a delayed accept may wait.
    pub accept_delay_max: Duration,
    /// Probability, per write, that the connection is reset.
    pub p_reset: f64,
    /// Probability that a connect is refused although someone listens.
    pub p_refuse: f64,
    /// Mean time between fault ticks (exponentially distributed).
    pub fault_tick_mean: Duration,
    /// Probability, per tick, of a partition between two hosts (half of them one-way).
    pub p_partition: f64,
    /// How long a random partition lasts at most.
    pub partition_max: Duration,
    /// Probability, per tick, that a crashable host crashes.
    pub p_crash: f64,
    /// How long a crashed host stays down at most before it restarts.
    pub restart_delay_max: Duration,
    /// Probability, per tick, that a host's clock jumps forward.
    pub p_clock_jump: f64,
    /// How far a clock jumps at most.
    pub clock_jump_max: Duration,
    /// How long a packet held by a partition or a down host is retransmitted before its
    /// connection fails with a timeout (Linux gives up after about 15 minutes).
    pub tcp_give_up: Duration,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig::none()
    }
}

impl FaultConfig {
    /// A perfect network: zero latency, large buffers, no faults.
    pub fn none() -> FaultConfig {
        FaultConfig {
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            p_slow: 0.0,
            slow_latency_max: Duration::ZERO,
            bandwidth_bytes_per_sec: None,
            socket_buffer_min: 256 * 1024,
            socket_buffer_max: 256 * 1024,
            p_short_read: 0.0,
            p_short_write: 0.0,
            p_split: 0.0,
            p_coalesce: 0.0,
            coalesce_delay_max: Duration::ZERO,
            p_accept_delay: 0.0,
            accept_delay_max: Duration::ZERO,
            p_reset: 0.0,
            p_refuse: 0.0,
            fault_tick_mean: Duration::from_secs(1),
            p_partition: 0.0,
            partition_max: Duration::ZERO,
            p_crash: 0.0,
            restart_delay_max: Duration::ZERO,
            p_clock_jump: 0.0,
            clock_jump_max: Duration::ZERO,
            tcp_give_up: Duration::from_secs(15 * 60),
        }
    }

    /// No faults, but a link latency drawn uniformly from `min..=max`.
    pub fn latency(min: Duration, max: Duration) -> FaultConfig {
        FaultConfig {
            latency_min: min,
            latency_max: max,
            ..FaultConfig::none()
        }
    }

    /// Every fault on, at rates that break most connections of a minutes-long run.
    pub fn hostile() -> FaultConfig {
        FaultConfig {
            latency_min: Duration::from_micros(100),
            latency_max: Duration::from_millis(5),
            p_slow: 0.05,
            slow_latency_max: Duration::from_millis(500),
            bandwidth_bytes_per_sec: Some(1_000_000),
            socket_buffer_min: 1,
            socket_buffer_max: 64 * 1024,
            p_short_read: 0.3,
            p_short_write: 0.3,
            p_split: 0.3,
            p_coalesce: 0.3,
            coalesce_delay_max: Duration::from_millis(20),
            p_accept_delay: 0.3,
            accept_delay_max: Duration::from_millis(500),
            p_reset: 0.002,
            p_refuse: 0.05,
            fault_tick_mean: Duration::from_millis(500),
            p_partition: 0.2,
            partition_max: Duration::from_secs(3),
            p_crash: 0.05,
            restart_delay_max: Duration::from_secs(2),
            p_clock_jump: 0.1,
            clock_jump_max: Duration::from_secs(5),
            tcp_give_up: Duration::from_secs(15 * 60),
        }
    }

    /// Swarm testing (TigerBeetle's VOPR): each knob is off or drawn at random, per seed.
    ///
    /// About half the knobs come out zero for any seed, so a range of seeds covers calm
    /// worlds, worlds with one kind of fault, and worlds where everything goes wrong.
    pub fn swarm(rng: &mut ChaCha8Rng) -> FaultConfig {
        let h = FaultConfig::hostile();
        let mut p = |max: f64| -> f64 {
            if rng.gen_bool(0.5) {
                0.0
            } else {
                rng.gen_range(0.0..=max)
            }
        };
        let p_slow = p(h.p_slow * 2.0);
        let p_short_read = p(0.6);
        let p_short_write = p(0.6);
        let p_split = p(0.6);
        let p_coalesce = p(0.6);
        let p_accept_delay = p(0.5);
        let p_reset = p(h.p_reset * 2.0);
        let p_refuse = p(h.p_refuse * 2.0);
        let p_partition = p(0.4);
        let p_crash = p(0.1);
        let p_clock_jump = p(0.2);
        let latency_max_us = rng.gen_range(0..=20_000u64);
        let latency_min_us = rng.gen_range(0..=latency_max_us);
        let small_buffers = rng.gen_bool(0.5);
        let bandwidth = if rng.gen_bool(0.3) {
            Some(rng.gen_range(10_000..=10_000_000))
        } else {
            None
        };
        FaultConfig {
            latency_min: Duration::from_micros(latency_min_us),
            latency_max: Duration::from_micros(latency_max_us),
            p_slow,
            socket_buffer_min: if small_buffers { 1 } else { 64 * 1024 },
            socket_buffer_max: if small_buffers { 8 * 1024 } else { 256 * 1024 },
            bandwidth_bytes_per_sec: bandwidth,
            p_short_read,
            p_short_write,
            p_split,
            p_coalesce,
            p_accept_delay,
            p_reset,
            p_refuse,
            p_partition,
            p_crash,
            p_clock_jump,
            ..h
        }
    }

    /// The same network shape with every fault probability set to zero (the liveness phase).
    pub fn healed(&self) -> FaultConfig {
        FaultConfig {
            p_slow: 0.0,
            p_short_read: 0.0,
            p_short_write: 0.0,
            p_split: 0.0,
            p_coalesce: 0.0,
            p_accept_delay: 0.0,
            p_reset: 0.0,
            p_refuse: 0.0,
            p_partition: 0.0,
            p_crash: 0.0,
            p_clock_jump: 0.0,
            ..self.clone()
        }
    }

    /// True if random partitions, crashes or clock jumps can happen (fault ticks are needed).
    pub fn has_world_faults(&self) -> bool {
        self.p_partition > 0.0 || self.p_crash > 0.0 || self.p_clock_jump > 0.0
    }
}

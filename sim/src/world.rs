//! `Sim`: the simulated world — hosts running `IoLoop`s, TCP between them, a virtual clock.
//!
//! It owns the event queue, the simulated sockets and every random choice (one seeded
//! ChaCha8 generator). It is just another driver of the `IoLoop` API: it performs `poll_io`
//! actions and feeds back accepted / connected / read / written / eof / error inputs. It never
//! touches a real socket or clock, and never iterates a hash map, so a seed replays a run.
//!
//! # TCP model
//!
//! A connection is two ends. Bytes one end writes go into the other end's receive pipe at
//! once (counted against its bounded buffer, so writers see back-pressure) and *arrive* later,
//! segment by segment; a read takes arrived bytes from the front. Because arrival is a byte
//! count over an ordered pipe, data can be delayed, split and coalesced but never reordered or
//! corrupted. End of file arrives after every byte. A packet for a partitioned link or a
//! crashed host waits (as if retransmitted) and is re-sent when the link heals or the host
//! restarts, or its connection times out after `tcp_give_up`; a packet for a dead socket is
//! answered with a reset.

mod net;

use crate::config::FaultConfig;
use crate::error::SimError;
use crate::panics;
use crate::plan::{FaultOp, FaultPlan};
use crate::trace::{Trace, TraceHash, TraceKind};
use eddy_core::{Duration, Instant, IoLoop, ListenerId, LoopConfig};
use net::{EndState, Event, Net};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

/// Names a simulated host (its index, in the order hosts were added).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub u32);

/// Anything that names a host: a [`HostId`] or the host's name.
pub trait HostRef {
    /// The host's id; panics if no such host exists.
    fn host_id(&self, sim: &Sim) -> HostId;
}

impl HostRef for HostId {
    fn host_id(&self, _: &Sim) -> HostId {
        *self
    }
}

impl HostRef for &str {
    fn host_id(&self, sim: &Sim) -> HostId {
        sim.host_id(self)
            .unwrap_or_else(|| panic!("no simulated host named {self:?}"))
    }
}

/// Counters of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Events delivered (the trace's length).
    pub events: u64,
    /// Loop steps taken (driver iterations).
    pub loop_steps: u64,
    /// Connects started.
    pub connects: u64,
    /// Connections accepted.
    pub accepts: u64,
    /// Connects refused (no listener, injected, or listener gone).
    pub refused: u64,
    /// Resets delivered to loops.
    pub resets: u64,
    /// Bytes written by all loops.
    pub bytes_written: u64,
    /// Partitions begun.
    pub partitions: u64,
    /// Host crashes.
    pub crashes: u64,
    /// Host restarts.
    pub restarts: u64,
    /// Clock jumps.
    pub clock_jumps: u64,
    /// Resets injected by the network.
    pub injected_resets: u64,
    /// Connects refused by the network although someone listened.
    pub injected_refusals: u64,
    /// Connections that failed because their packets were held too long (`tcp_give_up`).
    pub timeouts: u64,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Virtual time at the end of the run.
    pub virtual_time: Duration,
    /// The trace hash: equal for equal seeds, on every platform.
    pub trace_hash: u64,
    /// Counters.
    pub stats: SimStats,
    /// The recorded trace, if recording was on ([`Sim::record_trace`]).
    pub trace: Option<Trace>,
}

/// Why a run loop returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Done,
    Idle,
    Deadline,
}

type Setup = Rc<RefCell<dyn FnMut(usize, &mut IoLoop)>>;

/// Loop steps at one virtual instant before the run is declared a livelock.
const LIVELOCK_STEPS: u64 = 50_000_000;

struct HostMeta {
    name: String,
    ip: IpAddr,
    up: bool,
    gen: u32,
    clock_offset: Duration,
    next_port: u16,
    crashable: bool,
    loops: usize,
    config: LoopConfig,
}

struct LoopMeta {
    gen: u32,
    /// End id by stream slot index, with the stream's generation.
    streams: Vec<(u32, u32)>,
    listeners: Vec<(ListenerId, u16)>,
    ready: Vec<u32>,
    accepts: Vec<u32>,
    runnable: bool,
    stopped: bool,
    wake_at: Option<Instant>,
    panics: u64,
}

impl LoopMeta {
    fn new(gen: u32) -> LoopMeta {
        LoopMeta {
            gen,
            streams: Vec::new(),
            listeners: Vec::new(),
            ready: Vec::new(),
            accepts: Vec::new(),
            runnable: false,
            stopped: false,
            wake_at: None,
            panics: 0,
        }
    }
}

/// A deterministic simulated world; see the module docs.
///
/// ```
/// use eddy_sim::{FaultConfig, Sim};
/// use eddy_core::{Duration, IoLoop};
/// let mut sim = Sim::with_faults(7, FaultConfig::none());
/// sim.host("timer", |io: &mut IoLoop| {
///     io.call_later(Duration::from_secs(3600), |io| io.stop());
/// });
/// sim.run_until_idle().unwrap();
/// assert!(sim.is_stopped("timer"));
/// assert_eq!(sim.now().as_nanos(), 3600 * 1_000_000_000);
/// ```
pub struct Sim {
    net: Net,
    ios: Vec<Vec<IoLoop>>,
    setups: Vec<Setup>,
    loop_config: LoopConfig,
}

impl Sim {
    /// A world whose faults are drawn from the seed (swarm testing; see [`FaultConfig::swarm`]).
    pub fn new(seed: u64) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let faults = FaultConfig::swarm(&mut rng);
        Sim::build(seed, rng, faults)
    }

    /// A world with the given faults.
    pub fn with_faults(seed: u64, faults: FaultConfig) -> Sim {
        let rng = ChaCha8Rng::seed_from_u64(seed);
        Sim::build(seed, rng, faults)
    }

    fn build(seed: u64, rng: ChaCha8Rng, faults: FaultConfig) -> Sim {
        panics::install();
        // TLS built in this world draws its randomness from the seed (see eddy_core::tls).
        eddy_core::tls::seed_crypto(Some(seed ^ 0x7e15_5eed_c0de_0001));
        Sim {
            net: Net {
                seed,
                rng,
                now: Instant::ZERO,
                faults,
                fault_phase: true,
                tick_scheduled: false,
                hosts: Vec::new(),
                loops: Vec::new(),
                ip_to_host: BTreeMap::new(),
                listeners: BTreeMap::new(),
                ends: Vec::new(),
                addrs: Vec::new(),
                queue: BinaryHeap::new(),
                seq: 0,
                runnable: VecDeque::new(),
                blocked: BTreeSet::new(),
                stalled: Vec::new(),
                link_latency: BTreeMap::new(),
                plan: Vec::new(),
                hash: TraceHash::default(),
                trace: None,
                stats: SimStats::default(),
                spare: Vec::new(),
                fail_on_panic: true,
            },
            ios: Vec::new(),
            setups: Vec::new(),
            loop_config: LoopConfig::default(),
        }
    }

    // ===== building the world =====

    /// Adds a host with one loop; `setup` runs now and again on every restart.
    pub fn host(&mut self, name: &str, setup: impl Fn(&mut IoLoop) + 'static) -> HostId {
        self.host_with_loops(name, 1, move |_, io| setup(io))
    }

    /// Adds a host with `loops` loops; `setup(i, io)` builds loop `i`, now and on restarts.
    pub fn host_with_loops(
        &mut self,
        name: &str,
        loops: usize,
        setup: impl Fn(usize, &mut IoLoop) + 'static,
    ) -> HostId {
        self.add_host(
            name,
            loops,
            Rc::new(RefCell::new(move |i, io: &mut IoLoop| setup(i, io))),
            true,
        )
    }

    /// Adds a host whose one-shot `setup` runs once; a restart brings it back with an empty
    /// loop. Such hosts are not crashed by random faults.
    pub fn host_once(&mut self, name: &str, setup: impl FnOnce(&mut IoLoop) + 'static) -> HostId {
        let mut setup = Some(setup);
        let f = move |_: usize, io: &mut IoLoop| {
            if let Some(f) = setup.take() {
                f(io);
            }
        };
        self.add_host(name, 1, Rc::new(RefCell::new(f)), false)
    }

    fn add_host(&mut self, name: &str, loops: usize, setup: Setup, crashable: bool) -> HostId {
        assert!(loops > 0, "a host needs at least one loop");
        assert!(self.host_id(name).is_none(), "duplicate host name {name:?}");
        let id = self.net.hosts.len() as u32;
        let n = id + 1;
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, (n >> 8) as u8, (n & 0xff) as u8));
        self.net.hosts.push(HostMeta {
            name: name.to_string(),
            ip,
            up: true,
            gen: 0,
            clock_offset: Duration::ZERO,
            next_port: 49152,
            crashable,
            loops,
            config: self.loop_config,
        });
        self.net.ip_to_host.insert(ip, id);
        self.net.loops.push(Vec::new());
        self.ios.push(Vec::new());
        self.setups.push(setup);
        self.start_host(id);
        self.net.record(id, 0, None, TraceKind::Start, loops as u64);
        HostId(id)
    }

    fn start_host(&mut self, h: u32) {
        let meta = &self.net.hosts[h as usize];
        let (n, gen, config) = (meta.loops, meta.gen, meta.config);
        let lnow = self.net.now + meta.clock_offset;
        self.net.loops[h as usize] = (0..n).map(|_| LoopMeta::new(gen)).collect();
        self.ios[h as usize].clear();
        let setup = self.setups[h as usize].clone();
        for i in 0..n {
            let mut io = IoLoop::new(config);
            io.handle_timeout(lnow);
            (setup.borrow_mut())(i, &mut io);
            self.net.drain_actions(h, i as u32, &mut io);
            self.ios[h as usize].push(io);
            self.net.mark_runnable(h, i as u32);
        }
    }

    /// The loop configuration of hosts added from now on (and of their restarts).
    pub fn set_loop_config(&mut self, config: LoopConfig) {
        self.loop_config = config;
    }

    /// Turns recording of the full trace on (it is always hashed; recording costs memory).
    pub fn record_trace(&mut self, on: bool) {
        if on && self.net.trace.is_none() {
            self.net.trace = Some(Vec::new());
        } else if !on {
            self.net.trace = None;
        }
    }

    /// Whether a panic in a simulated callback fails the run (default: true).
    pub fn fail_on_panic(&mut self, on: bool) {
        self.net.fail_on_panic = on;
    }

    /// Lets random faults crash (and restart) this host, or not.
    pub fn set_crashable(&mut self, host: impl HostRef, crashable: bool) {
        let h = host.host_id(self);
        self.net.hosts[h.0 as usize].crashable = crashable;
    }

    /// Replaces the fault configuration (takes effect for the next decisions).
    pub fn set_faults(&mut self, faults: FaultConfig) {
        self.net.faults = faults;
    }

    /// Sets the latency range of the link between two hosts (both directions).
    pub fn set_link_latency(
        &mut self,
        a: impl HostRef,
        b: impl HostRef,
        min: Duration,
        max: Duration,
    ) {
        let (a, b) = (a.host_id(self).0, b.host_id(self).0);
        self.net.link_latency.insert((a, b), (min, max));
        self.net.link_latency.insert((b, a), (min, max));
    }

    /// Schedules a fault plan, its times counted from now.
    pub fn apply_plan(&mut self, plan: &FaultPlan) {
        for step in &plan.steps {
            let idx = self.net.plan.len() as u32;
            self.net.plan.push(step.op.clone());
            let at = self.net.now + step.at;
            self.net.push(at, Event::Plan { idx });
        }
    }

    // ===== faults, by hand =====

    /// Cuts both directions between two hosts until [`Sim::heal`].
    pub fn partition(&mut self, a: impl HostRef, b: impl HostRef) {
        let (a, b) = (a.host_id(self).0, b.host_id(self).0);
        self.net.partition(a, b, false);
    }

    /// Cuts one direction: packets from `from` no longer reach `to`.
    pub fn partition_one_way(&mut self, from: impl HostRef, to: impl HostRef) {
        let (a, b) = (from.host_id(self).0, to.host_id(self).0);
        self.net.partition(a, b, true);
    }

    /// Heals every partition; held packets are sent again.
    pub fn heal(&mut self) {
        self.net.heal_links();
    }

    /// Crashes a host: loops dropped (no callback runs), sockets dead, peers see reset or EOF.
    pub fn crash(&mut self, host: impl HostRef) {
        let h = host.host_id(self).0;
        self.crash_host(h);
    }

    /// Restarts a crashed host: fresh loops, built by its setup closure again.
    pub fn restart(&mut self, host: impl HostRef) {
        let h = host.host_id(self).0;
        self.restart_host(h);
    }

    /// Makes a host's clock jump forward (its timers fire early, relative to the world).
    pub fn jump_clock(&mut self, host: impl HostRef, by: Duration) {
        let h = host.host_id(self).0;
        self.net.jump_clock(h, by);
    }

    /// Ends the fault phase: no new random faults, partitions healed, crashed hosts restarted.
    pub fn heal_all(&mut self) {
        self.net.fault_phase = false;
        self.net.faults = self.net.faults.healed();
        let down: Vec<u32> = (0..self.net.hosts.len() as u32)
            .filter(|&h| !self.net.hosts[h as usize].up)
            .collect();
        for h in down {
            self.restart_host(h);
        }
        self.net.heal_links();
    }

    // ===== getters =====

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.net.seed
    }

    /// Virtual time.
    pub fn now(&self) -> Instant {
        self.net.now
    }

    /// The fault configuration in force.
    pub fn faults(&self) -> &FaultConfig {
        &self.net.faults
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.net.stats
    }

    /// The running trace hash.
    pub fn trace_hash(&self) -> u64 {
        self.net.hash.value()
    }

    /// The host with this name.
    pub fn host_id(&self, name: &str) -> Option<HostId> {
        self.net
            .hosts
            .iter()
            .position(|h| h.name == name)
            .map(|i| HostId(i as u32))
    }

    /// A host's simulated IP address (10.0.0.1 for the first host, and so on).
    pub fn host_ip(&self, host: impl HostRef) -> IpAddr {
        self.net.hosts[host.host_id(self).0 as usize].ip
    }

    /// The IP address the `n`-th host added (from 0) will get, known before it exists.
    pub fn ip_of_nth_host(n: u32) -> IpAddr {
        let n = n + 1;
        IpAddr::V4(Ipv4Addr::new(10, 0, (n >> 8) as u8, (n & 0xff) as u8))
    }

    /// True if the host is up (not crashed).
    pub fn is_up(&self, host: impl HostRef) -> bool {
        self.net.hosts[host.host_id(self).0 as usize].up
    }

    /// True if some loop of the host called `stop`.
    pub fn is_stopped(&self, host: impl HostRef) -> bool {
        let h = host.host_id(self).0 as usize;
        self.ios[h].iter().any(IoLoop::is_stopped)
    }

    /// Runs `f` on a host's loop (e.g. to start work from a test) and schedules the loop.
    pub fn with_loop<R>(
        &mut self,
        host: impl HostRef,
        lp: usize,
        f: impl FnOnce(&mut IoLoop) -> R,
    ) -> R {
        let h = host.host_id(self).0;
        let io = &mut self.ios[h as usize][lp];
        let r = f(io);
        self.net.drain_actions(h, lp as u32, io);
        self.net.mark_runnable(h, lp as u32);
        r
    }

    /// What the run produced so far.
    pub fn report(&self) -> RunReport {
        RunReport {
            seed: self.net.seed,
            virtual_time: self.net.now - Instant::ZERO,
            trace_hash: self.net.hash.value(),
            stats: self.net.stats,
            trace: self.net.trace.as_ref().map(|events| Trace {
                hosts: self.net.hosts.iter().map(|h| h.name.clone()).collect(),
                events: events.clone(),
            }),
        }
    }

    // ===== running =====

    /// Runs until virtual time `deadline` (or until nothing is left to do, then jumps there).
    pub fn run_until(&mut self, deadline: Instant) -> Result<(), SimError> {
        self.run_loop(deadline, &mut |_| false)?;
        self.net.now = self.net.now.max(deadline);
        Ok(())
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) -> Result<(), SimError> {
        let deadline = self.net.now + d;
        self.run_until(deadline)
    }

    /// Runs until no event is queued and no loop is runnable (a periodic timer never idles).
    pub fn run_until_idle(&mut self) -> Result<(), SimError> {
        self.run_loop(Instant::MAX, &mut |_| false).map(|_| ())
    }

    /// Runs until `done` holds; a quiet world first is a [`SimError::Hang`], `limit` of
    /// virtual time passing first is a [`SimError::Deadline`].
    pub fn run_until_done(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<(), SimError> {
        let deadline = self.net.now + limit;
        self.finish_by(deadline, "run", &mut done)
    }

    /// Runs until `done` holds: a quiet world first is a hang, `deadline` first a
    /// [`SimError::Deadline`] of `phase`.
    fn finish_by(
        &mut self,
        deadline: Instant,
        phase: &'static str,
        done: &mut impl FnMut(&Sim) -> bool,
    ) -> Result<(), SimError> {
        match self.run_loop(deadline, done)? {
            Exit::Done => Ok(()),
            Exit::Idle => Err(self.hang()),
            Exit::Deadline => Err(SimError::Deadline {
                seed: self.net.seed,
                deadline,
                phase,
            }),
        }
    }

    /// Safety then liveness: runs with faults for `fault_phase` (or until `done`), then heals
    /// everything ([`Sim::heal_all`]) and requires `done` within `liveness_limit`.
    pub fn run_faults_then_heal(
        &mut self,
        fault_phase: Duration,
        liveness_limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<(), SimError> {
        let deadline = self.net.now + fault_phase;
        if self.run_loop(deadline, &mut done)? == Exit::Done {
            return Ok(());
        }
        self.net.now = self.net.now.max(deadline);
        self.heal_all();
        let deadline = self.net.now + liveness_limit;
        self.finish_by(deadline, "liveness after heal", &mut done)
    }

    fn hang(&self) -> SimError {
        let open = self
            .net
            .ends
            .iter()
            .filter(|e| e.state == EndState::Open && e.stream.is_some())
            .count();
        let running: Vec<&str> = (0..self.ios.len())
            .filter(|&h| self.ios[h].iter().any(|io| !io.is_stopped()))
            .map(|h| self.net.hosts[h].name.as_str())
            .collect();
        SimError::Hang {
            seed: self.net.seed,
            at: self.net.now,
            detail: format!(
                "{open} open socket ends, {} packets held by partitions or down hosts, loops not stopped on: {}",
                self.net.stalled.len(),
                running.join(", ")
            ),
        }
    }

    fn run_loop(
        &mut self,
        deadline: Instant,
        done: &mut dyn FnMut(&Sim) -> bool,
    ) -> Result<Exit, SimError> {
        if self.net.fault_phase && !self.net.tick_scheduled && self.net.faults.has_world_faults() {
            self.net.tick_scheduled = true;
            let at = self.net.next_tick();
            self.net.push(at, Event::FaultTick);
        }
        let mut steps_now = 0u64;
        // `done` can only change when a loop ran, so it is checked after steps, not per event.
        let mut stepped = true;
        loop {
            let n = self.net.runnable.len();
            if n > 0 {
                for _ in 0..n {
                    let (h, lp, gen) = self.net.runnable.pop_front().expect("counted");
                    let live = self.net.loops[h as usize]
                        .get(lp as usize)
                        .is_some_and(|m| m.gen == gen && m.runnable);
                    if live {
                        self.step(h, lp)?;
                    }
                }
                stepped = true;
                steps_now += n as u64;
                if steps_now > LIVELOCK_STEPS {
                    return Err(SimError::Livelock {
                        seed: self.net.seed,
                        at: self.net.now,
                        steps: steps_now,
                    });
                }
                self.apply_due()?;
                continue;
            }
            if stepped {
                stepped = false;
                if done(self) {
                    return Ok(Exit::Done);
                }
            }
            // A stale wake-up is dropped without moving the clock; a world whose only event
            // is the fault process's next tick has nothing left to do.
            while self.net.queue.peek().is_some_and(|q| self.net.is_stale(q)) {
                self.net.queue.pop();
            }
            let background = usize::from(self.net.tick_scheduled);
            if self.net.queue.len() <= background {
                return Ok(if done(self) { Exit::Done } else { Exit::Idle });
            }
            let next = self.net.queue.peek().expect("not empty").time();
            if next > deadline {
                self.net.now = self.net.now.max(deadline);
                return Ok(if done(self) {
                    Exit::Done
                } else {
                    Exit::Deadline
                });
            }
            if next > self.net.now {
                self.net.now = next;
                steps_now = 0;
            }
            self.apply_due()?;
        }
    }

    /// Applies every event due now.
    fn apply_due(&mut self) -> Result<(), SimError> {
        while self
            .net
            .queue
            .peek()
            .is_some_and(|q| q.time() <= self.net.now)
        {
            let q = self.net.queue.pop().expect("peeked");
            self.apply(q.ev);
        }
        Ok(())
    }

    #[inline]
    fn apply(&mut self, ev: Event) {
        match ev {
            Event::Plan { .. } | Event::FaultTick | Event::Restart { .. } => self.apply_world(ev),
            other => self.net.apply(other),
        }
    }

    /// Events that act on loops as well as the network (plan steps, random faults, restarts).
    #[cold]
    #[inline(never)]
    fn apply_world(&mut self, ev: Event) {
        match ev {
            Event::Plan { idx } => {
                let op = self.net.plan[idx as usize].clone();
                self.apply_op(op);
            }
            Event::FaultTick => self.fault_tick(),
            Event::Restart { host } => self.restart_host(host),
            other => self.net.apply(other),
        }
    }

    fn apply_op(&mut self, op: FaultOp) {
        let n = self.net.hosts.len() as u32;
        match op {
            FaultOp::Partition(a, b) if a.0 < n && b.0 < n => self.net.partition(a.0, b.0, false),
            FaultOp::PartitionOneWay(a, b) if a.0 < n && b.0 < n => {
                self.net.partition(a.0, b.0, true)
            }
            FaultOp::Heal => self.net.heal_links(),
            FaultOp::Crash(h) if h.0 < n => self.crash_host(h.0),
            FaultOp::Restart(h) if h.0 < n => self.restart_host(h.0),
            FaultOp::ClockJump(h, by) if h.0 < n => self.net.jump_clock(h.0, by),
            FaultOp::ResetConnections(h) if h.0 < n => self.net.reset_host_connections(h.0),
            _ => {}
        }
    }

    fn fault_tick(&mut self) {
        if !self.net.fault_phase {
            self.net.tick_scheduled = false;
            return;
        }
        let hosts = self.net.hosts.len() as u32;
        if hosts >= 2 && self.net.chance(self.net.faults.p_partition) {
            let a = self.net.rng.gen_range(0..hosts);
            let b = (a + self.net.rng.gen_range(1..hosts)) % hosts;
            let one_way = self.net.rng.gen_bool(0.5);
            self.net.partition(a, b, one_way);
            let max = self.net.faults.partition_max.as_nanos().max(1) as u64;
            let at = self.net.now + Duration::from_nanos(self.net.rng.gen_range(1..=max));
            self.net.push(at, Event::HealLink { a, b });
        }
        if self.net.chance(self.net.faults.p_crash) {
            let candidates: Vec<u32> = (0..hosts)
                .filter(|&h| self.net.hosts[h as usize].up && self.net.hosts[h as usize].crashable)
                .collect();
            if !candidates.is_empty() {
                let h = candidates[self.net.rng.gen_range(0..candidates.len())];
                self.crash_host(h);
                let max = self.net.faults.restart_delay_max.as_nanos() as u64;
                let at = self.net.now + Duration::from_nanos(self.net.rng.gen_range(0..=max));
                self.net.push(at, Event::Restart { host: h });
            }
        }
        if hosts > 0 && self.net.chance(self.net.faults.p_clock_jump) {
            let h = self.net.rng.gen_range(0..hosts);
            let max = self.net.faults.clock_jump_max.as_nanos() as u64;
            let by = Duration::from_nanos(self.net.rng.gen_range(0..=max));
            self.net.jump_clock(h, by);
        }
        let at = self.net.next_tick();
        self.net.push(at, Event::FaultTick);
    }

    fn crash_host(&mut self, h: u32) {
        if !self.net.hosts[h as usize].up {
            return;
        }
        self.net.crash(h);
        // Dropping the loops drops every callback without running it: a crash, not a stop.
        self.ios[h as usize].clear();
    }

    fn restart_host(&mut self, h: u32) {
        if self.net.hosts[h as usize].up {
            return;
        }
        self.net.hosts[h as usize].up = true;
        self.net.stats.restarts += 1;
        self.net.record(h, 0, None, TraceKind::Restart, 0);
        self.start_host(h);
        self.net.release_stalled();
    }

    /// One driver iteration of one loop.
    fn step(&mut self, h: u32, lp: u32) -> Result<(), SimError> {
        let io = &mut self.ios[h as usize][lp as usize];
        self.net.step(h, lp, io)
    }
}

thread_local! {
    static LAST_TRACE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

impl Drop for Sim {
    /// Leaves a recorded trace behind for [`take_last_trace`], so a failed run can be exported.
    fn drop(&mut self) {
        if self.net.trace.is_some() {
            let trace = self.report().trace;
            LAST_TRACE.with(|t| *t.borrow_mut() = trace);
        }
    }
}

/// The recorded trace of the last world dropped on this thread (with recording on), if any.
pub fn take_last_trace() -> Option<Trace> {
    LAST_TRACE.with(|t| t.borrow_mut().take())
}

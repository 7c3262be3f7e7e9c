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

use crate::config::FaultConfig;
use crate::error::SimError;
use crate::panics;
use crate::plan::{FaultOp, FaultPlan};
use crate::recv_buf::RecvBuf;
use crate::trace::{Trace, TraceEvent, TraceHash, TraceKind};
use eddy_core::{
    CloseReason, Duration, Instant, Interest, IoAction, IoLoop, ListenerId, LoopConfig, StreamId,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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

const NO_END: u32 = u32::MAX;
/// Packet size under a bandwidth limit (Ethernet's TCP maximum segment size).
const MSS: usize = 1460;
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

struct ListenEntry {
    lp: u32,
    gen: u32,
    id: ListenerId,
    reuse: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EndState {
    Connecting,
    Open,
    Dead,
}

/// One end of a simulated TCP connection; ends `2k` (client) and `2k+1` (server) pair up.
struct End {
    host: u32,
    lp: u32,
    gen: u32,
    stream: Option<StreamId>,
    listener: Option<ListenerId>,
    state: EndState,
    interest: Interest,
    /// Bytes the peer wrote to this end: the first `arrived` have arrived, the rest are in flight.
    rx: RecvBuf,
    arrived: usize,
    cap: usize,
    fin_arrived: bool,
    eof_delivered: bool,
    fin_sent: bool,
    rst_sent: bool,
    /// Latest arrival time scheduled into `rx` (arrivals are FIFO per direction).
    last_arrival: Instant,
    /// When the direction into `rx` finishes transmitting (bandwidth limit).
    busy_until: Instant,
    queued: bool,
    notify_pending: bool,
    pending_connect: Option<bool>,
    pending_error: Option<io::ErrorKind>,
    /// Packets for this end held by a partition or a down host.
    held: u32,
}

impl End {
    fn new(host: u32, cap: usize) -> End {
        End {
            host,
            lp: 0,
            gen: 0,
            stream: None,
            listener: None,
            state: EndState::Connecting,
            interest: Interest::default(),
            rx: RecvBuf::default(),
            arrived: 0,
            cap,
            fin_arrived: false,
            eof_delivered: false,
            fin_sent: false,
            rst_sent: false,
            last_arrival: Instant::ZERO,
            busy_until: Instant::ZERO,
            queued: false,
            notify_pending: false,
            pending_connect: None,
            pending_error: None,
            held: 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Arrive { end: u32, len: u32 },
    Fin { end: u32 },
    Rst { end: u32 },
    Syn { end: u32 },
    SynAck { end: u32, ok: bool },
    Accept { end: u32 },
    Notify { end: u32 },
    Wake { host: u32, lp: u32, gen: u32 },
    Plan { idx: u32 },
    FaultTick,
    HealLink { a: u32, b: u32 },
    Restart { host: u32 },
    GiveUp { end: u32 },
}

/// The end a packet is for (`None` for events that are not packets).
fn packet_end(ev: &Event) -> Option<u32> {
    match *ev {
        Event::Arrive { end, .. }
        | Event::Fin { end }
        | Event::Rst { end }
        | Event::Syn { end }
        | Event::SynAck { end, .. } => Some(end),
        _ => None,
    }
}

/// A scheduled event, keyed by `(time, push sequence)` packed into one integer.
struct Queued {
    key: u128,
    ev: Event,
}

impl Queued {
    fn new(time: Instant, seq: u64, ev: Event) -> Queued {
        let key = (u128::from(time.as_nanos()) << 64) | u128::from(seq);
        Queued { key, ev }
    }

    fn time(&self) -> Instant {
        Instant::from_nanos((self.key >> 64) as u64)
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
    // The heap compares with `<=`; one integer comparison, no `Ordering` round trip.
    fn le(&self, other: &Self) -> bool {
        other.key <= self.key
    }
    fn lt(&self, other: &Self) -> bool {
        other.key < self.key
    }
}
impl Ord for Queued {
    /// Reversed, so the `BinaryHeap` pops the earliest (time, seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

/// Everything but the loops themselves, so a loop can be stepped while the network is mutated.
struct Net {
    seed: u64,
    rng: ChaCha8Rng,
    now: Instant,
    faults: FaultConfig,
    fault_phase: bool,
    tick_scheduled: bool,
    hosts: Vec<HostMeta>,
    loops: Vec<Vec<LoopMeta>>,
    ip_to_host: BTreeMap<IpAddr, u32>,
    listeners: BTreeMap<(u32, u16), Vec<ListenEntry>>,
    ends: Vec<End>,
    /// Each end's local address, by end id (apart from `End`: only handshakes read it).
    addrs: Vec<SocketAddr>,
    queue: BinaryHeap<Queued>,
    seq: u64,
    runnable: VecDeque<(u32, u32, u32)>,
    blocked: BTreeSet<(u32, u32)>,
    stalled: Vec<(Event, Instant)>,
    link_latency: BTreeMap<(u32, u32), (Duration, Duration)>,
    plan: Vec<FaultOp>,
    hash: TraceHash,
    trace: Option<Vec<TraceEvent>>,
    stats: SimStats,
    spare: Vec<u32>,
    fail_on_panic: bool,
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

impl Net {
    // ===== small helpers =====

    #[inline]
    fn push(&mut self, time: Instant, ev: Event) {
        self.seq += 1;
        self.queue.push(Queued::new(time, self.seq, ev));
    }

    /// A biased coin that consumes no randomness when `p` is zero (calm worlds stay cheap).
    #[inline(always)]
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.toss(p)
    }

    /// The coin of [`Net::chance`] for a non-zero `p`, out of line so the many call sites on
    /// the I/O path stay small.
    #[inline(never)]
    fn toss(&mut self, p: f64) -> bool {
        self.rng.gen::<f64>() < p
    }

    fn upto(&mut self, max: Duration) -> Duration {
        let max = max.as_nanos() as u64;
        if max == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.gen_range(0..=max))
        }
    }

    fn next_tick(&mut self) -> Instant {
        let mean = self.faults.fault_tick_mean.as_nanos().max(1) as f64;
        let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        let wait = (-u.ln() * mean).min(1e15) as u64;
        self.now + Duration::from_nanos(wait.max(1))
    }

    /// Hashes (and, when recording, keeps) one delivered event; one shared copy for every
    /// call site.
    #[inline(never)]
    fn record(&mut self, host: u32, lp: u32, stream: Option<StreamId>, kind: TraceKind, n: u64) {
        let ev = TraceEvent {
            time: self.now,
            host,
            lp,
            stream,
            kind,
            n,
        };
        self.hash.event(&ev);
        self.stats.events += 1;
        if let Some(t) = &mut self.trace {
            t.push(ev);
        }
    }

    fn latency(&mut self, from: u32, to: u32) -> Duration {
        Duration::from_nanos(self.latency_ns(from, to))
    }

    /// A packet's travel time from host `from` to host `to`, in nanoseconds (the unit the
    /// per-packet arithmetic uses, so the hot path converts no `Duration`s).
    fn latency_ns(&mut self, from: u32, to: u32) -> u64 {
        if from == to {
            return 0;
        }
        let (min, max) = if self.link_latency.is_empty() {
            (self.faults.latency_min, self.faults.latency_max)
        } else {
            self.link_latency
                .get(&(from, to))
                .copied()
                .unwrap_or((self.faults.latency_min, self.faults.latency_max))
        };
        let (min, max) = (min.as_nanos() as u64, max.as_nanos() as u64);
        let mut d = if max > min {
            self.rng.gen_range(min..=max)
        } else {
            min
        };
        if self.chance(self.faults.p_slow) {
            d += self.upto(self.faults.slow_latency_max).as_nanos() as u64;
        }
        d
    }

    /// When `len` bytes (or a FIN, `len` 0) sent now reach end `to`: bandwidth, latency, FIFO.
    fn arrival(&mut self, to: u32, len: usize) -> Instant {
        let from_host = self.ends[(to ^ 1) as usize].host;
        let to_host = self.ends[to as usize].host;
        let mut t = self.now;
        if let Some(bw) = self.faults.bandwidth_bytes_per_sec {
            let e = &mut self.ends[to as usize];
            let start = e.busy_until.max(self.now);
            let tx_ns = (len as u128 * 1_000_000_000 / u128::from(bw.max(1))) as u64;
            e.busy_until = start + Duration::from_nanos(tx_ns);
            t = e.busy_until;
        }
        t = Instant::from_nanos(
            t.as_nanos()
                .saturating_add(self.latency_ns(from_host, to_host)),
        );
        let e = &mut self.ends[to as usize];
        t = t.max(e.last_arrival);
        e.last_arrival = t;
        t
    }

    fn buffer_cap(&mut self) -> usize {
        let (min, max) = (
            self.faults.socket_buffer_min.max(1),
            self.faults.socket_buffer_max,
        );
        if max > min {
            self.rng.gen_range(min..=max)
        } else {
            min
        }
    }

    fn alloc_port(&mut self, h: u32) -> u16 {
        let meta = &mut self.hosts[h as usize];
        let port = meta.next_port;
        meta.next_port = if port == u16::MAX { 49152 } else { port + 1 };
        port
    }

    fn mark_runnable(&mut self, h: u32, lp: u32) {
        if let Some(m) = self.loops[h as usize].get_mut(lp as usize) {
            if !m.runnable && !m.stopped {
                m.runnable = true;
                self.runnable.push_back((h, lp, m.gen));
            }
        }
    }

    fn end_of(&self, h: u32, lp: u32, stream: StreamId) -> Option<u32> {
        let m = &self.loops[h as usize][lp as usize];
        match m.streams.get(stream.index() as usize) {
            Some(&(gen, end)) if end != NO_END && gen == stream.generation() => Some(end),
            _ => None,
        }
    }

    fn map_stream(&mut self, h: u32, lp: u32, stream: StreamId, end: u32) {
        let m = &mut self.loops[h as usize][lp as usize];
        let i = stream.index() as usize;
        if m.streams.len() <= i {
            m.streams.resize(i + 1, (0, NO_END));
        }
        m.streams[i] = (stream.generation(), end);
    }

    fn unmap_stream(&mut self, h: u32, lp: u32, stream: StreamId) {
        let m = &mut self.loops[h as usize][lp as usize];
        if let Some(slot) = m.streams.get_mut(stream.index() as usize) {
            *slot = (0, NO_END);
        }
    }

    fn window(&self, id: u32) -> usize {
        let p = &self.ends[(id ^ 1) as usize];
        p.cap.saturating_sub(p.rx.len())
    }

    #[inline(always)]
    fn wants_service(&self, id: u32) -> bool {
        let e = &self.ends[id as usize];
        if e.stream.is_none() {
            return false;
        }
        if e.pending_connect.is_some() || e.pending_error.is_some() {
            return true;
        }
        if e.state != EndState::Open {
            return false;
        }
        let readable = e.interest.readable
            && !e.notify_pending
            && (e.arrived > 0 || (e.fin_arrived && e.rx.is_empty() && !e.eof_delivered));
        readable || (e.interest.writable && self.window(id) > 0)
    }

    /// Drops an end's unread data and fails its stream with `kind` (an end with no stream yet
    /// just dies).
    #[cold]
    #[inline(never)]
    fn fail_end(&mut self, x: u32, kind: io::ErrorKind) {
        let e = &mut self.ends[x as usize];
        if e.state == EndState::Dead {
            return;
        }
        e.rx.clear();
        e.arrived = 0;
        if e.stream.is_some() {
            e.pending_error = Some(kind);
            self.poke(x);
        } else {
            e.state = EndState::Dead;
        }
    }

    /// Puts an end on its loop's ready list if it has something to do.
    fn poke(&mut self, id: u32) {
        if !self.ends[id as usize].queued && self.wants_service(id) {
            self.enqueue(id);
        }
    }

    /// Ends of a crashed loop are all dead (see `crash`), so only live loops get work.
    #[inline(never)]
    fn enqueue(&mut self, id: u32) {
        let e = &mut self.ends[id as usize];
        e.queued = true;
        let (h, lp) = (e.host, e.lp);
        debug_assert!(self.loops[h as usize]
            .get(lp as usize)
            .is_some_and(|m| m.gen == e.gen));
        self.loops[h as usize][lp as usize].ready.push(id);
        self.mark_runnable(h, lp);
    }

    /// True for a wake-up that a later step superseded (it would do nothing).
    fn is_stale(&self, q: &Queued) -> bool {
        match q.ev {
            Event::Wake { host, lp, gen } => !self.loops[host as usize]
                .get(lp as usize)
                .is_some_and(|m| m.gen == gen && m.wake_at == Some(q.time())),
            _ => false,
        }
    }

    fn link(&self, ev: &Event) -> Option<(u32, u32)> {
        let end = match *ev {
            Event::Arrive { end, .. }
            | Event::Fin { end }
            | Event::Rst { end }
            | Event::Syn { end }
            | Event::SynAck { end, .. } => end,
            _ => return None,
        };
        Some((
            self.ends[(end ^ 1) as usize].host,
            self.ends[end as usize].host,
        ))
    }

    fn link_open(&self, from: u32, to: u32) -> bool {
        self.hosts[to as usize].up
            && (self.blocked.is_empty() || !self.blocked.contains(&(from, to)))
    }

    // ===== faults =====

    fn partition(&mut self, a: u32, b: u32, one_way: bool) {
        if a == b {
            return;
        }
        self.blocked.insert((a, b));
        if !one_way {
            self.blocked.insert((b, a));
        }
        self.stats.partitions += 1;
        let kind = if one_way {
            TraceKind::PartitionOneWay
        } else {
            TraceKind::Partition
        };
        self.record(a, 0, None, kind, u64::from(b));
    }

    fn heal_links(&mut self) {
        if !self.blocked.is_empty() {
            self.blocked.clear();
            self.record(0, 0, None, TraceKind::Heal, 0);
        }
        self.release_stalled();
    }

    /// Sends again every held packet whose link is open now, keeping per-direction order.
    fn release_stalled(&mut self) {
        let stalled = std::mem::take(&mut self.stalled);
        for (ev, held_at) in stalled {
            let (from, to) = self.link(&ev).expect("only packets stall");
            if !self.link_open(from, to) {
                self.stalled.push((ev, held_at));
                continue;
            }
            let end = packet_end(&ev).expect("a packet");
            self.ends[end as usize].held -= 1;
            let mut t = self.now + self.latency(from, to);
            if let Event::Arrive { end, .. } | Event::Fin { end } = ev {
                let e = &mut self.ends[end as usize];
                t = t.max(e.last_arrival);
                e.last_arrival = t;
            }
            self.push(t, ev);
        }
    }

    /// Holds a packet whose link is cut (as if retransmitted); after `tcp_give_up` of
    /// holding, the connection fails with a timeout, as TCP's retransmission limit makes it.
    #[cold]
    #[inline(never)]
    fn hold(&mut self, ev: Event) {
        let end = packet_end(&ev).expect("only packets are held");
        self.stalled.push((ev, self.now));
        let e = &mut self.ends[end as usize];
        e.held += 1;
        if e.held == 1 {
            let at = self.now + self.faults.tcp_give_up;
            self.push(at, Event::GiveUp { end });
        }
    }

    fn give_up(&mut self, end: u32) {
        if self.ends[end as usize].held == 0 {
            return;
        }
        let oldest = self
            .stalled
            .iter()
            .filter(|(ev, _)| packet_end(ev) == Some(end))
            .map(|&(_, t)| t)
            .min()
            .expect("held packets are in the list");
        let due = oldest + self.faults.tcp_give_up;
        if due > self.now {
            self.push(due, Event::GiveUp { end });
            return;
        }
        let conn = end & !1;
        self.stalled
            .retain(|(ev, _)| packet_end(ev).map(|e| e & !1) != Some(conn));
        for x in [conn, conn | 1] {
            self.ends[x as usize].held = 0;
            self.fail_end(x, io::ErrorKind::TimedOut);
        }
    }

    fn jump_clock(&mut self, h: u32, by: Duration) {
        self.hosts[h as usize].clock_offset += by;
        self.stats.clock_jumps += 1;
        self.record(h, 0, None, TraceKind::ClockJump, by.as_nanos() as u64);
        for lp in 0..self.loops[h as usize].len() as u32 {
            self.mark_runnable(h, lp);
        }
    }

    #[cold]
    #[inline(never)]
    fn inject_reset(&mut self, id: u32) {
        let e = &self.ends[id as usize];
        let (h, lp, stream) = (e.host, e.lp, e.stream);
        self.stats.injected_resets += 1;
        self.record(h, lp, stream, TraceKind::InjectReset, 0);
        for end in [id, id ^ 1] {
            let (from, to) = (
                self.ends[(end ^ 1) as usize].host,
                self.ends[end as usize].host,
            );
            let at = self.now + self.latency(from, to);
            self.push(at, Event::Rst { end });
        }
    }

    fn reset_host_connections(&mut self, h: u32) {
        let ids: Vec<u32> = (0..self.ends.len() as u32)
            .filter(|&i| {
                let e = &self.ends[i as usize];
                e.host == h && e.state == EndState::Open && e.stream.is_some()
            })
            .collect();
        for id in ids {
            self.inject_reset(id);
        }
    }

    #[cold]
    #[inline(never)]
    fn send_rst(&mut self, to: u32) {
        let from = to ^ 1;
        if self.ends[from as usize].rst_sent {
            return;
        }
        self.ends[from as usize].rst_sent = true;
        let (fh, th) = (self.ends[from as usize].host, self.ends[to as usize].host);
        let at = self.now + self.latency(fh, th);
        self.push(at, Event::Rst { end: to });
    }

    fn send_fin(&mut self, from: u32) {
        if self.ends[from as usize].fin_sent {
            return;
        }
        self.ends[from as usize].fin_sent = true;
        let at = self.arrival(from ^ 1, 0);
        self.push(at, Event::Fin { end: from ^ 1 });
    }

    /// Kills an end as its socket goes away: the peer gets a reset if unread data is lost
    /// (or `reset` is asked), else end of file.
    fn kill_end(&mut self, id: u32, reset: bool) {
        let e = &mut self.ends[id as usize];
        let was = e.state;
        e.state = EndState::Dead;
        let unread = !e.rx.is_empty();
        // Free the buffer: dead ends stay in the table (ids are never reused) but hold no data.
        e.rx.release();
        e.arrived = 0;
        e.pending_connect = None;
        e.pending_error = None;
        if was == EndState::Open {
            if reset || unread {
                self.send_rst(id ^ 1);
            } else {
                self.send_fin(id);
            }
        }
    }

    fn crash(&mut self, h: u32) {
        let meta = &mut self.hosts[h as usize];
        meta.up = false;
        meta.gen += 1;
        self.stats.crashes += 1;
        self.record(h, 0, None, TraceKind::Crash, 0);
        for id in 0..self.ends.len() as u32 {
            let e = &self.ends[id as usize];
            let owned = e.host == h && (e.stream.is_some() || e.state == EndState::Open);
            if owned && e.state != EndState::Dead {
                self.kill_end(id, false);
            }
        }
        self.listeners.retain(|&(host, _), _| host != h);
        self.loops[h as usize].clear();
    }

    // ===== events =====

    /// Applies one network event. Data arrival, nearly every event of a busy world, is kept
    /// apart from the rest so the hot path stays small enough for the instruction cache.
    #[inline]
    fn apply(&mut self, ev: Event) {
        if let Event::Arrive { end, len } = ev {
            let (from, to) = (
                self.ends[(end ^ 1) as usize].host,
                self.ends[end as usize].host,
            );
            if self.link_open(from, to) {
                self.on_arrive(end, len as usize);
            } else {
                self.hold(ev);
            }
            return;
        }
        self.apply_control(ev);
    }

    /// Every event but data arrival: handshakes, FIN, RST, wake-ups, heals, give-ups.
    #[inline(never)]
    fn apply_control(&mut self, ev: Event) {
        if let Some((from, to)) = self.link(&ev) {
            if !self.link_open(from, to) {
                self.hold(ev);
                return;
            }
        }
        match ev {
            Event::Arrive { end, len } => self.on_arrive(end, len as usize),
            Event::Fin { end } => {
                let e = &mut self.ends[end as usize];
                if e.state != EndState::Dead {
                    e.fin_arrived = true;
                    self.poke(end);
                }
            }
            Event::Rst { end } => self.fail_end(end, io::ErrorKind::ConnectionReset),
            Event::Syn { end } => self.on_syn(end),
            Event::SynAck { end, ok } => {
                if self.ends[end as usize].state == EndState::Dead {
                    if ok {
                        self.send_rst(end ^ 1);
                    }
                    return;
                }
                self.ends[end as usize].pending_connect = Some(ok);
                self.poke(end);
            }
            Event::Accept { end } => {
                let e = &self.ends[end as usize];
                let (h, lp, gen) = (e.host, e.lp, e.gen);
                let live = self.loops[h as usize]
                    .get(lp as usize)
                    .is_some_and(|m| m.gen == gen);
                if e.state != EndState::Dead && live {
                    self.loops[h as usize][lp as usize].accepts.push(end);
                    self.mark_runnable(h, lp);
                }
            }
            Event::Notify { end } => {
                self.ends[end as usize].notify_pending = false;
                self.poke(end);
            }
            Event::Wake { host, lp, gen } => {
                let now = self.now;
                if let Some(m) = self.loops[host as usize].get_mut(lp as usize) {
                    if m.gen == gen && m.wake_at == Some(now) {
                        m.wake_at = None;
                        self.mark_runnable(host, lp);
                    }
                }
            }
            Event::HealLink { a, b } => {
                let removed = self.blocked.remove(&(a, b)) | self.blocked.remove(&(b, a));
                if removed {
                    self.record(a, 0, None, TraceKind::Heal, u64::from(b));
                    self.release_stalled();
                }
            }
            Event::GiveUp { end } => self.give_up(end),
            Event::Plan { .. } | Event::FaultTick | Event::Restart { .. } => {
                unreachable!("world events are applied by Sim")
            }
        }
    }

    #[inline]
    fn on_arrive(&mut self, end: u32, len: usize) {
        let e = &mut self.ends[end as usize];
        if e.state == EndState::Dead {
            self.arrive_at_dead_end(end, len);
            return;
        }
        e.arrived += len;
        debug_assert!(e.arrived <= e.rx.len(), "arrived bytes were written");
        if e.notify_pending {
            return;
        }
        if self.chance(self.faults.p_coalesce) {
            self.delay_notify(end);
        } else {
            self.poke(end);
        }
    }

    /// Data for a socket that is gone: dropped, and the sender is reset.
    #[cold]
    #[inline(never)]
    fn arrive_at_dead_end(&mut self, end: u32, len: usize) {
        let e = &mut self.ends[end as usize];
        let k = len.min(e.rx.len());
        e.rx.consume(k);
        self.send_rst(end ^ 1);
    }

    /// Coalescing: the reader hears of this data (and whatever follows) only after a delay.
    #[inline(never)]
    fn delay_notify(&mut self, end: u32) {
        self.ends[end as usize].notify_pending = true;
        let at = self.now + self.upto(self.faults.coalesce_delay_max);
        self.push(at, Event::Notify { end });
    }

    fn on_syn(&mut self, end: u32) {
        let h = self.ends[end as usize].host;
        let port = self.addrs[end as usize].port();
        let count = self.listeners.get(&(h, port)).map_or(0, Vec::len);
        let client_host = self.ends[(end ^ 1) as usize].host;
        let refuse_injected = count > 0 && self.chance(self.faults.p_refuse);
        if count == 0 || refuse_injected {
            if refuse_injected {
                self.stats.injected_refusals += 1;
                self.record(h, 0, None, TraceKind::InjectRefuse, u64::from(port));
            }
            self.ends[end as usize].state = EndState::Dead;
            let at = self.now + self.latency(h, client_host);
            self.push(
                at,
                Event::SynAck {
                    end: end ^ 1,
                    ok: false,
                },
            );
            return;
        }
        let pick = if count > 1 {
            self.rng.gen_range(0..count)
        } else {
            0
        };
        let l = &self.listeners[&(h, port)][pick];
        let (lp, gen, id) = (l.lp, l.gen, l.id);
        let e = &mut self.ends[end as usize];
        e.lp = lp;
        e.gen = gen;
        e.listener = Some(id);
        e.state = EndState::Open;
        let at = self.now + self.latency(h, client_host);
        self.push(
            at,
            Event::SynAck {
                end: end ^ 1,
                ok: true,
            },
        );
        if self.chance(self.faults.p_accept_delay) {
            let at = self.now + self.upto(self.faults.accept_delay_max);
            self.push(at, Event::Accept { end });
        } else {
            self.loops[h as usize][lp as usize].accepts.push(end);
            self.mark_runnable(h, lp);
        }
    }

    // ===== the driver iteration =====

    fn step(&mut self, h: u32, lp: u32, io: &mut IoLoop) -> Result<(), SimError> {
        self.stats.loop_steps += 1;
        // `runnable` stays set while the step runs, so work found during the step (pokes of
        // this loop's own ends) is done in it instead of queueing another, empty, step.
        let offset = self.hosts[h as usize].clock_offset;
        // No drain first: every step ends drained, and code that runs a loop outside a step
        // (setup, `with_loop`) drains it right after.
        if !self.loops[h as usize][lp as usize].accepts.is_empty() {
            let accepts = std::mem::take(&mut self.loops[h as usize][lp as usize].accepts);
            for end in accepts {
                self.accept(end, io);
            }
        }
        self.service_ready(h, lp, io);
        // Actions queued by these inputs are drained after the round: interest is computed
        // when polled, so one `Interest` per stream covers both.
        io.handle_timeout(self.now + offset);
        self.drain_actions(h, lp, io);
        // Write what the callbacks queued right away, as a real driver's write() tries to.
        if !self.loops[h as usize][lp as usize].ready.is_empty() {
            self.service_ready(h, lp, io);
            self.drain_actions(h, lp, io);
        }

        let panics = io.stats().callback_panics;
        let m = &mut self.loops[h as usize][lp as usize];
        m.runnable = false;
        if panics > m.panics {
            m.panics = panics;
            if self.fail_on_panic {
                return Err(SimError::Panic {
                    seed: self.seed,
                    host: self.hosts[h as usize].name.clone(),
                    at: self.now,
                    message: panics::take().unwrap_or_else(|| "unknown panic".into()),
                });
            }
        }
        if io.is_stopped() {
            m.stopped = true;
            self.record(h, lp, None, TraceKind::Stop, 0);
            return Ok(());
        }
        if io.has_pending_callbacks() || !m.ready.is_empty() || !m.accepts.is_empty() {
            self.mark_runnable(h, lp);
        } else if let Some(t) = io.poll_timeout() {
            let global = Instant::from_nanos(t.as_nanos().saturating_sub(offset.as_nanos() as u64))
                .max(self.now);
            let m = &mut self.loops[h as usize][lp as usize];
            if global <= self.now {
                self.mark_runnable(h, lp);
            } else if m.wake_at.map_or(true, |w| global < w || w < self.now) {
                m.wake_at = Some(global);
                let gen = m.gen;
                self.push(global, Event::Wake { host: h, lp, gen });
            }
        }
        Ok(())
    }

    /// Services every end on the loop's ready list (ends poked meanwhile wait for the next pass).
    fn service_ready(&mut self, h: u32, lp: u32, io: &mut IoLoop) {
        let spare = std::mem::take(&mut self.spare);
        let mut ready = std::mem::replace(&mut self.loops[h as usize][lp as usize].ready, spare);
        for &id in &ready {
            self.ends[id as usize].queued = false;
            self.service(id, io);
        }
        ready.clear();
        self.spare = ready;
    }

    fn accept(&mut self, end: u32, io: &mut IoLoop) {
        let e = &self.ends[end as usize];
        if e.state == EndState::Dead {
            return;
        }
        let (h, lp) = (e.host, e.lp);
        let listener = e.listener.expect("accepted ends come from a listener");
        let peer = self.addrs[(end ^ 1) as usize];
        match io.handle_accepted(listener, peer) {
            Some(stream) => {
                self.ends[end as usize].stream = Some(stream);
                self.map_stream(h, lp, stream, end);
                self.stats.accepts += 1;
                self.record(h, lp, Some(stream), TraceKind::Accept, 0);
                self.poke(end);
            }
            None => {
                self.stats.refused += 1;
                self.kill_end(end, true);
            }
        }
    }

    /// Moves bytes for one ready end: connect result, reset, a write, a read or end of file.
    #[inline]
    fn service(&mut self, id: u32, io: &mut IoLoop) {
        let e = &self.ends[id as usize];
        let Some(stream) = e.stream else { return };
        if (e.pending_connect.is_some() || e.pending_error.is_some())
            && !self.deliver_connect_or_error(id, stream, io)
        {
            return;
        }
        let e = &self.ends[id as usize];
        if e.state != EndState::Open {
            return;
        }
        if e.interest.writable {
            self.write(id, stream, io);
        }
        let e = &self.ends[id as usize];
        if e.interest.readable && !e.notify_pending && e.state == EndState::Open {
            self.read(id, stream, io);
        }
    }

    /// Delivers a connect result or an error; true if the end is open for I/O afterwards.
    #[inline(never)]
    fn deliver_connect_or_error(&mut self, id: u32, stream: StreamId, io: &mut IoLoop) -> bool {
        let e = &mut self.ends[id as usize];
        let (h, lp) = (e.host, e.lp);
        if let Some(ok) = e.pending_connect.take() {
            if ok {
                e.state = EndState::Open;
                io.handle_connected(stream, Ok(()));
                self.record(h, lp, Some(stream), TraceKind::Connected, 0);
            } else {
                e.state = EndState::Dead;
                io.handle_connected(stream, Err(io::ErrorKind::ConnectionRefused));
                self.stats.refused += 1;
                self.record(h, lp, Some(stream), TraceKind::Refused, 0);
                return false;
            }
        }
        let e = &mut self.ends[id as usize];
        if let Some(kind) = e.pending_error.take() {
            let was = e.state;
            e.state = EndState::Dead;
            if was == EndState::Connecting {
                io.handle_connected(stream, Err(kind));
            } else {
                io.handle_error(stream, kind);
            }
            let trace = if kind == io::ErrorKind::TimedOut {
                self.stats.timeouts += 1;
                TraceKind::TimedOut
            } else {
                self.stats.resets += 1;
                TraceKind::Reset
            };
            self.record(h, lp, Some(stream), trace, 0);
            return false;
        }
        true
    }

    /// Moves queued bytes toward the peer; true when the stream has nothing left to write.
    fn write(&mut self, id: u32, stream: StreamId, io: &mut IoLoop) -> bool {
        let queued = io.stream(stream).map_or(0, |s| s.write_queued());
        if queued == 0 {
            return true;
        }
        let window = self.window(id);
        if window == 0 {
            return false;
        }
        let mut limit = window.min(queued);
        if limit > 1 && self.chance(self.faults.p_short_write) {
            limit = self.rng.gen_range(1..=limit);
        }
        let peer = id ^ 1;
        let rx = &mut self.ends[peer as usize].rx;
        let mut n = 0;
        for chunk in io.write_chunks(stream) {
            let take = chunk.len().min(limit - n);
            rx.extend(&chunk[..take]);
            n += take;
            if n == limit {
                break;
            }
        }
        if n == 0 && io.front_file(stream).is_some() {
            // A file range: read it through its (simulated) file, faults and all.
            let mut data = Vec::new();
            if let Err(e) = io.gather_write(stream, limit, &mut data) {
                io.handle_error(stream, e.kind());
                return true;
            }
            rx.extend(&data);
            n = data.len();
        }
        if n == 0 {
            return false;
        }
        io.handle_written(stream, n);
        self.stats.bytes_written += n as u64;
        let (h, lp) = (self.ends[id as usize].host, self.ends[id as usize].lp);
        self.record(h, lp, Some(stream), TraceKind::Write, n as u64);
        if n > 1 && self.chance(self.faults.p_split) {
            self.send_split(peer, n);
        } else {
            self.send_segment(peer, n);
        }
        if self.chance(self.faults.p_reset) {
            self.inject_reset(id);
        }
        // More queued and room left: stay ready (level-triggered, like epoll).
        let drained = io.stream(stream).map_or(true, |s| s.write_queued() == 0);
        if !drained {
            self.poke(id);
        }
        drained
    }

    /// Schedules the arrival of `len` written bytes at end `to`; under a bandwidth limit, in
    /// MSS-sized packets so a long write streams instead of arriving all at once.
    #[inline]
    fn send_segment(&mut self, to: u32, len: usize) {
        debug_assert!(len > 0, "segments carry data");
        if self.faults.bandwidth_bytes_per_sec.is_some() {
            self.send_packets(to, len);
            return;
        }
        let at = self.arrival(to, len);
        self.push(
            at,
            Event::Arrive {
                end: to,
                len: len as u32,
            },
        );
    }

    /// Splitting: one write leaves as 2 to 4 segments of random sizes, each with its own
    /// arrival time (FIFO still holds, so they may also coalesce again at the reader).
    #[inline(never)]
    fn send_split(&mut self, to: u32, n: usize) {
        let pieces = self.rng.gen_range(2..=n.min(4));
        let mut left = n;
        for i in 0..pieces {
            let rest = pieces - 1 - i;
            let seg = if rest == 0 {
                left
            } else {
                self.rng.gen_range(1..=left - rest)
            };
            left -= seg;
            self.send_segment(to, seg);
        }
    }

    /// Under a bandwidth limit, a segment travels as MSS-sized packets.
    #[inline(never)]
    fn send_packets(&mut self, to: u32, len: usize) {
        let mut left = len;
        while left > 0 {
            let seg = left.min(MSS);
            left -= seg;
            let at = self.arrival(to, seg);
            self.push(
                at,
                Event::Arrive {
                    end: to,
                    len: seg as u32,
                },
            );
        }
    }

    fn read(&mut self, id: u32, stream: StreamId, io: &mut IoLoop) {
        let arrived = self.ends[id as usize].arrived;
        if arrived == 0 {
            let e = &mut self.ends[id as usize];
            if e.fin_arrived && e.rx.is_empty() && !e.eof_delivered {
                e.eof_delivered = true;
                io.handle_eof(stream);
                let (h, lp) = (e.host, e.lp);
                self.record(h, lp, Some(stream), TraceKind::Eof, 0);
            }
            return;
        }
        let mut limit = arrived;
        if limit > 1 && self.chance(self.faults.p_short_read) {
            limit = self.rng.gen_range(1..=limit);
        }
        // The room `IoLoop::read_buf` would lend (up to one read chunk, one byte past the
        // buffer limit), but filled with `handle_read_bytes`: it grows the buffer by what was
        // read instead of reserving a whole chunk per read.
        let Some(st) = io.stream(stream) else { return };
        if !st.interest().readable {
            return;
        }
        let room = (st.max_buffer_size() + 1)
            .saturating_sub(st.buffered())
            .min(io.config().read_chunk_size);
        let n = limit.min(room);
        if n == 0 {
            return;
        }
        let e = &mut self.ends[id as usize];
        io.handle_read_bytes(stream, e.rx.front(n));
        e.rx.consume(n);
        e.arrived -= n;
        let (h, lp) = (e.host, e.lp);
        self.record(h, lp, Some(stream), TraceKind::Read, n as u64);
        self.poke(id ^ 1);
        self.poke(id);
    }

    fn drain_actions(&mut self, h: u32, lp: u32, io: &mut IoLoop) {
        while let Some(action) = io.poll_io() {
            if let IoAction::Interest { stream, interest } = action {
                if let Some(id) = self.end_of(h, lp, stream) {
                    let e = &mut self.ends[id as usize];
                    if e.interest != interest {
                        e.interest = interest;
                        // Write at once, as a real driver's optimistic write does: the
                        // window is known here, and going through the ready list would
                        // cost the loop a second pass.
                        if interest.writable
                            && e.state == EndState::Open
                            && e.pending_error.is_none()
                            && !e.queued
                        {
                            // Drained: the loop's next `Interest` says so too, but until
                            // then the stale flag would queue a pass that does nothing.
                            if self.write(id, stream, io) {
                                self.ends[id as usize].interest.writable = false;
                            }
                        }
                        self.poke(id);
                    }
                }
            } else {
                self.socket_action(h, lp, io, action);
            }
        }
    }

    /// Every action but `Interest`: listen, connect, shutdown and close (rare next to I/O).
    #[inline(never)]
    fn socket_action(&mut self, h: u32, lp: u32, io: &mut IoLoop, action: IoAction) {
        match action {
            IoAction::Interest { .. } => unreachable!("handled by drain_actions"),
            IoAction::Listen {
                listener,
                addr,
                options,
            } => self.listen(h, lp, io, listener, addr, options.reuse_port),
            // The simulated network is TCP between hosts; unix sockets are the OS drivers'.
            IoAction::ListenUnix { listener, .. } => {
                io.handle_listening(listener, Err(std::io::ErrorKind::Unsupported));
            }
            IoAction::CloseListener { listener } => {
                let m = &mut self.loops[h as usize][lp as usize];
                if let Some(pos) = m.listeners.iter().position(|l| l.0 == listener) {
                    let (_, port) = m.listeners.swap_remove(pos);
                    if let Some(list) = self.listeners.get_mut(&(h, port)) {
                        list.retain(|l| !(l.lp == lp && l.id == listener));
                        if list.is_empty() {
                            self.listeners.remove(&(h, port));
                        }
                    }
                    self.record(h, lp, None, TraceKind::CloseListener, u64::from(port));
                }
            }
            IoAction::Connect { stream, addr } => self.connect(h, lp, stream, addr),
            IoAction::ShutdownWrite { stream } => {
                if let Some(id) = self.end_of(h, lp, stream) {
                    if self.ends[id as usize].state == EndState::Open {
                        self.send_fin(id);
                    }
                    self.record(h, lp, Some(stream), TraceKind::ShutdownWrite, 0);
                }
            }
            IoAction::Close { stream, reason } => {
                if let Some(id) = self.end_of(h, lp, stream) {
                    self.unmap_stream(h, lp, stream);
                    let reset = matches!(
                        reason,
                        CloseReason::Io(_) | CloseReason::BufferFull | CloseReason::Unsatisfiable
                    );
                    let dead = self.ends[id as usize].state == EndState::Dead;
                    if !dead {
                        self.kill_end(id, reset);
                    }
                    self.record(h, lp, Some(stream), TraceKind::Close, u64::from(reset));
                }
            }
        }
    }

    fn listen(
        &mut self,
        h: u32,
        lp: u32,
        io: &mut IoLoop,
        listener: ListenerId,
        addr: SocketAddr,
        reuse: bool,
    ) {
        let host_ip = self.hosts[h as usize].ip;
        let ip = addr.ip();
        if !(ip.is_unspecified() || ip.is_loopback() || ip == host_ip) {
            io.handle_listening(listener, Err(io::ErrorKind::AddrNotAvailable));
            self.record(h, lp, None, TraceKind::ListenFailed, u64::from(addr.port()));
            return;
        }
        let port = if addr.port() == 0 {
            self.alloc_port(h)
        } else {
            addr.port()
        };
        let gen = self.loops[h as usize][lp as usize].gen;
        let list = self.listeners.entry((h, port)).or_default();
        let shared = reuse && list.iter().all(|l| l.reuse);
        if !list.is_empty() && !shared {
            io.handle_listening(listener, Err(io::ErrorKind::AddrInUse));
            self.record(h, lp, None, TraceKind::ListenFailed, u64::from(port));
            return;
        }
        list.push(ListenEntry {
            lp,
            gen,
            id: listener,
            reuse,
        });
        self.loops[h as usize][lp as usize]
            .listeners
            .push((listener, port));
        io.handle_listening(listener, Ok(SocketAddr::new(host_ip, port)));
        self.record(h, lp, None, TraceKind::Listen, u64::from(port));
    }

    fn connect(&mut self, h: u32, lp: u32, stream: StreamId, addr: SocketAddr) {
        let ip = addr.ip();
        let dest = if ip.is_loopback() || ip.is_unspecified() {
            Some(h)
        } else {
            self.ip_to_host.get(&ip).copied()
        };
        let local = SocketAddr::new(self.hosts[h as usize].ip, self.alloc_port(h));
        let c = self.ends.len() as u32;
        let (cap_c, cap_s) = (self.buffer_cap(), self.buffer_cap());
        let mut client = End::new(h, cap_c);
        client.lp = lp;
        client.gen = self.loops[h as usize][lp as usize].gen;
        client.stream = Some(stream);
        let server_addr = match dest {
            Some(d) => SocketAddr::new(self.hosts[d as usize].ip, addr.port()),
            None => addr,
        };
        self.ends.push(client);
        self.ends.push(End::new(dest.unwrap_or(h), cap_s));
        self.addrs.push(local);
        self.addrs.push(server_addr);
        self.map_stream(h, lp, stream, c);
        self.stats.connects += 1;
        self.record(
            h,
            lp,
            Some(stream),
            TraceKind::Connect,
            u64::from(addr.port()),
        );
        match dest {
            Some(d) => {
                let at = self.now + self.latency(h, d);
                self.push(at, Event::Syn { end: c + 1 });
            }
            None => {
                // Nobody has that address: the connect fails like a refused one.
                self.ends[(c + 1) as usize].state = EndState::Dead;
                let at = self.now + self.latency(h, h);
                self.push(at, Event::SynAck { end: c, ok: false });
            }
        }
    }
}

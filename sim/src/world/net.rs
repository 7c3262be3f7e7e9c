//! `Net`: the simulated network — connection ends, listeners, links and the event queue.
//!
//! Everything of the world but the loops themselves, so a loop can be stepped while the
//! network is mutated: the hosts' and loops' bookkeeping, the ends of every TCP connection,
//! the scheduled events, held packets, partitions and the seeded generator. It implements the
//! TCP model described in the `world` module docs; `driver` steps a loop against it.

use super::{HostMeta, LoopMeta, SimStats};
use crate::config::FaultConfig;
use crate::plan::FaultOp;
use crate::recv_buf::RecvBuf;
use crate::trace::{TraceEvent, TraceHash, TraceKind};
use eddy_core::{Duration, Instant, Interest, ListenerId, StreamId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};

mod driver;

const NO_END: u32 = u32::MAX;

pub(super) struct ListenEntry {
    lp: u32,
    gen: u32,
    id: ListenerId,
    reuse: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum EndState {
    Connecting,
    Open,
    Dead,
}

/// One end of a simulated TCP connection; ends `2k` (client) and `2k+1` (server) pair up.
pub(super) struct End {
    host: u32,
    lp: u32,
    gen: u32,
    pub(super) stream: Option<StreamId>,
    listener: Option<ListenerId>,
    pub(super) state: EndState,
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
pub(super) enum Event {
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
pub(super) struct Queued {
    key: u128,
    pub(super) ev: Event,
}

impl Queued {
    fn new(time: Instant, seq: u64, ev: Event) -> Queued {
        let key = (u128::from(time.as_nanos()) << 64) | u128::from(seq);
        Queued { key, ev }
    }

    pub(super) fn time(&self) -> Instant {
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
pub(super) struct Net {
    pub(super) seed: u64,
    pub(super) rng: ChaCha8Rng,
    pub(super) now: Instant,
    pub(super) faults: FaultConfig,
    pub(super) fault_phase: bool,
    pub(super) tick_scheduled: bool,
    pub(super) hosts: Vec<HostMeta>,
    pub(super) loops: Vec<Vec<LoopMeta>>,
    pub(super) ip_to_host: BTreeMap<IpAddr, u32>,
    pub(super) listeners: BTreeMap<(u32, u16), Vec<ListenEntry>>,
    pub(super) ends: Vec<End>,
    /// Each end's local address, by end id (apart from `End`: only handshakes read it).
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) queue: BinaryHeap<Queued>,
    pub(super) seq: u64,
    pub(super) runnable: VecDeque<(u32, u32, u32)>,
    pub(super) blocked: BTreeSet<(u32, u32)>,
    pub(super) stalled: Vec<(Event, Instant)>,
    pub(super) link_latency: BTreeMap<(u32, u32), (Duration, Duration)>,
    pub(super) plan: Vec<FaultOp>,
    pub(super) hash: TraceHash,
    pub(super) trace: Option<Vec<TraceEvent>>,
    pub(super) stats: SimStats,
    pub(super) spare: Vec<u32>,
    pub(super) fail_on_panic: bool,
}

impl Net {
    // ===== small helpers =====

    #[inline]
    pub(super) fn push(&mut self, time: Instant, ev: Event) {
        self.seq += 1;
        self.queue.push(Queued::new(time, self.seq, ev));
    }

    /// A biased coin that consumes no randomness when `p` is zero (calm worlds stay cheap).
    #[inline(always)]
    pub(super) fn chance(&mut self, p: f64) -> bool {
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

    pub(super) fn next_tick(&mut self) -> Instant {
        let mean = self.faults.fault_tick_mean.as_nanos().max(1) as f64;
        let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        let wait = (-u.ln() * mean).min(1e15) as u64;
        self.now + Duration::from_nanos(wait.max(1))
    }

    /// Hashes (and, when recording, keeps) one delivered event; one shared copy for every
    /// call site.
    #[inline(never)]
    pub(super) fn record(
        &mut self,
        host: u32,
        lp: u32,
        stream: Option<StreamId>,
        kind: TraceKind,
        n: u64,
    ) {
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

    pub(super) fn mark_runnable(&mut self, h: u32, lp: u32) {
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
    pub(super) fn is_stale(&self, q: &Queued) -> bool {
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

    pub(super) fn partition(&mut self, a: u32, b: u32, one_way: bool) {
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

    pub(super) fn heal_links(&mut self) {
        if !self.blocked.is_empty() {
            self.blocked.clear();
            self.record(0, 0, None, TraceKind::Heal, 0);
        }
        self.release_stalled();
    }

    /// Sends again every held packet whose link is open now, keeping per-direction order.
    pub(super) fn release_stalled(&mut self) {
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

    pub(super) fn jump_clock(&mut self, h: u32, by: Duration) {
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

    pub(super) fn reset_host_connections(&mut self, h: u32) {
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

    pub(super) fn crash(&mut self, h: u32) {
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
    pub(super) fn apply(&mut self, ev: Event) {
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
}

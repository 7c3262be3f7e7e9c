//! The driver iteration: how `Net` steps one loop, feeding it accepts, connect results,
//! reads, writes, end of file and errors, and performs the actions it polls (interest,
//! listen, connect, shutdown, close).

use super::{End, EndState, Event, ListenEntry, Net};
use crate::error::SimError;
use crate::panics;
use crate::trace::TraceKind;
use eddy_core::{CloseReason, Instant, IoAction, IoLoop, ListenerId, StreamId};
use rand::Rng;
use std::io;
use std::net::SocketAddr;

/// Packet size under a bandwidth limit (Ethernet's TCP maximum segment size).
const MSS: usize = 1460;

impl Net {
    // ===== the driver iteration =====

    pub(in crate::world) fn step(
        &mut self,
        h: u32,
        lp: u32,
        io: &mut IoLoop,
    ) -> Result<(), SimError> {
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

    pub(in crate::world) fn drain_actions(&mut self, h: u32, lp: u32, io: &mut IoLoop) {
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

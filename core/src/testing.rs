//! `FakeNet`: a scripted, in-memory driver for tests of the core — no sockets, no clock.
//!
//! It performs an [`IoLoop`]'s actions on fake connections: a test pushes the peer's bytes,
//! chooses how many bytes each read and write moves (to exercise short reads and writes), and
//! reads back what the loop wrote. Connecting to an address the loop listens on links two
//! streams of the same loop into a pipe. Time moves only when the test says so, or jumps to
//! the next timer in [`FakeNet::run_until_idle`].

use crate::error::CloseReason;
use crate::io_loop::{IoAction, IoLoop, ListenerId, StreamId};
use crate::stream::Interest;
use crate::time::{Duration, Instant};
use bytes::BufMut;
use core::net::SocketAddr;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::io;

/// One fake connection, seen from the driver.
#[derive(Debug, Default)]
pub struct FakeConn {
    /// Bytes the peer sent that the stream has not read yet.
    pub inbound: VecDeque<u8>,
    /// Bytes the stream wrote (when not linked to another stream).
    pub outbound: Vec<u8>,
    /// The peer has shut down its write side (delivered once `inbound` is read).
    pub peer_eof: bool,
    eof_delivered: bool,
    /// Interest last registered by the loop.
    pub interest: Interest,
    /// The loop shut down this stream's write side.
    pub write_shutdown: bool,
    /// The loop closed this stream, with this reason.
    pub closed: Option<CloseReason>,
    /// The stream at the other end when both ends live in the loop.
    pub linked: Option<StreamId>,
    /// A connect waiting for [`FakeNet::complete_connect`] (no listener at the address).
    pub connecting_to: Option<SocketAddr>,
    /// The peer reads nothing: writes on this stream make no progress.
    pub write_blocked: bool,
}

/// A scripted driver; see the module docs.
pub struct FakeNet {
    /// The time handed to the loop.
    pub now: Instant,
    /// Connections by stream.
    pub conns: BTreeMap<StreamId, FakeConn>,
    /// Bound listeners by address.
    pub listeners: BTreeMap<SocketAddr, ListenerId>,
    /// Every action the loop asked for, in order.
    pub log: Vec<IoAction>,
    /// Sizes of successive reads, cycled (empty: read everything available).
    pub read_sizes: Vec<usize>,
    /// Sizes of successive writes, cycled (empty: write everything queued).
    pub write_sizes: Vec<usize>,
    read_turn: usize,
    write_turn: usize,
    next_port: u16,
}

impl Default for FakeNet {
    fn default() -> Self {
        FakeNet {
            now: Instant::ZERO,
            conns: BTreeMap::new(),
            listeners: BTreeMap::new(),
            log: Vec::new(),
            read_sizes: Vec::new(),
            write_sizes: Vec::new(),
            read_turn: 0,
            write_turn: 0,
            next_port: 40000,
        }
    }
}

impl FakeNet {
    /// A fake network at time zero.
    pub fn new() -> FakeNet {
        FakeNet::default()
    }

    /// Simulates a client connecting to `listener` from `peer`; returns the accepted stream.
    pub fn accept(&mut self, io: &mut IoLoop, listener: ListenerId, peer: SocketAddr) -> StreamId {
        let id = io
            .handle_accepted(listener, peer)
            .expect("listener accepts");
        self.conns.insert(id, FakeConn::default());
        id
    }

    /// A stream accepted on a fresh listener that does nothing on accept (the test drives the
    /// stream itself).
    pub fn accept_new(&mut self, io: &mut IoLoop) -> StreamId {
        let port = self.next_port;
        self.next_port += 1;
        let listener = io.listen(
            ([127, 0, 0, 1], port).into(),
            crate::io_loop::ListenOptions::default(),
            |_, _, _| {},
        );
        self.perform_actions(io);
        self.accept(io, listener, ([127, 0, 0, 9], port).into())
    }

    /// Queues bytes from the peer of `id`.
    pub fn peer_send(&mut self, id: StreamId, data: &[u8]) {
        self.conn(id).inbound.extend(data);
    }

    /// The peer of `id` shuts down its write side.
    pub fn peer_shutdown(&mut self, id: StreamId) {
        self.conn(id).peer_eof = true;
    }

    /// Takes the bytes `id` has written so far.
    pub fn take_output(&mut self, id: StreamId) -> Vec<u8> {
        std::mem::take(&mut self.conn(id).outbound)
    }

    /// Finishes a pending connect (one to an address nobody listens on) with `result`.
    pub fn complete_connect(
        &mut self,
        io: &mut IoLoop,
        id: StreamId,
        result: Result<(), io::ErrorKind>,
    ) {
        self.conn(id).connecting_to = None;
        io.handle_connected(id, result);
    }

    /// The fake connection of `id`.
    pub fn conn(&mut self, id: StreamId) -> &mut FakeConn {
        self.conns.entry(id).or_default()
    }

    /// One driver iteration: perform actions, move bytes, run one round. True if anything moved.
    pub fn step(&mut self, io: &mut IoLoop) -> bool {
        let mut progressed = self.perform_actions(io);
        let ids: Vec<StreamId> = self.conns.keys().copied().collect();
        for id in ids {
            progressed |= self.transfer(io, id);
        }
        progressed |= self.perform_actions(io);
        if io.has_pending_callbacks() {
            progressed = true;
        }
        io.handle_timeout(self.now);
        progressed
    }

    /// Steps until nothing moves; with `jump_timers`, then jumps the clock to the next timer
    /// and goes on. Stops after `max_steps` (returns false) so a livelock cannot hang a test.
    pub fn run_until_idle(&mut self, io: &mut IoLoop, jump_timers: bool, max_steps: usize) -> bool {
        for _ in 0..max_steps {
            if io.is_stopped() {
                return true;
            }
            if self.step(io) {
                continue;
            }
            match io.poll_timeout() {
                Some(deadline) if jump_timers => self.now = self.now.max(deadline),
                Some(deadline) if deadline <= self.now => {}
                _ => return true,
            }
        }
        false
    }

    /// Advances the clock by `d` (the next step hands it to the loop).
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn perform_actions(&mut self, io: &mut IoLoop) -> bool {
        let mut any = false;
        while let Some(action) = io.poll_io() {
            any = true;
            self.log.push(action.clone());
            match action {
                IoAction::Listen { listener, addr, .. } => {
                    let mut bound = addr;
                    if bound.port() == 0 {
                        bound.set_port(self.next_port);
                        self.next_port += 1;
                    }
                    match self.listeners.entry(bound) {
                        Entry::Occupied(_) => {
                            io.handle_listening(listener, Err(io::ErrorKind::AddrInUse));
                        }
                        Entry::Vacant(slot) => {
                            slot.insert(listener);
                            io.handle_listening(listener, Ok(bound));
                        }
                    }
                }
                IoAction::ListenUnix { listener, .. } => {
                    // The fake network is TCP only.
                    io.handle_listening(listener, Err(io::ErrorKind::Unsupported));
                }
                IoAction::CloseListener { listener } => {
                    self.listeners.retain(|_, l| *l != listener);
                }
                IoAction::Connect { stream, addr } => match self.listeners.get(&addr).copied() {
                    Some(listener) => {
                        let local: SocketAddr = ([127, 0, 0, 1], self.next_port).into();
                        self.next_port += 1;
                        let server = self.accept(io, listener, local);
                        self.conn(server).linked = Some(stream);
                        self.conn(stream).linked = Some(server);
                        io.handle_connected(stream, Ok(()));
                    }
                    None => self.conn(stream).connecting_to = Some(addr),
                },
                IoAction::Interest { stream, interest } => self.conn(stream).interest = interest,
                IoAction::ShutdownWrite { stream } => {
                    self.conn(stream).write_shutdown = true;
                    if let Some(peer) = self.conn(stream).linked {
                        self.conn(peer).peer_eof = true;
                    }
                }
                IoAction::Close { stream, reason } => {
                    let conn = self.conn(stream);
                    conn.closed = Some(reason);
                    conn.interest = Interest::default();
                    if let Some(peer) = conn.linked.take() {
                        let p = self.conn(peer);
                        p.linked = None;
                        p.peer_eof = true;
                    }
                }
            }
        }
        any
    }

    fn next_size(sizes: &[usize], turn: &mut usize) -> usize {
        if sizes.is_empty() {
            return usize::MAX;
        }
        let n = sizes[*turn % sizes.len()].max(1);
        *turn += 1;
        n
    }

    /// Moves bytes for one stream: a write (into the peer or the capture), then a read.
    fn transfer(&mut self, io: &mut IoLoop, id: StreamId) -> bool {
        let mut moved = false;
        let conn = self.conns.get(&id).expect("known");
        if conn.closed.is_some() {
            return false;
        }
        if conn.interest.writable && conn.connecting_to.is_none() && !conn.write_blocked {
            let limit = Self::next_size(&self.write_sizes, &mut self.write_turn);
            let mut data = Vec::new();
            if let Err(e) = io.gather_write(id, limit.min(1 << 20), &mut data) {
                io.handle_error(id, e.kind());
                return true;
            }
            if !data.is_empty() {
                moved = true;
                io.handle_written(id, data.len());
                match self.conns[&id].linked {
                    Some(peer) => self.conn(peer).inbound.extend(&data),
                    None => self.conn(id).outbound.extend(&data),
                }
            }
        }
        let conn = self.conns.get(&id).expect("known");
        if conn.interest.readable {
            if !conn.inbound.is_empty() {
                let limit = Self::next_size(&self.read_sizes, &mut self.read_turn);
                if let Some(mut buf) = io.read_buf(id) {
                    let conn = self.conns.get_mut(&id).expect("known");
                    let n = conn.inbound.len().min(buf.remaining_mut()).min(limit);
                    for b in conn.inbound.drain(..n) {
                        buf.put_u8(b);
                    }
                    io.handle_read(id, n);
                    moved = true;
                }
            } else if conn.peer_eof && !conn.eof_delivered {
                self.conn(id).eof_delivered = true;
                io.handle_eof(id);
                moved = true;
            }
        }
        moved
    }
}

/// Drives one accepted stream of a loop with no fake network at all, allocating nothing: for
/// allocation counts and micro-benchmarks of a protocol's per-request cost.
pub struct DirectConn {
    /// The stream being driven.
    pub stream: StreamId,
    now: Instant,
}

impl DirectConn {
    /// Accepts a connection on `listener` (which must be bound) and drives it.
    pub fn accept(io: &mut IoLoop, listener: ListenerId) -> DirectConn {
        while io.poll_io().is_some() {}
        let stream = io
            .handle_accepted(listener, ([127, 0, 0, 9], 9).into())
            .expect("listener accepts");
        DirectConn {
            stream,
            now: io.now(),
        }
    }

    /// Feeds `input` as one read, runs the loop until it settles (two rounds), writes out
    /// everything queued, and returns how many bytes were written.
    pub fn exchange(&mut self, io: &mut IoLoop, input: &[u8]) -> usize {
        if !input.is_empty() {
            let mut buf = io.read_buf(self.stream).expect("stream reads");
            buf.put_slice(input);
            io.handle_read(self.stream, input.len());
        }
        let mut written = 0;
        for _ in 0..2 {
            self.now += Duration::from_micros(1);
            io.handle_timeout(self.now);
            while io.poll_io().is_some() {}
            let n: usize = io.write_chunks(self.stream).map(<[u8]>::len).sum();
            if n > 0 {
                io.handle_written(self.stream, n);
                written += n;
            }
        }
        written
    }

    /// A loop serving the wrk-style hello world (`200`, `text/plain`, `body`) through
    /// [`HttpServer`](crate::http::HttpServer), with one accepted connection to drive: the
    /// setup the HTTP micro-benchmark and the allocation test share.
    pub fn hello_server(body: &'static [u8]) -> (IoLoop, crate::http::HttpServer, DirectConn) {
        use crate::http::{HeaderBlock, HttpServer, Request, Responder};
        use http::header::CONTENT_TYPE;
        use http::{HeaderMap, HeaderValue, StatusCode};
        let mut io = IoLoop::default();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let headers = HeaderBlock::new(headers);
        let server = HttpServer::new(move |io: &mut IoLoop, _req: Request, resp: Responder| {
            let _ = resp.respond(
                io,
                StatusCode::OK,
                &headers,
                bytes::Bytes::from_static(body),
            );
        });
        let addr = ([127, 0, 0, 1], 80).into();
        let listener = server.listen(&mut io, addr, crate::ListenOptions::default());
        io.handle_listening(listener, Ok(addr));
        let conn = DirectConn::accept(&mut io, listener);
        (io, server, conn)
    }

    /// Accepts another connection on the loop's only listener (as set up by
    /// [`hello_server`](Self::hello_server)).
    pub fn accept_another(io: &mut IoLoop) -> DirectConn {
        let listener = io.listener_ids().next().expect("a listener");
        DirectConn::accept(io, listener)
    }
}

/// One heap part an idle keep-alive HTTP connection holds on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePart {
    /// What it is.
    pub what: &'static str,
    /// Its size in bytes (`size_of`; allocator headers and rounding come on top).
    pub bytes: usize,
    /// An allocation of its own (else a slot in a table shared by all connections, which
    /// grows by doubling).
    pub own_allocation: bool,
}

/// Every heap part one idle keep-alive HTTP connection holds on the server: what lives
/// while it waits for its next request. Buffers and field lists are lent from pools only
/// while in use, so none are listed.
pub fn idle_connection_parts() -> Vec<IdlePart> {
    let mut parts = crate::io_loop::idle_stream_parts();
    parts.extend(crate::http::idle_connection_parts());
    parts
}

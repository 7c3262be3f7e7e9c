//! The reactor: performs an `IoLoop`'s actions on real sockets and feeds readiness back.
//!
//! It owns the sockets (by stream / listener index) and the readiness each one last showed;
//! it never runs user code except through `IoLoop::handle_timeout`. One turn:
//!
//! 1. perform the loop's actions (listen, connect, close...); an `Interest` action marks the
//!    stream *dirty* if it now wants a direction the socket is known to be ready for;
//! 2. serve dirty streams: read, and write *optimistically* (a fresh socket is writable, so a
//!    response goes out without first waiting for the selector);
//! 3. sleep in the selector until the loop's deadline, readiness, or a `Remote` wake;
//! 4. serve ready sockets, then run one round of callbacks (`handle_timeout(now)`); with
//!    `round_per_event` (the default) also a round, and its writes, after each ready socket.
//!
//! Readiness is remembered per socket and cleared only on EAGAIN (or a short read/write,
//! which means the kernel buffer was drained/filled), so edge-triggered mio never loses a
//! notification: a stream whose buffer was full keeps `read_ready` and is read as soon as
//! the application consumes its buffer and the loop asks for reading again.

use crate::clock::MonoClock;
use crate::selector::{Readiness, Selector, Want, WAKER_TOKEN};
use crate::{fs, sys};
use crate::{DriverConfig, DriverError};
use eddy_core::{CloseReason, Interest, IoAction, IoLoop, ListenerId, StreamId};
use socket2::Socket;
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant as StdInstant};

/// Most reads of one stream per turn before others get a go (each as large as the stream's
/// adaptive read reservation, 2 KiB up to `read_chunk_size`).
const READ_BURST: usize = 16;
/// Most `sendmsg` calls for one stream per turn.
const WRITE_BURST: usize = 16;
/// Most connections accepted from one listener per turn (Tornado: the backlog, 128).
const ACCEPT_BURST: usize = 128;
/// Most action-drain passes per turn; the rest waits for the next turn.
const ACTION_PASSES: usize = 4;
/// Extra rounds a turn runs (with their writes) before it polls I/O again.
const FOLLOW_UP_ROUNDS: usize = 2;

struct StreamSock {
    id: StreamId,
    sock: Socket,
    connecting: bool,
    interest: Interest,
    read_ready: bool,
    write_ready: bool,
    /// The peer shut down its side: keep reading until end of file, whatever the sizes say.
    read_closed: bool,
    /// Already in the dirty list.
    dirty: bool,
}

struct ListenerSock {
    id: ListenerId,
    sock: Socket,
    ready: bool,
    /// Accepting paused (out of descriptors) until then.
    paused_until: Option<StdInstant>,
    backoff: Duration,
    warned: bool,
}

/// A driver over any [`Selector`]; `Mio` and `Poll` wrap it.
pub(crate) struct Reactor<S: Selector> {
    selector: S,
    clock: MonoClock,
    config: DriverConfig,
    streams: Vec<Option<StreamSock>>,
    listeners: Vec<Option<ListenerSock>>,
    dirty: Vec<StreamId>,
    /// The other list of `dirty`'s pair (empty, kept for its capacity).
    dirty_spare: Vec<StreamId>,
    events: Vec<Readiness>,
    wants: Vec<Want>,
    attached: bool,
    /// Where file ranges are read when `sendfile` cannot send them directly.
    scratch: Vec<u8>,
}

fn stream_token(index: u32) -> usize {
    (index as usize) << 1
}

fn listener_token(index: u32) -> usize {
    ((index as usize) << 1) | 1
}

impl<S: Selector> Reactor<S> {
    pub(crate) fn new(config: DriverConfig) -> Result<Self, DriverError> {
        let selector = S::new(config.max_events).map_err(|source| DriverError::Poller {
            driver: S::NAME,
            source,
        })?;
        Ok(Reactor {
            selector,
            clock: MonoClock::new(),
            config,
            streams: Vec::new(),
            listeners: Vec::new(),
            dirty: Vec::new(),
            dirty_spare: Vec::new(),
            events: Vec::new(),
            wants: Vec::new(),
            attached: false,
            scratch: Vec::new(),
        })
    }

    pub(crate) fn clock(&self) -> MonoClock {
        self.clock
    }

    pub(crate) fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// Number of sockets (streams and listeners) the reactor holds.
    pub(crate) fn open_sockets(&self) -> usize {
        self.streams.iter().flatten().count() + self.listeners.iter().flatten().count()
    }

    /// Installs the waker and the slow-callback clock on first use with a loop.
    fn attach(&mut self, io: &mut IoLoop) {
        if self.attached {
            return;
        }
        self.attached = true;
        io.set_waker(self.selector.waker());
        io.set_unix_time_origin(self.clock.unix_origin_nanos());
        io.set_blocking_pool(std::rc::Rc::new(crate::blocking::PoolHandle(
            crate::blocking::BlockingThreads::shared(),
        )));
        if let Some(threshold) = self.config.slow_callback_threshold {
            let clock = self.clock;
            io.set_slow_callback_warning(threshold, Box::new(move || clock.now()));
        }
    }

    // ===== actions =====

    /// Performs every queued action (bounded passes); serves streams they made ready.
    pub(crate) fn perform_actions(&mut self, io: &mut IoLoop) {
        self.attach(io);
        for _ in 0..ACTION_PASSES {
            let mut any = false;
            while let Some(action) = io.poll_io() {
                any = true;
                self.perform(io, action);
            }
            if self.dirty.is_empty() {
                if !any {
                    return;
                }
                continue;
            }
            // Two lists take turns, so a busy loop allocates none per pass.
            let mut batch =
                std::mem::replace(&mut self.dirty, std::mem::take(&mut self.dirty_spare));
            for id in batch.drain(..) {
                if let Some(s) = self.stream_mut(id) {
                    s.dirty = false;
                }
                self.serve_stream(io, id);
            }
            self.dirty_spare = batch;
        }
    }

    fn perform(&mut self, io: &mut IoLoop, action: IoAction) {
        match action {
            IoAction::Listen {
                listener,
                addr,
                mut options,
            } => {
                options.reuse_port |= self.config.force_reuse_port;
                let inherited = self
                    .config
                    .inherited_listeners
                    .iter()
                    .find(|l| l.addr == addr);
                let bound = match inherited {
                    Some(l) => l.duplicate().map(|sock| (sock, l.addr)),
                    None => sys::listen(addr, options),
                };
                self.start_listener(io, listener, bound);
            }
            IoAction::ListenUnix {
                listener,
                path,
                mode,
                options,
            } => {
                let bound = sys::listen_unix(&path, mode, options);
                self.start_listener(io, listener, bound);
            }
            IoAction::CloseListener { listener } => {
                let i = listener.index() as usize;
                if self
                    .listeners
                    .get(i)
                    .is_some_and(|l| l.as_ref().is_some_and(|l| l.id == listener))
                {
                    self.listeners[i] = None;
                }
            }
            IoAction::Connect { stream, addr } => match sys::connect(addr) {
                Ok((sock, in_progress)) => {
                    let fd = sock.as_raw_fd();
                    self.put_stream(StreamSock {
                        id: stream,
                        sock,
                        connecting: in_progress,
                        interest: Interest::default(),
                        read_ready: false,
                        write_ready: !in_progress,
                        read_closed: false,
                        dirty: false,
                    });
                    if let Err(e) = self.selector.register(fd, stream_token(stream.index())) {
                        io.handle_connected(stream, Err(e.kind()));
                    } else if !in_progress {
                        io.handle_connected(stream, Ok(()));
                    }
                }
                Err(e) => io.handle_connected(stream, Err(e.kind())),
            },
            IoAction::Interest { stream, interest } => {
                let Some(s) = self.stream_mut(stream) else {
                    return;
                };
                s.interest = interest;
                let wants_now = (interest.readable && s.read_ready)
                    || (interest.writable && s.write_ready && !s.connecting);
                if wants_now && !s.dirty {
                    s.dirty = true;
                    self.dirty.push(stream);
                }
            }
            IoAction::ShutdownWrite { stream } => {
                if let Some(s) = self.stream_mut(stream) {
                    // ENOTCONN: the peer is already gone; the next read reports it.
                    let _ = s.sock.shutdown(std::net::Shutdown::Write);
                }
            }
            IoAction::Close { stream, reason } => {
                let i = stream.index() as usize;
                let Some(slot) = self.streams.get_mut(i) else {
                    return;
                };
                if slot.as_ref().is_some_and(|s| s.id == stream) {
                    let s = slot.take().expect("checked");
                    // On a reset or I/O error, abort (RST, no TIME_WAIT, peer learns at once)
                    // rather than pretend an orderly close.
                    let abort = matches!(reason, CloseReason::Reset | CloseReason::Io(_));
                    if abort && self.config.reset_on_error_close {
                        let _ = s.sock.set_linger(Some(Duration::ZERO));
                    }
                    drop(s); // close(2) also removes it from epoll/kqueue
                }
            }
        }
    }

    fn put_stream(&mut self, s: StreamSock) {
        let i = s.id.index() as usize;
        if self.streams.len() <= i {
            self.streams.resize_with(i + 1, || None);
        }
        debug_assert!(self.streams[i].is_none(), "stream slot reused before close");
        self.streams[i] = Some(s);
    }

    fn put_listener(&mut self, l: ListenerSock) {
        let i = l.id.index() as usize;
        if self.listeners.len() <= i {
            self.listeners.resize_with(i + 1, || None);
        }
        self.listeners[i] = Some(l);
    }

    /// Registers a freshly bound listener and tells the loop where it listens.
    fn start_listener(
        &mut self,
        io: &mut IoLoop,
        listener: ListenerId,
        bound: io::Result<(Socket, std::net::SocketAddr)>,
    ) {
        let result = bound.and_then(|(sock, local)| {
            self.selector
                .register(sock.as_raw_fd(), listener_token(listener.index()))?;
            Ok((sock, local))
        });
        match result {
            Ok((sock, local)) => {
                tracing::debug!(%local, driver = S::NAME, "listening");
                self.put_listener(ListenerSock {
                    id: listener,
                    sock,
                    ready: true, // a backlog may already wait (edge already passed)
                    paused_until: None,
                    backoff: self.config.accept_backoff_min,
                    warned: false,
                });
                io.handle_listening(listener, Ok(local));
            }
            Err(e) => {
                tracing::warn!(error = %e, "listen failed");
                io.handle_listening(listener, Err(e.kind()));
            }
        }
    }

    fn stream_mut(&mut self, id: StreamId) -> Option<&mut StreamSock> {
        self.streams
            .get_mut(id.index() as usize)?
            .as_mut()
            .filter(|s| s.id == id)
    }

    // ===== serving sockets =====

    /// Reads and writes what the stream wants and its socket is ready for.
    fn serve_stream(&mut self, io: &mut IoLoop, id: StreamId) {
        self.read_stream(io, id);
        self.write_stream(io, id);
    }

    fn read_stream(&mut self, io: &mut IoLoop, id: StreamId) {
        for _ in 0..READ_BURST {
            let Some(s) = self.stream_mut(id) else {
                return;
            };
            if !s.read_ready || s.connecting {
                return;
            }
            let Some(mut buf) = io.read_buf(id) else {
                return; // buffer full or not reading: keep read_ready for later
            };
            let result = sys::recv_into(&s.sock, &mut buf);
            match result {
                Ok((0, _)) => {
                    s.read_ready = false;
                    io.handle_eof(id);
                    return;
                }
                Ok((n, room)) => {
                    if n < room && !s.read_closed {
                        s.read_ready = false; // drained: the next arrival is a new edge
                    }
                    io.handle_read(id, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.read_ready = false;
                    return;
                }
                Err(e) => {
                    s.read_ready = false;
                    io.handle_error(id, e.kind());
                    return;
                }
            }
        }
        self.mark_dirty(id); // burst used up with data left: come back next turn
    }

    fn write_stream(&mut self, io: &mut IoLoop, id: StreamId) {
        for _ in 0..WRITE_BURST {
            let Some(s) = self
                .streams
                .get_mut(id.index() as usize)
                .and_then(Option::as_mut)
                .filter(|s| s.id == id)
            else {
                return;
            };
            if !s.write_ready || s.connecting {
                return;
            }
            let result = match io.front_file(id) {
                Some(range) => fs::send_file(&s.sock, range, &mut self.scratch),
                None => sys::send_chunks(&s.sock, io.write_chunks(id), io.file_queued(id)),
            };
            match result {
                Ok((_, 0)) => return,
                Ok((n, offered)) => {
                    if n < offered {
                        s.write_ready = false; // the send buffer is full; wait for an edge
                    }
                    io.handle_written(id, n);
                    if n < offered {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.write_ready = false;
                    return;
                }
                Err(e) => {
                    s.write_ready = false;
                    io.handle_error(id, e.kind());
                    return;
                }
            }
        }
        self.mark_dirty(id);
    }

    fn mark_dirty(&mut self, id: StreamId) {
        if let Some(s) = self.stream_mut(id) {
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    fn finish_connect(&mut self, io: &mut IoLoop, id: StreamId, ev: Readiness) {
        let Some(s) = self.stream_mut(id) else {
            return;
        };
        if !(ev.writable || ev.read_closed) {
            return;
        }
        s.connecting = false;
        match s.sock.take_error() {
            Ok(None) => {
                s.write_ready = true;
                s.read_ready = ev.readable;
                io.handle_connected(id, Ok(()));
            }
            Ok(Some(e)) | Err(e) => io.handle_connected(id, Err(e.kind())),
        }
    }

    fn accept_all(&mut self, io: &mut IoLoop, index: usize) {
        for _ in 0..ACCEPT_BURST {
            let Some(Some(l)) = self.listeners.get_mut(index) else {
                return;
            };
            if !l.ready || l.paused_until.is_some() {
                return;
            }
            let listener = l.id;
            match sys::accept(&l.sock) {
                Ok((sock, peer)) => {
                    l.backoff = self.config.accept_backoff_min;
                    l.warned = false;
                    let Some(id) = io.handle_accepted(listener, peer) else {
                        return; // listener closed meanwhile: drop the connection
                    };
                    let fd = sock.as_raw_fd();
                    self.put_stream(StreamSock {
                        id,
                        sock,
                        connecting: false,
                        interest: Interest::default(),
                        // Read optimistically: clients send right after connecting, so the
                        // request is usually here already and is served in this turn instead
                        // of after another wait (a miss costs one EAGAIN read).
                        read_ready: true,
                        write_ready: true,
                        read_closed: false,
                        dirty: false,
                    });
                    if let Err(e) = self.selector.register(fd, stream_token(id.index())) {
                        io.handle_error(id, e.kind());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    l.ready = false;
                    return;
                }
                Err(e) if sys::is_per_connection_accept_error(&e) => continue,
                Err(e) if sys::is_resource_exhaustion(&e) => {
                    // Tornado used to spin here: the backlog stays readable while accept fails.
                    if !l.warned {
                        tracing::warn!(error = %e, backoff_ms = l.backoff.as_millis() as u64,
                            "accept failed: out of file descriptors or memory; pausing accepts");
                        l.warned = true;
                    }
                    l.paused_until = Some(StdInstant::now() + l.backoff);
                    l.backoff = (l.backoff * 2).min(self.config.accept_backoff_max);
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "accept failed; pausing accepts");
                    l.paused_until = Some(StdInstant::now() + l.backoff);
                    return;
                }
            }
        }
    }

    /// Resumes paused listeners whose back-off expired; returns the earliest remaining pause.
    fn resume_listeners(&mut self, io: &mut IoLoop) -> Option<StdInstant> {
        let now = StdInstant::now();
        let mut earliest: Option<StdInstant> = None;
        for i in 0..self.listeners.len() {
            let Some(l) = self.listeners[i].as_mut() else {
                continue;
            };
            match l.paused_until {
                Some(t) if t <= now => {
                    l.paused_until = None;
                    l.ready = true; // the edge may have passed while paused
                    self.accept_all(io, i);
                }
                _ => {}
            }
            if let Some(Some(l)) = self.listeners.get(i) {
                if let Some(t) = l.paused_until {
                    earliest = Some(earliest.map_or(t, |e: StdInstant| e.min(t)));
                }
            }
        }
        earliest
    }

    fn pending_listeners(&self) -> bool {
        self.listeners
            .iter()
            .flatten()
            .any(|l| l.ready && l.paused_until.is_none())
    }

    fn build_wants(&mut self) {
        self.wants.clear();
        for s in self.streams.iter().flatten() {
            let read = !s.connecting && s.interest.readable && !s.read_ready;
            let write = if s.connecting {
                true
            } else {
                s.interest.writable && !s.write_ready
            };
            if read || write {
                self.wants.push(Want {
                    fd: s.sock.as_raw_fd(),
                    token: stream_token(s.id.index()),
                    read,
                    write,
                });
            }
        }
        for l in self.listeners.iter().flatten() {
            if !l.ready && l.paused_until.is_none() {
                self.wants.push(Want {
                    fd: l.sock.as_raw_fd(),
                    token: listener_token(l.id.index()),
                    read: true,
                    write: false,
                });
            }
        }
    }

    fn dispatch(&mut self, io: &mut IoLoop, ev: Readiness) {
        if ev.token == WAKER_TOKEN {
            io.handle_woken();
            return;
        }
        let index = ev.token >> 1;
        if ev.token & 1 == 1 {
            if let Some(Some(l)) = self.listeners.get_mut(index) {
                l.ready = true;
                self.accept_all(io, index);
            }
            return;
        }
        let Some(Some(s)) = self.streams.get_mut(index) else {
            return; // closed since the event was queued
        };
        let id = s.id;
        if s.connecting {
            self.finish_connect(io, id, ev);
            return;
        }
        s.read_ready |= ev.readable;
        s.write_ready |= ev.writable;
        s.read_closed |= ev.read_closed;
        self.serve_stream(io, id);
    }

    // ===== the turn =====

    /// One iteration: actions, sleep (at most `max_wait`), readiness, one round of callbacks.
    pub(crate) fn turn(
        &mut self,
        io: &mut IoLoop,
        max_wait: Option<Duration>,
    ) -> Result<(), DriverError> {
        self.perform_actions(io);
        let pause_end = self.resume_listeners(io);
        if io.is_stopped() {
            return Ok(());
        }
        let mut timeout = match io.poll_timeout() {
            None => None,
            Some(deadline) if deadline == eddy_core::Instant::MAX => None,
            Some(deadline) => Some(self.clock.until(deadline)),
        };
        if !self.dirty.is_empty() || self.pending_listeners() || io.has_pending_callbacks() {
            timeout = Some(Duration::ZERO);
        }
        if let Some(t) = pause_end {
            let d = t.saturating_duration_since(StdInstant::now());
            timeout = Some(timeout.map_or(d, |x| x.min(d)));
        }
        if let Some(m) = max_wait {
            timeout = Some(timeout.map_or(m, |x| x.min(m)));
        }
        if S::NEEDS_WANTS {
            self.build_wants();
        }
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let waited = self.selector.select(&self.wants, timeout, &mut events);
        if let Err(e) = waited {
            self.events = events;
            return Err(DriverError::Wait(e));
        }
        for ev in events.drain(..) {
            self.dispatch(io, ev);
            // Answer this socket before reading the next one: a reply goes out while the
            // rest of the batch is read, so the peer works in parallel (tokio's interleaving
            // of read and write per task). Rounds stay rounds: work a callback queues still
            // waits for the next one.
            if self.config.round_per_event && io.has_pending_callbacks() {
                io.handle_timeout(self.clock.now());
                self.perform_actions(io);
            }
        }
        self.events = events;
        for i in 0..self.listeners.len() {
            self.accept_all(io, i); // listeners whose burst was used up last time
        }
        io.handle_timeout(self.clock.now());
        // Finish what that round started before polling again: write its output and run the
        // callbacks the writes completed (a flush that closes the connection, then its close
        // callback). Bounded, so I/O is polled again after a few rounds however much work
        // callbacks queue (tokio likewise polls I/O only every so many task polls). Without
        // this, a `Connection: close` answer costs an extra zero-timeout wait per request.
        for _ in 0..FOLLOW_UP_ROUNDS {
            self.perform_actions(io);
            if !io.has_pending_callbacks() || io.is_stopped() {
                break;
            }
            io.handle_timeout(self.clock.now());
        }
        Ok(())
    }

    /// Runs turns until the loop is stopped, then performs the actions queued on the way out.
    pub(crate) fn run_until_stopped(&mut self, io: &mut IoLoop) -> Result<(), DriverError> {
        self.attach(io);
        while !io.is_stopped() {
            self.turn(io, None)?;
        }
        self.perform_actions(io);
        Ok(())
    }
}

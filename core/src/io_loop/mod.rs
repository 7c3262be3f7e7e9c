//! `IoLoop`: Tornado's IOLoop as data — timers, a callback queue, streams and listeners.
//!
//! It owns every piece of loop state and runs user callbacks; it never performs I/O or reads a
//! clock. A driver feeds it inputs (`handle_*`) and drains its outputs (`poll_*`):
//!
//! ```text
//! loop {
//!     while let Some(action) = io.poll_io() { perform(action) }   // listen, connect, interest, close
//!     sleep in the OS until io.poll_timeout() or readiness
//!     for each ready socket: io.read_buf / io.handle_read / io.handle_eof / io.write_chunks /
//!                            io.handle_written / io.handle_accepted / io.handle_connected ...
//!     io.handle_timeout(now)                                       // runs one round of callbacks
//! }
//! ```
//!
//! Inputs never run user code: they queue completions, and `handle_timeout` runs one round of
//! the queue (plus the timers that are due). Work queued during a round waits for the next one,
//! so the driver gets to poll the OS between rounds.
//!
//! This module holds the loop itself (callbacks, timers, rounds, the driver's outputs); its
//! parts live beside it: `streams`, `listeners`, `remote` (handles from other threads and
//! from `Drop`), `task_io` (what tasks need of streams) and `tls`.

use crate::buffer_pool::BufferPool;
use crate::callback::CallbackQueue;
use crate::error::{CloseReason, StreamError};
use crate::file::FileRange;
use crate::slab::{Key, Slab};
use crate::stream::{Chunk, WriteChunks};
use crate::stream::{
    Interest, ReadOutcome, ReadRequest, Stream, StreamState, DEFAULT_MAX_BUFFER_SIZE,
    DEFAULT_READ_CHUNK_SIZE,
};
use crate::task::{TaskHeader, TaskSlot};
use crate::time::{Duration, Instant};
use crate::timer::{TimerHeap, TimerId};
use bytes::buf::Limit;
use bytes::{Bytes, BytesMut};
use core::net::SocketAddr;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

mod listeners;
mod remote;
mod streams;
mod task_io;
mod tls;

pub use listeners::ListenOptions;
use listeners::ListenerEntry;
pub(crate) use remote::RemoteShared;
pub use remote::{LocalHandle, Remote};
pub(crate) use streams::idle_stream_parts;
use streams::{ReadWaiter, StreamEntry};

/// Empty read buffers a loop keeps for reuse (enough for every stream busy in one round).
const READ_POOL_BUFFERS: usize = 256;

/// Names a stream of one loop; stale ids (of closed, freed streams) are recognised.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct StreamId(Key);

/// Names a listener of one loop.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ListenerId(Key);

/// Names a periodic callback of one loop.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PeriodicId(Key);

/// A scheduled timeout, for [`IoLoop::remove_timeout`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimeoutHandle(TimerId);

impl StreamId {
    /// A small number unique among the loop's live streams (slot index), e.g. for a poll token.
    pub fn index(self) -> u32 {
        self.0.index
    }
    /// The slot generation; with `index`, identifies the stream uniquely over the loop's life.
    pub fn generation(self) -> u32 {
        self.0.generation
    }
}

impl ListenerId {
    /// A small number unique among the loop's live listeners.
    pub fn index(self) -> u32 {
        self.0.index
    }
}

type Callback = Box<dyn FnOnce(&mut IoLoop)>;
type ReadCallback = Box<dyn FnOnce(&mut IoLoop, Result<Bytes, StreamError>)>;
type ChunkCallback = Rc<RefCell<dyn FnMut(&mut IoLoop, Bytes)>>;
pub(crate) type FlushCallback = Box<dyn FnOnce(&mut IoLoop, Result<(), StreamError>)>;
type CloseCallback = Box<dyn FnOnce(&mut IoLoop, CloseReason)>;
type ConnectCallback = Box<dyn FnOnce(&mut IoLoop, Result<StreamId, StreamError>)>;
type AcceptCallback = Box<dyn FnMut(&mut IoLoop, StreamId, SocketAddr)>;
type PeriodicCallback = Box<dyn FnMut(&mut IoLoop)>;
type RemoteCallback = Box<dyn FnOnce(&mut IoLoop) + Send>;

/// A long-lived consumer of a stream's bytes (a protocol such as the HTTP server connection).
///
/// Unlike one-shot reads it gets the stream's read buffer itself, so bytes are parsed in place
/// and nothing is allocated per read. It consumes what it can and leaves the rest; to stop
/// reading (back-pressure) it calls [`IoLoop::set_reading`]. If it neither consumes nor pauses,
/// the buffer is bounded by `max_buffer_size` and the stream closes with `BufferFull`.
pub trait StreamHandler {
    /// New bytes are in `buf` (or the peer's end of file, `eof`); consume from the front.
    fn on_readable(&mut self, io: &mut IoLoop, stream: StreamId, buf: &mut BytesMut, eof: bool);
    /// The stream closed; the handler is dropped afterwards.
    fn on_close(&mut self, io: &mut IoLoop, stream: StreamId, reason: CloseReason);
    /// The loop is draining before a graceful stop ([`IoLoop::drain_streams`]): finish the
    /// exchange in progress, then close; close at once if the protocol is idle. The
    /// default does nothing (the stream is closed when the grace period ends).
    fn on_drain(&mut self, io: &mut IoLoop, stream: StreamId) {
        let _ = (io, stream);
    }
}
/// A clock the driver may lend for the slow-callback warning; the core never reads one itself.
pub type Clock = Box<dyn Fn() -> Instant>;

/// Where a callback was registered and the tracing span current then (Tornado's stack_context).
#[derive(Clone)]
pub(crate) struct Origin {
    pub(crate) location: &'static Location<'static>,
    /// The span current at registration; boxed, and only when there is one, so tasks stay
    /// small in the common case of no subscriber or no span.
    pub(crate) span: Option<Box<tracing::Span>>,
}

impl Origin {
    #[track_caller]
    #[inline]
    pub(crate) fn here() -> Origin {
        Origin::at(Location::caller())
    }

    /// The origin of work registered at `location`, in the span current now.
    #[inline]
    pub(crate) fn at(location: &'static Location<'static>) -> Origin {
        // Until any subscriber exists (global or scoped) no span can be current, and asking
        // the dispatcher costs more than the rest of a registration.
        let span = if tracing::dispatcher::has_been_set() {
            Self::boxed(tracing::Span::current())
        } else {
            None
        };
        Origin { location, span }
    }

    fn boxed(span: tracing::Span) -> Option<Box<tracing::Span>> {
        (!span.is_none()).then(|| Box::new(span))
    }
}

/// One unit of work for a round.
pub(crate) struct Task {
    origin: Origin,
    kind: TaskKind,
}

impl Task {
    /// Work of `kind`, run in the context of `origin`.
    pub(crate) fn new(origin: Origin, kind: TaskKind) -> Task {
        Task { origin, kind }
    }
}

pub(crate) enum TaskKind {
    Call(Callback),
    Remote(RemoteCallback),
    Read {
        stream: StreamId,
        result: Result<Bytes, StreamError>,
        callback: ReadCallback,
    },
    Chunk {
        stream: StreamId,
        data: Bytes,
        callback: ChunkCallback,
    },
    Flushed {
        stream: StreamId,
        result: Result<(), StreamError>,
        callback: FlushCallback,
    },
    Closed {
        stream: StreamId,
        reason: CloseReason,
        callback: CloseCallback,
    },
    Connected {
        stream: StreamId,
        result: Result<StreamId, StreamError>,
        callback: ConnectCallback,
    },
    Accept {
        listener: ListenerId,
        stream: StreamId,
        peer: SocketAddr,
    },
    Periodic(PeriodicId),
    Readable(StreamId),
    HandlerClose {
        stream: StreamId,
        reason: CloseReason,
    },
    /// Poll a task (spawned, or woken since the last round).
    Poll(Arc<TaskHeader>),
}

impl TaskKind {
    /// The stream whose in-flight count this task holds, if any.
    fn stream(&self) -> Option<StreamId> {
        match self {
            TaskKind::Read { stream, .. }
            | TaskKind::Chunk { stream, .. }
            | TaskKind::Flushed { stream, .. }
            | TaskKind::Closed { stream, .. }
            | TaskKind::Connected { stream, .. }
            | TaskKind::Accept { stream, .. }
            | TaskKind::Readable(stream)
            | TaskKind::HandlerClose { stream, .. } => Some(*stream),
            _ => None,
        }
    }
}

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    Call(Callback, Origin),
    ConnectTimeout(StreamId),
    /// A TLS handshake (or the flush of a failed session's alert) took too long.
    TlsTimeout(StreamId),
    Periodic(PeriodicId),
    /// A task's timer (`sleep`): wakes the task.
    Wake(Waker),
}

/// An I/O request for the driver, drained with [`IoLoop::poll_io`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoAction {
    /// Bind and listen at `addr`; answer with [`IoLoop::handle_listening`].
    Listen {
        /// The listener.
        listener: ListenerId,
        /// Where to bind (port 0 picks an ephemeral port).
        addr: SocketAddr,
        /// Socket options.
        options: ListenOptions,
    },
    /// Bind and listen on a unix domain socket at `path` (Tornado's `bind_unix_socket`);
    /// answer with [`IoLoop::handle_listening`]. A stale socket file there is replaced, a
    /// live one (something accepts on it) is an `AddrInUse` error. Accepted peers are
    /// reported as `0.0.0.0:0`.
    ListenUnix {
        /// The listener.
        listener: ListenerId,
        /// The socket file's path.
        path: String,
        /// The socket file's permission bits (`0o600`, say).
        mode: u32,
        /// Socket options (the backlog; `reuse_port` does not apply).
        options: ListenOptions,
    },
    /// Stop listening and close the listening socket.
    CloseListener {
        /// The listener.
        listener: ListenerId,
    },
    /// Start a non-blocking connect; answer with [`IoLoop::handle_connected`].
    Connect {
        /// The stream the connection becomes.
        stream: StreamId,
        /// The peer.
        addr: SocketAddr,
    },
    /// The stream's readiness interest may have changed; register this one.
    Interest {
        /// The stream.
        stream: StreamId,
        /// What it wants now.
        interest: Interest,
    },
    /// Shut down the write side (the peer reads end of file); queued bytes are already written.
    ShutdownWrite {
        /// The stream.
        stream: StreamId,
    },
    /// Close the socket and forget the stream.
    Close {
        /// The stream.
        stream: StreamId,
        /// Why; drivers may reset (SO_LINGER 0) on errors.
        reason: CloseReason,
    },
}

/// Internal action queue entry; interest is computed when polled, not when queued.
enum PendingAction {
    Listen(ListenerId),
    CloseListener(ListenerId),
    Connect(StreamId, SocketAddr),
    Interest(StreamId),
    ShutdownWrite(StreamId),
    Close(StreamId, CloseReason),
}

struct PeriodicEntry {
    callback: Option<PeriodicCallback>,
    origin: Origin,
    interval: Duration,
    next: Instant,
    timer: Option<TimerId>,
}

/// Tunables of a loop.
#[derive(Clone, Copy, Debug)]
pub struct LoopConfig {
    /// Default `max_buffer_size` of new streams.
    pub max_buffer_size: usize,
    /// How much a stream reads at once, and how far it reads ahead with no read pending.
    pub read_chunk_size: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            max_buffer_size: DEFAULT_MAX_BUFFER_SIZE,
            read_chunk_size: DEFAULT_READ_CHUNK_SIZE,
        }
    }
}

/// Counters a test or an operator can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Callbacks (of every kind) run so far.
    pub callbacks_run: u64,
    /// Callbacks that panicked (caught, logged, loop went on).
    pub callback_panics: u64,
    /// Callbacks that ran longer than the slow-callback threshold.
    pub slow_callbacks: u64,
    /// Streams accepted so far.
    pub accepted: u64,
    /// Tasks spawned so far.
    pub tasks_spawned: u64,
    /// Tasks that panicked (caught, reported to their `JoinHandle`, loop went on).
    pub task_panics: u64,
}

/// Slow-callback warning settings (Tornado's `set_blocking_signal_threshold`).
struct SlowWarning {
    threshold: Duration,
    clock: Clock,
}

/// Tornado's IOLoop as a state machine; see the module docs for the driver's side.
///
/// The state lives behind one pointer, so making the loop current for a task's poll (see
/// [`crate::task`]) moves 8 bytes, not the whole loop.
pub struct IoLoop {
    state: Box<LoopState>,
}

impl std::ops::Deref for IoLoop {
    type Target = LoopState;
    #[inline(always)]
    fn deref(&self) -> &LoopState {
        &self.state
    }
}

impl std::ops::DerefMut for IoLoop {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut LoopState {
        &mut self.state
    }
}

/// Everything an [`IoLoop`] holds.
pub struct LoopState {
    pub(crate) now: Instant,
    config: LoopConfig,
    pub(crate) timers: TimerHeap<TimerAction>,
    pub(crate) callbacks: CallbackQueue<Task>,
    streams: Slab<StreamEntry>,
    listeners: Slab<ListenerEntry>,
    periodics: Slab<PeriodicEntry>,
    actions: VecDeque<PendingAction>,
    pub(crate) remote: Arc<RemoteShared>,
    pub(crate) local: LocalHandle,
    /// Read buffers lent to streams while they hold unread bytes.
    read_buffers: BufferPool,
    stopped: bool,
    slow: Option<SlowWarning>,
    pub(crate) stats: LoopStats,
    unix_origin_nanos: u64,
    /// Tasks (futures the loop polls), by key; see [`crate::task`].
    pub(crate) tasks: Slab<TaskSlot>,
    /// Tells this loop's task wakers from other loops' on the same thread; 0 is no loop.
    pub(crate) loop_no: u32,
    /// Where `spawn_blocking` sends work; `None` runs it on the loop in a coming round.
    pub(crate) blocking: Option<Rc<dyn crate::task::BlockingPool>>,
    /// Streams whose read result a task took during its poll: checked (close after end of
    /// file, free) once the poll is over, so the task can still answer a half-closed peer.
    pub(crate) streams_to_check: Vec<StreamId>,
}

impl Drop for IoLoop {
    fn drop(&mut self) {
        if !self.tasks.is_empty() {
            self.drop_tasks();
        }
    }
}

impl Default for IoLoop {
    fn default() -> Self {
        IoLoop::new(LoopConfig::default())
    }
}

impl IoLoop {
    /// A loop whose clock starts at [`Instant::ZERO`] until the driver says otherwise.
    pub fn new(config: LoopConfig) -> IoLoop {
        IoLoop {
            state: Box::new(LoopState {
                now: Instant::ZERO,
                config,
                timers: TimerHeap::new(),
                callbacks: CallbackQueue::new(),
                streams: Slab::default(),
                listeners: Slab::default(),
                periodics: Slab::default(),
                actions: VecDeque::new(),
                remote: Arc::new(RemoteShared {
                    queue: Mutex::new(Vec::new()),
                    woken: Mutex::new(Vec::new()),
                    pending: AtomicBool::new(false),
                    waker: Mutex::new(None),
                }),
                local: LocalHandle {
                    queue: Rc::default(),
                },
                read_buffers: BufferPool::new(READ_POOL_BUFFERS, config.read_chunk_size * 2),
                stopped: false,
                slow: None,
                stats: LoopStats::default(),
                unix_origin_nanos: 0,
                tasks: Slab::default(),
                loop_no: crate::task::next_loop_no(),
                blocking: None,
                streams_to_check: Vec::new(),
            }),
        }
    }

    // ===== getters =====

    /// The loop's current time: the last instant the driver handed in.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// True once [`IoLoop::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Counters.
    pub fn stats(&self) -> LoopStats {
        self.stats
    }

    /// The loop's configuration.
    pub fn config(&self) -> LoopConfig {
        self.config
    }

    // ===== application: callbacks and timers =====

    /// Queues `f` for the next round (Tornado's `add_callback`).
    #[track_caller]
    pub fn add_callback(&mut self, f: impl FnOnce(&mut IoLoop) + 'static) {
        self.push_task(Origin::here(), TaskKind::Call(Box::new(f)));
    }

    /// Runs `f` after `delay` (Tornado's `call_later`).
    #[track_caller]
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut IoLoop) + 'static,
    ) -> TimeoutHandle {
        let deadline = self.now + delay;
        self.call_at(deadline, f)
    }

    /// Runs `f` at `deadline` (Tornado's `call_at`); a past deadline runs in the next round.
    #[track_caller]
    pub fn call_at(
        &mut self,
        deadline: Instant,
        f: impl FnOnce(&mut IoLoop) + 'static,
    ) -> TimeoutHandle {
        let action = TimerAction::Call(Box::new(f), Origin::here());
        TimeoutHandle(self.timers.insert(deadline, action))
    }

    /// Cancels a timeout; false if it already ran or was removed.
    pub fn remove_timeout(&mut self, handle: TimeoutHandle) -> bool {
        self.timers.cancel(handle.0).is_some()
    }

    /// Calls `f` every `interval` (Tornado's `PeriodicCallback`), first after one interval.
    ///
    /// Missed ticks are skipped, not run in a burst: after a stall the next tick is the first
    /// multiple of `interval` (from the start) that is still in the future.
    #[track_caller]
    pub fn add_periodic(
        &mut self,
        interval: Duration,
        f: impl FnMut(&mut IoLoop) + 'static,
    ) -> PeriodicId {
        assert!(!interval.is_zero(), "periodic interval must be positive");
        let origin = Origin::here();
        let next = self.now + interval;
        let key = self.periodics.insert(PeriodicEntry {
            callback: Some(Box::new(f)),
            origin,
            interval,
            next,
            timer: None,
        });
        let id = PeriodicId(key);
        let timer = self.timers.insert(next, TimerAction::Periodic(id));
        self.periodics.get_mut(key).expect("just inserted").timer = Some(timer);
        id
    }

    /// Stops a periodic callback; false if it was already stopped.
    pub fn stop_periodic(&mut self, id: PeriodicId) -> bool {
        match self.periodics.remove(id.0) {
            Some(entry) => {
                if let Some(t) = entry.timer {
                    self.timers.cancel(t);
                }
                true
            }
            None => false,
        }
    }

    /// Asks the driver to stop after the current round.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Logs callbacks that run longer than `threshold`, timed with the driver's `clock`.
    pub fn set_slow_callback_warning(&mut self, threshold: Duration, clock: Clock) {
        self.slow = Some(SlowWarning { threshold, clock });
    }

    /// Sets the wall-clock time (Unix nanoseconds) that corresponds to [`Instant::ZERO`]; the
    /// driver calls this once, the simulator picks a fixed date.
    pub fn set_unix_time_origin(&mut self, unix_nanos: u64) {
        self.unix_origin_nanos = unix_nanos;
    }

    /// Wall-clock time now, in Unix seconds (derived from `now` and the driver's origin).
    pub fn unix_time_secs(&self) -> u64 {
        (self.unix_origin_nanos + self.now.as_nanos()) / 1_000_000_000
    }

    // ===== driver: outputs =====

    /// The next I/O action for the driver; drain until `None` after every input and round.
    #[must_use]
    pub fn poll_io(&mut self) -> Option<IoAction> {
        while let Some(action) = self.actions.pop_front() {
            match action {
                PendingAction::Listen(id) => {
                    if let Some(l) = self.listeners.get(id.0) {
                        if !l.closed {
                            return Some(match &l.unix {
                                Some((path, mode)) => IoAction::ListenUnix {
                                    listener: id,
                                    path: path.clone(),
                                    mode: *mode,
                                    options: l.options,
                                },
                                None => IoAction::Listen {
                                    listener: id,
                                    addr: l.addr,
                                    options: l.options,
                                },
                            });
                        }
                    }
                }
                PendingAction::CloseListener(id) => {
                    self.listeners.remove(id.0);
                    return Some(IoAction::CloseListener { listener: id });
                }
                PendingAction::Connect(stream, addr) => {
                    if self.entry(stream).is_some_and(|e| !e.close_queued) {
                        return Some(IoAction::Connect { stream, addr });
                    }
                }
                PendingAction::Interest(stream) => {
                    let unix_nanos = self.unix_origin_nanos + self.now.as_nanos();
                    if let Some(e) = self.entry_mut(stream) {
                        e.interest_queued = false;
                        if e.stream.tls().is_some() && !e.close_queued {
                            // Encrypt what the round queued, so writable means bytes to send.
                            crate::tls::set_loop_time(unix_nanos);
                            e.stream.encrypt_queued();
                            if let Some(kind) = e.stream.take_write_error() {
                                // A file range failed to read: the stream ends with its error.
                                self.close_stream(stream, CloseReason::from_io(kind));
                                continue;
                            }
                        }
                        if !e.close_queued {
                            let interest = e.stream.interest();
                            return Some(IoAction::Interest { stream, interest });
                        }
                    }
                }
                PendingAction::ShutdownWrite(stream) => {
                    if let Some(e) = self.entry_mut(stream) {
                        if !e.close_queued {
                            e.stream.handle_shutdown_done();
                            return Some(IoAction::ShutdownWrite { stream });
                        }
                    }
                }
                PendingAction::Close(stream, reason) => {
                    if let Some(e) = self.entry_mut(stream) {
                        e.driver_closed = true;
                        self.maybe_free(stream);
                        return Some(IoAction::Close { stream, reason });
                    }
                }
            }
        }
        None
    }

    /// Until when the driver may sleep: now if work is queued, else the earliest timer.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.has_pending_callbacks() {
            return Some(self.now);
        }
        self.timers.next_deadline()
    }

    /// True while callbacks wait to run (the driver must not sleep).
    pub fn has_pending_callbacks(&self) -> bool {
        !self.callbacks.is_empty()
            || !self.local.queue.borrow().is_empty()
            || self.remote.pending.load(Ordering::Acquire)
            || crate::task::has_woken_tasks(self.loop_no)
    }

    // ===== driver: inputs =====

    /// Advances the clock to `now` and runs one round: queued callbacks, then due timers.
    ///
    /// Callbacks queued during the round wait for the next one. Calling it spuriously is fine.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.handle_woken();
        if !self.local.queue.borrow().is_empty() {
            self.take_local_callbacks();
        }
        let now = self.now;
        while let Some((_, action)) = self.timers.pop_expired(now) {
            self.fire_timer(action);
        }
        self.take_woken_tasks();
        let round = self.callbacks.begin_round();
        for _ in 0..round {
            let Some(task) = self.callbacks.pop() else {
                break;
            };
            self.run_task(task);
        }
        while let Some(id) = self.streams_to_check.pop() {
            self.after_task(id);
        }
        self.callbacks.shrink_after_burst();
    }

    /// Queues (or performs) what an expired timer does.
    #[inline(never)]
    fn fire_timer(&mut self, action: TimerAction) {
        match action {
            TimerAction::Call(callback, origin) => {
                self.push_task(origin, TaskKind::Call(callback));
            }
            TimerAction::ConnectTimeout(id) => {
                if let Some(e) = self.entry_mut(id) {
                    e.lifecycle.connect_timer = None;
                    self.close_stream(id, CloseReason::ConnectTimeout);
                }
            }
            TimerAction::TlsTimeout(id) => {
                if let Some(e) = self.entry_mut(id) {
                    e.lifecycle.tls_timer = None;
                    let reason = match e.stream.tls_failure() {
                        Some(failure) => CloseReason::Tls(failure),
                        None => CloseReason::Tls(crate::tls::TlsFailure::HandshakeTimeout),
                    };
                    self.close_stream(id, reason);
                }
            }
            TimerAction::Periodic(id) => {
                if let Some(p) = self.periodics.get(id.0) {
                    let origin = p.origin.clone();
                    self.push_task(origin, TaskKind::Periodic(id));
                }
            }
            TimerAction::Wake(waker) => waker.wake(),
        }
    }

    #[inline]
    pub(crate) fn push_task(&mut self, origin: Origin, kind: TaskKind) {
        if let Some(stream) = kind.stream() {
            if let Some(e) = self.streams.get_mut(stream.0) {
                e.in_flight += 1;
            }
        }
        self.callbacks.push(Task { origin, kind });
    }

    fn run_task(&mut self, task: Task) {
        let Task { origin, kind } = task;
        let stream = kind.stream();
        let handler_task = matches!(kind, TaskKind::Readable(_));
        if let Some(id) = stream {
            if let Some(e) = self.entry_mut(id) {
                e.in_flight -= 1;
            }
        }
        let _enter = origin.span.as_deref().map(tracing::Span::enter);
        let started = self.slow.as_ref().map(|s| (s.clock)());
        let result = catch_unwind(AssertUnwindSafe(|| self.dispatch(kind)));
        self.stats.callbacks_run += 1;
        if let Err(panic) = result {
            self.callback_panicked(&origin, &*panic, stream.filter(|_| handler_task));
        }
        if let Some(start) = started {
            self.check_slow(&origin, start);
        }
        if let Some(id) = stream {
            self.after_task(id);
        }
    }

    /// After a task of stream `id` ran: once no task refers to the stream any more, closes it
    /// if end of file left nothing to do, and frees its slot if the driver has closed it.
    /// (`maybe_close_after_eof` then `maybe_free`, with one lookup in the common case.)
    #[inline]
    pub(crate) fn after_task(&mut self, id: StreamId) {
        let Some(e) = self.entry(id) else {
            return;
        };
        if e.in_flight > 0 {
            return;
        }
        if e.driver_closed {
            self.streams.remove(id.0);
        } else if !e.close_queued && e.stream.is_drained_after_eof() {
            self.close_stream(id, CloseReason::Eof);
            self.maybe_free(id);
        }
    }

    /// A callback panicked: counted and logged; a panicking handler's stream is closed.
    #[cold]
    #[inline(never)]
    fn callback_panicked(
        &mut self,
        origin: &Origin,
        panic: &(dyn std::any::Any + Send),
        handler_stream: Option<StreamId>,
    ) {
        self.stats.callback_panics += 1;
        let message = panic_message(panic);
        tracing::error!(origin = %origin.location, panic = %message, "callback panicked; loop continues");
        if let Some(id) = handler_stream {
            self.close_stream(id, CloseReason::Io(io::ErrorKind::Other));
        }
    }

    /// With the slow-callback warning on: warns if the callback that started at `start` ran
    /// longer than the threshold.
    #[cold]
    #[inline(never)]
    fn check_slow(&mut self, origin: &Origin, start: Instant) {
        let Some(slow) = self.slow.as_ref() else {
            return;
        };
        let took = (slow.clock)() - start;
        if took > slow.threshold {
            self.stats.slow_callbacks += 1;
            tracing::warn!(origin = %origin.location, took_ms = took.as_millis() as u64, "slow callback blocked the loop");
        }
    }

    fn dispatch(&mut self, kind: TaskKind) {
        match kind {
            TaskKind::Call(f) => f(self),
            TaskKind::Remote(f) => f(self),
            TaskKind::Read {
                result, callback, ..
            } => callback(self, result),
            TaskKind::Chunk { data, callback, .. } => (callback.borrow_mut())(self, data),
            TaskKind::Flushed {
                result, callback, ..
            } => callback(self, result),
            TaskKind::Closed {
                reason, callback, ..
            } => callback(self, reason),
            TaskKind::Connected {
                result, callback, ..
            } => callback(self, result),
            TaskKind::Accept {
                listener,
                stream,
                peer,
            } => {
                let Some(mut on_accept) = self
                    .listeners
                    .get_mut(listener.0)
                    .and_then(|l| l.on_accept.take())
                else {
                    self.close(stream);
                    return;
                };
                on_accept(self, stream, peer);
                if let Some(l) = self.listeners.get_mut(listener.0) {
                    l.on_accept.get_or_insert(on_accept);
                }
            }
            TaskKind::Periodic(id) => self.run_periodic(id),
            TaskKind::Readable(id) => self.run_handler(id),
            TaskKind::HandlerClose { stream, reason } => {
                let handler = self.entry_mut(stream).and_then(|e| e.handler.take());
                if let Some(mut handler) = handler {
                    handler.on_close(self, stream, reason);
                }
            }
            TaskKind::Poll(header) => self.poll_task(header),
        }
    }

    fn run_periodic(&mut self, id: PeriodicId) {
        let Some(mut callback) = self.periodics.get_mut(id.0).and_then(|p| p.callback.take())
        else {
            return;
        };
        callback(self);
        let now = self.now;
        let Some(p) = self.periodics.get_mut(id.0) else {
            return; // stopped from inside its own callback
        };
        p.callback = Some(callback);
        // Skip missed ticks (Tornado's PeriodicCallback._update_next).
        p.next += p.interval;
        if p.next <= now {
            let interval = p.interval.as_nanos();
            let behind = (now - p.next).as_nanos();
            let skip = u32::try_from(behind / interval + 1).unwrap_or(u32::MAX);
            p.next += p.interval.saturating_mul(skip);
        }
        let next = p.next;
        let timer = self.timers.insert(next, TimerAction::Periodic(id));
        self.periodics.get_mut(id.0).expect("present").timer = Some(timer);
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

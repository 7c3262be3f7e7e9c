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

/// Socket options for [`IoLoop::listen`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// Accept backlog (Tornado's default: 128).
    pub backlog: u32,
    /// Set SO_REUSEPORT so several loops can each accept on their own socket.
    pub reuse_port: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 128,
            reuse_port: false,
        }
    }
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

/// Who waits for a stream's pending read, or the result a task has yet to take.
enum ReadWaiter {
    /// A callback, queued as a task with the result.
    Callback(ReadCallback, Origin),
    /// A task, woken when the result is stored.
    Task(Waker),
    /// The result for a task, held (with the stream's slot) until the task takes it.
    Done(Result<Bytes, StreamError>),
}

/// A stream plus the callbacks waiting on it.
struct StreamEntry {
    stream: Stream,
    on_read: Option<ReadWaiter>,
    on_chunk: Option<(ChunkCallback, Origin)>,
    flush_waiters: VecDeque<(u64, FlushCallback, Origin)>,
    /// The long-lived handler; taken out while it runs.
    handler: Option<Box<dyn StreamHandler>>,
    /// Where the handler was installed: its tasks run in that context.
    handler_origin: Option<Origin>,
    /// A `Readable` task for the handler is queued and has not run yet.
    readable_queued: bool,
    /// Queued tasks that refer to this stream; the slot lives until they have run.
    in_flight: u32,
    /// An `Interest` action is queued and not yet polled.
    interest_queued: bool,
    /// The close side effects happened and a `Close` action was queued.
    close_queued: bool,
    /// The driver has taken the `Close` action (its socket is gone).
    driver_closed: bool,
    /// Connect and close bookkeeping, declared last so the state every read and write
    /// touches stays together.
    lifecycle: Lifecycle,
}

/// The loop's heap parts of one idle stream with a handler and one pending timer, for
/// [`testing::idle_connection_parts`](crate::testing::idle_connection_parts).
pub(crate) fn idle_stream_parts() -> Vec<crate::testing::IdlePart> {
    use crate::testing::IdlePart;
    vec![
        IdlePart {
            what: "stream slot (Slab<StreamEntry>: Stream state, callbacks, handler pointer)",
            bytes: crate::slab::slot_size::<StreamEntry>(),
            own_allocation: false,
        },
        IdlePart {
            what: "idle timer (TimerHeap entry + Slab<TimerAction> slot)",
            bytes: crate::timer::timer_size::<TimerAction>(),
            own_allocation: false,
        },
    ]
}

/// The parts of a stream's entry that only connecting, closing and `peer_addr` use.
struct Lifecycle {
    peer: Option<SocketAddr>,
    on_connect: Option<(ConnectCallback, Origin)>,
    connect_timer: Option<TimerId>,
    on_close: Option<(CloseCallback, Origin)>,
    /// The TLS handshake time-out, while a handshake runs.
    tls_timer: Option<TimerId>,
}

struct ListenerEntry {
    addr: SocketAddr,
    /// A unix domain socket's path and mode, instead of `addr`.
    unix: Option<(String, u32)>,
    options: ListenOptions,
    bound: Option<Result<SocketAddr, io::ErrorKind>>,
    on_accept: Option<AcceptCallback>,
    origin: Origin,
    closed: bool,
    /// A task waiting for the bind result.
    on_bound: Option<Waker>,
}

struct PeriodicEntry {
    callback: Option<PeriodicCallback>,
    origin: Origin,
    interval: Duration,
    next: Instant,
    timer: Option<TimerId>,
}

/// Shared between an [`IoLoop`] and its [`Remote`] handles.
pub(crate) struct RemoteShared {
    queue: Mutex<Vec<(RemoteCallback, &'static Location<'static>, tracing::Span)>>,
    /// Tasks woken from other threads.
    pub(crate) woken: Mutex<Vec<Arc<TaskHeader>>>,
    pending: AtomicBool,
    waker: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

impl RemoteShared {
    /// Marks work as pending and wakes a sleeping driver (once until the loop takes it).
    pub(crate) fn notify(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(wake) = waker {
                wake();
            }
        }
    }
}

/// A `Send + Clone` handle that queues callbacks onto a loop from any thread and wakes it.
#[derive(Clone)]
pub struct Remote {
    shared: Arc<RemoteShared>,
}

impl Remote {
    /// Queues `f` to run on the loop's thread in a coming round, waking the loop if it sleeps.
    #[track_caller]
    pub fn add_callback(&self, f: impl FnOnce(&mut IoLoop) + Send + 'static) {
        let location = Location::caller();
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((Box::new(f), location, tracing::Span::current()));
        self.shared.notify();
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

/// A same-thread handle that queues callbacks onto its loop without `&mut IoLoop` (e.g. from a
/// `Drop` impl); they run in a coming round. Not `Send`: use [`Remote`] across threads.
#[derive(Clone)]
pub struct LocalHandle {
    pub(crate) queue: Rc<RefCell<Vec<(Callback, Origin)>>>,
}

impl LocalHandle {
    /// Queues `f` for a coming round of the loop.
    #[track_caller]
    pub fn add_callback(&self, f: impl FnOnce(&mut IoLoop) + 'static) {
        self.queue.borrow_mut().push((Box::new(f), Origin::here()));
    }
}

impl std::fmt::Debug for LocalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalHandle")
    }
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

    /// A handle for queuing callbacks from other threads.
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.remote.clone(),
        }
    }

    /// A same-thread handle for queuing callbacks where no `&mut IoLoop` is at hand.
    pub fn local_handle(&self) -> LocalHandle {
        self.local.clone()
    }

    /// The stream's buffers and state, for inspection.
    pub fn stream(&self, id: StreamId) -> Option<&Stream> {
        self.streams.get(id.0).map(|e| &e.stream)
    }

    /// True if the stream is closed (or unknown): Tornado's `closed()`.
    pub fn closed(&self, id: StreamId) -> bool {
        self.stream(id).map_or(true, Stream::is_closed)
    }

    /// True while a read is pending on the stream: Tornado's `reading()`.
    pub fn reading(&self, id: StreamId) -> bool {
        self.stream(id).is_some_and(Stream::reading)
    }

    /// True while the stream has bytes queued: Tornado's `writing()`.
    pub fn writing(&self, id: StreamId) -> bool {
        self.stream(id).is_some_and(Stream::writing)
    }

    /// The peer's address, if known.
    pub fn peer_addr(&self, id: StreamId) -> Option<SocketAddr> {
        self.streams.get(id.0).and_then(|e| e.lifecycle.peer)
    }

    /// Live streams (open or closing), in slot order.
    pub fn stream_ids(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.streams.iter().map(|(k, _)| StreamId(k))
    }

    /// Number of streams not yet closed.
    pub fn open_streams(&self) -> usize {
        self.streams
            .iter()
            .filter(|(_, e)| !e.stream.is_closed())
            .count()
    }

    /// The address a listener is bound to (with the real port when 0 was asked), once bound.
    pub fn listener_addr(&self, id: ListenerId) -> Option<SocketAddr> {
        match self.listeners.get(id.0)?.bound {
            Some(Ok(addr)) => Some(addr),
            _ => None,
        }
    }

    /// Why a listener failed to bind, if it did.
    pub fn listener_error(&self, id: ListenerId) -> Option<io::ErrorKind> {
        match self.listeners.get(id.0)?.bound {
            Some(Err(kind)) => Some(kind),
            _ => None,
        }
    }

    /// Live listeners, in slot order.
    pub fn listener_ids(&self) -> impl Iterator<Item = ListenerId> + '_ {
        self.listeners
            .iter()
            .filter(|(_, l)| !l.closed)
            .map(|(k, _)| ListenerId(k))
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

    // ===== application: listeners and connections =====

    /// Listens at `addr`; `on_accept` runs for every accepted stream, with the peer's address.
    #[track_caller]
    pub fn listen(
        &mut self,
        addr: SocketAddr,
        options: ListenOptions,
        on_accept: impl FnMut(&mut IoLoop, StreamId, SocketAddr) + 'static,
    ) -> ListenerId {
        self.add_listener(addr, None, options, Box::new(on_accept), Origin::here())
    }

    fn add_listener(
        &mut self,
        addr: SocketAddr,
        unix: Option<(String, u32)>,
        options: ListenOptions,
        on_accept: AcceptCallback,
        origin: Origin,
    ) -> ListenerId {
        let key = self.listeners.insert(ListenerEntry {
            addr,
            unix,
            options,
            bound: None,
            on_accept: Some(on_accept),
            origin,
            closed: false,
            on_bound: None,
        });
        let id = ListenerId(key);
        self.actions.push_back(PendingAction::Listen(id));
        id
    }

    /// Listens on a unix domain socket at `path` with permission bits `mode` (Tornado's
    /// `bind_unix_socket`); accepted streams work as TCP ones, with peer `0.0.0.0:0`.
    pub fn listen_unix(
        &mut self,
        path: &str,
        mode: u32,
        options: ListenOptions,
        on_accept: impl FnMut(&mut IoLoop, StreamId, SocketAddr) + 'static,
    ) -> ListenerId {
        self.add_listener(
            SocketAddr::from(([0, 0, 0, 0], 0)),
            Some((path.to_owned(), mode)),
            options,
            Box::new(on_accept),
            Origin::here(),
        )
    }

    /// Stops listening; streams already accepted are unaffected.
    pub fn close_listener(&mut self, id: ListenerId) {
        if let Some(l) = self.listeners.get_mut(id.0) {
            if !l.closed {
                l.closed = true;
                self.actions.push_back(PendingAction::CloseListener(id));
            }
        }
    }

    /// Connects to `addr`; `on_connect` gets the stream, or the error (refused, timeout...).
    #[track_caller]
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        timeout: Option<Duration>,
        on_connect: impl FnOnce(&mut IoLoop, Result<StreamId, StreamError>) + 'static,
    ) -> StreamId {
        let origin = Origin::here();
        let mut entry = self.new_entry(StreamState::Connecting, Some(addr));
        entry.lifecycle.on_connect = Some((Box::new(on_connect), origin));
        let id = StreamId(self.streams.insert(entry));
        if let Some(t) = timeout {
            let deadline = self.now + t;
            let timer = self
                .timers
                .insert(deadline, TimerAction::ConnectTimeout(id));
            self.entry_mut(id)
                .expect("just inserted")
                .lifecycle
                .connect_timer = Some(timer);
        }
        self.actions.push_back(PendingAction::Connect(id, addr));
        id
    }

    // ===== application: stream operations =====

    /// Reads up to and including `delimiter`; fails (closing the stream) past `max_bytes`.
    #[track_caller]
    pub fn read_until(
        &mut self,
        id: StreamId,
        delimiter: impl Into<Bytes>,
        max_bytes: Option<usize>,
        on_done: impl FnOnce(&mut IoLoop, Result<Bytes, StreamError>) + 'static,
    ) -> Result<(), StreamError> {
        let request = ReadRequest::Until {
            delimiter: delimiter.into(),
            max_bytes,
        };
        self.start_read(id, request, Box::new(on_done), None, Origin::here())
    }

    /// Reads exactly `n` bytes.
    #[track_caller]
    pub fn read_bytes(
        &mut self,
        id: StreamId,
        n: usize,
        on_done: impl FnOnce(&mut IoLoop, Result<Bytes, StreamError>) + 'static,
    ) -> Result<(), StreamError> {
        let request = ReadRequest::Exactly(n);
        self.start_read(id, request, Box::new(on_done), None, Origin::here())
    }

    /// Reads whatever arrives, at least 1 and at most `max` bytes (a partial read).
    #[track_caller]
    pub fn read_some(
        &mut self,
        id: StreamId,
        max: usize,
        on_done: impl FnOnce(&mut IoLoop, Result<Bytes, StreamError>) + 'static,
    ) -> Result<(), StreamError> {
        let request = ReadRequest::Some(max);
        self.start_read(id, request, Box::new(on_done), None, Origin::here())
    }

    /// Reads everything until the peer closes, bounded by `max_buffer_size`.
    #[track_caller]
    pub fn read_until_close(
        &mut self,
        id: StreamId,
        on_done: impl FnOnce(&mut IoLoop, Result<Bytes, StreamError>) + 'static,
    ) -> Result<(), StreamError> {
        let request = ReadRequest::UntilClose { streaming: false };
        self.start_read(id, request, Box::new(on_done), None, Origin::here())
    }

    /// Reads until the peer closes, handing each chunk to `on_chunk` as it arrives; `on_done`
    /// gets whatever remained at close (usually empty). Not bounded by `max_buffer_size`.
    #[track_caller]
    pub fn read_until_close_streaming(
        &mut self,
        id: StreamId,
        on_chunk: impl FnMut(&mut IoLoop, Bytes) + 'static,
        on_done: impl FnOnce(&mut IoLoop, Result<Bytes, StreamError>) + 'static,
    ) -> Result<(), StreamError> {
        let request = ReadRequest::UntilClose { streaming: true };
        let chunk: ChunkCallback = Rc::new(RefCell::new(on_chunk));
        self.start_read(id, request, Box::new(on_done), Some(chunk), Origin::here())
    }

    /// Queues bytes for writing (no copy). Use [`IoLoop::flush`] to learn when they are written.
    pub fn write(&mut self, id: StreamId, data: impl Into<Bytes>) -> Result<(), StreamError> {
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        let was_writing = entry.stream.writing();
        entry.stream.write(data.into())?;
        if !was_writing {
            self.queue_interest(id);
        }
        Ok(())
    }

    /// Queues a chunk: bytes, or a range of an open file that the driver sends after the
    /// bytes queued before it (zero-copy with `sendfile(2)` on the OS).
    pub fn write_chunk(&mut self, id: StreamId, chunk: Chunk) -> Result<(), StreamError> {
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        let was_writing = entry.stream.writing();
        entry.stream.write_chunk(chunk)?;
        if !was_writing {
            self.queue_interest(id);
        }
        Ok(())
    }

    /// Runs `on_flushed` once every byte queued so far is written, or with the close error.
    #[track_caller]
    pub fn flush(
        &mut self,
        id: StreamId,
        on_flushed: impl FnOnce(&mut IoLoop, Result<(), StreamError>) + 'static,
    ) -> Result<(), StreamError> {
        let origin = Origin::here();
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        let target = entry.stream.total_queued();
        self.flush_to(id, target, Box::new(on_flushed), origin)
    }

    /// Half-closes: once queued bytes are written, the peer reads end of file.
    pub fn shutdown_write(&mut self, id: StreamId) -> Result<(), StreamError> {
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        entry.stream.shutdown_write()?;
        self.maybe_shutdown(id);
        Ok(())
    }

    /// Runs `on_close` when the stream closes (at once, next round, if it already has).
    #[track_caller]
    pub fn set_close_callback(
        &mut self,
        id: StreamId,
        on_close: impl FnOnce(&mut IoLoop, CloseReason) + 'static,
    ) -> Result<(), StreamError> {
        let origin = Origin::here();
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        if entry.close_queued {
            let reason = entry.stream.close_reason().unwrap_or(CloseReason::Local);
            let kind = TaskKind::Closed {
                stream: id,
                reason,
                callback: Box::new(on_close),
            };
            self.push_task(origin, kind);
        } else {
            entry.lifecycle.on_close = Some((Box::new(on_close), origin));
        }
        Ok(())
    }

    /// Sets the stream's read buffer limit.
    pub fn set_max_buffer_size(&mut self, id: StreamId, limit: usize) -> Result<(), StreamError> {
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        entry.stream.set_max_buffer_size(limit);
        self.queue_interest(id);
        Ok(())
    }

    /// Gives the stream to a long-lived handler; see [`StreamHandler`]. No read may be pending.
    ///
    /// The handler runs inside the tracing span current here, like any registered callback.
    #[track_caller]
    pub fn set_handler(
        &mut self,
        id: StreamId,
        handler: Box<dyn StreamHandler>,
    ) -> Result<(), StreamError> {
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        if let Some(reason) = entry.stream.close_reason() {
            return Err(StreamError::Closed(reason));
        }
        entry.stream.set_handled()?;
        entry.handler = Some(handler);
        entry.handler_origin = Some(Origin::here());
        if entry.stream.buffered() > 0 || entry.stream.read_eof() {
            self.queue_readable(id);
        }
        self.queue_interest(id);
        Ok(())
    }

    /// Runs the stream's handler again in the next round even if no byte arrived (e.g. after an
    /// asynchronous response, to parse a pipelined request already buffered).
    pub fn notify_handler(&mut self, id: StreamId) {
        self.queue_readable(id);
    }

    /// Pauses (`false`) or resumes (`true`) reading from the socket (flow control).
    pub fn set_reading(&mut self, id: StreamId, on: bool) {
        if let Some(entry) = self.entry_mut(id) {
            let was = entry.stream.interest();
            entry.stream.set_reading(on);
            if entry.stream.interest() != was {
                self.queue_interest(id);
            }
        }
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

    /// Closes the stream now; queued writes are dropped (flush first to keep them).
    pub fn close(&mut self, id: StreamId) {
        self.close_stream(id, CloseReason::Local);
    }

    /// Closes every stream and listener with [`CloseReason::Shutdown`] (driver stop, host crash).
    pub fn close_all(&mut self) {
        let streams: Vec<StreamId> = self.stream_ids().collect();
        for id in streams {
            self.close_stream(id, CloseReason::Shutdown);
        }
        let listeners: Vec<ListenerId> = self.listener_ids().collect();
        for id in listeners {
            self.close_listener(id);
        }
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

    /// Installs the function a [`Remote`] calls to wake a sleeping driver.
    pub fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        *self.remote.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(wake);
    }

    /// A listener was bound (with its real address) or failed to bind.
    pub fn handle_listening(&mut self, id: ListenerId, result: Result<SocketAddr, io::ErrorKind>) {
        let Some(l) = self.listeners.get_mut(id.0) else {
            return;
        };
        if let Err(kind) = result {
            tracing::error!(addr = %l.addr, error = %kind, origin = %l.origin.location, "listen failed");
        }
        l.bound = Some(result);
        if let Some(waker) = l.on_bound.take() {
            waker.wake();
        }
    }

    /// A connection was accepted; returns the new stream's id (`None`: listener gone, drop it).
    pub fn handle_accepted(&mut self, listener: ListenerId, peer: SocketAddr) -> Option<StreamId> {
        let l = self.listeners.get(listener.0)?;
        if l.closed {
            return None;
        }
        let origin = l.origin.clone();
        let entry = self.new_entry(StreamState::Open, Some(peer));
        let stream = StreamId(self.streams.insert(entry));
        self.stats.accepted += 1;
        self.push_task(
            origin,
            TaskKind::Accept {
                listener,
                stream,
                peer,
            },
        );
        self.queue_interest(stream);
        Some(stream)
    }

    /// A connect finished (or failed with the driver's error kind).
    pub fn handle_connected(&mut self, id: StreamId, result: Result<(), io::ErrorKind>) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if entry.stream.state() != StreamState::Connecting {
            return;
        }
        match result {
            Ok(()) => {
                entry.stream.handle_connected();
                let timer = entry.lifecycle.connect_timer.take();
                let cb = entry.lifecycle.on_connect.take();
                if let Some(t) = timer {
                    self.timers.cancel(t);
                }
                if let Some((callback, origin)) = cb {
                    let kind = TaskKind::Connected {
                        stream: id,
                        result: Ok(id),
                        callback,
                    };
                    self.push_task(origin, kind);
                }
                self.queue_interest(id);
            }
            Err(kind) => self.close_stream(id, CloseReason::from_connect_error(kind)),
        }
    }

    /// Lends the stream's read buffer: read into its spare room (`chunk_mut`), `advance_mut`
    /// by the count, then call [`IoLoop::handle_read`]. `None`: the stream does not read now.
    pub fn read_buf(&mut self, id: StreamId) -> Option<Limit<&mut BytesMut>> {
        let state = &mut *self.state;
        let entry = state.streams.get_mut(id.0)?;
        if entry.close_queued || !entry.stream.interest().readable {
            return None;
        }
        if entry.stream.needs_buffer() {
            if let Some(unused) = entry.stream.install_buffer(state.read_buffers.take()) {
                state.read_buffers.give(unused);
            }
        }
        entry.stream.read_buf()
    }

    /// Returns a stream's drained read buffer to the pool.
    #[inline]
    pub(crate) fn pool_idle_buffer(&mut self, id: StreamId) {
        if let Some(buf) = self
            .streams
            .get_mut(id.0)
            .and_then(|e| e.stream.take_idle_buffer())
        {
            self.read_buffers.give(buf);
        }
    }

    /// `n` bytes were read into the lent buffer (`n > 0`; end of file is [`IoLoop::handle_eof`]).
    pub fn handle_read(&mut self, id: StreamId, n: usize) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if entry.stream.tls().is_some() {
            return self.handle_tls_read(id, n);
        }
        entry.stream.handle_read(n);
        self.after_read_input(id);
    }

    /// Appends bytes read without a lent buffer (a copy; for the simulator and tests).
    pub fn handle_read_bytes(&mut self, id: StreamId, data: &[u8]) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        entry.stream.push_read(data);
        if entry.stream.tls().is_some() {
            return self.handle_tls_read(id, data.len());
        }
        entry.stream.handle_read(data.len());
        self.after_read_input(id);
    }

    /// The peer closed its write side (a read returned 0).
    pub fn handle_eof(&mut self, id: StreamId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if entry.stream.tls_handshaking() {
            // A peer that leaves mid-handshake (a port scan, a health check): a quiet close.
            tracing::debug!(stream = ?id, "peer closed during the TLS handshake");
            self.close_stream(id, CloseReason::Eof);
            return;
        }
        entry.stream.handle_eof();
        self.poll_stream_read(id);
        self.queue_readable(id);
        self.maybe_close_after_eof(id);
        self.queue_interest(id);
    }

    /// A socket error (reset, broken pipe...): the stream closes with the mapped reason.
    pub fn handle_error(&mut self, id: StreamId, kind: io::ErrorKind) {
        self.close_stream(id, CloseReason::from_io(kind));
    }

    /// The queued bytes to write, oldest first (for one vectored write).
    pub fn write_chunks(&self, id: StreamId) -> WriteChunks<'_> {
        self.streams
            .get(id.0)
            .filter(|e| !e.close_queued)
            .map(|e| e.stream.write_chunks())
            .unwrap_or_default()
    }

    /// The file range to send next, when the stream's queue starts with one (then
    /// [`IoLoop::write_chunks`] is empty). Report what was sent with `handle_written`.
    pub fn front_file(&self, id: StreamId) -> Option<&FileRange> {
        self.streams
            .get(id.0)
            .filter(|e| !e.close_queued)
            .and_then(|e| e.stream.front_file())
    }

    /// True when a file range waits somewhere in the stream's write queue (a driver may
    /// tell the kernel that more data follows the bytes before it).
    pub fn file_queued(&self, id: StreamId) -> bool {
        self.streams
            .get(id.0)
            .is_some_and(|e| e.stream.file_queued())
    }

    /// Appends up to `limit` queued bytes to `out`, file ranges read into memory: the write
    /// path of drivers that copy. An `Err` is the file's failure; report it with
    /// [`IoLoop::handle_error`].
    pub fn gather_write(
        &self,
        id: StreamId,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        match self.streams.get(id.0).filter(|e| !e.close_queued) {
            Some(e) => e.stream.gather(limit, out),
            None => Ok(()),
        }
    }

    /// The driver wrote `n` bytes from the front of the stream's queue.
    pub fn handle_written(&mut self, id: StreamId, n: usize) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if entry.close_queued || n == 0 {
            return;
        }
        if entry.stream.tls().is_some() {
            let unix_nanos = self.unix_origin_nanos + self.now.as_nanos();
            crate::tls::set_loop_time(unix_nanos);
        }
        let entry = self.entry_mut(id).expect("checked above");
        entry.stream.handle_written(n);
        if entry.stream.tls().is_some() && self.tls_closes_after_write(id) {
            return;
        }
        loop {
            let Some(entry) = self.entry_mut(id) else {
                return;
            };
            let written = entry.stream.total_written();
            if !entry.flush_waiters.front().is_some_and(|w| w.0 <= written) {
                break;
            }
            let (_, callback, origin) = entry.flush_waiters.pop_front().expect("checked");
            let kind = TaskKind::Flushed {
                stream: id,
                result: Ok(()),
                callback,
            };
            self.push_task(origin, kind);
        }
        if !self.writing(id) {
            self.maybe_shutdown(id);
            self.maybe_close_after_eof(id);
            self.queue_interest(id);
        }
    }

    /// The loop woke up because a [`Remote`] queued work; moves that work into the queue.
    #[inline]
    pub fn handle_woken(&mut self) {
        // A plain load first: the swap is a locked instruction, and nearly every round has
        // nothing from other threads.
        if self.remote.pending.load(Ordering::Acquire)
            && self.remote.pending.swap(false, Ordering::AcqRel)
        {
            self.take_remote_callbacks();
        }
    }

    /// Moves callbacks added through a [`Remote`] into the queue.
    #[inline(never)]
    fn take_remote_callbacks(&mut self) {
        let woken =
            std::mem::take(&mut *self.remote.woken.lock().unwrap_or_else(|e| e.into_inner()));
        for header in woken {
            self.queue_poll(header);
        }
        let drained =
            std::mem::take(&mut *self.remote.queue.lock().unwrap_or_else(|e| e.into_inner()));
        for (callback, location, span) in drained {
            self.push_task(
                Origin {
                    location,
                    span: Origin::boxed(span),
                },
                TaskKind::Remote(callback),
            );
        }
    }

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

    /// Moves callbacks added through a [`LocalHandle`] into the queue.
    #[inline(never)]
    fn take_local_callbacks(&mut self) {
        let local = std::mem::take(&mut *self.local.queue.borrow_mut());
        for (callback, origin) in local {
            self.push_task(origin, TaskKind::Call(callback));
        }
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

    // ===== internals =====

    fn new_entry(&self, state: StreamState, peer: Option<SocketAddr>) -> StreamEntry {
        StreamEntry {
            stream: Stream::new(
                state,
                self.config.max_buffer_size,
                self.config.read_chunk_size,
            ),
            on_read: None,
            on_chunk: None,
            flush_waiters: VecDeque::new(),
            handler: None,
            handler_origin: None,
            readable_queued: false,
            in_flight: 0,
            interest_queued: false,
            close_queued: false,
            driver_closed: false,
            lifecycle: Lifecycle {
                peer,
                on_connect: None,
                connect_timer: None,
                on_close: None,
                tls_timer: None,
            },
        }
    }

    fn entry(&self, id: StreamId) -> Option<&StreamEntry> {
        self.streams.get(id.0)
    }

    fn entry_mut(&mut self, id: StreamId) -> Option<&mut StreamEntry> {
        self.streams.get_mut(id.0)
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

    #[inline]
    pub(crate) fn queue_interest(&mut self, id: StreamId) {
        if let Some(e) = self.streams.get_mut(id.0) {
            if !e.interest_queued && !e.close_queued {
                e.interest_queued = true;
                self.actions.push_back(PendingAction::Interest(id));
            }
        }
    }

    fn start_read(
        &mut self,
        id: StreamId,
        request: ReadRequest,
        on_done: ReadCallback,
        on_chunk: Option<ChunkCallback>,
        origin: Origin,
    ) -> Result<(), StreamError> {
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        match entry.stream.start_read(request) {
            Ok(()) => {}
            Err(StreamError::ReadPending) => return Err(StreamError::ReadPending),
            Err(e) => {
                // A closed stream: the error is an outcome, delivered like any other.
                let kind = TaskKind::Read {
                    stream: id,
                    result: Err(e),
                    callback: on_done,
                };
                self.push_task(origin, kind);
                return Ok(());
            }
        }
        entry.on_chunk = on_chunk.map(|c| (c, origin.clone()));
        entry.on_read = Some(ReadWaiter::Callback(on_done, origin));
        self.poll_stream_read(id);
        self.queue_interest(id);
        Ok(())
    }

    #[inline]
    fn queue_readable(&mut self, id: StreamId) {
        if let Some(e) = self.streams.get_mut(id.0) {
            if e.handler.is_some() && !e.readable_queued && !e.close_queued {
                e.readable_queued = true;
                let origin = e.handler_origin.clone().expect("set with the handler");
                self.push_task(origin, TaskKind::Readable(id));
            }
        }
    }

    fn after_read_input(&mut self, id: StreamId) {
        self.poll_stream_read(id);
        self.queue_readable(id);
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if let Err(e) = entry.stream.check_buffer_limit() {
            self.buffer_overflowed(id, e);
            return;
        }
        self.queue_interest(id);
    }

    /// The read buffer outgrew `max_buffer_size`: the pending read fails and the stream closes.
    #[cold]
    #[inline(never)]
    fn buffer_overflowed(&mut self, id: StreamId, e: StreamError) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if entry.stream.take_pending().is_some() {
            tracing::warn!(stream = ?id, error = %e, "closing stream");
            self.complete_read(id, Err(e));
        }
        self.close_stream(id, CloseReason::BufferFull);
    }

    /// Satisfies the pending read from the buffer if it can, queuing the completion.
    ///
    /// One outcome per call is enough: a completed read leaves no read pending, and a streaming
    /// read takes the whole buffer as one chunk.
    fn poll_stream_read(&mut self, id: StreamId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        let Some(outcome) = entry.stream.poll_read() else {
            return;
        };
        if let ReadOutcome::Done(data) = outcome {
            entry.on_chunk = None;
            self.complete_read(id, Ok(data));
            self.pool_idle_buffer(id);
        } else {
            self.deliver_chunk_or_failure(id, outcome);
        }
    }

    /// Hands a finished read to whoever waits: a callback's task is queued; a task's result is
    /// stored in the entry (keeping the slot alive until taken) and the task woken.
    fn complete_read(&mut self, id: StreamId, result: Result<Bytes, StreamError>) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        match entry.on_read.take() {
            Some(ReadWaiter::Callback(callback, origin)) => {
                let kind = TaskKind::Read {
                    stream: id,
                    result,
                    callback,
                };
                self.push_task(origin, kind);
            }
            Some(ReadWaiter::Task(waker)) => {
                entry.on_read = Some(ReadWaiter::Done(result));
                entry.in_flight += 1;
                waker.wake();
            }
            other @ (Some(ReadWaiter::Done(_)) | None) => {
                debug_assert!(false, "a read completed with no reader");
                entry.on_read = other;
            }
        }
    }

    /// The less common read outcomes: a streaming chunk, or a failed read.
    #[inline(never)]
    fn deliver_chunk_or_failure(&mut self, id: StreamId, outcome: ReadOutcome) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        let (origin, kind) = match outcome {
            ReadOutcome::Chunk(data) => {
                let (callback, origin) = entry.on_chunk.clone().expect("streaming read");
                let kind = TaskKind::Chunk {
                    stream: id,
                    data,
                    callback,
                };
                (origin, kind)
            }
            ReadOutcome::Done(_) => unreachable!("delivered by poll_stream_read"),
            ReadOutcome::Failed(e) => {
                entry.on_chunk = None;
                let closed_by_read = entry.stream.close_reason();
                self.complete_read(id, Err(e));
                self.pool_idle_buffer(id);
                if let Some(reason) = closed_by_read {
                    self.close_stream(id, reason);
                }
                return;
            }
        };
        self.push_task(origin, kind);
        self.pool_idle_buffer(id);
    }

    fn maybe_shutdown(&mut self, id: StreamId) {
        if self.entry(id).is_some_and(|e| e.stream.shutdown_due()) {
            self.actions.push_back(PendingAction::ShutdownWrite(id));
        }
    }

    /// After the peer's end of file, closes the stream once nothing is left to read or write.
    #[inline]
    fn maybe_close_after_eof(&mut self, id: StreamId) {
        let Some(entry) = self.entry(id) else {
            return;
        };
        if entry.in_flight == 0 && !entry.close_queued && entry.stream.is_drained_after_eof() {
            self.close_stream(id, CloseReason::Eof);
        }
    }

    /// Closes a stream once: fails waiters, queues the close callback and the driver action.
    pub(crate) fn close_stream(&mut self, id: StreamId, reason: CloseReason) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if entry.close_queued {
            return;
        }
        entry.stream.close(reason);
        let reason = entry.stream.close_reason().expect("just closed");
        entry.close_queued = true;
        // Buffered bytes may still satisfy the pending read; otherwise it fails.
        self.poll_stream_read(id);
        let entry = self.entry_mut(id).expect("still present");
        let timer = entry.lifecycle.connect_timer.take();
        let tls_timer = entry.lifecycle.tls_timer.take();
        let on_connect = entry.lifecycle.on_connect.take();
        let waiters = std::mem::take(&mut entry.flush_waiters);
        let on_close = entry.lifecycle.on_close.take();
        for t in [timer, tls_timer].into_iter().flatten() {
            self.timers.cancel(t);
        }
        if let Some((callback, origin)) = on_connect {
            let kind = TaskKind::Connected {
                stream: id,
                result: Err(StreamError::Closed(reason)),
                callback,
            };
            self.push_task(origin, kind);
        }
        for (_, callback, origin) in waiters {
            let kind = TaskKind::Flushed {
                stream: id,
                result: Err(StreamError::Closed(reason)),
                callback,
            };
            self.push_task(origin, kind);
        }
        if let Some((callback, origin)) = on_close {
            let kind = TaskKind::Closed {
                stream: id,
                reason,
                callback,
            };
            self.push_task(origin, kind);
        }
        if let Some(origin) = self.entry(id).and_then(|e| e.handler_origin.clone()) {
            self.push_task(origin, TaskKind::HandlerClose { stream: id, reason });
        }
        self.actions.push_back(PendingAction::Close(id, reason));
    }

    /// Frees a closed stream's slot once the driver dropped its socket and no task refers to it.
    #[inline]
    fn maybe_free(&mut self, id: StreamId) {
        if self
            .entry(id)
            .is_some_and(|e| e.driver_closed && e.in_flight == 0)
        {
            self.streams.remove(id.0);
        }
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

    /// True when a [`StreamHandler`] (a protocol such as HTTP) owns the stream.
    pub fn has_stream_handler(&self, id: StreamId) -> bool {
        self.streams.get(id.0).is_some_and(|e| e.handler.is_some())
    }

    /// Asks every stream's handler to finish what it is doing and close
    /// ([`StreamHandler::on_drain`]): the first step of a graceful stop, after the listeners
    /// are closed. Streams without a handler are left alone.
    pub fn drain_streams(&mut self) {
        let ids: Vec<StreamId> = self.stream_ids().collect();
        for id in ids {
            let Some(entry) = self.entry_mut(id) else {
                continue;
            };
            if entry.close_queued {
                continue;
            }
            let Some(mut handler) = entry.handler.take() else {
                continue;
            };
            handler.on_drain(self, id);
            if let Some(entry) = self.entry_mut(id) {
                entry.handler.get_or_insert(handler);
            }
        }
    }

    /// Lends the handler the stream's buffer, then takes both back and re-checks limits.
    fn run_handler(&mut self, id: StreamId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        entry.readable_queued = false;
        if entry.close_queued {
            return;
        }
        let Some(mut handler) = entry.handler.take() else {
            return;
        };
        let eof = entry.stream.read_eof();
        let mut buf = entry.stream.take_read_buf();
        // If the handler panics, `buf` and the handler are dropped during unwinding and
        // `run_task` closes the stream: its protocol state is unknown.
        handler.on_readable(self, id, &mut buf, eof);
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        entry.stream.restore_read_buf(buf);
        entry.handler.get_or_insert(handler);
        self.pool_idle_buffer(id);
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if entry.close_queued {
            return;
        }
        self.after_handler(id);
    }

    fn after_handler(&mut self, id: StreamId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if let Err(e) = entry.stream.check_buffer_limit() {
            tracing::warn!(stream = ?id, error = %e, "handler left too much unconsumed; closing");
            self.close_stream(id, CloseReason::BufferFull);
            return;
        }
        self.queue_interest(id);
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

/// What async streams and listeners need of the loop's internals (see [`crate::task`]).
impl IoLoop {
    /// A task's read: starts `request` (when given) and answers now if it is satisfied, else
    /// registers `waker` to be woken with the result stored in the entry.
    pub(crate) fn poll_task_read(
        &mut self,
        id: StreamId,
        request: Option<ReadRequest>,
        waker: &Waker,
    ) -> std::task::Poll<Result<Bytes, StreamError>> {
        use std::task::Poll;
        let Some(entry) = self.entry_mut(id) else {
            return Poll::Ready(Err(StreamError::UnknownStream));
        };
        if let Some(request) = request {
            if let Err(e) = entry.stream.start_read(request) {
                return Poll::Ready(Err(e));
            }
            entry.on_read = Some(ReadWaiter::Task(waker.clone()));
            self.poll_stream_read(id);
            self.queue_interest(id);
        }
        let Some(entry) = self.entry_mut(id) else {
            return Poll::Ready(Err(StreamError::UnknownStream));
        };
        match entry.on_read.take() {
            Some(ReadWaiter::Done(result)) => {
                entry.in_flight -= 1;
                self.streams_to_check.push(id);
                Poll::Ready(result)
            }
            Some(ReadWaiter::Task(old)) => {
                let waiter = if old.will_wake(waker) {
                    old
                } else {
                    waker.clone()
                };
                entry.on_read = Some(ReadWaiter::Task(waiter));
                Poll::Pending
            }
            other => {
                entry.on_read = other;
                Poll::Ready(Err(StreamError::ReadPending))
            }
        }
    }

    /// A task gave up its read: a pending request is dropped (buffered bytes stay), and a
    /// result it had not taken goes back to the front of the buffer. Loses no byte.
    pub(crate) fn cancel_task_read(&mut self, id: StreamId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        match entry.on_read.take() {
            Some(ReadWaiter::Task(_)) => {
                entry.stream.take_pending();
                self.queue_interest(id);
            }
            Some(ReadWaiter::Done(result)) => {
                entry.in_flight -= 1;
                if let Ok(data) = result {
                    entry.stream.unread(data);
                }
                self.queue_interest(id);
                self.streams_to_check.push(id);
            }
            other => entry.on_read = other,
        }
    }

    /// Runs `on_flushed` once `target` bytes in total have been written (or with the close
    /// error): flush to a mark, for writers that wait for the queue to drain below a level.
    #[track_caller]
    pub(crate) fn flush_until(
        &mut self,
        id: StreamId,
        target: u64,
        on_flushed: FlushCallback,
    ) -> Result<(), StreamError> {
        self.flush_to(id, target, on_flushed, Origin::here())
    }

    /// The one flush: a waiter kept in target order, or an outcome queued at once.
    fn flush_to(
        &mut self,
        id: StreamId,
        target: u64,
        on_flushed: FlushCallback,
        origin: Origin,
    ) -> Result<(), StreamError> {
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        let result = match entry.stream.close_reason() {
            Some(reason) => Err(StreamError::Closed(reason)),
            None if entry.stream.total_written() >= target => Ok(()),
            None => {
                let at = entry.flush_waiters.partition_point(|w| w.0 <= target);
                entry.flush_waiters.insert(at, (target, on_flushed, origin));
                return Ok(());
            }
        };
        self.push_task(
            origin,
            TaskKind::Flushed {
                stream: id,
                result,
                callback: on_flushed,
            },
        );
        Ok(())
    }

    /// Puts `data` back at the front of the stream's read buffer (no read may be pending).
    pub(crate) fn unread(&mut self, id: StreamId, data: Bytes) {
        if let Some(entry) = self.entry_mut(id) {
            entry.stream.unread(data);
        }
    }

    /// Wakes `waker` when the listener is bound or fails to bind (now, if it already has).
    pub(crate) fn poll_listener_bound(
        &mut self,
        id: ListenerId,
        waker: &Waker,
    ) -> std::task::Poll<Result<SocketAddr, io::ErrorKind>> {
        let Some(l) = self.listeners.get_mut(id.0) else {
            return std::task::Poll::Ready(Err(io::ErrorKind::NotConnected));
        };
        match l.bound {
            Some(result) => std::task::Poll::Ready(result),
            None => {
                l.on_bound = Some(waker.clone());
                std::task::Poll::Pending
            }
        }
    }
}

/// TLS streams (see [`crate::tls`]): starting the layer, and what its input and output
/// change for the loop (handshake time-out, a failed session's close).
impl IoLoop {
    /// Starts TLS on a stream: from now on the driver moves ciphertext and the stream's reads
    /// and writes are plaintext. Call it right after accept or connect, before any read.
    ///
    /// A server stream waits for the client's hello; a client stream sends its hello as soon
    /// as it is connected. Writes made before the handshake completes go out after it. The
    /// session's handshake time-out closes the stream with
    /// [`TlsFailure::HandshakeTimeout`](crate::tls::TlsFailure::HandshakeTimeout).
    pub fn start_tls(
        &mut self,
        id: StreamId,
        session: crate::tls::TlsSession,
    ) -> Result<(), StreamError> {
        let unix_nanos = self.unix_origin_nanos + self.now.as_nanos();
        crate::tls::set_loop_time(unix_nanos);
        let timeout = session.handshake_timeout();
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        if let Some(reason) = entry.stream.close_reason() {
            return Err(StreamError::Closed(reason));
        }
        let conn = match session.connect() {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(stream = ?id, error = %e, "TLS session could not start");
                let failure = crate::tls::TlsFailure::from_rustls(&e, true);
                self.close_stream(id, CloseReason::Tls(failure));
                return Err(StreamError::Closed(CloseReason::Tls(failure)));
            }
        };
        entry.stream.start_tls(crate::tls::TlsLayer::new(conn))?;
        if let Some(t) = timeout {
            let deadline = self.now + t;
            let timer = self.timers.insert(deadline, TimerAction::TlsTimeout(id));
            self.entry_mut(id).expect("present").lifecycle.tls_timer = Some(timer);
        }
        self.after_tls_input(id);
        Ok(())
    }

    /// True when the stream runs TLS.
    pub fn is_tls(&self, id: StreamId) -> bool {
        self.entry(id).is_some_and(|e| e.stream.tls().is_some())
    }

    /// The stream's TLS layer (negotiated ALPN, SNI name, peer certificates), if it has one.
    pub fn tls(&self, id: StreamId) -> Option<&crate::tls::TlsLayer> {
        self.entry(id).and_then(|e| e.stream.tls())
    }

    /// Ciphertext arrived: the layer decrypts, then the stream's reads proceed as usual.
    #[inline(never)]
    fn handle_tls_read(&mut self, id: StreamId, n: usize) {
        let unix_nanos = self.unix_origin_nanos + self.now.as_nanos();
        crate::tls::set_loop_time(unix_nanos);
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        entry.stream.handle_read(n);
        self.after_tls_input(id);
    }

    /// After the layer took input: cancel the handshake timer once done, fail a broken
    /// session (after its alert is written), treat `close_notify` as end of file.
    fn after_tls_input(&mut self, id: StreamId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if let Some(failure) = entry.stream.tls_failure() {
            return self.tls_failed(id, failure);
        }
        if !entry.stream.tls_handshaking() {
            if let Some(t) = entry.lifecycle.tls_timer.take() {
                self.timers.cancel(t);
            }
        }
        let entry = self.entry_mut(id).expect("present");
        if entry.stream.read_eof() {
            // close_notify: the same steps as a TCP end of file.
            self.poll_stream_read(id);
            self.queue_readable(id);
            self.maybe_close_after_eof(id);
            self.queue_interest(id);
            return;
        }
        self.after_read_input(id);
    }

    /// A failed session: its alert (if rustls queued one) is written first, bounded by a
    /// time-out, then the stream closes with the failure as its reason.
    #[cold]
    fn tls_failed(&mut self, id: StreamId, failure: crate::tls::TlsFailure) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        if entry.stream.write_queued() == 0 {
            self.close_stream(id, CloseReason::Tls(failure));
            return;
        }
        if entry.lifecycle.tls_timer.is_none() {
            let deadline = self.now + crate::tls::DEFAULT_HANDSHAKE_TIMEOUT;
            let timer = self.timers.insert(deadline, TimerAction::TlsTimeout(id));
            self.entry_mut(id).expect("present").lifecycle.tls_timer = Some(timer);
        }
        self.queue_interest(id);
    }

    /// After ciphertext was written: closes a failed session whose alert is out, or a stream
    /// whose file failed to read. True when the stream closed.
    fn tls_closes_after_write(&mut self, id: StreamId) -> bool {
        let Some(entry) = self.entry_mut(id) else {
            return true;
        };
        if let Some(kind) = entry.stream.take_write_error() {
            self.close_stream(id, CloseReason::from_io(kind));
            return true;
        }
        match entry.stream.tls_failure() {
            Some(failure) if entry.stream.write_queued() == 0 => {
                self.close_stream(id, CloseReason::Tls(failure));
                true
            }
            _ => false,
        }
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

//! Streams: the entry behind each stream (its `Stream`, the callbacks and task waiting on it, its
//! handler), the application's operations on a stream, the driver's stream inputs, and how a
//! stream closes and is freed.

use super::*;

/// Who waits for a stream's pending read, or the result a task has yet to take.
pub(super) enum ReadWaiter {
    /// A callback, queued as a task with the result.
    Callback(ReadCallback, Origin),
    /// A task, woken when the result is stored.
    Task(Waker),
    /// The result for a task, held (with the stream's slot) until the task takes it.
    Done(Result<Bytes, StreamError>),
}

/// A stream plus the callbacks waiting on it.
pub(super) struct StreamEntry {
    pub(super) stream: Stream,
    pub(super) on_read: Option<ReadWaiter>,
    pub(super) on_chunk: Option<(ChunkCallback, Origin)>,
    pub(super) flush_waiters: VecDeque<(u64, FlushCallback, Origin)>,
    /// The long-lived handler; taken out while it runs.
    pub(super) handler: Option<Box<dyn StreamHandler>>,
    /// Where the handler was installed: its tasks run in that context.
    pub(super) handler_origin: Option<Origin>,
    /// A `Readable` task for the handler is queued and has not run yet.
    pub(super) readable_queued: bool,
    /// Queued tasks that refer to this stream; the slot lives until they have run.
    pub(super) in_flight: u32,
    /// An `Interest` action is queued and not yet polled.
    pub(super) interest_queued: bool,
    /// The close side effects happened and a `Close` action was queued.
    pub(super) close_queued: bool,
    /// The driver has taken the `Close` action (its socket is gone).
    pub(super) driver_closed: bool,
    /// Connect and close bookkeeping, declared last so the state every read and write
    /// touches stays together.
    pub(super) lifecycle: Lifecycle,
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
pub(super) struct Lifecycle {
    pub(super) peer: Option<SocketAddr>,
    pub(super) on_connect: Option<(ConnectCallback, Origin)>,
    pub(super) connect_timer: Option<TimerId>,
    pub(super) on_close: Option<(CloseCallback, Origin)>,
    /// The TLS handshake time-out, while a handshake runs.
    pub(super) tls_timer: Option<TimerId>,
}

/// Streams: what the application asks of them, what the driver reports, and their life cycle.
impl IoLoop {
    /// The stream's buffers and state, for inspection.
    pub fn stream(&self, id: StreamId) -> Option<&Stream> {
        self.streams.get(id.0).map(|e| &e.stream)
    }

    /// The peer's address, if known.
    pub fn peer_addr(&self, id: StreamId) -> Option<SocketAddr> {
        self.streams.get(id.0).and_then(|e| e.lifecycle.peer)
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

    // ===== driver: inputs =====

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

    // ===== internals =====

    pub(super) fn new_entry(&self, state: StreamState, peer: Option<SocketAddr>) -> StreamEntry {
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

    pub(super) fn entry(&self, id: StreamId) -> Option<&StreamEntry> {
        self.streams.get(id.0)
    }

    pub(super) fn entry_mut(&mut self, id: StreamId) -> Option<&mut StreamEntry> {
        self.streams.get_mut(id.0)
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

    pub(super) fn start_read(
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
    pub(super) fn queue_readable(&mut self, id: StreamId) {
        if let Some(e) = self.streams.get_mut(id.0) {
            if e.handler.is_some() && !e.readable_queued && !e.close_queued {
                e.readable_queued = true;
                let origin = e.handler_origin.clone().expect("set with the handler");
                self.push_task(origin, TaskKind::Readable(id));
            }
        }
    }

    pub(super) fn after_read_input(&mut self, id: StreamId) {
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
    pub(super) fn buffer_overflowed(&mut self, id: StreamId, e: StreamError) {
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
    pub(super) fn poll_stream_read(&mut self, id: StreamId) {
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
    pub(super) fn complete_read(&mut self, id: StreamId, result: Result<Bytes, StreamError>) {
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
    pub(super) fn deliver_chunk_or_failure(&mut self, id: StreamId, outcome: ReadOutcome) {
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

    pub(super) fn maybe_shutdown(&mut self, id: StreamId) {
        if self.entry(id).is_some_and(|e| e.stream.shutdown_due()) {
            self.actions.push_back(PendingAction::ShutdownWrite(id));
        }
    }

    /// After the peer's end of file, closes the stream once nothing is left to read or write.
    #[inline]
    pub(super) fn maybe_close_after_eof(&mut self, id: StreamId) {
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
    pub(super) fn maybe_free(&mut self, id: StreamId) {
        if self
            .entry(id)
            .is_some_and(|e| e.driver_closed && e.in_flight == 0)
        {
            self.streams.remove(id.0);
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
    pub(super) fn run_handler(&mut self, id: StreamId) {
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

    pub(super) fn after_handler(&mut self, id: StreamId) {
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
}

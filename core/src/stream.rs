//! `Stream`: Tornado's IOStream as data — a read buffer, at most one pending read, a write
//! queue of `Bytes`, and the close state.
//!
//! It owns buffering and read satisfaction; it never holds callbacks (the loop does) and never
//! touches a socket: the driver lends its read buffer, reads into it, and reports `n`.
//! Readiness interest is computed from this state on demand and stored nowhere else.

use crate::error::{CloseReason, StreamError};
use crate::file::FileRange;
use crate::tls::{TlsFailure, TlsLayer};
use bytes::buf::Limit;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::VecDeque;

/// Default `max_buffer_size` (Tornado's: 100 MiB).
pub const DEFAULT_MAX_BUFFER_SIZE: usize = 100 * 1024 * 1024;
/// Default `read_chunk_size` (Tornado's: 64 KiB).
pub const DEFAULT_READ_CHUNK_SIZE: usize = 64 * 1024;
/// First read reservation of a stream; doubles each time a read fills it, up to
/// `read_chunk_size` (like hyper's adaptive read strategy). Small so idle connections are cheap.
pub const INITIAL_READ_SIZE: usize = 2 * 1024;
/// After a buffer larger than this drains, the next reservation starts small again.
pub const IDLE_BUFFER_KEEP: usize = 8 * 1024;

/// Spare room in a read buffer worth lending as it is (less is topped up to the read hint).
const MIN_LENT_ROOM: usize = 1024;
/// The most slices a driver is offered for one vectored write.
pub const MAX_WRITE_SLICES: usize = 64;

/// What a pending read waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadRequest {
    /// Up to and including `delimiter`; fails if not found within `max_bytes`.
    Until {
        /// The byte sequence that ends the read (non-empty).
        delimiter: Bytes,
        /// The most bytes (delimiter included) the read may return.
        max_bytes: Option<usize>,
    },
    /// Exactly `n` bytes.
    Exactly(usize),
    /// Whatever is buffered, at least one byte and at most `max` (a partial read).
    Some(usize),
    /// Everything until the peer closes; with `streaming`, each chunk is handed out as it comes.
    UntilClose {
        /// Hand out chunks as they arrive instead of one buffer at close.
        streaming: bool,
    },
}

/// The result of trying to satisfy the pending read.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The read completed with these bytes.
    Done(Bytes),
    /// A streaming `UntilClose` read produced a chunk and stays pending.
    Chunk(Bytes),
    /// The read failed; the stream may be closed as a consequence (see [`Stream::close_reason`]).
    Failed(StreamError),
}

/// Which readiness a stream wants from the driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Interest {
    /// Wants to know when it can read (or has been closed by the peer).
    pub readable: bool,
    /// Wants to know when it can write (or has connected).
    pub writable: bool,
}

/// Lifecycle of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// A connect is in progress.
    Connecting,
    /// Connected; reads and writes may happen.
    Open,
    /// Closed for good, with the reason.
    Closed(CloseReason),
}

/// Half-close progress of the write side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteSide {
    Open,
    /// `shutdown_write` was asked; it happens once the queue drains.
    ShutdownRequested,
    ShutDown,
}

/// One TCP stream's buffers and state; see the module docs.
#[derive(Debug)]
pub struct Stream {
    state: StreamState,
    read_buf: BytesMut,
    pending: Option<ReadRequest>,
    /// Bytes at the front of `read_buf` known not to start a delimiter match.
    scanned: usize,
    read_eof: bool,
    /// A read has failed on end of file, or an `UntilClose` read completed.
    eof_delivered: bool,
    write_queue: WriteQueue,
    write_queued: usize,
    write_side: WriteSide,
    /// Total bytes ever accepted by `write` and ever reported written.
    total_queued: u64,
    total_written: u64,
    max_buffer_size: usize,
    read_chunk_size: usize,
    /// How much the next read reserves; adapts between `INITIAL_READ_SIZE` and the chunk size.
    read_hint: usize,
    /// Room lent by the last `read_buf`, to see whether the read filled it.
    lent: usize,
    /// A long-lived handler consumes the buffer (no one-shot reads); it reads up to the limit.
    handled: bool,
    /// Reading is paused by the application (flow control).
    paused: bool,
    /// The TLS layer between the socket's bytes and these plaintext buffers, once started.
    tls: Option<Box<TlsLayer>>,
    /// A file range failed to read while being encrypted; the loop closes the stream with it.
    write_error: Option<std::io::ErrorKind>,
}

/// One queued piece of output: bytes in memory, or a range of an open file that the driver
/// sends zero-copy where it can.
#[derive(Debug)]
pub enum Chunk {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A range of an open file.
    File(FileRange),
}

impl From<Bytes> for Chunk {
    fn from(bytes: Bytes) -> Chunk {
        Chunk::Bytes(bytes)
    }
}

impl From<FileRange> for Chunk {
    fn from(range: FileRange) -> Chunk {
        Chunk::File(range)
    }
}

impl Chunk {
    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(f) => usize::try_from(f.len()).unwrap_or(usize::MAX),
        }
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The queued bytes a driver may write now, oldest first: at most [`MAX_WRITE_SLICES`],
/// stopping before a file range ([`Stream::write_chunks`], [`IoLoop::write_chunks`]).
///
/// A flat iterator written by hand: it runs on every write of every stream.
///
/// [`IoLoop::write_chunks`]: crate::IoLoop::write_chunks
#[derive(Debug, Clone, Default)]
pub struct WriteChunks<'a> {
    first: Option<&'a [u8]>,
    rest: Option<std::collections::vec_deque::Iter<'a, Chunk>>,
    left: usize,
}

impl<'a> Iterator for WriteChunks<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        match self.rest.as_mut()?.next() {
            Some(Chunk::Bytes(b)) => Some(b.as_ref()),
            // A file range is sent on its own (`front_file`); nothing after it goes first.
            Some(Chunk::File(_)) | None => {
                self.left = 0;
                None
            }
        }
    }
}

/// The write queue: the front chunk inline, later ones in a deque. A stream that writes
/// one response at a time (keep-alive) never allocates the deque, so an idle stream holds
/// no queue memory. File ranges wait in the deque; the front is always in memory.
#[derive(Debug, Default)]
struct WriteQueue {
    /// The oldest in-memory chunk; empty when the queue is empty or starts with a file.
    front: Bytes,
    rest: VecDeque<Chunk>,
}

impl WriteQueue {
    fn push_back(&mut self, chunk: Chunk) {
        debug_assert!(!chunk.is_empty());
        match chunk {
            Chunk::Bytes(data) if self.front.is_empty() && self.rest.is_empty() => {
                self.front = data;
            }
            chunk => self.rest.push_back(chunk),
        }
    }

    /// Drops `n` bytes from the front, at most one chunk's worth; returns how many it took.
    fn advance(&mut self, n: usize) -> usize {
        if !self.front.is_empty() {
            let take = n.min(self.front.len());
            self.front.advance(take);
            if self.front.is_empty() {
                self.front = Bytes::new(); // an emptied `Bytes` still holds its storage
                self.promote();
            }
            return take;
        }
        match self.rest.front_mut() {
            Some(Chunk::File(range)) => {
                let take = n.min(usize::try_from(range.len()).unwrap_or(usize::MAX));
                range.advance(take as u64);
                if range.is_empty() {
                    self.rest.pop_front();
                    self.promote();
                }
                take
            }
            Some(Chunk::Bytes(_)) => unreachable!("in-memory chunks are promoted to the front"),
            None => panic!("queued bytes accounted"),
        }
    }

    /// Moves the next chunk into `front` if it is in memory.
    fn promote(&mut self) {
        if let Some(Chunk::Bytes(_)) = self.rest.front() {
            let Some(Chunk::Bytes(data)) = self.rest.pop_front() else {
                unreachable!()
            };
            self.front = data;
        }
    }

    /// The file range at the front of the queue, if the queue starts with one.
    fn front_file(&self) -> Option<&FileRange> {
        match self.rest.front() {
            Some(Chunk::File(range)) if self.front.is_empty() => Some(range),
            _ => None,
        }
    }

    fn clear(&mut self) {
        self.front = Bytes::new();
        self.rest = VecDeque::new();
    }
}

impl Stream {
    /// A stream in `state` (`Open` for accepted streams, `Connecting` for outgoing ones).
    pub fn new(state: StreamState, max_buffer_size: usize, read_chunk_size: usize) -> Stream {
        assert!(read_chunk_size > 0, "read_chunk_size must be positive");
        Stream {
            state,
            read_buf: BytesMut::new(),
            pending: None,
            scanned: 0,
            read_eof: false,
            eof_delivered: false,
            write_queue: WriteQueue::default(),
            write_queued: 0,
            write_side: WriteSide::Open,
            total_queued: 0,
            total_written: 0,
            max_buffer_size,
            read_chunk_size,
            read_hint: INITIAL_READ_SIZE.min(read_chunk_size),
            lent: 0,
            handled: false,
            paused: false,
            tls: None,
            write_error: None,
        }
    }

    // ----- getters -----

    /// Current lifecycle state.
    pub fn state(&self) -> StreamState {
        self.state
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, StreamState::Closed(_))
    }

    /// Why the stream closed, if it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.state {
            StreamState::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// True while a read is pending (Tornado's `reading()`).
    pub fn reading(&self) -> bool {
        self.pending.is_some()
    }

    /// True while bytes wait to be written (Tornado's `writing()`).
    pub fn writing(&self) -> bool {
        self.write_queued() > 0
    }

    /// Bytes buffered for reading and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.read_buf.len()
    }

    /// Bytes queued for writing and not yet written (on a TLS stream: plaintext not yet
    /// encrypted plus ciphertext not yet written).
    pub fn write_queued(&self) -> usize {
        match &self.tls {
            None => self.write_queued,
            Some(tls) => self.write_queued + tls.outgoing().len(),
        }
    }

    /// Total bytes ever queued by `write`; a flush waiter waits for `total_written` to reach it.
    pub fn total_queued(&self) -> u64 {
        self.total_queued
    }

    /// Total bytes the driver has reported written.
    pub fn total_written(&self) -> u64 {
        self.total_written
    }

    /// True once the peer's end of file has been read.
    pub fn read_eof(&self) -> bool {
        self.read_eof
    }

    /// The buffer limit; exceeding it closes the stream with [`CloseReason::BufferFull`].
    pub fn max_buffer_size(&self) -> usize {
        self.max_buffer_size
    }

    /// Sets the buffer limit.
    pub fn set_max_buffer_size(&mut self, limit: usize) {
        self.max_buffer_size = limit;
    }

    /// The readiness this stream wants, derived from its state.
    ///
    /// Readable while open, before end of file, not paused, and either a read is pending, a
    /// handler consumes the buffer, or the buffer has room for read-ahead (one
    /// `read_chunk_size`), which also notices a peer that goes away.
    /// Writable while connecting or while bytes are queued.
    pub fn interest(&self) -> Interest {
        if let Some(tls) = &self.tls {
            return self.tls_interest(tls);
        }
        match self.state {
            StreamState::Connecting => Interest {
                readable: false,
                writable: true,
            },
            StreamState::Closed(_) => Interest::default(),
            StreamState::Open => Interest {
                readable: !self.read_eof
                    && !self.paused
                    && (self.pending.is_some()
                        || self.handled
                        || self.read_buf.len() < self.read_chunk_size)
                    && self.read_buf.len() <= self.max_buffer_size,
                writable: self.write_queued > 0,
            },
        }
    }

    /// True when, after end of file, nothing is left to do: the stream may close.
    ///
    /// Half-close: after the peer's end of file the stream stays open while the application
    /// still has bytes to read or write, so a reply to a half-closed request is delivered.
    pub fn is_drained_after_eof(&self) -> bool {
        self.state == StreamState::Open
            && self.read_eof
            && self.pending.is_none()
            && self.write_queued() == 0
            && (self.read_buf.is_empty() || self.eof_delivered)
    }

    /// True when a requested write shutdown can be performed now (queue drained).
    pub fn shutdown_due(&self) -> bool {
        self.write_side == WriteSide::ShutdownRequested
            && self.write_queued() == 0
            && self.tls.as_ref().map_or(true, |t| t.close_notify_sent())
    }

    // ----- application mutators -----

    /// Starts a read; at most one may be pending.
    pub fn start_read(&mut self, request: ReadRequest) -> Result<(), StreamError> {
        if let StreamState::Closed(reason) = self.state {
            // Tornado lets buffered data satisfy reads after close; we do the same below.
            if self.read_buf.is_empty() || matches!(request, ReadRequest::UntilClose { .. }) {
                return Err(StreamError::Closed(reason));
            }
        }
        if self.pending.is_some() || self.handled {
            return Err(StreamError::ReadPending);
        }
        if let ReadRequest::Until { delimiter, .. } = &request {
            assert!(
                !delimiter.is_empty(),
                "read_until needs a non-empty delimiter"
            );
        }
        self.scanned = 0;
        self.pending = Some(request);
        Ok(())
    }

    /// Queues bytes for writing.
    pub fn write(&mut self, data: Bytes) -> Result<(), StreamError> {
        self.push_chunk(Chunk::Bytes(data))
    }

    /// Queues a chunk: bytes, or a range of an open file sent after the bytes before it.
    pub fn write_chunk(&mut self, chunk: Chunk) -> Result<(), StreamError> {
        self.push_chunk(chunk)
    }

    fn push_chunk(&mut self, chunk: Chunk) -> Result<(), StreamError> {
        if let StreamState::Closed(reason) = self.state {
            return Err(StreamError::Closed(reason));
        }
        if self.write_side != WriteSide::Open {
            return Err(StreamError::WriteShutdown);
        }
        let len = chunk.len();
        if len == 0 {
            return Ok(());
        }
        self.write_queued = self.write_queued.saturating_add(len);
        self.total_queued += len as u64;
        self.write_queue.push_back(chunk);
        Ok(())
    }

    /// Asks for the write side to be shut down once queued bytes are written.
    pub fn shutdown_write(&mut self) -> Result<(), StreamError> {
        if let StreamState::Closed(reason) = self.state {
            return Err(StreamError::Closed(reason));
        }
        if self.write_side == WriteSide::Open {
            self.write_side = WriteSide::ShutdownRequested;
        }
        Ok(())
    }

    /// Closes the stream (idempotent: the first reason wins). Queued writes are dropped.
    pub fn close(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        self.state = StreamState::Closed(reason);
        self.write_queue.clear();
        self.write_queued = 0;
        if let Some(tls) = &mut self.tls {
            tls.clear_output();
        }
    }

    /// Hands the buffer to a long-lived handler from now on (one-shot reads are refused).
    pub fn set_handled(&mut self) -> Result<(), StreamError> {
        if self.pending.is_some() {
            return Err(StreamError::ReadPending);
        }
        self.handled = true;
        Ok(())
    }

    /// True when a long-lived handler consumes this stream's buffer.
    pub fn is_handled(&self) -> bool {
        self.handled
    }

    /// Pauses (`false`) or resumes (`true`) reading from the socket; buffered bytes stay.
    pub fn set_reading(&mut self, on: bool) {
        self.paused = !on;
    }

    /// Lends the whole read buffer to a handler; give it back with [`Stream::restore_read_buf`].
    pub fn take_read_buf(&mut self) -> BytesMut {
        if self.read_eof {
            self.eof_delivered = true;
        }
        std::mem::take(&mut self.read_buf)
    }

    /// Returns the buffer lent by [`Stream::take_read_buf`], with what the handler left in it.
    pub fn restore_read_buf(&mut self, buf: BytesMut) {
        debug_assert!(
            self.read_buf.is_empty(),
            "nothing is read while a handler runs"
        );
        self.read_buf = buf;
    }

    /// Puts bytes a read took back at the front of the buffer (a cancelled read's result).
    pub fn unread(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let mut buf = BytesMut::with_capacity(data.len() + self.read_buf.len());
        buf.extend_from_slice(&data);
        buf.extend_from_slice(&self.read_buf);
        self.read_buf = buf;
        self.scanned = 0;
    }

    /// Drops the pending read, returning it (used when the loop fails it on close).
    pub fn take_pending(&mut self) -> Option<ReadRequest> {
        self.pending.take()
    }

    // ----- driver inputs -----

    /// Marks a connect as finished.
    pub fn handle_connected(&mut self) {
        if self.state == StreamState::Connecting {
            self.state = StreamState::Open;
        }
    }

    /// Lends the read buffer: read at most `chunk_mut().len()` bytes into it, `advance_mut`
    /// by the count read, then call [`Stream::handle_read`] with that count.
    ///
    /// `None` when the stream does not want to read now. The lent room ends one byte past
    /// `max_buffer_size`, so a reader that would overflow is noticed without unbounded growth.
    pub fn read_buf(&mut self) -> Option<Limit<&mut BytesMut>> {
        if !self.interest().readable {
            return None;
        }
        let room = (self.max_buffer_size + 1)
            .saturating_sub(self.read_buf.len())
            .min(self.read_hint);
        if room == 0 {
            return None;
        }
        // A TLS stream lends its ciphertext buffer; plaintext appears after `handle_read`.
        let buf = match &mut self.tls {
            Some(tls) => tls.incoming_mut(),
            None => &mut self.read_buf,
        };
        // Room left behind earlier reads is lent as it is while there is enough of it: a
        // request head split off the buffer may still be alive in a handler, and reserving
        // now would allocate a new buffer per request instead of filling this one.
        let spare = buf.capacity() - buf.len();
        let room = if spare >= room.min(MIN_LENT_ROOM) {
            spare.min(room)
        } else {
            buf.reserve(room);
            room
        };
        self.lent = room;
        Some(buf.limit(room))
    }

    /// Appends bytes without a lent buffer (a copy; the simulator and tests use this).
    pub fn push_read(&mut self, data: &[u8]) {
        match &mut self.tls {
            Some(tls) => tls.incoming_mut().extend_from_slice(data),
            None => self.read_buf.extend_from_slice(data),
        }
    }

    /// Records that `n` bytes were read into the lent buffer (they are already in it).
    ///
    /// Then call [`Stream::poll_read`] until it returns `None`, then
    /// [`Stream::check_buffer_limit`].
    pub fn handle_read(&mut self, n: usize) {
        if let Some(tls) = &mut self.tls {
            tls.process(&mut self.read_buf);
            self.after_tls_input();
        }
        debug_assert!(self.tls.is_some() || n <= self.read_buf.len());
        if n >= self.lent && self.lent >= self.read_hint {
            // The read filled the room: the peer sends faster than we reserve.
            self.read_hint = (self.read_hint * 2).min(self.read_chunk_size);
        }
        self.lent = 0;
    }

    /// Takes the read buffer out if it is empty and allocated, for the loop's buffer pool
    /// (an idle connection then holds no read memory).
    pub fn take_idle_buffer(&mut self) -> Option<BytesMut> {
        if !self.read_buf.is_empty() || self.read_buf.capacity() == 0 {
            return None;
        }
        if self.read_buf.capacity() > IDLE_BUFFER_KEEP {
            self.read_hint = INITIAL_READ_SIZE.min(self.read_chunk_size);
        }
        Some(std::mem::take(&mut self.read_buf))
    }

    /// True when the stream holds no read buffer (one may be installed from a pool).
    pub fn needs_buffer(&self) -> bool {
        self.read_buf.capacity() == 0
    }

    /// Installs an empty (pooled) buffer when the stream has none allocated.
    pub fn install_buffer(&mut self, buf: BytesMut) -> Option<BytesMut> {
        if self.needs_buffer() {
            self.read_buf = buf;
            None
        } else {
            Some(buf)
        }
    }

    /// Closes the stream with [`CloseReason::BufferFull`] if, after the pending read took what
    /// it could, more than `max_buffer_size` bytes remain buffered.
    pub fn check_buffer_limit(&mut self) -> Result<(), StreamError> {
        if self.read_buf.len() > self.max_buffer_size && !self.is_closed() {
            self.close(CloseReason::BufferFull);
            return Err(StreamError::BufferFull {
                limit: self.max_buffer_size,
            });
        }
        Ok(())
    }

    /// Records the peer's end of file.
    pub fn handle_eof(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.handle_eof(&mut self.read_buf);
            self.after_tls_input();
        }
        self.read_eof = true;
    }

    /// The queued bytes, oldest first, for a vectored write of at most [`MAX_WRITE_SLICES`];
    /// it stops before a file range (see [`Stream::front_file`]).
    pub fn write_chunks(&self) -> WriteChunks<'_> {
        // A TLS stream offers its ciphertext; its plaintext queue is the layer's input.
        if let Some(tls) = self.tls.as_deref() {
            let out = tls.outgoing();
            return WriteChunks {
                first: Some(out).filter(|c| !c.is_empty()),
                rest: None,
                left: 1,
            };
        }
        let front = &self.write_queue.front;
        WriteChunks {
            first: Some(front.as_ref()).filter(|b| !b.is_empty()),
            rest: Some(self.write_queue.rest.iter()),
            left: MAX_WRITE_SLICES,
        }
    }

    /// True when a file range waits somewhere in the write queue (never on a TLS stream:
    /// its files are encrypted through the layer, not sent by the driver).
    pub fn file_queued(&self) -> bool {
        self.tls.is_none()
            && self
                .write_queue
                .rest
                .iter()
                .any(|c| matches!(c, Chunk::File(_)))
    }

    /// The file range to send next, when the queue starts with one (never on a TLS stream).
    pub fn front_file(&self) -> Option<&FileRange> {
        match self.tls {
            Some(_) => None,
            None => self.write_queue.front_file(),
        }
    }

    /// Appends up to `limit` queued bytes to `out`, reading file ranges (for drivers that
    /// copy: the simulator, test harnesses, a TLS layer). A file that fails to read is an
    /// error only when nothing could be gathered before it; it fails again next time.
    pub fn gather(&self, limit: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
        if let Some(tls) = &self.tls {
            let c = tls.outgoing();
            out.extend_from_slice(&c[..limit.min(c.len())]);
            return Ok(());
        }
        let start = out.len();
        let chunks = core::iter::once(&self.write_queue.front)
            .filter(|b| !b.is_empty())
            .map(|b| (Some(b), None))
            .chain(self.write_queue.rest.iter().map(|c| match c {
                Chunk::Bytes(b) => (Some(b), None),
                Chunk::File(f) => (None, Some(f)),
            }));
        for (bytes, file) in chunks {
            let room = limit - (out.len() - start);
            if room == 0 {
                break;
            }
            if let Some(bytes) = bytes {
                out.extend_from_slice(&bytes[..room.min(bytes.len())]);
                continue;
            }
            let Some(file) = file else { continue };
            let mut range = file.clone();
            while !range.is_empty() && out.len() - start < limit {
                let at = out.len();
                let want = (limit - (at - start)).min(64 * 1024);
                out.resize(at + want, 0);
                match range.read_front(&mut out[at..]) {
                    Ok(n) => {
                        out.truncate(at + n);
                        range.advance(n as u64);
                    }
                    Err(e) => {
                        out.truncate(at);
                        return if out.len() > start { Ok(()) } else { Err(e) };
                    }
                }
            }
            if !range.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// Records that the driver wrote `n` bytes from the front of the queue.
    pub fn handle_written(&mut self, mut n: usize) {
        if let Some(tls) = &mut self.tls {
            assert!(
                n <= tls.outgoing().len(),
                "driver wrote more than was queued"
            );
            if let Some(plain) = tls.handle_written(n) {
                self.total_written = plain;
            }
            self.encrypt_queued();
            return;
        }
        assert!(n <= self.write_queued, "driver wrote more than was queued");
        self.write_queued -= n;
        self.total_written += n as u64;
        while n > 0 {
            n -= self.write_queue.advance(n);
        }
    }

    /// Records that the write side was shut down by the driver.
    pub fn handle_shutdown_done(&mut self) {
        self.write_side = WriteSide::ShutDown;
    }

    // ----- TLS -----

    /// Puts a TLS layer between the socket and this stream's buffers. Bytes already read
    /// (e.g. a client hello that raced the accept callback) become the layer's input.
    ///
    /// Refused while a read is pending or a handler consumes the buffer, or if already TLS.
    pub fn start_tls(&mut self, layer: TlsLayer) -> Result<(), StreamError> {
        if let StreamState::Closed(reason) = self.state {
            return Err(StreamError::Closed(reason));
        }
        if self.pending.is_some() || self.handled || self.tls.is_some() {
            return Err(StreamError::ReadPending);
        }
        let mut layer = Box::new(layer);
        if !self.read_buf.is_empty() {
            let early = self.read_buf.split();
            layer.incoming_mut().extend_from_slice(&early);
        }
        self.tls = Some(layer);
        self.lent = 0;
        if self.tls.as_ref().is_some_and(|t| !t.incoming_is_empty()) {
            self.handle_read(0);
        }
        Ok(())
    }

    /// The TLS layer, when the stream has one (ALPN, SNI name, peer certificates).
    pub fn tls(&self) -> Option<&TlsLayer> {
        self.tls.as_deref()
    }

    /// True while a TLS handshake is in progress.
    pub fn tls_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// The TLS failure that ends this stream, once one happened (its alert may still be
    /// queued for the peer).
    pub fn tls_failure(&self) -> Option<TlsFailure> {
        self.tls.as_ref().and_then(|t| t.failure())
    }

    /// A file that failed to read while being encrypted: the error, once.
    pub fn take_write_error(&mut self) -> Option<std::io::ErrorKind> {
        self.write_error.take()
    }

    /// Encrypts queued plaintext (bytes and file ranges) while the layer has room; queues
    /// `close_notify` once a requested write shutdown has nothing left before it.
    ///
    /// The loop calls it before it reports interest, so a driver never sees a TLS stream
    /// writable with nothing to write.
    pub fn encrypt_queued(&mut self) {
        if self.is_closed_state() {
            return;
        }
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
        };
        // Bounded: each turn encrypts at least one byte or stops.
        while self.write_queued > 0 && tls.wants_plaintext() {
            let n = if !self.write_queue.front.is_empty() {
                tls.encrypt(&self.write_queue.front)
            } else if let Some(range) = self.write_queue.front_file() {
                let mut scratch = vec![0u8; range.len().min(64 * 1024) as usize];
                match range.read_front(&mut scratch) {
                    Ok(0) => {
                        self.write_error = Some(std::io::ErrorKind::UnexpectedEof);
                        return;
                    }
                    Ok(got) => tls.encrypt(&scratch[..got]),
                    Err(e) => {
                        self.write_error = Some(e.kind());
                        return;
                    }
                }
            } else {
                0
            };
            if n == 0 {
                break;
            }
            self.write_queued -= n;
            let mut left = n;
            while left > 0 {
                left -= self.write_queue.advance(left);
            }
        }
        if self.write_side == WriteSide::ShutdownRequested && self.write_queued == 0 {
            tls.send_close_notify();
        }
    }

    fn is_closed_state(&self) -> bool {
        matches!(self.state, StreamState::Closed(_))
    }

    /// After the layer took input: a `close_notify` is the plaintext end of file, and a
    /// finished handshake lets queued plaintext go.
    fn after_tls_input(&mut self) {
        let Some(tls) = &self.tls else { return };
        if tls.peer_closed() {
            self.read_eof = true;
        }
        if tls.failure().is_some() {
            // Nothing more is sent but the alert already queued.
            self.write_queue.clear();
            self.write_queued = 0;
            return;
        }
        self.encrypt_queued();
    }

    /// Readiness of a TLS stream: reads while handshaking (the handshake must progress even
    /// with reading paused) or while the plaintext side would read; writes while ciphertext
    /// is queued.
    fn tls_interest(&self, tls: &TlsLayer) -> Interest {
        match self.state {
            StreamState::Connecting => Interest {
                readable: false,
                writable: true,
            },
            StreamState::Closed(_) => Interest::default(),
            StreamState::Open => {
                let plain_readable = !self.paused
                    && (self.pending.is_some()
                        || self.handled
                        || self.read_buf.len() < self.read_chunk_size)
                    && self.read_buf.len() <= self.max_buffer_size;
                Interest {
                    readable: !self.read_eof
                        && tls.failure().is_none()
                        && (tls.is_handshaking() || plain_readable),
                    writable: !tls.outgoing().is_empty(),
                }
            }
        }
    }

    // ----- outputs -----

    /// Tries to satisfy the pending read from the buffer; `None` if it must wait.
    ///
    /// Call after every input that can change the answer (read, eof, close, a new read).
    pub fn poll_read(&mut self) -> Option<ReadOutcome> {
        let request = self.pending.as_ref()?;
        let closed = self.is_closed() || self.read_eof;
        let outcome = match request {
            ReadRequest::Until {
                delimiter,
                max_bytes,
            } => {
                let dlen = delimiter.len();
                let from = self.scanned.saturating_sub(dlen - 1);
                match find(&self.read_buf[from..], delimiter) {
                    Some(pos) => {
                        let end = from + pos + dlen;
                        match max_bytes {
                            Some(max) if end > *max => self.unsatisfiable(*max),
                            _ => ReadOutcome::Done(self.take(end)),
                        }
                    }
                    None => {
                        self.scanned = self.read_buf.len();
                        match max_bytes {
                            Some(max) if self.read_buf.len() >= *max => self.unsatisfiable(*max),
                            _ if closed => self.fail_closed(),
                            _ => return None,
                        }
                    }
                }
            }
            ReadRequest::Exactly(n) => {
                let n = *n;
                if self.read_buf.len() >= n {
                    ReadOutcome::Done(self.take(n))
                } else if closed {
                    self.fail_closed()
                } else {
                    return None;
                }
            }
            ReadRequest::Some(max) => {
                let max = (*max).max(1);
                if !self.read_buf.is_empty() {
                    ReadOutcome::Done(self.take(self.read_buf.len().min(max)))
                } else if closed {
                    self.fail_closed()
                } else {
                    return None;
                }
            }
            ReadRequest::UntilClose { streaming } => {
                if closed && self.eof_delivered && self.read_buf.is_empty() {
                    // End of file was already handed out: a second read-until-close is an
                    // error, not an endless stream of empty successes.
                    self.fail_closed()
                } else if closed {
                    self.eof_delivered = true;
                    let all = self.take(self.read_buf.len());
                    ReadOutcome::Done(all)
                } else if *streaming && !self.read_buf.is_empty() {
                    return Some(ReadOutcome::Chunk(self.take_chunk()));
                } else {
                    return None;
                }
            }
        };
        self.pending = None;
        self.scanned = 0;
        Some(outcome)
    }

    fn take(&mut self, n: usize) -> Bytes {
        self.read_buf.split_to(n).freeze()
    }

    fn take_chunk(&mut self) -> Bytes {
        let n = self.read_buf.len();
        self.take(n)
    }

    fn unsatisfiable(&mut self, max_bytes: usize) -> ReadOutcome {
        self.close(CloseReason::Unsatisfiable);
        ReadOutcome::Failed(StreamError::Unsatisfiable { max_bytes })
    }

    fn fail_closed(&mut self) -> ReadOutcome {
        let reason = self.close_reason().unwrap_or(CloseReason::Eof);
        if reason == CloseReason::Eof {
            self.eof_delivered = true;
        }
        ReadOutcome::Failed(StreamError::Closed(reason))
    }
}

/// First position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Stream {
        Stream::new(StreamState::Open, 1024, 64)
    }

    fn feed(s: &mut Stream, data: &[u8]) -> Result<(), StreamError> {
        s.push_read(data);
        s.handle_read(data.len());
        s.check_buffer_limit()
    }

    #[test]
    fn read_until_finds_delimiter_split_across_reads() {
        let mut s = open();
        s.start_read(ReadRequest::Until {
            delimiter: Bytes::from_static(b"\r\n"),
            max_bytes: None,
        })
        .unwrap();
        feed(&mut s, b"abc\r").unwrap();
        assert_eq!(s.poll_read(), None);
        feed(&mut s, b"\nrest").unwrap();
        assert_eq!(
            s.poll_read(),
            Some(ReadOutcome::Done(Bytes::from_static(b"abc\r\n")))
        );
        assert_eq!(s.buffered(), 4);
    }

    #[test]
    fn read_until_max_bytes_exceeded_closes_with_unsatisfiable() {
        let mut s = open();
        s.start_read(ReadRequest::Until {
            delimiter: Bytes::from_static(b"\n"),
            max_bytes: Some(4),
        })
        .unwrap();
        feed(&mut s, b"abcdef").unwrap();
        assert_eq!(
            s.poll_read(),
            Some(ReadOutcome::Failed(StreamError::Unsatisfiable {
                max_bytes: 4
            }))
        );
        assert_eq!(s.close_reason(), Some(CloseReason::Unsatisfiable));
    }

    #[test]
    fn read_until_delimiter_past_max_bytes_is_unsatisfiable() {
        let mut s = open();
        feed(&mut s, b"abcdef\n").unwrap();
        s.start_read(ReadRequest::Until {
            delimiter: Bytes::from_static(b"\n"),
            max_bytes: Some(5),
        })
        .unwrap();
        assert!(matches!(
            s.poll_read(),
            Some(ReadOutcome::Failed(StreamError::Unsatisfiable { .. }))
        ));
    }

    #[test]
    fn exceeding_max_buffer_size_closes_with_buffer_full() {
        let mut s = Stream::new(StreamState::Open, 8, 64);
        s.start_read(ReadRequest::Exactly(100)).unwrap();
        let mut lent = s.read_buf().unwrap();
        assert_eq!(
            lent.remaining_mut(),
            9,
            "lent room ends one byte past the limit"
        );
        lent.put_slice(&[0; 9]);
        s.handle_read(9);
        assert_eq!(s.poll_read(), None);
        assert_eq!(
            s.check_buffer_limit(),
            Err(StreamError::BufferFull { limit: 8 })
        );
        assert_eq!(s.close_reason(), Some(CloseReason::BufferFull));
    }

    #[test]
    fn second_pending_read_is_an_error() {
        let mut s = open();
        s.start_read(ReadRequest::Exactly(3)).unwrap();
        assert_eq!(
            s.start_read(ReadRequest::Some(3)),
            Err(StreamError::ReadPending)
        );
    }

    #[test]
    fn read_on_closed_stream_fails_but_buffered_data_is_still_readable() {
        let mut s = open();
        feed(&mut s, b"xy").unwrap();
        s.close(CloseReason::Local);
        s.start_read(ReadRequest::Exactly(2)).unwrap();
        assert_eq!(
            s.poll_read(),
            Some(ReadOutcome::Done(Bytes::from_static(b"xy")))
        );
        assert_eq!(
            s.start_read(ReadRequest::Some(1)),
            Err(StreamError::Closed(CloseReason::Local))
        );
    }

    #[test]
    fn write_after_close_fails() {
        let mut s = open();
        s.close(CloseReason::Local);
        assert_eq!(
            s.write(Bytes::from_static(b"x")),
            Err(StreamError::Closed(CloseReason::Local))
        );
    }

    #[test]
    fn partial_writes_advance_the_queue() {
        let mut s = open();
        s.write(Bytes::from_static(b"hello")).unwrap();
        s.write(Bytes::from_static(b"world")).unwrap();
        s.handle_written(7);
        let rest: Vec<u8> = s.write_chunks().flatten().copied().collect();
        assert_eq!(rest, b"rld");
        assert_eq!(s.total_written(), 7);
        assert!(s.interest().writable);
        s.handle_written(3);
        assert!(!s.writing() && !s.interest().writable);
    }

    #[test]
    fn eof_fails_short_read_and_allows_close_after_delivery() {
        let mut s = open();
        feed(&mut s, b"ab").unwrap();
        s.start_read(ReadRequest::Exactly(5)).unwrap();
        s.handle_eof();
        assert_eq!(
            s.poll_read(),
            Some(ReadOutcome::Failed(StreamError::Closed(CloseReason::Eof)))
        );
        assert!(s.is_drained_after_eof());
    }

    #[test]
    fn read_until_close_after_delivered_eof_fails() {
        let mut s = open();
        feed(&mut s, b"tail").unwrap();
        s.handle_eof();
        s.start_read(ReadRequest::UntilClose { streaming: false })
            .unwrap();
        assert_eq!(
            s.poll_read(),
            Some(ReadOutcome::Done(Bytes::from_static(b"tail")))
        );
        s.start_read(ReadRequest::UntilClose { streaming: false })
            .unwrap();
        assert_eq!(
            s.poll_read(),
            Some(ReadOutcome::Failed(StreamError::Closed(CloseReason::Eof)))
        );
    }

    #[test]
    fn read_reservation_grows_when_reads_fill_it_and_resets_when_idle() {
        let mut s = Stream::new(StreamState::Open, 1 << 20, 64 * 1024);
        s.start_read(ReadRequest::Exactly(190 * 1024)).unwrap();
        let mut rooms = Vec::new();
        for _ in 0..7 {
            let mut lent = s.read_buf().unwrap();
            let room = lent.remaining_mut();
            rooms.push(room);
            lent.put_bytes(7, room);
            s.handle_read(room);
        }
        assert_eq!(rooms, [2048, 4096, 8192, 16384, 32768, 65536, 65536]);
        assert!(matches!(s.poll_read(), Some(ReadOutcome::Done(_))));
        assert!(s.take_idle_buffer().is_some(), "drained buffer handed out");
        assert_eq!(s.read_buf.capacity(), 0);
        s.start_read(ReadRequest::Some(10)).unwrap();
        assert_eq!(s.read_buf().unwrap().remaining_mut(), 2048);
    }

    #[test]
    fn unsolicited_read_ahead_is_bounded_by_one_chunk() {
        let mut s = Stream::new(StreamState::Open, 1 << 20, 16);
        feed(&mut s, &[1; 16]).unwrap();
        assert!(
            !s.interest().readable,
            "no read pending and a chunk buffered"
        );
        s.start_read(ReadRequest::Exactly(32)).unwrap();
        assert!(s.interest().readable);
    }
}

//! Async TCP: `TcpListener` and `TcpStream` over the loop's `Stream` machinery.
//!
//! They hold ids, not sockets: every operation goes to the current loop, so
//! `max_buffer_size`, back-pressure and the one-pending-read rule hold exactly as for
//! callback code. The `futures-io` traits are implemented too, so existing codecs and
//! `futures::io::copy` work on eddy streams.
//!
//! # Cancel safety
//! Every read future (`read_until`, `read_exact`, `read_some`, `read_to_end`, and the
//! `AsyncRead`/`AsyncBufRead` polls) is cancel-safe: dropped before it completes, it loses no
//! byte. A pending request is withdrawn and the bytes stay buffered; a result the future had
//! not yet taken goes back to the front of the buffer for the next read. `flush` is
//! cancel-safe too (dropping it only stops waiting; the bytes are still sent). `write` queues
//! synchronously and cannot be cancelled half-way. Dropping a `Connect` closes the half-made
//! connection; dropping an `Accept` leaves accepted connections queued for the next `accept`.

use core::net::SocketAddr;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, Bytes};

use super::current::{with_loop, LoopBound};
use super::oneshot::Oneshot;
use crate::error::{CloseReason, StreamError};
use crate::io_loop::{IoLoop, ListenOptions, ListenerId, StreamId};
use crate::stream::ReadRequest;
use crate::time::Duration;

/// Queued bytes above which `AsyncWrite::poll_write` waits (until half of it has drained).
pub const WRITE_HIGH_WATER: usize = 64 * 1024;

type Accepted = (StreamId, SocketAddr);
/// Where a connect's callback leaves its result.
type ConnectSlot = Oneshot<Result<StreamId, StreamError>>;

/// Connections accepted and not yet taken by `accept`.
struct AcceptQueue {
    ready: VecDeque<Accepted>,
    waker: Option<Waker>,
    limit: usize,
}

/// A listening socket for tasks (Tornado's `TCPServer` with `await`): `bind`, then `accept`.
pub struct TcpListener {
    id: ListenerId,
    addr: SocketAddr,
    queue: Rc<RefCell<AcceptQueue>>,
    bound: LoopBound,
}

impl TcpListener {
    /// Binds `addr` with Tornado's default options (backlog 128).
    ///
    /// # Panics
    /// Outside a task.
    pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, ListenOptions::default()).await
    }

    /// Binds `addr` with `options` (e.g. `reuse_port` for one listener per loop thread).
    ///
    /// Connections are accepted as they come; at most `options.backlog` wait for `accept`,
    /// and further ones are closed at once (logged), so an idle acceptor cannot pile them up.
    pub async fn bind_with(addr: SocketAddr, options: ListenOptions) -> io::Result<TcpListener> {
        let mut listener = with_loop(|io| TcpListener::listen_on(io, addr, options));
        listener.bound().await?;
        Ok(listener)
    }

    /// Starts listening from callback code (no bind result yet: await [`bound`](Self::bound)
    /// in a task, or read [`IoLoop::listener_addr`] once the driver has bound it).
    pub fn listen_on(io: &mut IoLoop, addr: SocketAddr, options: ListenOptions) -> TcpListener {
        let queue = Rc::new(RefCell::new(AcceptQueue {
            ready: VecDeque::new(),
            waker: None,
            limit: options.backlog.max(1) as usize,
        }));
        let q = queue.clone();
        let id = io.listen(addr, options, move |io, stream, peer| {
            let mut q = q.borrow_mut();
            if q.ready.len() >= q.limit {
                tracing::warn!(%peer, "accept queue full; closing the new connection");
                io.close(stream);
                return;
            }
            q.ready.push_back((stream, peer));
            if let Some(waker) = q.waker.take() {
                waker.wake();
            }
        });
        TcpListener {
            id,
            addr,
            queue,
            bound: LoopBound::of(io),
        }
    }

    /// Waits until the driver has bound the socket; then [`local_addr`](Self::local_addr)
    /// is the real address.
    pub async fn bound(&mut self) -> io::Result<SocketAddr> {
        let id = self.id;
        let bound = &self.bound;
        let result =
            std::future::poll_fn(|cx| bound.with(|io| io.poll_listener_bound(id, cx.waker())))
                .await;
        self.addr = result.map_err(io::Error::from)?;
        Ok(self.addr)
    }

    /// The listener's id on its loop.
    pub fn id(&self) -> ListenerId {
        self.id
    }

    /// The bound address (with the real port when port 0 was asked for), once
    /// [`bound`](Self::bound) has returned; the requested address before.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the next connection.
    pub fn accept(&mut self) -> Accept<'_> {
        Accept { listener: self }
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let id = self.id;
        let waiting: Vec<StreamId> = self
            .queue
            .borrow_mut()
            .ready
            .drain(..)
            .map(|a| a.0)
            .collect();
        self.bound.run_or_defer(move |io| {
            io.close_listener(id);
            for stream in waiting {
                io.close(stream);
            }
        });
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.addr)
            .finish()
    }
}

/// The future of [`TcpListener::accept`].
#[must_use = "futures do nothing unless awaited"]
pub struct Accept<'a> {
    listener: &'a mut TcpListener,
}

impl Future for Accept<'_> {
    type Output = io::Result<(TcpStream, SocketAddr)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let listener = &mut *self.get_mut().listener;
        let next = {
            let mut q = listener.queue.borrow_mut();
            match q.ready.pop_front() {
                Some(accepted) => accepted,
                None => {
                    q.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        };
        let (id, peer) = next;
        let stream = listener.bound.with(|io| TcpStream::from_stream(io, id));
        Poll::Ready(Ok((stream, peer)))
    }
}

/// A connected TCP stream for tasks (Tornado's `IOStream` with `await`).
pub struct TcpStream {
    id: StreamId,
    bound: LoopBound,
    peer: Option<SocketAddr>,
    /// Why the stream closed, once it has (kept after the loop frees the stream's slot).
    closed: Rc<Cell<Option<CloseReason>>>,
    /// Bytes an `AsyncRead`/`AsyncBufRead` poll took that the caller has not consumed yet.
    chunk: Bytes,
    /// A read started by an `AsyncRead`/`AsyncBufRead` poll is pending on the stream.
    polling_read: bool,
    /// `AsyncWrite` waiting for the queue to drain (back-pressure) or for a flush.
    write_wait: Option<Oneshot<Result<(), StreamError>>>,
    /// Whether the stream is closed when this value is dropped.
    owned: bool,
}

impl TcpStream {
    /// Connects to `addr` (no time-out beyond the OS's).
    pub fn connect(addr: SocketAddr) -> Connect {
        Connect::new(addr, None)
    }

    /// Connects to `addr`, failing with [`CloseReason::ConnectTimeout`] after `limit`.
    pub fn connect_timeout(addr: SocketAddr, limit: Duration) -> Connect {
        Connect::new(addr, Some(limit))
    }

    /// Wraps a stream of `io` (e.g. accepted by a callback listener) for use by tasks.
    pub fn from_stream(io: &mut IoLoop, id: StreamId) -> TcpStream {
        let closed = Rc::new(Cell::new(io.stream(id).and_then(|s| s.close_reason())));
        let seen = closed.clone();
        let _ = io.set_close_callback(id, move |_, reason| seen.set(Some(reason)));
        TcpStream {
            id,
            bound: LoopBound::of(io),
            peer: io.peer_addr(id),
            closed,
            chunk: Bytes::new(),
            polling_read: false,
            write_wait: None,
            owned: true,
        }
    }

    /// Starts TLS on this stream (Tornado's `IOStream.start_tls`): right after `accept`
    /// with an acceptor's session, or after `connect` with a connector's; reads and writes
    /// are plaintext from then on. See [`IoLoop::start_tls`].
    pub fn start_tls(&mut self, session: crate::tls::TlsSession) -> Result<(), StreamError> {
        let id = self.id;
        self.bound.with(|io| io.start_tls(id, session))
    }

    /// The stream's id on its loop (for the callback API).
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Bytes queued for writing and not yet taken by the socket.
    pub fn write_queued(&self) -> usize {
        self.queued().unwrap_or(0)
    }

    /// Bytes queued for writing, or `None` once the loop has freed the stream.
    fn queued(&self) -> Option<usize> {
        let id = self.id;
        self.bound
            .with(|io| io.stream(id).map(|s| s.write_queued()))
    }

    /// Why the stream closed, if it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.closed.get()
    }

    /// Reads up to and including `delimiter`; fails (closing the stream) past `max_bytes`.
    pub fn read_until(
        &mut self,
        delimiter: impl Into<Bytes>,
        max_bytes: Option<usize>,
    ) -> Read<'_> {
        let request = ReadRequest::Until {
            delimiter: delimiter.into(),
            max_bytes,
        };
        Read::new(self, request)
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Read<'_> {
        Read::new(self, ReadRequest::Exactly(n))
    }

    /// Reads whatever arrives: at least 1 and at most `max` bytes.
    pub fn read_some(&mut self, max: usize) -> Read<'_> {
        Read::new(self, ReadRequest::Some(max))
    }

    /// Reads until the peer closes, bounded by `max_buffer_size`.
    pub fn read_to_end(&mut self) -> Read<'_> {
        Read::new(self, ReadRequest::UntilClose { streaming: false })
    }

    /// Queues `data` for writing, without copying; [`flush`](Self::flush) waits for it.
    pub fn write(&mut self, data: impl Into<Bytes>) -> Result<(), StreamError> {
        let data = data.into();
        let id = self.id;
        let result = self.bound.with(|io| io.write(id, data));
        result.map_err(|e| self.map_error(e))
    }

    /// Completes once everything written so far has reached the socket (or fails on close).
    pub fn flush(&mut self) -> Flush<'_> {
        Flush {
            stream: self,
            slot: None,
        }
    }

    /// Half-closes: once queued bytes are written, the peer reads end of file.
    pub fn shutdown_write(&mut self) -> Result<(), StreamError> {
        let id = self.id;
        let result = self.bound.with(|io| io.shutdown_write(id));
        result.map_err(|e| self.map_error(e))
    }

    /// Sets the read buffer limit.
    pub fn set_max_buffer_size(&mut self, limit: usize) -> Result<(), StreamError> {
        let id = self.id;
        let result = self.bound.with(|io| io.set_max_buffer_size(id, limit));
        result.map_err(|e| self.map_error(e))
    }

    /// Closes the stream now; queued writes are dropped (flush first to send them).
    pub fn close(self) {
        // Drop does it.
    }

    /// Gives the stream back to callback code: it stays open, and is no longer closed on drop.
    pub fn into_stream_id(mut self) -> StreamId {
        self.unread_chunk();
        self.owned = false;
        self.id
    }

    /// A loop error, with a freed stream reported by the reason it closed.
    fn map_error(&self, error: StreamError) -> StreamError {
        match (error, self.closed.get()) {
            (StreamError::UnknownStream, Some(reason)) => StreamError::Closed(reason),
            (e, _) => e,
        }
    }

    /// Before a one-shot read: bytes an `AsyncRead` poll left over, and its pending read, go
    /// back to the stream, so every read sees the bytes in order.
    #[inline]
    fn unread_chunk(&mut self) {
        if !self.chunk.is_empty() || self.polling_read {
            self.give_back_chunk();
        }
    }

    #[cold]
    #[inline(never)]
    fn give_back_chunk(&mut self) {
        let id = self.id;
        let chunk = std::mem::take(&mut self.chunk);
        let polling = std::mem::replace(&mut self.polling_read, false);
        self.bound.with(|io| {
            if polling {
                io.cancel_task_read(id);
            }
            io.unread(id, chunk);
        });
    }

    /// One `AsyncRead`-style read into `self.chunk`, unless it holds bytes; at end of file
    /// it completes with `chunk` left empty.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.chunk.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let request = (!self.polling_read).then_some(ReadRequest::Some(usize::MAX));
        self.polling_read = true;
        let id = self.id;
        let result = ready!(self
            .bound
            .with(|io| io.poll_task_read(id, request, cx.waker())));
        self.polling_read = false;
        Poll::Ready(match result.map_err(|e| self.map_error(e)) {
            Ok(data) => {
                self.chunk = data;
                Ok(())
            }
            Err(StreamError::Closed(CloseReason::Eof)) => Ok(()),
            Err(e) => Err(to_io_error(e)),
        })
    }

    /// Waits on `write_wait`, if set; `Ready(Ok)` when there is nothing (left) to wait for.
    fn poll_write_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(slot) = &self.write_wait else {
            return Poll::Ready(Ok(()));
        };
        let result = match slot.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        self.write_wait = None;
        Poll::Ready(result.map_err(|e| to_io_error(self.map_error(e))))
    }

    /// Starts waiting until `total_written` reaches `target(total_queued, queued)`.
    fn wait_written(&mut self, target: impl FnOnce(u64, usize) -> u64) -> io::Result<()> {
        let id = self.id;
        let slot = Oneshot::new();
        let done = slot.clone();
        let result = self.bound.with(|io| {
            let stream = io.stream(id).ok_or(StreamError::UnknownStream)?;
            let target = target(stream.total_queued(), stream.write_queued());
            io.flush_until(id, target, Box::new(move |_, r| done.complete(r)))
        });
        result.map_err(|e| to_io_error(self.map_error(e)))?;
        self.write_wait = Some(slot);
        Ok(())
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let id = self.id;
        self.bound.run_or_defer(move |io| io.close(id));
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish()
    }
}

/// Maps a stream error to the `io::Error` the `futures-io` traits speak.
fn to_io_error(error: StreamError) -> io::Error {
    let kind = match error {
        StreamError::Closed(CloseReason::Reset) => io::ErrorKind::ConnectionReset,
        StreamError::Closed(CloseReason::Refused) => io::ErrorKind::ConnectionRefused,
        StreamError::Closed(CloseReason::ConnectTimeout) => io::ErrorKind::TimedOut,
        StreamError::Closed(CloseReason::Io(kind)) => kind,
        StreamError::Closed(CloseReason::Eof) => io::ErrorKind::UnexpectedEof,
        StreamError::Closed(_) | StreamError::UnknownStream => io::ErrorKind::NotConnected,
        StreamError::WriteShutdown => io::ErrorKind::BrokenPipe,
        StreamError::BufferFull { .. } => io::ErrorKind::OutOfMemory,
        StreamError::Unsatisfiable { .. } | StreamError::ReadPending => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
}

/// A one-shot read of a [`TcpStream`]; cancel-safe (see the module docs).
#[must_use = "futures do nothing unless awaited"]
pub struct Read<'a> {
    stream: &'a mut TcpStream,
    request: Option<ReadRequest>,
    /// The request was handed to the stream and its result not yet taken.
    in_progress: bool,
}

impl<'a> Read<'a> {
    fn new(stream: &'a mut TcpStream, request: ReadRequest) -> Read<'a> {
        Read {
            stream,
            request: Some(request),
            in_progress: false,
        }
    }
}

impl Future for Read<'_> {
    type Output = Result<Bytes, StreamError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.request.is_some() {
            this.stream.unread_chunk();
            this.in_progress = true;
        }
        let request = this.request.take();
        let id = this.stream.id;
        match this
            .stream
            .bound
            .with(|io| io.poll_task_read(id, request, cx.waker()))
        {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.in_progress = false;
                Poll::Ready(result.map_err(|e| this.stream.map_error(e)))
            }
        }
    }
}

impl Drop for Read<'_> {
    fn drop(&mut self) {
        if self.in_progress {
            let id = self.stream.id;
            self.stream
                .bound
                .run_or_defer(move |io| io.cancel_task_read(id));
        }
    }
}

/// The future of [`TcpStream::flush`].
#[must_use = "futures do nothing unless awaited"]
pub struct Flush<'a> {
    stream: &'a mut TcpStream,
    slot: Option<Oneshot<Result<(), StreamError>>>,
}

impl Future for Flush<'_> {
    type Output = Result<(), StreamError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = match &this.slot {
            Some(slot) => slot.clone(),
            None => {
                let slot = Oneshot::new();
                let done = slot.clone();
                let id = this.stream.id;
                let started = this
                    .stream
                    .bound
                    .with(|io| io.flush(id, move |_, r| done.complete(r)));
                if let Err(e) = started {
                    return Poll::Ready(flushed(Err(this.stream.map_error(e))));
                }
                this.slot = Some(slot.clone());
                slot
            }
        };
        slot.poll(cx)
            .map(|r| flushed(r.map_err(|e| this.stream.map_error(e))))
    }
}

/// A stream that closed because the peer finished and nothing was left to write has written
/// everything: for a flush, that is success.
fn flushed(result: Result<(), StreamError>) -> Result<(), StreamError> {
    match result {
        Err(StreamError::Closed(CloseReason::Eof)) => Ok(()),
        other => other,
    }
}

/// The future of [`TcpStream::connect`]; dropping it before it completes closes the attempt.
#[must_use = "futures do nothing unless awaited"]
pub struct Connect {
    addr: SocketAddr,
    limit: Option<Duration>,
    started: Option<(StreamId, ConnectSlot, LoopBound)>,
    done: bool,
}

impl Connect {
    fn new(addr: SocketAddr, limit: Option<Duration>) -> Connect {
        Connect {
            addr,
            limit,
            started: None,
            done: false,
        }
    }
}

impl Future for Connect {
    type Output = Result<TcpStream, StreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.started.is_none() {
            let slot = Oneshot::new();
            let done = slot.clone();
            let (addr, limit) = (this.addr, this.limit);
            let (id, bound) = with_loop(|io| {
                let id = io.connect(addr, limit, move |_, r| done.complete(r));
                (id, LoopBound::of(io))
            });
            this.started = Some((id, slot, bound));
        }
        let (_, slot, bound) = this.started.as_ref().expect("started");
        match slot.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.done = true;
                Poll::Ready(result.map(|id| bound.with(|io| TcpStream::from_stream(io, id))))
            }
        }
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        if let (Some((id, slot, bound)), false) = (self.started.take(), self.done) {
            // Connected but never handed out, or still connecting: either way, close it.
            let _ = slot.take();
            bound.run_or_defer(move |io| io.close(id));
        }
    }
}

impl futures_io::AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_chunk(cx))?;
        let n = buf.len().min(this.chunk.len()); // 0 at end of file
        buf[..n].copy_from_slice(&this.chunk[..n]);
        this.chunk.advance(n);
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncBufRead for TcpStream {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        ready!(this.poll_chunk(cx))?;
        Poll::Ready(Ok(&this.chunk[..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.chunk.advance(amt.min(this.chunk.len()));
    }
}

impl futures_io::AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_write_wait(cx))?;
        let queued = this.queued();
        if queued.is_some_and(|q| q >= WRITE_HIGH_WATER) {
            // Back-pressure: wait until half of the high-water mark has reached the socket.
            this.wait_written(|total, queued| {
                total - queued as u64 + (WRITE_HIGH_WATER / 2) as u64
            })?;
            ready!(this.poll_write_wait(cx))?;
        }
        this.write(Bytes::copy_from_slice(buf))
            .map_err(to_io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.poll_write_wait(cx))?;
            let id = this.id;
            let queued = this
                .bound
                .with(|io| io.stream(id).map(|s| s.write_queued()));
            match queued {
                Some(0) => return Poll::Ready(Ok(())),
                Some(_) => this.wait_written(|total, _| total)?,
                None => {
                    let e = flushed(Err(this.map_error(StreamError::UnknownStream)));
                    return Poll::Ready(e.map_err(to_io_error));
                }
            }
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_wait.is_none() {
            match this.shutdown_write() {
                Ok(()) | Err(StreamError::WriteShutdown) => {}
                Err(StreamError::Closed(_)) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(to_io_error(e))),
            }
        }
        Pin::new(this).poll_flush(cx)
    }
}

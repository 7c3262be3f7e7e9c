//! `HttpServer`: serves HTTP/1.1 on IoLoop streams — Tornado's HTTPServer and
//! HTTP1ServerConnection, gluing [`ServerConn`] to a stream through a [`StreamHandler`].
//!
//! It owns the per-connection cycle (read, dispatch to the application, write, time out,
//! close); framing decisions stay in [`ServerConn`]. The application is a [`Handler`] that gets
//! a [`Request`] and a [`Responder`], and answers now or later (from a timer, another
//! callback). Request bodies are read whole, bounded by `max_body_size`, before the handler runs.

use core::net::SocketAddr;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

use super::body_stream::{BodyChannel, BodyError, BodySender};
use super::config::HttpConfig;
use super::date::HttpDate;
use super::error::{RequestError, SendError};
use super::head::FieldPool;
use super::request::Request;
use super::response_fields::ResponseFields;
use super::server::{AfterResponse, ServerConn, ServerEvent};
use super::sink::{OutQueue, OUT_QUEUE_RESERVE};
use crate::buffer_pool::BufferPool;
use crate::error::{CloseReason, StreamError};
use crate::file::FileRange;
use crate::io_loop::{
    IoLoop, ListenOptions, ListenerId, LocalHandle, StreamHandler, StreamId, TimeoutHandle,
};
use crate::task::AbortHandle;
use crate::time::Instant;

/// Unwritten response bytes a connection may have queued before the server stops parsing
/// (and reading) its further requests until they drain: a client that pipelines requests but
/// never reads the answers cannot grow the server's memory.
pub const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Empty response buffers a server keeps for reuse.
const OUT_POOL_BUFFERS: usize = 256;

/// The application: answers each request through its [`Responder`], now or later.
pub trait Handler: 'static {
    /// Handles one request; the responder must eventually be finished (or dropped: then a 500
    /// is sent if nothing was, else the connection closes).
    fn handle(&self, io: &mut IoLoop, request: Request, responder: Responder);

    /// `Some(max_body_size)` to have this request's body streamed: `handle` then runs as soon
    /// as the head is in, and the body comes through [`Request::take_body_stream`], bounded
    /// by that size instead of the server's. `None` (the default) reads bodies whole first.
    fn body_limit(&self, _request: &Request) -> Option<u64> {
        None
    }
}

impl<F> Handler for F
where
    F: Fn(&mut IoLoop, Request, Responder) + 'static,
{
    fn handle(&self, io: &mut IoLoop, request: Request, responder: Responder) {
        self(io, request, responder)
    }
}

/// Counters of one server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted so far.
    pub connections: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// Requests handed to the application so far.
    pub requests: u64,
    /// Requests rejected as malformed (answered with a 4xx/5xx by the server itself).
    pub bad_requests: u64,
    /// Connections handed to another protocol with a 101 answer (no longer counted as open).
    pub upgrades: u64,
}

/// State shared by every connection of one server.
struct Shared {
    config: Arc<HttpConfig>,
    handler: Box<dyn Handler>,
    date: RefCell<HttpDate>,
    stats: Cell<ServerStats>,
    /// Response buffers lent to connections while they have output.
    out_buffers: RefCell<BufferPool>,
    /// Field lists lent to connections while they parse a head and to requests.
    fields: Rc<FieldPool>,
}

impl Shared {
    /// The cached `Date` value, rebuilt at most once per second of loop time.
    fn date(&self, io: &IoLoop) -> std::cell::Ref<'_, HttpDate> {
        let now = io.unix_time_secs();
        if self.date.borrow().unix_secs() != now {
            *self.date.borrow_mut() = HttpDate::from_unix_secs(now);
        }
        self.date.borrow()
    }

    fn update(&self, f: impl FnOnce(&mut ServerStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }
}

/// An HTTP/1.1 server: `HttpServer::new(handler).listen(io, addr)`.
#[derive(Clone)]
pub struct HttpServer {
    shared: Rc<Shared>,
}

impl HttpServer {
    /// A server with Tornado's default limits.
    pub fn new(handler: impl Handler) -> HttpServer {
        HttpServer::with_config(HttpConfig::default(), handler)
    }

    /// A server with the given limits and options.
    pub fn with_config(config: HttpConfig, handler: impl Handler) -> HttpServer {
        HttpServer {
            shared: Rc::new(Shared {
                config: Arc::new(config),
                handler: Box::new(handler),
                date: RefCell::new(HttpDate::from_unix_secs(0)),
                stats: Cell::new(ServerStats::default()),
                out_buffers: RefCell::new(BufferPool::new(OUT_POOL_BUFFERS, 4 * OUT_QUEUE_RESERVE)),
                fields: Rc::default(),
            }),
        }
    }

    /// Listens at `addr` and serves every accepted connection.
    #[track_caller]
    pub fn listen(&self, io: &mut IoLoop, addr: SocketAddr, options: ListenOptions) -> ListenerId {
        let server = self.clone();
        io.listen(addr, options, move |io, stream, peer| {
            server.serve_stream(io, stream, peer)
        })
    }

    /// Serves on a unix domain socket at `path` with permission bits `mode` (behind a
    /// proxy on the same machine); peers are reported as `0.0.0.0`.
    pub fn listen_unix(
        &self,
        io: &mut IoLoop,
        path: &str,
        mode: u32,
        options: ListenOptions,
    ) -> ListenerId {
        let server = self.clone();
        io.listen_unix(path, mode, options, move |io, stream, peer| {
            server.serve_stream(io, stream, peer)
        })
    }

    /// Serves HTTP on an already connected stream (e.g. one accepted elsewhere).
    pub fn serve_stream(&self, io: &mut IoLoop, stream: StreamId, peer: SocketAddr) {
        if let Some(tls) = &self.shared.config.tls {
            if io.start_tls(stream, tls.session()).is_err() {
                io.close(stream);
                return;
            }
        }
        let conn = Rc::new(RefCell::new(Conn {
            machine: ServerConn::new(self.shared.config.clone()),
            out: OutQueue::new(),
            stream,
            peer,
            incoming: None,
            seq: 0,
            responding: false,
            timer: None,
            armed_phase: None,
            closed: false,
            shared: self.shared.clone(),
            driving: false,
            awaiting_drain: false,
            upgraded: false,
            task: None,
        }));
        let handler = ConnHandler {
            conn: conn.clone(),
            shared: self.shared.clone(),
        };
        if io.set_handler(stream, Box::new(handler)).is_err() {
            io.close(stream);
            return;
        }
        self.shared.update(|s| {
            s.connections += 1;
            s.open_connections += 1;
        });
        rearm_timeout(io, &conn);
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats.get()
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.shared.config
    }
}

/// The HTTP server's heap parts of one idle keep-alive connection, for
/// [`testing::idle_connection_parts`](crate::testing::idle_connection_parts).
pub(crate) fn idle_connection_parts() -> Vec<crate::testing::IdlePart> {
    use crate::testing::IdlePart;
    use core::mem::size_of;
    vec![
        IdlePart {
            what: "stream handler box (ConnHandler: two Rc)",
            bytes: size_of::<ConnHandler>(),
            own_allocation: true,
        },
        IdlePart {
            what: "connection state (Rc<RefCell<Conn>>: ServerConn, OutQueue, peer, timer handle)",
            bytes: 2 * size_of::<usize>() + size_of::<RefCell<Conn>>(),
            own_allocation: true,
        },
        IdlePart {
            what: "idle timer callback box (captures a Weak<Conn>)",
            bytes: size_of::<Weak<RefCell<Conn>>>(),
            own_allocation: true,
        },
    ]
}

/// One connection's state, shared by its stream handler and the request's responder.
struct Conn {
    machine: ServerConn,
    out: OutQueue,
    stream: StreamId,
    peer: SocketAddr,
    /// The request whose body is still arriving between reads (boxed: most requests are
    /// whole in one read and never come here, and an idle connection then holds 8 bytes).
    incoming: Option<Box<Incoming>>,
    /// Number of the request being answered, so a stale responder cannot answer another.
    seq: u64,
    /// The application holds a responder for request `seq`.
    responding: bool,
    timer: Option<(Instant, TimeoutHandle)>,
    armed_phase: Option<(u64, Instant)>,
    closed: bool,
    shared: Rc<Shared>,
    /// `drive` is parsing this connection's buffer right now (it will see the next request).
    driving: bool,
    /// Parsing is paused until the queued output drains (see [`WRITE_HIGH_WATER`]).
    awaiting_drain: bool,
    /// A 101 answer handed the stream to another protocol; HTTP is done with it.
    upgraded: bool,
    /// The task answering the current request (see [`spawn_response_task`]), cancelled if
    /// the connection closes first; held here rather than as a close callback per request.
    ///
    /// [`spawn_response_task`]: super::spawn_response_task
    task: Option<AbortHandle>,
}

impl Conn {
    /// Gives the connection a pooled response buffer before it serialises output.
    fn prepare_out(&mut self) {
        if !self.out.needs_buffer() {
            return;
        }
        let buf = self.shared.out_buffers.borrow_mut().take();
        if let Some(unused) = self.out.install_buffer(buf) {
            self.shared.out_buffers.borrow_mut().give(unused);
        }
    }

    /// Moves serialised output to the stream's write queue (no copy), then pools the buffer.
    fn flush_out(&mut self, io: &mut IoLoop) {
        while let Some(chunk) = self.out.pop_front() {
            if io.write_chunk(self.stream, chunk).is_err() {
                self.out = OutQueue::new();
                return;
            }
        }
        if let Some(buf) = self.out.take_idle_buffer() {
            self.shared.out_buffers.borrow_mut().give(buf);
        }
    }

    /// Flushes, then closes the stream once everything is written.
    fn close_after_flush(&mut self, io: &mut IoLoop) {
        self.flush_out(io);
        self.closed = true;
        io.set_reading(self.stream, false);
        let stream = self.stream;
        let _ = io.flush(stream, move |io, _| io.close(stream));
    }
}

/// A request whose body is being read.
#[allow(clippy::large_enum_variant)] // kept boxed in `Conn::incoming`
enum Incoming {
    /// Read whole before the handler runs: the request and the body so far.
    Whole { request: Request, body: BytesMut },
    /// Streamed: the handler already has the request; pieces go to its `BodyStream`.
    Streamed(BodySender),
}

/// The stream handler of one connection.
struct ConnHandler {
    conn: Rc<RefCell<Conn>>,
    shared: Rc<Shared>,
}

impl StreamHandler for ConnHandler {
    fn on_readable(&mut self, io: &mut IoLoop, _: StreamId, buf: &mut BytesMut, eof: bool) {
        {
            let mut conn = self.conn.borrow_mut();
            if eof {
                conn.machine.handle_eof();
            }
            conn.driving = true;
        }
        drive(io, &self.conn, &self.shared, buf);
        let mut conn = self.conn.borrow_mut();
        conn.driving = false;
        // Between reads the connection holds no field list: the pool lends one per head.
        let spare = conn.machine.take_spare_fields();
        drop(conn);
        self.shared.fields.give(spare);
        rearm_timeout(io, &self.conn);
    }

    fn on_drain(&mut self, io: &mut IoLoop, stream: StreamId) {
        let idle = self.conn.borrow_mut().machine.drain();
        if idle {
            io.close(stream);
        }
    }

    fn on_close(&mut self, io: &mut IoLoop, _: StreamId, _: CloseReason) {
        let mut conn = self.conn.borrow_mut();
        if let Some(task) = conn.task.take() {
            task.abort(); // dropped in a coming round, not inside this borrow
        }
        if conn.upgraded {
            return; // counted and cleaned up when the stream was handed over
        }
        conn.closed = true;
        if let Some(incoming) = conn.incoming.take() {
            if let Incoming::Streamed(body) = *incoming {
                body.borrow_mut().finish(Err(BodyError::Closed));
            }
        }
        if let Some((_, handle)) = conn.timer.take() {
            io.remove_timeout(handle);
        }
        self.shared.update(|s| s.open_connections -= 1);
    }
}

/// Parses and dispatches everything `buf` holds, until the machine needs data or pauses.
fn drive(io: &mut IoLoop, conn_rc: &Rc<RefCell<Conn>>, shared: &Rc<Shared>, buf: &mut BytesMut) {
    let mut incoming = conn_rc.borrow_mut().incoming.take().map(|b| *b);
    drive_events(io, conn_rc, shared, buf, &mut incoming);
    if let Some(incoming) = incoming {
        let mut conn = conn_rc.borrow_mut();
        if !conn.closed {
            conn.incoming = Some(Box::new(incoming));
        }
    }
}

/// `drive`'s loop; `incoming` is the request whose body is being read, if any.
fn drive_events(
    io: &mut IoLoop,
    conn_rc: &Rc<RefCell<Conn>>,
    shared: &Rc<Shared>,
    buf: &mut BytesMut,
    incoming: &mut Option<Incoming>,
) {
    loop {
        let mut conn = conn_rc.borrow_mut();
        if conn.closed {
            return;
        }
        if incoming.is_none() && !conn.responding && output_backlogged(io, &conn) {
            drop(conn);
            wait_for_drain(io, conn_rc);
            return;
        }
        if let Some(Incoming::Streamed(sender)) = incoming {
            if sender.borrow().is_paused() {
                io.set_reading(conn.stream, false);
                return;
            }
        }
        if conn.machine.needs_fields() {
            conn.machine.give_fields(shared.fields.take());
        }
        let event = conn.machine.poll_event(buf);
        match event {
            ServerEvent::Head(head) => {
                let expect_continue = head.expect_continue();
                let tls = shared.config.tls.is_some();
                let mut request = Request::new(head, conn.peer, tls, &shared.config);
                request.recycle_fields_into(shared.fields.clone());
                if let Some(limit) = shared.handler.body_limit(&request) {
                    // Streamed: the handler runs now and takes the body as it comes.
                    conn.machine.set_max_body_size(limit);
                    let (sender, body) = BodyChannel::open(conn.stream);
                    request.set_body_stream(body);
                    *incoming = Some(Incoming::Streamed(sender));
                    if expect_continue {
                        conn.prepare_out();
                        let Conn { machine, out, .. } = &mut *conn;
                        machine.accept_body(out);
                        conn.flush_out(io);
                    }
                    drop(conn);
                    dispatch(io, conn_rc, shared, request);
                    continue;
                }
                *incoming = Some(Incoming::Whole {
                    request,
                    body: BytesMut::new(),
                });
                if expect_continue {
                    // The whole body is read before the handler runs, so invite it now.
                    conn.prepare_out();
                    let Conn { machine, out, .. } = &mut *conn;
                    machine.accept_body(out);
                    conn.flush_out(io);
                }
            }
            ServerEvent::Data(data) => match incoming {
                Some(Incoming::Whole { body, .. }) => {
                    if body.is_empty() {
                        *body = BytesMut::from(&data[..]);
                    } else {
                        body.extend_from_slice(&data);
                    }
                }
                Some(Incoming::Streamed(sender)) if sender.borrow_mut().push(data) => {
                    // Back-pressure: the rest stays unparsed until the handler reads.
                    io.set_reading(conn.stream, false);
                    return;
                }
                Some(Incoming::Streamed(_)) | None => {}
            },
            ServerEvent::End(_trailers) => match incoming.take() {
                Some(Incoming::Whole { mut request, body }) => {
                    let body = body.freeze();
                    if let Err(e) = request.set_body(body, &shared.config) {
                        drop(conn);
                        reject(io, conn_rc, shared, e);
                        return;
                    }
                    drop(conn);
                    dispatch(io, conn_rc, shared, request);
                }
                Some(Incoming::Streamed(sender)) => sender.borrow_mut().finish(Ok(())),
                None => {}
            },
            ServerEvent::NeedData => {
                io.set_reading(conn.stream, true);
                return;
            }
            ServerEvent::Paused => {
                // Pipelined bytes wait in the buffer (and the peer's socket) until the answer.
                io.set_reading(conn.stream, false);
                return;
            }
            ServerEvent::Error(e) => {
                drop(conn);
                if let Some(Incoming::Streamed(sender)) = incoming.take() {
                    sender
                        .borrow_mut()
                        .finish(Err(BodyError::Rejected(e.clone())));
                }
                reject(io, conn_rc, shared, e);
                return;
            }
            ServerEvent::Closed => {
                conn.close_after_flush(io);
                return;
            }
            // The buffer's remaining bytes belong to the new protocol's handler.
            ServerEvent::Upgraded => return,
        }
    }
}

/// Hands a request to the application with a responder for it.
fn dispatch(io: &mut IoLoop, conn_rc: &Rc<RefCell<Conn>>, shared: &Rc<Shared>, request: Request) {
    let responder = {
        let mut conn = conn_rc.borrow_mut();
        conn.seq += 1;
        conn.responding = true;
        Responder {
            conn: Rc::downgrade(conn_rc),
            shared: shared.clone(),
            seq: conn.seq,
            started: false,
            done: false,
            local: io.local_handle(),
        }
    };
    shared.update(|s| s.requests += 1);
    shared.handler.handle(io, request, responder);
}

/// True when the peer has not read enough of its answers to be given more.
fn output_backlogged(io: &IoLoop, conn: &Conn) -> bool {
    io.stream(conn.stream)
        .is_some_and(|s| s.write_queued() > WRITE_HIGH_WATER)
}

/// Stops reading until everything queued is written, then parses on (back-pressure).
fn wait_for_drain(io: &mut IoLoop, conn_rc: &Rc<RefCell<Conn>>) {
    let mut conn = conn_rc.borrow_mut();
    io.set_reading(conn.stream, false);
    if conn.awaiting_drain {
        return;
    }
    conn.awaiting_drain = true;
    let (stream, weak) = (conn.stream, Rc::downgrade(conn_rc));
    let _ = io.flush(stream, move |io, written| {
        let Some(conn) = weak.upgrade() else {
            return;
        };
        conn.borrow_mut().awaiting_drain = false;
        if written.is_ok() {
            // Parse on from the buffer; `drive` turns reading back on only when it runs out
            // of whole requests, so a pipeline is read no faster than it is answered.
            io.notify_handler(stream);
        }
    });
}

/// Answers a malformed request with its status (when a response may still be sent), then closes.
fn reject(io: &mut IoLoop, conn_rc: &Rc<RefCell<Conn>>, shared: &Rc<Shared>, error: RequestError) {
    shared.update(|s| s.bad_requests += 1);
    let mut conn = conn_rc.borrow_mut();
    tracing::debug!(peer = %conn.peer, %error, "bad request");
    if conn.machine.can_send_response() {
        conn.prepare_out();
        let date = shared.date(io);
        let Conn { machine, out, .. } = &mut *conn;
        let _ = machine.send_error(error.status(), Some(&date), out);
    }
    conn.close_after_flush(io);
}

/// Keeps one timer per connection armed at the earliest read deadline the machine reports.
///
/// Deadlines usually move later (each request restarts the idle clock), so the timer is left
/// alone and, when it fires early, re-armed: no timer churn per request.
fn rearm_timeout(io: &mut IoLoop, conn_rc: &Rc<RefCell<Conn>>) {
    let mut conn = conn_rc.borrow_mut();
    if conn.closed {
        return;
    }
    let Some(t) = conn.machine.read_timeout() else {
        conn.armed_phase = None;
        return;
    };
    let deadline = match conn.armed_phase {
        Some((phase, deadline)) if phase == t.phase => deadline,
        _ => io.now() + t.after,
    };
    conn.armed_phase = Some((t.phase, deadline));
    if conn.timer.is_some_and(|(at, _)| at <= deadline) {
        return;
    }
    if let Some((_, old)) = conn.timer.take() {
        io.remove_timeout(old);
    }
    let weak = Rc::downgrade(conn_rc);
    let handle = io.call_at(deadline, move |io| on_timer(io, weak));
    conn.timer = Some((deadline, handle));
}

fn on_timer(io: &mut IoLoop, weak: Weak<RefCell<Conn>>) {
    let Some(conn_rc) = weak.upgrade() else {
        return;
    };
    let mut conn = conn_rc.borrow_mut();
    conn.timer = None;
    match conn.armed_phase {
        Some((phase, deadline)) if deadline <= io.now() => {
            if conn.machine.handle_timeout(phase) {
                tracing::debug!(peer = %conn.peer, "read timeout; closing");
                conn.closed = true;
                io.close(conn.stream);
            }
        }
        _ => {
            drop(conn);
            rearm_timeout(io, &conn_rc);
        }
    }
}

/// Answers one request: whole (`respond`) or streamed (`start`, `write`, `flush`, `finish`).
///
/// Dropping it unfinished sends `500 Internal Server Error` if nothing was sent yet, else
/// closes the connection (the response cannot be completed).
pub struct Responder {
    conn: Weak<RefCell<Conn>>,
    shared: Rc<Shared>,
    seq: u64,
    started: bool,
    done: bool,
    local: LocalHandle,
}

/// Tells whether a request's connection is still open; see [`Responder::connection`].
#[derive(Clone)]
pub struct ConnectionProbe(Weak<RefCell<Conn>>);

impl ConnectionProbe {
    /// Cancels `task` if the connection closes before it ends (at once when it is closed).
    pub(crate) fn cancel_on_close(&self, task: AbortHandle) {
        match self.0.upgrade() {
            Some(conn) if !conn.borrow().closed => conn.borrow_mut().task = Some(task),
            _ => task.abort(),
        }
    }

    /// True while the connection is open.
    pub fn is_connected(&self) -> bool {
        self.0.upgrade().is_some_and(|c| !c.borrow().closed)
    }
}

impl std::fmt::Debug for ConnectionProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionProbe")
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Responder {
    /// True while the connection is open (the client may have gone away).
    pub fn is_connected(&self) -> bool {
        self.conn.upgrade().is_some_and(|c| !c.borrow().closed)
    }

    /// A handle that tells later whether the connection is still open (outliving this
    /// responder, e.g. in a handler's destructor).
    pub fn connection(&self) -> ConnectionProbe {
        ConnectionProbe(self.conn.clone())
    }

    /// The connection's stream, while the connection lives (e.g. for a close callback).
    pub fn stream(&self) -> Option<StreamId> {
        self.conn.upgrade().map(|c| c.borrow().stream)
    }

    /// Sends a whole response; `Content-Length` comes from `body` unless `headers` have one.
    ///
    /// `headers` is a `&HeaderMap`, or a `&HeaderBlock` serialised once for many responses.
    pub fn respond<'h>(
        mut self,
        io: &mut IoLoop,
        status: StatusCode,
        headers: impl Into<ResponseFields<'h>>,
        body: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        let headers = headers.into();
        self.done = true;
        let conn_rc = self.conn_for_response()?;
        let result = {
            let mut conn = conn_rc.borrow_mut();
            conn.prepare_out();
            let date = self.shared.date(io);
            let Conn { machine, out, .. } = &mut *conn;
            machine.send_full_response(status, headers, body.into(), Some(&date), out)
        };
        finish_cycle(io, &conn_rc, result)
    }

    /// Starts a streamed response (chunked on HTTP/1.1 unless `headers` give a length).
    pub fn start<'h>(
        &mut self,
        io: &mut IoLoop,
        status: StatusCode,
        headers: impl Into<ResponseFields<'h>>,
    ) -> Result<(), SendError> {
        self.start_head(io, status, headers.into(), None)
    }

    /// Starts a response whose body is `len` bytes, sent in pieces with `write`/`write_file`
    /// (`Content-Length: len` unless `headers` give one).
    pub fn start_sized<'h>(
        &mut self,
        io: &mut IoLoop,
        status: StatusCode,
        headers: impl Into<ResponseFields<'h>>,
        len: u64,
    ) -> Result<(), SendError> {
        self.start_head(io, status, headers.into(), Some(len))
    }

    fn start_head(
        &mut self,
        io: &mut IoLoop,
        status: StatusCode,
        headers: ResponseFields<'_>,
        len: Option<u64>,
    ) -> Result<(), SendError> {
        let conn_rc = self.conn_for_response()?;
        let mut conn = conn_rc.borrow_mut();
        conn.prepare_out();
        let date = self.shared.date(io);
        let Conn { machine, out, .. } = &mut *conn;
        match len {
            Some(len) => machine.send_response_sized(status, headers, len, Some(&date), out)?,
            None => machine.send_response(status, headers, Some(&date), out)?,
        }
        self.started = !status.is_informational();
        conn.flush_out(io);
        Ok(())
    }

    /// Writes a piece of a streamed body (queued on the stream without copying large pieces).
    pub fn write(&mut self, io: &mut IoLoop, data: impl Into<Bytes>) -> Result<(), SendError> {
        let conn_rc = self.conn_for_response()?;
        let mut conn = conn_rc.borrow_mut();
        conn.prepare_out();
        let Conn { machine, out, .. } = &mut *conn;
        machine.send_data(data.into(), out)?;
        conn.flush_out(io);
        Ok(())
    }

    /// Writes a range of an open file as a piece of the body; the driver sends it without
    /// copying it through memory where it can (`sendfile(2)`).
    pub fn write_file(&mut self, io: &mut IoLoop, range: FileRange) -> Result<(), SendError> {
        let conn_rc = self.conn_for_response()?;
        let mut conn = conn_rc.borrow_mut();
        conn.prepare_out();
        let Conn { machine, out, .. } = &mut *conn;
        machine.send_data(range, out)?;
        conn.flush_out(io);
        Ok(())
    }

    /// Runs `on_flushed` once everything written so far has reached the socket (back-pressure).
    #[track_caller]
    pub fn flush(
        &mut self,
        io: &mut IoLoop,
        on_flushed: impl FnOnce(&mut IoLoop, Result<(), StreamError>) + 'static,
    ) -> Result<(), StreamError> {
        let stream = self
            .conn
            .upgrade()
            .map(|c| c.borrow().stream)
            .ok_or(StreamError::Closed(CloseReason::Local))?;
        io.flush(stream, on_flushed)
    }

    /// Ends a streamed response.
    pub fn finish(mut self, io: &mut IoLoop) -> Result<(), SendError> {
        self.done = true;
        let conn_rc = self.conn_for_response()?;
        let result = {
            let mut conn = conn_rc.borrow_mut();
            conn.prepare_out();
            let Conn { machine, out, .. } = &mut *conn;
            machine.send_end(out)
        };
        finish_cycle(io, &conn_rc, result)
    }

    /// Answers `101 Switching Protocols` with `headers` and hands the connection over: the
    /// HTTP server lets go of the stream and returns it, for [`IoLoop::set_handler`].
    ///
    /// Bytes the client sent after the request head stay in the stream's read buffer, where
    /// the new handler finds them. Fails (and the dropped responder answers 500) if the
    /// request's body was not read to its end or the client speaks HTTP/1.0.
    pub fn upgrade(mut self, io: &mut IoLoop, headers: &HeaderMap) -> Result<StreamId, SendError> {
        let conn_rc = self.conn_for_response()?;
        let mut conn = conn_rc.borrow_mut();
        conn.prepare_out();
        let Conn { machine, out, .. } = &mut *conn;
        machine.send_response(StatusCode::SWITCHING_PROTOCOLS, headers, None, out)?;
        self.done = true;
        conn.flush_out(io);
        conn.responding = false;
        conn.closed = true;
        conn.upgraded = true;
        if let Some(task) = conn.task.take() {
            // The stream belongs to another protocol now: only its close can tell.
            let _ = io.set_close_callback(conn.stream, move |_, _| task.abort());
        }
        if let Some((_, handle)) = conn.timer.take() {
            io.remove_timeout(handle);
        }
        conn.armed_phase = None;
        // HTTP paused reading once the request was in; the new protocol reads on.
        io.set_reading(conn.stream, true);
        self.shared.update(|s| {
            s.open_connections -= 1;
            s.upgrades += 1;
        });
        Ok(conn.stream)
    }

    fn conn_for_response(&self) -> Result<Rc<RefCell<Conn>>, SendError> {
        let conn = self.conn.upgrade().ok_or(SendError::Closed)?;
        let c = conn.borrow();
        if c.closed || c.seq != self.seq || !c.responding {
            return Err(SendError::Closed);
        }
        drop(c);
        Ok(conn)
    }
}

/// After a response ends: write it out, then read on (keep-alive) or close.
fn finish_cycle(
    io: &mut IoLoop,
    conn_rc: &Rc<RefCell<Conn>>,
    result: Result<AfterResponse, SendError>,
) -> Result<(), SendError> {
    let mut conn = conn_rc.borrow_mut();
    conn.responding = false;
    match result {
        Ok(AfterResponse::KeepAlive) => {
            // Answered: what the task does next is its own (an idle connection holds none).
            conn.task = None;
            conn.flush_out(io);
            if !conn.driving {
                // An answer given later: a pipelined request may already be buffered, so
                // parse it in the next round (inside `drive`, its loop goes on by itself).
                // Reading resumes there, once the buffer holds no whole request.
                io.notify_handler(conn.stream);
            }
            drop(conn);
            rearm_timeout(io, conn_rc);
            Ok(())
        }
        Ok(AfterResponse::Close) => {
            conn.close_after_flush(io);
            Ok(())
        }
        Err(e) => {
            conn.close_after_flush(io);
            Err(e)
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(conn_rc) = self.conn.upgrade() else {
            return;
        };
        {
            let mut conn = conn_rc.borrow_mut();
            if conn.closed || conn.seq != self.seq || !conn.responding {
                return;
            }
            conn.responding = false;
            tracing::error!(peer = %conn.peer, "responder dropped before the response finished");
        }
        // No `&mut IoLoop` in `drop`: finish on the loop in the next round.
        let (shared, started) = (self.shared.clone(), self.started);
        self.local.add_callback(move |io| {
            let mut conn = conn_rc.borrow_mut();
            if conn.closed {
                return;
            }
            if !started && conn.machine.can_send_response() {
                conn.prepare_out();
                let date = shared.date(io);
                let Conn { machine, out, .. } = &mut *conn;
                let _ = machine.send_error(StatusCode::INTERNAL_SERVER_ERROR, Some(&date), out);
            }
            conn.close_after_flush(io);
        });
    }
}

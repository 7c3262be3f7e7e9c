//! `WebSocket`: a [`WsConn`] glued to an IoLoop stream after the opening handshake, with one
//! message API for tasks at both ends (`recv`, `send`, `try_send`, `ping`, `close`).
//!
//! Owns the session's I/O cycle: frames parsed in place from the stream's buffer, a bounded
//! inbox, writes with back-pressure, the ping interval and pong time-out, and the bounded
//! wait for the peer's close. It never blocks the loop, reads no clock of its own and draws
//! no random numbers (a client's masking keys come from the caller).
//!
//! # Theory of operation
//!
//! A [`SessionHandler`] is the stream's [`StreamHandler`] (it replaces the HTTP
//! connection's after the 101): every read runs `WsConn::poll_event` over the buffer until it
//! needs data, pushing messages into the inbox. While the inbox holds `read_high_water`
//! bytes the handler stops reading (the peer's socket fills, TCP pushes back); `recv` turns
//! reading back on. Output (`send_*`, automatic pongs and close answers) goes straight to the
//! stream's write queue; the async [`WebSocket::send`] then waits until that queue is below
//! `write_high_water`, and [`WebSocket::try_send`] refuses while it is over `write_limit`, so
//! a slow reader never grows the writer without bound. Once a close frame went out, a timer
//! bounds the wait for the peer's (`close_timeout`); then TCP is closed.

use core::net::SocketAddr;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};

use super::close::CloseCode;
use super::conn::{MaskSource, Message, WsConfig, WsConn, WsEvent};
use super::deflate::DeflateConfig;
use super::error::{HandshakeError, ProtocolError, SendError};
use super::handshake::{ClientHandshake, Negotiated, UpgradeRequest};
use crate::error::{CloseReason, StreamError};
use crate::http::client::parse_url;
use crate::http::ResponseWriter;
use crate::io_loop::{IoLoop, PeriodicId, StreamHandler, StreamId, TimeoutHandle};
use crate::task::{timeout, with_loop, LoopBound, Oneshot, TcpStream};
use crate::time::{Duration, Instant};

/// How one WebSocket session behaves; the defaults are Tornado's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsOptions {
    /// Protocol limits (`max_message_size`, 10 MiB by default).
    pub config: WsConfig,
    /// Send a ping this often (Tornado's `websocket_ping_interval`); `None`: never.
    pub ping_interval: Option<Duration>,
    /// While pings run, close a peer heard nothing from for this long; `None`: the larger
    /// of three intervals and 30 s (Tornado's `websocket_ping_timeout`).
    pub ping_timeout: Option<Duration>,
    /// After our close frame, how long to wait for the peer's (a client: for the server to
    /// close TCP) before closing TCP ourselves.
    pub close_timeout: Duration,
    /// The async `send` waits while more than this is queued unwritten (back-pressure).
    pub write_high_water: usize,
    /// `try_send` refuses a message while more than this is queued unwritten.
    pub write_limit: usize,
    /// Reading from the socket pauses while this many bytes of messages wait for `recv`.
    pub read_high_water: usize,
}

impl Default for WsOptions {
    fn default() -> WsOptions {
        WsOptions {
            config: WsConfig::default(),
            ping_interval: None,
            ping_timeout: None,
            close_timeout: Duration::from_secs(5),
            write_high_water: 64 * 1024,
            write_limit: 4 * 1024 * 1024,
            read_high_water: 64 * 1024,
        }
    }
}

impl WsOptions {
    /// The pong time-out in force when pings run.
    fn effective_ping_timeout(&self, interval: Duration) -> Duration {
        self.ping_timeout
            .unwrap_or_else(|| (interval * 3).max(Duration::from_secs(30)))
    }
}

/// How a session ended: the peer's close code (1005 if its close had none; 1006 when the
/// connection ended without a close frame; ours when we failed the protocol) and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseStatus {
    /// The close code.
    pub code: u16,
    /// The reason text (may be empty).
    pub reason: String,
}

impl CloseStatus {
    fn new(code: CloseCode, reason: impl Into<String>) -> CloseStatus {
        CloseStatus {
            code: code.0,
            reason: reason.into(),
        }
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::Text(text.to_owned())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Message {
        Message::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Message {
        Message::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Message {
        Message::Binary(Bytes::from(data))
    }
}

/// One session's state, shared by its stream handler, its timers and its handles.
struct Session {
    conn: WsConn,
    stream: StreamId,
    options: Rc<WsOptions>,
    protocol: Option<String>,
    inbox: VecDeque<Message>,
    inbox_bytes: usize,
    reader: Option<Waker>,
    /// Why the session ended, once it has; `recv` reports it after the inbox is empty.
    ended: Option<CloseStatus>,
    /// Reading is paused because the inbox is full.
    paused: bool,
    /// The TCP close is queued (after a flush) or done.
    closing: bool,
    tcp_closed: bool,
    last_heard: Instant,
    ping: Option<PeriodicId>,
    close_timer: Option<TimeoutHandle>,
}

impl Session {
    /// Parses what `buf` holds into events, then sends what they queued.
    fn pump(&mut self, io: &mut IoLoop, buf: &mut BytesMut, weak: &Weak<RefCell<Session>>) {
        let mut heard = false;
        // Each event consumes input or ends the loop: bounded by the buffer.
        for _ in 0..=buf.len() + 2 {
            if self.inbox_bytes >= self.options.read_high_water {
                self.paused = true;
                io.set_reading(self.stream, false);
                break;
            }
            match self.conn.poll_event(buf) {
                WsEvent::Message(message) => {
                    heard = true;
                    self.inbox_bytes += message.as_bytes().len();
                    self.inbox.push_back(message);
                    self.wake_reader();
                }
                WsEvent::Ping(_) | WsEvent::Pong(_) => heard = true,
                WsEvent::Close(frame) => {
                    heard = true;
                    let status = match frame {
                        Some(f) => CloseStatus::new(f.code, f.reason),
                        None => CloseStatus::new(CloseCode::NO_STATUS, ""),
                    };
                    self.end(status);
                }
                WsEvent::Error(error) => self.end(error_status(&error)),
                WsEvent::NeedData => {
                    io.set_reading(self.stream, true);
                    break;
                }
                WsEvent::Closed => {
                    // Nothing more is read; what follows a close is discarded (§5.5.1), but
                    // the stream stays readable so the peer's end of file is seen.
                    buf.clear();
                    io.set_reading(self.stream, true);
                    break;
                }
            }
        }
        if heard {
            self.last_heard = io.now();
        }
        self.transmit(io);
        self.settle(io, weak);
    }

    fn wake_reader(&mut self) {
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
    }

    /// Records the first reason the session ended and wakes the reader.
    fn end(&mut self, status: CloseStatus) {
        if self.ended.is_none() {
            self.ended = Some(status);
        }
        self.wake_reader();
    }

    /// Moves queued frames to the stream's write queue (no copy).
    fn transmit(&mut self, io: &mut IoLoop) {
        while let Some(frame) = self.conn.poll_transmit() {
            if io.write(self.stream, frame).is_err() {
                return;
            }
        }
    }

    /// Closes TCP when the machine says so; bounds the wait for the peer's close.
    fn settle(&mut self, io: &mut IoLoop, weak: &Weak<RefCell<Session>>) {
        if self.closing || self.tcp_closed {
            return;
        }
        if self.conn.should_close_tcp() {
            self.closing = true;
            let stream = self.stream;
            if io.flush(stream, move |io, _| io.close(stream)).is_err() {
                io.close(stream);
            }
            return;
        }
        if self.conn.close_sent() && self.close_timer.is_none() {
            let weak = weak.clone();
            let handle = io.call_later(self.options.close_timeout, move |io| {
                let Some(session) = weak.upgrade() else {
                    return;
                };
                let mut s = session.borrow_mut();
                s.close_timer = None;
                if !s.tcp_closed {
                    tracing::debug!(stream = ?s.stream, "no close from the peer in time; closing");
                    s.end(CloseStatus::new(CloseCode::ABNORMAL, "close timed out"));
                    io.close(s.stream);
                }
            });
            self.close_timer = Some(handle);
        }
    }

    /// Queues `message`; returns the write total to wait for when over the high-water mark.
    fn queue(&mut self, io: &mut IoLoop, message: Message) -> Result<Option<u64>, SendError> {
        if self.tcp_closed {
            return Err(SendError::Closed);
        }
        self.conn.send(message)?;
        self.transmit(io);
        let stream = io.stream(self.stream).ok_or(SendError::Closed)?;
        let high_water = self.options.write_high_water;
        Ok((stream.write_queued() > high_water).then(|| stream.total_queued() - high_water as u64))
    }

    fn queued(&self, io: &IoLoop) -> usize {
        io.stream(self.stream).map_or(0, |s| s.write_queued())
    }

    fn close(
        &mut self,
        io: &mut IoLoop,
        code: CloseCode,
        reason: &str,
        weak: &Weak<RefCell<Session>>,
    ) {
        if self.tcp_closed || self.conn.close_sent() {
            return;
        }
        let reason = truncate_reason(reason);
        if self.conn.close(code, reason).is_err() {
            let _ = self.conn.send_close(None);
        }
        self.transmit(io);
        self.settle(io, weak);
    }

    /// The periodic ping: a peer silent for longer than the time-out is cut off.
    fn on_ping_tick(&mut self, io: &mut IoLoop, interval: Duration) {
        if self.tcp_closed || self.conn.close_sent() {
            return;
        }
        let limit = self.options.effective_ping_timeout(interval);
        if io.now() - self.last_heard > limit {
            tracing::debug!(stream = ?self.stream, "no pong within {limit:?}; closing");
            self.end(CloseStatus::new(CloseCode::ABNORMAL, "ping timeout"));
            io.close(self.stream);
            return;
        }
        if self.conn.send_ping(Bytes::new()).is_ok() {
            self.transmit(io);
        }
    }

    fn stop_timers(&mut self, io: &mut IoLoop) {
        if let Some(id) = self.ping.take() {
            io.stop_periodic(id);
        }
        if let Some(handle) = self.close_timer.take() {
            io.remove_timeout(handle);
        }
    }
}

/// A close reason cut to the 123 bytes a close frame carries, on a character boundary.
fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn error_status(error: &ProtocolError) -> CloseStatus {
    match error {
        ProtocolError::ConnectionLost => CloseStatus::new(CloseCode::ABNORMAL, ""),
        e => CloseStatus::new(e.close_code(), e.to_string()),
    }
}

/// The stream handler of one session (see the module docs).
struct SessionHandler(Rc<RefCell<Session>>);

impl StreamHandler for SessionHandler {
    fn on_readable(&mut self, io: &mut IoLoop, _: StreamId, buf: &mut BytesMut, eof: bool) {
        let weak = Rc::downgrade(&self.0);
        let mut s = self.0.borrow_mut();
        if eof {
            s.conn.handle_eof();
        }
        if s.paused {
            return; // `recv` resumes once the inbox has room
        }
        s.pump(io, buf, &weak);
    }

    /// A graceful stop: start the close handshake with 1001 (going away); the peer's
    /// answer (or the bounded close wait) then ends the session.
    fn on_drain(&mut self, io: &mut IoLoop, _: StreamId) {
        let weak = Rc::downgrade(&self.0);
        let mut s = self.0.borrow_mut();
        if !s.tcp_closed && !s.conn.close_sent() {
            s.close(io, CloseCode::GOING_AWAY, "server stopping", &weak);
        }
    }

    fn on_close(&mut self, io: &mut IoLoop, _: StreamId, reason: CloseReason) {
        let mut s = self.0.borrow_mut();
        s.tcp_closed = true;
        s.stop_timers(io);
        let status = CloseStatus::new(CloseCode::ABNORMAL, format!("connection closed: {reason}"));
        s.end(status);
    }
}

/// A cloneable handle that sends on a session (e.g. to broadcast from another task).
///
/// Its methods must be called from a task on the session's loop.
#[derive(Clone)]
pub struct WsSender {
    session: Rc<RefCell<Session>>,
    bound: LoopBound,
}

impl WsSender {
    /// Queues `message`, then waits while more than `write_high_water` bytes are unwritten
    /// (a slow reader makes the writer wait). Fails once the session is closing.
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        let message = message.into();
        let session = &self.session;
        let target = self
            .bound
            .with(|io| session.borrow_mut().queue(io, message))?;
        let Some(target) = target else {
            return Ok(());
        };
        let slot = Oneshot::new();
        let done = slot.clone();
        let stream = session.borrow().stream;
        self.bound
            .with(|io| io.flush_until(stream, target, Box::new(move |_, r| done.complete(r))))
            .map_err(|_| SendError::Closed)?;
        poll_fn(|cx| slot.poll(cx))
            .await
            .map_err(|_| SendError::Closed)
    }

    /// Queues `message` now, without waiting; refuses (`BufferFull`) while more than
    /// `write_limit` bytes are unwritten, so a slow peer's backlog stays bounded.
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        let message = message.into();
        self.bound.with(|io| {
            let mut s = self.session.borrow_mut();
            let (queued, limit) = (s.queued(io), s.options.write_limit);
            if queued > limit {
                return Err(SendError::BufferFull { queued, limit });
            }
            s.queue(io, message).map(|_| ())
        })
    }

    /// Queues one fragment of a message now (see [`WsConn::send_fragment`]): the first
    /// starts a `kind` message, `fin` ends it; bounded by `write_limit` like `try_send`.
    pub fn send_fragment(
        &self,
        kind: super::conn::MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), SendError> {
        let data = data.into();
        self.bound.with(|io| {
            let mut s = self.session.borrow_mut();
            let (queued, limit) = (s.queued(io), s.options.write_limit);
            if queued > limit {
                return Err(SendError::BufferFull { queued, limit });
            }
            if s.tcp_closed {
                return Err(SendError::Closed);
            }
            s.conn.send_fragment(kind, data, fin)?;
            s.transmit(io);
            Ok(())
        })
    }

    /// Sends a ping (payload at most 125 bytes); the pong counts as hearing from the peer.
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), SendError> {
        let payload = payload.into();
        self.bound.with(|io| {
            let mut s = self.session.borrow_mut();
            s.conn.send_ping(payload)?;
            s.transmit(io);
            Ok(())
        })
    }

    /// Starts the close handshake with `code` and `reason` (cut to 123 bytes); TCP closes
    /// when the peer answers or after `close_timeout`. Does nothing once closing.
    pub fn close(&self, code: u16, reason: &str) {
        let weak = Rc::downgrade(&self.session);
        self.bound.with(|io| {
            self.session
                .borrow_mut()
                .close(io, CloseCode(code), reason, &weak)
        });
    }

    /// Bytes queued for the peer and not yet written.
    pub fn buffered_amount(&self) -> usize {
        let session = &self.session;
        self.bound.with(|io| session.borrow().queued(io))
    }

    /// True until a close frame went out or the connection ended.
    pub fn is_open(&self) -> bool {
        let s = self.session.borrow();
        !s.tcp_closed && s.conn.is_open()
    }
}

impl std::fmt::Debug for WsSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.session.borrow();
        f.debug_struct("WsSender")
            .field("stream", &s.stream)
            .field("open", &(!s.tcp_closed && s.conn.is_open()))
            .finish()
    }
}

/// One WebSocket session for tasks: receives with [`recv`](Self::recv), sends like a
/// [`WsSender`]. Dropped while open, it closes with 1001 (going away).
pub struct WebSocket {
    tx: WsSender,
    peer: Option<SocketAddr>,
}

impl WebSocket {
    /// Runs a session over `stream` (whose handshake is done) with `conn`: installs its
    /// stream handler, which first parses whatever the stream has buffered.
    pub fn attach(
        io: &mut IoLoop,
        stream: StreamId,
        conn: WsConn,
        protocol: Option<String>,
        options: Rc<WsOptions>,
    ) -> Result<WebSocket, StreamError> {
        let ping_interval = options.ping_interval;
        let session = Rc::new(RefCell::new(Session {
            conn,
            stream,
            options,
            protocol,
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            reader: None,
            ended: None,
            paused: false,
            closing: false,
            tcp_closed: false,
            last_heard: io.now(),
            ping: None,
            close_timer: None,
        }));
        io.set_handler(stream, Box::new(SessionHandler(session.clone())))?;
        io.set_reading(stream, true);
        // Bytes that came with the handshake wait in the buffer: parse them now.
        io.notify_handler(stream);
        if let Some(interval) = ping_interval.filter(|i| !i.is_zero()) {
            let weak = Rc::downgrade(&session);
            let id = io.add_periodic(interval, move |io| {
                if let Some(s) = weak.upgrade() {
                    s.borrow_mut().on_ping_tick(io, interval);
                }
            });
            session.borrow_mut().ping = Some(id);
        }
        Ok(WebSocket {
            tx: WsSender {
                session,
                bound: LoopBound::of(io),
            },
            peer: io.peer_addr(stream),
        })
    }

    /// Server side, from a task: answers a validated upgrade with `101` (the subprotocol and
    /// extension in `negotiated`) and runs the session on the request's connection.
    pub fn accept(
        writer: ResponseWriter,
        request: &UpgradeRequest,
        negotiated: Negotiated,
        options: Rc<WsOptions>,
    ) -> Result<WebSocket, AcceptError> {
        let headers = request.response_headers(&negotiated)?;
        let stream = writer.upgrade(&headers)?;
        let conn = WsConn::server(options.config.clone(), negotiated.deflate.as_ref());
        with_loop(|io| WebSocket::attach(io, stream, conn, negotiated.protocol, options))
            .map_err(AcceptError::Stream)
    }

    /// The next message; `None` once the session has ended (then see
    /// [`close_status`](Self::close_status)). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Message> {
        let session = &self.tx.session;
        let bound = &self.tx.bound;
        poll_fn(|cx| {
            let mut s = session.borrow_mut();
            if let Some(message) = s.inbox.pop_front() {
                s.inbox_bytes -= message.as_bytes().len();
                if s.paused && s.inbox_bytes < s.options.read_high_water {
                    s.paused = false;
                    let stream = s.stream;
                    drop(s);
                    bound.with(|io| {
                        io.set_reading(stream, true);
                        io.notify_handler(stream);
                    });
                }
                return Poll::Ready(Some(message));
            }
            if s.ended.is_some() {
                return Poll::Ready(None);
            }
            s.reader = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// How the session ended: `None` while it runs.
    pub fn close_status(&self) -> Option<CloseStatus> {
        self.tx.session.borrow().ended.clone()
    }

    /// The subprotocol the handshake selected.
    pub fn subprotocol(&self) -> Option<String> {
        self.tx.session.borrow().protocol.clone()
    }

    /// True when permessage-deflate is on.
    pub fn compressed(&self) -> bool {
        self.tx.session.borrow().conn.compressed()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The stream the session runs on.
    pub fn stream(&self) -> StreamId {
        self.tx.session.borrow().stream
    }

    /// A cloneable sending handle.
    pub fn sender(&self) -> WsSender {
        self.tx.clone()
    }

    /// See [`WsSender::send`].
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        self.tx.send(message).await
    }

    /// See [`WsSender::try_send`].
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        self.tx.try_send(message)
    }

    /// See [`WsSender::ping`].
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), SendError> {
        self.tx.ping(payload)
    }

    /// See [`WsSender::close`].
    pub fn close(&self, code: u16, reason: &str) {
        self.tx.close(code, reason)
    }

    /// See [`WsSender::is_open`].
    pub fn is_open(&self) -> bool {
        self.tx.is_open()
    }

    /// See [`WsSender::buffered_amount`].
    pub fn buffered_amount(&self) -> usize {
        self.tx.buffered_amount()
    }
}

impl Drop for WebSocket {
    fn drop(&mut self) {
        let session = self.tx.session.clone();
        let open = {
            let s = session.borrow();
            !s.tcp_closed && !s.conn.close_sent()
        };
        if open {
            self.tx.bound.run_or_defer(move |io| {
                let weak = Rc::downgrade(&session);
                session
                    .borrow_mut()
                    .close(io, CloseCode::GOING_AWAY, "", &weak);
            });
        }
    }
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("peer", &self.peer)
            .field("sender", &self.tx)
            .finish()
    }
}

/// Why a server could not accept an upgrade.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The negotiated values do not fit the request (e.g. a subprotocol it did not offer).
    #[error("bad handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The 101 could not be sent (connection closed, or the request is not upgradeable).
    #[error("cannot send the 101 answer: {0}")]
    Send(#[from] crate::http::SendError),
    /// The stream could not be taken over.
    #[error("cannot take the stream over: {0}")]
    Stream(StreamError),
}

/// A client's connection request: the URL and what to offer, with time and size limits.
#[derive(Debug, Clone)]
pub struct WsConnect {
    /// `ws://` or `wss://host[:port]/path` (an IP literal or `localhost`; the core resolves no names).
    pub url: String,
    /// Subprotocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// Extra request header fields (e.g. `Origin`, cookies).
    pub headers: HeaderMap,
    /// Offer permessage-deflate with these parameters (`None`: do not).
    pub deflate: Option<DeflateConfig>,
    /// Limit on the TCP connect.
    pub connect_timeout: Duration,
    /// Limit on the whole opening handshake, connect included.
    pub request_timeout: Duration,
    /// Largest response head accepted.
    pub max_header_size: usize,
    /// The session's options once connected.
    pub options: WsOptions,
    /// TLS for `wss://` (`None`: verify against the built-in webpki roots).
    pub tls: Option<crate::tls::TlsConnector>,
}

impl WsConnect {
    /// A request for `url` with Tornado's defaults (20 s connect, 20 s handshake).
    pub fn new(url: &str) -> WsConnect {
        WsConnect {
            url: url.to_owned(),
            protocols: Vec::new(),
            headers: HeaderMap::new(),
            deflate: None,
            connect_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(20),
            max_header_size: 64 * 1024,
            options: WsOptions::default(),
            tls: None,
        }
    }
}

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a usable `ws://` URL.
    #[error("bad WebSocket URL: {0}")]
    Url(&'static str),
    /// The host is not an IP literal or `localhost`.
    #[error("cannot resolve host {0:?} (use an IP literal or localhost)")]
    UnresolvedHost(String),
    /// The TCP connection failed or closed during the handshake.
    #[error("connection failed: {0}")]
    Io(#[from] StreamError),
    /// The handshake took longer than `request_timeout`.
    #[error("opening handshake timed out")]
    Timeout,
    /// The server's answer is not a well-formed HTTP response head.
    #[error("malformed handshake response: {0}")]
    BadResponse(&'static str),
    /// The server refused or answered wrongly.
    #[error("handshake refused: {0}")]
    Handshake(#[from] HandshakeError),
}

/// Client side, from a task: connects to `request.url`, runs the opening handshake and
/// returns the session. `keys` supplies masking keys (and the handshake nonce): it must be
/// unpredictable to the peer (RFC 6455 §10.3), e.g. a CSPRNG seeded from the OS.
pub async fn connect(request: WsConnect, mut keys: MaskSource) -> Result<WebSocket, ConnectError> {
    let url = match request.url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("ws") => format!("http://{rest}"),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("wss") => format!("https://{rest}"),
        _ => {
            return Err(ConnectError::Url(
                "expected ws://host/path or wss://host/path",
            ))
        }
    };
    let target = parse_url(&url).map_err(ConnectError::Url)?;
    let addr = target
        .literal_addr
        .ok_or_else(|| ConnectError::UnresolvedHost(target.host.clone()))?;
    let mut nonce = [0u8; 16];
    for chunk in nonce.chunks_mut(4) {
        chunk.copy_from_slice(&keys());
    }
    let handshake = ClientHandshake::new(nonce, request.protocols.clone(), request.deflate.clone());
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        target.path_and_query, target.authority
    )
    .into_bytes();
    for (name, value) in handshake
        .request_headers()
        .iter()
        .chain(request.headers.iter())
    {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let tls = match target.tls {
        true => {
            let connector = request
                .tls
                .clone()
                .unwrap_or_else(crate::tls::TlsConnector::webpki_roots);
            let session = connector
                .session(&target.host)
                .map_err(|_| ConnectError::Url("the host is not a valid TLS server name"))?;
            Some(session)
        }
        false => None,
    };
    let exchange = async {
        let mut tcp = TcpStream::connect_timeout(addr, request.connect_timeout).await?;
        if let Some(session) = tls {
            tcp.start_tls(session)?; // wss: the handshake below goes over TLS
        }
        tcp.write(head)?;
        let answer = tcp
            .read_until(&b"\r\n\r\n"[..], Some(request.max_header_size))
            .await?;
        Ok::<_, ConnectError>((tcp, answer))
    };
    let (tcp, answer) = timeout(request.request_timeout, exchange)
        .await
        .map_err(|_| ConnectError::Timeout)??;
    let (status, headers) = parse_response_head(&answer)?;
    let negotiated = handshake.validate_response(status, &headers)?;
    let options = Rc::new(request.options);
    let conn = WsConn::client(options.config.clone(), negotiated.deflate.as_ref(), keys);
    let stream = tcp.into_stream_id();
    with_loop(|io| WebSocket::attach(io, stream, conn, negotiated.protocol, options))
        .map_err(ConnectError::Io)
}

/// The status and fields of a response head (ending in CRLFCRLF).
fn parse_response_head(bytes: &[u8]) -> Result<(StatusCode, HeaderMap), ConnectError> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(ConnectError::BadResponse("not an HTTP/1.1 response head")),
    }
    let status = response
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(ConnectError::BadResponse("bad status code"))?;
    let mut headers = HeaderMap::new();
    for field in response.headers.iter() {
        let name = http::HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| ConnectError::BadResponse("bad field name"))?;
        let value = http::HeaderValue::from_bytes(field.value)
            .map_err(|_| ConnectError::BadResponse("bad field value"))?;
        headers.append(name, value);
    }
    Ok((status, headers))
}

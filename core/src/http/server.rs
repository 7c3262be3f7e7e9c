//! `ServerConn`: one HTTP/1.1 server connection as a pure state machine.
//!
//! It owns the request/response cycle (keep-alive, pipelining, 100-continue, limits) and
//! never reads a socket or a clock: bytes and time-outs are handed in, events and bytes out.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use core::time::Duration;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

use super::config::HttpConfig;
use super::date::HttpDate;
use super::error::{RequestError, SendError};
use super::framing::{
    encode_chunk, encode_last_chunk, parse_content_length, scan_head_end, ChunkedDecoder, Decoded,
    HeadScan,
};
use super::head::{parse_request_head, BodyFraming, FieldSpan, RequestHead};
use super::response_fields::{AppFields, ResponseFields};
use super::sink::ResponseSink;
use crate::stream::Chunk;

/// What [`ServerConn::poll_event`] found; drain events until `NeedData`, `Paused` or `Closed`.
#[derive(Debug)]
pub enum ServerEvent {
    /// A request head; body events (`Data`, then `End`) follow, even for an empty body.
    Head(RequestHead),
    /// A piece of the request body, split off the read buffer without copying.
    Data(Bytes),
    /// The request body ended; the chunked trailer fields, if any.
    End(Option<HeaderMap>),
    /// The buffer holds no complete event; read more bytes, then poll again.
    NeedData,
    /// The request is complete; the next (pipelined) request waits until `send_end`.
    Paused,
    /// The request is malformed: answer with `error.status()` via [`ServerConn::send_error`]
    /// if [`ServerConn::can_send_response`] (a response may already be under way), then close.
    Error(RequestError),
    /// Nothing more will be read: flush pending output, then close the connection.
    Closed,
    /// A `101 Switching Protocols` response was sent: the buffer now belongs to the new protocol.
    Upgraded,
}

/// Whether the connection stays open after a finished response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterResponse {
    /// Keep reading: the next request may follow.
    KeepAlive,
    /// Flush the output, then close the connection.
    Close,
}

/// Which read time-out applies in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Waiting for the first byte of a request (`idle_connection_timeout`).
    Idle,
    /// A request head has started but is not complete (`header_timeout`).
    Header,
    /// Reading a request body (`body_timeout`).
    Body,
}

/// The read time-out the glue should arm: `after` from the moment `phase` was first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadTimeout {
    /// What is being waited for.
    pub kind: TimeoutKind,
    /// How long it may take.
    pub after: Duration,
    /// Changes whenever a new timed phase starts; re-arm the timer when it changes.
    pub phase: u64,
}

/// How the request body is being read.
#[derive(Debug, Clone)]
enum BodyDecoder {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
}

/// Read side: the peer's request (h11's "their state" for a server).
#[derive(Debug, Clone)]
enum ReadState {
    /// Waiting for a request head; `scanned` bytes were checked, `started` once any arrived.
    Head {
        scanned: usize,
        started: bool,
        empty_lines: u8,
    },
    /// Reading the body of the current request.
    Body(BodyDecoder),
    /// The current request was read to its end; later bytes wait (pipelining).
    Done,
    /// Nothing more is read: after an error, a close decision, a time-out or EOF.
    Closed,
    /// Handed over to another protocol after a 101 response.
    Upgraded,
}

/// How the response body is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEncoder {
    Length {
        remaining: u64,
    },
    Chunked,
    CloseDelimited,
    /// 204 / 304: any non-empty data is an error.
    Forbidden(StatusCode),
    /// Response to HEAD: data is dropped, the head said what a GET would get.
    Head,
}

/// Write side: our response (h11's "our state").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    /// No request to answer yet.
    Idle,
    /// A request (or a request error) awaits a response head.
    Ready,
    /// The head was sent; the body is being written.
    Body(BodyEncoder),
    /// The response is complete; waiting for the request side to finish.
    Done,
    /// Nothing more may be written.
    Closed,
    /// Handed over to another protocol after a 101 response.
    Upgraded,
}

/// One HTTP/1.1 server connection: request bytes in, events out; responses in, bytes out.
///
/// # Call order
/// After every read into the connection's buffer, call [`poll_event`](Self::poll_event)
/// until it returns `NeedData`, `Paused` or `Closed`. Answer each `Head` with
/// [`send_response`](Self::send_response), any number of [`send_data`](Self::send_data),
/// then [`send_end`](Self::send_end), whose result says whether to keep the connection.
/// After `send_end` poll again: a pipelined request may already be buffered.
///
/// # Transitions (read side × write side)
/// | event                         | read             | write          |
/// |-------------------------------|------------------|----------------|
/// | head parsed                   | Head → Body      | Idle → Ready   |
/// | body ended (`End` returned)   | Body → Done      | —              |
/// | `send_response` (final)       | —                | Ready → Body   |
/// | `send_response(101)`          | Done → Upgraded  | Ready → Upgraded |
/// | `send_end`                    | —                | Body → Done    |
/// | both Done, keep-alive         | Done → Head      | Done → Idle    |
/// | both Done, no keep-alive      | Done → Closed    | Done → Closed  |
/// | write Done, body left unread  | Body → Closed    | Done → Closed  |
/// | malformed input (`Error`)     | any → Closed     | Idle → Ready (to answer the error) |
#[derive(Debug)]
pub struct ServerConn {
    config: Arc<HttpConfig>,
    read: ReadState,
    write: WriteState,
    /// Whether this cycle may be followed by another (client wish ∧ server decisions).
    keep_alive: bool,
    /// The peer half-closed; no more requests after the current one.
    peer_eof: bool,
    /// The current request is a HEAD (its response has no body).
    head_request: bool,
    /// The client sent `Expect: 100-continue` and no 100 or final response went out yet.
    continue_pending: bool,
    /// `max_body_size` in force for the current request.
    max_body_size: u64,
    /// Body bytes of the current request seen so far (for Content-Length bodies).
    body_received: u64,
    /// Bumped on each change of read phase (see [`ReadTimeout`]).
    phase: u64,
    /// A field list handed back (from a finished head), reused for the next head.
    spare_fields: Vec<FieldSpan>,
    /// The current request is HTTP/1.0.
    http10: bool,
    /// Content-Length of the response being written (for error messages).
    response_declared: u64,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl ServerConn {
    /// A connection waiting for its first request.
    pub fn new(config: Arc<HttpConfig>) -> ServerConn {
        let max_body_size = config.max_body_size;
        ServerConn {
            config,
            read: ReadState::Head {
                scanned: 0,
                started: false,
                empty_lines: 0,
            },
            write: WriteState::Idle,
            keep_alive: false,
            peer_eof: false,
            head_request: false,
            continue_pending: false,
            max_body_size,
            body_received: 0,
            phase: 0,
            spare_fields: Vec::new(),
            http10: false,
            response_declared: 0,
        }
    }

    /// The configuration this connection runs with.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Parses what it can from `buf` (the stream's read buffer), consuming what it used.
    ///
    /// Returns one event; bytes of a pipelined request stay in `buf` while `Paused`.
    #[must_use]
    pub fn poll_event(&mut self, buf: &mut BytesMut) -> ServerEvent {
        match self.read {
            ReadState::Head { .. } => self.poll_head(buf),
            ReadState::Body(_) => self.poll_body(buf),
            ReadState::Done => ServerEvent::Paused,
            ReadState::Closed => ServerEvent::Closed,
            ReadState::Upgraded => ServerEvent::Upgraded,
        }
    }

    /// The server is stopping: no request is read after the current one, and the
    /// connection closes once its response is out. Returns true when the connection is
    /// idle between requests (it has served one, and nothing of a next one has arrived), so
    /// the caller may close it at once. A connection that has not served its first request
    /// yet is not idle: it was just accepted, and its request may be on the wire.
    pub fn drain(&mut self) -> bool {
        self.keep_alive = false;
        let idle = self.phase > 0
            && matches!(self.read, ReadState::Head { started: false, .. })
            && matches!(self.write, WriteState::Idle);
        if idle {
            self.close();
        }
        idle
    }

    /// The peer closed its sending side: no request will follow the current one.
    ///
    /// Poll again afterwards: a half-read request becomes an `Error(Incomplete)`, an idle
    /// connection becomes `Closed`, a complete request can still be answered.
    pub fn handle_eof(&mut self) {
        self.peer_eof = true;
        self.keep_alive = false;
    }

    /// The read time-out of `phase` fired: returns true if it still applies, and the
    /// connection is then closed (Tornado closes silently on these time-outs).
    pub fn handle_timeout(&mut self, phase: u64) -> bool {
        match self.read_timeout() {
            Some(t) if t.phase == phase => {
                self.close();
                true
            }
            _ => false,
        }
    }

    /// Sends `100 Continue` if the client is waiting for it and no response started;
    /// call when the application starts reading the body. Returns whether it was sent.
    pub fn accept_body(&mut self, out: &mut impl ResponseSink) -> bool {
        if !self.continue_pending || self.write != WriteState::Ready {
            return false;
        }
        if let ReadState::Body(BodyDecoder::Length { remaining }) = self.read {
            if self.body_received.saturating_add(remaining) > self.max_body_size {
                // The next poll reports 413; inviting the body would be pointless.
                return false;
            }
        }
        self.continue_pending = false;
        out.put_slice(CONTINUE);
        true
    }

    /// Changes `max_body_size` for the current request only (Tornado's per-request override).
    pub fn set_max_body_size(&mut self, max_body_size: u64) {
        self.max_body_size = max_body_size;
    }

    /// Hands back a finished head: the next head is parsed into its field list, so a
    /// keep-alive connection allocates nothing per request.
    pub fn recycle_head(&mut self, mut head: RequestHead) {
        self.give_fields(head.take_fields());
    }

    /// Gives the machine a field list for the next head (kept only if it has none).
    pub(crate) fn give_fields(&mut self, fields: Vec<FieldSpan>) {
        if self.spare_fields.capacity() == 0 {
            self.spare_fields = fields;
        }
    }

    /// True when the machine has no field list of its own for the next head.
    pub(crate) fn needs_fields(&self) -> bool {
        self.spare_fields.capacity() == 0
    }

    /// Takes back the machine's spare field list (an idle connection then holds none).
    pub(crate) fn take_spare_fields(&mut self) -> Vec<FieldSpan> {
        std::mem::take(&mut self.spare_fields)
    }

    // ----- getters ------------------------------------------------------------------------

    /// The read time-out to arm now, if any (none while the application is answering).
    pub fn read_timeout(&self) -> Option<ReadTimeout> {
        let (kind, after) = match self.read {
            ReadState::Head { started: false, .. } => {
                (TimeoutKind::Idle, self.config.idle_connection_timeout)
            }
            ReadState::Head { started: true, .. } => (
                TimeoutKind::Header,
                self.config
                    .header_timeout
                    .unwrap_or(self.config.idle_connection_timeout),
            ),
            ReadState::Body(_) if !self.continue_pending => {
                (TimeoutKind::Body, self.config.body_timeout?)
            }
            _ => return None,
        };
        Some(ReadTimeout {
            kind,
            after,
            phase: self.phase,
        })
    }

    /// True when nothing more will be read or written: close once output is flushed.
    pub fn is_closed(&self) -> bool {
        matches!(self.read, ReadState::Closed) && matches!(self.write, WriteState::Closed)
    }

    /// True after a 101 response: the connection belongs to another protocol.
    pub fn is_upgraded(&self) -> bool {
        matches!(self.write, WriteState::Upgraded)
    }

    /// True when the machine would consume more input now; false while `Paused` (pipelined
    /// bytes wait) and after close. Advisory: reading on only risks buffering, bounded by the caller.
    pub fn wants_read(&self) -> bool {
        matches!(self.read, ReadState::Head { .. } | ReadState::Body(_))
    }

    /// True while the client waits for `100 Continue` (see [`accept_body`](Self::accept_body)).
    pub fn expects_continue(&self) -> bool {
        self.continue_pending
    }

    /// True when a response head may be sent now.
    pub fn can_send_response(&self) -> bool {
        self.write == WriteState::Ready
    }

    // ----- response (application mutators) -------------------------------------------------

    /// Writes a response head into `out`, choosing the body framing.
    ///
    /// Adds `Date` (when given and absent), `Server: eddy` (when absent), `Transfer-Encoding:
    /// chunked` for unknown lengths on HTTP/1.1, and the `Connection` header the keep-alive
    /// decision needs (an application `Connection` header is replaced, except on 101).
    /// 1xx responses (other than 101) leave the machine ready for the final response.
    pub fn send_response<'h>(
        &mut self,
        status: StatusCode,
        headers: impl Into<ResponseFields<'h>>,
        date: Option<&HttpDate>,
        out: &mut impl ResponseSink,
    ) -> Result<(), SendError> {
        self.send_head(status, headers.into(), None, date, out)
    }

    /// Writes a response head announcing a body of `len` bytes (`Content-Length: len` unless
    /// `headers` declare one), for a body sent piece by piece; no header value is built.
    pub fn send_response_sized<'h>(
        &mut self,
        status: StatusCode,
        headers: impl Into<ResponseFields<'h>>,
        len: u64,
        date: Option<&HttpDate>,
        out: &mut impl ResponseSink,
    ) -> Result<(), SendError> {
        self.send_head(status, headers.into(), Some(len), date, out)
    }

    /// Writes a whole response: the head (with `Content-Length: body.len()` unless `headers`
    /// declare one), the body, and the end; says whether the connection stays open.
    ///
    /// The fast path for handlers that have the whole body: nothing is copied or allocated.
    pub fn send_full_response<'h>(
        &mut self,
        status: StatusCode,
        headers: impl Into<ResponseFields<'h>>,
        body: Bytes,
        date: Option<&HttpDate>,
        out: &mut impl ResponseSink,
    ) -> Result<AfterResponse, SendError> {
        self.send_head(status, headers.into(), Some(body.len() as u64), date, out)?;
        self.send_data(body, out)?;
        self.send_end(out)
    }

    fn send_head(
        &mut self,
        status: StatusCode,
        fields: ResponseFields<'_>,
        body_len: Option<u64>,
        date: Option<&HttpDate>,
        out: &mut impl ResponseSink,
    ) -> Result<(), SendError> {
        match self.write {
            WriteState::Ready => {}
            WriteState::Closed | WriteState::Upgraded => return Err(SendError::Closed),
            _ => return Err(SendError::NotReady),
        }
        let headers = fields.map();
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return self.send_switching_protocols(headers, out);
        }
        if status.is_informational() {
            if status == StatusCode::CONTINUE {
                self.continue_pending = false;
            }
            write_status_line(status, out);
            for (name, value) in headers {
                write_field(name.as_str().as_bytes(), value.as_bytes(), out);
            }
            out.put_slice(b"\r\n");
            return Ok(());
        }
        let app = fields.app_fields();
        let body_len = body_len.filter(|_| !app.content_length && !app.transfer_encoding);
        let encoder = self.choose_encoder(status, headers, body_len, &app)?;
        if self.continue_pending {
            // The client will not send the body it was not invited to send.
            self.keep_alive = false;
        }
        self.continue_pending = false;
        if matches!(encoder, BodyEncoder::CloseDelimited)
            || (app.connection && wants_close(headers))
        {
            self.keep_alive = false;
        }
        write_status_line(status, out);
        // RFC 9110 §8.6, §6.4.1: a 204 carries no framing fields.
        let no_framing_fields = status == StatusCode::NO_CONTENT;
        match fields.block() {
            // A pre-built block holds no Connection field; only a 204 must drop fields from it.
            Some(block)
                if !(no_framing_fields && (app.content_length || app.transfer_encoding)) =>
            {
                out.put_slice(block)
            }
            _ => {
                for (name, value) in headers {
                    if name == CONNECTION
                        || (no_framing_fields
                            && (name == CONTENT_LENGTH || name == TRANSFER_ENCODING))
                    {
                        continue;
                    }
                    write_field(name.as_str().as_bytes(), value.as_bytes(), out);
                }
            }
        }
        // The server's own fields and the blank line, assembled in one piece.
        let mut tail = HeadTail::default();
        if let Some(n) =
            body_len.filter(|_| !no_framing_fields && status != StatusCode::NOT_MODIFIED)
        {
            tail.push(b"Content-Length: ");
            tail.push(format_decimal(n, &mut [0u8; 20]));
            tail.push(b"\r\n");
        }
        match date.filter(|_| !app.date) {
            Some(date) => tail.push(date.response_lines(!app.server)),
            None if !app.server => tail.push(b"Server: eddy\r\n"),
            None => {}
        }
        if encoder == BodyEncoder::Chunked && !app.transfer_encoding {
            tail.push(b"Transfer-Encoding: chunked\r\n");
        }
        if !self.keep_alive {
            tail.push(b"Connection: close\r\n");
        } else if self.head_version_is_10() {
            tail.push(b"Connection: keep-alive\r\n");
        }
        tail.push(b"\r\n");
        out.put_slice(tail.as_bytes());
        self.write = WriteState::Body(encoder);
        Ok(())
    }

    /// Writes a piece of the response body (chunk-framed when the response is chunked).
    ///
    /// `data` is `Bytes`, or a [`FileRange`](crate::file::FileRange) the sink queues as it is.
    pub fn send_data(
        &mut self,
        data: impl Into<Chunk>,
        out: &mut impl ResponseSink,
    ) -> Result<(), SendError> {
        let data = data.into();
        let WriteState::Body(encoder) = self.write else {
            return Err(match self.write {
                WriteState::Idle | WriteState::Ready => SendError::NoResponseStarted,
                _ => SendError::Closed,
            });
        };
        match encoder {
            BodyEncoder::Length { remaining } => {
                let len = data.len() as u64;
                if len > remaining {
                    self.keep_alive = false;
                    return Err(SendError::BodyTooLong {
                        declared: self.response_declared,
                    });
                }
                self.write = WriteState::Body(BodyEncoder::Length {
                    remaining: remaining - len,
                });
                if len > 0 {
                    out.put_chunk(data);
                }
            }
            BodyEncoder::Chunked => encode_chunk(data, out),
            BodyEncoder::CloseDelimited => {
                if !data.is_empty() {
                    out.put_chunk(data);
                }
            }
            BodyEncoder::Forbidden(status) if !data.is_empty() => {
                return Err(SendError::BodyNotAllowed(status))
            }
            BodyEncoder::Forbidden(_) | BodyEncoder::Head => {}
        }
        Ok(())
    }

    /// Finishes the response and says whether the connection stays open.
    ///
    /// A short Content-Length body is an error and the connection must close.
    pub fn send_end(&mut self, out: &mut impl ResponseSink) -> Result<AfterResponse, SendError> {
        let WriteState::Body(encoder) = self.write else {
            return Err(match self.write {
                WriteState::Idle | WriteState::Ready => SendError::NoResponseStarted,
                _ => SendError::Closed,
            });
        };
        let mut result = Ok(());
        match encoder {
            BodyEncoder::Length { remaining } if remaining > 0 => {
                self.keep_alive = false;
                result = Err(SendError::BodyTooShort { missing: remaining });
            }
            BodyEncoder::Chunked => encode_last_chunk(out),
            BodyEncoder::CloseDelimited => self.keep_alive = false,
            _ => {}
        }
        self.write = WriteState::Done;
        self.finish_cycle();
        result?;
        Ok(if self.is_closed() {
            AfterResponse::Close
        } else {
            AfterResponse::KeepAlive
        })
    }

    /// Answers a request error (or any status) with an empty body and `Connection: close`.
    pub fn send_error(
        &mut self,
        status: StatusCode,
        date: Option<&HttpDate>,
        out: &mut impl ResponseSink,
    ) -> Result<AfterResponse, SendError> {
        self.keep_alive = false;
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        self.send_response(status, &headers, date, out)?;
        self.send_end(out)
    }

    // ----- internals ----------------------------------------------------------------------

    fn head_version_is_10(&self) -> bool {
        self.http10
    }

    fn poll_head(&mut self, buf: &mut BytesMut) -> ServerEvent {
        let ReadState::Head {
            scanned,
            started,
            mut empty_lines,
        } = self.read
        else {
            return ServerEvent::NeedData;
        };
        if !started {
            // RFC 9112 §2.2: ignore a few empty lines before the request line.
            while buf.starts_with(b"\r\n") {
                if empty_lines >= self.config.max_leading_empty_lines {
                    return self.fail(RequestError::BadSyntax(
                        "too many empty lines before the request line",
                    ));
                }
                empty_lines += 1;
                let _ = buf.split_to(2);
            }
            match buf.first() {
                None if self.peer_eof => {
                    self.close();
                    return ServerEvent::Closed;
                }
                None => {
                    self.read = ReadState::Head {
                        scanned: 0,
                        started: false,
                        empty_lines,
                    };
                    return ServerEvent::NeedData;
                }
                Some(b'\r') if buf.len() == 1 && !self.peer_eof => {
                    self.read = ReadState::Head {
                        scanned: 0,
                        started: false,
                        empty_lines,
                    };
                    return ServerEvent::NeedData;
                }
                Some(_) => self.phase += 1,
            }
        }
        let limit = self.config.max_header_size;
        let window = buf.len().min(limit);
        match scan_head_end(&buf[..window], scanned) {
            Err(reason) => self.fail(RequestError::BadSyntax(reason)),
            Ok(HeadScan::Partial(resume)) => {
                if buf.len() >= limit {
                    if memchr::memchr(b'\n', &buf[..window]).is_none() {
                        // Not even the request line fits: the target is what is too long.
                        return self.fail(RequestError::TargetTooLong { limit });
                    }
                    return self.fail(RequestError::HeadTooLarge { limit });
                }
                if self.peer_eof {
                    return self.fail(RequestError::Incomplete);
                }
                self.read = ReadState::Head {
                    scanned: resume,
                    started: true,
                    empty_lines,
                };
                ServerEvent::NeedData
            }
            Ok(HeadScan::Complete(end)) => {
                let spare = std::mem::take(&mut self.spare_fields);
                match parse_request_head(buf, end, spare) {
                    Ok(head) => self.start_request(head),
                    Err(e) => self.fail(e),
                }
            }
        }
    }

    fn start_request(&mut self, head: RequestHead) -> ServerEvent {
        self.keep_alive = head.keep_alive() && !self.config.no_keep_alive && !self.peer_eof;
        self.head_request = head.method() == Method::HEAD;
        self.http10 = head.version() == Version::HTTP_10;
        self.continue_pending = head.expect_continue() && head.framing() != BodyFraming::Empty;
        self.max_body_size = self.config.max_body_size;
        self.body_received = 0;
        self.phase += 1;
        self.write = WriteState::Ready;
        self.read = ReadState::Body(match head.framing() {
            BodyFraming::Empty => BodyDecoder::Length { remaining: 0 },
            BodyFraming::Length(n) => BodyDecoder::Length { remaining: n },
            BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new(
                self.config.max_chunk_line_size,
                self.config.max_trailer_size,
            )),
        });
        ServerEvent::Head(head)
    }

    fn poll_body(&mut self, buf: &mut BytesMut) -> ServerEvent {
        let max = self.max_body_size;
        let decoded = match &mut self.read {
            ReadState::Body(BodyDecoder::Length { remaining: 0 }) => Ok(Decoded::End(None)),
            ReadState::Body(BodyDecoder::Length { remaining }) => {
                if self.body_received.saturating_add(*remaining) > max {
                    Err(RequestError::BodyTooLarge { limit: max })
                } else if buf.is_empty() {
                    Ok(Decoded::NeedData)
                } else {
                    let n = (*remaining).min(buf.len() as u64);
                    *remaining -= n;
                    self.body_received += n;
                    Ok(Decoded::Data(buf.split_to(n as usize).freeze()))
                }
            }
            ReadState::Body(BodyDecoder::Chunked(decoder)) => decoder.decode(buf, max),
            _ => Ok(Decoded::NeedData),
        };
        match decoded {
            Err(e) => self.fail(e),
            Ok(Decoded::Data(data)) => {
                self.continue_pending = false;
                ServerEvent::Data(data)
            }
            Ok(Decoded::NeedData) if self.peer_eof => self.fail(RequestError::Incomplete),
            Ok(Decoded::NeedData) => ServerEvent::NeedData,
            Ok(Decoded::End(trailers)) => {
                self.continue_pending = false;
                self.read = ReadState::Done;
                self.phase += 1;
                self.finish_cycle();
                ServerEvent::End(trailers)
            }
        }
    }

    /// Reports a request error: nothing more is read, and the answer (if any) closes.
    fn fail(&mut self, error: RequestError) -> ServerEvent {
        tracing::debug!(%error, "malformed request");
        self.read = ReadState::Closed;
        self.keep_alive = false;
        self.continue_pending = false;
        self.phase += 1;
        if self.write == WriteState::Idle {
            // Let the application answer the error; HTTP/1.1 framing, no HEAD semantics.
            self.write = WriteState::Ready;
            self.head_request = false;
            self.http10 = false;
        }
        ServerEvent::Error(error)
    }

    fn close(&mut self) {
        self.read = ReadState::Closed;
        self.write = WriteState::Closed;
        self.keep_alive = false;
        self.continue_pending = false;
        self.phase += 1;
    }

    /// Applies the end-of-cycle rows of the transition table.
    fn finish_cycle(&mut self) {
        if self.write != WriteState::Done {
            return;
        }
        match self.read {
            ReadState::Done if self.keep_alive => {
                self.read = ReadState::Head {
                    scanned: 0,
                    started: false,
                    empty_lines: 0,
                };
                self.write = WriteState::Idle;
                self.phase += 1;
            }
            // The whole body is known to be received; only its `End` is still to be polled.
            ReadState::Body(BodyDecoder::Length { remaining: 0 }) if self.keep_alive => {}
            _ => self.close(),
        }
    }

    fn choose_encoder(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        body_len: Option<u64>,
        app: &AppFields,
    ) -> Result<BodyEncoder, SendError> {
        let mut length: Option<u64> = body_len;
        let declared = app.content_length.then(|| headers.get_all(CONTENT_LENGTH));
        for value in declared.into_iter().flatten() {
            let n = parse_content_length(value.as_bytes())
                .map_err(|_| SendError::InvalidContentLength)?;
            if length.is_some_and(|prev| prev != n) {
                return Err(SendError::InvalidContentLength);
            }
            length = Some(n);
        }
        let mut chunked = false;
        let codings = app
            .transfer_encoding
            .then(|| headers.get_all(TRANSFER_ENCODING));
        for value in codings.into_iter().flatten() {
            if !value.as_bytes().eq_ignore_ascii_case(b"chunked")
                || chunked
                || self.http10
                || length.is_some()
            {
                return Err(SendError::UnsupportedTransferEncoding);
            }
            chunked = true;
        }
        if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return Ok(BodyEncoder::Forbidden(status));
        }
        if self.head_request {
            return Ok(BodyEncoder::Head);
        }
        if let Some(n) = length {
            self.response_declared = n;
            return Ok(BodyEncoder::Length { remaining: n });
        }
        if chunked || !self.http10 {
            return Ok(BodyEncoder::Chunked);
        }
        Ok(BodyEncoder::CloseDelimited)
    }

    fn send_switching_protocols(
        &mut self,
        headers: &HeaderMap,
        out: &mut impl ResponseSink,
    ) -> Result<(), SendError> {
        if !matches!(self.read, ReadState::Done) || self.http10 {
            // An upgrade needs the whole request read and an HTTP/1.1 client.
            return Err(SendError::NotReady);
        }
        write_status_line(StatusCode::SWITCHING_PROTOCOLS, out);
        for (name, value) in headers {
            write_field(name.as_str().as_bytes(), value.as_bytes(), out);
        }
        out.put_slice(b"\r\n");
        self.read = ReadState::Upgraded;
        self.write = WriteState::Upgraded;
        self.keep_alive = false;
        self.phase += 1;
        Ok(())
    }
}

fn wants_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| super::framing::list_contains(v.as_bytes(), b"close"))
}

/// The end of a response head (the server's own fields and the blank line), assembled on
/// the stack so it reaches the sink as one copy.
struct HeadTail {
    buf: [u8; HEAD_TAIL_MAX],
    len: usize,
}

/// Content-Length with 20 digits, Date and Server, Transfer-Encoding, Connection, CRLF.
const HEAD_TAIL_MAX: usize = 38 + 51 + 28 + 24 + 2;

impl Default for HeadTail {
    fn default() -> HeadTail {
        HeadTail {
            buf: [0; HEAD_TAIL_MAX],
            len: 0,
        }
    }
}

impl HeadTail {
    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn write_status_line(status: StatusCode, out: &mut impl ResponseSink) {
    // The common ones in one piece.
    let line: &[u8] = match status.as_u16() {
        200 => b"HTTP/1.1 200 OK\r\n",
        201 => b"HTTP/1.1 201 Created\r\n",
        204 => b"HTTP/1.1 204 No Content\r\n",
        206 => b"HTTP/1.1 206 Partial Content\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        302 => b"HTTP/1.1 302 Found\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        400 => b"HTTP/1.1 400 Bad Request\r\n",
        403 => b"HTTP/1.1 403 Forbidden\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        500 => b"HTTP/1.1 500 Internal Server Error\r\n",
        _ => b"",
    };
    if !line.is_empty() {
        out.put_slice(line);
        return;
    }
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_slice(b" ");
    out.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.put_slice(b"\r\n");
}

/// Formats `n` in decimal into `buf`, returning the digits.
fn format_decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn write_field(name: &[u8], value: &[u8], out: &mut impl ResponseSink) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

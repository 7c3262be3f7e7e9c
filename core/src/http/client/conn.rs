//! `ClientConn`: one HTTP/1.1 client connection as a pure state machine — request bytes out,
//! response events in.
//!
//! It owns request serialisation and response framing (RFC 9112 §6.3); it never reads a
//! socket or a clock. Framing primitives come from [`super::super::framing`].
//!
//! # Theory of operation
//!
//! Two sides, as in h11. The *write side* follows our request: `Idle → Body → Done`
//! (`send_request`, `send_data`*, `send_end`). The *read side* follows the server's answer:
//!
//! | read state | input                         | next state / event                       |
//! |------------|-------------------------------|------------------------------------------|
//! | `Idle`     | any byte                      | `Error(Unsolicited)`                     |
//! | `Head`     | complete 1xx head (not 101)   | `Head` (skipped, counted)                |
//! | `Head`     | complete final head           | `Body(framing)`, event `Head`            |
//! | `Head`     | end of file                   | `Error(ClosedBeforeResponse/Incomplete)` |
//! | `Body`     | bytes                         | `Body`, event `Data`                     |
//! | `Body`     | framing complete              | `Done`, event `End`                      |
//! | `Body`     | end of file                   | close-delimited: `End`; else `Incomplete`|
//! | `Done`     | `send_request` (keep-alive)   | `Head`                                   |
//!
//! Any error is terminal (`Failed`): the connection must be closed. After `End`,
//! [`ClientConn::can_reuse`] says whether another request may follow on the connection.

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

use super::super::error::RequestError;
use super::super::framing::{
    encode_chunk, encode_last_chunk, fields_to_map, list_contains, parse_content_length,
    put_decimal, scan_head_end, trim_ows, ChunkedDecoder, Decoded, HeadScan,
};
use super::super::head::MAX_HEADERS;
use super::super::sink::ResponseSink;

/// Limits of a client connection's response parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConnConfig {
    /// Largest response head (status line + fields) in bytes, per head (1xx heads included).
    pub max_header_size: usize,
    /// Largest response body in bytes (declared or received); over it: `BodyTooLarge`.
    pub max_body_size: u64,
    /// Largest chunk-size line in a chunked body.
    pub max_chunk_line_size: usize,
    /// Largest trailer section of a chunked body.
    pub max_trailer_size: usize,
    /// Most interim (1xx) responses skipped before one request's final response.
    pub max_informational: u32,
}

impl Default for ClientConnConfig {
    fn default() -> Self {
        ClientConnConfig {
            max_header_size: 64 * 1024,
            max_body_size: 100 * 1024 * 1024,
            max_chunk_line_size: 4096,
            max_trailer_size: 16 * 1024,
            max_informational: 16,
        }
    }
}

/// A response the client cannot accept; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The status line or a header field is not valid HTTP/1.x syntax (RFC 9112 §4-§5).
    #[error("malformed response head: {0}")]
    BadSyntax(&'static str),
    /// The head did not end within `max_header_size` bytes.
    #[error("response head larger than max_header_size ({limit} bytes)")]
    HeadTooLarge {
        /// The configured `max_header_size`.
        limit: usize,
    },
    /// More header fields than the parser has room for.
    #[error("more than {limit} response header fields")]
    TooManyHeaders {
        /// Largest accepted number of header fields.
        limit: usize,
    },
    /// The response is not HTTP/1.0 or HTTP/1.1.
    #[error("response HTTP version not supported (only HTTP/1.0 and HTTP/1.1)")]
    VersionNotSupported,
    /// Content-Length or Transfer-Encoding make the body length ambiguous (RFC 9112 §6.3).
    #[error("invalid response framing: {0}")]
    BadFraming(&'static str),
    /// The chunked body is malformed (RFC 9112 §7.1).
    #[error("malformed chunked response body: {0}")]
    BadChunk(&'static str),
    /// The body (declared or received) exceeds `max_body_size`.
    #[error("response body larger than max_body_size ({limit} bytes)")]
    BodyTooLarge {
        /// The `max_body_size` in force.
        limit: u64,
    },
    /// The server sent bytes while no request was outstanding.
    #[error("server sent data with no request outstanding")]
    Unsolicited,
    /// The server switched protocols (101) or sent too many interim responses.
    #[error("unexpected interim response: {0}")]
    UnexpectedInterim(&'static str),
    /// The connection closed before any byte of the response arrived (a stale keep-alive
    /// connection, or a server that dropped the request).
    #[error("connection closed before the response started")]
    ClosedBeforeResponse,
    /// The connection closed in the middle of the response.
    #[error("connection closed before the response was complete")]
    Incomplete,
}

impl ResponseError {
    /// Maps an error of the shared framing code (written for requests) to a response error.
    fn from_framing(e: RequestError) -> ResponseError {
        match e {
            RequestError::BadChunk(m) => ResponseError::BadChunk(m),
            RequestError::BadFraming(m) => ResponseError::BadFraming(m),
            RequestError::BodyTooLarge { limit } => ResponseError::BodyTooLarge { limit },
            RequestError::UnsupportedTransferCoding => {
                ResponseError::BadFraming("unsupported transfer coding")
            }
            _ => ResponseError::BadSyntax("invalid framing"),
        }
    }
}

/// A request the connection cannot send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestSendError {
    /// A request is already under way, or the connection cannot be reused.
    #[error("connection not ready for a request (one in progress, or not reusable)")]
    NotReady,
    /// `send_data`/`send_end` without a request body under way.
    #[error("no request body is being sent")]
    NoBody,
    /// More (or fewer, at `send_end`) body bytes than the declared Content-Length.
    #[error("request body does not match its declared length ({declared} bytes)")]
    LengthMismatch {
        /// The declared length.
        declared: u64,
    },
    /// The request-target is empty or contains bytes not allowed in a request line
    /// (controls, spaces, non-ASCII).
    #[error("invalid request-target")]
    BadTarget,
    /// The Host value contains bytes not allowed in a header field.
    #[error("invalid Host value")]
    BadHost,
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body (no framing header, except `Content-Length: 0` for POST/PUT/PATCH).
    Empty,
    /// Exactly this many bytes follow (`Content-Length`).
    Length(u64),
    /// Chunked transfer coding; `send_end` writes the last chunk.
    Chunked,
}

/// One request to serialise with [`ClientConn::send_request`].
#[derive(Debug, Clone, Copy)]
pub struct RequestLine<'a> {
    /// The method.
    pub method: &'a Method,
    /// The request-target in origin form (`/path?query`).
    pub target: &'a str,
    /// The Host value (`host[:port]`), used unless `headers` carry a Host field.
    pub host: &'a str,
    /// Extra header fields (Content-Length / Transfer-Encoding in them are ignored).
    pub headers: &'a HeaderMap,
    /// Body framing.
    pub body: RequestBody,
    /// Ask to keep the connection (no `Connection: close`).
    pub keep_alive: bool,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as sent (may be empty).
    pub reason: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields, in order.
    pub headers: HeaderMap,
}

/// What [`ClientConn::poll_event`] found; drain until `NeedData`, `Idle` or `Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The final response head (interim 1xx responses are skipped); `Data`* and `End` follow.
    Head(ResponseHead),
    /// A piece of the body, split off the read buffer without copying. Chunked framing is
    /// removed, but a `gzip`/`x-gzip` transfer coding (with `identity`, the only other
    /// codings accepted) is left in place: [`HttpClient`](super::HttpClient) decodes it.
    Data(Bytes),
    /// The response ended; chunked trailer fields, if any.
    End(Option<HeaderMap>),
    /// The buffer holds no complete event; read more bytes (or hand in end of file).
    NeedData,
    /// No response is expected (no request outstanding, or the response already ended).
    Idle,
    /// The response is malformed or cut short; the connection must be closed.
    Error(ResponseError),
}

/// Where the read side is.
#[derive(Debug, Clone)]
enum ReadState {
    Idle,
    Head { scanned: usize, received: bool },
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose { received: u64 },
    Done,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    Idle,
    Length { remaining: u64, declared: u64 },
    Chunked,
    Done,
}

/// One HTTP/1.1 client connection; see the module docs for the state table.
#[derive(Debug, Clone)]
pub struct ClientConn {
    config: ClientConnConfig,
    read: ReadState,
    write: WriteState,
    eof: bool,
    head_request: bool,
    asked_keep_alive: bool,
    reusable: bool,
    informational: u32,
    requests: u64,
}

impl ClientConn {
    /// A fresh connection with the given limits.
    pub fn new(config: ClientConnConfig) -> ClientConn {
        ClientConn {
            config,
            read: ReadState::Idle,
            write: WriteState::Idle,
            eof: false,
            head_request: false,
            asked_keep_alive: false,
            reusable: true,
            informational: 0,
            requests: 0,
        }
    }

    /// Sets the body limit for the next (or current) response.
    pub fn set_max_body_size(&mut self, limit: u64) {
        self.config.max_body_size = limit;
    }

    /// Requests sent on this connection so far.
    pub fn requests_sent(&self) -> u64 {
        self.requests
    }

    /// True when a new request may be sent: nothing under way and the last exchange kept
    /// the connection alive.
    pub fn can_send_request(&self) -> bool {
        self.reusable
            && !self.eof
            && matches!(self.read, ReadState::Idle | ReadState::Done)
            && matches!(self.write, WriteState::Idle | WriteState::Done)
    }

    /// True after a complete exchange that leaves the connection reusable (keep-alive).
    pub fn can_reuse(&self) -> bool {
        self.can_send_request() && matches!(self.read, ReadState::Done)
    }

    /// True once the request (head and body) is fully serialised.
    pub fn request_sent(&self) -> bool {
        matches!(self.write, WriteState::Done)
    }

    /// Serialises a request head into `out`; with a body, `send_data`/`send_end` follow.
    pub fn send_request(
        &mut self,
        req: &RequestLine<'_>,
        out: &mut impl ResponseSink,
    ) -> Result<(), RequestSendError> {
        if !self.can_send_request() {
            return Err(RequestSendError::NotReady);
        }
        let target = req.target.as_bytes();
        // RFC 9112 §3.2: the request-target is ASCII (non-ASCII bytes are percent-encoded).
        if target.is_empty() || target.iter().any(|&b| b <= b' ' || b >= 0x7f) {
            return Err(RequestSendError::BadTarget);
        }
        let user_host = req.headers.get(HOST);
        if user_host.is_none() && HeaderValue::from_str(req.host).is_err() {
            return Err(RequestSendError::BadHost);
        }
        out.put_slice(req.method.as_str().as_bytes());
        out.put_slice(b" ");
        out.put_slice(target);
        out.put_slice(b" HTTP/1.1\r\nHost: ");
        match user_host {
            Some(h) => out.put_slice(h.as_bytes()),
            None => out.put_slice(req.host.as_bytes()),
        }
        out.put_slice(b"\r\n");
        let mut user_close = false;
        for (name, value) in req.headers {
            if name == HOST || name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
                continue;
            }
            if name == CONNECTION && list_contains(value.as_bytes(), b"close") {
                user_close = true;
            }
            out.put_slice(name.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        self.write = match req.body {
            RequestBody::Empty => {
                // RFC 9110 §8.6: a user agent sends Content-Length: 0 for methods that
                // expect a body, so the server does not wait for one.
                if matches!(*req.method, Method::POST | Method::PUT | Method::PATCH) {
                    out.put_slice(b"Content-Length: 0\r\n");
                }
                WriteState::Done
            }
            RequestBody::Length(n) => {
                out.put_slice(b"Content-Length: ");
                put_decimal(n, out);
                out.put_slice(b"\r\n");
                if n == 0 {
                    WriteState::Done
                } else {
                    WriteState::Length {
                        remaining: n,
                        declared: n,
                    }
                }
            }
            RequestBody::Chunked => {
                out.put_slice(b"Transfer-Encoding: chunked\r\n");
                WriteState::Chunked
            }
        };
        self.asked_keep_alive = req.keep_alive && !user_close;
        if !req.keep_alive && !user_close {
            out.put_slice(b"Connection: close\r\n");
        }
        out.put_slice(b"\r\n");
        self.head_request = *req.method == Method::HEAD;
        self.read = ReadState::Head {
            scanned: 0,
            received: false,
        };
        self.informational = 0;
        self.requests += 1;
        Ok(())
    }

    /// Serialises a piece of the request body.
    pub fn send_data(
        &mut self,
        data: Bytes,
        out: &mut impl ResponseSink,
    ) -> Result<(), RequestSendError> {
        match &mut self.write {
            WriteState::Length {
                remaining,
                declared,
            } => {
                let n = data.len() as u64;
                if n > *remaining {
                    return Err(RequestSendError::LengthMismatch {
                        declared: *declared,
                    });
                }
                *remaining -= n;
                out.put_bytes(data);
                Ok(())
            }
            WriteState::Chunked => {
                encode_chunk(data, out);
                Ok(())
            }
            _ => Err(RequestSendError::NoBody),
        }
    }

    /// Ends the request body (the last chunk, or a check that the declared length was sent).
    pub fn send_end(&mut self, out: &mut impl ResponseSink) -> Result<(), RequestSendError> {
        match self.write {
            WriteState::Length {
                remaining: 0,
                declared: _,
            } => {}
            WriteState::Length { declared, .. } => {
                self.reusable = false;
                return Err(RequestSendError::LengthMismatch { declared });
            }
            WriteState::Chunked => encode_last_chunk(out),
            WriteState::Done => return Ok(()),
            WriteState::Idle => return Err(RequestSendError::NoBody),
        }
        self.write = WriteState::Done;
        Ok(())
    }

    /// The peer closed its side: a close-delimited body ends, anything else in progress fails.
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    /// True once [`ClientConn::handle_eof`] was called.
    pub fn eof_seen(&self) -> bool {
        self.eof
    }

    /// Parses the next event from `buf`, consuming exactly what it parsed.
    pub fn poll_event(&mut self, buf: &mut BytesMut) -> ClientEvent {
        match self.step(buf) {
            Ok(ev) => ev,
            Err(e) => {
                self.read = ReadState::Failed;
                self.reusable = false;
                ClientEvent::Error(e)
            }
        }
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<ClientEvent, ResponseError> {
        loop {
            match &mut self.read {
                ReadState::Idle | ReadState::Done => {
                    if !buf.is_empty() {
                        return Err(ResponseError::Unsolicited);
                    }
                    return Ok(ClientEvent::Idle);
                }
                ReadState::Failed => return Ok(ClientEvent::Idle),
                ReadState::Head { scanned, received } => {
                    if !buf.is_empty() {
                        *received = true;
                    }
                    let window = buf.len().min(self.config.max_header_size);
                    let end = match scan_head_end(&buf[..window], *scanned)
                        .map_err(ResponseError::BadSyntax)?
                    {
                        HeadScan::Complete(end) => end,
                        HeadScan::Partial(resume) => {
                            if buf.len() >= self.config.max_header_size {
                                return Err(ResponseError::HeadTooLarge {
                                    limit: self.config.max_header_size,
                                });
                            }
                            if self.eof {
                                return Err(if *received {
                                    ResponseError::Incomplete
                                } else {
                                    ResponseError::ClosedBeforeResponse
                                });
                            }
                            *scanned = resume;
                            return Ok(ClientEvent::NeedData);
                        }
                    };
                    let head = parse_response_head(&buf[..end])?;
                    let _ = buf.split_to(end);
                    if head.status.is_informational() {
                        if head.status == StatusCode::SWITCHING_PROTOCOLS {
                            return Err(ResponseError::UnexpectedInterim(
                                "101 Switching Protocols is not supported",
                            ));
                        }
                        self.informational += 1;
                        if self.informational > self.config.max_informational {
                            return Err(ResponseError::UnexpectedInterim("too many 1xx responses"));
                        }
                        self.read = ReadState::Head {
                            scanned: 0,
                            received: true,
                        };
                        continue;
                    }
                    self.read = self.body_state(&head)?;
                    return Ok(ClientEvent::Head(head));
                }
                ReadState::Length { remaining } => {
                    if *remaining == 0 {
                        self.read = ReadState::Done;
                        return Ok(ClientEvent::End(None));
                    }
                    if buf.is_empty() {
                        if self.eof {
                            return Err(ResponseError::Incomplete);
                        }
                        return Ok(ClientEvent::NeedData);
                    }
                    let n = (*remaining).min(buf.len() as u64);
                    *remaining -= n;
                    return Ok(ClientEvent::Data(buf.split_to(n as usize).freeze()));
                }
                ReadState::Chunked(decoder) => {
                    match decoder
                        .decode(buf, self.config.max_body_size)
                        .map_err(ResponseError::from_framing)?
                    {
                        Decoded::Data(d) => return Ok(ClientEvent::Data(d)),
                        Decoded::NeedData if self.eof => return Err(ResponseError::Incomplete),
                        Decoded::NeedData => return Ok(ClientEvent::NeedData),
                        Decoded::End(trailers) => {
                            self.read = ReadState::Done;
                            return Ok(ClientEvent::End(trailers));
                        }
                    }
                }
                ReadState::UntilClose { received } => {
                    if !buf.is_empty() {
                        // Data up to the limit is delivered, however the bytes were split.
                        let room = self.config.max_body_size - *received;
                        if room == 0 {
                            return Err(ResponseError::BodyTooLarge {
                                limit: self.config.max_body_size,
                            });
                        }
                        let n = room.min(buf.len() as u64);
                        *received += n;
                        return Ok(ClientEvent::Data(buf.split_to(n as usize).freeze()));
                    }
                    if self.eof {
                        self.read = ReadState::Done;
                        return Ok(ClientEvent::End(None));
                    }
                    return Ok(ClientEvent::NeedData);
                }
            }
        }
    }

    /// Decides the body framing of a final response (RFC 9112 §6.3) and whether the
    /// connection stays reusable afterwards.
    fn body_state(&mut self, head: &ResponseHead) -> Result<ReadState, ResponseError> {
        let headers = &head.headers;
        let conn_close = headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| list_contains(v.as_bytes(), b"close"));
        let conn_keep_alive = headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| list_contains(v.as_bytes(), b"keep-alive"));
        let mut keep = self.asked_keep_alive
            && !conn_close
            && (head.version == Version::HTTP_11 || conn_keep_alive);
        // §6.3 items 1-2: no body after HEAD, 204 and 304, whatever the headers say.
        let no_body = self.head_request
            || head.status == StatusCode::NO_CONTENT
            || head.status == StatusCode::NOT_MODIFIED;
        let te: Vec<&HeaderValue> = headers.get_all(TRANSFER_ENCODING).iter().collect();
        let cl: Vec<&HeaderValue> = headers.get_all(CONTENT_LENGTH).iter().collect();
        let state = if no_body {
            ReadState::Length { remaining: 0 }
        } else if !te.is_empty() {
            if !cl.is_empty() {
                // §6.3 item 3: Transfer-Encoding wins, and the connection must close.
                keep = false;
            }
            if head.version == Version::HTTP_10 {
                keep = false;
            }
            if final_coding_is_chunked(&te)? {
                ReadState::Chunked(ChunkedDecoder::new(
                    self.config.max_chunk_line_size,
                    self.config.max_trailer_size,
                ))
            } else {
                // §6.3 item 4: a response whose final coding is not chunked runs until close.
                keep = false;
                ReadState::UntilClose { received: 0 }
            }
        } else if !cl.is_empty() {
            let mut length: Option<u64> = None;
            for v in cl {
                let n = parse_content_length(v.as_bytes()).map_err(ResponseError::from_framing)?;
                if length.is_some_and(|l| l != n) {
                    return Err(ResponseError::BadFraming(
                        "conflicting Content-Length values",
                    ));
                }
                length = Some(n);
            }
            let n = length.unwrap_or(0);
            if n > self.config.max_body_size {
                return Err(ResponseError::BodyTooLarge {
                    limit: self.config.max_body_size,
                });
            }
            ReadState::Length { remaining: n }
        } else {
            keep = false;
            ReadState::UntilClose { received: 0 }
        };
        if !keep || !matches!(self.write, WriteState::Done) {
            self.reusable = false;
        }
        Ok(state)
    }
}

/// Most transfer codings besides `chunked` accepted on one response.
const MAX_TRANSFER_CODINGS: usize = 4;

/// True for the transfer codings (besides `chunked`) that [`super::HttpClient`] removes:
/// `gzip` (and its alias `x-gzip`, RFC 9112 §7.2) and the no-op `identity`.
fn transfer_coding_supported(coding: &[u8]) -> bool {
    is_gzip_coding(coding) || coding.eq_ignore_ascii_case(b"identity")
}

/// True for `gzip` and `x-gzip` (RFC 9110 §8.4.1.3, RFC 9112 §7.2), case-insensitively.
pub(super) fn is_gzip_coding(coding: &[u8]) -> bool {
    coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
}

/// How many `gzip`/`x-gzip` transfer codings a response's Transfer-Encoding lists: the
/// gzip layers to remove from the de-chunked body.
pub(super) fn gzip_transfer_codings(headers: &HeaderMap) -> usize {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter(|e| is_gzip_coding(trim_ows(e)))
        .count()
}

/// True when the last transfer coding listed is `chunked` (applied once); errors on
/// malformed lists and on codings the client cannot remove (RFC 9112 §6.1: never pass a
/// coded body off as the content).
fn final_coding_is_chunked(values: &[&HeaderValue]) -> Result<bool, ResponseError> {
    let mut last = None;
    let mut chunked = 0;
    let mut others = 0;
    for v in values {
        for element in v.as_bytes().split(|&b| b == b',') {
            let e = trim_ows(element);
            if e.is_empty() {
                continue;
            }
            if e.eq_ignore_ascii_case(b"chunked") {
                chunked += 1;
            } else if transfer_coding_supported(e) {
                others += 1;
            } else {
                return Err(ResponseError::BadFraming("unsupported transfer coding"));
            }
            last = Some(e);
        }
    }
    let Some(last) = last else {
        return Err(ResponseError::BadFraming("empty Transfer-Encoding"));
    };
    if chunked > 1 {
        return Err(ResponseError::BadFraming("chunked applied more than once"));
    }
    if others > MAX_TRANSFER_CODINGS {
        return Err(ResponseError::BadFraming("too many transfer codings"));
    }
    let last_chunked = last.eq_ignore_ascii_case(b"chunked");
    if chunked == 1 && !last_chunked {
        return Err(ResponseError::BadFraming("chunked is not the final coding"));
    }
    Ok(last_chunked)
}

/// Parses a complete response head (`bytes` ends with its blank line).
fn parse_response_head(bytes: &[u8]) -> Result<ResponseHead, ResponseError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    // RFC 9112 §5.2: a user agent accepts obs-fold in a response (and unfolds it below).
    let parsed = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response(&mut resp, bytes);
    match parsed {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Ok(_) => return Err(ResponseError::BadSyntax("head does not end where expected")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ResponseError::TooManyHeaders { limit: MAX_HEADERS })
        }
        Err(httparse::Error::Version) => return Err(version_error(bytes)),
        Err(httparse::Error::Status) => {
            return Err(ResponseError::BadSyntax("invalid status code"))
        }
        Err(httparse::Error::HeaderName) => {
            return Err(ResponseError::BadSyntax("invalid field name"))
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(ResponseError::BadSyntax("invalid byte in field value"))
        }
        Err(_) => return Err(ResponseError::BadSyntax("invalid status line")),
    }
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(ResponseError::VersionNotSupported),
    };
    let code = resp
        .code
        .ok_or(ResponseError::BadSyntax("missing status code"))?;
    let status = StatusCode::from_u16(code)
        .map_err(|_| ResponseError::BadSyntax("status code out of range"))?;
    let reason = resp.reason.unwrap_or("").to_owned();
    let mut headers = HeaderMap::new();
    fields_to_map(resp.headers, &mut headers).map_err(ResponseError::BadSyntax)?;
    Ok(ResponseHead {
        status,
        reason,
        version,
        headers,
    })
}

/// httparse reports "bad version" both for `HTTP/2` and for garbage.
fn version_error(bytes: &[u8]) -> ResponseError {
    match bytes {
        [b'H', b'T', b'T', b'P', b'/', major, ..] if major.is_ascii_digit() => {
            ResponseError::VersionNotSupported
        }
        _ => ResponseError::BadSyntax("malformed status line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(keep_alive: bool) -> (ClientConn, Vec<u8>) {
        let mut c = ClientConn::new(ClientConnConfig::default());
        let mut out = Vec::new();
        let headers = HeaderMap::new();
        c.send_request(
            &RequestLine {
                method: &Method::GET,
                target: "/a?b=1",
                host: "example.com:8080",
                headers: &headers,
                body: RequestBody::Empty,
                keep_alive,
            },
            &mut out,
        )
        .unwrap();
        (c, out)
    }

    /// Each input, answering a fresh GET, ends in an error event.
    fn assert_each_is_an_error(inputs: &[&[u8]]) {
        for &bad in inputs {
            let (mut c, _) = get(true);
            let ev = events(&mut c, bad, false);
            assert!(
                matches!(ev.last(), Some(ClientEvent::Error(_))),
                "{:?} -> {ev:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn events(c: &mut ClientConn, input: &[u8], eof: bool) -> Vec<ClientEvent> {
        let mut buf = BytesMut::from(input);
        let mut evs = Vec::new();
        if eof {
            c.handle_eof();
        }
        loop {
            let e = c.poll_event(&mut buf);
            let stop = matches!(
                e,
                ClientEvent::NeedData | ClientEvent::Idle | ClientEvent::Error(_)
            );
            evs.push(e);
            if stop {
                return evs;
            }
        }
    }

    #[test]
    fn serialises_a_get_head_with_host_and_close() {
        let (_, out) = get(false);
        assert_eq!(
            out,
            b"GET /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn serialises_chunked_body_and_content_length_zero_for_post() {
        let mut c = ClientConn::new(ClientConnConfig::default());
        let mut out = Vec::new();
        let h = HeaderMap::new();
        let line = RequestLine {
            method: &Method::POST,
            target: "/",
            host: "h",
            headers: &h,
            body: RequestBody::Chunked,
            keep_alive: true,
        };
        c.send_request(&line, &mut out).unwrap();
        c.send_data(Bytes::from_static(b"hello"), &mut out).unwrap();
        c.send_end(&mut out).unwrap();
        assert!(out.ends_with(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
        let mut c = ClientConn::new(ClientConnConfig::default());
        let mut out = Vec::new();
        c.send_request(
            &RequestLine {
                body: RequestBody::Empty,
                ..line
            },
            &mut out,
        )
        .unwrap();
        assert!(out.ends_with(b"Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn parses_content_length_response_and_keeps_alive() {
        let (mut c, _) = get(true);
        let ev = events(
            &mut c,
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            false,
        );
        assert!(matches!(&ev[0], ClientEvent::Head(h) if h.status == 200));
        assert_eq!(ev[1], ClientEvent::Data(Bytes::from_static(b"abc")));
        assert_eq!(ev[2], ClientEvent::End(None));
        assert!(c.can_reuse());
    }

    #[test]
    fn skips_100_and_103_and_parses_chunked() {
        let (mut c, _) = get(true);
        let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let ev = events(&mut c, input, false);
        assert!(matches!(&ev[0], ClientEvent::Head(h) if h.status == 200));
        assert_eq!(ev[1], ClientEvent::Data(Bytes::from_static(b"abc")));
        assert_eq!(ev[2], ClientEvent::End(None));
    }

    #[test]
    fn http10_response_is_close_delimited_and_not_reused() {
        let (mut c, _) = get(true);
        let ev = events(&mut c, b"HTTP/1.0 200 OK\r\n\r\nabc", true);
        assert_eq!(ev[1], ClientEvent::Data(Bytes::from_static(b"abc")));
        assert_eq!(ev[2], ClientEvent::End(None));
        assert!(!c.can_reuse());
    }

    #[test]
    fn head_204_304_have_no_body() {
        for (status, head) in [(200, true), (204, false), (304, false)] {
            let mut c = ClientConn::new(ClientConnConfig::default());
            let h = HeaderMap::new();
            let method = if head { Method::HEAD } else { Method::GET };
            c.send_request(
                &RequestLine {
                    method: &method,
                    target: "/",
                    host: "h",
                    headers: &h,
                    body: RequestBody::Empty,
                    keep_alive: true,
                },
                &mut Vec::new(),
            )
            .unwrap();
            let input = format!("HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n");
            let ev = events(&mut c, input.as_bytes(), false);
            assert_eq!(ev[1], ClientEvent::End(None), "{status}");
            assert!(c.can_reuse());
        }
    }

    #[test]
    fn rejects_bad_heads_without_panicking() {
        assert_each_is_an_error(&[
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\nX: y\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n",
            b"HTTP/1.1 101 Switching\r\n\r\n",
            b"garbage\r\n\r\n",
        ]);
    }

    #[test]
    fn bounds_head_size_and_reports_early_close() {
        let (mut c, _) = get(true);
        c.config.max_header_size = 64;
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.extend(std::iter::repeat(b'a').take(100));
        let ev = events(&mut c, &big, false);
        assert_eq!(
            ev.last(),
            Some(&ClientEvent::Error(ResponseError::HeadTooLarge {
                limit: 64
            }))
        );
        let (mut c, _) = get(true);
        let ev = events(&mut c, b"", true);
        assert_eq!(
            ev.last(),
            Some(&ClientEvent::Error(ResponseError::ClosedBeforeResponse))
        );
        let (mut c, _) = get(true);
        let ev = events(
            &mut c,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            true,
        );
        assert_eq!(
            ev.last(),
            Some(&ClientEvent::Error(ResponseError::Incomplete))
        );
    }

    #[test]
    fn obs_fold_in_a_response_field_becomes_spaces() {
        for (field, expected) in [
            (
                &b"X-Folded: part1\r\n  part2\r\n\tpart3"[..],
                &b"part1 part2 part3"[..],
            ),
            (b"X-Folded: \r\n  starts-folded", b"starts-folded"),
            (b"X-Folded: a \t\r\n \t b", b"a b"),
            (b"X-Folded: caf\xc3\xa9\r\n x", b"caf\xc3\xa9 x"),
        ] {
            let (mut c, _) = get(true);
            let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
            input.extend_from_slice(field);
            input.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
            let ev = events(&mut c, &input, false);
            let ClientEvent::Head(head) = &ev[0] else {
                panic!("{:?} -> {ev:?}", String::from_utf8_lossy(field));
            };
            assert_eq!(head.headers["x-folded"].as_bytes(), expected);
            assert_eq!(head.headers["content-length"], "2");
            assert_eq!(ev[1], ClientEvent::Data(Bytes::from_static(b"ok")));
            assert!(c.can_reuse());
        }
        // Everything else stays strict: bare CR or LF, NUL in a continuation line, a fold
        // before the first field.
        assert_each_is_an_error(&[
            &b"HTTP/1.1 200 OK\r\nX: a\r\n b\rc\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nX: a\n b\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\0c\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded\r\nX: a\r\n\r\n",
        ]);
    }

    #[test]
    fn transfer_codings_other_than_chunked_gzip_and_identity_are_errors() {
        for (te, gzip_layers) in [
            ("x-gzip, chunked", 1),
            ("GZIP, identity\r\nTransfer-Encoding: gzip,chunked", 2),
            ("identity, chunked", 0),
        ] {
            let (mut c, _) = get(true);
            let input =
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n3\r\ngz!\r\n0\r\n\r\n");
            let ev = events(&mut c, input.as_bytes(), false);
            let ClientEvent::Head(head) = &ev[0] else {
                panic!("{te}: {ev:?}")
            };
            assert_eq!(gzip_transfer_codings(&head.headers), gzip_layers, "{te}");
            assert_eq!(ev[1], ClientEvent::Data(Bytes::from_static(b"gz!")));
            assert_eq!(ev[2], ClientEvent::End(None));
        }
        for (te, error) in [
            ("compress, chunked", "unsupported transfer coding"),
            ("deflate", "unsupported transfer coding"),
            ("gzip;q=1, chunked", "unsupported transfer coding"),
            (
                "br\r\nTransfer-Encoding: chunked",
                "unsupported transfer coding",
            ),
            (
                "gzip, gzip, gzip, gzip, gzip, chunked",
                "too many transfer codings",
            ),
        ] {
            let (mut c, _) = get(true);
            let input = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n0\r\n\r\n");
            let ev = events(&mut c, input.as_bytes(), false);
            assert_eq!(
                ev.last(),
                Some(&ClientEvent::Error(ResponseError::BadFraming(error))),
                "{te}"
            );
        }
        // A body-less response is not decoded, so its codings do not matter.
        let (mut c, _) = get(true);
        let ev = events(
            &mut c,
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: compress, chunked\r\n\r\n",
            false,
        );
        assert_eq!(ev[1], ClientEvent::End(None));
    }

    #[test]
    fn non_ascii_request_targets_are_refused() {
        let mut c = ClientConn::new(ClientConnConfig::default());
        let h = HeaderMap::new();
        let line = RequestLine {
            method: &Method::GET,
            target: "/café",
            host: "h",
            headers: &h,
            body: RequestBody::Empty,
            keep_alive: true,
        };
        let mut out = Vec::new();
        assert_eq!(
            c.send_request(&line, &mut out),
            Err(RequestSendError::BadTarget)
        );
        assert!(out.is_empty());
        let line = RequestLine {
            target: "/caf%C3%A9",
            ..line
        };
        c.send_request(&line, &mut out).unwrap();
        assert!(out.starts_with(b"GET /caf%C3%A9 HTTP/1.1\r\n"));
    }

    #[test]
    fn content_length_over_max_body_is_an_error_at_the_head() {
        let (mut c, _) = get(true);
        c.set_max_body_size(4);
        let ev = events(
            &mut c,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            false,
        );
        assert_eq!(
            ev.last(),
            Some(&ClientEvent::Error(ResponseError::BodyTooLarge {
                limit: 4
            }))
        );
    }
}

//! What a fetch is asked and answers: [`HttpRequest`] (Tornado's `HTTPRequest`, with its
//! options and defaults), [`HttpResponse`], and [`HttpError`], why a fetch failed.

use std::fmt;

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

use super::conn::{RequestSendError, ResponseError, ResponseHead};
use crate::error::CloseReason;
use crate::io_loop::IoLoop;
use crate::time::Duration;
use crate::tls::TlsFailure;

/// Called with each piece of the (decompressed) body as it arrives, instead of buffering it.
pub type ChunkCallback = Box<dyn FnMut(&mut IoLoop, Bytes)>;

/// Called with the final response head before its body (not for followed redirects).
pub type HeadCallback = Box<dyn FnMut(&mut IoLoop, &ResponseHead)>;

/// The one answer every fetch gets.
pub type FetchResult = Result<HttpResponse, HttpError>;

/// One request to fetch, with Tornado's `HTTPRequest` options and defaults.
pub struct HttpRequest {
    /// The method (GET by default).
    pub method: Method,
    /// An absolute `http://` URL.
    pub url: String,
    /// Extra header fields (Host, Content-Length and Transfer-Encoding are set by the client).
    pub headers: HeaderMap,
    /// The request body, sent with Content-Length (empty: none).
    pub body: Bytes,
    /// Longest wait for the TCP connection (default 20 s); `None`: no limit.
    pub connect_timeout: Option<Duration>,
    /// Longest wait for the whole response of one hop, connect included (default 20 s).
    pub request_timeout: Option<Duration>,
    /// Follow 301/302/303/307/308 responses that carry a Location (default true). A hop to
    /// another host or port drops Authorization, Proxy-Authorization, Cookie and Host.
    pub follow_redirects: bool,
    /// Most redirects followed before failing with [`HttpError::TooManyRedirects`] (default 5).
    pub max_redirects: u32,
    /// Largest body accepted, before and after decompression (default 100 MiB).
    pub max_body_size: u64,
    /// Send `Accept-Encoding: gzip` and decompress gzip (or `x-gzip`) bodies (default true).
    /// A gzip *transfer* coding is always removed, whatever this says.
    pub decompress_response: bool,
    /// Turn non-2xx final responses into [`HttpError::Status`] (default true, as Tornado's
    /// `raise_error`); false delivers every response as `Ok`.
    pub error_for_status: bool,
    /// Streams the body to this callback instead of collecting it in [`HttpResponse::body`].
    pub on_chunk: Option<ChunkCallback>,
    /// Sees the final head as soon as it arrives (Tornado's `header_callback`, parsed).
    pub on_head: Option<HeadCallback>,
}

impl HttpRequest {
    /// A request with Tornado's defaults.
    pub fn new(method: Method, url: impl Into<String>) -> HttpRequest {
        HttpRequest {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            connect_timeout: Some(Duration::from_secs(20)),
            request_timeout: Some(Duration::from_secs(20)),
            follow_redirects: true,
            max_redirects: 5,
            max_body_size: 100 * 1024 * 1024,
            decompress_response: true,
            error_for_status: true,
            on_chunk: None,
            on_head: None,
        }
    }

    /// A GET request with the defaults.
    pub fn get(url: impl Into<String>) -> HttpRequest {
        HttpRequest::new(Method::GET, url)
    }

    /// Adds a header field (builder style); invalid names or values are ignored with a warning.
    pub fn header(mut self, name: &str, value: &str) -> HttpRequest {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => tracing::warn!(name, "ignoring invalid request header"),
        }
        self
    }

    /// Sets the body (builder style).
    pub fn body(mut self, body: impl Into<Bytes>) -> HttpRequest {
        self.body = body.into();
        self
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("follow_redirects", &self.follow_redirects)
            .field("max_redirects", &self.max_redirects)
            .field("max_body_size", &self.max_body_size)
            .field("decompress_response", &self.decompress_response)
            .field("error_for_status", &self.error_for_status)
            .field("streaming", &self.on_chunk.is_some())
            .field("on_head", &self.on_head.is_some())
            .finish()
    }
}

/// A final response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as the server sent it.
    pub reason: String,
    /// The server's HTTP version.
    pub version: Version,
    /// The header fields (after gzip decoding, `Content-Encoding` is renamed
    /// `X-Consumed-Content-Encoding`, as Tornado does).
    pub headers: HeaderMap,
    /// Chunked trailer fields, if any.
    pub trailers: Option<HeaderMap>,
    /// The body (empty when it was streamed to `on_chunk`).
    pub body: Bytes,
    /// The URL that answered (after redirects).
    pub effective_url: String,
    /// Redirects followed to get here.
    pub redirects: u32,
    /// True if the final hop ran on a pooled keep-alive connection.
    pub reused_connection: bool,
    /// Loop time from the start of processing (after queueing) to the end of the final hop.
    pub request_time: Duration,
}

/// Which time-out fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Waiting for a free slot under `max_clients`.
    Queue,
    /// Connecting (`connect_timeout`).
    Connect,
    /// The request as a whole (`request_timeout`).
    Request,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Queue => "while queued (max_clients)",
            TimeoutPhase::Connect => "while connecting",
            TimeoutPhase::Request => "waiting for the response",
        })
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// A non-2xx final response, with `error_for_status` on; the response is kept.
    #[error("HTTP {0}")]
    Status(StatusCode, Box<HttpResponse>),
    /// A time-out fired.
    #[error("timed out {phase}")]
    Timeout {
        /// Which one.
        phase: TimeoutPhase,
    },
    /// Nobody listens at the address (ECONNREFUSED).
    #[error("connection refused")]
    ConnectionRefused,
    /// The server reset the connection.
    #[error("connection reset by peer")]
    ConnectionReset,
    /// The server closed the connection before the response was complete.
    #[error("connection closed before the response was complete")]
    ConnectionClosed,
    /// The connection failed for another reason.
    #[error("connection failed: {0}")]
    Connect(CloseReason),
    /// The URL cannot be fetched (not `http://`, malformed).
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (or as redirected to).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The host is not an IP literal or `localhost` and no resolver knows it.
    #[error("cannot resolve host {0:?} (the core client resolves only IP literals and localhost; install a resolver)")]
    UnresolvedHost(String),
    /// The request cannot be serialised (e.g. an invalid request-target).
    #[error("invalid request: {0}")]
    InvalidRequest(RequestSendError),
    /// The body exceeds `max_body_size` (declared, received or decompressed).
    #[error("response body larger than max_body_size ({limit} bytes)")]
    BodyTooLarge {
        /// The limit.
        limit: u64,
    },
    /// More than `max_redirects` redirects.
    #[error("stopped after {max} redirects")]
    TooManyRedirects {
        /// The limit.
        max: u32,
    },
    /// The response broke HTTP/1.1 framing or syntax.
    #[error("protocol error: {0}")]
    Protocol(ResponseError),
    /// A gzip body could not be decompressed.
    #[error("response body is not valid gzip")]
    Decompress,
    /// The fetch was cancelled through its [`FetchHandle`](super::FetchHandle).
    #[error("fetch cancelled")]
    Cancelled,
    /// The request's `on_head` or `on_chunk` callback panicked; the rest was dropped.
    #[error("an on_head/on_chunk callback panicked")]
    CallbackPanicked,
    /// The TLS handshake or session failed (untrusted certificate, alert, time-out...).
    #[error("TLS: {0}")]
    Tls(TlsFailure),
}

impl HttpError {
    /// The response, for [`HttpError::Status`].
    pub fn response(&self) -> Option<&HttpResponse> {
        match self {
            HttpError::Status(_, r) => Some(r),
            _ => None,
        }
    }
}

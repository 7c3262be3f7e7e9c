//! Error values of the HTTP machines: what went wrong, and which status answers it.

use http::StatusCode;

/// A request the server cannot accept; the connection must close after answering it.
///
/// Every variant maps to the status code the server should answer with
/// ([`RequestError::status`]); the message says what the client did wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request line or a header field is not valid HTTP/1.1 syntax (RFC 9112 §2-§5).
    #[error("malformed request head: {0}")]
    BadSyntax(&'static str),
    /// The request-target cannot be parsed or does not fit the method (RFC 9112 §3.2).
    #[error("invalid request-target: {0}")]
    BadTarget(&'static str),
    /// The request-target is longer than the URI parser accepts.
    #[error("request-target longer than {limit} bytes")]
    TargetTooLong {
        /// Largest accepted target length in bytes.
        limit: usize,
    },
    /// Host is missing on HTTP/1.1, repeated, or invalid (RFC 9112 §3.2).
    #[error("invalid Host header: {0}")]
    BadHost(&'static str),
    /// The head did not end within `max_header_size` bytes; raise the limit or send less.
    #[error("request head larger than max_header_size ({limit} bytes)")]
    HeadTooLarge {
        /// The configured `max_header_size`.
        limit: usize,
    },
    /// More header fields than the parser has room for.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// Largest accepted number of header fields.
        limit: usize,
    },
    /// Content-Length or Transfer-Encoding make the body length ambiguous (RFC 9112 §6).
    #[error("invalid message framing: {0}")]
    BadFraming(&'static str),
    /// A transfer coding other than chunked was applied (RFC 9112 §6.1); not implemented.
    #[error("unsupported transfer coding in Transfer-Encoding")]
    UnsupportedTransferCoding,
    /// The chunked body encoding is malformed (RFC 9112 §7.1).
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
    /// The body (declared, de-chunked or decompressed) exceeds `max_body_size`.
    #[error("request body larger than max_body_size ({limit} bytes)")]
    BodyTooLarge {
        /// The `max_body_size` in force for this request.
        limit: u64,
    },
    /// The HTTP version is not 1.x (HTTP/2 prior knowledge is refused here too).
    #[error("HTTP version not supported; only HTTP/1.x is served here")]
    VersionNotSupported,
    /// A method the server does not implement (CONNECT: it would need a tunnel).
    #[error("method not implemented by this server: {0}")]
    MethodNotImplemented(&'static str),

    /// The peer closed the connection in the middle of a request.
    #[error("connection closed before the request was complete")]
    Incomplete,
    /// A `Content-Encoding: gzip` body could not be decompressed.
    #[error("request body is not valid gzip")]
    BadGzip,
    /// A form body (urlencoded or multipart) is malformed.
    #[error("malformed form body: {0}")]
    BadForm(&'static str),
}

impl RequestError {
    /// The status code to answer this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::HeadTooLarge { .. } | RequestError::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            RequestError::TargetTooLong { .. } => StatusCode::URI_TOO_LONG,
            RequestError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::VersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            RequestError::UnsupportedTransferCoding | RequestError::MethodNotImplemented(_) => {
                StatusCode::NOT_IMPLEMENTED
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A response the application tried to send that the connection cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// `send_response` was called with no request waiting for an answer, or twice.
    #[error("no request is waiting for a response head (send_response called out of order)")]
    NotReady,
    /// `send_data`/`send_end` was called before `send_response`.
    #[error("response head not sent yet; call send_response first")]
    NoResponseStarted,
    /// The connection is closed (after an error, an upgrade or a finished close-delimited response).
    #[error("connection is closed for writing")]
    Closed,
    /// The response's Content-Length header is not a single non-negative integer.
    #[error("response Content-Length header is not a valid length")]
    InvalidContentLength,
    /// The response carries a Transfer-Encoding other than `chunked` (or chunked to an HTTP/1.0 client).
    #[error("response Transfer-Encoding must be exactly `chunked` and the request HTTP/1.1")]
    UnsupportedTransferEncoding,
    /// More body bytes were sent than the response's Content-Length declared.
    #[error("response body exceeds its Content-Length ({declared} bytes)")]
    BodyTooLong {
        /// The declared Content-Length.
        declared: u64,
    },
    /// `send_end` was called with fewer body bytes than Content-Length declared; the connection must close.
    #[error("response body shorter than its Content-Length ({missing} bytes missing); closing")]
    BodyTooShort {
        /// How many declared bytes were never sent.
        missing: u64,
    },
    /// A body was sent on a status that forbids one (1xx, 204, 304).
    #[error("status {0} must not have a body")]
    BodyNotAllowed(StatusCode),
}

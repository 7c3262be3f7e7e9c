//! Limits and switches of an HTTP/1.1 server connection, with Tornado's names and defaults.

use core::net::IpAddr;
use core::time::Duration;

/// Configuration shared by the connections of one HTTP server (Tornado's `HTTPServer` arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest request head (request line + header fields) in bytes; over it the answer is 431.
    pub max_header_size: usize,
    /// Largest request body in bytes (declared, de-chunked or decompressed); over it the answer is 413.
    pub max_body_size: u64,
    /// How long a keep-alive connection may wait for the first byte of its next request.
    pub idle_connection_timeout: Duration,
    /// How long a request head may take once its first byte arrived (`None`: use the idle
    /// timeout). Defaults to 60 s (as nginx's `client_header_timeout`), so a client that
    /// trickles a head (slowloris) cannot hold a connection for the idle timeout's hour.
    pub header_timeout: Option<Duration>,
    /// How long a request body may take once the head was parsed (`None`: no limit).
    pub body_timeout: Option<Duration>,
    /// Close every connection after one response.
    pub no_keep_alive: bool,
    /// Trust `X-Real-Ip`/`X-Forwarded-For` and `X-Scheme`/`X-Forwarded-Proto` (behind a proxy).
    pub xheaders: bool,
    /// The proxies in front: their addresses are skipped when walking `X-Forwarded-For`
    /// from the right, and, when the list is not empty, only a connection from one of them
    /// (or from a unix socket) may set the client's address and scheme with xheaders.
    pub trusted_downstream: Vec<IpAddr>,
    /// Decompress `Content-Encoding: gzip` request bodies (bounded by `max_body_size`).
    pub decompress_request: bool,
    /// Most empty lines ignored before a request line (RFC 9112 §2.2); more is a 400.
    pub max_leading_empty_lines: u8,
    /// Largest chunk-size line (size plus extensions) in a chunked body.
    pub max_chunk_line_size: usize,
    /// Largest trailer section of a chunked body.
    pub max_trailer_size: usize,
    /// Serve HTTPS: every accepted connection runs TLS with these options (Tornado's
    /// `ssl_options`); `None` serves plain HTTP.
    pub tls: Option<crate::tls::TlsAcceptor>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_header_size: 64 * 1024,
            max_body_size: 100 * 1024 * 1024,
            idle_connection_timeout: Duration::from_secs(3600),
            header_timeout: Some(Duration::from_secs(60)),
            body_timeout: None,
            no_keep_alive: false,
            xheaders: false,
            trusted_downstream: Vec::new(),
            decompress_request: false,
            max_leading_empty_lines: 4,
            max_chunk_line_size: 4096,
            max_trailer_size: 16 * 1024,
            tls: None,
        }
    }
}

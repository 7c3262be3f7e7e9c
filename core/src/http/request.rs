//! `Request`: the value the web layer gets (Tornado's `HTTPServerRequest`), built from a
//! parsed head, the peer address and the finished body.
//!
//! It reads everything from the head's bytes: header lookup by name, method, path and query
//! cost a scan of a few field positions and copy nothing. Derived views (query arguments,
//! cookies, form fields, an `http::HeaderMap`) are computed on demand, so building a
//! `Request` allocates nothing beyond the head itself.
//!
//! ```
//! use eddy_core::http::{HttpServer, Request, Responder};
//! use eddy_core::IoLoop;
//! use http::{HeaderMap, StatusCode};
//!
//! fn hello(io: &mut IoLoop, req: Request, resp: Responder) {
//!     let agent = req.header_str("user-agent").unwrap_or("nobody");
//!     let body = format!("{} {} from {agent}", req.method(), req.path());
//!     let _ = resp.respond(io, StatusCode::OK, &HeaderMap::new(), body);
//! }
//! let _server = HttpServer::new(hello);
//! ```

use std::borrow::Cow;
use std::cell::OnceCell;
use std::rc::Rc;

use bytes::Bytes;
use core::net::{IpAddr, SocketAddr};
use http::header::{HeaderName, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};

use super::body_stream::BodyStream;
use super::config::HttpConfig;
use super::error::RequestError;
use super::form::{decompress_gzip, parse_body, percent_decode, Arguments, FormData};
use super::framing::trim_ows;
use super::head::{FieldPool, HeaderValues, Headers, RequestHead};

/// The scheme the client used to reach us (after `X-Scheme`/`X-Forwarded-Proto` with xheaders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Protocol {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// One HTTP request as the application sees it.
///
/// Getters read the head's bytes in place. After [`set_body`](Self::set_body) gunzips a
/// body, the fields read back through an edited `http::HeaderMap` (`Content-Encoding` moved
/// to `X-Consumed-Content-Encoding`, `Content-Length` updated, as Tornado does).
#[derive(Debug, Clone)]
pub struct Request {
    head: RequestHead,
    /// The fields as an `http` map: built by the first [`header_map`](Self::header_map), or
    /// by `set_body` when it edits the fields.
    map: OnceCell<Box<HeaderMap>>,
    /// `set_body` edited the fields: lookups read `map` instead of the head.
    edited: bool,
    body: Bytes,
    remote_addr: SocketAddr,
    remote_ip: IpAddr,
    protocol: Protocol,
    /// Where the head's field list goes back for reuse when the request is dropped.
    recycle: Option<Rc<FieldPool>>,
    /// The body, when the handler asked for it streamed (see `Handler::body_limit`).
    body_stream: BodyStreamSlot,
}

/// Where a streamed body waits for its handler; a cloned request has none.
#[derive(Debug, Default)]
struct BodyStreamSlot(Option<Box<BodyStream>>);

impl Clone for BodyStreamSlot {
    fn clone(&self) -> Self {
        BodyStreamSlot(None)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Some(pool) = self.recycle.take() {
            pool.give(self.head.take_fields());
        }
    }
}

impl Request {
    /// Builds a request from its head, applying xheaders when `config.xheaders` is set.
    ///
    /// `tls` says whether the connection itself is TLS.
    pub fn new(
        head: RequestHead,
        remote_addr: SocketAddr,
        tls: bool,
        config: &HttpConfig,
    ) -> Request {
        let mut request = Request {
            head,
            map: OnceCell::new(),
            edited: false,
            body: Bytes::new(),
            remote_addr,
            remote_ip: remote_addr.ip(),
            protocol: if tls { Protocol::Https } else { Protocol::Http },
            recycle: None,
            body_stream: BodyStreamSlot::default(),
        };
        if config.xheaders && peer_may_forward(remote_addr.ip(), &config.trusted_downstream) {
            request.apply_xheaders(&config.trusted_downstream);
        }
        request
    }

    /// Hands the head's field list back to `pool` when this request is dropped.
    pub(crate) fn recycle_fields_into(&mut self, pool: Rc<FieldPool>) {
        self.recycle = Some(pool);
    }

    /// Tornado's `_apply_xheaders`: `X-Real-Ip`, else the last untrusted `X-Forwarded-For`
    /// hop; `X-Scheme`, else the last `X-Forwarded-Proto` element.
    fn apply_xheaders(&mut self, trusted: &[IpAddr]) {
        let mut candidate: Option<&[u8]> = None;
        if let Some(xff) = self.header("x-forwarded-for") {
            for hop in xff.rsplit(|&b| b == b',').map(trim_ows) {
                candidate = Some(hop);
                match parse_ip(hop) {
                    Some(ip) if trusted.contains(&ip) => continue,
                    _ => break,
                }
            }
        }
        if let Some(real) = self.header("x-real-ip") {
            candidate = Some(trim_ows(real));
        }
        let remote_ip = candidate.and_then(parse_ip);
        let proto = self
            .header("x-scheme")
            .or_else(|| self.header("x-forwarded-proto"))
            .map(|proto| {
                proto
                    .rsplit(|&b| b == b',')
                    .next()
                    .map(trim_ows)
                    .unwrap_or_default()
            });
        let protocol = match proto {
            Some(b"http") => Some(Protocol::Http),
            Some(b"https") => Some(Protocol::Https),
            _ => None,
        };
        if let Some(ip) = remote_ip {
            self.remote_ip = ip;
        }
        if let Some(protocol) = protocol {
            self.protocol = protocol;
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.head.method()
    }

    /// HTTP/1.0 or HTTP/1.1.
    pub fn version(&self) -> Version {
        self.head.version()
    }

    /// The parsed head (the raw bytes and field positions every getter reads).
    pub fn head(&self) -> &RequestHead {
        &self.head
    }

    /// The body as a stream of pieces, for a handler that asked for it streamed (once;
    /// `None` for bodies read whole, which are in [`body`](Self::body)).
    pub fn take_body_stream(&mut self) -> Option<BodyStream> {
        self.body_stream.0.take().map(|b| *b)
    }

    pub(crate) fn set_body_stream(&mut self, stream: BodyStream) {
        self.body_stream = BodyStreamSlot(Some(Box::new(stream)));
    }

    /// The whole body (empty until [`set_body`](Self::set_body)).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The socket peer address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The client's address: the peer, or the proxy-reported one with xheaders.
    pub fn remote_ip(&self) -> IpAddr {
        self.remote_ip
    }

    /// http or https, as seen by the client.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The first value of header `name` (case-insensitive), without surrounding whitespace.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match self.edited_map() {
            Some(map) => map.get(name).map(HeaderValue::as_bytes),
            None => self.head.header(name),
        }
    }

    /// The first value of header `name` as text (`None` when absent or not UTF-8).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| core::str::from_utf8(v).ok())
    }

    /// Every value of header `name` (case-insensitive), in the order they were sent.
    pub fn header_all<'a>(&'a self, name: &'a str) -> HeaderValues<'a> {
        match self.edited_map() {
            Some(map) => HeaderValues::of_map(map, name),
            None => self.head.header_all(name),
        }
    }

    /// Every header field as `(name, value)`, in the order sent.
    pub fn headers(&self) -> Headers<'_> {
        match self.edited_map() {
            Some(map) => Headers::of_map(map),
            None => self.head.headers(),
        }
    }

    /// The header fields as an `http::HeaderMap`, built on the first call and kept.
    pub fn header_map(&self) -> &HeaderMap {
        self.map.get_or_init(|| Box::new(self.head.to_header_map()))
    }

    fn edited_map(&self) -> Option<&HeaderMap> {
        if self.edited {
            self.map.get().map(|m| &**m)
        } else {
            None
        }
    }

    /// Stores the finished body, gunzipping it first when `decompress_request` is on and the
    /// body is `Content-Encoding: gzip` (bounded by `max_body_size`; a bomb is a 413).
    pub fn set_body(&mut self, body: Bytes, config: &HttpConfig) -> Result<(), RequestError> {
        let gzip = self
            .header("content-encoding")
            .is_some_and(|v| trim_ows(v).eq_ignore_ascii_case(b"gzip"));
        if !(config.decompress_request && gzip) {
            self.body = body;
            return Ok(());
        }
        self.body = decompress_gzip(&body, config.max_body_size)?;
        let len = self.body.len();
        self.header_map();
        let Some(map) = self.map.get_mut() else {
            return Ok(());
        };
        if let Some(encoding) = map.remove(CONTENT_ENCODING) {
            map.insert(
                HeaderName::from_static("x-consumed-content-encoding"),
                encoding,
            );
        }
        if map.contains_key(CONTENT_LENGTH) {
            map.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        self.edited = true;
        Ok(())
    }

    /// The request-target byte for byte as sent (an absolute-form target keeps the case of
    /// its scheme and host).
    pub fn target(&self) -> &str {
        self.head.target()
    }

    /// The request-target parsed as an `http::Uri` (built on each call; prefer the getters).
    pub fn uri(&self) -> Uri {
        self.head.uri()
    }

    /// The path, still percent-encoded (e.g. `/a%20b`).
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// The path with `%XX` escapes decoded (`+` kept), invalid UTF-8 replaced.
    pub fn decoded_path(&self) -> Cow<'_, str> {
        match percent_decode(self.path().as_bytes(), false) {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// The query string without `?` (empty when absent).
    pub fn query(&self) -> &str {
        self.head.query().unwrap_or("")
    }

    /// The parsed query arguments (multi-valued, blank values kept).
    pub fn query_arguments(&self) -> Arguments {
        Arguments::parse_urlencoded(self.query().as_bytes())
    }

    /// The host the client asked for: the absolute-form authority (RFC 9112 §3.2.2), else
    /// the Host header, else `127.0.0.1` (Tornado's default).
    pub fn host(&self) -> &str {
        if let Some(authority) = self.head.authority() {
            return authority;
        }
        self.header_str("host")
            .filter(|h| !h.is_empty())
            .unwrap_or("127.0.0.1")
    }

    /// [`host`](Self::host) without its port (IPv6 literals keep their brackets).
    pub fn host_name(&self) -> &str {
        let host = self.host();
        if host.starts_with('[') {
            return host.find(']').map_or(host, |i| &host[..=i]);
        }
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    }

    /// `protocol://host/target`, Tornado's `full_url()`.
    pub fn full_url(&self) -> String {
        let target = self.target();
        if target.starts_with('/') {
            format!("{}://{}{}", self.protocol.as_str(), self.host(), target)
        } else {
            target.to_owned()
        }
    }

    /// The cookies of every `Cookie` header as `(name, value)`, surrounding quotes removed
    /// (Tornado's lenient `parse_cookie`; headers that are not UTF-8 are skipped).
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header_all("cookie")
            .filter_map(|v| core::str::from_utf8(v).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|chunk| {
                let (name, value) = chunk.split_once('=').unwrap_or(("", chunk));
                let (name, value) = (name.trim(), value.trim());
                if name.is_empty() && value.is_empty() {
                    return None;
                }
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                Some((name, value))
            })
    }

    /// The value of cookie `name` (the last one when repeated).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies()
            .filter(|(n, _)| *n == name)
            .last()
            .map(|(_, v)| v)
    }

    /// The body's form fields and files (urlencoded or multipart, per Content-Type).
    pub fn form(&self) -> Result<FormData, RequestError> {
        match self.header("content-type") {
            Some(ct) => parse_body(ct, &self.body),
            None => Ok(FormData::default()),
        }
    }
}

fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    core::str::from_utf8(text).ok()?.parse().ok()
}

/// Whether the connection's peer may speak for the client with `X-Real-Ip` and friends: any
/// peer when no proxy is listed (Tornado's `xheaders`), else only a listed proxy or a local
/// process on a unix socket (reported as `0.0.0.0`, which no TCP peer can be). A client that
/// reaches the server directly cannot forge its address then.
fn peer_may_forward(peer: IpAddr, trusted: &[IpAddr]) -> bool {
    trusted.is_empty() || trusted.contains(&peer) || peer.is_unspecified()
}

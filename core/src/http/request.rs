//! `Request`: the value the web layer gets (Tornado's `HTTPServerRequest`), built from a
//! parsed head, the peer address and the finished body.
//!
//! Derived views (query arguments, cookies, form fields) are computed on demand from the
//! head's shared bytes, so building a `Request` allocates nothing beyond the head itself.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Weak;

use bytes::Bytes;
use core::net::{IpAddr, SocketAddr};
use http::header::{HeaderName, CONTENT_ENCODING, CONTENT_TYPE, COOKIE, HOST};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};

use super::config::HttpConfig;
use super::error::RequestError;
use super::form::{decompress_gzip, parse_body, percent_decode, Arguments, FormData};
use super::framing::trim_ows;
use super::head::RequestHead;

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
#[derive(Debug, Clone)]
pub struct Request {
    /// The request method.
    pub method: Method,
    /// The parsed request-target.
    pub uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Header fields (after gzip decompression, `Content-Encoding` is moved to
    /// `X-Consumed-Content-Encoding`, as Tornado does).
    pub headers: HeaderMap,
    /// The whole body (empty until [`set_body`](Self::set_body)).
    pub body: Bytes,
    /// The socket peer address.
    pub remote_addr: SocketAddr,
    /// The client's address: the peer, or the proxy-reported one with xheaders.
    pub remote_ip: IpAddr,
    /// http or https, as seen by the client.
    pub protocol: Protocol,
    /// Where the header map goes back for reuse when the request is dropped (server only).
    recycle: Option<HeaderSlot>,
}

/// A connection's spare header map; a dropped [`Request`] refills it so the next request
/// parses into the same allocation (keeps the keep-alive path allocation-free).
pub(crate) type HeaderSlot = Weak<RefCell<Option<HeaderMap>>>;

impl Drop for Request {
    fn drop(&mut self) {
        let Some(slot) = self.recycle.take().and_then(|w| w.upgrade()) else {
            return;
        };
        let mut spare = slot.borrow_mut();
        if spare.is_none() {
            let mut headers = std::mem::take(&mut self.headers);
            headers.clear();
            *spare = Some(headers);
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
            method: head.method,
            uri: head.uri,
            version: head.version,
            headers: head.headers,
            body: Bytes::new(),
            remote_addr,
            remote_ip: remote_addr.ip(),
            protocol: if tls { Protocol::Https } else { Protocol::Http },
            recycle: None,
        };
        if config.xheaders {
            request.apply_xheaders(&config.trusted_downstream);
        }
        request
    }

    /// Hands the header map back to `slot` when this request is dropped.
    pub(crate) fn recycle_headers_into(&mut self, slot: HeaderSlot) {
        self.recycle = Some(slot);
    }

    /// Tornado's `_apply_xheaders`: `X-Real-Ip`, else the last untrusted `X-Forwarded-For`
    /// hop; `X-Scheme`, else the last `X-Forwarded-Proto` element.
    fn apply_xheaders(&mut self, trusted: &[IpAddr]) {
        let mut candidate: Option<&[u8]> = None;
        if let Some(xff) = self.headers.get("x-forwarded-for") {
            for hop in xff.as_bytes().rsplit(|&b| b == b',').map(trim_ows) {
                candidate = Some(hop);
                match parse_ip(hop) {
                    Some(ip) if trusted.contains(&ip) => continue,
                    _ => break,
                }
            }
        }
        if let Some(real) = self.headers.get("x-real-ip") {
            candidate = Some(trim_ows(real.as_bytes()));
        }
        if let Some(ip) = candidate.and_then(parse_ip) {
            self.remote_ip = ip;
        }
        let proto = self
            .headers
            .get("x-scheme")
            .or_else(|| self.headers.get("x-forwarded-proto"));
        if let Some(proto) = proto {
            let last = proto
                .as_bytes()
                .rsplit(|&b| b == b',')
                .next()
                .map(trim_ows)
                .unwrap_or_default();
            if last == b"http" {
                self.protocol = Protocol::Http;
            } else if last == b"https" {
                self.protocol = Protocol::Https;
            }
        }
    }

    /// Stores the finished body, gunzipping it first when `decompress_request` is on and the
    /// body is `Content-Encoding: gzip` (bounded by `max_body_size`; a bomb is a 413).
    pub fn set_body(&mut self, body: Bytes, config: &HttpConfig) -> Result<(), RequestError> {
        let gzip = self
            .headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| trim_ows(v.as_bytes()).eq_ignore_ascii_case(b"gzip"));
        if config.decompress_request && gzip {
            self.body = decompress_gzip(&body, config.max_body_size)?;
            if let Some(encoding) = self.headers.remove(CONTENT_ENCODING) {
                self.headers.insert(
                    HeaderName::from_static("x-consumed-content-encoding"),
                    encoding,
                );
            }
            if self.headers.contains_key(http::header::CONTENT_LENGTH) {
                self.headers.insert(
                    http::header::CONTENT_LENGTH,
                    HeaderValue::from(self.body.len()),
                );
            }
        } else {
            self.body = body;
        }
        Ok(())
    }

    /// The request-target as sent (origin-form borrows; other forms are rebuilt).
    pub fn target(&self) -> Cow<'_, str> {
        match self.uri.path_and_query() {
            Some(pq) if self.uri.scheme().is_none() && self.uri.authority().is_none() => {
                Cow::Borrowed(pq.as_str())
            }
            _ => Cow::Owned(self.uri.to_string()),
        }
    }

    /// The path, still percent-encoded (e.g. `/a%20b`).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The path with `%XX` escapes decoded (`+` kept), invalid UTF-8 replaced.
    pub fn decoded_path(&self) -> Cow<'_, str> {
        match percent_decode(self.uri.path().as_bytes(), false) {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    /// The query string without `?` (empty when absent).
    pub fn query(&self) -> &str {
        self.uri.query().unwrap_or("")
    }

    /// The parsed query arguments (multi-valued, blank values kept).
    pub fn query_arguments(&self) -> Arguments {
        Arguments::parse_urlencoded(self.query().as_bytes())
    }

    /// The host the client asked for: the absolute-form authority (RFC 9112 §3.2.2), else
    /// the Host header, else `127.0.0.1` (Tornado's default).
    pub fn host(&self) -> &str {
        if let Some(authority) = self.uri.authority() {
            return authority.as_str();
        }
        self.headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
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
            target.into_owned()
        }
    }

    /// The cookies of every `Cookie` header as `(name, value)`, surrounding quotes removed
    /// (Tornado's lenient `parse_cookie`; headers that are not UTF-8 are skipped).
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| core::str::from_utf8(v.as_bytes()).ok())
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
        match self.headers.get(CONTENT_TYPE) {
            Some(ct) => parse_body(ct.as_bytes(), &self.body),
            None => Ok(FormData::default()),
        }
    }
}

fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    core::str::from_utf8(text).ok()?.parse().ok()
}

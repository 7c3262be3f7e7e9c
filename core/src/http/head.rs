//! Request head parsing: httparse on uninitialised field slots, then the checks httparse
//! leaves to us (framing headers, Host, request-target form, version), building `http`
//! types that share the head's bytes instead of copying them.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri, Version};

use super::error::RequestError;
use super::framing::{check_request_transfer_encoding, list_elements, parse_content_length};

/// Most header fields accepted in a request head; more is a 431.
pub const MAX_HEADERS: usize = 100;
/// Longest request-target the `http` crate's `Uri` accepts.
pub const MAX_TARGET_LEN: usize = u16::MAX as usize - 1;

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no Content-Length and no Transfer-Encoding, or Content-Length: 0).
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// A chunked body follows.
    Chunked,
}

/// A parsed, validated request head: the `Head` event of a [`ServerConn`](super::ServerConn).
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// The request-target as parsed (origin-, absolute-, authority- or asterisk-form).
    pub uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields, in order; values share the head's buffer.
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the client asked to keep the connection open (before the server's own say).
    pub keep_alive: bool,
    /// Whether the client sent `Expect: 100-continue` (HTTP/1.1 only).
    pub expect_continue: bool,
}

fn span(base: usize, s: &[u8]) -> (usize, usize) {
    let start = s.as_ptr() as usize - base;
    (start, start + s.len())
}

/// Parses the head occupying `buf[..head_len]` (which must end in its blank line), splits
/// it off `buf`, and returns the validated head. `headers` is a map to reuse (it is cleared).
///
/// One pass: httparse runs over the split-off head with uninitialised field slots (nothing is
/// zeroed per request), and each field goes straight into the map as a slice of the head.
pub fn parse_request_head(
    buf: &mut BytesMut,
    head_len: usize,
    headers: HeaderMap,
) -> Result<RequestHead, RequestError> {
    parse_head(buf.split_to(head_len).freeze(), headers)
}

fn parse_head(head: Bytes, mut headers: HeaderMap) -> Result<RequestHead, RequestError> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    if let Some(minor_at) = check_parse(req.parse_with_uninit_headers(&head, &mut fields), &head)? {
        // RFC 9110 §2.5: a higher minor version of a major version we implement is processed
        // as the highest minor we implement, HTTP/1.1.
        let mut patched = BytesMut::from(&head[..]);
        patched[minor_at] = b'1';
        return parse_head(patched.freeze(), headers);
    }
    let base = head.as_ptr() as usize;
    let (Some(method), Some(target), Some(v)) = (req.method, req.path, req.version) else {
        return Err(RequestError::BadSyntax("incomplete request line"));
    };
    let version = match v {
        0 => Version::HTTP_10,
        1 => Version::HTTP_11,
        _ => return Err(RequestError::VersionNotSupported),
    };
    let target = span(base, target.as_bytes());

    headers.clear();
    headers.reserve(req.headers.len());
    let mut facts = Facts::default();
    for field in req.headers.iter() {
        let name_bytes = field.name.as_bytes();
        facts.observe(name_bytes, field.value)?;
        let name = HeaderName::from_bytes(name_bytes)
            .map_err(|_| RequestError::BadSyntax("invalid field name"))?;
        let (start, end) = span(base, field.value);
        let value = HeaderValue::from_maybe_shared(head.slice(start..end))
            .map_err(|_| RequestError::BadSyntax("invalid byte in field value"))?;
        headers.append(name, value);
    }

    let framing = facts.framing(version, &headers)?;
    if facts.hosts > 1 {
        return Err(RequestError::BadHost("more than one Host header"));
    }
    if facts.hosts == 0 && version == Version::HTTP_11 {
        return Err(RequestError::BadHost(
            "missing Host header on an HTTP/1.1 request",
        ));
    }
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| RequestError::BadSyntax("invalid method"))?;
    let uri = parse_target(&head, target, &method)?;

    let keep_alive = if version == Version::HTTP_11 {
        !facts.conn_close
    } else {
        facts.conn_keep_alive && !facts.conn_close
    };
    Ok(RequestHead {
        method,
        uri,
        version,
        headers,
        framing,
        keep_alive,
        expect_continue: facts.expect_continue && version == Version::HTTP_11,
    })
}

/// Maps httparse's verdict on the whole head to ours; `Some(offset)`: the head is HTTP/1.x
/// with x > 1, to be parsed again with the minor version digit at `offset` set to 1.
fn check_parse(
    result: httparse::Result<usize>,
    bytes: &[u8],
) -> Result<Option<usize>, RequestError> {
    match result {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Ok(_) => return Err(RequestError::BadSyntax("head does not end where expected")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(RequestError::TooManyHeaders { limit: MAX_HEADERS })
        }
        Err(httparse::Error::Version) => return version_error(bytes).map(Some),
        Err(httparse::Error::HeaderName) => {
            return Err(RequestError::BadSyntax(
                "invalid field name (or whitespace before colon, or obs-fold)",
            ))
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(RequestError::BadSyntax("invalid byte in field value"))
        }
        Err(httparse::Error::Token) => {
            return Err(RequestError::BadSyntax("invalid method or request-target"))
        }
        Err(httparse::Error::NewLine) => {
            return Err(RequestError::BadSyntax("invalid line ending"))
        }
        Err(_) => return Err(RequestError::BadSyntax("invalid request line")),
    }
    Ok(None)
}

/// httparse says "bad version" for `HTTP/2.0` (505), for `HTTP/1.2` (served as 1.1) and for
/// a malformed request line (400): tell them apart by the line's shape,
/// `method SP request-target SP HTTP/DIGIT.DIGIT` with single spaces. `Ok` is the offset of
/// an HTTP/1 minor version digit above 1.
fn version_error(bytes: &[u8]) -> Result<usize, RequestError> {
    // httparse skips empty lines before the request line; so does this.
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let line_end = memchr::memchr(b'\r', &bytes[start..]).map_or(bytes.len(), |n| start + n);
    let line = &bytes[start..line_end];
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::BadSyntax("malformed request line"));
    };
    if method.is_empty() || target.is_empty() {
        return Err(RequestError::BadSyntax("malformed request line"));
    }
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major, minor) {
                // Only above 1, so the patched head cannot come back here.
                (b'1', b'2'..=b'9') => Ok(line_end - 1),
                (b'1', _) => Err(RequestError::BadSyntax("malformed request line")),
                _ => Err(RequestError::VersionNotSupported),
            }
        }
        _ => Err(RequestError::BadSyntax("malformed HTTP version")),
    }
}

/// Facts about the head gathered while its fields are copied into the map.
#[derive(Default)]
struct Facts {
    content_length: Option<u64>,
    transfer_encoding: bool,
    hosts: u32,
    conn_close: bool,
    conn_keep_alive: bool,
    expect_continue: bool,
}

impl Facts {
    fn observe(&mut self, name: &[u8], value: &[u8]) -> Result<(), RequestError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_content_length(value)?;
            if self.content_length.is_some_and(|prev| prev != n) {
                return Err(RequestError::BadFraming(
                    "conflicting Content-Length headers",
                ));
            }
            self.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"host") {
            self.hosts += 1;
            if !is_valid_host(value) {
                return Err(RequestError::BadHost("Host is not uri-host [\":\" port]"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list_elements(value) {
                if token.eq_ignore_ascii_case(b"close") {
                    self.conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect")
            && value.eq_ignore_ascii_case(b"100-continue")
        {
            self.expect_continue = true;
        }
        Ok(())
    }

    fn framing(&self, version: Version, headers: &HeaderMap) -> Result<BodyFraming, RequestError> {
        if self.transfer_encoding {
            if version == Version::HTTP_10 {
                return Err(RequestError::BadFraming(
                    "Transfer-Encoding in an HTTP/1.0 request",
                ));
            }
            if self.content_length.is_some() {
                // RFC 9112 §6.3 item 3: a smuggling vector; refuse and close.
                return Err(RequestError::BadFraming(
                    "both Content-Length and Transfer-Encoding",
                ));
            }
            let values = headers.get_all(http::header::TRANSFER_ENCODING);
            check_request_transfer_encoding(values.iter().map(HeaderValue::as_bytes))?;
            return Ok(BodyFraming::Chunked);
        }
        Ok(match self.content_length {
            None | Some(0) => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
        })
    }
}

/// `uri-host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2): an IP literal in brackets, or a
/// reg-name / IPv4 address (no colon), then an optional port of digits. Userinfo is not
/// allowed (RFC 9110 §4.2.4), and an empty host is (RFC 9112 §3.2).
fn is_valid_host(value: &[u8]) -> bool {
    let rest = if let Some(literal) = value.strip_prefix(b"[") {
        let Some(close) = memchr::memchr(b']', literal) else {
            return false;
        };
        if !is_ip_literal(&literal[..close]) {
            return false;
        }
        &literal[close + 1..]
    } else {
        let Some(len) = reg_name_len(value) else {
            return false;
        };
        &value[len..]
    };
    match rest {
        [] => true,
        [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Length of the RFC 3986 `reg-name` that starts `s` (unreserved, sub-delims and `%XX`
/// escapes; IPv4 addresses fit too); `None` for a broken escape.
fn reg_name_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let run = s[i..].iter().position(|&b| !is_unreserved_or_sub_delim(b));
        i += run.unwrap_or(s.len() - i);
        if s.get(i) != Some(&b'%') {
            return Some(i);
        }
        if !s
            .get(i + 1..i + 3)
            .is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit))
        {
            return None;
        }
        i += 3;
    }
}

/// RFC 3986 unreserved and sub-delims bytes (a table: this runs on every request's Host).
static UNRESERVED_OR_SUB_DELIM: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

fn is_unreserved_or_sub_delim(b: u8) -> bool {
    UNRESERVED_OR_SUB_DELIM[usize::from(b)]
}

/// The inside of `[...]`: an IPv6 address, or `v` HEXDIG+ `.` (unreserved / sub-delims / `:`)+.
fn is_ip_literal(literal: &[u8]) -> bool {
    if let [b'v' | b'V', future @ ..] = literal {
        let Some(dot) = memchr::memchr(b'.', future) else {
            return false;
        };
        let (version, tail) = (&future[..dot], &future[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| b == b':' || is_unreserved_or_sub_delim(b));
    }
    std::str::from_utf8(literal).is_ok_and(|s| s.parse::<core::net::Ipv6Addr>().is_ok())
}

/// Parses and checks the request-target form against the method (RFC 9112 §3.2).
fn parse_target(
    head: &Bytes,
    (start, end): (usize, usize),
    method: &Method,
) -> Result<Uri, RequestError> {
    let raw = &head[start..end];
    if raw.len() > MAX_TARGET_LEN {
        return Err(RequestError::TargetTooLong {
            limit: MAX_TARGET_LEN,
        });
    }
    if raw.contains(&b'#') {
        return Err(RequestError::BadTarget("fragment in request-target"));
    }
    if raw == b"*" {
        if method != Method::OPTIONS {
            return Err(RequestError::BadTarget("asterisk-form is only for OPTIONS"));
        }
        return Ok(Uri::from_static("*"));
    }
    let uri = Uri::from_maybe_shared(head.slice(start..end))
        .map_err(|_| RequestError::BadTarget("unparseable request-target"))?;
    if method == Method::CONNECT {
        // authority-form is `uri-host ":" port` (RFC 9112 §3.2.3).
        let authority_form = uri.scheme().is_none()
            && !raw.starts_with(b"/")
            && uri.port().is_some()
            && is_valid_host(raw);
        if !authority_form {
            return Err(RequestError::BadTarget("CONNECT needs authority-form"));
        }
        // A 2xx would turn the connection into a tunnel (RFC 9110 §9.3.6): not served here.
        return Err(RequestError::MethodNotImplemented("CONNECT"));
    }
    if raw.starts_with(b"/") {
        return Ok(uri);
    }
    match uri.scheme_str() {
        Some(s)
            if (s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
                && uri.authority().is_some() =>
        {
            // RFC 9110 §4.2.1: an empty host is invalid; §4.2.4: userinfo is an error.
            let authority = uri.authority().map_or("", |a| a.as_str()).as_bytes();
            if uri.host().map_or(true, str::is_empty) || !is_valid_host(authority) {
                return Err(RequestError::BadTarget(
                    "absolute-form authority is not host [\":\" port]",
                ));
            }
            Ok(uri)
        }
        Some(_) => Err(RequestError::BadTarget(
            "absolute-form with a scheme other than http(s)",
        )),
        None => Err(RequestError::BadTarget(
            "request-target is not origin- or absolute-form",
        )),
    }
}

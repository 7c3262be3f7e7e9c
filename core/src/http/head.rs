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
    mut headers: HeaderMap,
) -> Result<RequestHead, RequestError> {
    let head: Bytes = buf.split_to(head_len).freeze();
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    check_parse(req.parse_with_uninit_headers(&head, &mut fields), &head)?;
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

/// Maps httparse's verdict on the whole head to ours.
fn check_parse(result: httparse::Result<usize>, bytes: &[u8]) -> Result<(), RequestError> {
    match result {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Ok(_) => return Err(RequestError::BadSyntax("head does not end where expected")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(RequestError::TooManyHeaders { limit: MAX_HEADERS })
        }
        Err(httparse::Error::Version) => return Err(version_error(bytes)),
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
    Ok(())
}

/// httparse says "bad version" both for `HTTP/2.0` (505) and for garbage (400).
fn version_error(bytes: &[u8]) -> RequestError {
    let line_end = memchr::memchr(b'\r', bytes).unwrap_or(bytes.len());
    let line = &bytes[..line_end];
    let token = match memchr::memrchr(b' ', line) {
        Some(sp) => &line[sp + 1..],
        None => return RequestError::BadSyntax("malformed request line"),
    };
    let well_formed = match token {
        [b'H', b'T', b'T', b'P', b'/', major] => major.is_ascii_digit(),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        _ => false,
    };
    if well_formed {
        RequestError::VersionNotSupported
    } else {
        RequestError::BadSyntax("malformed HTTP version")
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
            if !value.iter().all(|&b| is_host_byte(b)) {
                return Err(RequestError::BadHost("invalid character in Host"));
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

/// Bytes of `uri-host [":" port]` (RFC 3986 reg-name, IP literal, port).
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
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
                | b':'
                | b'['
                | b']'
                | b'%'
        )
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
        if uri.scheme().is_some() || uri.authority().is_none() || raw.starts_with(b"/") {
            return Err(RequestError::BadTarget("CONNECT needs authority-form"));
        }
        return Ok(uri);
    }
    if raw.starts_with(b"/") {
        return Ok(uri);
    }
    match uri.scheme_str() {
        Some(s)
            if (s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
                && uri.authority().is_some() =>
        {
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

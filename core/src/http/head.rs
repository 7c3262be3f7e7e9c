//! Request head parsing: httparse on uninitialised field slots, then the checks httparse
//! leaves to us (framing headers, Host, request-target form, version). The parsed head is
//! *lazy*: it keeps the head's bytes and where each field lies in them; no `http` map or
//! `Uri` is built unless asked for.

use std::cell::RefCell;
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

/// A byte range of the head, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(base: usize, s: &[u8]) -> Span {
        let start = s.as_ptr() as usize - base;
        // The head is at most `max_header_size` bytes, checked below to fit in u32.
        Span {
            start: start as u32,
            end: (start + s.len()) as u32,
        }
    }

    fn get(self, bytes: &[u8]) -> &[u8] {
        &bytes[self.start as usize..self.end as usize]
    }
}

/// Where one header field's name and value lie in the head's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    name: Span,
    value: Span,
}

/// Where the parts of the request-target lie in the head's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct TargetSpans {
    /// The whole request-target, byte for byte as sent.
    target: Span,
    /// The path (empty for an absolute-form target without one: the path is then `/`).
    path: Span,
    /// After `?`, when there is a `?`.
    query: Option<Span>,
    /// The authority of an absolute-form target, as sent.
    authority: Option<Span>,
}

/// A parsed, validated request head: the `Head` event of a [`ServerConn`](super::ServerConn).
///
/// It holds the head's bytes and the positions of its parts; every accessor reads from
/// those bytes, so parsing builds no map and copies nothing.
#[derive(Debug, Clone)]
pub struct RequestHead {
    bytes: Bytes,
    fields: Vec<FieldSpan>,
    method: Method,
    version: Version,
    target: TargetSpans,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
}

/// Spare field lists shared by the connections of one server, so that parsing a head
/// allocates nothing once warm and an idle connection holds no list.
#[derive(Debug, Default)]
pub(crate) struct FieldPool {
    spare: RefCell<Vec<Vec<FieldSpan>>>,
}

/// Spare lists a pool keeps; more are freed.
const FIELD_POOL_MAX: usize = 256;

impl FieldPool {
    /// A list to parse into (empty, with the capacity of an earlier head's when pooled).
    pub(crate) fn take(&self) -> Vec<FieldSpan> {
        self.spare.borrow_mut().pop().unwrap_or_default()
    }

    /// Keeps `fields` (cleared) for a later head, unless the pool is full.
    pub(crate) fn give(&self, mut fields: Vec<FieldSpan>) {
        let mut spare = self.spare.borrow_mut();
        if fields.capacity() > 0 && fields.capacity() <= MAX_HEADERS && spare.len() < FIELD_POOL_MAX
        {
            fields.clear();
            spare.push(fields);
        }
    }
}

impl RequestHead {
    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// HTTP/1.0 or HTTP/1.1 (a higher 1.x minor version is served as 1.1).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request-target exactly as sent (origin-, absolute- or asterisk-form).
    pub fn target(&self) -> &str {
        self.str_of(self.target.target)
    }

    /// The path, still percent-encoded; `/` for an absolute-form target without a path.
    pub fn path(&self) -> &str {
        let path = self.target.path;
        if path.start == path.end {
            return "/";
        }
        self.str_of(path)
    }

    /// The query string without `?`, when the target has a `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.query.map(|q| self.str_of(q))
    }

    /// The authority of an absolute-form target, as sent (`None` for origin-form).
    pub fn authority(&self) -> Option<&str> {
        self.target.authority.map(|a| self.str_of(a))
    }

    /// The request-target parsed as an `http::Uri` (built on each call).
    pub fn uri(&self) -> Uri {
        let t = self.target.target;
        Uri::from_maybe_shared(self.bytes.slice(t.start as usize..t.end as usize))
            .unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// The first value of the field `name` (case-insensitive), as sent without surrounding
    /// whitespace.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.fields
            .iter()
            .find(|f| f.name.get(&self.bytes).eq_ignore_ascii_case(name))
            .map(|f| f.value.get(&self.bytes))
    }

    /// Every value of the field `name` (case-insensitive), in the order they were sent.
    pub fn header_all<'a>(&'a self, name: &'a str) -> HeaderValues<'a> {
        HeaderValues(ValuesInner::Head {
            bytes: &self.bytes,
            fields: self.fields.iter(),
            name: name.as_bytes(),
        })
    }

    /// Every field as `(name, value)`, in the order sent, names as sent.
    pub fn headers(&self) -> Headers<'_> {
        Headers(FieldsInner::Head {
            bytes: &self.bytes,
            fields: self.fields.iter(),
        })
    }

    /// How many header fields the head has.
    pub fn header_count(&self) -> usize {
        self.fields.len()
    }

    /// Builds an `http::HeaderMap` of the fields (values share the head's bytes).
    pub fn to_header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len());
        for f in &self.fields {
            // Names and values passed httparse's token and field-value checks, which are
            // the ones these constructors apply.
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(f.name.get(&self.bytes)),
                HeaderValue::from_maybe_shared(
                    self.bytes
                        .slice(f.value.start as usize..f.value.end as usize),
                ),
            ) else {
                continue;
            };
            map.append(name, value);
        }
        map
    }

    /// How the body is delimited.
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }

    /// Whether the client asked to keep the connection open (before the server's own say).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether the client sent `Expect: 100-continue` (HTTP/1.1 only).
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }

    /// The whole head as received (request line, fields, blank line).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Takes the field list out (for reuse by the next head).
    pub(crate) fn take_fields(&mut self) -> Vec<FieldSpan> {
        std::mem::take(&mut self.fields)
    }

    fn str_of(&self, span: Span) -> &str {
        ascii_or_utf8(span.get(&self.bytes))
    }
}

/// Targets and field names were checked to be ASCII or UTF-8 while parsing.
fn ascii_or_utf8(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).unwrap_or("")
}

/// The values of one header field, in order (see [`RequestHead::header_all`]).
#[derive(Debug)]
pub struct HeaderValues<'a>(ValuesInner<'a>);

#[derive(Debug)]
enum ValuesInner<'a> {
    Head {
        bytes: &'a [u8],
        fields: std::slice::Iter<'a, FieldSpan>,
        name: &'a [u8],
    },
    Map(http::header::ValueIter<'a, HeaderValue>),
}

impl<'a> HeaderValues<'a> {
    /// The values of `name` in an `http` map (for a request whose fields were edited).
    pub(crate) fn of_map(map: &'a HeaderMap, name: &str) -> HeaderValues<'a> {
        HeaderValues(ValuesInner::Map(map.get_all(name).iter()))
    }
}

impl<'a> Iterator for HeaderValues<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            ValuesInner::Head {
                bytes,
                fields,
                name,
            } => fields
                .find(|f| f.name.get(bytes).eq_ignore_ascii_case(name))
                .map(|f| f.value.get(bytes)),
            ValuesInner::Map(values) => values.next().map(HeaderValue::as_bytes),
        }
    }
}

/// Every header field as `(name, value)`, in order (see [`RequestHead::headers`]).
#[derive(Debug)]
pub struct Headers<'a>(FieldsInner<'a>);

#[derive(Debug)]
enum FieldsInner<'a> {
    Head {
        bytes: &'a [u8],
        fields: std::slice::Iter<'a, FieldSpan>,
    },
    Map(http::header::Iter<'a, HeaderValue>),
}

impl<'a> Headers<'a> {
    /// The fields of an `http` map (for a request whose fields were edited).
    pub(crate) fn of_map(map: &'a HeaderMap) -> Headers<'a> {
        Headers(FieldsInner::Map(map.iter()))
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<(&'a str, &'a [u8])> {
        match &mut self.0 {
            FieldsInner::Head { bytes, fields } => fields
                .next()
                .map(|f| (ascii_or_utf8(f.name.get(bytes)), f.value.get(bytes))),
            FieldsInner::Map(fields) => fields.next().map(|(n, v)| (n.as_str(), v.as_bytes())),
        }
    }
}

/// Parses the head occupying `buf[..head_len]` (which must end in its blank line), splits
/// it off `buf`, and returns the validated head. `fields` is a list to reuse (it is cleared).
///
/// One pass: httparse runs over the split-off head with uninitialised field slots (nothing is
/// zeroed per request), and each field's position goes into `fields`.
pub fn parse_request_head(
    buf: &mut BytesMut,
    head_len: usize,
    fields: Vec<FieldSpan>,
) -> Result<RequestHead, RequestError> {
    parse_head(buf.split_to(head_len).freeze(), fields)
}

fn parse_head(head: Bytes, mut fields: Vec<FieldSpan>) -> Result<RequestHead, RequestError> {
    if head.len() > u32::MAX as usize {
        return Err(RequestError::HeadTooLarge {
            limit: u32::MAX as usize,
        });
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    if let Some(minor_at) = check_parse(req.parse_with_uninit_headers(&head, &mut slots), &head)? {
        // RFC 9110 §2.5: a higher minor version of a major version we implement is processed
        // as the highest minor we implement, HTTP/1.1.
        let mut patched = BytesMut::from(&head[..]);
        patched[minor_at] = b'1';
        return parse_head(patched.freeze(), fields);
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
    let target = Span::of(base, target.as_bytes());

    fields.clear();
    fields.reserve(req.headers.len());
    let mut facts = Facts::default();
    for field in req.headers.iter() {
        let name = field.name.as_bytes();
        if name.is_empty() {
            return Err(RequestError::BadSyntax("invalid field name"));
        }
        facts.observe(name, field.value)?;
        fields.push(FieldSpan {
            name: Span::of(base, name),
            value: Span::of(base, field.value),
        });
    }

    let framing = facts.framing(version, &head, &fields)?;
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
    let target = parse_target(&head, target, &method)?;

    let keep_alive = if version == Version::HTTP_11 {
        !facts.conn_close
    } else {
        facts.conn_keep_alive && !facts.conn_close
    };
    Ok(RequestHead {
        bytes: head,
        fields,
        method,
        version,
        target,
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

/// Facts about the head gathered while its fields are indexed.
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

    fn framing(
        &self,
        version: Version,
        head: &[u8],
        fields: &[FieldSpan],
    ) -> Result<BodyFraming, RequestError> {
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
            let values = fields
                .iter()
                .filter(|f| f.name.get(head).eq_ignore_ascii_case(b"transfer-encoding"))
                .map(|f| f.value.get(head));
            check_request_transfer_encoding(values)?;
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

/// Checks the request-target form against the method (RFC 9112 §3.2) and finds its parts.
///
/// Origin-form, the usual case, is checked in one pass over its bytes with the same byte
/// classes as `http::uri::PathAndQuery` (so the set of targets accepted is unchanged) and no
/// `Uri` is built; the rare other forms are parsed as a `Uri` to validate them.
fn parse_target(head: &Bytes, target: Span, method: &Method) -> Result<TargetSpans, RequestError> {
    let raw = target.get(head);
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
        return Ok(TargetSpans {
            target,
            path: target,
            query: None,
            authority: None,
        });
    }
    if raw.starts_with(b"/") && method != Method::CONNECT {
        let query_at =
            scan_origin_form(raw).ok_or(RequestError::BadTarget("unparseable request-target"))?;
        return Ok(origin_spans(target, query_at, None));
    }
    let uri = Uri::from_maybe_shared(head.slice(target.start as usize..target.end as usize))
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
            Ok(absolute_spans(raw, target))
        }
        Some(_) => Err(RequestError::BadTarget(
            "absolute-form with a scheme other than http(s)",
        )),
        None => Err(RequestError::BadTarget(
            "request-target is not origin- or absolute-form",
        )),
    }
}

/// The parts of `[path][?query]` starting at `target.start`, `?` at `query_at` (relative).
fn origin_spans(target: Span, query_at: Option<usize>, authority: Option<Span>) -> TargetSpans {
    let (path, query) = match query_at {
        None => (target, None),
        Some(q) => {
            let q = target.start + q as u32;
            (
                Span {
                    start: target.start,
                    end: q,
                },
                Some(Span {
                    start: q + 1,
                    end: target.end,
                }),
            )
        }
    };
    TargetSpans {
        target,
        path,
        query,
        authority,
    }
}

/// The parts of a validated absolute-form target `scheme "://" authority [path] [?query]`.
fn absolute_spans(raw: &[u8], target: Span) -> TargetSpans {
    let after_scheme = memchr::memmem::find(raw, b"://").map_or(0, |i| i + 3);
    let authority_len = raw[after_scheme..]
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(raw.len() - after_scheme);
    let rest = after_scheme + authority_len;
    let authority = Span {
        start: target.start + after_scheme as u32,
        end: target.start + rest as u32,
    };
    let tail = Span {
        start: target.start + rest as u32,
        end: target.end,
    };
    let query_at = memchr::memchr(b'?', &raw[rest..]);
    origin_spans(tail, query_at, Some(authority)).with_target(target)
}

impl TargetSpans {
    fn with_target(mut self, target: Span) -> TargetSpans {
        self.target = target;
        self
    }
}

/// Byte classes of an origin-form target, as `http::uri::PathAndQuery` has them.
const PATH_VALID: u8 = 1;
const QUERY_VALID: u8 = 2;
const HIGH: u8 = 4;
static TARGET_CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        // Bytes a path may hold unescaped, plus `"`, `{` and `}`, which clients send as is.
        if matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E)
            || matches!(b, b'"' | b'{' | b'}')
        {
            class |= PATH_VALID;
        }
        // Bytes a query may hold (WHATWG query state).
        if matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E) {
            class |= QUERY_VALID;
        }
        if b >= 0x80 {
            class |= HIGH | PATH_VALID | QUERY_VALID;
        }
        t[i] = class;
        i += 1;
    }
    t
};

/// Checks an origin-form target (it starts with `/` and holds no `#`): `Some(position of
/// the first '?')` or `Some(None)` when it is valid, `None` when `Uri` would refuse it.
fn scan_origin_form(raw: &[u8]) -> Option<Option<usize>> {
    let mut high = 0;
    let mut query_at = None;
    for (i, &b) in raw.iter().enumerate() {
        let class = TARGET_CLASSES[usize::from(b)];
        high |= class;
        if b == b'?' {
            query_at = Some(i);
            break;
        }
        if class & PATH_VALID == 0 {
            return None;
        }
    }
    if let Some(q) = query_at {
        for &b in &raw[q + 1..] {
            let class = TARGET_CLASSES[usize::from(b)];
            high |= class;
            if class & QUERY_VALID == 0 {
                return None;
            }
        }
    }
    if high & HIGH != 0 && core::str::from_utf8(raw).is_err() {
        return None;
    }
    Some(query_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(text: &[u8]) -> Result<RequestHead, RequestError> {
        parse_head(Bytes::copy_from_slice(text), Vec::new())
    }

    #[test]
    fn origin_form_accepts_exactly_what_uri_accepts() {
        // Every byte in the path, and in the query, against `Uri`'s verdict.
        for b in 0u8..=255 {
            for shape in [&b"/a{}b"[..], b"/a?x{}y"] {
                let mut target = Vec::new();
                for &c in shape {
                    if c == b'{' {
                        target.push(b);
                    } else if c != b'}' {
                        target.push(c);
                    }
                }
                if target.contains(&b'#') {
                    continue;
                }
                let ours = scan_origin_form(&target).is_some();
                let theirs = Uri::from_maybe_shared(Bytes::from(target.clone())).is_ok();
                assert_eq!(ours, theirs, "target {target:?}");
            }
        }
        for text in ["/é?ü=1", "/\u{7f}"] {
            let theirs = Uri::try_from(text).is_ok();
            assert_eq!(
                scan_origin_form(text.as_bytes()).is_some(),
                theirs,
                "{text}"
            );
        }
        assert!(scan_origin_form(b"/\xff").is_none());
    }

    #[test]
    fn head_reads_target_parts_and_fields_from_its_bytes() {
        let h =
            head_of(b"GET /p/q?a=1&b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a:  2 \r\n\r\n").unwrap();
        assert_eq!(h.method(), Method::GET);
        assert_eq!(h.target(), "/p/q?a=1&b");
        assert_eq!((h.path(), h.query()), ("/p/q", Some("a=1&b")));
        assert_eq!(h.header("X-a"), Some(&b"1"[..]));
        assert_eq!(h.header_all("x-A").collect::<Vec<_>>(), [&b"1"[..], b"2"]);
        assert_eq!(h.header("missing"), None);
        let names: Vec<_> = h.headers().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "X-A", "x-a"]);
        assert_eq!(h.to_header_map().get_all("x-a").iter().count(), 2);
    }

    #[test]
    fn absolute_form_keeps_scheme_and_host_case_as_sent() {
        let h = head_of(b"GET HTTP://Example.COM:80?q HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(h.target(), "HTTP://Example.COM:80?q");
        assert_eq!(h.authority(), Some("Example.COM:80"));
        assert_eq!((h.path(), h.query()), ("/", Some("q")));
        let h = head_of(b"GET http://a.b/c/d HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            (h.path(), h.query(), h.authority()),
            ("/c/d", None, Some("a.b"))
        );
        let h = head_of(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((h.target(), h.path()), ("*", "*"));
    }
}

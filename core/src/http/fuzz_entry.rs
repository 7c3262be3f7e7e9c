//! Bodies of the fuzz targets, shared by `fuzz/` and the corpus replay test, plus the
//! transcript driver the tests use (feed bytes in given splits, answer every request).
//!
//! Every entry point compares a split run with a whole run: the machine's observable
//! behaviour (events and output bytes) must not depend on how input was chunked.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::framing::{encode_chunk, encode_last_chunk, ChunkedDecoder, Decoded};
use super::{AfterResponse, HttpConfig, RequestError, ServerConn, ServerEvent};

/// The `k`-th piece size of a split schedule (cycled; 0 and a missing schedule are
/// `default`, at least 1): how the fuzz entries cut their input.
pub(crate) fn piece_size(sizes: &[usize], k: usize, default: usize) -> usize {
    sizes
        .get(k % sizes.len().max(1))
        .copied()
        .unwrap_or(default)
        .max(1)
}

/// One observable event, with consecutive body pieces merged (their split is not observable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// A request head: `METHOD target version` and its fields.
    Head(String),
    /// Body bytes (merged).
    Data(Vec<u8>),
    /// End of body, with a rendering of the trailers.
    End(Option<String>),
    /// An error event and its status.
    Error(StatusCode),
    /// The machine paused with a request complete (the driver answers at `End`, so this is a bug).
    Paused,
    /// The machine said nothing more will be read.
    Closed,
    /// `send_end` said to close.
    CloseAfterResponse,
}

/// What a driven connection did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transcript {
    /// Events in order.
    pub events: Vec<Ev>,
    /// Every byte the machine wrote.
    pub output: Vec<u8>,
    /// Bytes left unconsumed in the read buffer at the end (0 after an error).
    pub leftover: usize,
    /// For each response written, whether it answered a HEAD request (so has no body).
    pub head_responses: Vec<bool>,
}

/// A small-limit configuration that lets fuzzing reach every limit quickly.
pub fn fuzz_config() -> HttpConfig {
    HttpConfig {
        max_header_size: 1024,
        max_body_size: 4096,
        max_chunk_line_size: 64,
        max_trailer_size: 256,
        ..HttpConfig::default()
    }
}

/// Feeds `input` in pieces of the given sizes (cycled; 0 means 1), then EOF, answering
/// each request at its `End` (alternating Content-Length and chunked echo responses) and
/// each error with `send_error`.
pub fn drive(config: &Arc<HttpConfig>, input: &[u8], sizes: &[usize]) -> Transcript {
    let mut driver = Driver {
        conn: ServerConn::new(config.clone()),
        t: Transcript::default(),
        body: Vec::new(),
        answered: 0,
        stopped: false,
        is_head: false,
    };
    let mut buf = BytesMut::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < input.len() && !driver.stopped {
        let size = piece_size(sizes, k, input.len());
        let end = (pos + size).min(input.len());
        buf.extend_from_slice(&input[pos..end]);
        pos = end;
        k += 1;
        driver.pump(&mut buf);
    }
    if !driver.stopped {
        driver.conn.handle_eof();
        driver.pump(&mut buf);
    }
    // After an error the unread rest is irrelevant (and depends on where input was split).
    let failed = driver.t.events.iter().any(|e| matches!(e, Ev::Error(_)));
    driver.t.leftover = if failed {
        0
    } else {
        buf.len() + (input.len() - pos)
    };
    driver.t
}

struct Driver {
    conn: ServerConn,
    t: Transcript,
    body: Vec<u8>,
    answered: usize,
    stopped: bool,
    is_head: bool,
}

impl Driver {
    fn pump(&mut self, buf: &mut BytesMut) {
        // Each round consumes input or changes state; a round limit guards against a
        // machine bug that would spin (reported as a failure, not a hang).
        for _ in 0..(buf.len() * 4 + 64) {
            match self.conn.poll_event(buf) {
                ServerEvent::Head(head) => {
                    let mut text =
                        format!("{} {} {:?}", head.method(), head.target(), head.version());
                    for (n, v) in &head.to_header_map() {
                        text.push_str(&format!(" {}={:?}", n, v));
                    }
                    self.t.events.push(Ev::Head(text));
                    self.body.clear();
                    self.is_head = head.method() == http::Method::HEAD;
                    self.conn.recycle_head(head);
                    self.conn.accept_body(&mut self.t.output);
                }
                ServerEvent::Data(d) => {
                    self.body.extend_from_slice(&d);
                    match self.t.events.last_mut() {
                        Some(Ev::Data(prev)) => prev.extend_from_slice(&d),
                        _ => self.t.events.push(Ev::Data(d.to_vec())),
                    }
                }
                ServerEvent::End(trailers) => {
                    self.t
                        .events
                        .push(Ev::End(trailers.map(|t| format!("{t:?}"))));
                    self.answer();
                }
                ServerEvent::Error(e) => {
                    self.t.events.push(Ev::Error(e.status()));
                    self.t.head_responses.push(self.is_head);
                    let r = self.conn.send_error(e.status(), None, &mut self.t.output);
                    assert_eq!(
                        r,
                        Ok(AfterResponse::Close),
                        "answering {e} must succeed and close"
                    );
                }
                ServerEvent::NeedData => return,
                ServerEvent::Paused => {
                    self.t.events.push(Ev::Paused);
                    self.stopped = true;
                    return;
                }
                ServerEvent::Closed | ServerEvent::Upgraded => {
                    self.t.events.push(Ev::Closed);
                    self.stopped = true;
                    return;
                }
            }
        }
        panic!("server machine made no progress");
    }

    fn answer(&mut self) {
        self.answered += 1;
        self.t
            .head_responses
            .push(std::mem::take(&mut self.is_head));
        let body = Bytes::from(std::mem::take(&mut self.body));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if self.answered % 2 == 1 {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let out = &mut self.t.output;
        self.conn
            .send_response(StatusCode::OK, &headers, None, out)
            .expect("response head accepted");
        let half = body.len() / 2;
        self.conn
            .send_data(body.slice(..half), out)
            .expect("first half accepted");
        self.conn
            .send_data(body.slice(half..), out)
            .expect("second half accepted");
        match self.conn.send_end(out).expect("response end accepted") {
            AfterResponse::KeepAlive => {}
            AfterResponse::Close => self.t.events.push(Ev::CloseAfterResponse),
        }
    }
}

/// Splits fuzz input into chunk sizes (from the first bytes) and the payload.
pub fn split_sizes(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (vec![1], data);
    };
    let n = (n as usize % 8 + 1).min(rest.len());
    let sizes = rest[..n].iter().map(|&b| b as usize % 64 + 1).collect();
    (sizes, &rest[n..])
}

/// Fuzz target `http_request`: arbitrary bytes in arbitrary splits must give the same
/// events and output as the whole input, never panic, and never leave the machine spinning.
pub fn http_request(data: &[u8]) {
    let (sizes, input) = split_sizes(data);
    let config = Arc::new(fuzz_config());
    let whole = drive(&config, input, &[input.len().max(1)]);
    let split = drive(&config, input, &sizes);
    assert_eq!(whole, split, "split run differs from whole run");
    check_responses_parse(&whole.output, &whole.head_responses);
}

/// Checks that the output is a sequence of well-formed responses (heads parse; bodies
/// frame; close-delimited only last); `head_responses` says which answered HEAD.
pub fn check_responses_parse(mut out: &[u8], head_responses: &[bool]) {
    let mut finals = head_responses.iter();
    while !out.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut fields);
        let n = match resp.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("unparseable response head: {other:?}"),
        };
        let code = resp.code.unwrap_or(0);
        let mut length = None;
        let mut chunked = false;
        let mut close = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
            }
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = true;
            }
            if h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            }
        }
        out = &out[n..];
        if (100..200).contains(&code) {
            continue;
        }
        let is_head = *finals.next().expect("more responses than answers");
        if is_head || code == 204 || code == 304 {
            continue;
        }
        if chunked {
            let mut buf = BytesMut::from(out);
            let mut dec = ChunkedDecoder::new(64, 256);
            loop {
                match dec
                    .decode(&mut buf, u64::MAX)
                    .expect("our chunked output decodes")
                {
                    Decoded::End(_) => break,
                    Decoded::NeedData => panic!("truncated chunked response"),
                    Decoded::Data(_) => {}
                }
            }
            out = &out[out.len() - buf.len()..];
        } else if let Some(len) = length {
            assert!(
                out.len() >= len,
                "response body shorter than Content-Length"
            );
            out = &out[len..];
        } else {
            assert!(
                close,
                "a close-delimited response must say Connection: close"
            );
            assert!(
                finals.next().is_none(),
                "a close-delimited response must be the last"
            );
            return;
        }
    }
}

/// Decodes `input` fed in the given piece sizes; returns the body and the outcome.
pub fn decode_chunked(
    input: &[u8],
    sizes: &[usize],
    max_body: u64,
) -> (Vec<u8>, Result<usize, RequestError>) {
    let mut dec = ChunkedDecoder::new(64, 256);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let (mut pos, mut k) = (0, 0);
    loop {
        match dec.decode(&mut buf, max_body) {
            Ok(Decoded::Data(d)) => body.extend_from_slice(&d),
            Ok(Decoded::End(_)) => return (body, Ok(buf.len() + input.len() - pos)),
            Ok(Decoded::NeedData) if pos == input.len() => {
                return (body, Err(RequestError::Incomplete))
            }
            Ok(Decoded::NeedData) => {
                let size = piece_size(sizes, k, 1);
                let end = (pos + size).min(input.len());
                buf.extend_from_slice(&input[pos..end]);
                pos = end;
                k += 1;
            }
            Err(e) => return (body, Err(e)),
        }
    }
}

/// Fuzz target `chunked_decoder`: split and whole decoding agree; a decoded body
/// re-encodes and decodes to itself.
pub fn chunked_decoder(data: &[u8]) {
    let (sizes, input) = split_sizes(data);
    let whole = decode_chunked(input, &[input.len().max(1)], 1 << 20);
    let split = decode_chunked(input, &sizes, 1 << 20);
    assert_eq!(whole, split, "split decoding differs from whole decoding");
    if whole.1.is_ok() {
        let body = Bytes::from(whole.0.clone());
        let mut encoded = Vec::new();
        let mut start = 0;
        for &s in sizes.iter().cycle().take(body.len() + 1) {
            if start >= body.len() {
                break;
            }
            let end = (start + s).min(body.len());
            encode_chunk(body.slice(start..end), &mut encoded);
            start = end;
        }
        encode_last_chunk(&mut encoded);
        let again = decode_chunked(&encoded, &[7], 1 << 20);
        assert_eq!(
            again,
            (whole.0, Ok(0)),
            "re-encoded body does not round-trip"
        );
    }
}

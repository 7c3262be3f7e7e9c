//! Message framing rules (RFC 9112 §6-§7): Content-Length and Transfer-Encoding checks,
//! the strict head-end scanner, and the chunked body decoder and encoder.
//!
//! One owner for framing: the server machine (and later the client) use only these.
//! Never buffers without bound: every line it waits for has a limit.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

use super::error::RequestError;
use super::sink::ResponseSink;
use crate::stream::Chunk;

/// Most trailer fields accepted after a chunked body.
pub const MAX_TRAILER_FIELDS: usize = 32;

/// True for `tchar` (RFC 9110 §5.6.2), the bytes of a token.
pub fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims optional whitespace (SP / HTAB) from both ends.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Iterates the elements of a comma-separated header list (RFC 9110 §5.6.1), trimmed,
/// skipping empty elements as recipients must.
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// True when a token list header (e.g. Connection) contains `token`, ASCII case-insensitively.
pub fn list_contains(value: &[u8], token: &[u8]) -> bool {
    list_elements(value).any(|e| e.eq_ignore_ascii_case(token))
}

/// Parses `1*DIGIT` strictly: no sign, no whitespace, no hex, overflow rejected.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Parses one Content-Length field value. A list of identical values (`5, 5`) is accepted
/// as RFC 9112 §6.3 allows; differing values, signs, hex and overflow are rejected.
pub fn parse_content_length(value: &[u8]) -> Result<u64, RequestError> {
    let mut result: Option<u64> = None;
    for element in value.split(|&b| b == b',') {
        let n = parse_decimal(trim_ows(element)).ok_or(RequestError::BadFraming(
            "Content-Length is not a decimal number",
        ))?;
        match result {
            Some(prev) if prev != n => {
                return Err(RequestError::BadFraming(
                    "conflicting Content-Length values",
                ))
            }
            _ => result = Some(n),
        }
    }
    result.ok_or(RequestError::BadFraming("empty Content-Length"))
}

/// Checks the Transfer-Encoding field values of a request: the only coding served is a
/// single, final `chunked` (RFC 9112 §6.1, §6.3 item 4).
pub fn check_request_transfer_encoding<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<(), RequestError> {
    let mut codings = 0usize;
    let mut last_is_chunked = false;
    let mut chunked_seen = false;
    let mut unknown_seen = false;
    for value in values {
        for element in value.split(|&b| b == b',') {
            let element = trim_ows(element);
            if element.is_empty() {
                continue;
            }
            if !element.iter().all(|&b| is_tchar(b)) {
                return Err(RequestError::BadFraming("malformed Transfer-Encoding"));
            }
            codings += 1;
            last_is_chunked = element.eq_ignore_ascii_case(b"chunked");
            if last_is_chunked {
                if chunked_seen {
                    return Err(RequestError::BadFraming("chunked applied more than once"));
                }
                chunked_seen = true;
            } else {
                unknown_seen = true;
            }
        }
    }
    if codings == 0 {
        return Err(RequestError::BadFraming("empty Transfer-Encoding"));
    }
    if !last_is_chunked {
        // §6.3 item 4: the length of such a request cannot be determined.
        return Err(RequestError::BadFraming(
            "final transfer coding is not chunked",
        ));
    }
    if unknown_seen {
        return Err(RequestError::UnsupportedTransferCoding);
    }
    Ok(())
}

/// Where a strict head scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadScan {
    /// The head ends at this offset (just past its blank line).
    Complete(usize),
    /// No blank line yet; resume scanning from this offset.
    Partial(usize),
}

/// Scans `buf[from..]` for the `CRLF CRLF` ending a head, rejecting bare CR and bare LF.
///
/// `from` must be a value previously returned in [`HeadScan::Partial`] (or 0); the scan
/// only looks back at bytes it has already validated, so resuming is exact.
pub fn scan_head_end(buf: &[u8], from: usize) -> Result<HeadScan, &'static str> {
    let mut pos = from;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &buf[pos..]) {
        let p = pos + off;
        if buf[p] == b'\n' {
            return Err("bare LF in head");
        }
        match buf.get(p + 1) {
            None => return Ok(HeadScan::Partial(p)),
            Some(b'\n') => {}
            Some(_) => return Err("bare CR in head"),
        }
        if p >= 2 && &buf[p - 2..p] == b"\r\n" {
            return Ok(HeadScan::Complete(p + 2));
        }
        pos = p + 2;
    }
    Ok(HeadScan::Partial(buf.len()))
}

/// Builds a header map from httparse fields, validating names and values (httparse lets
/// some bytes through, e.g. obs-text; `http` rejects NUL and other controls).
///
/// A value holding an obs-fold (only a response parser lets one through; RFC 9112 §5.2 has a
/// user agent replace it with SP) is unfolded first.
pub fn fields_to_map(
    fields: &[httparse::Header<'_>],
    map: &mut HeaderMap,
) -> Result<(), &'static str> {
    map.reserve(fields.len());
    for field in fields {
        let name =
            HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| "invalid field name")?;
        let value = if field.value.contains(&b'\r') {
            HeaderValue::from_bytes(&unfold(field.value))
        } else {
            HeaderValue::from_bytes(field.value)
        }
        .map_err(|_| "invalid field value")?;
        map.append(name, value);
    }
    Ok(())
}

/// Replaces every obs-fold (`OWS CRLF 1*(SP / HTAB)`, RFC 9112 §5.2) in a field value with
/// a single SP. Any other CR or LF is kept, so that the value is then rejected.
fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let fold = value[i] == b'\r'
            && value.get(i + 1) == Some(&b'\n')
            && matches!(value.get(i + 2), Some(b' ' | b'\t'));
        if !fold {
            out.push(value[i]);
            i += 1;
            continue;
        }
        while matches!(out.last(), Some(b' ' | b'\t')) {
            out.pop();
        }
        out.push(b' ');
        i += 2;
        while matches!(value.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
    }
    out
}

/// What one [`ChunkedDecoder::decode`] call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes, split off the input buffer without copying.
    Data(Bytes),
    /// The buffer is exhausted; call again with more bytes.
    NeedData,
    /// The body ended; trailer fields if there were any.
    End(Option<HeaderMap>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex chunk-size.
    Size { size: u64, digits: u32 },
    /// Whitespace after chunk-size (BWS before `;` or CRLF).
    SizeWs { size: u64 },
    /// Inside chunk extensions (validated, then ignored).
    Ext { size: u64, at: ExtPos },
    /// Saw the CR ending the chunk-size line.
    SizeLf { size: u64 },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// In the trailer section (after the last chunk); `scanned` is the resume offset.
    Trailers { scanned: usize },
    /// The body ended.
    Done,
}

/// Where a chunk-size line's extensions are (RFC 9112 §7.1.1):
/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtPos {
    /// After `;`: whitespace, then a name.
    BeforeName,
    /// In a name.
    Name,
    /// Whitespace after a name: `=` or `;` must follow.
    AfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    BeforeValue,
    /// In a token value.
    Token,
    /// In a quoted-string value.
    Quoted,
    /// After a backslash in a quoted string.
    QuotedPair,
    /// After a value (and whitespace): `;` must follow, or the line ends right after it.
    AfterValue { ws: bool },
}

/// Incremental decoder of the chunked transfer coding (RFC 9112 §7.1).
///
/// Strict: hex sizes with overflow check, extensions bounded and ignored, CRLF required
/// after data and on every line, trailers bounded and returned as a header map.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line_len: usize,
    decoded: u64,
    max_line: usize,
    max_trailer: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body with the given line and trailer limits.
    pub fn new(max_chunk_line_size: usize, max_trailer_size: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size { size: 0, digits: 0 },
            line_len: 0,
            decoded: 0,
            max_line: max_chunk_line_size,
            max_trailer: max_trailer_size,
        }
    }

    /// Body bytes decoded so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// True once the last chunk and trailers were consumed.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// True while in the middle of chunk data (the next input byte is body data).
    pub fn in_data(&self) -> bool {
        matches!(self.state, ChunkState::Data { .. })
    }

    /// Consumes framing from `buf` and returns the next piece of body, `NeedData` or the end.
    ///
    /// `max_body` bounds the total decoded size: a chunk that would cross it is a
    /// [`RequestError::BodyTooLarge`] before any of its data is returned.
    pub fn decode(&mut self, buf: &mut BytesMut, max_body: u64) -> Result<Decoded, RequestError> {
        let mut i = 0;
        loop {
            match self.state {
                ChunkState::Data { remaining } => {
                    buf.advance(i);
                    if buf.is_empty() {
                        return Ok(Decoded::NeedData);
                    }
                    let n = remaining.min(buf.len() as u64);
                    let data = buf.split_to(n as usize).freeze();
                    self.decoded += n;
                    self.state = if remaining == n {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data {
                            remaining: remaining - n,
                        }
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::Trailers { scanned } => {
                    buf.advance(i);
                    return self.decode_trailers(buf, scanned);
                }
                ChunkState::Done => {
                    buf.advance(i);
                    return Ok(Decoded::End(None));
                }
                _ => {}
            }
            let Some(&b) = buf.get(i) else {
                buf.advance(i);
                return Ok(Decoded::NeedData);
            };
            i += 1;
            self.step_line(b, max_body)?;
        }
    }

    /// Advances the chunk-size line and CRLF states by one byte.
    fn step_line(&mut self, b: u8, max_body: u64) -> Result<(), RequestError> {
        use ChunkState::*;
        if matches!(self.state, Size { .. } | SizeWs { .. } | Ext { .. }) {
            self.line_len += 1;
            if self.line_len > self.max_line {
                return Err(RequestError::BadChunk("chunk-size line too long"));
            }
        }
        self.state = match (self.state, b) {
            (Size { size, digits }, b) if b.is_ascii_hexdigit() => {
                let d = (b as char).to_digit(16).unwrap_or(0);
                let size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(d)))
                    .ok_or(RequestError::BadChunk("chunk size overflows"))?;
                Size {
                    size,
                    digits: digits + 1,
                }
            }
            (Size { digits: 0, .. }, _) => {
                return Err(RequestError::BadChunk("chunk size is not hexadecimal"))
            }
            (Size { size, .. } | SizeWs { size }, b' ' | b'\t') => SizeWs { size },
            (Size { size, .. } | SizeWs { size }, b';') => Ext {
                size,
                at: ExtPos::BeforeName,
            },
            // RFC 9112 §7.1.1: whitespace after the size is allowed only before an extension
            // (BWS ";"); a lenient reading of "5 \r\n" is a known parser discrepancy.
            (SizeWs { .. }, b'\r') => {
                return Err(RequestError::BadChunk(
                    "whitespace after chunk size without an extension",
                ))
            }
            (Size { size, .. }, b'\r') => SizeLf { size },
            (Size { .. } | SizeWs { .. }, _) => {
                return Err(RequestError::BadChunk("invalid byte after chunk size"))
            }
            (Ext { size, at }, b) => match step_extension(at, b)? {
                Some(at) => Ext { size, at },
                None => SizeLf { size },
            },
            (SizeLf { size }, b'\n') => {
                self.line_len = 0;
                if size == 0 {
                    Trailers { scanned: 0 }
                } else {
                    if self.decoded.saturating_add(size) > max_body {
                        return Err(RequestError::BodyTooLarge { limit: max_body });
                    }
                    Data { remaining: size }
                }
            }
            (SizeLf { .. }, _) => {
                return Err(RequestError::BadChunk("CR without LF in chunk line"))
            }
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(RequestError::BadChunk("missing CRLF after chunk data")),
            (DataLf, b'\n') => Size { size: 0, digits: 0 },
            (DataLf, _) => return Err(RequestError::BadChunk("missing LF after chunk data")),
            (Data { .. } | Trailers { .. } | Done, _) => self.state,
        };
        Ok(())
    }

    fn decode_trailers(
        &mut self,
        buf: &mut BytesMut,
        scanned: usize,
    ) -> Result<Decoded, RequestError> {
        match buf.first() {
            None => return Ok(Decoded::NeedData),
            Some(b'\r') if buf.len() == 1 => return Ok(Decoded::NeedData),
            Some(b'\r') if buf[1] == b'\n' => {
                buf.advance(2);
                self.state = ChunkState::Done;
                return Ok(Decoded::End(None));
            }
            _ => {}
        }
        let window = buf.len().min(self.max_trailer);
        let end = match scan_head_end(&buf[..window], scanned).map_err(RequestError::BadChunk)? {
            HeadScan::Complete(end) => end,
            HeadScan::Partial(resume) => {
                if buf.len() >= self.max_trailer {
                    return Err(RequestError::BadChunk("trailer section too large"));
                }
                self.state = ChunkState::Trailers { scanned: resume };
                return Ok(Decoded::NeedData);
            }
        };
        let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
        let parsed = match httparse::parse_headers(&buf[..end], &mut fields) {
            Ok(httparse::Status::Complete((n, parsed))) if n == end => parsed,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(RequestError::BadChunk("too many trailer fields"))
            }
            _ => return Err(RequestError::BadChunk("malformed trailer field")),
        };
        let mut map = HeaderMap::new();
        fields_to_map(parsed, &mut map).map_err(RequestError::BadChunk)?;
        buf.advance(end);
        self.state = ChunkState::Done;
        Ok(Decoded::End(Some(map)))
    }
}

/// One byte of chunk extensions; `None` when the CR ending a well-formed line was seen.
///
/// Strict on purpose: extensions are ignored, but a recipient that skips anything up to CR
/// and one that parses them disagree on malformed ones, which is how chunked bodies get
/// smuggled.
fn step_extension(at: ExtPos, b: u8) -> Result<Option<ExtPos>, RequestError> {
    use ExtPos::*;
    let ws = b == b' ' || b == b'\t';
    let next = match (at, b) {
        (BeforeName, _) if ws => BeforeName,
        (BeforeName | Name, _) if is_tchar(b) => Name,
        (Name | AfterName, _) if ws => AfterName,
        (Name | AfterName, b'=') => BeforeValue,
        (Name | AfterName | Token | AfterValue { .. }, b';') => BeforeName,
        (Name | Token | AfterValue { ws: false }, b'\r') => return Ok(None),
        (BeforeValue, _) if ws => BeforeValue,
        (BeforeValue, b'"') => Quoted,
        (BeforeValue | Token, _) if is_tchar(b) => Token,
        (Token | AfterValue { .. }, _) if ws => AfterValue { ws: true },
        (Quoted, b'"') => AfterValue { ws: false },
        (Quoted, b'\\') => QuotedPair,
        // qdtext: HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
        (Quoted, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff) => Quoted,
        // quoted-pair: "\" ( HTAB / SP / VCHAR / obs-text )
        (QuotedPair, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => Quoted,
        (_, b'\n') => return Err(RequestError::BadChunk("bare LF in chunk line")),
        _ => return Err(RequestError::BadChunk("malformed chunk extension")),
    };
    Ok(Some(next))
}

/// Writes one chunk (`size CRLF data CRLF`); empty data writes nothing, since an empty
/// chunk would end the body.
pub fn encode_chunk(data: impl Into<Chunk>, out: &mut impl ResponseSink) {
    let data = data.into();
    if data.is_empty() {
        return;
    }
    let mut line = [0u8; 18];
    let n = write_hex_line(data.len() as u64, &mut line);
    out.put_slice(&line[..n]);
    out.put_chunk(data);
    out.put_slice(b"\r\n");
}

/// Writes the last chunk and an empty trailer section.
pub fn encode_last_chunk(out: &mut impl ResponseSink) {
    out.put_slice(b"0\r\n\r\n");
}

/// Writes `n` as lowercase hex followed by CRLF into `line`, returning the length used.
fn write_hex_line(mut n: u64, line: &mut [u8; 18]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut len = 0;
    loop {
        digits[len] = HEX[(n & 0xf) as usize];
        len += 1;
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    for k in 0..len {
        line[k] = digits[len - 1 - k];
    }
    line[len] = b'\r';
    line[len + 1] = b'\n';
    len + 2
}

/// Writes `n` in decimal into `out` (no allocation).
pub fn put_decimal(n: u64, out: &mut impl ResponseSink) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>, usize), RequestError> {
        let mut d = ChunkedDecoder::new(4096, 4096);
        let mut buf = BytesMut::from(input);
        let mut body = Vec::new();
        loop {
            match d.decode(&mut buf, u64::MAX)? {
                Decoded::Data(b) => body.extend_from_slice(&b),
                Decoded::NeedData => return Err(RequestError::Incomplete),
                Decoded::End(t) => return Ok((body, t, buf.len())),
            }
        }
    }

    #[test]
    fn content_length_accepts_digits_and_identical_lists() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b"0005"), Ok(5));
        assert_eq!(parse_content_length(b"5, 5"), Ok(5));
        assert_eq!(parse_content_length(b"18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn content_length_rejects_signs_hex_lists_and_overflow() {
        for bad in [
            &b"+5"[..],
            b"-1",
            b"0x5",
            b"5, 6",
            b"",
            b" ",
            b"5 5",
            b"1e3",
            b"5,",
            b"18446744073709551616",
            b"99999999999999999999999",
        ] {
            assert!(
                parse_content_length(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn transfer_encoding_accepts_only_final_single_chunked() {
        assert_eq!(
            check_request_transfer_encoding([&b"chunked"[..]].into_iter()),
            Ok(())
        );
        assert_eq!(
            check_request_transfer_encoding([&b"Chunked"[..]].into_iter()),
            Ok(())
        );
        assert_eq!(
            check_request_transfer_encoding([&b"gzip, chunked"[..]].into_iter()),
            Err(RequestError::UnsupportedTransferCoding)
        );
        for bad in [
            &b"chunked, identity"[..],
            b"xchunked",
            b"chunked, chunked",
            b"identity",
            b"chunked;q=1",
            b"\"chunked\"",
            b"chun ked",
            b",",
        ] {
            let r = check_request_transfer_encoding([bad].into_iter());
            assert!(
                matches!(r, Err(RequestError::BadFraming(_))),
                "{:?} -> {r:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Split over two fields: `chunked` then `gzip` ends in gzip.
        assert!(check_request_transfer_encoding([&b"chunked"[..], b"gzip"].into_iter()).is_err());
    }

    #[test]
    fn chunked_decodes_sizes_extensions_and_trailers() {
        let (body, t, rest) =
            decode_all(b"5;ext=1\r\nhello\r\nA ;x\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT")
                .unwrap();
        assert_eq!(body, b"hello0123456789");
        assert_eq!(t.unwrap()["x-t"], "1");
        assert_eq!(rest, 4);
    }

    #[test]
    fn chunk_extensions_follow_the_grammar() {
        for ext in [
            &b";a"[..],
            b";a=b",
            b" ;a",
            b"\t; a",
            b";a=\"\"",
            b";a=\"x y;z\\\"q\"",
            b";a = b",
            b";a=b;c;d=\"e\"",
            b";a=b ;c",
            b";!#$%&'*+-.^_`|~09azAZ",
            b";a=\"\xe9\"",
        ] {
            let r = decode_all(&one_byte_chunk_with(ext));
            assert!(r.is_ok(), "{:?} -> {r:?}", String::from_utf8_lossy(ext));
        }
        for ext in [
            &b";"[..],
            b"; ",
            b";;a",
            b";a=",
            b";a= ",
            b";a=b c",
            b";a=\"bc",
            b";a=\"b\"c",
            b";a ",
            b";a=b ",
            b";=b",
            b";a@b",
            b";a=b@c",
            b";a=\"\x7f\"",
            b";a=\"\\\x01\"",
            b";\xff",
        ] {
            assert_bad_chunk(&one_byte_chunk_with(ext));
        }
    }

    /// A chunked body of one 1-byte chunk whose size line carries `ext`.
    fn one_byte_chunk_with(ext: &[u8]) -> Vec<u8> {
        let mut body = b"1".to_vec();
        body.extend_from_slice(ext);
        body.extend_from_slice(b"\r\nz\r\n0\r\n\r\n");
        body
    }

    fn assert_bad_chunk(input: &[u8]) {
        let r = decode_all(input);
        assert!(
            matches!(r, Err(RequestError::BadChunk(_))),
            "{:?} -> {r:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn chunked_rejects_overflow_prefix_missing_crlf_and_bare_lf() {
        for bad in [
            &b"fffffffffffffffff\r\n"[..],
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX0\r\n\r\n",
            b"5\nhello\n0\n\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"\r\n",
            b"-1\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nA\nB\r\n\r\n",
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"5\rhello",
            b" 5\r\nhello\r\n0\r\n\r\n",
        ] {
            assert_bad_chunk(bad);
        }
    }

    #[test]
    fn chunked_bounds_extension_and_trailer_lengths() {
        let mut long_ext = b"5;".to_vec();
        long_ext.extend(std::iter::repeat(b'a').take(5000));
        assert!(matches!(
            decode_all(&long_ext),
            Err(RequestError::BadChunk(_))
        ));
        let mut long_trailer = b"0\r\nX: ".to_vec();
        long_trailer.extend(std::iter::repeat(b'a').take(5000));
        assert!(matches!(
            decode_all(&long_trailer),
            Err(RequestError::BadChunk(_))
        ));
    }

    #[test]
    fn chunked_enforces_max_body_before_returning_data() {
        let mut d = ChunkedDecoder::new(4096, 4096);
        let mut buf = BytesMut::from(&b"4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf, 6).unwrap(),
            Decoded::Data(Bytes::from_static(b"abcd"))
        );
        assert_eq!(
            d.decode(&mut buf, 6),
            Err(RequestError::BodyTooLarge { limit: 6 })
        );
    }

    #[test]
    fn head_scan_finds_end_and_rejects_bare_cr_lf() {
        assert_eq!(
            scan_head_end(b"GET / HTTP/1.1\r\n\r\nxx", 0),
            Ok(HeadScan::Complete(18))
        );
        assert_eq!(
            scan_head_end(b"GET / HTTP/1.1\r\n\r", 0),
            Ok(HeadScan::Partial(16))
        );
        assert!(scan_head_end(b"GET / HTTP/1.1\nA: b\r\n\r\n", 0).is_err());
        assert!(scan_head_end(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 0).is_err());
    }

    #[test]
    fn encodes_chunks_in_hex() {
        let mut out = Vec::new();
        encode_chunk(Bytes::from(vec![b'x'; 255]), &mut out);
        encode_chunk(Bytes::new(), &mut out);
        encode_last_chunk(&mut out);
        assert!(out.starts_with(b"ff\r\nxxx"));
        assert!(out.ends_with(b"x\r\n0\r\n\r\n"));
        let mut dec = Vec::new();
        put_decimal(0, &mut dec);
        put_decimal(u64::MAX, &mut dec);
        assert_eq!(dec, b"018446744073709551615");
    }
}

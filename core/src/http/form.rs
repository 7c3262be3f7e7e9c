//! Request arguments: query strings and `application/x-www-form-urlencoded` bodies,
//! `multipart/form-data` bodies (RFC 7578), and bounded gzip request decompression.
//!
//! Pure parsing over `Bytes`: values share the body's buffer; malformed input is an error
//! value, never a panic; every loop is bounded by its input or a part limit.

use std::borrow::Cow;
use std::io::Read;

use bytes::Bytes;
use memchr::memmem;

use super::error::RequestError;
use super::framing::trim_ows;

/// Most parts accepted in one multipart body.
pub const MAX_MULTIPART_PARTS: usize = 10_000;
/// Largest header block of one multipart part.
pub const MAX_PART_HEADER_SIZE: usize = 8 * 1024;

/// Multi-valued `name → value` arguments in arrival order (Tornado's `Dict[str, List[bytes]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arguments {
    pairs: Vec<(String, Bytes)>,
}

impl Arguments {
    /// Parses `a=1&b=2&a=3` (query string or urlencoded body): `+` is a space, `%XX` is a
    /// byte, blank values are kept, malformed escapes stay literal, names are UTF-8 (lossy).
    pub fn parse_urlencoded(input: &[u8]) -> Arguments {
        let mut args = Arguments::default();
        for pair in input.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &b""[..]),
            };
            let name = String::from_utf8_lossy(&percent_decode(name, true)).into_owned();
            let value = match percent_decode(value, true) {
                Cow::Borrowed(v) => Bytes::copy_from_slice(v),
                Cow::Owned(v) => Bytes::from(v),
            };
            args.pairs.push((name, value));
        }
        args
    }

    /// Adds one value under `name`.
    pub fn push(&mut self, name: impl Into<String>, value: Bytes) {
        self.pairs.push((name.into(), value));
    }

    /// The last value of `name` (Tornado's `get_argument` picks the last).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The last value of `name` as text (invalid UTF-8 replaced).
    pub fn get_str(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(|v| String::from_utf8_lossy(v))
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Every `(name, value)` pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Decodes `%XX` escapes (and `+` as space when `plus_as_space`); invalid escapes stay as is.
pub fn percent_decode(input: &[u8], plus_as_space: bool) -> Cow<'_, [u8]> {
    if !input
        .iter()
        .any(|&b| b == b'%' || (plus_as_space && b == b'+'))
    {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        match b {
            b'%' if i + 2 < input.len()
                && hex(input[i + 1]).is_some()
                && hex(input[i + 2]).is_some() =>
            {
                out.push(hex(input[i + 1]).unwrap_or(0) << 4 | hex(input[i + 2]).unwrap_or(0));
                i += 3;
                continue;
            }
            b'+' if plus_as_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// An uploaded file from a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The client's file name (not sanitised: never use it as a path).
    pub filename: String,
    /// The part's Content-Type (`application/unknown` when absent).
    pub content_type: String,
    /// The file's bytes.
    pub body: Bytes,
}

/// Parsed form body: plain fields and uploaded files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormData {
    /// Non-file fields (urlencoded pairs or multipart parts without filename).
    pub arguments: Arguments,
    /// Multipart parts with a filename, as `(field name, file)`.
    pub files: Vec<(String, UploadedFile)>,
}

/// Parses a body according to its Content-Type: urlencoded or multipart; other types give
/// an empty [`FormData`].
pub fn parse_body(content_type: &[u8], body: &Bytes) -> Result<FormData, RequestError> {
    let (media, mut params) = split_media_type(content_type);
    if media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        return Ok(FormData {
            arguments: Arguments::parse_urlencoded(body),
            files: Vec::new(),
        });
    }
    if media.eq_ignore_ascii_case(b"multipart/form-data") {
        let boundary = params
            .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v)
            .ok_or(RequestError::BadForm(
                "multipart/form-data without boundary",
            ))?;
        return parse_multipart(boundary.as_bytes(), body);
    }
    Ok(FormData::default())
}

/// Parses a `multipart/form-data` body with the given boundary (RFC 7578, RFC 2046 §5.1).
pub fn parse_multipart(boundary: &[u8], body: &Bytes) -> Result<FormData, RequestError> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(RequestError::BadForm("boundary must be 1 to 70 bytes"));
    }
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary);
    let mut close = delimiter.clone();
    close.extend_from_slice(b"--");
    let end = memmem::rfind(body, &close).ok_or(RequestError::BadForm("no final boundary"))?;
    delimiter.extend_from_slice(b"\r\n");
    let data = &body[..end];
    let mut starts = memmem::find_iter(data, &delimiter).map(|i| i + delimiter.len());
    let Some(mut start) = starts.next() else {
        return Ok(FormData::default());
    };
    let mut form = FormData::default();
    let mut parts = 0usize;
    loop {
        let next = memmem::find(&data[start..], &delimiter).map(|i| start + i);
        let part_end = next.unwrap_or(data.len());
        parts += 1;
        if parts > MAX_MULTIPART_PARTS {
            return Err(RequestError::BadForm("too many multipart parts"));
        }
        parse_part(body, start, part_end, &mut form)?;
        match next {
            Some(n) => start = n + delimiter.len(),
            None => break,
        }
    }
    Ok(form)
}

/// Parses `body[start..end]`: part headers, blank line, content, CRLF.
fn parse_part(
    body: &Bytes,
    start: usize,
    end: usize,
    form: &mut FormData,
) -> Result<(), RequestError> {
    let part = &body[start..end];
    let eoh =
        memmem::find(part, b"\r\n\r\n").ok_or(RequestError::BadForm("part without blank line"))?;
    if eoh > MAX_PART_HEADER_SIZE {
        return Err(RequestError::BadForm("part headers too large"));
    }
    if part.len() < eoh + 6 || !part.ends_with(b"\r\n") {
        return Err(RequestError::BadForm(
            "part does not end with CRLF before the boundary",
        ));
    }
    let mut disposition: Option<&[u8]> = None;
    let mut content_type: Option<&[u8]> = None;
    for line in part[..eoh].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon =
            memchr::memchr(b':', line).ok_or(RequestError::BadForm("part header without colon"))?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-disposition") {
            disposition = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-type") {
            content_type = Some(value);
        }
    }
    let disposition =
        disposition.ok_or(RequestError::BadForm("part without Content-Disposition"))?;
    let (kind, params) = split_media_type(disposition);
    if !kind.eq_ignore_ascii_case(b"form-data") {
        return Err(RequestError::BadForm("part disposition is not form-data"));
    }
    let (mut name, mut filename) = (None, None);
    for (k, v) in params {
        if k.eq_ignore_ascii_case("name") {
            name = Some(v);
        } else if k.eq_ignore_ascii_case("filename") {
            filename = Some(v);
        }
    }
    let name = name
        .ok_or(RequestError::BadForm("part without a name"))?
        .into_owned();
    let value = body.slice(start + eoh + 4..end - 2);
    match filename {
        Some(filename) => {
            let content_type = content_type
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_else(|| "application/unknown".to_owned());
            form.files.push((
                name,
                UploadedFile {
                    filename: filename.into_owned(),
                    content_type,
                    body: value,
                },
            ));
        }
        None => form.arguments.push(name, value),
    }
    Ok(())
}

/// Splits `type/subtype; k=v; k2="v 2"` into the type and an iterator of parameters
/// (names as text, quoted values unescaped, invalid UTF-8 replaced).
pub fn split_media_type(
    value: &[u8],
) -> (&[u8], impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)>) {
    let first = memchr::memchr(b';', value).unwrap_or(value.len());
    let media = trim_ows(&value[..first]);
    let rest = &value[first..];
    (media, ParamIter { rest })
}

struct ParamIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // Skip separators; each round consumes at least one byte or ends.
            let start = self
                .rest
                .iter()
                .position(|&b| b != b';' && b != b' ' && b != b'\t')?;
            self.rest = &self.rest[start..];
            let key_end = self
                .rest
                .iter()
                .position(|&b| b == b'=' || b == b';')
                .unwrap_or(self.rest.len());
            let key = trim_ows(&self.rest[..key_end]);
            if self.rest.get(key_end) != Some(&b'=') {
                self.rest = &self.rest[key_end..];
                continue;
            }
            let after = &self.rest[key_end + 1..];
            let after = trim_ows_start(after);
            let (value, consumed): (Cow<'a, [u8]>, usize) = if after.first() == Some(&b'"') {
                let (v, n) = unquote(&after[1..]);
                (v, n + 1)
            } else {
                let n = after.iter().position(|&b| b == b';').unwrap_or(after.len());
                (Cow::Borrowed(trim_ows(&after[..n])), n)
            };
            self.rest = &after[consumed..];
            let key = String::from_utf8_lossy(key);
            let value = match value {
                Cow::Borrowed(b) => String::from_utf8_lossy(b),
                Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
            };
            return Some((key, value));
        }
    }
}

fn trim_ows_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// Reads a quoted-string body (after the opening quote); returns the value and bytes used.
fn unquote(s: &[u8]) -> (Cow<'_, [u8]>, usize) {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => return (out.map_or(Cow::Borrowed(&s[..i]), Cow::Owned), i + 1),
            b'\\' if i + 1 < s.len() => {
                let o = out.get_or_insert_with(|| s[..i].to_vec());
                o.push(s[i + 1]);
                i += 2;
                continue;
            }
            b => {
                if let Some(o) = out.as_mut() {
                    o.push(b);
                }
            }
        }
        i += 1;
    }
    // Unterminated quote: take the rest.
    (out.map_or(Cow::Borrowed(s), Cow::Owned), s.len())
}

/// Decompresses a gzip body, failing with 413 when the output would exceed `limit` bytes
/// (a gzip bomb stops after `limit + 1` bytes of output).
pub fn decompress_gzip(body: &[u8], limit: u64) -> Result<Bytes, RequestError> {
    let mut decoder = flate2::bufread::GzDecoder::new(body).take(limit.saturating_add(1));
    let mut out = Vec::new();
    decoder
        .read_to_end(&mut out)
        .map_err(|_| RequestError::BadGzip)?;
    if out.len() as u64 > limit {
        return Err(RequestError::BodyTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn urlencoded_decodes_plus_percent_blank_and_multi_values() {
        let a = Arguments::parse_urlencoded(b"a=1&b=x+y%21&a=2&empty=&flag&&%ZZ=%4");
        assert_eq!(
            a.get_all("a").collect::<Vec<_>>(),
            vec![&Bytes::from("1"), &Bytes::from("2")]
        );
        assert_eq!(a.get("a").unwrap(), "2");
        assert_eq!(a.get("b").unwrap(), "x y!");
        assert_eq!(a.get("empty").unwrap(), "");
        assert_eq!(a.get("flag").unwrap(), "");
        assert_eq!(a.get("%ZZ").unwrap(), "%4");
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn urlencoded_handles_invalid_utf8_without_panic() {
        let a = Arguments::parse_urlencoded(b"%FF%FE=%C3%28&k=%E2%82");
        assert_eq!(a.iter().next().unwrap().0, "\u{fffd}\u{fffd}");
        assert_eq!(a.get("k").unwrap().as_ref(), b"\xe2\x82");
        assert_eq!(a.get_str("k").unwrap(), "\u{fffd}");
    }

    const MULTIPART: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue 1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a \\\"b\\\".txt\"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XyZ--\r\n";

    #[test]
    fn multipart_parses_fields_and_files() {
        let form = parse_body(
            b"multipart/form-data; boundary=XyZ",
            &Bytes::from_static(MULTIPART),
        )
        .unwrap();
        assert_eq!(form.arguments.get("field").unwrap(), "value 1");
        let (name, file) = &form.files[0];
        assert_eq!(name, "up");
        assert_eq!(file.filename, "a \"b\".txt");
        assert_eq!(file.content_type, "text/plain");
        assert_eq!(file.body, "line1\r\nline2");
    }

    #[test]
    fn multipart_accepts_quoted_boundary() {
        let form = parse_body(
            b"multipart/form-data; boundary=\"XyZ\"",
            &Bytes::from_static(MULTIPART),
        )
        .unwrap();
        assert_eq!(form.files.len(), 1);
    }

    #[test]
    fn multipart_rejects_malformed_bodies() {
        let cases: &[&[u8]] = &[
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno final",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nno blank line\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--",
            b"--XyZ\r\nContent-Type: text/plain\r\n\r\nv\r\n--XyZ--",
            b"--XyZ\r\nbad header\r\n\r\nv\r\n--XyZ--",
        ];
        for body in cases {
            let r = parse_multipart(b"XyZ", &Bytes::copy_from_slice(body));
            assert!(
                matches!(r, Err(RequestError::BadForm(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(parse_body(b"multipart/form-data", &Bytes::new()).is_err());
        assert!(parse_multipart(&[b'a'; 71], &Bytes::new()).is_err());
    }

    #[test]
    fn gzip_decompresses_within_limit_and_refuses_bombs() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&vec![b'a'; 1_000_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 10_000);
        assert_eq!(decompress_gzip(&gz, 1_000_000).unwrap().len(), 1_000_000);
        assert_eq!(
            decompress_gzip(&gz, 999_999),
            Err(RequestError::BodyTooLarge { limit: 999_999 })
        );
        assert_eq!(
            decompress_gzip(b"not gzip at all", 100),
            Err(RequestError::BadGzip)
        );
    }
}

//! Output compression (`compress_response`), as Tornado's `GZipContentEncoding`: gzip for
//! clients that accept it, for compressible types, bodies of at least [`MIN_LENGTH`] (or
//! any flushed body), with `Vary: Accept-Encoding`; flushed pieces are compressed as one
//! stream, each piece sync-flushed so it reaches the client at once.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_RANGE, CONTENT_TYPE, VARY};
use http::HeaderMap;

/// Whole bodies smaller than this go out uncompressed (Tornado's `MIN_LENGTH`).
pub const MIN_LENGTH: usize = 1024;

/// True if `accept_encoding` (every `Accept-Encoding` value) accepts gzip: listed (or `*`)
/// with a q-value above zero.
pub fn accepts_gzip<'a>(accept_encoding: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut gzip = None;
    let mut star = None;
    for value in accept_encoding {
        for item in String::from_utf8_lossy(value).split(',') {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(q > 0.0),
                "*" => star = Some(q > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// True for the types worth compressing: `text/*`, JSON, JavaScript, XML, `+json`/`+xml`.
pub fn is_compressible(content_type: &str) -> bool {
    // The types the web layer itself sets.
    if content_type == "text/html; charset=UTF-8"
        || content_type == "application/json; charset=UTF-8"
    {
        return true;
    }
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .as_bytes();
    let starts = |p: &[u8]| media.len() >= p.len() && media[..p.len()].eq_ignore_ascii_case(p);
    let ends =
        |p: &[u8]| media.len() >= p.len() && media[media.len() - p.len()..].eq_ignore_ascii_case(p);
    starts(b"text/")
        || ends(b"+json")
        || ends(b"+xml")
        || [
            &b"application/json"[..],
            b"application/javascript",
            b"application/x-javascript",
            b"application/xml",
            b"image/svg+xml",
        ]
        .iter()
        .any(|t| media.eq_ignore_ascii_case(t))
}

/// Adds `Accept-Encoding` to `Vary`, keeping what is there.
pub fn add_vary(headers: &mut HeaderMap) {
    const ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("Accept-Encoding");
    // One lookup: the usual response has no `Vary` of its own.
    let mut vary = match headers.entry(VARY) {
        http::header::Entry::Vacant(slot) => {
            slot.insert(ACCEPT_ENCODING);
            return;
        }
        http::header::Entry::Occupied(vary) => vary,
    };
    let covered = vary.iter().any(|value| {
        let v = value.as_bytes();
        v.trim_ascii() == b"*"
            || v.split(|&b| b == b',')
                .any(|item| item.trim_ascii().eq_ignore_ascii_case(b"accept-encoding"))
    });
    if covered {
        return;
    }
    // Joined to the last `Vary` line; earlier lines stay as they are.
    if let Some(last) = vary.iter_mut().last() {
        if let Ok(value) =
            HeaderValue::from_bytes(&[last.as_bytes(), b", Accept-Encoding"].concat())
        {
            *last = value;
        }
    }
}

/// Whether a response with these headers may be compressed at all (type, no encoding yet,
/// not a range, a status with a body).
pub fn may_compress(status: u16, headers: &HeaderMap) -> bool {
    let has_body = status >= 200 && status != 204 && status != 304;
    let encoded = headers.contains_key(CONTENT_ENCODING) || headers.contains_key(CONTENT_RANGE);
    has_body
        && !encoded
        && headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_compressible)
}

/// Gzips a whole body.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3 + 32), Compression::new(6));
    encoder
        .write_all(body)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// A gzip stream fed piece by piece.
pub struct GzipStream {
    encoder: GzEncoder<Vec<u8>>,
}

impl Default for GzipStream {
    fn default() -> Self {
        GzipStream {
            encoder: GzEncoder::new(Vec::new(), Compression::new(6)),
        }
    }
}

impl GzipStream {
    /// Compresses `piece` and returns everything that is ready (sync-flushed).
    pub fn piece(&mut self, piece: &[u8]) -> Vec<u8> {
        self.encoder
            .write_all(piece)
            .expect("writing to a Vec cannot fail");
        self.encoder.flush().expect("writing to a Vec cannot fail");
        std::mem::take(self.encoder.get_mut())
    }

    /// Compresses the last piece and ends the stream (gzip trailer included).
    pub fn finish(self, last: &[u8]) -> Vec<u8> {
        let mut encoder = self.encoder;
        encoder
            .write_all(last)
            .expect("writing to a Vec cannot fail");
        encoder.finish().expect("writing to a Vec cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn accept_encoding_is_parsed_with_q_values() {
        let yes = |s: &str| accepts_gzip(std::iter::once(s.as_bytes()));
        assert!(yes("gzip, deflate, br"));
        assert!(yes("deflate;q=0.5, GZIP;q=0.1"));
        assert!(yes("*"));
        assert!(!yes("gzip;q=0"));
        assert!(!yes("gzip;q=0, *"), "an explicit refusal wins over *");
        assert!(!yes("identity"));
        assert!(!yes(""));
    }

    #[test]
    fn types_and_statuses() {
        assert!(is_compressible("text/html; charset=UTF-8"));
        assert!(is_compressible("application/ld+json"));
        assert!(!is_compressible("image/png"));
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(may_compress(200, &h));
        assert!(!may_compress(304, &h));
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(!may_compress(200, &h));
        let mut v = HeaderMap::new();
        v.insert(VARY, HeaderValue::from_static("Cookie"));
        add_vary(&mut v);
        add_vary(&mut v);
        assert_eq!(v.get(VARY).unwrap(), "Cookie, Accept-Encoding");
        let mut none = HeaderMap::new();
        add_vary(&mut none);
        assert_eq!(none.get(VARY).unwrap(), "Accept-Encoding");
        let mut star = HeaderMap::new();
        star.insert(VARY, HeaderValue::from_static("*"));
        add_vary(&mut star);
        assert_eq!(star.get(VARY).unwrap(), "*", "Vary: * already covers it");
        let mut two = HeaderMap::new();
        two.append(VARY, HeaderValue::from_static("Cookie"));
        two.append(VARY, HeaderValue::from_static("Origin"));
        add_vary(&mut two);
        let lines: Vec<_> = two.get_all(VARY).iter().collect();
        assert_eq!(
            lines,
            ["Cookie", "Origin, Accept-Encoding"],
            "no line is lost"
        );
        add_vary(&mut two);
        assert_eq!(two.get_all(VARY).iter().count(), 2);
        assert!(is_compressible("TEXT/CSS"));
        assert!(is_compressible("Application/JSON ; charset=UTF-8"));
        assert!(is_compressible("image/svg+xml"));
        assert!(!is_compressible("application/octet-stream"));
        assert!(!is_compressible("tex"));
    }

    #[test]
    fn whole_and_streamed_bodies_round_trip() {
        let body = b"hello hello hello ".repeat(200);
        assert_eq!(gunzip(&gzip(&body)), body);
        let mut s = GzipStream::default();
        let mut out = s.piece(b"chunk 0\n");
        assert!(!out.is_empty(), "a flushed piece is out at once");
        out.extend(s.piece(b"chunk 1\n"));
        out.extend(s.finish(b"end\n"));
        assert_eq!(gunzip(&out), b"chunk 0\nchunk 1\nend\n");
    }
}

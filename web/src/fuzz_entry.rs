//! The `web_inputs` fuzz target's body, shared with the corpus replay test: everything the
//! web layer parses from a client — signed cookie values, XSRF tokens, `Accept-Encoding`,
//! request paths against routes — must never panic, and must keep its invariants.

use crate::compress::accepts_gzip;
use crate::routing::{PathPattern, Router, Rule};
use crate::signed::{create_signed_value, decode_signed_value, SigningKeys};
use crate::xsrf;

/// The routes paths are matched against, compiled once.
fn routes() -> &'static Router<usize> {
    static ROUTER: std::sync::OnceLock<Router<usize>> = std::sync::OnceLock::new();
    ROUTER.get_or_init(|| {
        let mut router = Router::default();
        let rules = [r"/user/(\d+)", r"/f/([^/]+)/(.*)", r"/(?P<name>\w+)/x"]
            .into_iter()
            .enumerate()
            .map(|(i, p)| Rule {
                pattern: PathPattern::new(p).expect("valid"),
                name: Some(format!("r{i}")),
                target: i,
            })
            .collect();
        router.add(rules).expect("unique names");
        router
    })
}

/// Feeds `data` (as text, split at the first NUL into a value and a second input) to every
/// client-facing parser of the web layer.
pub fn web_inputs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\0').unwrap_or((&text, ""));
    let keys = SigningKeys::Single(b"fuzz".to_vec());
    // A forged value never verifies; a value we signed always does.
    if decode_signed_value(&keys, "n", a, 1_000, 31).is_some() {
        // Verifying means knowing the key: a fuzzer forging one is a broken HMAC check.
        panic!("a value not signed by us verified: {a:?}");
    }
    let ours = create_signed_value(&keys, "n", a.as_bytes(), 1_000).expect("a key");
    assert_eq!(
        decode_signed_value(&keys, "n", &ours, 1_000, 31).as_deref(),
        Some(a.as_bytes())
    );
    // XSRF: decoding is total, and a token always matches itself re-masked.
    if let Some(raw) = xsrf::decode(a, 5) {
        let again = xsrf::encode(&raw, [1, 2, 3, 4]);
        assert!(xsrf::matches(&again, a, 5));
    }
    let _ = xsrf::matches(a, b, 5);
    let _ = accepts_gzip(std::iter::once(a.as_bytes()));
    // Paths against a few routes: captures decode or fail as values.
    let router = routes();
    let _ = router.find(|| b, a);
    let _ = router.find_target(|| b, a);
    if let Ok(url) = router.reverse_url("r0", &[a]) {
        assert!(url.starts_with("/user/"));
    }
}

/// Feeds `data` to the parsers of static-file requests — `Range` (resolved against a length
/// taken from the input), HTTP dates (`If-Modified-Since`, `If-Range`) and request paths —
/// and checks what they promise: ranges lie inside the file, parsed dates format back to
/// themselves, accepted paths never climb out and normalise to themselves.
pub fn static_inputs(data: &[u8]) {
    use crate::range::{RangeRequest, Resolved, MAX_RANGES};
    use eddy_core::file::RelPath;
    use eddy_core::http::{parse_http_date, HttpDate};

    let (len_bytes, rest) = data.split_at(data.len().min(2));
    let len = len_bytes
        .iter()
        .fold(0u64, |acc, b| acc << 8 | u64::from(*b));
    if let Resolved::Parts(parts) = RangeRequest::parse(rest).resolve(len) {
        assert!(!parts.is_empty() && parts.len() <= MAX_RANGES);
        for r in &parts {
            assert!(r.start < r.end && r.end <= len, "{r:?} outside 0..{len}");
        }
    }
    if let Some(secs) = parse_http_date(rest) {
        let again = HttpDate::from_unix_secs(secs);
        assert_eq!(parse_http_date(again.as_bytes()), Some(secs));
    }
    let text = String::from_utf8_lossy(rest);
    if let Ok(path) = RelPath::new(&text) {
        assert!(path.names().all(|n| !n.is_empty() && n != ".." && n != "."));
        assert!(!path.as_str().starts_with('/') && !path.as_str().contains('\\'));
        assert_eq!(RelPath::new(path.as_str()).as_ref(), Ok(&path));
    }
}

//! The `Range` request header (RFC 9110 §14.2): [`RangeRequest::parse`] reads a byte-range
//! set, and [`RangeRequest::resolve`] turns it into the ranges of one representation.
//!
//! What is not a valid `bytes` range set (another unit, bad syntax, overflowing numbers) is
//! [`RangeRequest::Ignored`]: RFC 9110 lets a server ignore such a header and send the whole
//! representation, which is what nginx and Tornado do. A valid set with no range that
//! overlaps the representation is unsatisfiable (416). Many small or overlapping ranges are
//! a known denial-of-service shape (CVE-2011-3192): they are coalesced, and a set that stays
//! larger than [`MAX_RANGES`] is answered with the whole representation.

use std::ops::Range;

/// Most ranges answered as a multipart response; more are answered with the whole file.
pub const MAX_RANGES: usize = 16;

/// Most range specs read from one header before it is ignored as abusive.
const MAX_SPECS: usize = 256;

/// One `first-last`, `first-` or `-suffix` spec as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` (inclusive) or `first-` (`last` is `None`).
    FromTo {
        /// The first byte position.
        first: u64,
        /// The last byte position, inclusive; `None` for "to the end".
        last: Option<u64>,
    },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// A parsed `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Not a valid byte-range set: serve the whole representation.
    Ignored,
    /// The specs, in the order sent.
    Bytes(Vec<RangeSpec>),
}

/// What a range request asks of a representation of a given length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Send the whole representation (200).
    Whole,
    /// No range overlaps it (416, `Content-Range: bytes */LEN`).
    Unsatisfiable,
    /// Send these ranges (206): one as a plain body, several as multipart/byteranges.
    Parts(Vec<Range<u64>>),
}

impl RangeRequest {
    /// Parses a `Range` header value.
    pub fn parse(value: &[u8]) -> RangeRequest {
        let Ok(value) = std::str::from_utf8(value) else {
            return RangeRequest::Ignored;
        };
        let Some((unit, set)) = value.trim().split_once('=') else {
            return RangeRequest::Ignored;
        };
        if !unit.trim_end().eq_ignore_ascii_case("bytes") {
            return RangeRequest::Ignored;
        }
        let mut specs = Vec::new();
        // RFC 9110 §5.6.1: empty list elements are allowed and ignored.
        for spec in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if specs.len() == MAX_SPECS {
                return RangeRequest::Ignored;
            }
            match parse_spec(spec) {
                Some(spec) => specs.push(spec),
                None => return RangeRequest::Ignored,
            }
        }
        if specs.is_empty() {
            return RangeRequest::Ignored;
        }
        RangeRequest::Bytes(specs)
    }

    /// The ranges this request selects in a representation of `len` bytes: satisfiable
    /// ones clipped to it, overlapping and adjacent ones coalesced.
    pub fn resolve(&self, len: u64) -> Resolved {
        let RangeRequest::Bytes(specs) = self else {
            return Resolved::Whole;
        };
        let mut parts: Vec<Range<u64>> = specs
            .iter()
            .filter_map(|spec| match *spec {
                RangeSpec::FromTo { first, last } if first < len => {
                    let end = last.map_or(len, |l| l.saturating_add(1).min(len));
                    Some(first..end)
                }
                RangeSpec::Suffix(n) if n > 0 && len > 0 => Some(len.saturating_sub(n)..len),
                _ => None,
            })
            .collect();
        if parts.is_empty() {
            return Resolved::Unsatisfiable;
        }
        if parts.len() > 1 && needs_coalescing(&parts) {
            parts.sort_by_key(|r| r.start);
            let mut merged: Vec<Range<u64>> = Vec::with_capacity(parts.len());
            for r in parts {
                match merged.last_mut() {
                    Some(prev) if r.start <= prev.end => prev.end = prev.end.max(r.end),
                    _ => merged.push(r),
                }
            }
            parts = merged;
        }
        if parts.len() > MAX_RANGES {
            return Resolved::Whole;
        }
        Resolved::Parts(parts)
    }
}

/// Ranges that overlap, touch or go backwards are sorted and merged; a well-formed
/// ascending set is answered in the order asked.
fn needs_coalescing(parts: &[Range<u64>]) -> bool {
    parts.windows(2).any(|w| w[1].start <= w[0].end)
}

fn parse_spec(spec: &str) -> Option<RangeSpec> {
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim_end(), last.trim_start());
    if first.is_empty() {
        return Some(RangeSpec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    if last.is_empty() {
        return Some(RangeSpec::FromTo { first, last: None });
    }
    let last = digits(last)?;
    // RFC 9110 §14.1.1: a last position below the first makes the spec invalid.
    (last >= first).then_some(RangeSpec::FromTo {
        first,
        last: Some(last),
    })
}

/// A non-empty run of ASCII digits that fits a u64.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one range is exactly what is meant
mod tests {
    use super::*;

    fn resolve(header: &str, len: u64) -> Resolved {
        RangeRequest::parse(header.as_bytes()).resolve(len)
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(resolve("bytes=0-9", 100), Resolved::Parts(vec![0..10]));
        assert_eq!(resolve("bytes=90-", 100), Resolved::Parts(vec![90..100]));
        assert_eq!(resolve("bytes=-10", 100), Resolved::Parts(vec![90..100]));
        assert_eq!(resolve("bytes=-1000", 100), Resolved::Parts(vec![0..100]));
        assert_eq!(
            resolve("bytes=95-1000", 100),
            Resolved::Parts(vec![95..100])
        );
        assert_eq!(resolve("Bytes = 1-1 ", 100), Resolved::Parts(vec![1..2]));
    }

    #[test]
    fn unsatisfiable_and_ignored_sets() {
        assert_eq!(resolve("bytes=100-", 100), Resolved::Unsatisfiable);
        assert_eq!(resolve("bytes=-0", 100), Resolved::Unsatisfiable);
        assert_eq!(resolve("bytes=0-", 0), Resolved::Unsatisfiable);
        assert_eq!(resolve("bytes=-5", 0), Resolved::Unsatisfiable);
        for bad in [
            "bytes=5-1",
            "bytes=a-b",
            "bytes=",
            "bytes=,",
            "items=0-1",
            "bytes 0-1",
            "bytes=--1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(resolve(bad, 100), Resolved::Whole, "{bad}");
        }
    }

    #[test]
    fn several_ranges_keep_their_order_unless_they_overlap() {
        assert_eq!(
            resolve("bytes=0-1, 5-6", 10),
            Resolved::Parts(vec![0..2, 5..7])
        );
        assert_eq!(
            resolve("bytes=5-6,0-1", 10),
            Resolved::Parts(vec![0..2, 5..7])
        );
        assert_eq!(resolve("bytes=0-4,3-8", 10), Resolved::Parts(vec![0..9]));
        assert_eq!(
            resolve("bytes=0-4,5-8", 10),
            Resolved::Parts(vec![0..9]) // adjacent: one part
        );
        assert_eq!(resolve("bytes=0-1,50-60", 10), Resolved::Parts(vec![0..2]));
    }

    #[test]
    fn abusive_sets_get_the_whole_file() {
        let many: Vec<String> = (0..40).map(|i| format!("{}-{}", i * 3, i * 3)).collect();
        let header = format!("bytes={}", many.join(","));
        assert_eq!(resolve(&header, 1000), Resolved::Whole);
        // A thousand overlapping ranges coalesce into one.
        let overlapping = format!("bytes={}", vec!["0-"; 200].join(","));
        assert_eq!(resolve(&overlapping, 10), Resolved::Parts(vec![0..10]));
        let too_long = format!("bytes={}", vec!["0-1"; MAX_SPECS + 1].join(","));
        assert_eq!(resolve(&too_long, 10), Resolved::Whole);
    }

    #[test]
    fn resolved_ranges_always_lie_inside_the_representation() {
        for header in [
            "bytes=0-0",
            "bytes=-1",
            "bytes=3-",
            "bytes=2-2,4-",
            "bytes=-3,0-0",
        ] {
            for len in 0..6 {
                if let Resolved::Parts(parts) = resolve(header, len) {
                    assert!(!parts.is_empty());
                    for r in parts {
                        assert!(r.start < r.end && r.end <= len, "{header} {len} {r:?}");
                    }
                }
            }
        }
    }
}

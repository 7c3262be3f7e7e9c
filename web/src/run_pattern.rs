//! `RunPattern`: route patterns made only of literal text and greedy runs of one character
//! class (`/user/(\d+)`, `/f/([^/]+)/raw`, `/static/(.*)`), matched by one forward scan
//! instead of the regex engine.
//!
//! A pattern qualifies only when that scan is exact: every run is followed by the end or by
//! a literal whose first byte the run cannot take, so a run never has to give bytes back.
//! Anything else (alternation, optional groups, bounded repetition, flags, look-around)
//! stays with the regex, and so do non-ASCII paths for classes that take only some
//! non-ASCII characters (Unicode `\d`, `\w`), which a byte table cannot hold.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Capture groups a run pattern may have (spans live in a fixed array).
pub(crate) const MAX_GROUPS: usize = 8;

/// Where each capture group matched (`start..end` byte offsets), by group index.
pub(crate) type Spans = [(usize, usize); MAX_GROUPS];

/// A pattern of literals and class runs; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct RunPattern {
    pieces: Vec<Piece>,
    /// Some run's class takes only some non-ASCII characters: scan ASCII paths only.
    ascii_only: bool,
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(Box<[u8]>),
    Run {
        class: ByteClass,
        min: usize,
        /// The capture group this run is, if it is one.
        group: Option<usize>,
    },
}

/// The bytes of a character class as a path's UTF-8 shows them: one bit per ASCII byte,
/// and whether bytes of non-ASCII characters belong (`None`: some do and some do not, as
/// for Unicode `\d`, so only ASCII paths can be scanned byte by byte).
#[derive(Debug, Clone, Copy, Default)]
struct ByteClass {
    ascii: [u64; 2],
    non_ascii: Option<bool>,
}

impl ByteClass {
    fn contains(self, b: u8) -> bool {
        match b {
            0..=127 => (self.ascii[usize::from(b >> 6)] >> (b & 63)) & 1 == 1,
            _ => self.non_ascii == Some(true),
        }
    }

    fn of(class: &Class) -> ByteClass {
        let (ranges, top): (Vec<(u32, u32)>, u32) = match class {
            Class::Unicode(c) => (
                c.iter()
                    .map(|r| (r.start() as u32, r.end() as u32))
                    .collect(),
                char::MAX as u32,
            ),
            Class::Bytes(c) => (
                c.iter()
                    .map(|r| (u32::from(r.start()), u32::from(r.end())))
                    .collect(),
                0xff,
            ),
        };
        let mut class = ByteClass::default();
        // Above ASCII: covered whole (surrogates are no characters), not at all, or partly.
        let (mut next, mut any) = (0x80, false);
        for &(start, end) in &ranges {
            for b in start..=end.min(127) {
                class.ascii[(b >> 6) as usize] |= 1 << (b & 63);
            }
            if end >= 0x80 {
                any = true;
                let start = start.max(0x80);
                if start <= next || (next == 0xd800 && start == 0xe000) {
                    next = next.max(end + 1);
                }
            }
        }
        class.non_ascii = match (any, next > top) {
            (false, _) => Some(false),
            (true, true) => Some(true),
            (true, false) => None,
        };
        class
    }
}

impl RunPattern {
    /// The run form of `body` (a route pattern without anchors), when it has one.
    pub(crate) fn new(body: &str) -> Option<RunPattern> {
        let hir = regex_syntax::parse(&format!("(?:{body})")).ok()?;
        let items: Vec<&Hir> = match hir.kind() {
            HirKind::Concat(items) => items.iter().collect(),
            _ => vec![&hir],
        };
        let mut pieces = Vec::with_capacity(items.len());
        for item in items {
            match item.kind() {
                HirKind::Empty => {}
                HirKind::Literal(lit) => pieces.push(Piece::Literal(lit.0.clone())),
                HirKind::Capture(cap) => {
                    let group = (cap.index as usize).checked_sub(1)?;
                    if group >= MAX_GROUPS {
                        return None;
                    }
                    let (class, min) = run(&cap.sub)?;
                    pieces.push(Piece::Run {
                        class,
                        min,
                        group: Some(group),
                    });
                }
                HirKind::Repetition(_) => {
                    let (class, min) = run(item)?;
                    pieces.push(Piece::Run {
                        class,
                        min,
                        group: None,
                    });
                }
                _ => return None,
            }
        }
        let exact = pieces.windows(2).all(|w| match (&w[0], &w[1]) {
            (Piece::Run { class, .. }, Piece::Literal(next)) => {
                next.first().is_some_and(|&b| !class.contains(b))
            }
            (Piece::Run { .. }, Piece::Run { .. }) => false,
            _ => true,
        });
        let ascii_only = pieces
            .iter()
            .any(|p| matches!(p, Piece::Run { class, .. } if class.non_ascii.is_none()));
        exact.then_some(RunPattern { pieces, ascii_only })
    }

    /// Whether `path` can be scanned (else the regex decides).
    pub(crate) fn applies_to(&self, path: &str) -> bool {
        !self.ascii_only || path.is_ascii()
    }

    /// Matches all of `path` (one [`applies_to`](Self::applies_to)), filling `spans` for the
    /// groups; false if it does not.
    pub(crate) fn matches(&self, path: &[u8], spans: &mut Spans) -> bool {
        let mut at = 0;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(literal) => {
                    if !path[at..].starts_with(literal) {
                        return false;
                    }
                    at += literal.len();
                }
                Piece::Run { class, min, group } => {
                    let start = at;
                    at += path[at..]
                        .iter()
                        .take_while(|&&b| class.contains(b))
                        .count();
                    if at - start < *min {
                        return false;
                    }
                    if let Some(g) = group {
                        spans[*g] = (start, at);
                    }
                }
            }
        }
        at == path.len()
    }
}

/// A greedy, unbounded repetition of one class: its bytes and minimum count.
fn run(hir: &Hir) -> Option<(ByteClass, usize)> {
    let HirKind::Repetition(rep) = hir.kind() else {
        return None;
    };
    let HirKind::Class(class) = rep.sub.kind() else {
        return None;
    };
    (rep.greedy && rep.max.is_none()).then(|| (ByteClass::of(class), rep.min as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans_of(pattern: &str, path: &str) -> Option<Vec<(usize, usize)>> {
        let p = RunPattern::new(pattern).expect("a run pattern");
        let mut spans = [(0, 0); MAX_GROUPS];
        p.matches(path.as_bytes(), &mut spans)
            .then(|| spans[..2].to_vec())
    }

    #[test]
    fn simple_shapes_qualify_and_match() {
        assert_eq!(spans_of(r"/user/(\d+)", "/user/42").unwrap()[0], (6, 8));
        assert!(spans_of(r"/user/(\d+)", "/user/").is_none());
        assert!(spans_of(r"/user/(\d+)", "/user/4x").is_none());
        assert_eq!(
            spans_of(r"/f/([^/]+)/raw", "/f/a.b/raw").unwrap()[0],
            (3, 6)
        );
        assert_eq!(spans_of("/files/(.*)", "/files/").unwrap()[0], (7, 7));
    }

    #[test]
    fn classes_that_take_every_non_ascii_character_scan_any_path() {
        for (pattern, scans_non_ascii) in [
            ("/f/([^/]+)", true),
            ("/files/(.*)", true),
            (r"/user/(\d+)", false), // Unicode \d takes some non-ASCII digits only
            (r"/w/(\w+)", false),
            ("/a/([a-z]+)", true), // takes none: the scan stops at the first non-ASCII byte
        ] {
            let p = RunPattern::new(pattern).expect("a run pattern");
            assert_eq!(p.applies_to("/f/\u{e9}"), scans_non_ascii, "{pattern}");
        }
        assert_eq!(
            spans_of("/f/([^/]+)/x", "/f/\u{e9}t\u{1f600}/x").unwrap()[0],
            (3, 10)
        );
        assert!(spans_of("/a/([a-z]+)", "/a/b\u{e9}").is_none());
        assert!(spans_of("/files/(.*)", "/files/a\nb").is_none());
    }

    #[test]
    fn shapes_that_would_need_backtracking_stay_with_the_regex() {
        for pattern in [
            r"/(\w+)x",     // a run followed by a byte it takes
            r"/(\d+)(\d+)", // two runs in a row
            r"/(\d+)?",     // optional group
            r"/(\d{2,4})",  // bounded
            r"/a|/b",       // alternation
            r"(?i)/abc",    // flags
            r"/(\d+?)x",    // lazy
        ] {
            assert!(RunPattern::new(pattern).is_none(), "{pattern}");
        }
    }
}

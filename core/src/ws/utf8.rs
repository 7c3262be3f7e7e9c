//! An incremental UTF-8 validator: text messages fail at their first invalid byte, even when
//! that byte arrives in the middle of a fragment (RFC 6455 §8.1).
//!
//! The state is "how many continuation bytes are still owed, and which range the next one
//! must fall in" (RFC 3629 §4 table); the range of the first continuation byte is what rules
//! out overlong forms, surrogates and code points over U+10FFFF.

/// Where validation stopped: the byte at `valid_up_to` (of the slice fed) is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8 at byte {valid_up_to} of the piece fed")]
pub struct Utf8Error {
    /// Bytes of the failing piece that were fine.
    pub valid_up_to: usize,
}

/// Validates UTF-8 fed in arbitrary pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Utf8Validator {
    /// Continuation bytes still owed by the current sequence.
    need: u8,
    /// Lowest allowed value of the next continuation byte.
    lo: u8,
    /// Highest allowed value of the next continuation byte.
    hi: u8,
    /// A previous piece failed; every later call fails too.
    failed: bool,
}

/// (continuation bytes owed, lowest and highest value of the first one) for a lead byte.
fn lead(b: u8) -> Option<(u8, u8, u8)> {
    Some(match b {
        0xC2..=0xDF => (1, 0x80, 0xBF),
        0xE0 => (2, 0xA0, 0xBF), // no overlong 3-byte forms
        0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
        0xED => (2, 0x80, 0x9F), // no surrogates U+D800-U+DFFF
        0xF0 => (3, 0x90, 0xBF), // no overlong 4-byte forms
        0xF1..=0xF3 => (3, 0x80, 0xBF),
        0xF4 => (3, 0x80, 0x8F), // nothing above U+10FFFF
        _ => return None,        // continuation, C0, C1, F5-FF
    })
}

impl Utf8Validator {
    /// A validator at the start of a text.
    pub fn new() -> Utf8Validator {
        Utf8Validator::default()
    }

    /// Checks the next piece of the text; fails at its first byte that cannot continue it.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Utf8Error> {
        if self.failed {
            return Err(Utf8Error { valid_up_to: 0 });
        }
        let mut i = 0;
        while i < bytes.len() {
            if self.need == 0 {
                // ASCII fast path: eight bytes at a time while no high bit is set.
                while let Some(chunk) = bytes.get(i..i + 8) {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(chunk);
                    if u64::from_ne_bytes(word) & 0x8080_8080_8080_8080 != 0 {
                        break;
                    }
                    i += 8;
                }
                let Some(&b) = bytes.get(i) else { break };
                if b >= 0x80 {
                    match lead(b) {
                        Some((need, lo, hi)) => {
                            self.need = need;
                            self.lo = lo;
                            self.hi = hi;
                        }
                        None => return self.fail(i),
                    }
                }
            } else {
                let b = bytes[i];
                if b < self.lo || b > self.hi {
                    return self.fail(i);
                }
                self.need -= 1;
                self.lo = 0x80;
                self.hi = 0xBF;
            }
            i += 1;
        }
        Ok(())
    }

    fn fail(&mut self, at: usize) -> Result<(), Utf8Error> {
        self.failed = true;
        Err(Utf8Error { valid_up_to: at })
    }

    /// True when everything fed so far is complete, valid UTF-8 (no sequence cut short).
    pub fn is_complete(&self) -> bool {
        self.need == 0 && !self.failed
    }

    /// Starts over for a new text.
    pub fn reset(&mut self) {
        *self = Utf8Validator::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_at_the_first_bad_byte_of_the_piece() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed("κό".as_bytes()), Ok(()));
        assert_eq!(v.feed(&[0xCE]), Ok(()));
        assert!(!v.is_complete());
        assert_eq!(v.feed(b"abc"), Err(Utf8Error { valid_up_to: 0 }));
        assert_eq!(v.feed(b"a"), Err(Utf8Error { valid_up_to: 0 }));
    }

    #[test]
    fn rejects_surrogates_overlongs_and_out_of_range() {
        for bad in [
            &[0xED, 0xA0, 0x80][..],
            &[0xC0, 0x80],
            &[0xE0, 0x80, 0x80],
            &[0xF0, 0x80, 0x80, 0x80],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xF5],
            &[0x80],
        ] {
            let mut v = Utf8Validator::new();
            assert!(v.feed(bad).is_err(), "{bad:x?} accepted");
        }
    }
}

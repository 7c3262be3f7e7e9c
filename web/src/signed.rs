//! Signed values, Tornado's format version 2 (`create_signed_value` / `decode_signed_value`
//! in `tornado/web.py`), so signed cookies interoperate with a Tornado app using the same
//! secret:
//!
//! ```text
//! 2|1:KEYVERSION|LEN:TIMESTAMP|LEN:NAME|LEN:BASE64(VALUE)|HMAC-SHA256-HEX
//! ```
//!
//! Decoding never fails loudly: a tampered, expired, malformed or foreign value (wrong
//! name, unknown key version, another secret) is simply absent.

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Seconds in a day.
const DAY: u64 = 86_400;
/// Tornado's default `max_age_days` for signed cookies.
pub const DEFAULT_MAX_AGE_DAYS: u64 = 31;

/// The secret(s) values are signed with: one key, or several by version (key rotation).
#[derive(Clone)]
pub enum SigningKeys {
    /// One secret (key version 0).
    Single(Vec<u8>),
    /// Secrets by version; new values are signed with `current`.
    Versioned {
        /// Every accepted key.
        keys: BTreeMap<u32, Vec<u8>>,
        /// The version new values are signed with.
        current: u32,
    },
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeys(..)") // never print secrets
    }
}

impl SigningKeys {
    fn signing(&self) -> Option<(u32, &[u8])> {
        match self {
            SigningKeys::Single(k) => Some((0, k)),
            SigningKeys::Versioned { keys, current } => {
                keys.get(current).map(|k| (*current, k.as_slice()))
            }
        }
    }

    fn for_version(&self, version: u32) -> Option<&[u8]> {
        match self {
            SigningKeys::Single(k) => Some(k),
            SigningKeys::Versioned { keys, .. } => keys.get(&version).map(Vec::as_slice),
        }
    }
}

fn field(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(value.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(value);
    out.push(b'|');
}

fn signature(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Signs `value` under `name` at Unix time `now` (Tornado's `create_signed_value`, v2).
///
/// `None` when `keys` has no key for its current version.
pub fn create_signed_value(
    keys: &SigningKeys,
    name: &str,
    value: &[u8],
    now: u64,
) -> Option<String> {
    let (version, key) = keys.signing()?;
    let mut out = b"2|".to_vec();
    field(&mut out, version.to_string().as_bytes());
    field(&mut out, now.to_string().as_bytes());
    field(&mut out, name.as_bytes());
    field(
        &mut out,
        base64::engine::general_purpose::STANDARD
            .encode(value)
            .as_bytes(),
    );
    let sig = signature(key, &out);
    out.extend_from_slice(sig.as_bytes());
    String::from_utf8(out).ok()
}

/// Takes one `LEN:VALUE|` field off the front of `s`.
fn consume_field(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = s.iter().position(|&b| b == b':')?;
    let len_text = std::str::from_utf8(&s[..colon]).ok()?;
    if len_text.is_empty() || !len_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = len_text.parse().ok()?;
    let rest = &s[colon + 1..];
    if rest.len() < n + 1 || rest[n] != b'|' {
        return None;
    }
    Some((&rest[..n], &rest[n + 1..]))
}

/// Verifies a signed value for `name` at Unix time `now`; its payload, or `None` if it is
/// tampered, older than `max_age_days`, for another name or key, or not a v2 value at all.
pub fn decode_signed_value(
    keys: &SigningKeys,
    name: &str,
    signed: &str,
    now: u64,
    max_age_days: u64,
) -> Option<Vec<u8>> {
    let rest = signed.as_bytes().strip_prefix(b"2|")?;
    let (version, rest) = consume_field(rest)?;
    let (timestamp, rest) = consume_field(rest)?;
    let (name_field, rest) = consume_field(rest)?;
    let (value_field, passed_sig) = consume_field(rest)?;
    let version: u32 = std::str::from_utf8(version).ok()?.parse().ok()?;
    let key = keys.for_version(version)?;
    let signed_part = &signed.as_bytes()[..signed.len() - passed_sig.len()];
    let expected = signature(key, signed_part);
    if !constant_time_eq(passed_sig, expected.as_bytes()) {
        return None;
    }
    if name_field != name.as_bytes() {
        return None;
    }
    let timestamp: u64 = std::str::from_utf8(timestamp).ok()?.parse().ok()?;
    if timestamp < now.saturating_sub(max_age_days.saturating_mul(DAY)) {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(value_field)
        .ok()
}

/// Compares without an early exit, so timing does not tell how much of a signature matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SigningKeys {
        SigningKeys::Single(b"secret".to_vec())
    }

    #[test]
    fn matches_tornados_bytes() {
        // tornado.web.create_signed_value("secret", "count", "3", version=2,
        //     clock=lambda: 1700000000)
        let v = create_signed_value(&key(), "count", b"3", 1_700_000_000).unwrap();
        assert_eq!(
            v,
            "2|1:0|10:1700000000|5:count|4:Mw==|165dac560adab3f8e3b59923c61bc3ee04b1ddf6f28fc8cab484ea81ac81eb0f"
        );
        // create_signed_value({1: "old", 2: "new"}, "n", "x", key_version=2, clock=lambda: 10)
        let tornado = "2|1:2|2:10|1:n|4:eA==|f79a64cb0573bddeb3a8134a8dbf6a3d4344fb4be2bf68d7220b922fa0c386d5";
        let keys = SigningKeys::Versioned {
            keys: [(1, b"old".to_vec()), (2, b"new".to_vec())]
                .into_iter()
                .collect(),
            current: 2,
        };
        assert_eq!(
            create_signed_value(&keys, "n", b"x", 10).as_deref(),
            Some(tornado)
        );
        assert_eq!(
            decode_signed_value(&keys, "n", tornado, 10, 31),
            Some(b"x".to_vec())
        );
        assert_eq!(
            decode_signed_value(&key(), "count", &v, 1_700_000_100, 31),
            Some(b"3".to_vec())
        );
    }

    #[test]
    fn tampered_expired_foreign_and_malformed_values_are_absent() {
        let now = 1_700_000_000;
        let v = create_signed_value(&key(), "user", b"demo", now).unwrap();
        let tampered = v.replace("ZGVtbw==", "ZGVtbx==");
        assert_eq!(
            decode_signed_value(&key(), "user", &tampered, now, 31),
            None
        );
        assert_eq!(
            decode_signed_value(&key(), "user", &v, now + 32 * DAY, 31),
            None
        );
        assert_eq!(decode_signed_value(&key(), "other", &v, now, 31), None);
        let wrong = SigningKeys::Single(b"another".to_vec());
        assert_eq!(decode_signed_value(&wrong, "user", &v, now, 31), None);
        for junk in [
            "",
            "2|",
            "2|x:0|",
            "1|abc",
            "2|99:0|",
            "2|1:0|10:17|4:user|",
        ] {
            assert_eq!(
                decode_signed_value(&key(), "user", junk, now, 31),
                None,
                "{junk:?}"
            );
        }
    }

    #[test]
    fn key_versions_rotate() {
        let mut keys = BTreeMap::new();
        keys.insert(1, b"old".to_vec());
        keys.insert(2, b"new".to_vec());
        let old = SigningKeys::Versioned {
            keys: keys.clone(),
            current: 1,
        };
        let new = SigningKeys::Versioned {
            keys: keys.clone(),
            current: 2,
        };
        let v1 = create_signed_value(&old, "n", b"x", 10).unwrap();
        assert!(v1.starts_with("2|1:1|"));
        assert_eq!(
            decode_signed_value(&new, "n", &v1, 10, 31),
            Some(b"x".to_vec())
        );
        keys.remove(&1);
        let retired = SigningKeys::Versioned { keys, current: 2 };
        assert_eq!(decode_signed_value(&retired, "n", &v1, 10, 31), None);
    }

    proptest! {
        #[test]
        fn round_trip_and_any_flipped_byte_is_rejected(
            value in proptest::collection::vec(any::<u8>(), 0..64),
            flip in any::<proptest::sample::Index>(),
        ) {
            let v = create_signed_value(&key(), "name", &value, 5_000).unwrap();
            prop_assert_eq!(decode_signed_value(&key(), "name", &v, 5_000, 31), Some(value));
            let mut bytes = v.into_bytes();
            let i = flip.index(bytes.len());
            bytes[i] ^= 0x01;
            if let Ok(s) = String::from_utf8(bytes) {
                prop_assert_eq!(decode_signed_value(&key(), "name", &s, 5_000, 31), None);
            }
        }
    }
}

//! XSRF tokens as Tornado makes them (`xsrf_token`, `check_xsrf_cookie`): a random 16-byte
//! token kept in the `_xsrf` cookie and handed out masked (version 2,
//! `2|MASK_HEX|MASKED_TOKEN_HEX|TIMESTAMP`), so the page's token changes on every request
//! while the cookie stays; version-1 tokens (plain hex) are still accepted.

use crate::signed::constant_time_eq;

/// Name of the cookie, form field and header family.
pub const XSRF_COOKIE: &str = "_xsrf";

/// A decoded token: its raw bytes and the time it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawToken {
    /// The secret bytes.
    pub token: Vec<u8>,
    /// Unix seconds when it was made.
    pub timestamp: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn mask(key: &[u8; 4], data: &[u8]) -> Vec<u8> {
    data.iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect()
}

/// The masked, version-2 form of `raw` with mask `key` (four random bytes).
pub fn encode(raw: &RawToken, key: [u8; 4]) -> String {
    format!(
        "2|{}|{}|{}",
        hex(&key),
        hex(&mask(&key, &raw.token)),
        raw.timestamp
    )
}

/// Decodes a token from the cookie or a request (version 2 masked, or version 1: plain hex,
/// or any other text taken as its bytes, as Tornado does; it gets `now` as its time); `None`
/// when empty or malformed.
pub fn decode(value: &str, now: u64) -> Option<RawToken> {
    let value = value.trim_matches('"');
    match value.split_once('|') {
        Some(("2", rest)) => {
            let mut parts = rest.split('|');
            let key: [u8; 4] = unhex(parts.next()?)?.try_into().ok()?;
            let token = mask(&key, &unhex(parts.next()?)?);
            let timestamp = parts.next()?.parse().ok()?;
            if parts.next().is_some() || token.is_empty() {
                return None;
            }
            Some(RawToken { token, timestamp })
        }
        Some(_) => None,
        None => {
            // Version 1: hex, or (as Tornado falls back to) the value's own bytes.
            let token = unhex(value).unwrap_or_else(|| value.as_bytes().to_vec());
            (!token.is_empty()).then_some(RawToken {
                token,
                timestamp: now,
            })
        }
    }
}

/// True if the submitted token carries the same secret as the cookie's (constant time).
pub fn matches(submitted: &str, cookie: &str, now: u64) -> bool {
    match (decode(submitted, now), decode(cookie, now)) {
        (Some(a), Some(b)) => constant_time_eq(&a.token, &b.token),
        _ => false,
    }
}

/// The hidden form field carrying `token` (Tornado's `xsrf_form_html`).
pub fn form_html(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{XSRF_COOKIE}\" value=\"{}\"/>",
        crate::escape::xhtml_escape(token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_tornados_tokens() {
        // Tornado 6.6: b"|".join([b"2", hexlify(mask), hexlify(_websocket_mask(mask, token)), ts]).
        let raw = RawToken {
            token: b"0123456789abcdef".to_vec(),
            timestamp: 1700000000,
        };
        let v2 = encode(&raw, [1, 2, 3, 4]);
        assert_eq!(v2, "2|01020304|3133313735373533393b626662666662|1700000000");
        assert_eq!(decode(&v2, 0), Some(raw.clone()));
        let v1 = hex(&raw.token);
        assert_eq!(decode(&v1, 5).unwrap().token, raw.token);
        assert!(matches(&v1, &v2, 5));
        // Version 1 that is not hex: its bytes, as Tornado's fallback takes it.
        assert_eq!(decode("abc", 5).unwrap().token, b"abc");
        assert!(matches("abc", "abc", 5) && !matches("abc", "abd", 5));
    }

    #[test]
    fn malformed_tokens_never_match() {
        for junk in [
            "",
            "2|",
            "2|0102|aa|1",
            "2|01020304|zz|1",
            "2|01020304|aa|x",
            "3|a|b|c",
        ] {
            assert_eq!(decode(junk, 0), None, "{junk:?}");
            assert!(!matches(junk, junk, 0));
        }
        assert_eq!(
            form_html("a\"b"),
            "<input type=\"hidden\" name=\"_xsrf\" value=\"a&quot;b\"/>"
        );
    }

    proptest! {
        #[test]
        fn masking_round_trips_and_two_masks_of_one_token_match(
            token in proptest::collection::vec(any::<u8>(), 1..32),
            k1 in any::<[u8; 4]>(), k2 in any::<[u8; 4]>(), ts in any::<u32>(),
        ) {
            let raw = RawToken { token, timestamp: u64::from(ts) };
            let (a, b) = (encode(&raw, k1), encode(&raw, k2));
            prop_assert_eq!(decode(&a, 0), Some(raw));
            prop_assert!(matches(&a, &b, 0));
        }
    }
}

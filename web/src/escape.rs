//! Escaping for HTML, URLs and JSON embedded in HTML, as Tornado's `tornado.escape`.

use std::borrow::Cow;

/// Escapes `& < > " '` for HTML text and attribute values (Tornado's `xhtml_escape`).
pub fn xhtml_escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Percent-encodes `s` for a URL component (Tornado's `url_escape`): unreserved characters
/// stay; with `plus`, a space becomes `+` (for query strings), else `%20` (for paths).
pub fn url_escape(s: &str, plus: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// JSON for embedding in HTML `<script>`: `</` is written `<\/` (Tornado's `json_encode`).
pub fn json_encode(value: &impl serde::Serialize) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string(value)?.replace("</", "<\\/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_match_tornado() {
        assert_eq!(
            xhtml_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(matches!(xhtml_escape("plain"), Cow::Borrowed(_)));
        assert_eq!(url_escape("a b/c?d=é", false), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(url_escape("a b", true), "a+b");
        assert_eq!(json_encode(&"</script>").unwrap(), "\"<\\/script>\"");
    }
}

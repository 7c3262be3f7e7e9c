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

/// `value` as Tornado's `json_encode` writes it, as text.
pub fn json_encode(value: &impl serde::Serialize) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    write_json(&mut out, value)?;
    Ok(String::from_utf8(out).expect("the JSON written is ASCII"))
}

/// Appends `value` as Tornado's `json_encode` writes it (Python's `json.dumps`): `, ` and
/// `: ` between items, every non-ASCII character as `\uXXXX`, and `</` as `<\/`, so the
/// JSON can sit in an HTML `<script>`. On an error, part of the value may have been written.
pub fn write_json(
    out: &mut Vec<u8>,
    value: &impl serde::Serialize,
) -> Result<(), serde_json::Error> {
    let mut serializer = serde_json::Serializer::with_formatter(out, TornadoJson);
    value.serialize(&mut serializer)
}

/// Python's `, ` before every item but the first of an array or object.
fn item_separator<W: ?Sized + std::io::Write>(writer: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

/// The `serde_json` formatter behind [`write_json`].
struct TornadoJson;

impl serde_json::ser::Formatter for TornadoJson {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        item_separator(writer, first)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        item_separator(writer, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    #[inline]
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // The usual fragment: ASCII without `<`, found in one pass over its (few) bytes.
        if !fragment.bytes().any(|b| b >= 0x80 || b == b'<') {
            return writer.write_all(fragment.as_bytes());
        }
        let mut previous = '\0';
        for c in fragment.chars() {
            if c.is_ascii() {
                if previous == '<' && c == '/' {
                    writer.write_all(b"\\")?;
                }
                writer.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
            previous = c;
        }
        Ok(())
    }
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

    #[test]
    fn json_is_written_as_pythons_json_dumps_writes_it() {
        let value = serde_json::json!({"id": 7, "name": "user 7", "list": [1, "é😀", null, true]});
        assert_eq!(
            json_encode(&value).unwrap(),
            r#"{"id": 7, "list": [1, "\u00e9\ud83d\ude00", null, true], "name": "user 7"}"#
        );
        assert_eq!(json_encode(&"a</b<//c\n\"").unwrap(), r#""a<\/b<\//c\n\"""#);
        assert_eq!(json_encode(&serde_json::json!({})).unwrap(), "{}");
        assert_eq!(json_encode(&Vec::<u8>::new()).unwrap(), "[]");
    }
}

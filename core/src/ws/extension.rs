//! `Sec-WebSocket-Extensions` syntax (RFC 6455 §9.1): a list of extensions with parameters.
//!
//! Owns parsing and rendering only; what permessage-deflate makes of its parameters is in
//! [`deflate`](super::deflate).

use http::HeaderMap;

/// One extension of an offer or answer: its name and parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in the order given; quoted values are unquoted.
    pub params: Vec<ExtensionParam>,
}

/// One `name[=value]` parameter of an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionParam {
    /// The parameter token.
    pub name: String,
    /// The value, if one was given.
    pub value: Option<String>,
}

/// The value is not an extension list (bad token, unterminated quote, stray separator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Sec-WebSocket-Extensions header")]
pub struct MalformedExtensions;

/// Parses every `Sec-WebSocket-Extensions` field of `headers` as one list.
pub fn parse_extensions(headers: &HeaderMap) -> Result<Vec<Extension>, MalformedExtensions> {
    let mut out = Vec::new();
    for value in headers.get_all(http::header::SEC_WEBSOCKET_EXTENSIONS) {
        out.extend(parse_extension_list(value.as_bytes())?);
    }
    Ok(out)
}

/// True for RFC 9110 `tchar`s.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses one field value: `ext *(";" param) *("," ext ...)`, allowing empty list elements.
pub fn parse_extension_list(value: &[u8]) -> Result<Vec<Extension>, MalformedExtensions> {
    let mut p = Cursor { s: value, at: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_ows();
        match p.peek() {
            None => return Ok(out),
            Some(b',') => {
                p.at += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = p.token()?;
        let mut params = Vec::new();
        loop {
            p.skip_ows();
            match p.peek() {
                Some(b';') => {
                    p.at += 1;
                    p.skip_ows();
                    let pname = p.token()?;
                    p.skip_ows();
                    let value = if p.peek() == Some(b'=') {
                        p.at += 1;
                        p.skip_ows();
                        Some(if p.peek() == Some(b'"') {
                            p.quoted()?
                        } else {
                            p.token()?
                        })
                    } else {
                        None
                    };
                    params.push(ExtensionParam { name: pname, value });
                }
                Some(b',') | None => break,
                Some(_) => return Err(MalformedExtensions),
            }
        }
        out.push(Extension { name, params });
    }
}

/// Renders extensions as a field value (`a; p=1, b`).
pub fn render_extensions(extensions: &[Extension]) -> String {
    let mut s = String::new();
    for (i, ext) in extensions.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&ext.name);
        for p in &ext.params {
            s.push_str("; ");
            s.push_str(&p.name);
            if let Some(v) = &p.value {
                s.push('=');
                s.push_str(v);
            }
        }
    }
    s
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Result<String, MalformedExtensions> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        if self.at == start {
            return Err(MalformedExtensions);
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    /// A quoted-string; RFC 6455 §9.1 requires its unescaped content to be a token.
    fn quoted(&mut self) -> Result<String, MalformedExtensions> {
        self.at += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(MalformedExtensions),
                Some(b'"') => {
                    self.at += 1;
                    break;
                }
                Some(b'\\') => {
                    let escaped = self.s.get(self.at + 1).ok_or(MalformedExtensions)?;
                    value.push(*escaped);
                    self.at += 2;
                }
                Some(b) => {
                    value.push(b);
                    self.at += 1;
                }
            }
        }
        if value.is_empty() || !value.iter().copied().all(is_tchar) {
            return Err(MalformedExtensions);
        }
        Ok(String::from_utf8_lossy(&value).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> Extension {
        Extension {
            name: name.into(),
            params: params
                .iter()
                .map(|(n, v)| ExtensionParam {
                    name: (*n).into(),
                    value: v.map(Into::into),
                })
                .collect(),
        }
    }

    #[test]
    fn parses_params_quoted_values_and_several_extensions() {
        let got = parse_extension_list(
            b"permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\" ,, x-foo",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ext(
                    "permessage-deflate",
                    &[
                        ("client_max_window_bits", None),
                        ("server_max_window_bits", Some("10"))
                    ]
                ),
                ext("x-foo", &[]),
            ]
        );
        assert_eq!(
            render_extensions(&got),
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10, x-foo"
        );
    }

    #[test]
    fn rejects_malformed_lists() {
        for bad in [
            &b"a;"[..],
            b"a; =1",
            b"a; b=",
            b"a; b=\"1",
            b"a; b=\"\"",
            b"a; b=\"1 2\"",
            b"a b",
            b";a",
        ] {
            assert_eq!(
                parse_extension_list(bad),
                Err(MalformedExtensions),
                "{bad:?}"
            );
        }
    }
}

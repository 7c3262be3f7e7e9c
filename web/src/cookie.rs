//! `Set-Cookie` values built safely: names must be tokens, values cookie-octets, attributes
//! free of `;` and control characters — an invalid cookie is an error, never an injected
//! header (RFC 6265 §4.1).

use eddy_core::http::HttpDate;

/// Why a cookie could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// The name is empty or not an RFC 7230 token.
    #[error("invalid cookie name {0:?}")]
    Name(String),
    /// The value has a character outside RFC 6265's cookie-octet.
    #[error("invalid cookie value for {0:?}")]
    Value(String),
    /// An attribute (Path, Domain) has `;` or a control character.
    #[error("invalid cookie attribute {0}")]
    Attribute(&'static str),
}

/// The `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Only same-site requests carry the cookie.
    Strict,
    /// Top-level navigations carry it too.
    Lax,
    /// Every request carries it (requires `Secure`).
    None,
}

/// A cookie to set: name, value and attributes; `render` gives the `Set-Cookie` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
    /// `Path` (Tornado's default `/`).
    pub path: Option<String>,
    /// `Domain`.
    pub domain: Option<String>,
    /// `Max-Age`, in seconds (0 or less deletes the cookie).
    pub max_age: Option<i64>,
    /// `Expires`, as Unix seconds.
    pub expires: Option<u64>,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite`.
    pub same_site: Option<SameSite>,
}

impl SetCookie {
    /// A cookie `name=value` with `Path=/`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> SetCookie {
        SetCookie {
            name: name.into(),
            value: value.into(),
            path: Some("/".into()),
            domain: None,
            max_age: None,
            expires: None,
            secure: false,
            http_only: false,
            same_site: None,
        }
    }

    /// A cookie that deletes `name` (empty, `Max-Age=0`, expired a year before `now`).
    pub fn removal(name: impl Into<String>, now_unix: u64) -> SetCookie {
        SetCookie {
            max_age: Some(0),
            expires: Some(now_unix.saturating_sub(365 * 86_400)),
            ..SetCookie::new(name, "")
        }
    }

    /// The `Set-Cookie` field value, or why it would be unsafe.
    pub fn render(&self) -> Result<String, CookieError> {
        if self.name.is_empty() || !self.name.bytes().all(is_tchar) {
            return Err(CookieError::Name(self.name.clone()));
        }
        if !self.value.bytes().all(is_cookie_octet) {
            return Err(CookieError::Value(self.name.clone()));
        }
        let mut out = format!("{}={}", self.name, self.value);
        if let Some(domain) = &self.domain {
            check_attribute(domain, "Domain")?;
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if let Some(secs) = self.expires {
            out.push_str("; Expires=");
            out.push_str(HttpDate::from_unix_secs(secs).as_str());
        }
        if let Some(age) = self.max_age {
            out.push_str(&format!("; Max-Age={}", age.max(0)));
        }
        if let Some(path) = &self.path {
            check_attribute(path, "Path")?;
            out.push_str("; Path=");
            out.push_str(path);
        }
        if self.secure {
            out.push_str("; Secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if let Some(same_site) = self.same_site {
            out.push_str(match same_site {
                SameSite::Strict => "; SameSite=Strict",
                SameSite::Lax => "; SameSite=Lax",
                SameSite::None => "; SameSite=None",
            });
        }
        Ok(out)
    }
}

fn check_attribute(value: &str, which: &'static str) -> Result<(), CookieError> {
    if value.bytes().any(|b| b == b';' || b.is_ascii_control()) {
        return Err(CookieError::Attribute(which));
    }
    Ok(())
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6265 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_attribute_in_order() {
        let c = SetCookie {
            domain: Some("example.com".into()),
            max_age: Some(60),
            secure: true,
            http_only: true,
            same_site: Some(SameSite::Lax),
            ..SetCookie::new("sid", "a1b2")
        };
        assert_eq!(
            c.render().unwrap(),
            "sid=a1b2; Domain=example.com; Max-Age=60; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        let gone = SetCookie::removal("sid", 400 * 86_400).render().unwrap();
        assert!(
            gone.starts_with("sid=; Expires=") && gone.contains("Max-Age=0"),
            "{gone}"
        );
    }

    #[test]
    fn injection_attempts_are_errors() {
        assert!(matches!(
            SetCookie::new("a b", "x").render(),
            Err(CookieError::Name(_))
        ));
        assert!(matches!(
            SetCookie::new("", "x").render(),
            Err(CookieError::Name(_))
        ));
        for bad in ["x\r\nSet-Cookie: evil=1", "a;b", "a b", "a\"b", "a,b", "\\"] {
            assert!(
                matches!(
                    SetCookie::new("n", bad).render(),
                    Err(CookieError::Value(_))
                ),
                "{bad:?}"
            );
        }
        let mut c = SetCookie::new("n", "v");
        c.path = Some("/; Secure".into());
        assert_eq!(c.render(), Err(CookieError::Attribute("Path")));
    }
}

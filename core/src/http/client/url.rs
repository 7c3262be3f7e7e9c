//! Request URLs of the client: `http://` only, parsed with `http::Uri`, and redirect
//! `Location` resolution (RFC 3986 §5.2, the subset HTTP redirects use).
//!
//! Owns address selection for IP literals and `localhost`; never resolves names itself
//! (the core has no DNS): other host names go through the client's resolver hook.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::Uri;

/// A parsed `http://` URL: where to connect and what to put in the request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host as written (brackets removed for IPv6 literals), lower-cased.
    pub host: String,
    /// The port (80, or 443 for `https`, when absent).
    pub port: u16,
    /// `https`: the connection runs TLS, verified against `host`.
    pub tls: bool,
    /// The Host header value (`host[:port]` as written in the URL).
    pub authority: String,
    /// The request-target in origin form (`/path?query`).
    pub path_and_query: String,
    /// The address when the host is an IP literal or `localhost`; else `None` (resolve it).
    pub literal_addr: Option<SocketAddr>,
}

/// Parses an absolute `http://` or `https://` URL; the error says what is wrong with it.
pub fn parse_url(url: &str) -> Result<Target, &'static str> {
    let url = url.split('#').next().unwrap_or(url);
    let uri: Uri = url.parse().map_err(|_| "not a valid URI")?;
    let tls = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        Some(s) if s.eq_ignore_ascii_case("https") => true,
        Some(_) => return Err("only http:// and https:// URLs are supported"),
        None => return Err("URL has no scheme; expected http://host/..."),
    };
    let authority = uri.authority().ok_or("URL has no host")?;
    if authority.as_str().contains('@') {
        return Err("user information in URLs is not supported");
    }
    let raw_host = authority.host();
    if raw_host.is_empty() {
        return Err("URL has no host");
    }
    let port = match authority.port() {
        Some(p) => p.as_u16(),
        None if authority.as_str().ends_with(':') => return Err("empty port"),
        None if tls => 443,
        None => 80,
    };
    let host = raw_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let literal_addr = literal_addr(&host, port);
    // RFC 9112 §3.2: the request-target is ASCII; `http::Uri` lets non-ASCII bytes through
    // in the path and query, so they are percent-encoded here (as curl does).
    let path_and_query = match uri.path_and_query() {
        Some(pq) if !pq.as_str().is_empty() && pq.as_str().starts_with('/') => {
            percent_encode(pq.as_str().as_bytes(), |b| !b.is_ascii())
        }
        Some(pq) if !pq.as_str().is_empty() => {
            format!(
                "/{}",
                percent_encode(pq.as_str().as_bytes(), |b| !b.is_ascii())
            )
        }
        _ => "/".to_owned(),
    };
    Ok(Target {
        host,
        port,
        tls,
        authority: authority.as_str().to_owned(),
        path_and_query,
        literal_addr,
    })
}

/// The address of an IP literal or `localhost` (→ 127.0.0.1).
fn literal_addr(host: &str, port: u16) -> Option<SocketAddr> {
    if host == "localhost" {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Some(SocketAddr::new(IpAddr::V4(v4), port));
    }
    host.parse::<Ipv6Addr>()
        .ok()
        .map(|v6| SocketAddr::new(IpAddr::V6(v6), port))
}

impl Target {
    /// The absolute URL this target names.
    pub fn url(&self) -> String {
        format!("{}{}{}", self.scheme(), self.authority, self.path_and_query)
    }

    /// `https://` or `http://`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https://"
        } else {
            "http://"
        }
    }
}

/// Percent-encodes (`%XX`, upper-case hex) the bytes for which `encode` is true; the rest,
/// existing `%XX` escapes included, are kept.
fn percent_encode(bytes: &[u8], encode: impl Fn(u8) -> bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if encode(b) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// True for bytes that may not appear in a URI reference (RFC 3986 §2): controls, space,
/// `"` `<` `>` `\` `^` `` ` `` `{` `|` `}`, DEL and every non-ASCII byte. `%` (escapes), `#`
/// and `[` `]` (IPv6 hosts) are allowed.
fn not_uri_byte(b: u8) -> bool {
    b <= b' '
        || b >= 0x7f
        || matches!(
            b,
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
        )
}

/// Resolves a redirect's `Location` against the URL of the request that got it.
///
/// Bytes not allowed in a URI (non-ASCII, spaces, ...) are percent-encoded first, as curl
/// does: `/café` becomes `/caf%C3%A9`.
pub fn join_location(base: &Target, location: &str) -> String {
    join_location_bytes(base, location.as_bytes())
}

/// [`join_location`] for a raw `Location` value, which may hold any byte a field value can
/// (UTF-8, Latin-1, ...).
pub(super) fn join_location_bytes(base: &Target, location: &[u8]) -> String {
    let location = percent_encode(location.trim_ascii(), not_uri_byte);
    let location = location.split('#').next().unwrap_or(&location);
    let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || has_scheme(location) {
        return location.to_owned();
    }
    if let Some(rest) = location.strip_prefix("//") {
        return format!("http://{rest}");
    }
    let (base_path, _base_query) = base
        .path_and_query
        .split_once('?')
        .unwrap_or((&base.path_and_query, ""));
    let joined = if location.is_empty() {
        base.path_and_query.clone()
    } else if location.starts_with('/') {
        remove_dot_segments(location)
    } else if location.starts_with('?') {
        format!("{base_path}{location}")
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        remove_dot_segments(&format!("{dir}{location}"))
    };
    format!("{}{}{}", base.scheme(), base.authority, joined)
}

/// True when `s` starts with `scheme ":"` (RFC 3986 §3.1) before any `/`, `?` or `#`.
fn has_scheme(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = &s[..colon];
    !scheme.is_empty()
        && scheme.as_bytes()[0].is_ascii_alphabetic()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Removes `.` and `..` segments from an absolute path (RFC 3986 §5.2.4), keeping the query.
fn remove_dot_segments(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(path_and_query.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls_with_literals_and_defaults() {
        let t = parse_url("http://127.0.0.1:8080/a/b?c=1#frag").unwrap();
        assert_eq!(t.port, 8080);
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path_and_query, "/a/b?c=1");
        assert_eq!(t.literal_addr, Some(([127, 0, 0, 1], 8080).into()));
        let t = parse_url("http://LocalHost").unwrap();
        assert_eq!((t.port, t.path_and_query.as_str()), (80, "/"));
        assert!(t.literal_addr.is_some());
        let t = parse_url("http://[::1]:81/").unwrap();
        assert_eq!(t.literal_addr, Some("[::1]:81".parse().unwrap()));
        let t = parse_url("http://example.com/x").unwrap();
        assert_eq!(t.literal_addr, None);
        assert_eq!(t.host, "example.com");
    }

    #[test]
    fn https_urls_default_to_port_443_and_keep_their_scheme() {
        let t = parse_url("https://Example.com/a?b").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("example.com", 443));
        assert_eq!(t.url(), "https://Example.com/a?b");
        assert_eq!(join_location(&t, "/c"), "https://Example.com/c");
        assert!(!parse_url("http://x/").unwrap().tls);
    }

    #[test]
    fn rejects_other_schemes_and_garbage() {
        for bad in [
            "ftp://x/",
            "/relative",
            "http://",
            "http://u:p@host/",
            "not a url",
            "",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn joins_relative_and_absolute_locations() {
        let base = parse_url("http://h:1/a/b/c?q=1").unwrap();
        assert_eq!(join_location(&base, "/x"), "http://h:1/x");
        assert_eq!(join_location(&base, "d"), "http://h:1/a/b/d");
        assert_eq!(join_location(&base, "../d?z"), "http://h:1/a/d?z");
        assert_eq!(join_location(&base, "./"), "http://h:1/a/b/");
        assert_eq!(join_location(&base, "?r=2"), "http://h:1/a/b/c?r=2");
        assert_eq!(join_location(&base, "//other/p"), "http://other/p");
        assert_eq!(join_location(&base, "http://o:2/p"), "http://o:2/p");
        assert_eq!(join_location(&base, "/../../x"), "http://h:1/x");
    }

    #[test]
    fn non_ascii_paths_and_queries_are_percent_encoded() {
        let t = parse_url("http://h/café/ü?q=é&k=%41#frag-é").unwrap();
        assert_eq!(t.path_and_query, "/caf%C3%A9/%C3%BC?q=%C3%A9&k=%41");
        assert_eq!(t.url(), "http://h/caf%C3%A9/%C3%BC?q=%C3%A9&k=%41");
        // ASCII targets are kept as written, escapes and reserved characters included.
        for pq in ["/a%20b?x=%41&y=/?:@!$'()*+,;=", "/a|b{c}", "/%zz"] {
            let t = parse_url(&format!("http://h{pq}")).unwrap();
            assert_eq!(t.path_and_query, pq);
        }
        assert!(
            parse_url("http://café.example/").is_err(),
            "IDNA is not done"
        );
    }

    #[test]
    fn locations_are_percent_encoded_before_joining() {
        let base = parse_url("http://h:1/a/b?q=1").unwrap();
        assert_eq!(join_location(&base, "/café"), "http://h:1/caf%C3%A9");
        assert_eq!(
            join_location_bytes(&base, b"/\xe9t\xe9"),
            "http://h:1/%E9t%E9"
        );
        assert_eq!(
            join_location(&base, "  c d?e f#g h "),
            "http://h:1/a/c%20d?e%20f"
        );
        assert_eq!(
            join_location(&base, "/x\"<>\\^`{|}\t%41"),
            "http://h:1/x%22%3C%3E%5C%5E%60%7B%7C%7D%09%41"
        );
        assert_eq!(
            join_location(&base, "http://o:2/ü?q=é"),
            "http://o:2/%C3%BC?q=%C3%A9"
        );
        assert!(parse_url(&join_location(&base, "http://ö/")).is_err());
        assert_eq!(join_location(&base, "?é"), "http://h:1/a/b?%C3%A9");
    }
}

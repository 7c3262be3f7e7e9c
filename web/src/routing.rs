//! Routing: request paths (and hosts) to targets by regular expression, as Tornado's
//! `Application` routes — anchored at both ends, captures handed out percent-decoded, named
//! routes reversible into URLs.
//!
//! Owns matching and reversing; what a route points to is generic (`Router<T>`), so this
//! module knows nothing of handlers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eddy_core::http::form::percent_decode;
use regex::{CaptureLocations, Regex};

use crate::run_pattern::{self, RunPattern};

/// Why a route could not be built or reversed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The pattern is not a valid regular expression.
    #[error("invalid route pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What the regex compiler said.
        message: String,
    },
    /// No route has this name.
    #[error("no route named {0:?}")]
    UnknownName(String),
    /// Two routes have the same name.
    #[error("two routes are named {0:?}")]
    DuplicateName(String),
    /// The route's pattern cannot be turned back into a URL (nested or non-capturing groups,
    /// or escapes such as `\d` outside a group).
    #[error("route {0:?} cannot be reversed")]
    NotReversible(String),
    /// `reverse_url` got a different number of arguments than the pattern has groups.
    #[error("route {name:?} takes {expected} arguments, got {got}")]
    ArgumentCount {
        /// The route's name.
        name: String,
        /// Groups in the pattern.
        expected: usize,
        /// Arguments given.
        got: usize,
    },
}

/// A compiled path pattern: `^(?:PATTERN)$`, plus how to reverse it.
#[derive(Debug, Clone)]
pub struct PathPattern {
    source: String,
    regex: Regex,
    /// Capture group names in order (`None` for unnamed groups).
    names: Vec<Option<String>>,
    /// Literal pieces between groups, when the pattern is reversible.
    reverse: Option<Vec<String>>,
    /// `Some(path)` for a pattern that is one literal path (`/`, `/about`): matched by
    /// comparing strings.
    literal: Option<String>,
    /// What every match starts with (`/user/` for `/user/(\d+)`): a path without it is
    /// turned away before the regex runs.
    required_prefix: String,
    /// The pattern as literals and class runs, matched without the regex where it can be.
    runs: Option<RunPattern>,
    /// Capture slots reused by every match (routing allocates nothing for them); the lock
    /// is never contended (an application routes on its loop's thread).
    locations: Arc<Mutex<CaptureLocations>>,
}

/// The captures of a matched path, percent-decoded (`None`: an optional group that did not
/// take part in the match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathArgs {
    /// Unnamed groups in order (empty when the pattern has named groups, as in Tornado).
    pub positional: Vec<Option<String>>,
    /// Named groups, in pattern order.
    pub named: Vec<(String, Option<String>)>,
}

impl PathArgs {
    /// The positional capture at `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.positional.get(i).and_then(|a| a.as_deref())
    }

    /// The named capture `name`.
    pub fn named(&self, name: &str) -> Option<&str> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Captures: a recycled one keeps its slots, emptied, with their strings' room, for
/// [`PathPattern::matches_into`] to write over (it reads as empty strings until then); one
/// that held many captures is not kept.
impl crate::pool::Recyclable for PathArgs {
    fn fresh() -> Self {
        PathArgs::default()
    }

    fn recycle(&mut self) -> bool {
        self.named.clear();
        if self.positional.len() > 8 {
            return false;
        }
        for slot in self.positional.iter_mut().flatten() {
            slot.clear();
        }
        true
    }
}

/// A capture that is not valid UTF-8 once percent-decoded (Tornado answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid unicode in a path argument")]
pub struct InvalidPathArg;

impl PathPattern {
    /// Compiles `pattern`, anchored at both ends.
    pub fn new(pattern: &str) -> Result<PathPattern, RouteError> {
        let (body, regex) = anchored(pattern, "")?;
        let names = regex
            .capture_names()
            .skip(1)
            .map(|n| n.map(str::to_owned))
            .collect::<Vec<_>>();
        let reverse = reverse_pieces(body, names.len());
        let literal = match &reverse {
            Some(pieces) if names.is_empty() => pieces.first().cloned(),
            _ => None,
        };
        let required_prefix = required_prefix(body);
        Ok(PathPattern {
            source: pattern.to_owned(),
            locations: Arc::new(Mutex::new(regex.capture_locations())),
            runs: RunPattern::new(body),
            regex,
            names,
            reverse,
            literal,
            required_prefix,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Number of capture groups.
    pub fn groups(&self) -> usize {
        self.names.len()
    }

    /// Matches `path` (the raw, still percent-encoded request path); captures come decoded.
    pub fn matches(&self, path: &str) -> Option<Result<PathArgs, InvalidPathArg>> {
        let mut args = PathArgs::default();
        self.matches_into(path, &mut args)
            .map(|decoded| decoded.map(|()| args))
    }

    /// [`matches`](Self::matches), the captures written over `args` (whose strings are
    /// reused, so a recycled `PathArgs` makes a match allocate nothing).
    pub fn matches_into(
        &self,
        path: &str,
        args: &mut PathArgs,
    ) -> Option<Result<(), InvalidPathArg>> {
        if !path.starts_with(self.required_prefix.as_str()) {
            return None;
        }
        if self.names.is_empty() {
            if !self.is_match(path) {
                return None;
            }
            args.positional.clear();
            args.named.clear();
            return Some(Ok(()));
        }
        if let Some(runs) = self.runs.as_ref().filter(|r| r.applies_to(path)) {
            let mut spans = [(0, 0); run_pattern::MAX_GROUPS];
            if !runs.matches(path.as_bytes(), &mut spans) {
                return None;
            }
            return Some(self.path_args(path, |i| Some(spans[i]), args));
        }
        let mut locations = self.locations.lock().unwrap_or_else(|e| e.into_inner());
        self.regex.captures_read(&mut locations, path)?;
        Some(self.path_args(path, |i| locations.get(i + 1), args))
    }

    /// Writes the captures at `span(group)` in `path`, decoded and named, over `args`.
    fn path_args(
        &self,
        path: &str,
        span: impl Fn(usize) -> Option<(usize, usize)>,
        args: &mut PathArgs,
    ) -> Result<(), InvalidPathArg> {
        let decode = |i: usize| -> Result<Option<Cow<'_, str>>, InvalidPathArg> {
            match span(i) {
                None => Ok(None),
                Some((start, end)) => match percent_decode(&path.as_bytes()[start..end], false) {
                    Cow::Borrowed(b) => std::str::from_utf8(b)
                        .map(|s| Some(Cow::Borrowed(s)))
                        .map_err(|_| InvalidPathArg),
                    Cow::Owned(v) => String::from_utf8(v)
                        .map(|s| Some(Cow::Owned(s)))
                        .map_err(|_| InvalidPathArg),
                },
            }
        };
        args.named.clear();
        let named = self.names.iter().any(Option::is_some);
        if named {
            args.positional.clear();
            for (i, name) in self.names.iter().enumerate() {
                // Tornado drops unnamed groups when any is named.
                if let Some(n) = name {
                    args.named
                        .push((n.clone(), decode(i)?.map(Cow::into_owned)));
                }
            }
            return Ok(());
        }
        args.positional.truncate(self.names.len());
        for i in 0..self.names.len() {
            let value = decode(i)?;
            match (args.positional.get_mut(i), value) {
                (Some(Some(slot)), Some(value)) => {
                    slot.clear();
                    slot.push_str(&value);
                }
                (Some(slot), value) => *slot = value.map(Cow::into_owned),
                (None, value) => args.positional.push(value.map(Cow::into_owned)),
            }
        }
        Ok(())
    }

    /// True if `path` matches (no captures built).
    pub fn is_match(&self, path: &str) -> bool {
        if let Some(literal) = &self.literal {
            return path == literal;
        }
        if !path.starts_with(self.required_prefix.as_str()) {
            return false;
        }
        match self.runs.as_ref().filter(|r| r.applies_to(path)) {
            Some(runs) => runs.matches(path.as_bytes(), &mut [(0, 0); run_pattern::MAX_GROUPS]),
            None => self.regex.is_match(path),
        }
    }

    /// Builds the URL path for `args` (each percent-encoded), as Tornado's `reverse_url`.
    pub fn reverse(&self, name: &str, args: &[&str]) -> Result<String, RouteError> {
        let pieces = self
            .reverse
            .as_ref()
            .ok_or_else(|| RouteError::NotReversible(name.to_owned()))?;
        if args.len() != self.groups() {
            return Err(RouteError::ArgumentCount {
                name: name.to_owned(),
                expected: self.groups(),
                got: args.len(),
            });
        }
        let mut out = pieces[0].clone();
        for (arg, piece) in args.iter().zip(&pieces[1..]) {
            out.push_str(&crate::escape::url_escape(arg, false));
            out.push_str(piece);
        }
        Ok(out)
    }
}

/// `pattern` without its own `^`/`$`, and compiled anchored at both ends (after `flags`).
fn anchored<'a>(pattern: &'a str, flags: &str) -> Result<(&'a str, Regex), RouteError> {
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    let body = body.strip_suffix('$').unwrap_or(body);
    let regex = Regex::new(&format!("{flags}^(?:{body})$")).map_err(|e| RouteError::Pattern {
        pattern: pattern.to_owned(),
        message: e.to_string(),
    })?;
    Ok((body, regex))
}

/// The longest literal every match of `body` starts with (empty when there is none, or the
/// pattern does not parse on its own: the regex then decides alone).
fn required_prefix(body: &str) -> String {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let Ok(hir) = regex_syntax::parse(&format!("(?:{body})")) else {
        return String::new();
    };
    let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    prefixes
        .longest_common_prefix()
        .and_then(|p| std::str::from_utf8(p).ok())
        .map_or_else(String::new, str::to_owned)
}

/// The literal pieces around the groups of `body` (Tornado's `_find_groups`), or `None`
/// when the pattern cannot be reversed.
fn reverse_pieces(body: &str, groups: usize) -> Option<Vec<String>> {
    if body.matches('(').count() != groups {
        return None; // nested, non-capturing or escaped parentheses
    }
    let mut pieces = Vec::with_capacity(groups + 1);
    let mut fragments = body.split('(');
    pieces.push(unescape_literal(fragments.next().unwrap_or(""))?);
    for fragment in fragments {
        let close = fragment.find(')')?;
        pieces.push(unescape_literal(&fragment[close + 1..])?);
    }
    Some(pieces)
}

/// Undoes `\X` escapes of punctuation; anything regex-special outside a group is refused.
fn unescape_literal(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next()?;
                if next.is_ascii_alphanumeric() {
                    return None; // \d, \w, \b ... have no single literal
                }
                out.push(next);
            }
            '.' | '*' | '+' | '?' | '[' | ']' | '{' | '}' | '|' | '^' | '$' | ')' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A compiled host pattern (virtual hosts): anchored, matched against the host name without
/// its port, case-insensitively.
#[derive(Debug, Clone)]
pub struct HostPattern {
    source: String,
    regex: Regex,
}

impl HostPattern {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<HostPattern, RouteError> {
        let (_, regex) = anchored(pattern, "(?i)")?;
        Ok(HostPattern {
            source: pattern.to_owned(),
            regex,
        })
    }

    /// True if `host_name` (no port) matches.
    pub fn matches(&self, host_name: &str) -> bool {
        self.regex.is_match(host_name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// One route of a [`Router`]: a path pattern, an optional name, and what it points to.
#[derive(Debug, Clone)]
pub struct Rule<T> {
    /// The compiled pattern.
    pub pattern: PathPattern,
    /// The route's name, for `reverse_url`.
    pub name: Option<String>,
    /// What a match yields.
    pub target: T,
}

/// Routes grouped by host pattern; the group added first without a host matches any host and
/// is tried last, as in Tornado.
#[derive(Debug, Clone)]
pub struct Router<T> {
    /// `(host, rules)`; `None` matches every host.
    groups: Vec<(Option<HostPattern>, Vec<Rule<T>>)>,
    names: HashMap<String, (usize, usize)>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router {
            groups: vec![(None, Vec::new())],
            names: HashMap::new(),
        }
    }
}

impl<T> Router<T> {
    /// Adds rules to the any-host group.
    pub fn add(&mut self, rules: Vec<Rule<T>>) -> Result<(), RouteError> {
        let last = self.groups.len() - 1;
        self.extend_group(last, rules)
    }

    /// Adds rules for hosts matching `host`, tried before the any-host group.
    pub fn add_for_host(&mut self, host: &str, rules: Vec<Rule<T>>) -> Result<(), RouteError> {
        let pattern = HostPattern::new(host)?;
        let at = self.groups.len() - 1;
        self.groups.insert(at, (Some(pattern), Vec::new()));
        // Indices of the any-host group's names moved by one.
        for (group, _) in self.names.values_mut() {
            if *group >= at {
                *group += 1;
            }
        }
        self.extend_group(at, rules)
    }

    fn extend_group(&mut self, group: usize, rules: Vec<Rule<T>>) -> Result<(), RouteError> {
        for rule in rules {
            if let Some(name) = &rule.name {
                let index = self.groups[group].1.len();
                if self.names.insert(name.clone(), (group, index)).is_some() {
                    return Err(RouteError::DuplicateName(name.clone()));
                }
            }
            self.groups[group].1.push(rule);
        }
        Ok(())
    }

    /// The first rule matching the host name and `path`, with its captures; `host_name` is
    /// asked for only when virtual hosts are routed.
    pub fn find<'h>(
        &self,
        host_name: impl FnOnce() -> &'h str,
        path: &str,
    ) -> Option<(&Rule<T>, Result<PathArgs, InvalidPathArg>)> {
        let mut args = PathArgs::default();
        let (rule, decoded) = self.find_into(host_name, path, &mut args)?;
        Some((rule, decoded.map(|()| args)))
    }

    /// [`find`](Self::find), the captures written over `args` (see
    /// [`PathPattern::matches_into`]).
    pub fn find_into<'h>(
        &self,
        host_name: impl FnOnce() -> &'h str,
        path: &str,
        args: &mut PathArgs,
    ) -> Option<(&Rule<T>, Result<(), InvalidPathArg>)> {
        let mut host_name = LazyHost::new(host_name);
        for (host, rules) in &self.groups {
            if host.as_ref().is_some_and(|h| !h.matches(host_name.get())) {
                continue;
            }
            for rule in rules {
                if let Some(decoded) = rule.pattern.matches_into(path, args) {
                    return Some((rule, decoded));
                }
            }
        }
        None
    }

    /// Every rule's target, in no particular order.
    pub fn targets(&self) -> impl Iterator<Item = &T> {
        self.groups
            .iter()
            .flat_map(|(_, rules)| rules.iter().map(|r| &r.target))
    }

    /// What the first rule matching `host_name` and `path` points to, without building its
    /// captures (cheaper than [`find`](Self::find) when only the target matters).
    pub fn find_target<'h>(&self, host_name: impl FnOnce() -> &'h str, path: &str) -> Option<&T> {
        let mut host_name = LazyHost::new(host_name);
        self.groups
            .iter()
            .filter(|(host, _)| host.as_ref().map_or(true, |h| h.matches(host_name.get())))
            .flat_map(|(_, rules)| rules)
            .find(|rule| rule.pattern.is_match(path))
            .map(|rule| &rule.target)
    }

    /// The URL path of the route named `name` with `args` filled in.
    pub fn reverse_url(&self, name: &str, args: &[&str]) -> Result<String, RouteError> {
        let &(group, index) = self
            .names
            .get(name)
            .ok_or_else(|| RouteError::UnknownName(name.to_owned()))?;
        self.groups[group].1[index].pattern.reverse(name, args)
    }
}

/// A host name computed on first use (most applications route no virtual hosts).
struct LazyHost<'h, F> {
    make: Option<F>,
    name: &'h str,
}

impl<'h, F: FnOnce() -> &'h str> LazyHost<'h, F> {
    fn new(make: F) -> Self {
        LazyHost {
            make: Some(make),
            name: "",
        }
    }

    fn get(&mut self) -> &'h str {
        if let Some(make) = self.make.take() {
            self.name = make();
        }
        self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, name: Option<&str>, target: u32) -> Rule<u32> {
        Rule {
            pattern: PathPattern::new(pattern).unwrap(),
            name: name.map(str::to_owned),
            target,
        }
    }

    #[test]
    fn patterns_are_anchored_at_both_ends() {
        let p = PathPattern::new(r"/user/(\d+)").unwrap();
        assert!(p.matches("/user/12").is_some());
        assert!(p.matches("/user/12/x").is_none());
        assert!(p.matches("/x/user/12").is_none());
        let alt = PathPattern::new(r"/a|/b").unwrap();
        assert!(alt.matches("/a").is_some() && alt.matches("/b").is_some());
        assert!(
            alt.matches("/ab").is_none(),
            "alternation stays inside the anchors"
        );
    }

    #[test]
    fn captures_are_percent_decoded_positional_or_named() {
        let p = PathPattern::new(r"/f/([^/]+)/(\d+)?").unwrap();
        let args = p.matches("/f/a%20b%2Fc+d/").unwrap().unwrap();
        assert_eq!(args.positional, vec![Some("a b/c+d".into()), None]);
        let n = PathPattern::new(r"/u/(?P<id>\d+)/(\w+)").unwrap();
        let args = n.matches("/u/7/x").unwrap().unwrap();
        assert!(args.positional.is_empty());
        assert_eq!(args.named("id"), Some("7"));
        assert_eq!(
            PathPattern::new("/(.*)").unwrap().matches("/%ff"),
            Some(Err(InvalidPathArg))
        );
    }

    #[test]
    fn reverse_url_follows_tornados_rules() {
        let mut r = Router::default();
        r.add(vec![
            rule(r"/user/(\d+)", Some("user"), 1),
            rule(r"/a/([^/]+)/b/(\w+)\.json", Some("two"), 2),
            rule(r"/x/(?:\d+)", Some("nc"), 3),
            rule(r"/static/", Some("plain"), 4),
        ])
        .unwrap();
        assert_eq!(r.reverse_url("user", &["42"]).unwrap(), "/user/42");
        assert_eq!(
            r.reverse_url("two", &["a b", "c/d"]).unwrap(),
            "/a/a%20b/b/c%2Fd.json"
        );
        assert_eq!(r.reverse_url("plain", &[]).unwrap(), "/static/");
        assert!(matches!(
            r.reverse_url("nc", &["1"]),
            Err(RouteError::NotReversible(_))
        ));
        assert!(matches!(
            r.reverse_url("user", &[]),
            Err(RouteError::ArgumentCount {
                expected: 1,
                got: 0,
                ..
            })
        ));
        assert!(matches!(
            r.reverse_url("nope", &[]),
            Err(RouteError::UnknownName(_))
        ));
        assert!(matches!(
            r.add(vec![rule("/dup", Some("user"), 5)]),
            Err(RouteError::DuplicateName(_))
        ));
    }

    #[test]
    fn host_groups_are_tried_before_the_any_host_group() {
        let mut r = Router::default();
        r.add(vec![rule("/", Some("home"), 1)]).unwrap();
        r.add_for_host(r"api\.example\.com", vec![rule("/", None, 2)])
            .unwrap();
        assert_eq!(r.find(|| "API.example.com", "/").unwrap().0.target, 2);
        assert_eq!(r.find(|| "www.example.com", "/").unwrap().0.target, 1);
        assert_eq!(
            r.reverse_url("home", &[]).unwrap(),
            "/",
            "names survive the insert"
        );
    }

    #[test]
    fn literal_and_prefixed_patterns_skip_the_regex_but_match_as_it_does() {
        let home = PathPattern::new("/").unwrap();
        assert!(home.literal.is_some());
        assert!(home.matches("/").is_some() && home.matches("//").is_none());
        let dot = PathPattern::new(r"/a\.b").unwrap();
        assert_eq!(dot.literal.as_deref(), Some("/a.b"));
        assert!(dot.matches("/aXb").is_none());
        let user = PathPattern::new(r"/user/(\d+)").unwrap();
        assert_eq!(user.required_prefix, "/user/");
        let optional = PathPattern::new(r"/ab?c").unwrap();
        assert_eq!(
            optional.required_prefix, "/a",
            "an optional letter is not required"
        );
        assert!(optional.matches("/ac").is_some());
        let either = PathPattern::new(r"/a|/b").unwrap();
        assert_eq!(either.required_prefix, "/");
    }

    proptest::proptest! {
        /// Whatever shortcut a pattern takes (literal, required prefix, reused capture
        /// slots), it matches and captures exactly as the anchored regex does.
        #[test]
        fn shortcuts_agree_with_the_regex(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "/", "a", "b", ".", r"\.", "x?", "b*", "|", r"(\d+)", "([^/]+)", "(a|b)",
                "(?:ab)", "(.*)", "[ab]", r"(\w+)", "([^/]+)", r"\d+", r"(a{2,})", "(b+?)",
            ]), 0..6),
            paths in proptest::collection::vec("[/ab.1x\n\u{e9}\u{663}\u{1f600}]{0,8}", 1..8),
        ) {
            let body = pieces.concat();
            let Ok(pattern) = PathPattern::new(&body) else { return Ok(()); };
            let regex = Regex::new(&format!("^(?:{body})$")).unwrap();
            // One `PathArgs` written over again and again, recycled as the pool does.
            let mut reused = PathArgs {
                positional: vec![Some("stale".into()), None, Some("x".repeat(40))],
                named: vec![("n".into(), Some("stale".into()))],
            };
            for path in &paths {
                let ours = pattern.matches(path);
                match pattern.matches_into(path, &mut reused) {
                    Some(Ok(())) => proptest::prop_assert_eq!(Some(&reused), ours.as_ref().and_then(|r| r.as_ref().ok())),
                    Some(Err(_)) => proptest::prop_assert!(matches!(ours, Some(Err(_)))),
                    None => proptest::prop_assert!(ours.is_none()),
                }
                crate::pool::Recyclable::recycle(&mut reused);
                proptest::prop_assert_eq!(ours.is_some(), regex.is_match(path), "{} on {}", body, path);
                proptest::prop_assert_eq!(pattern.is_match(path), regex.is_match(path));
                if let (Some(Ok(args)), Some(caps)) = (ours, regex.captures(path)) {
                    let expected: Vec<Option<String>> = caps
                        .iter()
                        .skip(1)
                        .map(|m| m.map(|m| m.as_str().to_owned()))
                        .collect();
                    proptest::prop_assert_eq!(args.positional, expected);
                }
            }
        }
    }

    #[test]
    fn an_invalid_pattern_is_an_error_value() {
        assert!(matches!(
            PathPattern::new("/(unclosed"),
            Err(RouteError::Pattern { .. })
        ));
    }
}

//! Which requests a rule covers: path (exact, prefix, or a segment pattern), methods, host,
//! and the host's route name. Matching is linear in the path's length: no regular expression
//! engine (and no backtracking) ever runs on a request path.

use serde::Deserialize;

use crate::config::ConfigError;

/// The request attributes rules match on, as the host hands them over.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestAttributes<'a> {
    /// `:path`, query string included (it is cut off before matching).
    pub path: Option<&'a [u8]>,
    /// `:method`.
    pub method: Option<&'a [u8]>,
    /// `:authority` (or `host`).
    pub authority: Option<&'a [u8]>,
    /// The host's name for the route the request took (Envoy's `route_name`).
    pub route: Option<&'a [u8]>,
}

/// What a rule matches. Every part that is set must match; an empty match covers everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestMatch {
    path: Option<PathMatch>,
    /// Upper case.
    methods: Vec<String>,
    hosts: Vec<HostMatch>,
    route: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatch {
    Exact(String),
    Prefix(String),
    Pattern(Vec<Segment>),
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one non-empty segment.
    One,
    /// `**`, last only: whatever follows, zero or more segments.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// Lower case, no port.
    Exact(String),
    /// `*.example.com`: the suffix `.example.com`, at least one label before it.
    Suffix(String),
}

/// Which request attributes a set of rules reads (the host reads only those).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchNeeds {
    /// `:path`.
    pub path: bool,
    /// `:method`.
    pub method: bool,
    /// `:authority`.
    pub authority: bool,
    /// The route name.
    pub route: bool,
}

impl MatchNeeds {
    /// Both sets of needs.
    pub fn union(self, other: MatchNeeds) -> MatchNeeds {
        MatchNeeds {
            path: self.path || other.path,
            method: self.method || other.method,
            authority: self.authority || other.authority,
            route: self.route || other.route,
        }
    }
}

impl RequestMatch {
    /// Whether the request is covered.
    pub fn matches(&self, request: &RequestAttributes<'_>) -> bool {
        if let Some(path) = &self.path {
            let Some(full) = request.path else {
                return false;
            };
            if !path.matches(path_only(full)) {
                return false;
            }
        }
        if !self.methods.is_empty() {
            let Some(method) = request.method else {
                return false;
            };
            if !self.methods.iter().any(|m| m.as_bytes() == method) {
                return false;
            }
        }
        if !self.hosts.is_empty() {
            let Some(authority) = request.authority else {
                return false;
            };
            let host = host_only(authority);
            if !self.hosts.iter().any(|h| h.matches(host)) {
                return false;
            }
        }
        if let Some(route) = &self.route
            && request.route != Some(route.as_bytes())
        {
            return false;
        }
        true
    }

    /// Whether this match covers every request (nothing set).
    pub fn is_catch_all(&self) -> bool {
        self.path.is_none()
            && self.methods.is_empty()
            && self.hosts.is_empty()
            && self.route.is_none()
    }

    /// What matching reads.
    pub fn needs(&self) -> MatchNeeds {
        MatchNeeds {
            path: self.path.is_some(),
            method: !self.methods.is_empty(),
            authority: !self.hosts.is_empty(),
            route: self.route.is_some(),
        }
    }

    /// Whether every request this match covers is also covered by `earlier` (so a rule with
    /// this match after one with `earlier` can never be reached). Conservative: `false` when
    /// not sure.
    pub fn is_shadowed_by(&self, earlier: &RequestMatch) -> bool {
        let path = match (&earlier.path, &self.path) {
            (None, _) => true,
            (Some(PathMatch::Prefix(p)), Some(PathMatch::Prefix(q))) => q.starts_with(p.as_str()),
            (Some(PathMatch::Prefix(p)), Some(PathMatch::Exact(q))) => q.starts_with(p.as_str()),
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        let methods = earlier.methods.is_empty()
            || (!self.methods.is_empty()
                && self.methods.iter().all(|m| earlier.methods.contains(m)));
        let hosts = earlier.hosts.is_empty()
            || (!self.hosts.is_empty() && self.hosts.iter().all(|h| earlier.hosts.contains(h)));
        let route = earlier.route.is_none() || earlier.route == self.route;
        path && methods && hosts && route
    }
}

impl PathMatch {
    fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathMatch::Exact(exact) => path == exact.as_bytes(),
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
            PathMatch::Pattern(segments) => pattern_matches(segments, path),
        }
    }
}

/// One pass over the path's segments against the pattern's.
fn pattern_matches(pattern: &[Segment], path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else {
        return false;
    };
    let mut segments = rest.split(|b| *b == b'/');
    for (index, expected) in pattern.iter().enumerate() {
        match expected {
            Segment::Rest => return index + 1 == pattern.len(),
            Segment::One => match segments.next() {
                Some(segment) if !segment.is_empty() => {}
                _ => return false,
            },
            Segment::Literal(literal) => match segments.next() {
                Some(segment) if segment == literal.as_bytes() => {}
                _ => return false,
            },
        }
    }
    segments.next().is_none()
}

/// The path without its query string or fragment.
fn path_only(path: &[u8]) -> &[u8] {
    let end = path
        .iter()
        .position(|b| *b == b'?' || *b == b'#')
        .unwrap_or(path.len());
    &path[..end]
}

/// The host of an authority, without port (IPv6 literals keep their brackets).
fn host_only(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        let end = authority
            .iter()
            .position(|b| *b == b']')
            .map_or(authority.len(), |at| at + 1);
        return &authority[..end];
    }
    match authority.iter().rposition(|b| *b == b':') {
        Some(at) => &authority[..at],
        None => authority,
    }
}

impl HostMatch {
    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostMatch::Exact(exact) => host.eq_ignore_ascii_case(exact.as_bytes()),
            HostMatch::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

// ----- wire form -----

/// A rule's `match` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    path: Option<RawPath>,
    methods: Option<Vec<String>>,
    hosts: Option<Vec<String>>,
    route: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    exact: Option<String>,
    prefix: Option<String>,
    pattern: Option<String>,
}

/// Validates a rule's `match`; `field` is its path in the configuration.
pub fn parse(raw: RawMatch, field: &str) -> Result<RequestMatch, ConfigError> {
    let error = |name: &str, problem: &str| ConfigError::new(format!("{field}.{name}"), problem);
    let path = match raw.path {
        None => None,
        Some(path) => Some(match (path.exact, path.prefix, path.pattern) {
            (Some(exact), None, None) => {
                check_path(&exact).map_err(|problem| error("path.exact", problem))?;
                PathMatch::Exact(exact)
            }
            (None, Some(prefix), None) => {
                check_path(&prefix).map_err(|problem| error("path.prefix", problem))?;
                PathMatch::Prefix(prefix)
            }
            (None, None, Some(pattern)) => PathMatch::Pattern(
                parse_pattern(&pattern).map_err(|problem| error("path.pattern", problem))?,
            ),
            _ => {
                return Err(error(
                    "path",
                    "set exactly one of `exact`, `prefix` or `pattern`",
                ));
            }
        }),
    };
    let mut methods = Vec::new();
    for (index, method) in raw.methods.unwrap_or_default().into_iter().enumerate() {
        let valid = !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic());
        if !valid {
            return Err(error(
                &format!("methods[{index}]"),
                "must be an HTTP method name such as GET",
            ));
        }
        methods.push(method.to_ascii_uppercase());
    }
    let mut hosts = Vec::new();
    for (index, host) in raw.hosts.unwrap_or_default().into_iter().enumerate() {
        let host = host.to_ascii_lowercase();
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host.as_str()),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            return Err(error(
                &format!("hosts[{index}]"),
                "must be a host name, or `*.` and a domain (no port)",
            ));
        }
        hosts.push(if wildcard {
            HostMatch::Suffix(format!(".{name}"))
        } else {
            HostMatch::Exact(name.to_owned())
        });
    }
    if let Some(route) = &raw.route
        && route.is_empty()
    {
        return Err(error("route", "must not be empty"));
    }
    Ok(RequestMatch {
        path,
        methods,
        hosts,
        route: raw.route,
    })
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must start with `/`");
    }
    if path.contains(['?', '#']) {
        return Err("matches the path only: no `?` or `#`");
    }
    Ok(())
}

/// `/api/*/orders`, `/static/**`: literal segments, `*` for exactly one segment, `**` as the
/// last segment for whatever follows.
fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, &'static str> {
    check_path(pattern)?;
    let parts: Vec<&str> = pattern[1..].split('/').collect();
    let mut segments = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        segments.push(match *part {
            "**" if index + 1 == parts.len() => Segment::Rest,
            "**" => return Err("`**` may only be the last segment"),
            "*" => Segment::One,
            part if part.contains('*') => {
                return Err("`*` stands for a whole segment: `/a/*/b`, not `/a/b*`");
            }
            part => Segment::Literal(part.to_owned()),
        });
    }
    Ok(segments)
}

#[cfg(test)]
#[path = "matcher_tests.rs"]
mod tests;

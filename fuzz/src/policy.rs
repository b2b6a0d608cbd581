//! The policy rule matcher, through the configuration parser and the engine: arbitrary rules
//! (paths exact, prefix and patterns, methods, hosts, route names; every kind of requirement)
//! and arbitrary requests.
//!
//! Invariants: no panic; the rule that decides is the first one whose match covers the
//! request by the documented semantics (computed here independently); the decision is the
//! one the rule's requirement gives for no token, a valid token or a forged one; a request no
//! rule covers is refused with 403 or forwarded, as `unmatched` says.

use std::sync::OnceLock;

use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::config;
use tokengate::engine::{Decision, Engine, Request};
use tokengate::rejection::Rejection;
use tokengate::testkit::{TokenSpec, tamper_signature};

use crate::input::Choices;
use crate::keys::Key;
use crate::oracle;

const ISSUER: &str = "https://idp.example";
const NOW: i64 = 1_750_000_000;
const SEGMENTS: [&str; 11] = [
    "api", "v1", "*", "**", "orders", "a", "", " ", "%2F", "\u{e9}", "A",
];

#[derive(Debug, Clone)]
enum PathRule {
    Exact(String),
    Prefix(String),
    Pattern(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requires {
    Public,
    Provider,
    AllowMissing,
    AllowMissingOrFailed,
}

#[derive(Debug, Clone)]
struct RuleSpec {
    path: Option<PathRule>,
    methods: Vec<String>,
    hosts: Vec<String>,
    route: Option<String>,
    requires: Requires,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    None,
    Valid,
    Forged,
}

fn path_text(c: &mut Choices<'_>) -> String {
    let mut path = String::new();
    for _ in 0..=c.upto(3) {
        path.push('/');
        if c.index(5) == 0 {
            path.push_str(&c.text(4));
        } else {
            path.push_str(c.pick(&SEGMENTS));
        }
    }
    path
}

fn rule(c: &mut Choices<'_>) -> RuleSpec {
    let path = match c.index(4) {
        1 => Some(PathRule::Exact(path_text(c))),
        2 => Some(PathRule::Prefix(path_text(c))),
        3 => Some(PathRule::Pattern(path_text(c))),
        _ => None,
    };
    let methods = match c.index(3) {
        1 => (0..=c.upto(1))
            .map(|_| c.pick(&["GET", "post", "DELETE", "G3T", "Get"]).to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let hosts = match c.index(3) {
        1 => (0..=c.upto(1))
            .map(|_| {
                c.pick(&[
                    "api.example.com",
                    "*.example.com",
                    "EXAMPLE.com",
                    "a:80",
                    "*.",
                    "[::1]",
                    "x-y.example.com",
                ])
                .to_owned()
            })
            .collect(),
        _ => Vec::new(),
    };
    let route = match c.index(4) {
        1 => Some("orders".to_owned()),
        2 => Some(c.text(6)),
        3 => Some("reports".to_owned()),
        _ => None,
    };
    let requires = c.pick(&[
        Requires::Provider,
        Requires::Public,
        Requires::AllowMissing,
        Requires::AllowMissingOrFailed,
    ]);
    RuleSpec {
        path,
        methods,
        hosts,
        route,
        requires,
    }
}

fn rule_json(index: usize, rule: &RuleSpec) -> Value {
    let mut matcher = serde_json::Map::new();
    match &rule.path {
        Some(PathRule::Exact(p)) => drop(matcher.insert("path".into(), json!({"exact": p}))),
        Some(PathRule::Prefix(p)) => drop(matcher.insert("path".into(), json!({"prefix": p}))),
        Some(PathRule::Pattern(p)) => drop(matcher.insert("path".into(), json!({"pattern": p}))),
        None => {}
    }
    if !rule.methods.is_empty() {
        matcher.insert("methods".into(), json!(rule.methods));
    }
    if !rule.hosts.is_empty() {
        matcher.insert("hosts".into(), json!(rule.hosts));
    }
    if let Some(route) = &rule.route {
        matcher.insert("route".into(), json!(route));
    }
    let requires = match rule.requires {
        Requires::Public => json!("public"),
        Requires::Provider => json!({"provider": "idp"}),
        Requires::AllowMissing => json!({"any": [{"provider": "idp"}, "allow_missing"]}),
        Requires::AllowMissingOrFailed => {
            json!({"any": [{"provider": "idp"}, "allow_missing_or_failed"]})
        }
    };
    json!({"name": format!("r{index}"), "match": matcher, "requires": requires})
}

// ----- the documented semantics, written independently -----

fn pattern_covers(pattern: &[&str], path: &[&[u8]]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some((&"**", rest)), _) => rest.is_empty(),
        (Some(_), None) => false,
        (Some((&"*", rest)), Some((segment, more))) => {
            !segment.is_empty() && pattern_covers(rest, more)
        }
        (Some((literal, rest)), Some((segment, more))) => {
            literal.as_bytes() == *segment && pattern_covers(rest, more)
        }
    }
}

fn covers(
    rule: &RuleSpec,
    path: Option<&[u8]>,
    method: Option<&[u8]>,
    authority: Option<&[u8]>,
    route: Option<&[u8]>,
) -> bool {
    if let Some(path_rule) = &rule.path {
        let Some(path) = path else { return false };
        let end = path
            .iter()
            .position(|b| b"?#".contains(b))
            .unwrap_or(path.len());
        let path = &path[..end];
        let ok = match path_rule {
            PathRule::Exact(p) => path == p.as_bytes(),
            PathRule::Prefix(p) => path.starts_with(p.as_bytes()),
            PathRule::Pattern(p) => match (p.strip_prefix('/'), path.strip_prefix(b"/")) {
                (Some(p), Some(path)) => {
                    let pattern: Vec<&str> = p.split('/').collect();
                    let segments: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
                    pattern_covers(&pattern, &segments)
                }
                _ => false,
            },
        };
        if !ok {
            return false;
        }
    }
    if !rule.methods.is_empty() {
        let Some(method) = method else { return false };
        if !rule
            .methods
            .iter()
            .any(|m| m.to_ascii_uppercase().as_bytes() == method)
        {
            return false;
        }
    }
    if !rule.hosts.is_empty() {
        let Some(authority) = authority else {
            return false;
        };
        let host: &[u8] = if authority.starts_with(b"[") {
            match authority.iter().position(|b| *b == b']') {
                Some(at) => &authority[..=at],
                None => authority,
            }
        } else {
            match authority.iter().rposition(|b| *b == b':') {
                Some(at) => &authority[..at],
                None => authority,
            }
        };
        let host = host.to_ascii_lowercase();
        let any = rule.hosts.iter().any(|h| {
            let h = h.to_ascii_lowercase();
            match h.strip_prefix("*.") {
                Some(domain) => {
                    let suffix = format!(".{domain}");
                    host.len() > suffix.len() && host.ends_with(suffix.as_bytes())
                }
                None => host == h.as_bytes(),
            }
        });
        if !any {
            return false;
        }
    }
    match &rule.route {
        Some(name) => route == Some(name.as_bytes()),
        None => true,
    }
}

fn tokens() -> &'static (String, String) {
    static TOKENS: OnceLock<(String, String)> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let valid = TokenSpec::access_token(Algorithm::EdDsa, "ed", ISSUER, "api", NOW)
            .sign(Key::Ed25519.test_key());
        let forged = tamper_signature(&valid);
        (valid, forged)
    })
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut c = Choices::new(data);
    let rules: Vec<RuleSpec> = (0..=c.upto(5)).map(|_| rule(&mut c)).collect();
    let unmatched = c.pick(&[None, Some("deny"), Some("public")]);
    let mut config = json!({
        "providers": {"idp": {
            "issuer": ISSUER, "audiences": ["api"], "algorithms": ["EdDSA"],
            "jwks": {"inline": {"keys": [Key::Ed25519.public_jwk("ed", Some("EdDSA"))]}}
        }},
        "rules": rules.iter().enumerate().map(|(i, r)| rule_json(i, r)).collect::<Vec<_>>(),
    });
    if let Some(unmatched) = unmatched {
        config["unmatched"] = json!(unmatched);
    }
    let Ok(config) = config::parse(config.to_string().as_bytes()) else {
        return;
    };
    let mut engine = Engine::new(config);
    for _ in 0..=c.upto(3) {
        let path: Option<Vec<u8>> = match c.index(6) {
            0 => None,
            1 => Some(c.bytes(16)),
            _ => {
                let mut path = path_text(&mut c).into_bytes();
                path.extend_from_slice(c.pick(&["", "", "?a=1", "#x", "/", "?"]).as_bytes());
                Some(path)
            }
        };
        let method = c.pick(&[Some("GET"), Some("POST"), Some("get"), Some("DELETE"), None]);
        let authority = c.pick(&[
            Some("api.example.com"),
            Some("API.example.com:8443"),
            Some("x.example.com"),
            Some("example.com"),
            Some("[::1]:80"),
            Some("[::1]"),
            Some("a:80:80"),
            Some(".example.com"),
            None,
        ]);
        let route: Option<Vec<u8>> = match c.index(5) {
            0 => None,
            1 => Some(b"orders".to_vec()),
            2 => Some(b"reports".to_vec()),
            _ => Some(c.bytes(6)),
        };
        let token = c.pick(&[TokenKind::None, TokenKind::Valid, TokenKind::Forged]);
        let mut headers = Vec::new();
        if let Some(path) = &path {
            headers.push((":path".to_owned(), path.clone()));
        }
        if let Some(method) = method {
            headers.push((":method".to_owned(), method.as_bytes().to_vec()));
        }
        if let Some(authority) = authority {
            headers.push((":authority".to_owned(), authority.as_bytes().to_vec()));
        }
        let (valid, forged) = tokens();
        match token {
            TokenKind::None => {}
            TokenKind::Valid => headers.push((
                "authorization".to_owned(),
                format!("Bearer {valid}").into_bytes(),
            )),
            TokenKind::Forged => headers.push((
                "authorization".to_owned(),
                format!("Bearer {forged}").into_bytes(),
            )),
        }
        let request = Request {
            headers,
            route: route.clone(),
            body_follows: false,
        };
        let evaluation = engine.authenticate(&request, NOW);
        let expected_rule = rules.iter().position(|rule| {
            covers(
                rule,
                path.as_deref(),
                method.map(str::as_bytes),
                authority.map(str::as_bytes),
                route.as_deref(),
            )
        });
        assert_eq!(
            evaluation.rule, expected_rule,
            "rule for path {path:?} method {method:?} authority {authority:?} route {route:?}"
        );
        if let Decision::Deny(rejection) = &evaluation.decision {
            oracle::check_rejection(rejection);
        }
        let allowed = matches!(evaluation.decision, Decision::Allow(_));
        let identified =
            matches!(&evaluation.decision, Decision::Allow(a) if !a.identities.is_empty());
        match expected_rule.map(|rule| rules[rule].requires) {
            None => match unmatched {
                Some("public") => assert!(allowed && !identified),
                _ => assert_eq!(evaluation.decision, Decision::Deny(Rejection::NoRule)),
            },
            Some(Requires::Public) => assert!(allowed && !identified),
            Some(requires) => match (requires, token) {
                (_, TokenKind::Valid) => assert!(allowed && identified, "{evaluation:?}"),
                (Requires::Provider, TokenKind::None) => {
                    assert_eq!(evaluation.decision, Decision::Deny(Rejection::MissingToken))
                }
                (Requires::AllowMissingOrFailed, _) | (Requires::AllowMissing, TokenKind::None) => {
                    assert!(allowed && !identified, "{evaluation:?}")
                }
                (_, TokenKind::Forged) => {
                    assert_eq!(evaluation.decision, Decision::Deny(Rejection::BadSignature))
                }
                _ => unreachable!(),
            },
        }
    }
}

//! Token extraction from arbitrary header lists, for each kind of token source, and the
//! header update that removes the token before forwarding.
//!
//! Invariants: no panic; an extracted token is non-empty, made of RFC 6750 `b64token`
//! characters, and lies inside a value of the header it is read from (`:path` for a query
//! parameter, `cookie` for a cookie); once the removal update is applied, the request carries
//! no token of that source any more.

use serde_json::{Value, json};
use tokengate::config::{self, TokenSource};
use tokengate::token_source::{HeaderUpdate, extract, strip_update};

use crate::input::Choices;

const SOURCES: [&str; 7] = [
    r#"{}"#,
    r#"{"header": "Authorization", "prefix": "Token "}"#,
    r#"{"header": "x-token"}"#,
    r#"{"header": "x-token", "prefix": "Bearer"}"#,
    r#"{"query": "access_token"}"#,
    r#"{"cookie": "session"}"#,
    r#"{"header": "cookie", "prefix": "session="}"#,
];

const PIECES: [&str; 22] = [
    "Bearer ",
    "bearer",
    "BEARER  ",
    "Token ",
    " ",
    ",",
    ";",
    "=",
    "session=",
    "access_token=",
    "?",
    "&",
    "#",
    "/api",
    "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    "abc-_~+/",
    "==",
    "\t",
    "%20",
    "\u{e9}",
    "session",
    "x=1",
];

/// The token source of a provider configured with `token_source` = `source` (`{}`: none).
fn source(source: &str) -> TokenSource {
    let mut provider = json!({
        "issuer": "https://idp.example", "audiences": [],
        "jwks": {"remote": {"cluster": "idp", "authority": "idp", "path": "/certs"}}
    });
    let source: Value = serde_json::from_str(source).expect("source JSON");
    if source.as_object().is_some_and(|o| !o.is_empty()) {
        provider["token_source"] = source;
    }
    let config = config::parse(provider.to_string().as_bytes()).expect("a valid token source");
    config.providers[0].token_source.clone()
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut c = Choices::new(data);
    let source = source(c.pick(&SOURCES));
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for _ in 0..=c.upto(5) {
        let name = c.pick(&["authorization", "x-token", "cookie", ":path", "x-other"]);
        let mut value = Vec::new();
        for _ in 0..=c.upto(5) {
            match c.index(PIECES.len() + 2) {
                at if at < PIECES.len() => value.extend_from_slice(PIECES[at].as_bytes()),
                at if at == PIECES.len() => value.extend(c.bytes(12)),
                _ => value.push(c.byte()),
            }
        }
        headers.push((name.to_owned(), value));
    }

    let from = match &source {
        TokenSource::Header { name, .. } => name.clone(),
        TokenSource::Query { .. } => ":path".to_owned(),
        TokenSource::Cookie { .. } => "cookie".to_owned(),
    };
    let Ok(Some(token)) = extract(&source, &headers) else {
        return;
    };
    assert!(!token.is_empty());
    let body = token.trim_end_matches('=');
    assert!(
        !body.is_empty()
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)),
        "extracted {token:?}"
    );
    let inside = headers.iter().any(|(name, value)| {
        *name == from && {
            let range = value.as_ptr_range();
            let start = token.as_ptr();
            range.start <= start && start.wrapping_add(token.len()) <= range.end
        }
    });
    assert!(inside, "{token:?} is not inside a `{from}` value");
    let token = token.to_owned();

    let update = strip_update(&source, &headers)
        .unwrap_or_else(|| panic!("no update removes the token {token:?} from {headers:?}"));
    let mut stripped = headers.clone();
    match &update {
        HeaderUpdate::Remove(name) => stripped.retain(|(n, _)| n != name),
        HeaderUpdate::Set(name, value) => {
            stripped.retain(|(n, _)| n != name);
            stripped.push((name.clone(), value.clone().into_bytes()));
        }
    }
    match extract(&source, &stripped) {
        Ok(None) => {}
        other => panic!(
            "after {update:?} the request still carries {other:?} (was {token:?} in {headers:?})"
        ),
    }
}

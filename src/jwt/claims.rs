//! Claim checks shared by local validation and introspection — issuer, audience, token type —
//! and the values forwarded upstream; claim paths.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::{Map, Value};

use crate::config::Provider;
use crate::rejection::{MalformedToken, Rejection};

/// Forwarded header values longer than this are refused rather than sent upstream.
pub const MAX_FORWARDED_VALUE_BYTES: usize = 8192;

/// Where a claim is: `sub`, or a path into nested objects such as `realm_access.roles`.
///
/// Written as a dotted string, where `\.` is a dot inside a name and `\\` a backslash
/// (`kubernetes\.io.namespace`), or as a list of names (`["kubernetes.io", "namespace"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(Vec<String>);

impl ClaimPath {
    /// The value at this path, if every step exists.
    pub fn lookup<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.0.split_first()?;
        let mut value = claims.get(first)?;
        for segment in rest {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }

    /// The name, when the path is a single top-level claim.
    pub fn top_level(&self) -> Option<&str> {
        match self.0.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The path's names.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// Parses the dotted form.
    pub fn parse(text: &str) -> Result<ClaimPath, &'static str> {
        let mut segments = vec![String::new()];
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped @ ('.' | '\\')) => {
                        if let Some(last) = segments.last_mut() {
                            last.push(escaped);
                        }
                    }
                    _ => return Err("`\\` escapes only `.` and `\\`"),
                },
                '.' => segments.push(String::new()),
                other => {
                    if let Some(last) = segments.last_mut() {
                        last.push(other);
                    }
                }
            }
        }
        ClaimPath::from_segments(segments)
    }

    fn from_segments(segments: Vec<String>) -> Result<ClaimPath, &'static str> {
        if segments.is_empty() || segments.iter().any(String::is_empty) {
            return Err(
                "must be a claim name or a dotted path such as `realm_access.roles` (no empty names)",
            );
        }
        Ok(ClaimPath(segments))
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escaped: Vec<String> = self
            .0
            .iter()
            .map(|s| s.replace('\\', "\\\\").replace('.', "\\."))
            .collect();
        f.write_str(&escaped.join("."))
    }
}

impl<'de> Deserialize<'de> for ClaimPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Dotted(String),
            Segments(Vec<String>),
        }
        let parsed = match Form::deserialize(deserializer)
            .map_err(|_| de::Error::custom("must be a dotted path or a list of claim names"))?
        {
            Form::Dotted(text) => ClaimPath::parse(&text),
            Form::Segments(segments) => ClaimPath::from_segments(segments),
        };
        parsed.map_err(de::Error::custom)
    }
}

/// The claims of an authentic token (or an active introspection answer).
pub struct ClaimView<'a> {
    /// Every claim but those jwt-compact keeps apart (the time claims).
    pub claims: &'a Map<String, Value>,
    /// `exp`, Unix seconds.
    pub exp: Option<i64>,
    /// `nbf`, Unix seconds.
    pub nbf: Option<i64>,
    /// `iat`, Unix seconds.
    pub iat: Option<i64>,
}

/// `iss` must be the provider's issuer, exactly.
pub fn check_issuer(provider: &Provider, iss: Option<&Value>) -> Result<(), Rejection> {
    match iss {
        Some(Value::String(issuer)) if *issuer == provider.issuer => Ok(()),
        Some(Value::String(_)) | None => Err(Rejection::WrongIssuer),
        Some(_) => Err(Rejection::Malformed(MalformedToken::ClaimType)),
    }
}

/// The payload `typ` must be one of the accepted token types (case-insensitive).
pub fn check_token_type(provider: &Provider, typ: &str) -> Result<(), Rejection> {
    if provider.token_types.is_empty()
        || provider
            .token_types
            .iter()
            .any(|accepted| accepted.eq_ignore_ascii_case(typ))
    {
        Ok(())
    } else {
        Err(Rejection::WrongTokenType)
    }
}

/// `aud` (a string or an array of strings) must contain an accepted audience.
pub fn check_audience(provider: &Provider, aud: Option<&Value>) -> Result<(), Rejection> {
    if provider.audiences.is_empty() {
        return Ok(());
    }
    let accepted = |value: &str| provider.audiences.iter().any(|aud| aud == value);
    match aud {
        Some(Value::String(aud)) if accepted(aud) => Ok(()),
        Some(Value::String(_)) | None => Err(Rejection::WrongAudience),
        Some(Value::Array(list)) => {
            let mut matched = false;
            for item in list {
                match item {
                    Value::String(aud) => matched |= accepted(aud),
                    _ => return Err(Rejection::Malformed(MalformedToken::ClaimType)),
                }
            }
            if matched {
                Ok(())
            } else {
                Err(Rejection::WrongAudience)
            }
        }
        Some(_) => Err(Rejection::Malformed(MalformedToken::ClaimType)),
    }
}

/// Values for the provider's `forward.claims_to_headers`, in configuration order.
pub fn forwarded_values(
    provider: &Provider,
    view: &ClaimView<'_>,
) -> Result<Vec<Option<String>>, Rejection> {
    provider
        .forward
        .claims_to_headers
        .iter()
        .map(|rule| forwarded_value(&rule.claim, view))
        .collect()
}

/// Values for the provider's `forward.filter_state.claims`, in configuration order.
pub fn published_values(
    provider: &Provider,
    view: &ClaimView<'_>,
) -> Result<Vec<Option<String>>, Rejection> {
    provider
        .forward
        .published_claims
        .iter()
        .map(|published| forwarded_value(&published.claim, view))
        .collect()
}

fn forwarded_value(claim: &ClaimPath, view: &ClaimView<'_>) -> Result<Option<String>, Rejection> {
    // jwt-compact keeps the time claims apart from the others.
    let time_claim = match claim.top_level() {
        Some("exp") => Some(view.exp),
        Some("nbf") => Some(view.nbf),
        Some("iat") => Some(view.iat),
        _ => None,
    };
    let value = match time_claim {
        Some(Some(time)) => Some(time.to_string()),
        _ => claim.lookup(view.claims).and_then(render_claim),
    };
    match value {
        Some(value) if !is_safe_header_value(&value) => Err(Rejection::UnforwardableClaim),
        other => Ok(other),
    }
}

/// Strings as they are, arrays joined with a space, other values as compact JSON.
fn render_claim(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        other => Some(other.to_string()),
    }
}

/// No control characters (CR/LF would split headers; NUL truncates in some upstreams).
fn is_safe_header_value(value: &str) -> bool {
    value.len() <= MAX_FORWARDED_VALUE_BYTES && !value.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_paths() {
        let ok = [
            ("sub", vec!["sub"]),
            ("realm_access.roles", vec!["realm_access", "roles"]),
            (
                "kubernetes\\.io.namespace",
                vec!["kubernetes.io", "namespace"],
            ),
            ("a\\\\b", vec!["a\\b"]),
        ];
        for (text, segments) in ok {
            let path = ClaimPath::parse(text).unwrap();
            assert_eq!(path.segments(), segments, "{text}");
            assert_eq!(path.to_string(), text);
        }
        for bad in ["", ".a", "a.", "a..b", "a\\b", "a\\"] {
            assert!(ClaimPath::parse(bad).is_err(), "{bad}");
        }
        let list: ClaimPath = serde_json::from_str(r#"["kubernetes.io", "ns"]"#).unwrap();
        assert_eq!(list.segments(), ["kubernetes.io", "ns"]);
        assert!(serde_json::from_str::<ClaimPath>("[]").is_err());
        assert!(serde_json::from_str::<ClaimPath>("42").is_err());
    }
}

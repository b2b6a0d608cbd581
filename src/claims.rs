//! Claim checks shared by local validation and introspection: issuer, audience, token type,
//! scopes, and the values forwarded upstream.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::config::{ClaimHeader, Config};
use crate::rejection::{MalformedToken, Rejection};

/// Forwarded header values longer than this are refused rather than sent upstream.
pub const MAX_FORWARDED_VALUE_BYTES: usize = 8192;

/// The claims of an authentic token (or an active introspection answer).
pub struct ClaimView<'a> {
    /// Every claim of the token (the time claims included, as JSON).
    pub claims: &'a Map<String, Value>,
    /// `exp`, Unix seconds.
    pub exp: Option<i64>,
    /// `nbf`, Unix seconds.
    pub nbf: Option<i64>,
    /// `iat`, Unix seconds.
    pub iat: Option<i64>,
}

/// `iss` must be the configured issuer, exactly.
pub fn check_issuer(config: &Config, iss: Option<&Value>) -> Result<(), Rejection> {
    match iss {
        Some(Value::String(issuer)) if *issuer == config.issuer => Ok(()),
        Some(Value::String(_)) | None => Err(Rejection::WrongIssuer),
        Some(_) => Err(Rejection::Malformed(MalformedToken::ClaimType)),
    }
}

/// The payload `typ` must be one of the accepted token types (case-insensitive).
pub fn check_token_type(config: &Config, typ: &str) -> Result<(), Rejection> {
    if config.token_types.is_empty()
        || config
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
pub fn check_audience(config: &Config, aud: Option<&Value>) -> Result<(), Rejection> {
    if config.audiences.is_empty() {
        return Ok(());
    }
    let accepted = |value: &str| config.audiences.iter().any(|aud| aud == value);
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

/// Every required scope must be granted by `scope` or `scp`.
pub fn check_scopes(config: &Config, claims: &Map<String, Value>) -> Result<(), Rejection> {
    if config.required_scopes.is_empty() {
        return Ok(());
    }
    let mut granted: BTreeSet<&str> = BTreeSet::new();
    let malformed = Rejection::Malformed(MalformedToken::ClaimType);
    // `scope` (RFC 8693 / RFC 9068) is space-separated; `scp` is an array or a string.
    for name in ["scope", "scp"] {
        match claims.get(name) {
            None => {}
            Some(Value::String(list)) => granted.extend(list.split(' ').filter(|s| !s.is_empty())),
            Some(Value::Array(items)) if name == "scp" => {
                for item in items {
                    granted.insert(item.as_str().ok_or_else(|| malformed.clone())?);
                }
            }
            Some(_) => return Err(malformed),
        }
    }
    if config
        .required_scopes
        .iter()
        .all(|scope| granted.contains(scope.as_str()))
    {
        Ok(())
    } else {
        Err(Rejection::InsufficientScope)
    }
}

/// Values for `forward.claims_to_headers`, in configuration order.
pub fn forwarded_values(
    config: &Config,
    view: &ClaimView<'_>,
) -> Result<Vec<Option<String>>, Rejection> {
    config
        .forward
        .claims_to_headers
        .iter()
        .map(|rule| forwarded_value(rule, view))
        .collect()
}

fn forwarded_value(rule: &ClaimHeader, view: &ClaimView<'_>) -> Result<Option<String>, Rejection> {
    // jwt-compact keeps the time claims apart from the others.
    let time_claim = match rule.claim.as_str() {
        "exp" => Some(view.exp),
        "nbf" => Some(view.nbf),
        "iat" => Some(view.iat),
        _ => None,
    };
    let value = match time_claim {
        Some(Some(time)) => Some(time.to_string()),
        _ => lookup_path(view.claims, &rule.claim_path).and_then(render_claim),
    };
    match value {
        Some(value) if !is_safe_header_value(&value) => Err(Rejection::UnforwardableClaim),
        other => Ok(other),
    }
}

fn lookup_path<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
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

//! Validating a logout token (OpenID Connect Back-Channel Logout 1.0 §2.6).
//!
//! A logout token is a JWT the IdP signs with the same keys as its access tokens, so it is
//! verified with the provider's key set and algorithm allowlist, never with anything the token
//! names. What makes it a logout token and not another JWT: header `typ` absent or
//! `logout+jwt`, an `events` member for back-channel logout, no `nonce` (which would make it an
//! ID token), a `jti`, and `sid` and/or `sub`. Everything cheap is checked before the
//! signature.

use jwt_compact::{Claims, ParseError, UntrustedToken};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::config::{BackchannelLogout, Provider};
use crate::jwks::{KeyLookup, KeySet};

/// The member of `events` that makes a JWT a back-channel logout token.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A verified logout: which session (`sid`) and/or which user (`sub`) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutEvent {
    /// The IdP session that ended.
    pub sid: Option<String>,
    /// The user whose sessions ended (all of them, when there is no `sid`).
    pub sub: Option<String>,
    /// The token's id, for the replay check.
    pub jti: String,
    /// When the IdP issued it (Unix seconds): the user's tokens issued until then are void.
    pub iat: i64,
}

/// Why a logout token was refused (400 with a JSON error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogoutError {
    /// The request carries no `logout_token` form parameter (or more than one).
    MissingToken,
    /// The body is larger than the configured limit.
    TooLarge,
    /// Not a well-formed JWS.
    Malformed,
    /// Header `typ` is neither absent nor `logout+jwt`.
    TokenType,
    /// `alg` outside the provider's allowlist, or not this key's.
    Algorithm,
    /// No key with the token's `kid` (or none at all yet).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `iss` is not the provider's.
    Issuer,
    /// `aud` holds none of the configured client ids.
    Audience,
    /// `iat` missing, in the future, or older than allowed; or `exp` past.
    Stale,
    /// No `jti`.
    MissingId,
    /// This `jti` was seen before.
    Replayed,
    /// No back-channel logout member in `events`.
    MissingEvent,
    /// Neither `sid` nor `sub`.
    MissingSubject,
    /// A `nonce`: an ID token, not a logout token.
    Nonce,
    /// Too many logout requests were waiting for their body: this one was given up.
    Busy,
    /// The provider's keys are not loaded yet (and the fetch it waited for brought none): 503,
    /// so the sender may try again, where a final 400 would lose the logout.
    KeysUnavailable,
}

impl LogoutError {
    /// Every reason, for metrics.
    pub const ALL: [LogoutError; 17] = [
        LogoutError::MissingToken,
        LogoutError::TooLarge,
        LogoutError::Malformed,
        LogoutError::TokenType,
        LogoutError::Algorithm,
        LogoutError::UnknownKey,
        LogoutError::BadSignature,
        LogoutError::Issuer,
        LogoutError::Audience,
        LogoutError::Stale,
        LogoutError::MissingId,
        LogoutError::Replayed,
        LogoutError::MissingEvent,
        LogoutError::MissingSubject,
        LogoutError::Nonce,
        LogoutError::Busy,
        LogoutError::KeysUnavailable,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LogoutError::MissingToken => "missing_token",
            LogoutError::TooLarge => "too_large",
            LogoutError::Malformed => "malformed",
            LogoutError::TokenType => "token_type",
            LogoutError::Algorithm => "algorithm",
            LogoutError::UnknownKey => "unknown_kid",
            LogoutError::BadSignature => "bad_signature",
            LogoutError::Issuer => "issuer",
            LogoutError::Audience => "audience",
            LogoutError::Stale => "stale",
            LogoutError::MissingId => "missing_jti",
            LogoutError::Replayed => "replayed",
            LogoutError::MissingEvent => "missing_event",
            LogoutError::MissingSubject => "missing_subject",
            LogoutError::Nonce => "nonce",
            LogoutError::Busy => "busy",
            LogoutError::KeysUnavailable => "keys_unavailable",
        }
    }

    /// Whether the sender should send the same token again later (503), rather than a final
    /// refusal (400).
    pub fn is_transient(self) -> bool {
        self == LogoutError::KeysUnavailable
    }

    /// Position in [`LogoutError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A fixed description (nothing from the token is echoed).
    pub fn description(self) -> &'static str {
        match self {
            LogoutError::MissingToken => "The request carries no single logout_token",
            LogoutError::TooLarge => "The request body is too large",
            LogoutError::Malformed => "The logout token is malformed",
            LogoutError::TokenType => "The token is not a logout token",
            LogoutError::Algorithm => "The logout token signing algorithm is not allowed",
            LogoutError::UnknownKey => "The logout token signing key is unknown",
            LogoutError::BadSignature => "The logout token signature is invalid",
            LogoutError::Issuer => "The logout token issuer is not accepted",
            LogoutError::Audience => "The logout token audience is not accepted",
            LogoutError::Stale => "The logout token is too old or not yet valid",
            LogoutError::MissingId => "The logout token has no jti",
            LogoutError::Replayed => "The logout token was received before",
            LogoutError::MissingEvent => "The logout token has no back-channel logout event",
            LogoutError::MissingSubject => "The logout token names no session and no subject",
            LogoutError::Nonce => "The logout token carries a nonce",
            LogoutError::Busy => "Too many logout requests were waiting; send it again",
            LogoutError::KeysUnavailable => {
                "The logout token signing keys are not available yet; send it again"
            }
        }
    }
}

/// Header fields jwt-compact does not model but the validator must see. Presence is what
/// counts: `Option` alone would read `"crit": null` or `"b64": null` as absent, and let the
/// token through (found by the `logout` fuzz target).
#[derive(Debug, Clone, Deserialize)]
struct Extensions {
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "any_value")]
    b64: Option<Value>,
}

/// True for a member that is there, whatever its value (null included).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// A member's value, null included (`Some(Value::Null)`).
fn any_value<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Validates `token` as a logout token of `provider` at `now` (Unix seconds). The replay check
/// is the caller's (it needs the shared record of seen `jti`s).
pub fn validate(
    provider: &Provider,
    settings: &BackchannelLogout,
    keys: &KeySet,
    token: &str,
    now: i64,
) -> Result<LogoutEvent, LogoutError> {
    if token.len() > provider.max_token_bytes || token.bytes().filter(|b| *b == b'.').count() != 2 {
        return Err(LogoutError::Malformed);
    }
    let untrusted = UntrustedToken::<Extensions>::try_from(token).map_err(|err| match err {
        ParseError::UnsupportedContentType(_) => LogoutError::TokenType,
        _ => LogoutError::Malformed,
    })?;
    let header = untrusted.header();
    let extensions = &header.other_fields;
    if extensions.crit
        || extensions
            .b64
            .as_ref()
            .is_some_and(|b| *b != Value::Bool(true))
    {
        return Err(LogoutError::Malformed);
    }
    let logout_typed = header.token_type.as_deref().is_none_or(|typ| {
        typ.eq_ignore_ascii_case("logout+jwt") || typ.eq_ignore_ascii_case("application/logout+jwt")
    });
    if !logout_typed {
        return Err(LogoutError::TokenType);
    }
    let algorithm = Algorithm::from_jws_name(untrusted.algorithm())
        .filter(|alg| provider.algorithms.contains(*alg))
        .ok_or(LogoutError::Algorithm)?;
    let claims: Claims<Map<String, Value>> = untrusted
        .deserialize_claims_unchecked()
        .map_err(|_| LogoutError::Malformed)?;
    let custom = &claims.custom;
    check_claims(provider, settings, &claims, now)?;

    let entry = match keys.lookup(header.key_id.as_deref(), algorithm) {
        KeyLookup::Found(entry) => entry,
        KeyLookup::Unknown => return Err(LogoutError::UnknownKey),
        KeyLookup::AlgorithmNotAllowed => return Err(LogoutError::Algorithm),
    };
    let signed = token
        .rsplit_once('.')
        .map(|(signed, _)| signed.as_bytes())
        .ok_or(LogoutError::Malformed)?;
    if !entry
        .key
        .verify(algorithm, signed, untrusted.signature_bytes())
    {
        return Err(LogoutError::BadSignature);
    }
    let string = |name: &str| custom.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(LogoutEvent {
        sid: string("sid"),
        sub: string("sub"),
        jti: string("jti").ok_or(LogoutError::MissingId)?,
        iat: claims
            .issued_at
            .map(|t| t.timestamp())
            .ok_or(LogoutError::Stale)?,
    })
}

fn check_claims(
    provider: &Provider,
    settings: &BackchannelLogout,
    claims: &Claims<Map<String, Value>>,
    now: i64,
) -> Result<(), LogoutError> {
    let custom = &claims.custom;
    // As for access tokens (RFC 7519 §4.1): a registered claim of the wrong type is refused,
    // never read as absent (`"sid": 7` must not turn a session logout into a subject one).
    for name in ["iss", "sub", "sid", "jti"] {
        if custom.get(name).is_some_and(|value| !value.is_string()) {
            return Err(LogoutError::Malformed);
        }
    }
    if let Some(Value::Array(list)) = custom.get("aud")
        && !list.iter().all(Value::is_string)
    {
        return Err(LogoutError::Malformed);
    }
    if custom.get("iss").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
        return Err(LogoutError::Issuer);
    }
    let accepted = |aud: &Value| {
        aud.as_str()
            .is_some_and(|aud| settings.audiences.iter().any(|a| a == aud))
    };
    let audience_ok = match custom.get("aud") {
        Some(Value::Array(list)) => list.iter().any(accepted),
        Some(aud) => accepted(aud),
        None => false,
    };
    if !audience_ok {
        return Err(LogoutError::Audience);
    }
    let skew = i64::try_from(provider.clock_skew_seconds).unwrap_or(i64::MAX);
    let max_age = i64::try_from(settings.max_token_age_seconds).unwrap_or(i64::MAX);
    let iat = claims
        .issued_at
        .map(|t| t.timestamp())
        .ok_or(LogoutError::Stale)?;
    let fresh =
        iat <= now.saturating_add(skew) && now.saturating_sub(iat) <= max_age.saturating_add(skew);
    let expired = claims
        .expiration
        .is_some_and(|exp| now > exp.timestamp().saturating_add(skew));
    if !fresh || expired {
        return Err(LogoutError::Stale);
    }
    match custom.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() => {}
        _ => return Err(LogoutError::MissingId),
    }
    let event = custom
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(LOGOUT_EVENT));
    if !matches!(event, Some(Value::Object(_))) {
        return Err(LogoutError::MissingEvent);
    }
    let names = |name: &str| matches!(custom.get(name), Some(Value::String(s)) if !s.is_empty());
    if !names("sid") && !names("sub") {
        return Err(LogoutError::MissingSubject);
    }
    if custom.contains_key("nonce") {
        return Err(LogoutError::Nonce);
    }
    Ok(())
}

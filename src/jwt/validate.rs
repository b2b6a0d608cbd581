//! Local JWT validation: the rules of RFC 7519 / 8725 / 9068 on top of jwt-compact.
//!
//! Checks run cheapest first: size, structure, header, claims (`iss`, `aud`, `typ`, time),
//! key lookup, and only then the signature, so garbage never costs a signature verification.
//! The facts rules authorize with (scopes, claim conditions) and the forwarded values are
//! computed after the signature: a 403 or a forwarded value only ever comes from an authentic
//! token.

use jwt_compact::{Claims, TimeOptions, ValidationError};
use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::config::Provider;
use crate::jwks::{KeyLookup, KeySet};
use crate::policy::facts::{FactCatalog, Facts};
use crate::rejection::{MalformedToken, Rejection};

pub use super::parse::Parsed;

use super::claims::{
    ClaimPath, ClaimView, check_audience, check_issuer, check_token_type, forwarded_values,
    published_values,
};
use super::raw_claims::RawClaims;

/// What a verified token leaves behind: enough to admit it again from the cache, for any
/// rule, without reading its claims again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    /// `exp` in Unix seconds, if the token has one.
    pub expires_at: Option<i64>,
    /// Values for `forward.claims_to_headers`, in configuration order; `None` = claim absent.
    pub forwarded: Vec<Option<String>>,
    /// Values for `forward.filter_state.claims`, likewise.
    pub published: Vec<Option<String>>,
    /// Which of the scopes and conditions the rules ask of this provider the token meets.
    pub facts: Facts,
    /// `sub`, if a string.
    pub subject: Option<Box<str>>,
    /// `sid` (the IdP's session), if a string.
    pub session: Option<Box<str>>,
    /// `iat`, Unix seconds.
    pub issued_at: Option<i64>,
    /// A signed token without `kid`, verified by its algorithm's only key: a key set that
    /// adds a key for that algorithm no longer admits it.
    pub without_kid: bool,
}

impl Verified {
    /// What an authentic token's claims (or an active introspection answer's) leave behind.
    pub fn from_claims(
        provider: &Provider,
        catalog: &FactCatalog,
        view: &ClaimView<'_>,
    ) -> Result<Verified, Rejection> {
        let string = |name: &str| match view.claims.get(name) {
            Some(Value::String(s)) => Some(Box::from(s.as_str())),
            _ => None,
        };
        Ok(Verified {
            expires_at: view.exp,
            forwarded: forwarded_values(provider, view)?,
            published: published_values(provider, view)?,
            facts: catalog.evaluate(view.claims)?,
            subject: string("sub"),
            session: string("sid"),
            issued_at: view.iat,
            without_kid: false,
        })
    }
}

/// RFC 7519 §4.1: `iss`, `sub` and `jti` are strings, `aud` a string or an array of strings,
/// when present (null is a value of the wrong type, not an absent claim). The time claims are
/// numbers already: jwt-compact refuses anything else. Checked whatever the configuration asks
/// of these claims, so that no configuration reads a claim of the wrong type as absent.
fn check_claim_types(claims: &Map<String, Value>) -> Result<(), Rejection> {
    let wrong_type = Err(Rejection::Malformed(MalformedToken::ClaimType));
    for name in ["iss", "sub", "jti"] {
        match claims.get(name) {
            None | Some(Value::String(_)) => {}
            Some(_) => return wrong_type,
        }
    }
    match claims.get("aud") {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => wrong_type,
    }
}

/// Validates `token` for `provider` with `keys` at time `now` (Unix seconds); `catalog` says
/// which scopes and conditions the rules ask of this provider's tokens.
pub fn validate(
    provider: &Provider,
    keys: &KeySet,
    catalog: &FactCatalog,
    token: &str,
    now: i64,
) -> Result<Verified, Rejection> {
    let parsed = Parsed::new(token, provider.max_token_bytes)?;
    verify(provider, keys, catalog, &parsed, now)
}

/// The checks that depend on the provider, on a token that passed [`Parsed::new`].
pub fn verify(
    provider: &Provider,
    keys: &KeySet,
    catalog: &FactCatalog,
    parsed: &Parsed<'_>,
    now: i64,
) -> Result<Verified, Rejection> {
    if parsed.token.len() > provider.max_token_bytes {
        return Err(Rejection::TokenTooLarge {
            length: parsed.token.len(),
            limit: provider.max_token_bytes,
        });
    }
    let header = &parsed.header;
    let algorithm = Algorithm::from_jws_name(&header.alg)
        .filter(|alg| provider.algorithms.contains(*alg))
        .ok_or(Rejection::DisallowedAlgorithm)?;
    let header_type = header.typ.as_deref();
    if !is_access_token_header_type(header_type) {
        return Err(Rejection::WrongTokenType);
    }

    let claims = parsed.claims(&|name| is_read(provider, catalog, name))?;
    let custom = &claims.claims;

    check_claim_types(custom)?;
    check_issuer(provider, custom.get("iss"))?;
    check_audience(provider, custom.get("aud"))?;
    check_payload_type(provider, custom.get("typ"), header_type)?;
    check_times(provider, claims, now)?;

    if keys.is_empty() {
        return Err(Rejection::KeysUnavailable);
    }
    let entry = match keys.lookup(header.kid.as_deref(), algorithm) {
        KeyLookup::Found(entry) => entry,
        KeyLookup::Unknown => return Err(Rejection::UnknownKey),
        KeyLookup::AlgorithmNotAllowed => return Err(Rejection::DisallowedAlgorithm),
    };
    if !entry
        .key
        .verify(algorithm, parsed.signed.as_bytes(), &parsed.signature)
    {
        return Err(Rejection::BadSignature);
    }

    let view = ClaimView {
        claims: custom,
        exp: claims.exp,
        nbf: claims.nbf,
        iat: claims.iat,
    };
    let mut verified = Verified::from_claims(provider, catalog, &view)?;
    verified.without_kid = header.kid.is_none();
    Ok(verified)
}

/// RFC 8725 §3.11 / RFC 9068 §2.1: explicit typing. Absent, `JWT` and `at+jwt` are access
/// tokens; anything else (`dpop+jwt`, `logout+jwt`, ...) is some other kind of JWT.
fn is_access_token_header_type(typ: Option<&str>) -> bool {
    match typ {
        None => true,
        Some(typ) => ["JWT", "at+jwt", "application/at+jwt"]
            .iter()
            .any(|accepted| typ.eq_ignore_ascii_case(accepted)),
    }
}

fn is_rfc9068_header_type(typ: Option<&str>) -> bool {
    typ.is_some_and(|typ| {
        typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
    })
}

/// Keycloak marks access tokens with payload `typ: "Bearer"` (ID tokens `ID`, refresh tokens
/// `Refresh`). A token without payload `typ` passes only if its header says `at+jwt`.
fn check_payload_type(
    config: &Provider,
    typ: Option<&Value>,
    header_type: Option<&str>,
) -> Result<(), Rejection> {
    if config.token_types.is_empty() {
        return Ok(());
    }
    match typ {
        Some(Value::String(typ)) => check_token_type(config, typ),
        None if is_rfc9068_header_type(header_type) => Ok(()),
        None => Err(Rejection::WrongTokenType),
        Some(_) => Err(Rejection::Malformed(MalformedToken::ClaimType)),
    }
}

/// The claims something reads: the checks here, [`Verified::from_claims`] (`sub`, `sid`, the
/// forwarded and published claims), the provider's scopes and claim conditions. The others
/// are never built.
fn is_read(provider: &Provider, catalog: &FactCatalog, name: &str) -> bool {
    const CHECKED: [&str; 8] = ["iss", "sub", "jti", "aud", "typ", "sid", "scope", "scp"];
    let first = |path: &ClaimPath| path.segments().first().is_some_and(|first| first == name);
    CHECKED.contains(&name)
        || provider
            .forward
            .claims_to_headers
            .iter()
            .any(|rule| first(&rule.claim))
        || provider
            .forward
            .published_claims
            .iter()
            .any(|published| first(&published.claim))
        || catalog.condition_claims().any(|claim| claim == name)
}

fn check_times(config: &Provider, claims: &RawClaims, now: i64) -> Result<(), Rejection> {
    let time = |seconds: Option<i64>| seconds.and_then(|s| chrono::DateTime::from_timestamp(s, 0));
    let mut claims_times = Claims::empty();
    claims_times.expiration = time(claims.exp);
    claims_times.not_before = time(claims.nbf);
    claims_times.issued_at = time(claims.iat);
    let claims = &claims_times;
    let now = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    let skew = i64::try_from(config.clock_skew_seconds).unwrap_or(i64::MAX);
    let options = TimeOptions::new(chrono::Duration::seconds(skew), move || now);
    if config.verify_exp {
        claims
            .validate_expiration(&options)
            .map_err(|err| match err {
                ValidationError::NoClaim(_) => Rejection::MissingExpiration,
                _ => Rejection::Expired,
            })?;
    }
    if config.verify_nbf && claims.not_before.is_some() {
        claims
            .validate_maturity(&options)
            .map_err(|_| Rejection::NotYetValid)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

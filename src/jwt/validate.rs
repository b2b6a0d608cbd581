//! Local JWT validation: the rules of RFC 7519 / 8725 / 9068 on top of jwt-compact.
//!
//! Checks run cheapest first: size, structure, header, claims (`iss`, `aud`, `typ`, time),
//! key lookup, and only then the signature, so garbage never costs a signature verification.
//! The facts rules authorize with (scopes, claim conditions) and the forwarded values are
//! computed after the signature: a 403 or a forwarded value only ever comes from an authentic
//! token.

use std::cell::OnceCell;

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::{Claims, ParseError, TimeOptions, UntrustedToken, ValidationError};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::config::Provider;
use crate::jwks::{KeyLookup, KeySet};
use crate::policy::facts::{FactCatalog, Facts};
use crate::rejection::{MalformedToken, Rejection};

use super::claims::{
    ClaimView, check_audience, check_issuer, check_token_type, forwarded_values, published_values,
};

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
        })
    }
}

/// Registered header parameters (RFC 7515 §4.1, RFC 7797 §3) and the JSON type each must
/// have when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderParameter {
    String,
    Object,
    StringArray,
    Boolean,
    /// `crit`: whatever it holds, it names extensions the gateway does not understand.
    Critical,
}

/// The registered parameters, in the order of their bit in the set of names seen.
const REGISTERED_HEADER: [(&str, HeaderParameter); 12] = [
    ("alg", HeaderParameter::String),
    ("kid", HeaderParameter::String),
    ("typ", HeaderParameter::String),
    ("cty", HeaderParameter::String),
    ("jku", HeaderParameter::String),
    ("x5u", HeaderParameter::String),
    ("x5t", HeaderParameter::String),
    ("x5t#S256", HeaderParameter::String),
    ("jwk", HeaderParameter::Object),
    ("x5c", HeaderParameter::StringArray),
    ("b64", HeaderParameter::Boolean),
    ("crit", HeaderParameter::Critical),
];

/// What the strict reading of a header found that the caller must act on.
#[derive(Debug, Default)]
struct HeaderFacts {
    critical: bool,
    b64: Option<bool>,
}

/// The JOSE header read strictly: a JSON object without duplicate names whose registered
/// parameters have their registered types. jwt-compact reads `"kid": null` (and `typ`, `cty`,
/// `crit`, `b64` as null) as absent and keeps the last of two equal unknown names; a value
/// of the wrong type must be refused, not mistaken for no value (a null `kid` would select
/// the single key of a set without one, a null `typ` pass as an access token).
struct StrictHeader(HeaderFacts);

impl<'de> Deserialize<'de> for StrictHeader {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = StrictHeader;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictHeader, A::Error> {
                let mut facts = HeaderFacts::default();
                let mut registered_seen = 0u16;
                let mut others: Vec<String> = Vec::new();
                while let Some(name) = access.next_key::<String>()? {
                    let Some(index) = REGISTERED_HEADER.iter().position(|(n, _)| *n == name) else {
                        if others.contains(&name) {
                            return Err(de::Error::custom("duplicate header parameter"));
                        }
                        others.push(name);
                        access.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    if registered_seen & (1 << index) != 0 {
                        return Err(de::Error::custom("duplicate header parameter"));
                    }
                    registered_seen |= 1 << index;
                    match REGISTERED_HEADER[index].1 {
                        HeaderParameter::String => {
                            access.next_value::<JsonString>()?;
                        }
                        HeaderParameter::Object => {
                            access.next_value::<Map<String, Value>>()?;
                        }
                        HeaderParameter::StringArray => {
                            access.next_value::<Vec<JsonString>>()?;
                        }
                        HeaderParameter::Boolean => facts.b64 = Some(access.next_value::<bool>()?),
                        HeaderParameter::Critical => {
                            access.next_value::<IgnoredAny>()?;
                            facts.critical = true;
                        }
                    }
                }
                Ok(StrictHeader(facts))
            }
        }
        deserializer.deserialize_map(HeaderVisitor)
    }
}

/// A JSON string, and nothing else (not null): read and dropped.
struct JsonString;

impl<'de> Deserialize<'de> for JsonString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringVisitor;
        impl Visitor<'_> for StringVisitor {
            type Value = JsonString;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<JsonString, E> {
                Ok(JsonString)
            }
        }
        deserializer.deserialize_str(StringVisitor)
    }
}

/// Reads the header segment (known to be canonical base64url: jwt-compact decoded it) strictly.
fn strict_header(segment: &str) -> Result<HeaderFacts, Rejection> {
    let json = Base64UrlUnpadded::decode_vec(segment)
        .map_err(|_| Rejection::Malformed(MalformedToken::Base64))?;
    serde_json::from_slice::<StrictHeader>(&json)
        .map(|header| header.0)
        .map_err(|_| Rejection::Malformed(MalformedToken::Header))
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

/// The claims object; duplicate names are refused (RFC 7515 §5.2 lets parsers reject them,
/// and "last one wins" would let two parties read different claims from one token).
#[derive(Debug, Default, Clone)]
pub struct ClaimSet(Map<String, Value>);

impl<'de> Deserialize<'de> for ClaimSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimSetVisitor;
        impl<'de> Visitor<'de> for ClaimSetVisitor {
            type Value = ClaimSet;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ClaimSet, A::Error> {
                let mut map = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&name) {
                        return Err(de::Error::custom("duplicate claim"));
                    }
                    map.insert(name, value);
                }
                Ok(ClaimSet(map))
            }
        }
        deserializer.deserialize_map(ClaimSetVisitor)
    }
}

/// A token that passed the structural checks: size, three canonical base64url segments, a
/// JOSE header without duplicate names, with registered parameters of their registered types,
/// and without `crit` or `b64: false`. Its claims are parsed on first use and kept, so
/// choosing a provider by the unverified `iss` and validating with it parse once.
pub struct Parsed<'t> {
    token: &'t str,
    untrusted: UntrustedToken<'t>,
    claims: OnceCell<Result<Claims<ClaimSet>, Rejection>>,
}

impl<'t> Parsed<'t> {
    /// The structural checks, with `max_token_bytes` as the size limit.
    pub fn new(token: &'t str, max_token_bytes: usize) -> Result<Parsed<'t>, Rejection> {
        if token.len() > max_token_bytes {
            return Err(Rejection::TokenTooLarge {
                length: token.len(),
                limit: max_token_bytes,
            });
        }
        match token.bytes().filter(|b| *b == b'.').count() {
            2 => {}
            4 => return Err(Rejection::Malformed(MalformedToken::Encrypted)),
            _ => return Err(Rejection::Malformed(MalformedToken::Structure)),
        }
        let untrusted = UntrustedToken::try_from(token).map_err(|err| {
            Rejection::Malformed(match err {
                ParseError::InvalidTokenStructure => MalformedToken::Structure,
                ParseError::InvalidBase64Encoding => MalformedToken::Base64,
                ParseError::UnsupportedContentType(_) => MalformedToken::ContentType,
                _ => MalformedToken::Header,
            })
        })?;
        let header_segment = token.split('.').next().unwrap_or_default();
        let header = strict_header(header_segment)?;
        if header.critical {
            return Err(Rejection::Malformed(MalformedToken::CriticalHeader));
        }
        if header.b64 == Some(false) {
            return Err(Rejection::Malformed(MalformedToken::UnencodedPayload));
        }
        Ok(Parsed {
            token,
            untrusted,
            claims: OnceCell::new(),
        })
    }

    /// The claims, parsed once: a JSON object without duplicate names and numeric time claims.
    fn claims(&self) -> Result<&Claims<ClaimSet>, Rejection> {
        self.claims
            .get_or_init(|| {
                self.untrusted
                    .deserialize_claims_unchecked()
                    .map_err(|_| Rejection::Malformed(MalformedToken::Claims))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The header's `kid`, if a string.
    pub fn key_id(&self) -> Option<&str> {
        self.untrusted.header().key_id.as_deref()
    }

    /// The unverified `iss`, only to choose the provider that judges the token.
    pub fn unverified_issuer(&self) -> Result<Option<&str>, Rejection> {
        match self.claims()?.custom.0.get("iss") {
            None => Ok(None),
            Some(Value::String(iss)) => Ok(Some(iss)),
            Some(_) => Err(Rejection::Malformed(MalformedToken::ClaimType)),
        }
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
    let untrusted = &parsed.untrusted;
    let header = untrusted.header();
    let algorithm = Algorithm::from_jws_name(untrusted.algorithm())
        .filter(|alg| provider.algorithms.contains(*alg))
        .ok_or(Rejection::DisallowedAlgorithm)?;
    let header_type = header.token_type.as_deref();
    if !is_access_token_header_type(header_type) {
        return Err(Rejection::WrongTokenType);
    }

    let claims = parsed.claims()?;
    let custom = &claims.custom.0;

    check_claim_types(custom)?;
    check_issuer(provider, custom.get("iss"))?;
    check_audience(provider, custom.get("aud"))?;
    check_payload_type(provider, custom.get("typ"), header_type)?;
    check_times(provider, claims, now)?;

    if keys.is_empty() {
        return Err(Rejection::KeysUnavailable);
    }
    let entry = match keys.lookup(header.key_id.as_deref(), algorithm) {
        KeyLookup::Found(entry) => entry,
        KeyLookup::Unknown => return Err(Rejection::UnknownKey),
        KeyLookup::AlgorithmNotAllowed => return Err(Rejection::DisallowedAlgorithm),
    };
    let signed_data = parsed
        .token
        .rsplit_once('.')
        .map(|(signed, _)| signed.as_bytes())
        .ok_or(Rejection::Malformed(MalformedToken::Structure))?;
    if !entry
        .key
        .verify(algorithm, signed_data, untrusted.signature_bytes())
    {
        return Err(Rejection::BadSignature);
    }

    let view = ClaimView {
        claims: custom,
        exp: claims.expiration.map(|t| t.timestamp()),
        nbf: claims.not_before.map(|t| t.timestamp()),
        iat: claims.issued_at.map(|t| t.timestamp()),
    };
    Verified::from_claims(provider, catalog, &view)
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

fn check_times(config: &Provider, claims: &Claims<ClaimSet>, now: i64) -> Result<(), Rejection> {
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

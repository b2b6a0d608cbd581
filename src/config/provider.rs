//! One identity provider's configuration: who issues the tokens, how they are read, checked
//! and forwarded. A single-issuer configuration is one provider written at the top level.

use serde::Deserialize;

use crate::algorithm::{Algorithm, AlgorithmSet};

use super::backchannel::{BackchannelLogout, parse_backchannel};
use super::error::ConfigError;
use super::forward::{Forwarding, TokenSource, parse_forward, parse_token_source};
use super::introspection::{Introspection, parse_introspection};
use super::jwks::{JwksSource, parse_jwks};
use super::values::{Bounded, Name, is_quoted_string_safe};

/// `clock_skew_seconds` when absent.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 30;
/// `max_token_bytes` when absent.
pub const DEFAULT_MAX_TOKEN_BYTES: u64 = 8192;
/// Cache sizes when absent.
pub const DEFAULT_CACHE_ENTRIES: u64 = 4096;

/// The largest cache a provider may ask for.
pub(crate) const MAX_CACHE_ENTRIES: u64 = 1_000_000;

/// How a provider judges tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Local JWT validation against a JWKS.
    Jwt,
    /// Every token is judged by the IdP's RFC 7662 introspection endpoint.
    Introspect,
    /// Local validation first (invalid tokens never cost a callout), then introspection to
    /// catch revocation.
    Hybrid,
}

/// What to do when the IdP cannot answer an introspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnIdpError {
    /// 503 with `Retry-After`: the default, fail closed.
    Deny,
    /// Admit the request, marked with `x-tokengate-degraded`: an explicit fail-open choice.
    Allow,
}

/// A time claim whose check can be turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TimeClaim {
    Exp,
    Nbf,
}

/// One provider, validated.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its name (`default` for a single-issuer configuration).
    pub name: Name,
    /// How its tokens are judged.
    pub mode: Mode,
    /// Exact match with the token's `iss`.
    pub issuer: String,
    /// Accepted `aud` values; empty means the audience is not checked (explicit `[]`).
    pub audiences: Vec<String>,
    /// The allowed signature algorithms.
    pub algorithms: AlgorithmSet,
    /// Leeway for `exp` and `nbf`.
    pub clock_skew_seconds: u64,
    /// Longer tokens are refused before any parsing.
    pub max_token_bytes: usize,
    /// Whether `exp` is checked (and required).
    pub verify_exp: bool,
    /// Whether `nbf` is checked.
    pub verify_nbf: bool,
    /// Accepted payload `typ` values (compared case-insensitively); empty disables the check.
    pub token_types: Vec<String>,
    /// Required for `jwt` and `hybrid`, absent for `introspect`.
    pub jwks: Option<JwksSource>,
    /// Required for `introspect` and `hybrid`, absent for `jwt`.
    pub introspection: Option<Introspection>,
    /// What IdP failures mean.
    pub on_idp_error: OnIdpError,
    /// `introspect` only: tokens that are not JWTs are asked about too.
    pub opaque: bool,
    /// Where the token is read from.
    pub token_source: TokenSource,
    /// What an admitted request carries upstream.
    pub forward: Forwarding,
    /// Capacity of the per-worker verified-token cache; 0 disables it.
    pub cache_max_entries: usize,
    /// Back-channel logout: ended sessions' tokens are refused.
    pub backchannel: Option<BackchannelLogout>,
}

impl Provider {
    /// Start-up warnings worth a log line (configuration that is allowed but unsafe).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.verify_exp {
            warnings.push(
                "`claims_to_verify` leaves out `exp`: expired tokens will be accepted".to_owned(),
            );
        }
        if self.audiences.is_empty() {
            warnings.push(
                "`audiences` is empty: tokens issued for any audience will be accepted".to_owned(),
            );
        }
        if self.on_idp_error == OnIdpError::Allow {
            warnings.push(
                "`on_idp_error` is `allow`: requests are admitted unverified while the IdP is unreachable"
                    .to_owned(),
            );
        }
        warnings
    }
}

// ----- wire form -----

/// Declares a struct with every provider field, plus the fields given: the same fields are
/// read inside `providers` and, for a single-issuer configuration, at the top level.
macro_rules! with_provider_fields {
    ($(#[$attr:meta])* $vis:vis struct $name:ident { $($field:ident: $ty:ty,)* }) => {
        $(#[$attr])*
        #[derive(serde::Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        $vis struct $name {
            pub(crate) mode: Option<$crate::config::provider::Mode>,
            pub(crate) issuer: Option<String>,
            pub(crate) audiences: Option<$crate::config::values::OneOrMany<String>>,
            pub(crate) algorithms: Option<Vec<String>>,
            pub(crate) clock_skew_seconds: Option<$crate::config::values::Bounded<0, 600>>,
            pub(crate) max_token_bytes: Option<$crate::config::values::Bounded<256, 65536>>,
            pub(crate) claims_to_verify: Option<Vec<$crate::config::provider::TimeClaim>>,
            pub(crate) token_types: Option<Vec<String>>,
            pub(crate) jwks: Option<$crate::config::jwks::RawJwks>,
            pub(crate) token_source: Option<$crate::config::forward::RawTokenSource>,
            pub(crate) forward: Option<$crate::config::forward::RawForward>,
            pub(crate) cache: Option<$crate::config::provider::RawCache>,
            pub(crate) introspection: Option<$crate::config::introspection::RawIntrospection>,
            pub(crate) on_idp_error: Option<$crate::config::provider::OnIdpError>,
            pub(crate) opaque: Option<bool>,
            pub(crate) backchannel_logout:
                Option<$crate::config::backchannel::RawBackchannelLogout>,
            $(pub(crate) $field: $ty,)*
        }
    };
}
pub(crate) use with_provider_fields;

with_provider_fields! {
    /// A provider as written inside `providers`.
    pub(crate) struct RawProvider {}
}

/// Moves the provider fields of a top-level configuration into a [`RawProvider`].
macro_rules! take_provider_fields {
    ($from:expr) => {
        $crate::config::provider::RawProvider {
            mode: $from.mode.take(),
            issuer: $from.issuer.take(),
            audiences: $from.audiences.take(),
            algorithms: $from.algorithms.take(),
            clock_skew_seconds: $from.clock_skew_seconds.take(),
            max_token_bytes: $from.max_token_bytes.take(),
            claims_to_verify: $from.claims_to_verify.take(),
            token_types: $from.token_types.take(),
            jwks: $from.jwks.take(),
            token_source: $from.token_source.take(),
            forward: $from.forward.take(),
            cache: $from.cache.take(),
            introspection: $from.introspection.take(),
            on_idp_error: $from.on_idp_error.take(),
            opaque: $from.opaque.take(),
            backchannel_logout: $from.backchannel_logout.take(),
        }
    };
}
pub(crate) use take_provider_fields;

impl RawProvider {
    /// The first provider field that is set, if any (for "this belongs in a provider").
    pub(crate) fn first_set_field(&self) -> Option<&'static str> {
        [
            ("mode", self.mode.is_some()),
            ("issuer", self.issuer.is_some()),
            ("audiences", self.audiences.is_some()),
            ("algorithms", self.algorithms.is_some()),
            ("clock_skew_seconds", self.clock_skew_seconds.is_some()),
            ("max_token_bytes", self.max_token_bytes.is_some()),
            ("claims_to_verify", self.claims_to_verify.is_some()),
            ("token_types", self.token_types.is_some()),
            ("jwks", self.jwks.is_some()),
            ("token_source", self.token_source.is_some()),
            ("forward", self.forward.is_some()),
            ("cache", self.cache.is_some()),
            ("introspection", self.introspection.is_some()),
            ("on_idp_error", self.on_idp_error.is_some()),
            ("opaque", self.opaque.is_some()),
            ("backchannel_logout", self.backchannel_logout.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    max_entries: Option<Bounded<0, MAX_CACHE_ENTRIES>>,
}

// ----- validation -----

/// Validates one provider. Errors name fields relative to the provider (the caller adds
/// `providers.<name>` when there is one).
pub(crate) fn validate(name: Name, raw: RawProvider) -> Result<Provider, ConfigError> {
    let mode = raw.mode.unwrap_or(Mode::Jwt);
    let issuer = match raw.issuer {
        Some(issuer) if !issuer.trim().is_empty() => issuer,
        Some(_) => return Err(ConfigError::new("issuer", "must not be empty")),
        None => return Err(ConfigError::new("issuer", "is required")),
    };
    let audiences = match raw.audiences {
        None => {
            return Err(ConfigError::new(
                "audiences",
                "is required (use [] to accept any audience, explicitly)",
            ));
        }
        Some(audiences) => audiences.into_vec(),
    };
    if let Some(index) = audiences.iter().position(String::is_empty) {
        return Err(ConfigError::new(
            format!("audiences[{index}]"),
            "must not be empty",
        ));
    }
    let algorithms = parse_algorithms(raw.algorithms)?;
    let (verify_exp, verify_nbf) = match raw.claims_to_verify {
        None => (true, true),
        Some(claims) => (
            claims.contains(&TimeClaim::Exp),
            claims.contains(&TimeClaim::Nbf),
        ),
    };
    let token_types = raw.token_types.unwrap_or_else(|| vec!["Bearer".to_owned()]);
    if let Some(index) = token_types.iter().position(String::is_empty) {
        return Err(ConfigError::new(
            format!("token_types[{index}]"),
            "must not be empty",
        ));
    }

    let jwks = match (mode, raw.jwks) {
        (Mode::Introspect, Some(_)) => {
            return Err(ConfigError::new(
                "jwks",
                "is not used in `introspect` mode (the IdP judges every token); remove it or use `hybrid`",
            ));
        }
        (Mode::Introspect, None) => None,
        (_, jwks) => Some(parse_jwks(jwks, algorithms, &issuer)?),
    };
    let introspection = match (mode, raw.introspection) {
        (Mode::Jwt, Some(_)) => {
            return Err(ConfigError::new(
                "introspection",
                "is not used in `jwt` mode; use `introspect` or `hybrid`",
            ));
        }
        (Mode::Jwt, None) => None,
        (_, None) => {
            return Err(ConfigError::new(
                "introspection",
                "is required in `introspect` and `hybrid` modes",
            ));
        }
        (_, Some(raw)) => Some(parse_introspection(raw)?),
    };
    let on_idp_error = raw.on_idp_error.unwrap_or(OnIdpError::Deny);
    if on_idp_error == OnIdpError::Allow && introspection.is_none() {
        return Err(ConfigError::new(
            "on_idp_error",
            "applies to introspection only (`introspect` or `hybrid` mode)",
        ));
    }
    let opaque = raw.opaque.unwrap_or(false);
    if opaque && mode != Mode::Introspect {
        return Err(ConfigError::new(
            "opaque",
            "only an `introspect` provider can judge tokens that are not JWTs",
        ));
    }
    let token_source = parse_token_source(raw.token_source)?;
    let forward = parse_forward(raw.forward, &token_source)?;
    let backchannel = raw.backchannel_logout.map(parse_backchannel).transpose()?;
    let cache_max_entries = Bounded::or_usize(
        raw.cache.and_then(|cache| cache.max_entries),
        DEFAULT_CACHE_ENTRIES,
    );
    Ok(Provider {
        name,
        mode,
        issuer,
        audiences,
        algorithms,
        clock_skew_seconds: Bounded::or(raw.clock_skew_seconds, DEFAULT_CLOCK_SKEW_SECONDS),
        max_token_bytes: Bounded::or_usize(raw.max_token_bytes, DEFAULT_MAX_TOKEN_BYTES),
        verify_exp,
        verify_nbf,
        token_types,
        jwks,
        introspection,
        on_idp_error,
        opaque,
        token_source,
        forward,
        cache_max_entries,
        backchannel,
    })
}

fn parse_algorithms(raw: Option<Vec<String>>) -> Result<AlgorithmSet, ConfigError> {
    let names = raw.unwrap_or_else(|| vec!["RS256".to_owned()]);
    if names.is_empty() {
        return Err(ConfigError::new(
            "algorithms",
            "must list at least one algorithm",
        ));
    }
    let mut set = AlgorithmSet::EMPTY;
    for (index, name) in names.iter().enumerate() {
        if let Some(alg) = Algorithm::from_jws_name(name) {
            set.insert(alg);
            continue;
        }
        let problem = match name.to_ascii_uppercase().as_str() {
            "NONE" => "`none` means unsigned tokens and is never accepted".to_owned(),
            "HS256" | "HS384" | "HS512" => format!(
                "`{name}` (a shared secret) is not supported: the gateway verifies with public keys only"
            ),
            "ES512" | "ES256K" => {
                format!("`{name}` is not supported (no P-521/secp256k1 verifier is built in)")
            }
            _ => format!(
                "unknown algorithm `{name}`; supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
            ),
        };
        return Err(ConfigError::new(format!("algorithms[{index}]"), problem));
    }
    Ok(set)
}

/// `realm` of `WWW-Authenticate`: printable ASCII without quotes.
pub(crate) fn check_realm(realm: &str) -> Result<(), ConfigError> {
    if is_quoted_string_safe(realm) {
        Ok(())
    } else {
        Err(ConfigError::new(
            "realm",
            "must be printable ASCII without `\"` or `\\` (it is sent in WWW-Authenticate)",
        ))
    }
}

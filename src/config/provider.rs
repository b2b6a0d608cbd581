//! One identity provider's configuration: who issues the tokens, how they are read, checked
//! and forwarded. A single-issuer configuration is one provider written at the top level.

use serde::Deserialize;

use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::jwks::{JwksError, KeySet};
use crate::jwt::ClaimPath;

use super::error::{ConfigError, join};
use super::values::{
    Bounded, Name, Secret, is_header_name, is_quoted_string_safe, is_unreserved_url_byte,
};

/// `clock_skew_seconds` when absent.
pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 30;
/// `max_token_bytes` when absent.
pub const DEFAULT_MAX_TOKEN_BYTES: u64 = 8192;
/// Cache sizes when absent.
pub const DEFAULT_CACHE_ENTRIES: u64 = 4096;
/// `jwks.*.refresh_seconds` when absent.
pub const DEFAULT_JWKS_REFRESH_SECONDS: u64 = 300;
/// `jwks.*.timeout_ms` when absent.
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 2000;
/// `introspection.timeout_ms` when absent.
pub const DEFAULT_INTROSPECTION_TIMEOUT_MS: u64 = 2000;
/// `introspection.cache_ttl_seconds` when absent.
pub const DEFAULT_INTROSPECTION_CACHE_TTL_SECONDS: u64 = 30;
/// `introspection.negative_cache_ttl_seconds` when absent.
pub const DEFAULT_INTROSPECTION_NEGATIVE_TTL_SECONDS: u64 = 10;
/// `introspection.max_in_flight` when absent.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 1024;
/// Header marking a request admitted without verification (`on_idp_error: allow`).
pub const DEGRADED_HEADER: &str = "x-tokengate-degraded";
/// Where OpenID Connect Discovery 1.0 §4 puts the provider metadata, under the issuer.
pub const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";

const MAX_CACHE_ENTRIES: u64 = 1_000_000;

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

/// The RFC 7662 endpoint and the client the gateway authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// The Envoy cluster to call.
    pub cluster: String,
    /// The call's `:authority`.
    pub authority: String,
    /// The endpoint's path.
    pub path: String,
    /// The gateway's client id.
    pub client_id: String,
    /// The gateway's client secret (HTTP Basic).
    pub client_secret: Secret,
    /// Every call's timeout.
    pub timeout_ms: u64,
    /// Positive answers are cached this long, never beyond the token's `exp`; 0 = no cache.
    pub cache_ttl_seconds: u64,
    /// `active: false` answers are cached this long; 0 = not cached.
    pub negative_cache_ttl_seconds: u64,
    /// Per-worker introspection cache size.
    pub max_cache_entries: usize,
    /// Introspection calls one worker may have open at once; further tokens get 503.
    pub max_in_flight: usize,
}

/// Where the bearer token is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// A request header. `prefix` is matched ASCII-case-insensitively; when it ends in a space,
    /// any number of further spaces may follow (RFC 6750: `Bearer` is a case-insensitive scheme
    /// followed by one or more spaces). An empty prefix means the whole value is the token.
    Header {
        /// Lower-case header name.
        name: String,
        /// What precedes the token.
        prefix: String,
    },
    /// A query parameter (`access_token` in RFC 6750 §2.3).
    Query {
        /// The parameter's name.
        name: String,
    },
    /// A cookie.
    Cookie {
        /// The cookie's name.
        name: String,
    },
}

impl Default for TokenSource {
    fn default() -> Self {
        TokenSource::Header {
            name: "authorization".to_owned(),
            prefix: "Bearer ".to_owned(),
        }
    }
}

/// One claim forwarded as a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    /// Path of the claim: `sub`, or `realm_access.roles` for nested objects.
    pub claim: ClaimPath,
    /// Lower-case header name.
    pub header: String,
}

/// One claim published for the host's other filters and its access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedClaim {
    /// Where the claim is.
    pub claim: ClaimPath,
    /// The property it is published as: `tokengate.<name>` (in Envoy, filter state
    /// `wasm.tokengate.<name>`).
    pub property: String,
}

/// What an admitted request carries upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarding {
    /// Remove the token before forwarding.
    pub strip_token: bool,
    /// Claims copied into headers.
    pub claims_to_headers: Vec<ClaimHeader>,
    /// Publish the provider's name as property `tokengate.provider`.
    pub publish_provider: bool,
    /// Claims published as properties.
    pub published_claims: Vec<PublishedClaim>,
}

/// The property the verifying provider's name is published as.
pub const PROVIDER_PROPERTY: &str = "tokengate.provider";

/// A JWKS fetched from a fixed place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// The Envoy cluster to call.
    pub cluster: String,
    /// The call's `:authority`.
    pub authority: String,
    /// The JWKS path.
    pub path: String,
    /// Time between refreshes.
    pub refresh_seconds: u64,
    /// Every fetch's timeout.
    pub timeout_ms: u64,
}

/// A JWKS found through the issuer's OpenID Connect Discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryJwks {
    /// The cluster both documents are fetched through.
    pub cluster: String,
    /// The discovery document's `:authority` (the issuer's host and port by default).
    pub authority: String,
    /// The discovery document's path (the issuer's path + `/.well-known/openid-configuration`).
    pub path: String,
    /// Origins (`scheme://host[:port]`) `jwks_uri` may point to besides the issuer's own.
    pub allowed_jwks_origins: Vec<String>,
    /// Time between refreshes of both documents.
    pub refresh_seconds: u64,
    /// Every fetch's timeout.
    pub timeout_ms: u64,
}

/// Where a provider's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// In the configuration.
    Inline(KeySet),
    /// Fetched from a fixed place.
    Remote(RemoteJwks),
    /// Found through OpenID Connect Discovery.
    Discovery(DiscoveryJwks),
}

impl JwksSource {
    /// The refresh schedule's parameters, for the fetched kinds.
    pub fn refresh(&self) -> Option<(u64, u64)> {
        match self {
            JwksSource::Inline(_) => None,
            JwksSource::Remote(remote) => Some((remote.refresh_seconds, remote.timeout_ms)),
            JwksSource::Discovery(discovery) => {
                Some((discovery.refresh_seconds, discovery.timeout_ms))
            }
        }
    }
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
            pub(crate) jwks: Option<$crate::config::provider::RawJwks>,
            pub(crate) token_source: Option<$crate::config::provider::RawTokenSource>,
            pub(crate) forward: Option<$crate::config::provider::RawForward>,
            pub(crate) cache: Option<$crate::config::provider::RawCache>,
            pub(crate) introspection: Option<$crate::config::provider::RawIntrospection>,
            pub(crate) on_idp_error: Option<$crate::config::provider::OnIdpError>,
            pub(crate) opaque: Option<bool>,
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
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIntrospection {
    cluster: String,
    authority: String,
    path: String,
    client_id: String,
    client_secret: Secret,
    timeout_ms: Option<Bounded<50, 60_000>>,
    cache_ttl_seconds: Option<Bounded<0, 3600>>,
    negative_cache_ttl_seconds: Option<Bounded<0, 3600>>,
    max_cache_entries: Option<Bounded<0, MAX_CACHE_ENTRIES>>,
    max_in_flight: Option<Bounded<1, 100_000>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwks {
    inline: Option<serde_json::Value>,
    remote: Option<RawRemoteJwks>,
    discovery: Option<RawDiscovery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteJwks {
    cluster: String,
    authority: String,
    path: String,
    refresh_seconds: Option<Bounded<10, 86_400>>,
    timeout_ms: Option<Bounded<50, 60_000>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    cluster: String,
    authority: Option<String>,
    path: Option<String>,
    allowed_jwks_origins: Option<Vec<String>>,
    refresh_seconds: Option<Bounded<10, 86_400>>,
    timeout_ms: Option<Bounded<50, 60_000>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokenSource {
    header: Option<String>,
    prefix: Option<String>,
    query: Option<String>,
    cookie: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForward {
    strip_authorization: Option<bool>,
    claims_to_headers: Option<Vec<RawClaimHeader>>,
    filter_state: Option<RawFilterState>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilterState {
    provider: Option<bool>,
    claims: Option<Vec<RawPublishedClaim>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublishedClaim {
    claim: ClaimPath,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimHeader {
    claim: ClaimPath,
    header: String,
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

fn parse_jwks(
    raw: Option<RawJwks>,
    algorithms: AlgorithmSet,
    issuer: &str,
) -> Result<JwksSource, ConfigError> {
    let Some(raw) = raw else {
        return Err(ConfigError::new(
            "jwks",
            "is required: {\"inline\": {...}}, {\"remote\": {...}} or {\"discovery\": {...}}",
        ));
    };
    match (raw.inline, raw.remote, raw.discovery) {
        (Some(inline), None, None) => {
            let bytes = serde_json::to_vec(&inline)
                .map_err(|err| ConfigError::new("jwks.inline", err.to_string()))?;
            let (keys, skipped) = KeySet::parse(&bytes, algorithms).map_err(|err| match err {
                JwksError::NoUsableKeys { skipped } => ConfigError::new(
                    "jwks.inline",
                    format!("no usable key for the allowed algorithms ({skipped})"),
                ),
                other => ConfigError::new("jwks.inline", other.to_string()),
            })?;
            for skip in skipped {
                log::info!("tokengate: inline JWKS: skipped {skip}");
            }
            Ok(JwksSource::Inline(keys))
        }
        (None, Some(remote), None) => {
            non_empty("jwks.remote.cluster", &remote.cluster)?;
            non_empty("jwks.remote.authority", &remote.authority)?;
            absolute_path("jwks.remote.path", &remote.path)?;
            Ok(JwksSource::Remote(RemoteJwks {
                cluster: remote.cluster,
                authority: remote.authority,
                path: remote.path,
                refresh_seconds: Bounded::or(remote.refresh_seconds, DEFAULT_JWKS_REFRESH_SECONDS),
                timeout_ms: Bounded::or(remote.timeout_ms, DEFAULT_JWKS_TIMEOUT_MS),
            }))
        }
        (None, None, Some(discovery)) => parse_discovery(discovery, issuer),
        (None, None, None) => Err(ConfigError::new(
            "jwks",
            "set one of `inline`, `remote` or `discovery`",
        )),
        _ => Err(ConfigError::new(
            "jwks",
            "set only one of `inline`, `remote` or `discovery`",
        )),
    }
}

fn parse_discovery(raw: RawDiscovery, issuer: &str) -> Result<JwksSource, ConfigError> {
    non_empty("jwks.discovery.cluster", &raw.cluster)?;
    let origin = Origin::parse(issuer).ok_or_else(|| {
        ConfigError::new(
            "jwks.discovery",
            "needs an issuer that is an http(s) URL (its discovery document lives under it)",
        )
    })?;
    let authority = match raw.authority {
        Some(authority) => {
            non_empty("jwks.discovery.authority", &authority)?;
            authority
        }
        None => origin.authority.clone(),
    };
    let path = match raw.path {
        Some(path) => {
            absolute_path("jwks.discovery.path", &path)?;
            path
        }
        None => format!("{}{DISCOVERY_SUFFIX}", origin.path.trim_end_matches('/')),
    };
    let mut allowed_jwks_origins = vec![origin.origin()];
    for (index, extra) in raw
        .allowed_jwks_origins
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match Origin::parse(extra) {
            Some(parsed) if parsed.path.is_empty() || parsed.path == "/" => {
                allowed_jwks_origins.push(parsed.origin());
            }
            _ => {
                return Err(ConfigError::new(
                    format!("jwks.discovery.allowed_jwks_origins[{index}]"),
                    "must be an origin: scheme://host[:port]",
                ));
            }
        }
    }
    Ok(JwksSource::Discovery(DiscoveryJwks {
        cluster: raw.cluster,
        authority,
        path,
        allowed_jwks_origins,
        refresh_seconds: Bounded::or(raw.refresh_seconds, DEFAULT_JWKS_REFRESH_SECONDS),
        timeout_ms: Bounded::or(raw.timeout_ms, DEFAULT_JWKS_TIMEOUT_MS),
    }))
}

/// The parts of an `http(s)` URL a discovery check needs: scheme, `host[:port]` and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`, lower case.
    pub scheme: String,
    /// `host[:port]`, the host lower case.
    pub authority: String,
    /// The path (may be empty), without query or fragment.
    pub path: String,
}

impl Origin {
    /// Parses an absolute `http` or `https` URL; `None` for anything else (userinfo included).
    pub fn parse(url: &str) -> Option<Origin> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        let valid = |b: u8| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b);
        if authority.is_empty() || !authority.bytes().all(valid) {
            return None;
        }
        let path = rest.split(['?', '#']).next().unwrap_or("");
        Some(Origin {
            scheme,
            authority: authority.to_ascii_lowercase(),
            path: path.to_owned(),
        })
    }

    /// `scheme://authority`, with the scheme's default port left out.
    pub fn origin(&self) -> String {
        let default_port = if self.scheme == "https" {
            ":443"
        } else {
            ":80"
        };
        let authority = self
            .authority
            .strip_suffix(default_port)
            .unwrap_or(&self.authority);
        format!("{}://{authority}", self.scheme)
    }
}

fn parse_introspection(raw: RawIntrospection) -> Result<Introspection, ConfigError> {
    non_empty("introspection.cluster", &raw.cluster)?;
    non_empty("introspection.authority", &raw.authority)?;
    non_empty("introspection.client_id", &raw.client_id)?;
    non_empty("introspection.client_secret", raw.client_secret.expose())?;
    absolute_path("introspection.path", &raw.path)?;
    Ok(Introspection {
        cluster: raw.cluster,
        authority: raw.authority,
        path: raw.path,
        client_id: raw.client_id,
        client_secret: raw.client_secret,
        timeout_ms: Bounded::or(raw.timeout_ms, DEFAULT_INTROSPECTION_TIMEOUT_MS),
        cache_ttl_seconds: Bounded::or(
            raw.cache_ttl_seconds,
            DEFAULT_INTROSPECTION_CACHE_TTL_SECONDS,
        ),
        negative_cache_ttl_seconds: Bounded::or(
            raw.negative_cache_ttl_seconds,
            DEFAULT_INTROSPECTION_NEGATIVE_TTL_SECONDS,
        ),
        max_cache_entries: Bounded::or_usize(raw.max_cache_entries, DEFAULT_CACHE_ENTRIES),
        max_in_flight: Bounded::or_usize(raw.max_in_flight, DEFAULT_MAX_IN_FLIGHT),
    })
}

fn non_empty(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        Err(ConfigError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}

fn absolute_path(field: &str, path: &str) -> Result<(), ConfigError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(ConfigError::new(field, "must start with `/`"))
    }
}

fn parse_token_source(raw: Option<RawTokenSource>) -> Result<TokenSource, ConfigError> {
    let Some(raw) = raw else {
        return Ok(TokenSource::default());
    };
    let chosen = [
        raw.header.is_some(),
        raw.query.is_some(),
        raw.cookie.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if chosen != 1 {
        return Err(ConfigError::new(
            "token_source",
            "set exactly one of `header`, `query` or `cookie`",
        ));
    }
    if raw.prefix.is_some() && raw.header.is_none() {
        return Err(ConfigError::new(
            "token_source.prefix",
            "applies only to a `header` source",
        ));
    }
    if let Some(header) = raw.header {
        if !is_header_name(&header) {
            return Err(ConfigError::new(
                "token_source.header",
                "is not a valid HTTP header name",
            ));
        }
        let name = header.to_ascii_lowercase();
        let prefix = match raw.prefix {
            Some(prefix) => prefix,
            None if name == "authorization" => "Bearer ".to_owned(),
            None => String::new(),
        };
        if prefix.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            return Err(ConfigError::new(
                "token_source.prefix",
                "must be printable ASCII",
            ));
        }
        return Ok(TokenSource::Header { name, prefix });
    }
    if let Some(name) = raw.query {
        if name.is_empty() || !name.bytes().all(is_unreserved_url_byte) {
            return Err(ConfigError::new(
                "token_source.query",
                "must be a non-empty parameter name of unreserved URL characters",
            ));
        }
        return Ok(TokenSource::Query { name });
    }
    let name = raw.cookie.unwrap_or_default();
    if !is_header_name(&name) {
        return Err(ConfigError::new(
            "token_source.cookie",
            "is not a valid cookie name",
        ));
    }
    Ok(TokenSource::Cookie { name })
}

fn parse_forward(
    raw: Option<RawForward>,
    token_source: &TokenSource,
) -> Result<Forwarding, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Forwarding::default());
    };
    let mut claims_to_headers: Vec<ClaimHeader> = Vec::new();
    for (index, rule) in raw
        .claims_to_headers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let field = |name: &str| join(&format!("forward.claims_to_headers[{index}]"), name);
        let header = rule.header.to_ascii_lowercase();
        if !is_header_name(&header) || header.starts_with(':') {
            return Err(ConfigError::new(
                field("header"),
                "is not a valid HTTP header name",
            ));
        }
        if is_protected_header(&header, token_source) {
            return Err(ConfigError::new(
                field("header"),
                format!("`{header}` cannot carry a claim"),
            ));
        }
        if claims_to_headers
            .iter()
            .any(|existing| existing.header == header)
        {
            return Err(ConfigError::new(
                field("header"),
                format!("`{header}` is used twice"),
            ));
        }
        claims_to_headers.push(ClaimHeader {
            claim: rule.claim,
            header,
        });
    }
    let filter_state = raw.filter_state;
    let publish_provider = filter_state
        .as_ref()
        .and_then(|state| state.provider)
        .unwrap_or(false);
    let mut published_claims: Vec<PublishedClaim> = Vec::new();
    let claims = filter_state
        .and_then(|state| state.claims)
        .unwrap_or_default();
    for (index, published) in claims.into_iter().enumerate() {
        let field = format!("forward.filter_state.claims[{index}].name");
        let valid = !published.name.is_empty()
            && published.name.len() <= 64
            && published
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
        if !valid || published.name == "provider" {
            return Err(ConfigError::new(
                field,
                "must be 1-64 characters of a-z, 0-9, `_`, `-`, `.`, and not `provider`",
            ));
        }
        let property = format!("tokengate.{}", published.name);
        if published_claims.iter().any(|p| p.property == property) {
            return Err(ConfigError::new(
                field,
                format!("`{}` is used twice", published.name),
            ));
        }
        published_claims.push(PublishedClaim {
            claim: published.claim,
            property,
        });
    }
    Ok(Forwarding {
        strip_token: raw.strip_authorization.unwrap_or(false),
        claims_to_headers,
        publish_provider,
        published_claims,
    })
}

fn is_protected_header(header: &str, token_source: &TokenSource) -> bool {
    const PROTECTED: [&str; 7] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "cookie",
        "te",
        "upgrade",
    ];
    let token_header = match token_source {
        TokenSource::Header { name, .. } => name == header,
        _ => false,
    };
    token_header
        || header == "authorization"
        || header == DEGRADED_HEADER
        || PROTECTED.contains(&header)
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

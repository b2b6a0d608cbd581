//! Plugin configuration: parsed and validated once, when Envoy loads the plugin.
//!
//! Every problem is reported as a [`ConfigError`] naming the field (a dotted path such as
//! `jwks.remote.cluster`), so that `on_configure` can log one clear line and refuse to start.
//! Unknown fields are errors: a misspelt `claims_to_verfy` must not silently fall back to the
//! default.

use std::fmt;

use serde::Deserialize;

use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::jwks::{JwksError, KeySet};

pub const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 30;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
pub const DEFAULT_REALM: &str = "tokengate";
pub const DEFAULT_CACHE_ENTRIES: usize = 4096;
pub const DEFAULT_RETRY_AFTER_SECONDS: u32 = 5;
pub const DEFAULT_JWKS_REFRESH_SECONDS: u64 = 300;
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_INTROSPECTION_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_INTROSPECTION_CACHE_TTL_SECONDS: u64 = 30;
pub const DEFAULT_INTROSPECTION_NEGATIVE_TTL_SECONDS: u64 = 10;
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Header marking a request admitted without verification (`on_idp_error: allow`).
pub const DEGRADED_HEADER: &str = "x-tokengate-degraded";

const MAX_TOKEN_BYTES_RANGE: (usize, usize) = (256, 65536);
const MAX_CACHE_ENTRIES: usize = 1_000_000;

/// A configuration problem, naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid configuration: {}", self.problem)
        } else {
            write!(
                f,
                "invalid configuration: field `{}`: {}",
                self.field, self.problem
            )
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnIdpError {
    /// 503 with `Retry-After`: the default, fail closed.
    Deny,
    /// Admit the request, marked with `x-tokengate-degraded`: an explicit fail-open choice.
    Allow,
}

/// A secret that never shows up in `Debug` output (and so never in a log line).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The RFC 7662 endpoint and the client the gateway authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub timeout_ms: u64,
    /// Positive answers are cached this long, never beyond the token's `exp`; 0 = no cache.
    pub cache_ttl_seconds: u64,
    /// `active: false` answers are cached this long; 0 = not cached.
    pub negative_cache_ttl_seconds: u64,
    pub max_cache_entries: usize,
    /// Introspection calls one worker may have open at once; further tokens get 503.
    pub max_in_flight: usize,
}

/// Where the bearer token is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A request header. `prefix` is matched ASCII-case-insensitively; when it ends in a space,
    /// any number of further spaces may follow (RFC 6750: `Bearer` is a case-insensitive scheme
    /// followed by one or more spaces). An empty prefix means the whole value is the token.
    Header { name: String, prefix: String },
    /// A query parameter (`access_token` in RFC 6750 §2.3).
    Query { name: String },
    /// A cookie.
    Cookie { name: String },
}

impl Default for TokenSource {
    fn default() -> Self {
        TokenSource::Header {
            name: "authorization".to_owned(),
            prefix: "Bearer ".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    /// Path of the claim: `sub`, or `realm_access.roles` for nested objects.
    pub claim_path: Vec<String>,
    pub claim: String,
    /// Lower-case header name.
    pub header: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarding {
    pub strip_token: bool,
    pub claims_to_headers: Vec<ClaimHeader>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub refresh_seconds: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub enum JwksSource {
    Inline(KeySet),
    Remote(RemoteJwks),
}

/// The validated configuration of one plugin instance.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub issuer: String,
    /// Accepted `aud` values; empty means the audience is not checked (explicit `[]`).
    pub audiences: Vec<String>,
    pub algorithms: AlgorithmSet,
    pub clock_skew_seconds: u64,
    pub max_token_bytes: usize,
    pub realm: String,
    pub verify_exp: bool,
    pub verify_nbf: bool,
    /// Accepted payload `typ` values (compared case-insensitively); empty disables the check.
    pub token_types: Vec<String>,
    pub required_scopes: Vec<String>,
    /// Required for `jwt` and `hybrid`, absent for `introspect`.
    pub jwks: Option<JwksSource>,
    /// Required for `introspect` and `hybrid`, absent for `jwt`.
    pub introspection: Option<Introspection>,
    pub on_idp_error: OnIdpError,
    pub token_source: TokenSource,
    pub forward: Forwarding,
    /// Capacity of the per-worker verified-token cache; 0 disables it.
    pub cache_max_entries: usize,
    pub retry_after_seconds: u32,
}

impl Config {
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

    /// The `scope` attribute for 403 responses: the required scopes, space-separated.
    pub fn required_scope_string(&self) -> String {
        self.required_scopes.join(" ")
    }
}

// ----- raw (wire) form -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mode: Option<String>,
    issuer: Option<String>,
    audiences: Option<OneOrMany>,
    algorithms: Option<Vec<String>>,
    clock_skew_seconds: Option<u64>,
    max_token_bytes: Option<usize>,
    realm: Option<String>,
    claims_to_verify: Option<Vec<String>>,
    token_types: Option<Vec<String>>,
    required_scopes: Option<Vec<String>>,
    jwks: Option<RawJwks>,
    token_source: Option<RawTokenSource>,
    forward: Option<RawForward>,
    cache: Option<RawCache>,
    retry_after_seconds: Option<u32>,
    introspection: Option<RawIntrospection>,
    on_idp_error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntrospection {
    cluster: String,
    authority: String,
    path: String,
    client_id: String,
    client_secret: String,
    timeout_ms: Option<u64>,
    cache_ttl_seconds: Option<u64>,
    negative_cache_ttl_seconds: Option<u64>,
    max_cache_entries: Option<usize>,
    max_in_flight: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwks {
    inline: Option<serde_json::Value>,
    remote: Option<RawRemoteJwks>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteJwks {
    cluster: String,
    authority: String,
    path: String,
    refresh_seconds: Option<u64>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenSource {
    header: Option<String>,
    prefix: Option<String>,
    query: Option<String>,
    cookie: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    strip_authorization: Option<bool>,
    claims_to_headers: Option<Vec<RawClaimHeader>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimHeader {
    claim: String,
    header: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    max_entries: Option<usize>,
}

/// Parses and validates the plugin configuration (the JSON in Envoy's `configuration`).
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let field = err.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ConfigError::new(field, err.into_inner().to_string())
    })?;
    validate(raw)
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mode = match raw.mode.as_deref() {
        None | Some("jwt") => Mode::Jwt,
        Some("introspect") => Mode::Introspect,
        Some("hybrid") => Mode::Hybrid,
        Some(other) => {
            return Err(ConfigError::new(
                "mode",
                format!("unknown mode `{other}`; expected `jwt`, `introspect` or `hybrid`"),
            ));
        }
    };

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
        Some(OneOrMany::One(aud)) => vec![aud],
        Some(OneOrMany::Many(list)) => list,
    };
    if let Some(index) = audiences.iter().position(|aud| aud.is_empty()) {
        return Err(ConfigError::new(
            format!("audiences[{index}]"),
            "must not be empty",
        ));
    }

    let algorithms = parse_algorithms(raw.algorithms)?;

    let clock_skew_seconds = raw.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
    if clock_skew_seconds > 600 {
        return Err(ConfigError::new(
            "clock_skew_seconds",
            "must be at most 600 seconds",
        ));
    }

    let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    let (min, max) = MAX_TOKEN_BYTES_RANGE;
    if !(min..=max).contains(&max_token_bytes) {
        return Err(ConfigError::new(
            "max_token_bytes",
            format!("must be between {min} and {max}"),
        ));
    }

    let realm = raw.realm.unwrap_or_else(|| DEFAULT_REALM.to_owned());
    if !is_quoted_string_safe(&realm) {
        return Err(ConfigError::new(
            "realm",
            "must be printable ASCII without `\"` or `\\` (it is sent in WWW-Authenticate)",
        ));
    }

    let (verify_exp, verify_nbf) = parse_claims_to_verify(raw.claims_to_verify)?;

    let token_types = raw.token_types.unwrap_or_else(|| vec!["Bearer".to_owned()]);
    if let Some(index) = token_types.iter().position(|typ| typ.is_empty()) {
        return Err(ConfigError::new(
            format!("token_types[{index}]"),
            "must not be empty",
        ));
    }

    let required_scopes = raw.required_scopes.unwrap_or_default();
    for (index, scope) in required_scopes.iter().enumerate() {
        // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            return Err(ConfigError::new(
                format!("required_scopes[{index}]"),
                "is not a valid scope token (RFC 6749 §3.3)",
            ));
        }
    }

    let jwks = match (mode, raw.jwks) {
        (Mode::Introspect, Some(_)) => {
            return Err(ConfigError::new(
                "jwks",
                "is not used in `introspect` mode (the IdP judges every token); remove it or use `hybrid`",
            ));
        }
        (Mode::Introspect, None) => None,
        (_, jwks) => Some(parse_jwks(jwks, algorithms)?),
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
    let on_idp_error = match raw.on_idp_error.as_deref() {
        None | Some("deny") => OnIdpError::Deny,
        Some("allow") => OnIdpError::Allow,
        Some(other) => {
            return Err(ConfigError::new(
                "on_idp_error",
                format!("unknown value `{other}`; expected `deny` or `allow`"),
            ));
        }
    };
    if on_idp_error == OnIdpError::Allow && introspection.is_none() {
        return Err(ConfigError::new(
            "on_idp_error",
            "applies to introspection only (`introspect` or `hybrid` mode)",
        ));
    }
    let token_source = parse_token_source(raw.token_source)?;
    let forward = parse_forward(raw.forward, &token_source)?;

    let cache_max_entries = raw
        .cache
        .and_then(|cache| cache.max_entries)
        .unwrap_or(DEFAULT_CACHE_ENTRIES);
    if cache_max_entries > MAX_CACHE_ENTRIES {
        return Err(ConfigError::new(
            "cache.max_entries",
            format!("must be at most {MAX_CACHE_ENTRIES}"),
        ));
    }

    let retry_after_seconds = raw
        .retry_after_seconds
        .unwrap_or(DEFAULT_RETRY_AFTER_SECONDS);
    if retry_after_seconds == 0 || retry_after_seconds > 3600 {
        return Err(ConfigError::new(
            "retry_after_seconds",
            "must be between 1 and 3600",
        ));
    }

    Ok(Config {
        mode,
        issuer,
        audiences,
        algorithms,
        clock_skew_seconds,
        max_token_bytes,
        realm,
        verify_exp,
        verify_nbf,
        token_types,
        required_scopes,
        jwks,
        introspection,
        on_idp_error,
        token_source,
        forward,
        cache_max_entries,
        retry_after_seconds,
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
        let field = format!("algorithms[{index}]");
        if let Some(alg) = Algorithm::from_jws_name(name) {
            set.insert(alg);
            continue;
        }
        let problem = match name.to_ascii_uppercase().as_str() {
            "NONE" => "`none` means unsigned tokens and is never accepted".to_owned(),
            "HS256" | "HS384" | "HS512" => format!(
                "`{name}` (a shared secret) is not supported: the gateway verifies with public keys only"
            ),
            "ES384" | "ES512" | "ES256K" => {
                format!("`{name}` is not supported (no P-384/P-521/secp256k1 verifier is built in)")
            }
            _ => format!(
                "unknown algorithm `{name}`; supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, EdDSA"
            ),
        };
        return Err(ConfigError::new(field, problem));
    }
    Ok(set)
}

fn parse_claims_to_verify(raw: Option<Vec<String>>) -> Result<(bool, bool), ConfigError> {
    let Some(claims) = raw else {
        return Ok((true, true));
    };
    let (mut exp, mut nbf) = (false, false);
    for (index, claim) in claims.iter().enumerate() {
        match claim.as_str() {
            "exp" => exp = true,
            "nbf" => nbf = true,
            other => {
                return Err(ConfigError::new(
                    format!("claims_to_verify[{index}]"),
                    format!("unknown claim `{other}`; expected `exp` or `nbf`"),
                ));
            }
        }
    }
    Ok((exp, nbf))
}

fn parse_jwks(raw: Option<RawJwks>, algorithms: AlgorithmSet) -> Result<JwksSource, ConfigError> {
    let Some(raw) = raw else {
        return Err(ConfigError::new(
            "jwks",
            "is required: {\"inline\": {...}} or {\"remote\": {...}}",
        ));
    };
    match (raw.inline, raw.remote) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            "jwks",
            "set either `inline` or `remote`, not both",
        )),
        (None, None) => Err(ConfigError::new("jwks", "set either `inline` or `remote`")),
        (Some(inline), None) => {
            let bytes = serde_json::to_vec(&inline)
                .map_err(|err| ConfigError::new("jwks.inline", err.to_string()))?;
            let (keys, _skipped) = KeySet::parse(&bytes, algorithms).map_err(|err| match err {
                JwksError::NoUsableKeys { skipped } => ConfigError::new(
                    "jwks.inline",
                    format!("no usable key for the allowed algorithms ({skipped})"),
                ),
                other => ConfigError::new("jwks.inline", other.to_string()),
            })?;
            Ok(JwksSource::Inline(keys))
        }
        (None, Some(remote)) => {
            if remote.cluster.is_empty() {
                return Err(ConfigError::new("jwks.remote.cluster", "must not be empty"));
            }
            if remote.authority.is_empty() {
                return Err(ConfigError::new(
                    "jwks.remote.authority",
                    "must not be empty",
                ));
            }
            if !remote.path.starts_with('/') {
                return Err(ConfigError::new("jwks.remote.path", "must start with `/`"));
            }
            let refresh_seconds = remote
                .refresh_seconds
                .unwrap_or(DEFAULT_JWKS_REFRESH_SECONDS);
            if !(10..=86_400).contains(&refresh_seconds) {
                return Err(ConfigError::new(
                    "jwks.remote.refresh_seconds",
                    "must be between 10 and 86400",
                ));
            }
            let timeout_ms = remote.timeout_ms.unwrap_or(DEFAULT_JWKS_TIMEOUT_MS);
            if !(50..=60_000).contains(&timeout_ms) {
                return Err(ConfigError::new(
                    "jwks.remote.timeout_ms",
                    "must be between 50 and 60000",
                ));
            }
            Ok(JwksSource::Remote(RemoteJwks {
                cluster: remote.cluster,
                authority: remote.authority,
                path: remote.path,
                refresh_seconds,
                timeout_ms,
            }))
        }
    }
}

fn parse_introspection(raw: RawIntrospection) -> Result<Introspection, ConfigError> {
    let non_empty = |field: &str, value: &str| {
        if value.is_empty() {
            Err(ConfigError::new(
                format!("introspection.{field}"),
                "must not be empty",
            ))
        } else {
            Ok(())
        }
    };
    non_empty("cluster", &raw.cluster)?;
    non_empty("authority", &raw.authority)?;
    non_empty("client_id", &raw.client_id)?;
    non_empty("client_secret", &raw.client_secret)?;
    if !raw.path.starts_with('/') {
        return Err(ConfigError::new(
            "introspection.path",
            "must start with `/`",
        ));
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_INTROSPECTION_TIMEOUT_MS);
    if !(50..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(
            "introspection.timeout_ms",
            "must be between 50 and 60000",
        ));
    }
    let cache_ttl_seconds = raw
        .cache_ttl_seconds
        .unwrap_or(DEFAULT_INTROSPECTION_CACHE_TTL_SECONDS);
    if cache_ttl_seconds > 3600 {
        return Err(ConfigError::new(
            "introspection.cache_ttl_seconds",
            "must be at most 3600 (a revoked token stays admitted for up to this long)",
        ));
    }
    let negative_cache_ttl_seconds = raw
        .negative_cache_ttl_seconds
        .unwrap_or(DEFAULT_INTROSPECTION_NEGATIVE_TTL_SECONDS);
    if negative_cache_ttl_seconds > 3600 {
        return Err(ConfigError::new(
            "introspection.negative_cache_ttl_seconds",
            "must be at most 3600",
        ));
    }
    let max_cache_entries = raw.max_cache_entries.unwrap_or(DEFAULT_CACHE_ENTRIES);
    if max_cache_entries > MAX_CACHE_ENTRIES {
        return Err(ConfigError::new(
            "introspection.max_cache_entries",
            format!("must be at most {MAX_CACHE_ENTRIES}"),
        ));
    }
    let max_in_flight = raw.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    if !(1..=100_000).contains(&max_in_flight) {
        return Err(ConfigError::new(
            "introspection.max_in_flight",
            "must be between 1 and 100000",
        ));
    }
    Ok(Introspection {
        cluster: raw.cluster,
        authority: raw.authority,
        path: raw.path,
        client_id: raw.client_id,
        client_secret: Secret(raw.client_secret),
        timeout_ms,
        cache_ttl_seconds,
        negative_cache_ttl_seconds,
        max_cache_entries,
        max_in_flight,
    })
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
        let claim_path: Vec<String> = rule.claim.split('.').map(str::to_owned).collect();
        if claim_path.iter().any(String::is_empty) {
            return Err(ConfigError::new(
                format!("forward.claims_to_headers[{index}].claim"),
                "must be a claim name or a dotted path such as `realm_access.roles`",
            ));
        }
        let header = rule.header.to_ascii_lowercase();
        if !is_header_name(&header) || header.starts_with(':') {
            return Err(ConfigError::new(
                format!("forward.claims_to_headers[{index}].header"),
                "is not a valid HTTP header name",
            ));
        }
        if is_protected_header(&header, token_source) {
            return Err(ConfigError::new(
                format!("forward.claims_to_headers[{index}].header"),
                format!("`{header}` cannot carry a claim"),
            ));
        }
        if claims_to_headers
            .iter()
            .any(|existing| existing.header == header)
        {
            return Err(ConfigError::new(
                format!("forward.claims_to_headers[{index}].header"),
                format!("`{header}` is used twice"),
            ));
        }
        claims_to_headers.push(ClaimHeader {
            claim_path,
            claim: rule.claim,
            header,
        });
    }
    Ok(Forwarding {
        strip_token: raw.strip_authorization.unwrap_or(false),
        claims_to_headers,
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

/// RFC 9110 token characters.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_unreserved_url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fn is_quoted_string_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

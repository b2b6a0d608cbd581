//! A provider's RFC 7662 introspection endpoint and the client the gateway calls it as.

use serde::Deserialize;

use super::error::ConfigError;
use super::provider::{DEFAULT_CACHE_ENTRIES, MAX_CACHE_ENTRIES};
use super::values::{Bounded, Secret, absolute_path, non_empty};

/// `introspection.timeout_ms` when absent.
pub const DEFAULT_INTROSPECTION_TIMEOUT_MS: u64 = 2000;
/// `introspection.cache_ttl_seconds` when absent.
pub const DEFAULT_INTROSPECTION_CACHE_TTL_SECONDS: u64 = 30;
/// `introspection.negative_cache_ttl_seconds` when absent.
pub const DEFAULT_INTROSPECTION_NEGATIVE_TTL_SECONDS: u64 = 10;
/// `introspection.max_in_flight` when absent.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 1024;

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

pub(crate) fn parse_introspection(raw: RawIntrospection) -> Result<Introspection, ConfigError> {
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

//! Names of the metrics the filter exports. Envoy shows them under `wasmcustom.` in `/stats`,
//! e.g. `wasmcustom.tokengate.denied.expired`.

use crate::rejection::{DenyReason, IdpFailure};

pub const PREFIX: &str = "tokengate";

/// Counters, besides one `denied.<reason>` counter per [`DenyReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Allowed,
    CacheHit,
    CacheMiss,
    JwksFetchSuccess,
    JwksFetchFailure,
    JwksKidRefetch,
    /// Admitted without the IdP's verdict (`on_idp_error: allow`).
    AllowedDegraded,
    IntrospectionCalls,
    /// Requests that waited on a call another request of the same token had opened.
    IntrospectionCoalesced,
    IntrospectionCacheHitPositive,
    IntrospectionCacheHitNegative,
    IntrospectionCacheMiss,
}

impl Counter {
    pub const ALL: [Counter; 12] = [
        Counter::Allowed,
        Counter::CacheHit,
        Counter::CacheMiss,
        Counter::JwksFetchSuccess,
        Counter::JwksFetchFailure,
        Counter::JwksKidRefetch,
        Counter::AllowedDegraded,
        Counter::IntrospectionCalls,
        Counter::IntrospectionCoalesced,
        Counter::IntrospectionCacheHitPositive,
        Counter::IntrospectionCacheHitNegative,
        Counter::IntrospectionCacheMiss,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::Allowed => "tokengate.allowed",
            Counter::CacheHit => "tokengate.cache.hit",
            Counter::CacheMiss => "tokengate.cache.miss",
            Counter::JwksFetchSuccess => "tokengate.jwks.fetch_success",
            Counter::JwksFetchFailure => "tokengate.jwks.fetch_failure",
            Counter::JwksKidRefetch => "tokengate.jwks.kid_refetch",
            Counter::AllowedDegraded => "tokengate.allowed_degraded",
            Counter::IntrospectionCalls => "tokengate.introspection.calls",
            Counter::IntrospectionCoalesced => "tokengate.introspection.coalesced",
            Counter::IntrospectionCacheHitPositive => "tokengate.introspection.cache_hit_positive",
            Counter::IntrospectionCacheHitNegative => "tokengate.introspection.cache_hit_negative",
            Counter::IntrospectionCacheMiss => "tokengate.introspection.cache_miss",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// Number of signing keys in use.
    KeysLoaded,
    /// 1 when `exp` is deliberately not verified (`claims_to_verify` without `exp`).
    ExpCheckDisabled,
}

impl Gauge {
    pub const ALL: [Gauge; 2] = [Gauge::KeysLoaded, Gauge::ExpCheckDisabled];

    pub fn name(self) -> &'static str {
        match self {
            Gauge::KeysLoaded => "tokengate.jwks.keys_loaded",
            Gauge::ExpCheckDisabled => "tokengate.config.exp_check_disabled",
        }
    }
}

/// Histogram of introspection call latency, in milliseconds.
pub const INTROSPECTION_LATENCY_MS: &str = "tokengate.introspection.latency_ms";

pub fn denied_name(reason: DenyReason) -> String {
    format!("{PREFIX}.denied.{}", reason.as_str())
}

/// `tokengate.introspection.idp_error.<kind>`.
pub fn idp_error_name(failure: IdpFailure) -> String {
    format!("{PREFIX}.introspection.idp_error.{}", failure.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<String> = Counter::ALL.iter().map(|c| c.name().to_owned()).collect();
        names.extend(Gauge::ALL.iter().map(|g| g.name().to_owned()));
        names.extend(DenyReason::ALL.iter().map(|r| denied_name(*r)));
        names.extend(IdpFailure::ALL.iter().map(|f| idp_error_name(*f)));
        names.push(INTROSPECTION_LATENCY_MS.to_owned());
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(names.iter().all(|n| n.starts_with("tokengate.")));
        assert_eq!(denied_name(DenyReason::Expired), "tokengate.denied.expired");
        // The host indexes its metric handles by discriminant.
        for (index, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, index);
        }
        for (index, gauge) in Gauge::ALL.iter().enumerate() {
            assert_eq!(*gauge as usize, index);
        }
        for (index, failure) in IdpFailure::ALL.iter().enumerate() {
            assert_eq!(failure.index(), index);
        }
    }
}

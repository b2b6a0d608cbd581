//! Names of the metrics the filter exports. Envoy shows them under `wasmcustom.` in `/stats`,
//! e.g. `wasmcustom.tokengate.denied.expired`.

use crate::rejection::DenyReason;

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
}

impl Counter {
    pub const ALL: [Counter; 6] = [
        Counter::Allowed,
        Counter::CacheHit,
        Counter::CacheMiss,
        Counter::JwksFetchSuccess,
        Counter::JwksFetchFailure,
        Counter::JwksKidRefetch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::Allowed => "tokengate.allowed",
            Counter::CacheHit => "tokengate.cache.hit",
            Counter::CacheMiss => "tokengate.cache.miss",
            Counter::JwksFetchSuccess => "tokengate.jwks.fetch_success",
            Counter::JwksFetchFailure => "tokengate.jwks.fetch_failure",
            Counter::JwksKidRefetch => "tokengate.jwks.kid_refetch",
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

pub fn denied_name(reason: DenyReason) -> String {
    format!("{PREFIX}.denied.{}", reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<String> = Counter::ALL.iter().map(|c| c.name().to_owned()).collect();
        names.extend(Gauge::ALL.iter().map(|g| g.name().to_owned()));
        names.extend(DenyReason::ALL.iter().map(|r| denied_name(*r)));
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(names.iter().all(|n| n.starts_with("tokengate.")));
        assert_eq!(denied_name(DenyReason::Expired), "tokengate.denied.expired");
    }
}

//! The metrics the filter exports: their names, and the handles one worker holds for them.
//! Envoy shows them under `wasmcustom.` in `/stats`, e.g. `wasmcustom.tokengate.denied.expired`,
//! and aggregates metrics of the same name across workers.
//!
//! Besides the totals, every rule and every provider has its own `allowed` and
//! `denied.<reason>` (`tokengate.rule.<name>.*`, `tokengate.provider.<name>.*`), and every
//! provider its key and introspection counters.

use crate::config::Config;
use crate::engine::{CacheUse, IntrospectionCacheUse, Lookups};
use crate::filter::host::{Host, HostError, MetricKind};
use crate::rejection::{DenyReason, IdpFailure};
use crate::revocation::LogoutError;

/// Every metric name starts with this.
pub const PREFIX: &str = "tokengate";

/// Counters, besides one `denied.<reason>` counter per [`DenyReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Requests let through.
    Allowed,
    /// Verified-token cache lookups that found the token.
    CacheHit,
    /// Verified-token cache lookups that did not.
    CacheMiss,
    /// JWKS fetches that installed a key set.
    JwksFetchSuccess,
    /// JWKS fetches that failed (the last good keys stay).
    JwksFetchFailure,
    /// Fetches triggered by a token with an unknown `kid`.
    JwksKidRefetch,
    /// Admitted without the IdP's verdict (`on_idp_error: allow`).
    AllowedDegraded,
    /// Introspection calls dispatched.
    IntrospectionCalls,
    /// Requests that waited on a call another request of the same token had opened.
    IntrospectionCoalesced,
    /// Introspection cache hits with `active: true`.
    IntrospectionCacheHitPositive,
    /// Introspection cache hits with a refusal.
    IntrospectionCacheHitNegative,
    /// Introspection cache lookups that found nothing.
    IntrospectionCacheMiss,
    /// Logout tokens accepted (each ended a session or a user's sessions).
    RevocationReceived,
    /// Accepted logout tokens relayed to a peer replica that answered 200.
    RevocationRelayed,
    /// Relays that failed for good (the peer did not answer 200, after the retries).
    RevocationRelayFailed,
    /// Relays sent again after no answer or a 5xx.
    RevocationRelayRetried,
    /// Live entries forgotten because the set was full (`when_full: drop_oldest`).
    RevocationDropped,
    /// Times the set was found full with `when_full: fail_closed`.
    RevocationFull,
}

impl Counter {
    /// Every counter, in discriminant order (the handles are indexed by it).
    pub const ALL: [Counter; 18] = [
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
        Counter::RevocationReceived,
        Counter::RevocationRelayed,
        Counter::RevocationRelayFailed,
        Counter::RevocationRelayRetried,
        Counter::RevocationDropped,
        Counter::RevocationFull,
    ];

    /// The exported name.
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
            Counter::RevocationReceived => "tokengate.revocation.received",
            Counter::RevocationRelayed => "tokengate.revocation.relayed",
            Counter::RevocationRelayFailed => "tokengate.revocation.relay_failed",
            Counter::RevocationRelayRetried => "tokengate.revocation.relay_retried",
            Counter::RevocationDropped => "tokengate.revocation.dropped",
            Counter::RevocationFull => "tokengate.revocation.full",
        }
    }
}

/// Gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// Number of signing keys in use.
    KeysLoaded,
    /// 1 when `exp` is deliberately not verified (`claims_to_verify` without `exp`).
    ExpCheckDisabled,
    /// Ended sessions this worker knows of (all providers).
    RevokedEntries,
    /// Verified tokens and introspection answers this worker holds in its caches (all
    /// providers): bounded by the configured sizes, whatever the traffic.
    CacheEntries,
}

impl Gauge {
    /// Every gauge, in discriminant order.
    pub const ALL: [Gauge; 4] = [
        Gauge::KeysLoaded,
        Gauge::ExpCheckDisabled,
        Gauge::RevokedEntries,
        Gauge::CacheEntries,
    ];

    /// The exported name.
    pub fn name(self) -> &'static str {
        match self {
            Gauge::KeysLoaded => "tokengate.jwks.keys_loaded",
            Gauge::ExpCheckDisabled => "tokengate.config.exp_check_disabled",
            Gauge::RevokedEntries => "tokengate.revocation.entries",
            Gauge::CacheEntries => "tokengate.cache.entries",
        }
    }
}

/// Histogram of introspection call latency, in milliseconds.
pub const INTROSPECTION_LATENCY_MS: &str = "tokengate.introspection.latency_ms";

/// `tokengate.denied.<reason>`.
pub fn denied_name(reason: DenyReason) -> String {
    format!("{PREFIX}.denied.{}", reason.as_str())
}

/// `tokengate.introspection.idp_error.<kind>`.
pub fn idp_error_name(failure: IdpFailure) -> String {
    format!("{PREFIX}.introspection.idp_error.{}", failure.as_str())
}

/// `allowed` and `denied.<reason>` under a prefix.
struct Outcomes {
    allowed: u32,
    denied: [u32; DenyReason::ALL.len()],
}

impl Outcomes {
    fn define(host: &mut impl Host, prefix: &str) -> Result<Outcomes, HostError> {
        let allowed = host.define_metric(MetricKind::Counter, &format!("{prefix}.allowed"))?;
        let mut denied = [0; DenyReason::ALL.len()];
        for (slot, reason) in denied.iter_mut().zip(DenyReason::ALL) {
            let name = format!("{prefix}.denied.{}", reason.as_str());
            *slot = host.define_metric(MetricKind::Counter, &name)?;
        }
        Ok(Outcomes { allowed, denied })
    }
}

/// The counters a provider has of its own, besides its outcomes (each also counted in the
/// total of the same name).
const PROVIDER_COUNTERS: [Counter; 4] = [
    Counter::JwksFetchSuccess,
    Counter::JwksFetchFailure,
    Counter::JwksKidRefetch,
    Counter::IntrospectionCalls,
];

struct ProviderMetrics {
    outcomes: Outcomes,
    counters: [u32; PROVIDER_COUNTERS.len()],
    keys_loaded: u32,
}

/// `tokengate.rule.<name>`.
pub fn rule_prefix(rule: &str) -> String {
    format!("{PREFIX}.rule.{rule}")
}

/// `tokengate.provider.<name>`.
pub fn provider_prefix(provider: &str) -> String {
    format!("{PREFIX}.provider.{provider}")
}

/// `tokengate.revocation.rejected.<reason>`.
pub fn logout_rejected_name(reason: LogoutError) -> String {
    format!("{PREFIX}.revocation.rejected.{}", reason.as_str())
}

/// One worker's metric handles, defined through the host at configuration.
pub struct Metrics {
    logout_rejected: [u32; LogoutError::ALL.len()],
    counters: [u32; Counter::ALL.len()],
    gauges: [u32; Gauge::ALL.len()],
    /// What this worker last set each gauge to: a value set again is not sent (each set is a
    /// host call, and a full cache's size stays the same on every miss).
    gauge_values: [Option<u64>; Gauge::ALL.len()],
    denied: [u32; DenyReason::ALL.len()],
    idp_errors: [u32; IdpFailure::ALL.len()],
    introspection_latency: u32,
    rules: Vec<Outcomes>,
    providers: Vec<ProviderMetrics>,
    /// Keys in use per provider, for the total gauge.
    keys: Vec<usize>,
}

impl Metrics {
    /// Defines every metric of `config` through the host.
    pub fn define(host: &mut impl Host, config: &Config) -> Result<Metrics, HostError> {
        let mut rules = Vec::with_capacity(config.policy.rules.len());
        for rule in &config.policy.rules {
            rules.push(Outcomes::define(host, &rule_prefix(rule.name.as_str()))?);
        }
        let mut providers = Vec::with_capacity(config.providers.len());
        for provider in &config.providers {
            let prefix = provider_prefix(provider.name.as_str());
            let outcomes = Outcomes::define(host, &prefix)?;
            let mut counters = [0; PROVIDER_COUNTERS.len()];
            for (slot, counter) in counters.iter_mut().zip(PROVIDER_COUNTERS) {
                let name = counter.name().replacen(PREFIX, &prefix, 1);
                *slot = host.define_metric(MetricKind::Counter, &name)?;
            }
            let keys_loaded = host.define_metric(
                MetricKind::Gauge,
                &Gauge::KeysLoaded.name().replacen(PREFIX, &prefix, 1),
            )?;
            providers.push(ProviderMetrics {
                outcomes,
                counters,
                keys_loaded,
            });
        }
        let mut counters = [0; Counter::ALL.len()];
        for (slot, counter) in counters.iter_mut().zip(Counter::ALL) {
            *slot = host.define_metric(MetricKind::Counter, counter.name())?;
        }
        let mut gauges = [0; Gauge::ALL.len()];
        for (slot, gauge) in gauges.iter_mut().zip(Gauge::ALL) {
            *slot = host.define_metric(MetricKind::Gauge, gauge.name())?;
        }
        let mut denied = [0; DenyReason::ALL.len()];
        for (slot, reason) in denied.iter_mut().zip(DenyReason::ALL) {
            *slot = host.define_metric(MetricKind::Counter, &denied_name(reason))?;
        }
        let mut idp_errors = [0; IdpFailure::ALL.len()];
        for (slot, failure) in idp_errors.iter_mut().zip(IdpFailure::ALL) {
            *slot = host.define_metric(MetricKind::Counter, &idp_error_name(failure))?;
        }
        let introspection_latency =
            host.define_metric(MetricKind::Histogram, INTROSPECTION_LATENCY_MS)?;
        let mut logout_rejected = [0; LogoutError::ALL.len()];
        for (slot, reason) in logout_rejected.iter_mut().zip(LogoutError::ALL) {
            *slot = host.define_metric(MetricKind::Counter, &logout_rejected_name(reason))?;
        }
        Ok(Metrics {
            logout_rejected,
            counters,
            gauges,
            gauge_values: [None; Gauge::ALL.len()],
            denied,
            idp_errors,
            introspection_latency,
            rules,
            keys: vec![0; providers.len()],
            providers,
        })
    }

    /// Counts a refused logout token under its reason.
    pub fn record_logout_rejected(&self, host: &mut impl Host, reason: LogoutError) {
        host.increment_metric(self.logout_rejected[reason.index()], 1);
    }

    /// Counts one of a provider's own counters, in its total too.
    pub fn increment_for(&self, host: &mut impl Host, counter: Counter, provider: usize) {
        self.increment(host, counter);
        let slot = PROVIDER_COUNTERS.iter().position(|c| *c == counter);
        if let (Some(slot), Some(metrics)) = (slot, self.providers.get(provider)) {
            host.increment_metric(metrics.counters[slot], 1);
        }
    }

    /// Counts an admitted request: in the total, its rule's and its provider's.
    pub fn record_allowed(
        &self,
        host: &mut impl Host,
        rule: Option<usize>,
        provider: Option<usize>,
    ) {
        self.increment(host, Counter::Allowed);
        for outcomes in self.scoped(rule, provider) {
            host.increment_metric(outcomes.allowed, 1);
        }
    }

    /// Counts a refused request under its reason: in the total, its rule's and its provider's.
    pub fn record_refused(
        &self,
        host: &mut impl Host,
        reason: DenyReason,
        rule: Option<usize>,
        provider: Option<usize>,
    ) {
        self.record_denied(host, reason);
        for outcomes in self.scoped(rule, provider) {
            host.increment_metric(outcomes.denied[reason.index()], 1);
        }
    }

    fn scoped(
        &self,
        rule: Option<usize>,
        provider: Option<usize>,
    ) -> impl Iterator<Item = &Outcomes> {
        let rule = rule.and_then(|rule| self.rules.get(rule));
        let provider = provider
            .and_then(|provider| self.providers.get(provider))
            .map(|p| &p.outcomes);
        rule.into_iter().chain(provider)
    }

    /// Counts one.
    pub fn increment(&self, host: &mut impl Host, counter: Counter) {
        host.increment_metric(self.counters[counter as usize], 1);
    }

    /// Sets a gauge, unless this worker last set it to `value` already.
    pub fn set(&mut self, host: &mut impl Host, gauge: Gauge, value: u64) {
        let last = &mut self.gauge_values[gauge as usize];
        if *last != Some(value) {
            *last = Some(value);
            host.record_metric(self.gauges[gauge as usize], value);
        }
    }

    /// Counts a refusal under its reason.
    pub fn record_denied(&self, host: &mut impl Host, reason: DenyReason) {
        host.increment_metric(self.denied[reason.index()], 1);
    }

    /// Counts an introspection failure under its kind.
    pub fn record_idp_error(&self, host: &mut impl Host, failure: IdpFailure) {
        host.increment_metric(self.idp_errors[failure.index()], 1);
    }

    /// Records how long an introspection call took.
    pub fn record_introspection_latency(&self, host: &mut impl Host, millis: u64) {
        host.record_metric(self.introspection_latency, millis);
    }

    /// Counts how each cache took part in a decision.
    pub fn record_cache(&self, host: &mut impl Host, lookups: &Lookups) {
        let (cache, introspection) = (lookups.cache, lookups.introspection);
        match cache {
            CacheUse::Hit => self.increment(host, Counter::CacheHit),
            CacheUse::Miss => self.increment(host, Counter::CacheMiss),
            CacheUse::NotUsed => {}
        }
        let counter = match introspection {
            IntrospectionCacheUse::HitActive => Counter::IntrospectionCacheHitPositive,
            IntrospectionCacheUse::HitRefused => Counter::IntrospectionCacheHitNegative,
            IntrospectionCacheUse::Miss => Counter::IntrospectionCacheMiss,
            IntrospectionCacheUse::NotUsed => return,
        };
        self.increment(host, counter);
    }

    /// The number of signing keys `provider` has in use (and the total over providers).
    pub fn record_keys(&mut self, host: &mut impl Host, provider: usize, count: usize) {
        let gauge = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        if let (Some(slot), Some(metrics)) =
            (self.keys.get_mut(provider), self.providers.get(provider))
        {
            *slot = count;
            host.record_metric(metrics.keys_loaded, gauge(count));
        }
        let total = self.keys.iter().sum();
        self.set(host, Gauge::KeysLoaded, gauge(total));
    }

    /// Gauges that describe the configuration.
    pub fn record_config(&mut self, host: &mut impl Host, config: &Config) {
        let exp_unchecked = config.providers.iter().any(|p| !p.verify_exp);
        self.set(host, Gauge::ExpCheckDisabled, u64::from(exp_unchecked));
    }
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

//! Metric handles of one VM. Envoy aggregates metrics of the same name across workers.

use super::abi::{self, MetricType, Status};

use crate::config::Config;
use crate::engine::{CacheUse, IntrospectionCacheUse};
use crate::metrics::{Counter, Gauge, INTROSPECTION_LATENCY_MS, denied_name, idp_error_name};
use crate::rejection::{DenyReason, IdpFailure};

pub struct Metrics {
    counters: [u32; Counter::ALL.len()],
    gauges: [u32; Gauge::ALL.len()],
    denied: [u32; DenyReason::ALL.len()],
    idp_errors: [u32; IdpFailure::ALL.len()],
    introspection_latency: u32,
}

impl Metrics {
    pub fn define() -> Result<Metrics, Status> {
        let mut counters = [0; Counter::ALL.len()];
        for (slot, counter) in counters.iter_mut().zip(Counter::ALL) {
            *slot = abi::define_metric(MetricType::Counter, counter.name())?;
        }
        let mut gauges = [0; Gauge::ALL.len()];
        for (slot, gauge) in gauges.iter_mut().zip(Gauge::ALL) {
            *slot = abi::define_metric(MetricType::Gauge, gauge.name())?;
        }
        let mut denied = [0; DenyReason::ALL.len()];
        for (slot, reason) in denied.iter_mut().zip(DenyReason::ALL) {
            *slot = abi::define_metric(MetricType::Counter, &denied_name(reason))?;
        }
        let mut idp_errors = [0; IdpFailure::ALL.len()];
        for (slot, failure) in idp_errors.iter_mut().zip(IdpFailure::ALL) {
            *slot = abi::define_metric(MetricType::Counter, &idp_error_name(failure))?;
        }
        let introspection_latency =
            abi::define_metric(MetricType::Histogram, INTROSPECTION_LATENCY_MS)?;
        Ok(Metrics {
            counters,
            gauges,
            denied,
            idp_errors,
            introspection_latency,
        })
    }

    pub fn increment(&self, counter: Counter) {
        let _ = abi::increment_metric(self.counters[counter as usize], 1);
    }

    pub fn set(&self, gauge: Gauge, value: u64) {
        let _ = abi::record_metric(self.gauges[gauge as usize], value);
    }

    pub fn record_denied(&self, reason: DenyReason) {
        let _ = abi::increment_metric(self.denied[reason.index()], 1);
    }

    pub fn record_idp_error(&self, failure: IdpFailure) {
        let _ = abi::increment_metric(self.idp_errors[failure.index()], 1);
    }

    pub fn record_introspection_latency(&self, millis: u64) {
        let _ = abi::record_metric(self.introspection_latency, millis);
    }

    pub fn record_cache(&self, cache: CacheUse, introspection: IntrospectionCacheUse) {
        match cache {
            CacheUse::Hit => self.increment(Counter::CacheHit),
            CacheUse::Miss => self.increment(Counter::CacheMiss),
            CacheUse::NotUsed => {}
        }
        match introspection {
            IntrospectionCacheUse::HitActive => {
                self.increment(Counter::IntrospectionCacheHitPositive)
            }
            IntrospectionCacheUse::HitRefused => {
                self.increment(Counter::IntrospectionCacheHitNegative)
            }
            IntrospectionCacheUse::Miss => self.increment(Counter::IntrospectionCacheMiss),
            IntrospectionCacheUse::NotUsed => {}
        }
    }

    pub fn record_keys(&self, count: usize) {
        self.set(Gauge::KeysLoaded, u64::try_from(count).unwrap_or(u64::MAX));
    }

    pub fn record_config(&self, config: &Config) {
        self.set(Gauge::ExpCheckDisabled, u64::from(!config.verify_exp));
    }
}

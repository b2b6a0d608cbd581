//! Metric handles of one VM. Envoy aggregates metrics of the same name across workers.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MetricType, Status};

use crate::config::Config;
use crate::engine::CacheUse;
use crate::metrics::{Counter, Gauge, denied_name};
use crate::rejection::DenyReason;

pub struct Metrics {
    counters: [u32; Counter::ALL.len()],
    gauges: [u32; Gauge::ALL.len()],
    denied: [u32; DenyReason::ALL.len()],
}

impl Metrics {
    pub fn define() -> Result<Metrics, Status> {
        let mut counters = [0; Counter::ALL.len()];
        for (slot, counter) in counters.iter_mut().zip(Counter::ALL) {
            *slot = hostcalls::define_metric(MetricType::Counter, counter.name())?;
        }
        let mut gauges = [0; Gauge::ALL.len()];
        for (slot, gauge) in gauges.iter_mut().zip(Gauge::ALL) {
            *slot = hostcalls::define_metric(MetricType::Gauge, gauge.name())?;
        }
        let mut denied = [0; DenyReason::ALL.len()];
        for (slot, reason) in denied.iter_mut().zip(DenyReason::ALL) {
            *slot = hostcalls::define_metric(MetricType::Counter, &denied_name(reason))?;
        }
        Ok(Metrics {
            counters,
            gauges,
            denied,
        })
    }

    pub fn increment(&self, counter: Counter) {
        let id = self.counters[counter as usize];
        let _ = hostcalls::increment_metric(id, 1);
    }

    pub fn set(&self, gauge: Gauge, value: u64) {
        let id = self.gauges[gauge as usize];
        let _ = hostcalls::record_metric(id, value);
    }

    pub fn record_allowed(&self) {
        self.increment(Counter::Allowed);
    }

    pub fn record_denied(&self, reason: DenyReason) {
        let _ = hostcalls::increment_metric(self.denied[reason.index()], 1);
    }

    pub fn record_cache(&self, cache: CacheUse) {
        match cache {
            CacheUse::Hit => self.increment(Counter::CacheHit),
            CacheUse::Miss => self.increment(Counter::CacheMiss),
            CacheUse::NotUsed => {}
        }
    }

    pub fn record_keys(&self, count: usize) {
        self.set(Gauge::KeysLoaded, u64::try_from(count).unwrap_or(u64::MAX));
    }

    pub fn record_config(&self, config: &Config) {
        self.set(Gauge::ExpCheckDisabled, u64::from(!config.verify_exp));
    }
}

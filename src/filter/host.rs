//! What the filter needs from a proxy-wasm host, as a trait: the only way the core reaches
//! the outside world. `src/host/` implements it on the proxy-wasm ABI; [`super::fake`] is a
//! native fake for unit tests.
//!
//! The request-side operations (`set_header`, `reply`, `resume`) act on the host's
//! *effective context*: the request the host is currently calling the filter for, or the one
//! it switched to before carrying out a step for a waiting request.

use crate::introspection::HttpCall;
use crate::rejection::DenyResponse;

/// Why the host refused an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// A compare-and-swap write lost against another writer: read again and retry.
    CasMismatch,
    /// Any other refusal, with the host's status code (for the log only).
    Status(u32),
}

/// A metric's kind, as proxy-wasm defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that only grows.
    Counter,
    /// A value set to the latest reading.
    Gauge,
    /// A distribution of recorded values.
    Histogram,
}

/// A value in the host's shared data (shared by every worker of the same VM id) and its
/// compare-and-swap token; `(None, None)` when the key is absent.
pub type SharedValue = (Option<Vec<u8>>, Option<u32>);

/// The host operations the filter uses (see the module documentation).
pub trait Host {
    /// A shared-data record and its CAS.
    fn shared_get(&self, key: &str) -> Result<SharedValue, HostError>;
    /// Writes `value`; with `cas`, only if the record is still the one that CAS belongs to.
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError>;
    /// Starts an HTTP call from the effective context; returns the call's token.
    fn dispatch(&mut self, call: &HttpCall) -> Result<u32, HostError>;
    /// Puts an item on a shared queue (a worker wakes its root context this way).
    fn enqueue(&mut self, queue: u32, item: &[u8]) -> Result<(), HostError>;

    /// Defines a metric; returns its handle.
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Result<u32, HostError>;
    /// Adds `delta` to a counter or gauge.
    fn increment_metric(&mut self, id: u32, delta: i64);
    /// Sets a gauge, or records a histogram sample.
    fn record_metric(&mut self, id: u32, value: u64);

    /// Sets a request header of the effective context (replacing every value of that name).
    fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Removes a request header of the effective context.
    fn remove_header(&mut self, name: &str) -> Result<(), HostError>;
    /// Publishes a value for the host's other filters and access log (Envoy: filter state
    /// `wasm.<name>`).
    fn set_property(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Asks the host to choose the effective context's route again (headers changed).
    fn clear_route_cache(&mut self) -> Result<(), HostError>;
    /// Answers the effective context's request with a local reply.
    fn reply(&mut self, response: &DenyResponse) -> Result<(), HostError>;
    /// Lets the effective context's paused request continue upstream.
    fn resume(&mut self) -> Result<(), HostError>;
}

//! An in-memory [`Host`] for native tests: shared data with real compare-and-swap semantics
//! (shared between fake hosts made with [`FakeHost::sharing`], as workers of one VM id share
//! it), recorded calls, queue items, metrics by name, and what was done to the request of
//! the effective context.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::introspection::HttpCall;
use crate::rejection::DenyResponse;

use super::host::{Host, HostError, MetricKind, SharedValue};

#[derive(Default)]
struct SharedStore {
    /// key → (value, cas); the CAS grows with every write.
    records: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
}

/// What a fake host saw happen to requests, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEffect {
    /// A header set to a value.
    Set(String, String),
    /// A header removed.
    Remove(String),
    /// A local reply with this status.
    Reply(u16),
    /// The request resumed.
    Resume,
    /// A property published.
    Property(String, String),
    /// The route asked for again.
    ClearRouteCache,
}

/// The fake host (see the module documentation).
#[derive(Default)]
pub struct FakeHost {
    shared: Rc<RefCell<SharedStore>>,
    /// Every dispatched call with its token, in order.
    pub calls: Vec<(u32, HttpCall)>,
    next_token: u32,
    /// Items put on shared queues: (queue, item).
    pub queued: Vec<(u32, Vec<u8>)>,
    metrics: Vec<(MetricKind, String, i64)>,
    /// What was done to requests, in order.
    pub effects: Vec<RequestEffect>,
    /// The local replies sent, in order.
    pub replies: Vec<DenyResponse>,
    /// When set, `dispatch` refuses every call.
    pub refuse_calls: bool,
    /// When set, `enqueue` refuses (a worker without a working wake-up queue).
    pub refuse_queue: bool,
    /// Every `Host` method called, by name, with how often: each is a call across the wasm
    /// boundary in a real host, so tests can pin what one decision costs in host calls.
    host_calls: RefCell<BTreeMap<&'static str, u64>>,
}

impl FakeHost {
    /// A host with empty shared data of its own.
    pub fn new() -> FakeHost {
        FakeHost {
            next_token: 1,
            ..FakeHost::default()
        }
    }

    /// Another host (another worker) seeing the same shared data.
    pub fn sharing(&self) -> FakeHost {
        FakeHost {
            shared: Rc::clone(&self.shared),
            next_token: 1000 * (Rc::strong_count(&self.shared) as u32 + 1),
            ..FakeHost::default()
        }
    }

    /// The current value of the metric of this name (summed over definitions, as Envoy
    /// aggregates a name across workers).
    pub fn metric(&self, name: &str) -> i64 {
        self.metrics
            .iter()
            .filter(|(_, n, _)| n == name)
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Takes the recorded calls.
    pub fn take_calls(&mut self) -> Vec<(u32, HttpCall)> {
        std::mem::take(&mut self.calls)
    }

    /// Takes the recorded request effects.
    pub fn take_effects(&mut self) -> Vec<RequestEffect> {
        std::mem::take(&mut self.effects)
    }

    /// Takes the count of `Host` calls by method name since the last take.
    pub fn take_host_calls(&mut self) -> BTreeMap<&'static str, u64> {
        std::mem::take(self.host_calls.get_mut())
    }

    fn count(&self, method: &'static str) {
        *self.host_calls.borrow_mut().entry(method).or_default() += 1;
    }

    /// The keys present in shared data, sorted.
    pub fn shared_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.shared.borrow().records.keys().cloned().collect();
        keys.sort();
        keys
    }
}

impl Host for FakeHost {
    fn shared_get(&self, key: &str) -> Result<SharedValue, HostError> {
        self.count("shared_get");
        Ok(match self.shared.borrow().records.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        self.count("shared_set");
        let mut store = self.shared.borrow_mut();
        let current = store.records.get(key).map(|(_, cas)| *cas);
        if let Some(expected) = cas
            && current.is_some_and(|current| current != expected)
        {
            return Err(HostError::CasMismatch);
        }
        store.next_cas += 1;
        let next = store.next_cas;
        store.records.insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }

    fn dispatch(&mut self, call: &HttpCall) -> Result<u32, HostError> {
        self.count("dispatch");
        if self.refuse_calls {
            return Err(HostError::Status(2));
        }
        let token = self.next_token;
        self.next_token += 1;
        self.calls.push((token, call.clone()));
        Ok(token)
    }

    fn enqueue(&mut self, queue: u32, item: &[u8]) -> Result<(), HostError> {
        self.count("enqueue");
        if self.refuse_queue {
            return Err(HostError::Status(1));
        }
        self.queued.push((queue, item.to_vec()));
        Ok(())
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        self.count("define_metric");
        self.metrics.push((kind, name.to_owned(), 0));
        Ok(u32::try_from(self.metrics.len() - 1).unwrap())
    }

    fn increment_metric(&mut self, id: u32, delta: i64) {
        self.count("increment_metric");
        if let Some(metric) = self.metrics.get_mut(id as usize) {
            metric.2 += delta;
        }
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        self.count("record_metric");
        if let Some(metric) = self.metrics.get_mut(id as usize) {
            match metric.0 {
                // A histogram records samples; the fake counts them.
                MetricKind::Histogram => metric.2 += 1,
                _ => metric.2 = i64::try_from(value).unwrap(),
            }
        }
    }

    fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.count("set_header");
        self.effects
            .push(RequestEffect::Set(name.to_owned(), value.to_owned()));
        Ok(())
    }

    fn remove_header(&mut self, name: &str) -> Result<(), HostError> {
        self.count("remove_header");
        self.effects.push(RequestEffect::Remove(name.to_owned()));
        Ok(())
    }

    fn set_property(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.count("set_property");
        self.effects
            .push(RequestEffect::Property(name.to_owned(), value.to_owned()));
        Ok(())
    }

    fn clear_route_cache(&mut self) -> Result<(), HostError> {
        self.count("clear_route_cache");
        self.effects.push(RequestEffect::ClearRouteCache);
        Ok(())
    }

    fn reply(&mut self, response: &DenyResponse) -> Result<(), HostError> {
        self.count("reply");
        self.effects.push(RequestEffect::Reply(response.status));
        self.replies.push(response.clone());
        Ok(())
    }

    fn resume(&mut self) -> Result<(), HostError> {
        self.count("resume");
        self.effects.push(RequestEffect::Resume);
        Ok(())
    }
}

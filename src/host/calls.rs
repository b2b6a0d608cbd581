//! Outgoing HTTP calls (JWKS fetches, introspections) and the requests waiting on them.
//!
//! Calls are dispatched by the root context, not by the request that needed them: Envoy
//! cancels a context's calls when the context goes away, and a call shared by several waiting
//! requests must not die with the first one's client. A request queues its call on the
//! worker and wakes the root through a shared queue registered by that root; when the answer
//! arrives, the root switches to each waiting request's context in turn and resumes or answers
//! it. Without a queue (registration failed), the request dispatches the call itself.

use std::collections::HashMap;
use std::rc::Rc;

use super::abi::{self, BufferType, MapType};

use crate::engine::IntrospectionOutcome;
use crate::introspection::CallAnswer;
use crate::metrics::Counter;

use super::{Now, Worker, keys, now};

/// Introspection answers larger than this are treated as unusable.
const MAX_INTROSPECTION_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    PeriodicJwks,
    KidRefetch,
    Introspection(Rc<str>),
}

struct InFlight {
    call: Call,
    started_ms: u64,
}

/// A paused request: its context and the headers it arrived with.
pub struct Waiter {
    pub context_id: u32,
    pub headers: Vec<(String, Vec<u8>)>,
}

#[derive(Default)]
pub struct Calls {
    pub root_context_id: u32,
    /// The root's wake-up queue, if it could be registered.
    pub wake_queue: Option<u32>,
    to_dispatch: Vec<Call>,
    in_flight: HashMap<u32, InFlight>,
    pub kid_waiters: Vec<Waiter>,
}

impl Calls {
    pub fn new(root_context_id: u32, wake_queue: Option<u32>) -> Calls {
        Calls {
            root_context_id,
            wake_queue,
            ..Calls::default()
        }
    }

    pub fn is_pending(&self, call: &Call) -> bool {
        self.to_dispatch.contains(call) || self.in_flight.values().any(|f| f.call == *call)
    }

    /// Whether the call with this token was dispatched by this worker.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight.contains_key(&token)
    }
}

/// The answer to a call; `status` is `None` when the call ended without a response.
pub struct CallResponse {
    pub status: Option<u16>,
    pub body: Option<Vec<u8>>,
}

impl CallResponse {
    pub fn answer(&self) -> CallAnswer<'_> {
        CallAnswer {
            status: self.status,
            body: self.body.as_deref().unwrap_or_default(),
        }
    }

    fn failed() -> CallResponse {
        CallResponse {
            status: None,
            body: None,
        }
    }
}

fn read_call_response(body_size: usize, limit: usize) -> CallResponse {
    let status = abi::get_map_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|value| std::str::from_utf8(&value).ok()?.parse().ok());
    let body = if body_size == 0 || body_size > limit {
        None
    } else {
        abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
    };
    CallResponse { status, body }
}

/// Queues `call` for the root context to dispatch. Returns false if nothing will dispatch it
/// (the caller must then dispatch or fail it itself).
pub fn schedule(worker: &mut Worker, call: Call) -> bool {
    let Some(queue) = worker.calls.wake_queue else {
        return false;
    };
    worker.calls.to_dispatch.push(call);
    if abi::enqueue_shared_queue(queue, b"w").is_err() {
        // Without a wake-up the call would sit forever: take it back.
        worker.calls.to_dispatch.pop();
        return false;
    }
    true
}

/// Dispatches every queued call from the current (root) context.
pub fn dispatch_queued(worker: &mut Worker) -> Vec<(Call, CallResponse)> {
    let queued = std::mem::take(&mut worker.calls.to_dispatch);
    queued
        .into_iter()
        .filter_map(|call| dispatch(worker, call).err())
        .map(|call| (call, CallResponse::failed()))
        .collect()
}

/// Dispatches `call` from the current context; gives the call back if it could not start.
pub fn dispatch(worker: &mut Worker, call: Call) -> Result<(), Call> {
    let spec = match &call {
        Call::PeriodicJwks | Call::KidRefetch => worker.remote.as_ref().map(keys::fetch_call),
        Call::Introspection(token) => worker.engine.introspection_call(token),
    };
    let Some(spec) = spec else {
        return Err(call);
    };
    let headers: Vec<(&str, &str)> = spec
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let timeout_ms = u32::try_from(spec.timeout_ms).unwrap_or(u32::MAX);
    match abi::dispatch_http_call(&spec.cluster, &headers, &spec.body, timeout_ms) {
        Ok(token) => {
            if matches!(call, Call::Introspection(_)) {
                worker.metrics.increment(Counter::IntrospectionCalls);
            }
            worker.calls.in_flight.insert(
                token,
                InFlight {
                    call,
                    started_ms: now().millis,
                },
            );
            Ok(())
        }
        Err(status) => {
            log::warn!(
                "tokengate: cannot call cluster {}: {status:?}",
                spec.cluster
            );
            Err(call)
        }
    }
}

/// Takes the call a response belongs to and reads the response.
pub fn take_response(
    worker: &mut Worker,
    token: u32,
    body_size: usize,
) -> Option<(Call, CallResponse)> {
    let in_flight = worker.calls.in_flight.remove(&token)?;
    let limit = match in_flight.call {
        Call::PeriodicJwks | Call::KidRefetch => crate::jwks::MAX_JWKS_BYTES,
        Call::Introspection(_) => {
            let elapsed = now().millis.saturating_sub(in_flight.started_ms);
            worker.metrics.record_introspection_latency(elapsed);
            MAX_INTROSPECTION_BYTES
        }
    };
    Some((in_flight.call, read_call_response(body_size, limit)))
}

/// What a finished call means for the requests waiting on it.
pub enum Completed {
    /// Nothing waits (periodic refresh).
    Nothing,
    /// New keys may be in place: decide again.
    KeysRefreshed(Vec<Waiter>),
    /// The IdP's verdict for everyone waiting on this token.
    Introspected(Vec<Waiter>, IntrospectionOutcome),
}

/// Applies a finished call to the worker and hands back who was waiting for it.
pub fn complete(worker: &mut Worker, call: Call, response: &CallResponse, now: Now) -> Completed {
    match call {
        Call::PeriodicJwks => {
            keys::finish_fetch(worker, response, now);
            Completed::Nothing
        }
        Call::KidRefetch => {
            keys::finish_fetch(worker, response, now);
            Completed::KeysRefreshed(std::mem::take(&mut worker.calls.kid_waiters))
        }
        Call::Introspection(token) => {
            let outcome =
                worker
                    .engine
                    .record_introspection(&token, response.answer(), now.seconds);
            if let IntrospectionOutcome::Failed(failure) = &outcome {
                worker.metrics.record_idp_error(*failure);
                log::warn!("tokengate: introspection failed ({})", failure.as_str());
            }
            Completed::Introspected(worker.introspection_waiters.take(&token), outcome)
        }
    }
}

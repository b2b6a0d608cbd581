//! proxy-wasm glue: reads requests from the host, runs the [`Engine`], carries out its
//! decisions, makes the calls it needs (JWKS, introspection), and exports metrics.
//!
//! Every host call goes through `hostcalls` and its `Result` is handled: a panic here would
//! take down every request on this worker's VM. Nothing holds the worker borrowed across a
//! host call that can re-enter the filter (local replies, resuming a request).

mod calls;
mod keys;
mod metrics;

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::coalesce::{Coalescer, Join};
use crate::config;
use crate::engine::{Admission, Decision, Engine, Evaluation, IntrospectionOutcome};
use crate::metrics::Counter;
use crate::rejection::{DenyResponse, IdpFailure, Rejection, ResponseContext, deny_response};

use calls::{Call, Calls, Completed, Waiter};
use keys::RemoteKeys;
use metrics::Metrics;

/// How often each worker looks at the shared key set and the refresh schedule.
const TICK: Duration = Duration::from_millis(250);

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root { context_id, worker: None })
    });
}}

/// Per-VM (per worker thread) state, shared by the root context and the request contexts.
struct Worker {
    engine: Engine,
    metrics: Metrics,
    remote: Option<RemoteKeys>,
    required_scope: String,
    calls: Calls,
    introspection_waiters: Coalescer<Waiter>,
}

type SharedWorker = Rc<RefCell<Worker>>;

#[derive(Clone, Copy)]
struct Now {
    seconds: i64,
    millis: u64,
}

fn now() -> Now {
    let millis = hostcalls::get_current_time()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Now {
        seconds: i64::try_from(millis / 1000).unwrap_or(i64::MAX),
        millis,
    }
}

struct Root {
    context_id: u32,
    worker: Option<SharedWorker>,
}

impl Root {
    fn configure(&self) -> Result<Worker, String> {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .map_err(|status| format!("cannot read the plugin configuration: {status:?}"))?
            .unwrap_or_default();
        let config = config::parse(&bytes).map_err(|err| err.to_string())?;
        for warning in config.warnings() {
            log::warn!("tokengate: {warning}");
        }
        let metrics =
            Metrics::define().map_err(|status| format!("cannot define metrics: {status:?}"))?;
        metrics.record_config(&config);
        let remote = match &config.jwks {
            Some(config::JwksSource::Remote(remote)) => Some(RemoteKeys::new(remote)),
            _ => None,
        };
        let max_in_flight = config
            .introspection
            .as_ref()
            .map_or(0, |introspection| introspection.max_in_flight);
        let required_scope = config.required_scope_string();
        let engine = Engine::new(config);
        metrics.record_keys(engine.key_count());
        // One queue per VM; a random name keeps workers from taking each other's queue.
        let queue_name = format!(
            "tokengate.wake.{:016x}",
            RandomState::new().build_hasher().finish()
        );
        let wake_queue = match hostcalls::register_shared_queue(&queue_name) {
            Ok(queue) => Some(queue),
            Err(status) => {
                log::warn!(
                    "tokengate: no wake-up queue ({status:?}); requests will dispatch their own calls"
                );
                None
            }
        };
        Ok(Worker {
            engine,
            metrics,
            remote,
            required_scope,
            calls: Calls::new(self.context_id, wake_queue),
            introspection_waiters: Coalescer::new(max_in_flight),
        })
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _: usize) {
        if let Some(worker) = self.worker.clone() {
            on_call_response(&worker, token, body_size);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        let mut worker = match self.configure() {
            Ok(worker) => worker,
            Err(problem) => {
                log::error!("tokengate: {problem}");
                return false;
            }
        };
        if worker.remote.is_some() {
            keys::sync_from_shared(&mut worker);
            if hostcalls::set_tick_period(TICK).is_err() {
                log::error!("tokengate: cannot start the JWKS refresh timer");
                return false;
            }
        }
        self.worker = Some(Rc::new(RefCell::new(worker)));
        true
    }

    fn on_tick(&mut self) {
        let Some(worker) = &self.worker else {
            return;
        };
        let failed = {
            let mut worker = worker.borrow_mut();
            keys::sync_from_shared(&mut worker);
            if worker.calls.is_pending(&Call::PeriodicJwks)
                || !keys::claim_periodic_fetch(&worker, now())
            {
                return;
            }
            calls::dispatch(&mut worker, Call::PeriodicJwks).is_err()
        };
        if failed {
            keys::record_failure(&mut worker.borrow_mut(), now());
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(_)) = hostcalls::dequeue_shared_queue(queue_id) {}
        let Some(worker) = self.worker.clone() else {
            return;
        };
        let failed = calls::dispatch_queued(&mut worker.borrow_mut());
        for (call, response) in failed {
            finish_call(&worker, call, &response);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            context_id,
            worker: self.worker.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    context_id: u32,
    worker: Option<SharedWorker>,
}

impl Context for Request {
    // Only reached when there is no wake-up queue and this request dispatched a call itself.
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _: usize) {
        if let Some(worker) = self.worker.clone() {
            on_call_response(&worker, token, body_size);
        }
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _count: usize, _end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            send(&unconfigured_response());
            return Action::Pause;
        };
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(headers) => headers,
            Err(status) => {
                log::warn!("tokengate: cannot read request headers: {status:?}");
                send(&unconfigured_response());
                return Action::Pause;
            }
        };
        let waiter = Waiter {
            context_id: self.context_id,
            headers,
        };
        match decide(&worker, waiter, None, true) {
            Step::Forward => Action::Continue,
            Step::Reply(response) => {
                send(&response);
                Action::Pause
            }
            Step::Wait => Action::Pause,
        }
    }
}

/// Where a request stands after a decision.
enum Step {
    Forward,
    Reply(DenyResponse),
    /// Paused until a call it waits on returns.
    Wait,
}

/// Decides on a request in the current effective context: applies an admission's header
/// changes, builds a refusal, or parks the request on the call it needs.
fn decide(
    worker: &SharedWorker,
    waiter: Waiter,
    outcome: Option<&IntrospectionOutcome>,
    may_refetch_keys: bool,
) -> Step {
    let now = now();
    let mut guard = worker.borrow_mut();
    let worker = &mut *guard;
    let evaluate = |worker: &mut Worker, waiter: &Waiter| match outcome {
        None => worker.engine.authenticate(&waiter.headers, now.seconds),
        Some(outcome) => worker.engine.resume(&waiter.headers, outcome, now.seconds),
    };
    let mut evaluation: Evaluation = evaluate(worker, &waiter);
    let key_problem = matches!(
        evaluation.decision,
        Decision::Deny(Rejection::UnknownKey | Rejection::KeysUnavailable)
    );
    if key_problem && worker.remote.is_some() {
        // Another worker may already have fetched newer keys into shared data.
        if keys::sync_from_shared(worker) {
            evaluation = evaluate(worker, &waiter);
        }
        if may_refetch_keys && evaluation.decision == Decision::Deny(Rejection::UnknownKey) {
            let already = worker.calls.is_pending(&Call::KidRefetch);
            if already || keys::claim_kid_refetch(worker, now) {
                if !already && !start_call(worker, Call::KidRefetch) {
                    // Nothing will answer: decide without new keys.
                    keys::record_failure(worker, now);
                    return settle(worker, evaluation);
                }
                worker.calls.kid_waiters.push(waiter);
                return Step::Wait;
            }
        }
    }
    if let Decision::Introspect(token) = &evaluation.decision {
        // The resumed evaluation finds the verdict in hand, not in a cache: count lookups here.
        worker
            .metrics
            .record_cache(evaluation.cache, evaluation.introspection_cache);
        let token = Rc::clone(token);
        return match worker.introspection_waiters.join(&token, waiter) {
            Join::First => {
                if start_call(worker, Call::Introspection(Rc::clone(&token))) {
                    Step::Wait
                } else {
                    // The call could not start: this request was its only waiter.
                    worker.introspection_waiters.take(&token);
                    worker.metrics.record_idp_error(IdpFailure::Unreachable);
                    let failed = Rejection::IdpUnavailable(IdpFailure::Unreachable);
                    Step::Reply(refusal(worker, &failed))
                }
            }
            Join::Joined => {
                worker.metrics.increment(Counter::IntrospectionCoalesced);
                Step::Wait
            }
            Join::Full => {
                let overloaded = Rejection::IdpUnavailable(IdpFailure::Overloaded);
                worker.metrics.record_idp_error(IdpFailure::Overloaded);
                Step::Reply(refusal(worker, &overloaded))
            }
        };
    }
    if outcome.is_some() {
        // The first pass of this request already counted its local cache lookup.
        evaluation.cache = crate::engine::CacheUse::NotUsed;
    }
    settle(worker, evaluation)
}

/// Turns a final evaluation into a step, recording its metrics.
fn settle(worker: &mut Worker, evaluation: Evaluation) -> Step {
    worker
        .metrics
        .record_cache(evaluation.cache, evaluation.introspection_cache);
    match evaluation.decision {
        Decision::Allow(admission) => {
            apply_updates(worker, &admission);
            worker.metrics.increment(Counter::Allowed);
            if admission.is_degraded() {
                worker.metrics.increment(Counter::AllowedDegraded);
            }
            Step::Forward
        }
        Decision::Deny(rejection) => Step::Reply(refusal(worker, &rejection)),
        // Introspection is handled by the caller before settling.
        Decision::Introspect(_) => Step::Wait,
    }
}

/// Starts a call: queued for the root context, or dispatched right here without a queue.
fn start_call(worker: &mut Worker, call: Call) -> bool {
    if calls::schedule(worker, call.clone()) {
        return true;
    }
    calls::dispatch(worker, call).is_ok()
}

fn on_call_response(worker: &SharedWorker, token: u32, body_size: usize) {
    let taken = calls::take_response(&mut worker.borrow_mut(), token, body_size);
    if let Some((call, response)) = taken {
        finish_call(worker, call, &response);
    }
}

/// Applies a finished call and settles every request that waited on it, each in its own
/// context. Requests whose client went away are skipped (their context no longer exists).
fn finish_call(worker: &SharedWorker, call: Call, response: &calls::CallResponse) {
    let completed = calls::complete(&mut worker.borrow_mut(), call, response, now());
    let (waiters, outcome) = match completed {
        Completed::Nothing => return,
        Completed::KeysRefreshed(waiters) => (waiters, None),
        Completed::Introspected(waiters, outcome) => (waiters, Some(outcome)),
    };
    let root_context_id = worker.borrow().calls.root_context_id;
    for waiter in waiters {
        if hostcalls::set_effective_context(waiter.context_id).is_err() {
            continue;
        }
        match decide(worker, waiter, outcome.as_ref(), false) {
            Step::Forward => {
                if let Err(status) = hostcalls::resume_http_request() {
                    log::warn!("tokengate: cannot resume a request: {status:?}");
                }
            }
            Step::Reply(response) => send(&response),
            Step::Wait => {}
        }
    }
    let _ = hostcalls::set_effective_context(root_context_id);
}

/// Sets the forwarded claim headers and removes the token, as the admission says.
fn apply_updates(worker: &Worker, admission: &Admission) {
    admission.for_each_update(worker.engine.config(), |name, value| {
        let result = match value {
            Some(value) => hostcalls::set_map_value_bytes(
                MapType::HttpRequestHeaders,
                name,
                Some(value.as_bytes()),
            ),
            None => hostcalls::remove_map_value(MapType::HttpRequestHeaders, name),
        };
        if let Err(status) = result {
            log::warn!("tokengate: cannot update header {name}: {status:?}");
        }
    });
}

fn refusal(worker: &Worker, rejection: &Rejection) -> DenyResponse {
    worker.metrics.record_denied(rejection.reason());
    log::debug!("tokengate: denied: {rejection}");
    let config = worker.engine.config();
    deny_response(
        rejection,
        &ResponseContext {
            realm: &config.realm,
            required_scope: &worker.required_scope,
            retry_after_seconds: config.retry_after_seconds,
        },
    )
}

/// The answer when this worker has no configuration: nothing can be judged.
fn unconfigured_response() -> DenyResponse {
    deny_response(
        &Rejection::KeysUnavailable,
        &ResponseContext {
            realm: config::DEFAULT_REALM,
            required_scope: "",
            retry_after_seconds: config::DEFAULT_RETRY_AFTER_SECONDS,
        },
    )
}

fn send(response: &DenyResponse) {
    let headers: Vec<(&str, &str)> = response
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    if let Err(status) = hostcalls::send_http_response(
        u32::from(response.status),
        headers,
        Some(response.body.as_bytes()),
    ) {
        log::warn!("tokengate: cannot send the local reply: {status:?}");
    }
}

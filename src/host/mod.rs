//! proxy-wasm glue: reads requests from the host, runs the [`Engine`], carries out its
//! decisions, makes the calls it needs (JWKS, introspection), and exports metrics.
//!
//! The module implements the proxy-wasm ABI itself ([`abi`] for the host functions, the
//! `proxy_on_*` exports below) and exports only the callbacks it uses: per request, Envoy calls
//! `proxy_on_context_create` and `proxy_on_request_headers`, nothing else (see [`abi`] for why).
//! Without `proxy_on_delete` the module keeps no per-request state: a request that waits for
//! a call is held by the worker as a [`Waiter`], and one whose client went away is skipped
//! when it is resumed (its context no longer exists).
//!
//! Every host call's `Result` is handled: a panic here would take down every request on this
//! worker's VM. Nothing holds the worker (or the VM's registry) borrowed across a host call that
//! can re-enter the module (local replies, resuming a request).

mod abi;
mod calls;
mod keys;
mod metrics;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use abi::{Action, BufferType, LogLevel, MapType};

use crate::coalesce::{Coalescer, Join};
use crate::config;
use crate::engine::{Admission, Decision, Engine, Evaluation, IntrospectionOutcome};
use crate::metrics::Counter;
use crate::rejection::{DenyResponse, IdpFailure, Rejection, ResponseContext, deny_response};
use crate::token_source::{self, NeededHeaders};

use calls::{Call, Calls, Completed, Waiter};
use keys::RemoteKeys;
use metrics::Metrics;

/// How often each worker looks at the shared key set and the refresh schedule.
const TICK_MS: u32 = 250;

/// Per-VM (per worker thread) state of one plugin configuration, shared by its root context
/// and its requests.
struct Worker {
    engine: Engine,
    metrics: Metrics,
    remote: Option<RemoteKeys>,
    required_scope: String,
    /// The request header(s) the token source reads.
    token_header: TokenHeader,
    calls: Calls,
    introspection_waiters: Coalescer<Waiter>,
}

/// What to read from a request: one value, or every entry of a header.
enum TokenHeader {
    One(String),
    All(String),
}

type SharedWorker = Rc<RefCell<Worker>>;

#[derive(Clone, Copy)]
struct Now {
    seconds: i64,
    millis: u64,
}

fn now() -> Now {
    let nanos = abi::current_time_nanos().unwrap_or(0);
    Now {
        seconds: i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX),
        millis: nanos / 1_000_000,
    }
}

/// One root context: a plugin configuration on this VM.
struct Root {
    context_id: u32,
    /// `None` until configured (or when the configuration was refused).
    worker: Option<SharedWorker>,
}

/// The module's state on this VM: its root contexts, and which root each new request context
/// belongs to. Several plugin configurations may share a VM (same `vm_id`); usually there is one.
#[derive(Default)]
struct Vm {
    roots: Vec<Root>,
    /// (request context, root context) from `proxy_on_context_create`, taken by
    /// `proxy_on_request_headers`; only kept while several roots exist.
    new_requests: VecDeque<(u32, u32)>,
}

/// Request contexts remembered at most (Envoy creates a request's context right before its
/// headers callback, so the queue holds one entry at a time in practice).
const MAX_NEW_REQUESTS: usize = 1024;

thread_local! {
    static VM: RefCell<Vm> = RefCell::new(Vm::default());
}

impl Vm {
    fn root(&self, context_id: u32) -> Option<&Root> {
        self.roots.iter().find(|root| root.context_id == context_id)
    }

    /// The worker of the root a request context belongs to; `Err(())` if no root is known.
    fn worker_for_request(&mut self, context_id: u32) -> Result<Option<SharedWorker>, ()> {
        let root_id = match self.roots.as_slice() {
            [only] => Some(only.context_id),
            _ => {
                let at = self
                    .new_requests
                    .iter()
                    .position(|(ctx, _)| *ctx == context_id);
                at.and_then(|at| self.new_requests.remove(at))
                    .map(|(_, root)| root)
            }
        };
        let root = root_id.and_then(|id| self.root(id)).ok_or(())?;
        Ok(root.worker.clone())
    }

    /// The worker a call response belongs to: the root's own, or (for a call a request
    /// dispatched itself) the one that holds the call's token.
    fn worker_for_call(&self, context_id: u32, token: u32) -> Option<SharedWorker> {
        if let Some(root) = self.root(context_id) {
            return root.worker.clone();
        }
        self.roots
            .iter()
            .filter_map(|root| root.worker.as_ref())
            .find(|worker| worker.try_borrow().is_ok_and(|w| w.calls.owns(token)))
            .cloned()
    }
}

fn vm<T>(f: impl FnOnce(&mut Vm) -> T) -> Option<T> {
    VM.with(|vm| vm.try_borrow_mut().ok().map(|mut vm| f(&mut vm)))
}

fn worker_of_root(root_id: u32) -> Option<SharedWorker> {
    vm(|vm| vm.root(root_id).and_then(|root| root.worker.clone())).flatten()
}

// ---------------------------------------------------------------------------------------------
// Exports: the callbacks of the proxy-wasm ABI 0.2.1 this module implements.

unsafe extern "C" {
    /// Static constructors, synthesized by the linker.
    fn __wasm_call_ctors();
}

/// WASI reactor entry point: run the constructors.
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    // SAFETY: called once by the host before any other export, as WASI reactors require.
    unsafe { __wasm_call_ctors() };
    abi::set_log_level(LogLevel::Info);
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    if root_context_id == 0 {
        vm(|vm| {
            // Roots whose plugin configuration was removed are gone from the host: drop their
            // state (there is no per-context delete callback).
            vm.roots
                .retain(|root| abi::set_effective_context(root.context_id).is_ok());
            let _ = abi::set_effective_context(context_id);
            vm.roots.push(Root {
                context_id,
                worker: None,
            });
        });
        return;
    }
    vm(|vm| {
        if vm.roots.len() > 1 {
            if vm.new_requests.len() >= MAX_NEW_REQUESTS {
                vm.new_requests.pop_front();
            }
            vm.new_requests.push_back((context_id, root_context_id));
        }
    });
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_configure(root_context_id: u32, _configuration_size: usize) -> u32 {
    if let Ok(level) = abi::get_log_level() {
        abi::set_log_level(level);
    }
    let mut worker = match configure(root_context_id) {
        Ok(worker) => worker,
        Err(problem) => {
            log::error!("tokengate: {problem}");
            return 0;
        }
    };
    if worker.remote.is_some() {
        keys::sync_from_shared(&mut worker);
        if abi::set_tick_period_ms(TICK_MS).is_err() {
            log::error!("tokengate: cannot start the JWKS refresh timer");
            return 0;
        }
    }
    let worker = Rc::new(RefCell::new(worker));
    let stored = vm(|vm| {
        match vm
            .roots
            .iter_mut()
            .find(|r| r.context_id == root_context_id)
        {
            Some(root) => root.worker = Some(worker),
            None => vm.roots.push(Root {
                context_id: root_context_id,
                worker: Some(worker),
            }),
        }
    });
    u32::from(stored.is_some())
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_tick(root_context_id: u32) {
    let Some(worker) = worker_of_root(root_context_id) else {
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

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_queue_ready(root_context_id: u32, queue_id: u32) {
    while let Ok(Some(_)) = abi::dequeue_shared_queue(queue_id) {}
    let Some(worker) = worker_of_root(root_context_id) else {
        return;
    };
    let failed = calls::dispatch_queued(&mut worker.borrow_mut());
    for (call, response) in failed {
        finish_call(&worker, call, &response);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_http_call_response(
    context_id: u32,
    token: u32,
    _headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    if let Some(worker) = vm(|vm| vm.worker_for_call(context_id, token)).flatten() {
        on_call_response(&worker, token, body_size);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _headers: usize,
    _end_of_stream: u32,
) -> u32 {
    let worker = match vm(|vm| vm.worker_for_request(context_id)) {
        Some(Ok(Some(worker))) => worker,
        _ => {
            send(&unconfigured_response());
            return Action::Pause as u32;
        }
    };
    let headers = match read_token_headers(&worker) {
        Ok(headers) => headers,
        Err(status) => {
            log::warn!("tokengate: cannot read request headers: {status:?}");
            send(&unconfigured_response());
            return Action::Pause as u32;
        }
    };
    let waiter = Waiter {
        context_id,
        headers,
    };
    let action = match decide(&worker, waiter, None, true) {
        Step::Forward => Action::Continue,
        Step::Reply(response) => {
            send(&response);
            Action::Pause
        }
        Step::Wait => Action::Pause,
    };
    action as u32
}

// ---------------------------------------------------------------------------------------------

fn configure(root_context_id: u32) -> Result<Worker, String> {
    let bytes = abi::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
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
    let token_header = match token_source::needed_headers(&config.token_source) {
        NeededHeaders::One(name) => TokenHeader::One(name.to_owned()),
        NeededHeaders::All(name) => TokenHeader::All(name.to_owned()),
    };
    let engine = Engine::new(config);
    metrics.record_keys(engine.key_count());
    // One queue per VM; a random name keeps workers from taking each other's queue.
    let queue_name = format!(
        "tokengate.wake.{:016x}",
        RandomState::new().build_hasher().finish()
    );
    let wake_queue = match abi::register_shared_queue(&queue_name) {
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
        token_header,
        calls: Calls::new(root_context_id, wake_queue),
        introspection_waiters: Coalescer::new(max_in_flight),
    })
}

/// The request header(s) the token source needs, as the engine takes them.
fn read_token_headers(worker: &SharedWorker) -> Result<Vec<(String, Vec<u8>)>, abi::Status> {
    let worker = worker
        .try_borrow()
        .map_err(|_| abi::Status::InternalFailure)?;
    match &worker.token_header {
        TokenHeader::One(name) => Ok(abi::get_map_value(MapType::HttpRequestHeaders, name)?
            .map(|value| vec![(name.clone(), value)])
            .unwrap_or_default()),
        TokenHeader::All(name) => {
            let mut pairs = abi::get_map_pairs(MapType::HttpRequestHeaders)?;
            pairs.retain(|(header, _)| header == name);
            Ok(pairs)
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
        if abi::set_effective_context(waiter.context_id).is_err() {
            continue;
        }
        match decide(worker, waiter, outcome.as_ref(), false) {
            Step::Forward => {
                if let Err(status) = abi::resume_http_request() {
                    log::warn!("tokengate: cannot resume a request: {status:?}");
                }
            }
            Step::Reply(response) => send(&response),
            Step::Wait => {}
        }
    }
    let _ = abi::set_effective_context(root_context_id);
}

/// Sets the forwarded claim headers and removes the token, as the admission says.
fn apply_updates(worker: &Worker, admission: &Admission) {
    admission.for_each_update(worker.engine.config(), |name, value| {
        let result = match value {
            Some(value) => abi::set_map_value(MapType::HttpRequestHeaders, name, value.as_bytes()),
            None => abi::remove_map_value(MapType::HttpRequestHeaders, name),
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
    if let Err(status) =
        abi::send_http_response(response.status, &headers, response.body.as_bytes())
    {
        log::warn!("tokengate: cannot send the local reply: {status:?}");
    }
}

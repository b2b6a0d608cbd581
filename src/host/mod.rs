//! The proxy-wasm binding: the `proxy_on_*` exports, the registry of this VM's plugin
//! configurations, and [`ProxyWasm`], the [`Host`] implementation on the ABI ([`abi`]).
//! Everything that decides lives in [`crate::filter`]; this module reads what the host hands
//! over, passes it in, and carries out the steps that come back.
//!
//! The module exports only the callbacks it uses: per request, a host calls
//! `proxy_on_context_create` and `proxy_on_request_headers`, nothing else (see [`abi`] for
//! why). Without `proxy_on_delete` the module keeps no per-request state: a request that waits
//! for a call is held by its worker as a waiter, and one whose client went away is skipped
//! when it is resumed (its context no longer exists).
//!
//! Every host call's `Result` is handled: a panic here would take down every request on this
//! worker's VM. Nothing holds a worker (or the VM's registry) borrowed across a host call that
//! can re-enter the module (local replies, resuming a request).

mod abi;
mod map_encoding;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;

use abi::{Action, BufferType, LogLevel, MapType, MetricType, Status};

use crate::engine::{HeaderRead, Request, RequestNeeds};
use crate::filter::host::{Host, HostError, MetricKind, SharedValue};
use crate::filter::{
    BodyStep, CallResponse, Now, Resumption, Step, TICK_MS, Waiter, Worker, unconfigured_response,
};
use crate::introspection::HttpCall;
use crate::rejection::DenyResponse;

/// The proxy-wasm host, reached through the ABI. Stateless: the effective context is the
/// host's.
struct ProxyWasm;

fn host_error(status: Status) -> HostError {
    match status {
        Status::CasMismatch => HostError::CasMismatch,
        other => HostError::Status(other.code()),
    }
}

impl Host for ProxyWasm {
    fn shared_get(&self, key: &str) -> Result<SharedValue, HostError> {
        abi::get_shared_data(key).map_err(host_error)
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        abi::set_shared_data(key, value, cas).map_err(host_error)
    }

    fn dispatch(&mut self, call: &HttpCall) -> Result<u32, HostError> {
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let timeout_ms = u32::try_from(call.timeout_ms).unwrap_or(u32::MAX);
        abi::dispatch_http_call(&call.cluster, &headers, &call.body, timeout_ms).map_err(host_error)
    }

    fn enqueue(&mut self, queue: u32, item: &[u8]) -> Result<(), HostError> {
        abi::enqueue_shared_queue(queue, item).map_err(host_error)
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        abi::define_metric(kind, name).map_err(host_error)
    }

    fn increment_metric(&mut self, id: u32, delta: i64) {
        let _ = abi::increment_metric(id, delta);
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        let _ = abi::record_metric(id, value);
    }

    fn set_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        abi::set_map_value(MapType::HttpRequestHeaders, name, value.as_bytes()).map_err(host_error)
    }

    fn remove_header(&mut self, name: &str) -> Result<(), HostError> {
        abi::remove_map_value(MapType::HttpRequestHeaders, name).map_err(host_error)
    }

    fn set_property(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        abi::set_property(name, value.as_bytes()).map_err(host_error)
    }

    fn clear_route_cache(&mut self) -> Result<(), HostError> {
        abi::call_foreign_function("clear_route_cache", &[])
            .map(|_| ())
            .map_err(host_error)
    }

    fn reply(&mut self, response: &DenyResponse) -> Result<(), HostError> {
        let headers: Vec<(&str, &str)> = response
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        abi::send_http_response(response.status, &headers, response.body.as_bytes())
            .map_err(host_error)
    }

    fn resume(&mut self) -> Result<(), HostError> {
        abi::resume_http_request().map_err(host_error)
    }
}

type SharedWorker = Rc<RefCell<Worker>>;

fn now() -> Now {
    Now::from_nanos(abi::current_time_nanos().unwrap_or(0))
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

/// Root contexts (plugin configurations) past which the registry is pruned of dead ones.
const MAX_ROOTS: usize = 64;

/// Request contexts remembered at most (a host creates a request's context right before its
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
            .find(|worker| worker.try_borrow().is_ok_and(|w| w.owns_call(token)))
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
            // Roots whose plugin configuration was removed are gone from the host, but without
            // a delete callback the module is not told. Probing them with
            // set_effective_context is no test: some hosts (wasmtime's proxy-wasm-host) refuse
            // a context outside the running callback's root although it lives. So only a
            // registry grown past its bound is pruned, of the roots the host refuses.
            if vm.roots.len() >= MAX_ROOTS {
                vm.roots
                    .retain(|root| abi::set_effective_context(root.context_id).is_ok());
                let _ = abi::set_effective_context(context_id);
            }
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
    let worker = match configure() {
        Ok(worker) => worker,
        Err(problem) => {
            log::error!("tokengate: {problem}");
            return 0;
        }
    };
    if worker.wants_ticks() && abi::set_tick_period_ms(TICK_MS).is_err() {
        log::error!("tokengate: cannot start the JWKS refresh timer");
        return 0;
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

fn configure() -> Result<Worker, String> {
    let bytes = abi::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .map_err(|status| format!("cannot read the plugin configuration: {status:?}"))?
        .unwrap_or_default();
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
    Worker::configure(&mut ProxyWasm, &bytes, wake_queue)
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_tick(root_context_id: u32) {
    if let Some(worker) = worker_of_root(root_context_id) {
        let resumptions = worker.borrow_mut().on_tick(&mut ProxyWasm, now());
        carry_out(&worker, resumptions, root_context_id);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_queue_ready(root_context_id: u32, queue_id: u32) {
    while let Ok(Some(_)) = abi::dequeue_shared_queue(queue_id) {}
    let Some(worker) = worker_of_root(root_context_id) else {
        return;
    };
    let resumptions = worker.borrow_mut().on_wake(&mut ProxyWasm, now());
    carry_out(&worker, resumptions, root_context_id);
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_http_call_response(
    context_id: u32,
    token: u32,
    _headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    let Some(worker) = vm(|vm| vm.worker_for_call(context_id, token)).flatten() else {
        return;
    };
    let Some(limit) = worker.borrow().response_body_limit(token) else {
        return;
    };
    let response = read_call_response(body_size, limit);
    let resumptions = worker
        .borrow_mut()
        .on_call_response(&mut ProxyWasm, token, &response, now());
    carry_out(&worker, resumptions, context_id);
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _headers: usize,
    end_of_stream: u32,
) -> u32 {
    let worker = match vm(|vm| vm.worker_for_request(context_id)) {
        Some(Ok(Some(worker))) => worker,
        _ => return reply_now(&unconfigured_response()),
    };
    let Ok(mut guard) = worker.try_borrow_mut() else {
        return reply_now(&unconfigured_response());
    };
    let request = match read_request(guard.needs(), end_of_stream == 0) {
        Ok(request) => request,
        Err(status) => {
            log::warn!("tokengate: cannot read request headers: {status:?}");
            drop(guard);
            return reply_now(&unconfigured_response());
        }
    };
    match guard.on_request(&mut ProxyWasm, Waiter::new(context_id, request), now()) {
        Step::Forward(admission) => {
            guard.apply_admission(&mut ProxyWasm, &admission);
            Action::Continue as u32
        }
        Step::Reply(response) => {
            drop(guard);
            reply_now(&response)
        }
        Step::Wait => Action::Pause as u32,
        // Not Pause: proxy-wasm hosts turn a headers `StopIteration` into "stop all" (Envoy:
        // StopAllIterationAndWatermark), and then the body never reaches this filter until it
        // resumes the request. So the headers continue and the body callback holds the body
        // (StopIterationAndBuffer) until it is whole, then answers. The headers do reach the
        // next filters: the logout listener must not answer at headers (envoy/jwt-bcl.yaml puts
        // Envoy's buffer filter after this one, so its router only ever sees whole requests).
        Step::ReadBody => Action::Continue as u32,
    }
}

/// The request body, for the requests the worker reads one of (logout tokens); every other
/// request's body passes through.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_request_body(
    context_id: u32,
    body_size: usize,
    end_of_stream: u32,
) -> u32 {
    let worker = vm(|vm| {
        vm.roots
            .iter()
            .filter_map(|root| root.worker.as_ref())
            .find(|worker| worker.try_borrow().is_ok_and(|w| w.awaits_body(context_id)))
            .cloned()
    })
    .flatten();
    let Some(worker) = worker else {
        return Action::Continue as u32;
    };
    let Ok(mut guard) = worker.try_borrow_mut() else {
        return Action::Continue as u32;
    };
    let read = |size: usize| {
        abi::get_buffer(BufferType::HttpRequestBody, 0, size)
            .ok()
            .flatten()
    };
    let step = guard.on_request_body(
        &mut ProxyWasm,
        context_id,
        body_size,
        end_of_stream != 0,
        read,
        now(),
    );
    drop(guard);
    match step {
        BodyStep::Continue => Action::Continue as u32,
        // StopIterationAndBuffer: the host keeps the body and calls again with more.
        BodyStep::Buffer => Action::Pause as u32,
        BodyStep::Reply(response) => reply_now(&response),
        // Held (StopIterationAndBuffer) until the worker answers it from another callback.
        BodyStep::Wait => Action::Pause as u32,
    }
}

// ---------------------------------------------------------------------------------------------

/// Answers the request of the effective context; the request callback then returns `Pause`.
fn reply_now(response: &DenyResponse) -> u32 {
    send(response);
    Action::Pause as u32
}

fn send(response: &DenyResponse) {
    if let Err(status) = ProxyWasm.reply(response) {
        log::warn!("tokengate: cannot send the local reply: {status:?}");
    }
}

/// Carries out the steps for requests that waited, each in its own context, then returns to
/// `home` (the context the host called in). Requests whose client went away are skipped
/// (their context no longer exists).
fn carry_out(worker: &SharedWorker, resumptions: Vec<Resumption>, home: u32) {
    if resumptions.is_empty() {
        return;
    }
    for Resumption { context_id, step } in resumptions {
        if abi::set_effective_context(context_id).is_err() {
            continue;
        }
        match step {
            Step::Forward(admission) => {
                if let Ok(worker) = worker.try_borrow() {
                    worker.apply_admission(&mut ProxyWasm, &admission);
                }
                if let Err(status) = ProxyWasm.resume() {
                    log::warn!("tokengate: cannot resume a request: {status:?}");
                }
            }
            Step::Reply(response) => send(&response),
            Step::Wait | Step::ReadBody => {}
        }
    }
    let _ = abi::set_effective_context(home);
}

/// What the worker needs of the request. Every host call costs (in Envoy's V8 a call that
/// copies a value out is worth microseconds), so when some header counts with every entry, the
/// one call that reads them all also answers the single-valued ones (a policy's `:path`,
/// `:method`, `:authority`); otherwise each single-valued header is one call.
fn read_request(needs: &RequestNeeds, body_follows: bool) -> Result<Request, Status> {
    let wants_every_entry = needs
        .headers
        .iter()
        .any(|read| matches!(read, HeaderRead::All(_)));
    let pairs = if wants_every_entry {
        Some(abi::get_map_pairs(MapType::HttpRequestHeaders)?)
    } else {
        None
    };
    let mut headers = Vec::new();
    let mut every_entry: Vec<&str> = Vec::new();
    for read in &needs.headers {
        match read {
            HeaderRead::One(name) => {
                // The host's single-value read answers with the first entry, as this does.
                let value = match &pairs {
                    Some(pairs) => pairs
                        .iter()
                        .find(|(header, _)| header == name)
                        .map(|(_, value)| value.clone()),
                    None => abi::get_map_value(MapType::HttpRequestHeaders, name)?,
                };
                if let Some(value) = value {
                    headers.push((name.clone(), value));
                }
            }
            HeaderRead::All(name) => every_entry.push(name),
        }
    }
    if let Some(mut pairs) = pairs {
        pairs.retain(|(header, _)| every_entry.contains(&header.as_str()));
        headers.extend(pairs);
    }
    // Envoy 1.40 knows the route's name as `xds.route_name`; its older `route_name`
    // attribute is empty while the request's filters run. Other hosts may offer either.
    let route = if needs.route {
        match abi::get_property(&["xds", "route_name"]) {
            Ok(Some(name)) if !name.is_empty() => Some(name),
            _ => abi::get_property(&["route_name"])?,
        }
    } else {
        None
    };
    Ok(Request {
        headers,
        route,
        body_follows,
    })
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

//! proxy-wasm glue: reads requests from the host, runs the [`Engine`], carries out its
//! decisions, fetches and shares the JWKS, and exports metrics.
//!
//! Every host call goes through `hostcalls` and its `Result` is handled: a panic here would
//! take down every request on this worker's VM.

mod keys;
mod metrics;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::config;
use crate::engine::{Admission, Decision, Engine};
use crate::rejection::{DenyResponse, Rejection, ResponseContext, deny_response};

use keys::RemoteKeys;
use metrics::Metrics;

/// How often each worker looks at the shared key set and the refresh schedule.
const TICK: Duration = Duration::from_millis(250);

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Per-VM (per worker thread) state, shared by the root context and the request contexts.
struct Worker {
    engine: Engine,
    metrics: Metrics,
    remote: Option<RemoteKeys>,
    required_scope: String,
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

#[derive(Default)]
struct Root {
    worker: Option<SharedWorker>,
    /// The periodic fetch this root context dispatched, if one is in flight.
    pending_fetch: Option<u32>,
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _: usize) {
        if self.pending_fetch != Some(token) {
            return;
        }
        self.pending_fetch = None;
        if let Some(worker) = &self.worker {
            let response = keys::read_call_response(body_size);
            keys::finish_fetch(&mut worker.borrow_mut(), response, now());
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                log::error!("tokengate: cannot read the plugin configuration: {status:?}");
                return false;
            }
        };
        let config = match config::parse(&bytes) {
            Ok(config) => config,
            Err(err) => {
                log::error!("tokengate: {err}");
                return false;
            }
        };
        for warning in config.warnings() {
            log::warn!("tokengate: {warning}");
        }
        let metrics = match Metrics::define() {
            Ok(metrics) => metrics,
            Err(status) => {
                log::error!("tokengate: cannot define metrics: {status:?}");
                return false;
            }
        };
        metrics.record_config(&config);
        let remote = match &config.jwks {
            config::JwksSource::Remote(remote) => Some(RemoteKeys::new(remote)),
            config::JwksSource::Inline(_) => None,
        };
        let required_scope = config.required_scope_string();
        let engine = Engine::new(config);
        metrics.record_keys(engine.key_count());
        let mut worker = Worker {
            engine,
            metrics,
            remote,
            required_scope,
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
        let mut worker = worker.borrow_mut();
        keys::sync_from_shared(&mut worker);
        if self.pending_fetch.is_none() {
            self.pending_fetch = keys::start_periodic_fetch(&mut worker, now());
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            worker: self.worker.clone(),
            paused_headers: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    worker: Option<SharedWorker>,
    /// Headers of a request paused while its unknown `kid` triggers a key refetch.
    paused_headers: Option<Vec<(String, Vec<u8>)>>,
}

/// What to do with a request once the worker is no longer borrowed (sending a local reply
/// can re-enter the filter).
enum Outcome {
    Forward,
    Reply(Rejection),
    WaitForKeys,
}

impl Request {
    fn decide(
        &mut self,
        worker: &SharedWorker,
        headers: Vec<(String, Vec<u8>)>,
        may_fetch: bool,
    ) -> Outcome {
        let now = now();
        let mut worker = worker.borrow_mut();
        let mut evaluation = worker.engine.authenticate(&headers, now.seconds);
        let key_problem = matches!(
            evaluation.decision,
            Decision::Deny(Rejection::UnknownKey | Rejection::KeysUnavailable)
        );
        if key_problem && worker.remote.is_some() {
            // Another worker may already have fetched newer keys into shared data.
            if keys::sync_from_shared(&mut worker) {
                evaluation = worker.engine.authenticate(&headers, now.seconds);
            }
            if may_fetch
                && evaluation.decision == Decision::Deny(Rejection::UnknownKey)
                && keys::start_kid_refetch(&mut worker, now)
            {
                self.paused_headers = Some(headers);
                return Outcome::WaitForKeys;
            }
        }
        worker.metrics.record_cache(evaluation.cache);
        match evaluation.decision {
            Decision::Allow(admission) => {
                apply_updates(&worker, &admission);
                worker.metrics.record_allowed();
                Outcome::Forward
            }
            Decision::Deny(rejection) => Outcome::Reply(rejection),
        }
    }

    fn reply(&self, rejection: &Rejection) {
        let Some(worker) = &self.worker else {
            // Not configured on this worker: nothing can be judged.
            let context = ResponseContext {
                realm: config::DEFAULT_REALM,
                required_scope: "",
                retry_after_seconds: config::DEFAULT_RETRY_AFTER_SECONDS,
            };
            send(&deny_response(&Rejection::KeysUnavailable, &context));
            return;
        };
        let response = {
            let worker = worker.borrow();
            worker.metrics.record_denied(rejection.reason());
            let config = worker.engine.config();
            let context = ResponseContext {
                realm: &config.realm,
                required_scope: &worker.required_scope,
                retry_after_seconds: config.retry_after_seconds,
            };
            log::debug!("tokengate: denied: {rejection}");
            deny_response(rejection, &context)
        };
        send(&response);
    }
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

impl Context for Request {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _: usize) {
        let (Some(worker), Some(headers)) = (self.worker.clone(), self.paused_headers.take())
        else {
            return;
        };
        let response = keys::read_call_response(body_size);
        keys::finish_fetch(&mut worker.borrow_mut(), response, now());
        match self.decide(&worker, headers, false) {
            Outcome::Forward => {
                if let Err(status) = hostcalls::resume_http_request() {
                    log::warn!("tokengate: cannot resume the request: {status:?}");
                }
            }
            Outcome::Reply(rejection) => self.reply(&rejection),
            // decide() with may_fetch = false never waits again.
            Outcome::WaitForKeys => self.reply(&Rejection::UnknownKey),
        }
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _count: usize, _end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            self.reply(&Rejection::KeysUnavailable);
            return Action::Pause;
        };
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(headers) => headers,
            Err(status) => {
                log::warn!("tokengate: cannot read request headers: {status:?}");
                self.reply(&Rejection::KeysUnavailable);
                return Action::Pause;
            }
        };
        match self.decide(&worker, headers, true) {
            Outcome::Forward => Action::Continue,
            Outcome::Reply(rejection) => {
                self.reply(&rejection);
                Action::Pause
            }
            Outcome::WaitForKeys => Action::Pause,
        }
    }
}

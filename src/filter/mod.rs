//! The filter's life on one worker: a plugin configuration, the requests it decides, the calls
//! it makes and the key set it shares with the other workers — everything a proxy-wasm host
//! drives, reached only through the [`Host`] trait, so every path has native tests
//! (`tests.rs`, on [`fake::FakeHost`]).
//!
//! A host calls [`Worker::on_request`] for a request's headers, [`Worker::on_tick`] on its
//! timer, [`Worker::on_wake`] when the worker's wake-up queue has items, and
//! [`Worker::on_call_response`] with each call's answer. Each returns [`Step`]s: what to do
//! with a request (forward it with these header changes, answer it, keep it waiting), which
//! the host carries out in that request's context ([`Worker::apply_admission`] for the header
//! changes). Steps for requests that waited are returned rather than carried out here, so the
//! host never re-enters the module while the worker is borrowed.

pub mod calls;
#[cfg(any(test, feature = "testkit"))]
pub mod fake;
pub mod host;
mod keys;

use crate::coalesce::{Coalescer, Join};
use crate::config;
use crate::engine::{Admission, CacheUse, Decision, Engine, Evaluation, IntrospectionOutcome};
use crate::metrics::{Counter, Metrics};
use crate::rejection::{DenyResponse, IdpFailure, Rejection, ResponseContext, deny_response};
use crate::token_source::{self, NeededHeaders};

pub use calls::{CallResponse, Waiter};
pub use host::Host;

use calls::Call;
use keys::RemoteKeys;

/// How often a worker with a remote key set wants its tick (shared key set, refresh schedule).
pub const TICK_MS: u32 = 250;

/// The time, as the host's clock gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Unix seconds.
    pub seconds: i64,
    /// Unix milliseconds.
    pub millis: u64,
}

impl Now {
    /// From the host clock's nanoseconds since the Unix epoch.
    pub fn from_nanos(nanos: u64) -> Now {
        Now {
            seconds: i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX),
            millis: nanos / 1_000_000,
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Forward it, after the header changes of the admission ([`Worker::apply_admission`]).
    Forward(Admission),
    /// Answer it with this local reply.
    Reply(DenyResponse),
    /// It stays paused until a call it waits on returns.
    Wait,
}

/// A step for a request that was waiting, to carry out in its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumption {
    /// The waiting request's context.
    pub context_id: u32,
    /// What to do with it.
    pub step: Step,
}

/// The request header(s) the configuration reads: one value, or every entry of a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenHeader {
    /// The first (and, for these headers, only) value of this header.
    One(String),
    /// Every entry of this header, in order.
    All(String),
}

/// Per-worker state of one plugin configuration.
pub struct Worker {
    engine: Engine,
    metrics: Metrics,
    remote: Option<RemoteKeys>,
    required_scope: String,
    token_header: TokenHeader,
    calls: calls::Calls,
    introspection_waiters: Coalescer<Waiter>,
}

impl Worker {
    /// Parses and validates the plugin configuration and defines the metrics. `wake_queue` is
    /// the shared queue that wakes this worker's root context, if the host could register one.
    /// An error is one line for the log, naming the field at fault.
    pub fn configure(
        host: &mut impl Host,
        configuration: &[u8],
        wake_queue: Option<u32>,
    ) -> Result<Worker, String> {
        let config = config::parse(configuration).map_err(|err| err.to_string())?;
        for warning in config.warnings() {
            log::warn!("tokengate: {warning}");
        }
        let metrics =
            Metrics::define(host).map_err(|err| format!("cannot define metrics: {err:?}"))?;
        metrics.record_config(host, &config);
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
        metrics.record_keys(host, engine.key_count());
        let mut worker = Worker {
            engine,
            metrics,
            remote,
            required_scope,
            token_header,
            calls: calls::Calls::new(wake_queue),
            introspection_waiters: Coalescer::new(max_in_flight),
        };
        worker.sync_keys_from_shared(host);
        Ok(worker)
    }

    /// Whether the worker needs [`Worker::on_tick`] every [`TICK_MS`].
    pub fn wants_ticks(&self) -> bool {
        self.remote.is_some()
    }

    /// Which request headers [`Worker::on_request`] needs to see.
    pub fn token_header(&self) -> &TokenHeader {
        &self.token_header
    }

    /// The decision engine of this worker.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Decides on a request (its needed headers in `waiter`).
    pub fn on_request(&mut self, host: &mut impl Host, waiter: Waiter, now: Now) -> Step {
        self.decide(host, waiter, None, true, now)
    }

    /// The timer: pick up keys another worker published, and fetch when the schedule says so.
    pub fn on_tick(&mut self, host: &mut impl Host, now: Now) {
        self.sync_keys_from_shared(host);
        if self.calls.is_pending(&Call::PeriodicJwks) || !self.claim_periodic_fetch(host, now) {
            return;
        }
        if self.dispatch(host, Call::PeriodicJwks, now).is_err() {
            self.record_fetch_failure(host, now);
        }
    }

    /// The root context was woken: dispatch the calls requests queued. Calls that could not
    /// start are finished as failed, which may settle the requests waiting on them.
    pub fn on_wake(&mut self, host: &mut impl Host, now: Now) -> Vec<Resumption> {
        let failed = self.dispatch_queued(host, now);
        let mut resumptions = Vec::new();
        for (call, response) in failed {
            resumptions.extend(self.finish_call(host, call, &response, now));
        }
        resumptions
    }

    /// Whether the call with this token was dispatched by this worker.
    pub fn owns_call(&self, token: u32) -> bool {
        self.calls.owns(token)
    }

    /// The largest body worth reading for the answer to call `token` (`None`: not ours).
    pub fn response_body_limit(&self, token: u32) -> Option<usize> {
        self.calls.body_limit(token)
    }

    /// A call's answer: applies it and decides again on every request that waited for it.
    pub fn on_call_response(
        &mut self,
        host: &mut impl Host,
        token: u32,
        response: &CallResponse,
        now: Now,
    ) -> Vec<Resumption> {
        match self.take_call(host, token, now) {
            Some(call) => self.finish_call(host, call, response, now),
            None => Vec::new(),
        }
    }

    /// Sets the forwarded claim headers and removes the token, as the admission says, in the
    /// host's effective context.
    pub fn apply_admission(&self, host: &mut impl Host, admission: &Admission) {
        admission.for_each_update(self.engine.config(), |name, value| {
            let result = match value {
                Some(value) => host.set_header(name, value),
                None => host.remove_header(name),
            };
            if let Err(status) = result {
                log::warn!("tokengate: cannot update header {name}: {status:?}");
            }
        });
    }

    fn finish_call(
        &mut self,
        host: &mut impl Host,
        call: Call,
        response: &CallResponse,
        now: Now,
    ) -> Vec<Resumption> {
        let (waiters, outcome) = match call {
            Call::PeriodicJwks => {
                self.finish_fetch(host, response, now);
                return Vec::new();
            }
            Call::KidRefetch => {
                self.finish_fetch(host, response, now);
                (std::mem::take(&mut self.calls.kid_waiters), None)
            }
            Call::Introspection(token) => {
                let outcome =
                    self.engine
                        .record_introspection(&token, response.answer(), now.seconds);
                if let IntrospectionOutcome::Failed(failure) = &outcome {
                    self.metrics.record_idp_error(host, *failure);
                    log::warn!("tokengate: introspection failed ({})", failure.as_str());
                }
                (self.introspection_waiters.take(&token), Some(outcome))
            }
        };
        waiters
            .into_iter()
            .map(|waiter| {
                let context_id = waiter.context_id;
                let step = self.decide(host, waiter, outcome.as_ref(), false, now);
                Resumption { context_id, step }
            })
            .collect()
    }

    /// Decides on a request: an admission, a refusal, or a wait on the call it needs (a key
    /// refetch for an unknown `kid`, an introspection).
    fn decide(
        &mut self,
        host: &mut impl Host,
        waiter: Waiter,
        outcome: Option<&IntrospectionOutcome>,
        may_refetch_keys: bool,
        now: Now,
    ) -> Step {
        let evaluate = |engine: &mut Engine, waiter: &Waiter| match outcome {
            None => engine.authenticate(waiter.headers(), now.seconds),
            Some(outcome) => engine.resume(waiter.headers(), outcome, now.seconds),
        };
        let mut evaluation: Evaluation = evaluate(&mut self.engine, &waiter);
        let key_problem = matches!(
            evaluation.decision,
            Decision::Deny(Rejection::UnknownKey | Rejection::KeysUnavailable)
        );
        if key_problem && self.remote.is_some() {
            // Another worker may already have fetched newer keys into shared data.
            if self.sync_keys_from_shared(host) {
                evaluation = evaluate(&mut self.engine, &waiter);
            }
            if may_refetch_keys && evaluation.decision == Decision::Deny(Rejection::UnknownKey) {
                let already = self.calls.is_pending(&Call::KidRefetch);
                if already || self.claim_kid_refetch(host, now) {
                    if !already && !self.start_call(host, Call::KidRefetch, now) {
                        // Nothing will answer: decide without new keys.
                        self.record_fetch_failure(host, now);
                        return self.settle(host, evaluation);
                    }
                    self.calls.kid_waiters.push(waiter);
                    return Step::Wait;
                }
            }
        }
        if let Decision::Introspect(token) = &evaluation.decision {
            // The resumed evaluation finds the verdict in hand, not in a cache: count lookups
            // here.
            self.metrics
                .record_cache(host, evaluation.cache, evaluation.introspection_cache);
            let token = token.clone();
            return match self.introspection_waiters.join(&token, waiter) {
                Join::First => {
                    if self.start_call(host, Call::Introspection(token.clone()), now) {
                        Step::Wait
                    } else {
                        // The call could not start: this request was its only waiter.
                        self.introspection_waiters.take(&token);
                        self.metrics.record_idp_error(host, IdpFailure::Unreachable);
                        let failed = Rejection::IdpUnavailable(IdpFailure::Unreachable);
                        Step::Reply(self.refusal(host, &failed))
                    }
                }
                Join::Joined => {
                    self.metrics
                        .increment(host, Counter::IntrospectionCoalesced);
                    Step::Wait
                }
                Join::Full => {
                    self.metrics.record_idp_error(host, IdpFailure::Overloaded);
                    let overloaded = Rejection::IdpUnavailable(IdpFailure::Overloaded);
                    Step::Reply(self.refusal(host, &overloaded))
                }
            };
        }
        if outcome.is_some() {
            // The first pass of this request already counted its local cache lookup.
            evaluation.cache = CacheUse::NotUsed;
        }
        self.settle(host, evaluation)
    }

    /// Turns a final evaluation into a step, recording its metrics.
    fn settle(&mut self, host: &mut impl Host, evaluation: Evaluation) -> Step {
        self.metrics
            .record_cache(host, evaluation.cache, evaluation.introspection_cache);
        match evaluation.decision {
            Decision::Allow(admission) => {
                self.metrics.increment(host, Counter::Allowed);
                if admission.is_degraded() {
                    self.metrics.increment(host, Counter::AllowedDegraded);
                }
                Step::Forward(admission)
            }
            Decision::Deny(rejection) => Step::Reply(self.refusal(host, &rejection)),
            // Introspection is handled by the caller before settling.
            Decision::Introspect(_) => Step::Wait,
        }
    }

    fn refusal(&self, host: &mut impl Host, rejection: &Rejection) -> DenyResponse {
        self.metrics.record_denied(host, rejection.reason());
        log::debug!("tokengate: denied: {rejection}");
        let config = self.engine.config();
        deny_response(
            rejection,
            &ResponseContext {
                realm: &config.realm,
                required_scope: &self.required_scope,
                retry_after_seconds: config.retry_after_seconds,
            },
        )
    }
}

/// The answer for a request no configured worker can judge (configuration refused or the
/// request's plugin unknown): 503, like keys that are not loaded yet.
pub fn unconfigured_response() -> DenyResponse {
    deny_response(
        &Rejection::KeysUnavailable,
        &ResponseContext {
            realm: config::DEFAULT_REALM,
            required_scope: "",
            retry_after_seconds: config::DEFAULT_RETRY_AFTER_SECONDS,
        },
    )
}

#[cfg(test)]
mod tests;

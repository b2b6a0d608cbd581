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
mod logout_wait;
mod relay;
mod revocations;

use std::rc::Rc;

use crate::config;
use crate::engine::{
    Admission, CacheUse, Decision, Engine, Evaluation, InHand, IntrospectionOutcome, RequestNeeds,
};
use crate::introspection::coalesce::{Coalescer, Join};
use crate::metrics::{Counter, Gauge, Metrics};
use crate::rejection::{DenyResponse, IdpFailure, Rejection, ResponseContext, deny_response};

pub use calls::{CallResponse, Waiter};
pub use host::Host;
pub use revocations::BodyStep;

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
    /// It stays paused while its body arrives ([`Worker::on_request_body`]): a logout token.
    ReadBody,
}

/// A step for a request that was waiting, to carry out in its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumption {
    /// The waiting request's context.
    pub context_id: u32,
    /// What to do with it.
    pub step: Step,
}

/// Per-worker state of one plugin configuration.
pub struct Worker {
    engine: Engine,
    metrics: Metrics,
    /// Per provider: its fetched key set, if it has one.
    remotes: Vec<Option<RemoteKeys>>,
    calls: calls::Calls,
    /// Per provider: requests waiting on an introspection of their token.
    introspection_waiters: Vec<Coalescer<Rc<str>, Waiter>>,
    /// Per provider with back-channel logout: its shared log of ended sessions.
    revocations: Vec<Option<revocations::SharedLog>>,
    /// The back-channel logout paths this configuration answers, and their providers.
    logout_paths: Vec<(String, usize)>,
    /// Logout requests whose body is on its way.
    pending_logouts: std::collections::VecDeque<revocations::PendingLogout>,
    /// Logout requests given up while waiting (bounded): their body, if it still comes, is
    /// refused rather than passed on.
    abandoned_logouts: std::collections::VecDeque<u32>,
    /// Relays to send again, and when (Unix milliseconds; bounded).
    relay_retries: Vec<(u64, calls::Relay)>,
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
        let mut metrics = Metrics::define(host, &config)
            .map_err(|err| format!("cannot define metrics: {err:?}"))?;
        metrics.record_config(host, &config);
        let remotes = config
            .providers
            .iter()
            .map(RemoteKeys::for_provider)
            .collect();
        let introspection_waiters = config
            .providers
            .iter()
            .map(|provider| {
                Coalescer::new(
                    provider
                        .introspection
                        .as_ref()
                        .map_or(0, |introspection| introspection.max_in_flight),
                )
            })
            .collect();
        let revocations = config
            .providers
            .iter()
            .map(revocations::SharedLog::for_provider)
            .collect();
        let logout_paths = config
            .providers
            .iter()
            .enumerate()
            .filter_map(|(index, p)| Some((p.backchannel.as_ref()?.path.clone()?, index)))
            .collect();
        let engine = Engine::new(config);
        for provider in 0..engine.config().providers.len() {
            metrics.record_keys(host, provider, engine.key_count(provider));
        }
        let mut worker = Worker {
            engine,
            metrics,
            remotes,
            calls: calls::Calls::new(wake_queue),
            introspection_waiters,
            revocations,
            logout_paths,
            pending_logouts: std::collections::VecDeque::new(),
            abandoned_logouts: std::collections::VecDeque::new(),
            relay_retries: Vec::new(),
        };
        for provider in 0..worker.remotes.len() {
            worker.sync_keys_from_shared(host, provider);
        }
        Ok(worker)
    }

    /// Whether the worker needs [`Worker::on_tick`] every [`TICK_MS`]: for a fetched key set
    /// (shared keys, refresh schedule) or for peers a failed relay is sent to again.
    pub fn wants_ticks(&self) -> bool {
        self.remotes.iter().any(Option::is_some)
            || self.engine.config().providers.iter().any(|provider| {
                provider
                    .backchannel
                    .as_ref()
                    .is_some_and(|b| !b.peers.is_empty())
            })
    }

    /// What the host must read from each request for [`Worker::on_request`].
    pub fn needs(&self) -> &RequestNeeds {
        self.engine.needs()
    }

    /// The decision engine of this worker.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Decides on a request (its needed headers in `waiter`).
    pub fn on_request(&mut self, host: &mut impl Host, waiter: Waiter, now: Now) -> Step {
        self.sync_revocations(host, now);
        if let Some(provider) = self.logout_provider(&waiter.request) {
            // Answered here, never forwarded.
            return match self.start_logout(waiter.context_id, provider, &waiter.request) {
                Ok(()) => Step::ReadBody,
                Err(reply) => Step::Reply(reply),
            };
        }
        self.decide(host, waiter, true, now)
    }

    /// The timer: pick up keys another worker published, and fetch when the schedule says so.
    /// Returns the answers for logout tokens that waited for keys (carried out like a call's).
    pub fn on_tick(&mut self, host: &mut impl Host, now: Now) -> Vec<Resumption> {
        let mut synced = Vec::new();
        for provider in 0..self.remotes.len() {
            if self.remotes[provider].is_none() {
                continue;
            }
            if self.sync_keys_from_shared(host, provider) {
                synced.push(provider);
            }
            if self.calls.fetching(provider, None)
                || !self.claim_periodic_fetch(host, provider, now)
            {
                continue;
            }
            let Some(Some(remote)) = self.remotes.get(provider) else {
                continue;
            };
            let call = Call::fetch(remote, provider, false);
            if self.dispatch(host, call, now).is_err() {
                self.record_fetch_failure(host, provider, now);
            }
        }
        self.retry_relays(host, now);
        self.resume_logouts_on_tick(host, &synced, now)
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

    /// Carries out an admission in the host's effective context: sets the forwarded claim
    /// headers and removes client-supplied copies and the token, publishes the properties it
    /// asks for, and asks for the route again when its rule says so.
    pub fn apply_admission(&self, host: &mut impl Host, admission: &Admission) {
        self.engine.for_each_update(admission, |name, value| {
            let result = match value {
                Some(value) => host.set_header(name, value),
                None => host.remove_header(name),
            };
            if let Err(status) = result {
                log::warn!("tokengate: cannot update header {name}: {status:?}");
            }
        });
        self.engine.for_each_published(admission, |name, value| {
            if let Err(status) = host.set_property(name, value) {
                log::debug!("tokengate: cannot publish {name}: {status:?}");
            }
        });
        if self.engine.clears_route_cache(admission)
            && let Err(status) = host.clear_route_cache()
        {
            log::debug!("tokengate: cannot clear the route cache: {status:?}");
        }
    }

    fn finish_call(
        &mut self,
        host: &mut impl Host,
        call: Call,
        response: &CallResponse,
        now: Now,
    ) -> Vec<Resumption> {
        // Logout tokens wait on any fetch of their provider's keys, and hear back when it
        // ends, however it ends; requests hear back from the refetch they waited for.
        let mut resumptions = Vec::new();
        let waiters: Vec<Waiter> = match call {
            Call::Discovery { provider, refetch } => {
                let next = Call::Jwks { provider, refetch };
                if self.finish_discovery(host, provider, response, now) {
                    match self.dispatch(host, next, now) {
                        Ok(()) => return Vec::new(),
                        Err(_) => self.record_fetch_failure(host, provider, now),
                    }
                }
                let (waiters, logouts) = self.calls.take_key_waiters(provider, refetch);
                resumptions = self.resume_logouts(host, logouts, now);
                waiters
            }
            Call::Jwks { provider, refetch } => {
                self.finish_fetch(host, provider, response, now);
                let (waiters, logouts) = self.calls.take_key_waiters(provider, refetch);
                resumptions = self.resume_logouts(host, logouts, now);
                // Whatever the refetch did not find, nobody refetches for again until the next
                // scheduled refresh.
                let mut missing: Vec<String> = Vec::new();
                for waiter in &waiters {
                    let evaluation =
                        self.engine
                            .resume(&waiter.request, &waiter.in_hand, now.seconds);
                    if let (Decision::Deny(Rejection::UnknownKey), Some(kid)) =
                        (&evaluation.decision, &evaluation.lookups.unknown_kid)
                        && !missing.iter().any(|m| **m == **kid)
                    {
                        missing.push(kid.to_string());
                    }
                }
                self.remember_missing_kids(host, provider, &missing, now);
                waiters
            }
            Call::Relay(relay) => {
                self.finish_relay(host, relay, response, now);
                return Vec::new();
            }
            Call::Introspection(key) => {
                let outcome =
                    self.engine
                        .record_introspection(&key, response.answer(), now.seconds);
                if let IntrospectionOutcome::Failed(failure) = &outcome {
                    self.metrics.record_idp_error(host, *failure);
                    log::warn!("tokengate: introspection failed ({})", failure.as_str());
                }
                let waiters = match self.introspection_waiters.get_mut(key.provider) {
                    Some(coalescer) => coalescer.take(&key.token),
                    None => Vec::new(),
                };
                let hand = InHand { key, outcome };
                waiters
                    .into_iter()
                    .map(|mut waiter| {
                        waiter.in_hand.push(hand.clone());
                        waiter
                    })
                    .collect()
            }
        };
        for waiter in waiters {
            let context_id = waiter.context_id;
            let step = self.decide(host, waiter, false, now);
            resumptions.push(Resumption { context_id, step });
        }
        resumptions
    }

    /// Decides on a request: an admission, a refusal, or a wait on the call it needs (a key
    /// refetch for an unknown `kid`, an introspection).
    fn decide(&mut self, host: &mut impl Host, waiter: Waiter, first_pass: bool, now: Now) -> Step {
        let evaluate = |engine: &mut Engine, waiter: &Waiter| {
            engine.resume(&waiter.request, &waiter.in_hand, now.seconds)
        };
        let mut evaluation: Evaluation = evaluate(&mut self.engine, &waiter);
        let key_problem = matches!(
            evaluation.decision,
            Decision::Deny(Rejection::UnknownKey | Rejection::KeysUnavailable)
        );
        if let (true, Some(provider)) = (key_problem, evaluation.provider)
            && self.remotes.get(provider).is_some_and(Option::is_some)
        {
            evaluation = self.judge_again_with_shared_keys(host, provider, evaluation, |engine| {
                evaluate(engine, &waiter)
            });
            let kid = evaluation
                .lookups
                .unknown_kid
                .as_deref()
                .unwrap_or_default();
            if first_pass
                && evaluation.decision == Decision::Deny(Rejection::UnknownKey)
                && !self.kid_known_missing(host, provider, kid, now)
                && let Some(Some(remote)) = self.remotes.get(provider)
            {
                let refetch = Call::fetch(remote, provider, true);
                let already = self.calls.fetching(provider, Some(true));
                if already || self.claim_kid_refetch(host, provider, now) {
                    if !already && !self.start_call(host, refetch, now) {
                        // Nothing will answer: decide without new keys.
                        self.record_fetch_failure(host, provider, now);
                        return self.settle(host, evaluation);
                    }
                    self.calls
                        .wait_for_keys(provider, calls::KeyWaiter::Request(waiter));
                    return Step::Wait;
                }
            }
        }
        if let Decision::Introspect(key) = &evaluation.decision {
            // The resumed evaluation finds the verdict in hand, not in a cache: count lookups
            // here.
            self.metrics.record_cache(host, &evaluation.lookups);
            let key = key.clone();
            let Some(waiters) = self.introspection_waiters.get_mut(key.provider) else {
                let failed = Rejection::IdpUnavailable(IdpFailure::Unreachable);
                return Step::Reply(self.refusal(host, &failed, &evaluation));
            };
            return match waiters.join(Rc::clone(&key.token), waiter) {
                Join::First => {
                    if self.start_call(host, Call::Introspection(key.clone()), now) {
                        Step::Wait
                    } else {
                        // The call could not start: this request was its only waiter.
                        if let Some(waiters) = self.introspection_waiters.get_mut(key.provider) {
                            waiters.take(&key.token);
                        }
                        self.metrics.record_idp_error(host, IdpFailure::Unreachable);
                        let failed = Rejection::IdpUnavailable(IdpFailure::Unreachable);
                        Step::Reply(self.refusal(host, &failed, &evaluation))
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
                    Step::Reply(self.refusal(host, &overloaded, &evaluation))
                }
            };
        }
        if !waiter.in_hand.is_empty() {
            // The first pass of this request already counted its local cache lookup.
            evaluation.lookups.cache = CacheUse::NotUsed;
        }
        self.settle(host, evaluation)
    }

    /// Turns a final evaluation into a step, recording its metrics.
    fn settle(&mut self, host: &mut impl Host, evaluation: Evaluation) -> Step {
        self.metrics.record_cache(host, &evaluation.lookups);
        if evaluation.lookups.cache != CacheUse::Hit {
            // A hit leaves the caches as they were; anything else may have added an entry.
            let entries = u64::try_from(self.engine.cache_entries()).unwrap_or(u64::MAX);
            self.metrics.set(host, Gauge::CacheEntries, entries);
        }
        match &evaluation.decision {
            Decision::Allow(admission) => {
                self.metrics
                    .record_allowed(host, evaluation.rule, evaluation.provider);
                if admission.is_degraded() {
                    self.metrics.increment(host, Counter::AllowedDegraded);
                }
                match evaluation.decision {
                    Decision::Allow(admission) => Step::Forward(admission),
                    _ => Step::Wait,
                }
            }
            Decision::Deny(rejection) => Step::Reply(self.refusal(host, rejection, &evaluation)),
            // Introspection is handled by the caller before settling.
            Decision::Introspect(_) => Step::Wait,
        }
    }

    fn refusal(
        &self,
        host: &mut impl Host,
        rejection: &Rejection,
        evaluation: &Evaluation,
    ) -> DenyResponse {
        self.metrics.record_refused(
            host,
            rejection.reason(),
            evaluation.rule,
            evaluation.provider,
        );
        log::debug!("tokengate: denied: {rejection}");
        let config = self.engine.config();
        deny_response(
            rejection,
            &ResponseContext {
                realm: &config.realm,
                required_scope: self.engine.scope_string(evaluation.rule),
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
mod cache_tests;
#[cfg(test)]
mod host_calls_tests;
#[cfg(test)]
mod logout_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

//! Outgoing HTTP calls (JWKS fetches, introspections) and the requests waiting on them.
//!
//! Calls are dispatched by the root context, not by the request that needed them: a host
//! cancels a context's calls when the context goes away, and a call shared by several waiting
//! requests must not die with the first one's client. A request queues its call on the
//! worker and wakes the root through a shared queue registered by that root; when the answer
//! arrives, every waiting request is decided again and the host carries each step out in that
//! request's context. Without a queue (registration failed), the request dispatches the call
//! itself.

use std::collections::HashMap;
use std::rc::Rc;

use crate::engine::{CallKey, InHand, Request};
use crate::introspection::CallAnswer;
use crate::metrics::Counter;

use super::host::Host;
use super::logout_wait::KeyWaitingLogout;
use super::{Now, Worker};

/// Introspection answers larger than this are treated as unusable.
pub const MAX_INTROSPECTION_BYTES: usize = 64 * 1024;

/// A call the worker makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A provider's JWKS fetch: the scheduled refresh, or for a token whose `kid` it does not
    /// know (`refetch`).
    Jwks {
        /// The provider.
        provider: usize,
        /// Triggered by an unknown `kid` (requests wait for it).
        refetch: bool,
    },
    /// A provider's discovery document, the first step of a fetch that must learn where the
    /// JWKS is; the JWKS fetch of the same kind follows.
    Discovery {
        /// The provider.
        provider: usize,
        /// Triggered by an unknown `kid` (requests wait for it).
        refetch: bool,
    },
    /// The introspection of a token at a provider.
    Introspection(CallKey),
    /// An accepted logout token sent on to a peer replica.
    Relay(Relay),
}

/// A logout token on its way to a peer replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The provider it was for.
    pub provider: usize,
    /// The peer (index into the provider's `backchannel_logout.peers`).
    pub peer: usize,
    /// The form body the IdP posted.
    pub body: Rc<[u8]>,
    /// Which attempt this is, from 1 (see [`super::relay::RELAY_ATTEMPTS`]).
    pub attempt: u8,
}

impl Call {
    /// A fetch of `provider`'s keys: its first step.
    pub fn fetch(remote: &super::keys::RemoteKeys, provider: usize, refetch: bool) -> Call {
        if remote.starts_with_discovery(!refetch) {
            Call::Discovery { provider, refetch }
        } else {
            Call::Jwks { provider, refetch }
        }
    }
}

struct InFlight {
    call: Call,
    started_ms: u64,
}

/// A request being decided, and possibly paused: its context, what the worker read of it,
/// and the introspection answers it has collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    /// The request's context, where its step is carried out.
    pub context_id: u32,
    /// The request as the engine reads it.
    pub request: Request,
    /// Answers of the introspections it waited for.
    pub in_hand: Vec<InHand>,
}

impl Waiter {
    /// A request seen for the first time.
    pub fn new(context_id: u32, request: Request) -> Waiter {
        Waiter {
            context_id,
            request,
            in_hand: Vec::new(),
        }
    }
}

/// Who waits for a fetch of a provider's keys.
pub(super) enum KeyWaiter {
    /// A request whose token's `kid` is unknown: it waits for a refetch this worker started
    /// for it (the scheduled refresh does not answer it).
    Request(Waiter),
    /// A whole logout body: it waits for any fetch of its provider's keys, this worker's or
    /// another's seen through shared data, until a fetch's deadline.
    Logout(KeyWaitingLogout),
}

/// The worker's calls: queued for the root context, in flight, and who waits for keys.
#[derive(Default)]
pub struct Calls {
    /// The root's wake-up queue, if it could be registered.
    wake_queue: Option<u32>,
    to_dispatch: Vec<Call>,
    in_flight: HashMap<u32, InFlight>,
    /// Requests and logout tokens waiting for a fetch of a provider's keys: (provider, who).
    key_waiters: Vec<(usize, KeyWaiter)>,
}

impl Calls {
    /// No calls yet; `wake_queue` wakes the root context to dispatch queued calls.
    pub fn new(wake_queue: Option<u32>) -> Calls {
        Calls {
            wake_queue,
            ..Calls::default()
        }
    }

    /// Whether `call` is queued or in flight.
    pub fn is_pending(&self, call: &Call) -> bool {
        self.to_dispatch.contains(call) || self.in_flight.values().any(|f| f.call == *call)
    }

    /// Whether a fetch of `provider`'s keys (`refetch`: one requests wait for; `None`: either
    /// kind), at either step, is queued or in flight.
    pub fn fetching(&self, provider: usize, refetch: Option<bool>) -> bool {
        let fetches = |call: &Call| match call {
            Call::Jwks {
                provider: p,
                refetch: r,
            }
            | Call::Discovery {
                provider: p,
                refetch: r,
            } => *p == provider && refetch.is_none_or(|wanted| wanted == *r),
            Call::Introspection(_) | Call::Relay(_) => false,
        };
        self.to_dispatch.iter().any(fetches) || self.in_flight.values().any(|f| fetches(&f.call))
    }

    /// `who` waits for a fetch of `provider`'s keys.
    pub(super) fn wait_for_keys(&mut self, provider: usize, who: KeyWaiter) {
        self.key_waiters.push((provider, who));
    }

    /// How many logout tokens wait for keys.
    pub(super) fn logouts_waiting_for_keys(&self) -> usize {
        self.key_waiters
            .iter()
            .filter(|(_, who)| matches!(who, KeyWaiter::Logout(_)))
            .count()
    }

    /// A fetch of `provider`'s keys ended: everyone it answers, the requests (only if it was a
    /// `refetch`) and the logout tokens.
    pub(super) fn take_key_waiters(
        &mut self,
        provider: usize,
        refetch: bool,
    ) -> (Vec<Waiter>, Vec<KeyWaitingLogout>) {
        let mut requests = Vec::new();
        let mut logouts = Vec::new();
        for (p, who) in std::mem::take(&mut self.key_waiters) {
            match who {
                KeyWaiter::Request(waiter) if p == provider && refetch => requests.push(waiter),
                KeyWaiter::Logout(logout) if p == provider => logouts.push(logout),
                who => self.key_waiters.push((p, who)),
            }
        }
        (requests, logouts)
    }

    /// The logout tokens `due` picks (by provider), taken from the waiters.
    pub(super) fn take_logouts_where(
        &mut self,
        due: impl Fn(usize, &KeyWaitingLogout) -> bool,
    ) -> Vec<KeyWaitingLogout> {
        let mut taken = Vec::new();
        for (p, who) in std::mem::take(&mut self.key_waiters) {
            match who {
                KeyWaiter::Logout(logout) if due(p, &logout) => taken.push(logout),
                who => self.key_waiters.push((p, who)),
            }
        }
        taken
    }

    /// Whether the call with this token was dispatched by this worker.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight.contains_key(&token)
    }

    /// The largest answer body worth reading for this call; `None` if the call is not ours.
    pub fn body_limit(&self, token: u32) -> Option<usize> {
        self.in_flight.get(&token).map(|f| match f.call {
            Call::Jwks { .. } | Call::Discovery { .. } => crate::jwks::MAX_JWKS_BYTES,
            Call::Introspection(_) => MAX_INTROSPECTION_BYTES,
            // Only the status matters.
            Call::Relay(_) => 0,
        })
    }
}

/// The answer to a call; `status` is `None` when the call ended without a response, `body`
/// is `None` when there was none or it was over the call's limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallResponse {
    /// The response status.
    pub status: Option<u16>,
    /// The response body, within the call's size limit.
    pub body: Option<Vec<u8>>,
}

impl CallResponse {
    /// The answer as the introspection judge reads it.
    pub fn answer(&self) -> CallAnswer<'_> {
        CallAnswer {
            status: self.status,
            body: self.body.as_deref().unwrap_or_default(),
        }
    }
}

impl Worker {
    /// Queues `call` for the root context to dispatch. Returns false if nothing will dispatch
    /// it (the caller must then dispatch or fail it itself).
    fn schedule(&mut self, host: &mut impl Host, call: Call) -> bool {
        let Some(queue) = self.calls.wake_queue else {
            return false;
        };
        self.calls.to_dispatch.push(call);
        if host.enqueue(queue, b"w").is_err() {
            // Without a wake-up the call would sit forever: take it back.
            self.calls.to_dispatch.pop();
            return false;
        }
        true
    }

    /// Starts a call: queued for the root context, or dispatched right here without a queue.
    pub(super) fn start_call(&mut self, host: &mut impl Host, call: Call, now: Now) -> bool {
        if self.schedule(host, call.clone()) {
            return true;
        }
        self.dispatch(host, call, now).is_ok()
    }

    /// Dispatches every queued call from the current (root) context; the calls that could not
    /// start come back as failed responses.
    pub(super) fn dispatch_queued(
        &mut self,
        host: &mut impl Host,
        now: Now,
    ) -> Vec<(Call, CallResponse)> {
        let queued = std::mem::take(&mut self.calls.to_dispatch);
        queued
            .into_iter()
            .filter_map(|call| self.dispatch(host, call, now).err())
            .map(|call| (call, CallResponse::default()))
            .collect()
    }

    /// Dispatches `call` from the current context; gives the call back if it could not start.
    pub(super) fn dispatch(
        &mut self,
        host: &mut impl Host,
        call: Call,
        now: Now,
    ) -> Result<(), Call> {
        let spec = match &call {
            Call::Jwks { provider, .. } => self
                .remotes
                .get(*provider)
                .and_then(Option::as_ref)
                .and_then(|remote| remote.fetch_call()),
            Call::Discovery { provider, .. } => self
                .remotes
                .get(*provider)
                .and_then(Option::as_ref)
                .and_then(|remote| remote.discovery_call()),
            Call::Introspection(key) => self.engine.introspection_call(key),
            Call::Relay(relay) => self.relay_call(relay),
        };
        let Some(spec) = spec else {
            return Err(call);
        };
        match host.dispatch(&spec) {
            Ok(token) => {
                if let Call::Introspection(key) = &call {
                    self.metrics
                        .increment_for(host, Counter::IntrospectionCalls, key.provider);
                }
                self.calls.in_flight.insert(
                    token,
                    InFlight {
                        call,
                        started_ms: now.millis,
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

    /// Takes the call a response belongs to, recording how long an introspection took.
    pub(super) fn take_call(&mut self, host: &mut impl Host, token: u32, now: Now) -> Option<Call> {
        let in_flight = self.calls.in_flight.remove(&token)?;
        if matches!(in_flight.call, Call::Introspection(_)) {
            let elapsed = now.millis.saturating_sub(in_flight.started_ms);
            self.metrics.record_introspection_latency(host, elapsed);
        }
        Some(in_flight.call)
    }
}

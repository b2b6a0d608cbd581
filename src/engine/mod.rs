//! The per-worker decision engine: a request and the time in, a decision out.
//!
//! The engine never performs I/O. For a request it finds the rule that covers it, evaluates
//! the rule's requirement — extracting each token once, choosing the provider a JWT's
//! unverified `iss` names (only to choose: everything is then verified against that provider
//! alone), validating with that provider's keys and caches — then authorizes with the rule's
//! scopes and claim conditions. It answers [`Decision::Allow`], [`Decision::Deny`] or
//! [`Decision::Introspect`] (ask this provider's IdP about this token); the worker makes the
//! call, hands the answer to [`Engine::record_introspection`], and decides again with the
//! answer in hand ([`Engine::resume`]). Refetching keys on an unknown `kid` and waiting for
//! keys are the worker's business, driven by the [`Rejection`] and the provider the
//! [`Evaluation`] names.

mod admission;
mod evaluate;
mod plan;
mod provider;
mod request;

use std::rc::Rc;

pub use admission::{Admission, Identities, Identity, IdentityHeader};
pub use request::{HeaderRead, Request, RequestNeeds};

use crate::config::{Config, OnIdpError, TokenSource};
use crate::introspection::{self, CallAnswer, HttpCall};
use crate::jwks::{JwksError, SkippedKey};
use crate::jwt::Verified;
use crate::rejection::{IdpFailure, Rejection};
use crate::revocation::{LogoutError, LogoutEvent, Revoked};

use plan::Plan;
use provider::ProviderState;

/// How a cache took part in a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// The token was found.
    Hit,
    /// It was not.
    Miss,
    /// Not consulted (no token, caching disabled, or not this mode's step).
    NotUsed,
}

/// How the introspection cache took part in a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionCacheUse {
    /// An `active: true` verdict was found.
    HitActive,
    /// A refusal was found.
    HitRefused,
    /// Nothing was found.
    Miss,
    /// Not consulted.
    NotUsed,
}

/// The cache lookups of one decision (the last of each kind, when several providers were
/// consulted), and the `kid` a refusal for an unknown key was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookups {
    /// The verified-token cache.
    pub cache: CacheUse,
    /// The introspection cache.
    pub introspection: IntrospectionCacheUse,
    /// With [`Rejection::UnknownKey`]: the token's `kid` (empty for a token without one).
    pub unknown_kid: Option<Box<str>>,
}

/// An introspection call: `token` asked about at `provider`'s endpoint. Coalescing and
/// answers are keyed on both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallKey {
    /// The provider (index into the configuration's providers).
    pub provider: usize,
    /// The token.
    pub token: Rc<str>,
}

/// What an introspection call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntrospectionOutcome {
    /// Active, every check passed.
    Active(Rc<Verified>),
    /// Inactive, or a check failed.
    Refused(Rejection),
    /// The IdP could not answer.
    Failed(IdpFailure),
}

/// An introspection answer a waiting request decides with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InHand {
    /// Which call.
    pub key: CallKey,
    /// What it came to.
    pub outcome: IntrospectionOutcome,
}

/// The decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward it, with the admission's header changes.
    Allow(Admission),
    /// Refuse it.
    Deny(Rejection),
    /// This provider's IdP must judge this token first: make the call, then resume.
    Introspect(CallKey),
}

/// A decision and what it is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The decision.
    pub decision: Decision,
    /// The rule that covered the request (`None`: no rule did).
    pub rule: Option<usize>,
    /// The provider that judged the token the decision is about (`None`: no token, or one
    /// no provider of the rule claims).
    pub provider: Option<usize>,
    /// The cache lookups.
    pub lookups: Lookups,
}

/// The per-worker decision engine (see the module documentation).
pub struct Engine {
    config: Config,
    states: Vec<ProviderState>,
    /// The distinct token sources of the providers.
    sources: Vec<TokenSource>,
    /// Per rule.
    plans: Vec<Plan>,
    identity_headers: Vec<IdentityHeader>,
    /// Whether any provider may admit degraded (`on_idp_error: allow`): then every admission
    /// sets or clears the marker.
    degraded_marker: bool,
    needs: RequestNeeds,
}

impl Engine {
    /// An engine for a validated configuration.
    pub fn new(config: Config) -> Engine {
        let states = config.providers.iter().map(ProviderState::new).collect();
        let (sources, source_of) = plan::token_sources(&config.providers);
        let plans = config
            .policy
            .rules
            .iter()
            .map(|rule| plan::compile(&rule.requires, &config.providers, &source_of))
            .collect();
        let identity_headers = admission::identity_headers(&config.providers);
        let degraded_marker = config
            .providers
            .iter()
            .any(|p| p.on_idp_error == OnIdpError::Allow);
        let logout = config
            .providers
            .iter()
            .any(|p| p.backchannel.as_ref().is_some_and(|b| b.path.is_some()));
        let needs = RequestNeeds::new(config.policy.needs(), &sources, logout);
        Engine {
            config,
            states,
            sources,
            plans,
            identity_headers,
            degraded_marker,
            needs,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the host must read from each request.
    pub fn needs(&self) -> &RequestNeeds {
        &self.needs
    }

    /// The signing keys in use by `provider`.
    pub fn key_count(&self, provider: usize) -> usize {
        self.states
            .get(provider)
            .map_or(0, ProviderState::key_count)
    }

    /// Entries in every provider's caches (verified tokens and introspection answers).
    pub fn cache_entries(&self) -> usize {
        self.states.iter().map(ProviderState::cache_entries).sum()
    }

    /// Replaces `provider`'s key set with a freshly fetched JWKS document. On error the
    /// previous keys stay in place. When the document changed, that provider's cached
    /// verdicts are dropped: a key may have been withdrawn. An unchanged document (the usual
    /// periodic refresh) changes nothing.
    pub fn install_keys(
        &mut self,
        provider: usize,
        jwks: &[u8],
    ) -> Result<Vec<SkippedKey>, JwksError> {
        match (
            self.config.providers.get(provider),
            self.states.get_mut(provider),
        ) {
            (Some(config), Some(state)) => state.install_keys(config, jwks),
            _ => Err(JwksError::NoUsableKeys {
                skipped: "no such provider".to_owned(),
            }),
        }
    }

    /// Decides on a request. `now` is Unix time in seconds.
    pub fn authenticate(&mut self, request: &Request, now: i64) -> Evaluation {
        self.evaluate(request, now, &[])
    }

    /// Decides on a request that waited for introspections, with their answers in hand.
    pub fn resume(&mut self, request: &Request, in_hand: &[InHand], now: i64) -> Evaluation {
        self.evaluate(request, now, in_hand)
    }

    /// The call that introspects `key.token` at `key.provider`; `None` for a provider that
    /// does not introspect.
    pub fn introspection_call(&self, key: &CallKey) -> Option<HttpCall> {
        let provider = self.config.providers.get(key.provider)?;
        let settings = provider.introspection.as_ref()?;
        Some(introspection::request(settings, &key.token))
    }

    /// Judges the IdP's answer about `key` and caches the verdict: positive answers for
    /// `cache_ttl_seconds` but never beyond the token's `exp`, `active: false` for
    /// `negative_cache_ttl_seconds`. Failures are not cached.
    pub fn record_introspection(
        &mut self,
        key: &CallKey,
        answer: CallAnswer<'_>,
        now: i64,
    ) -> IntrospectionOutcome {
        let (Some(config), Some(catalog), Some(state)) = (
            self.config.providers.get(key.provider),
            self.config.policy.catalogs.get(key.provider),
            self.states.get_mut(key.provider),
        ) else {
            return IntrospectionOutcome::Failed(IdpFailure::BadResponse);
        };
        state.record_introspection(config, catalog, &key.token, answer, now)
    }

    /// Calls `apply` with each header change an admission asks for (see
    /// [`Admission::for_each_update`]).
    pub fn for_each_update(&self, admission: &Admission, apply: impl FnMut(&str, Option<&str>)) {
        admission.for_each_update(&self.identity_headers, self.degraded_marker, apply);
    }

    /// Calls `apply` with each property an admission publishes (see
    /// [`Admission::for_each_published`]).
    pub fn for_each_published(&self, admission: &Admission, apply: impl FnMut(&str, &str)) {
        admission.for_each_published(&self.config.providers, apply);
    }

    /// Whether the rule that admitted a request asks the host to choose its route again.
    pub fn clears_route_cache(&self, admission: &Admission) -> bool {
        admission
            .rule
            .and_then(|rule| self.config.policy.rules.get(rule))
            .is_some_and(|rule| rule.clear_route_cache)
    }

    /// `provider`'s ended sessions, if it has back-channel logout.
    pub fn revoked_mut(&mut self, provider: usize) -> Option<&mut Revoked> {
        self.states.get_mut(provider)?.revoked.as_mut()
    }

    /// `provider`'s ended sessions, if it has back-channel logout.
    pub fn revoked(&self, provider: usize) -> Option<&Revoked> {
        self.states.get(provider)?.revoked.as_ref()
    }

    /// Validates a logout token posted to `provider`'s back-channel logout path, with the
    /// provider's keys (the replay check is the caller's).
    pub fn validate_logout_token(
        &self,
        provider: usize,
        token: &str,
        now: i64,
    ) -> Result<LogoutEvent, LogoutError> {
        let (Some(config), Some(state)) = (
            self.config.providers.get(provider),
            self.states.get(provider),
        ) else {
            return Err(LogoutError::Issuer);
        };
        let Some(settings) = &config.backchannel else {
            return Err(LogoutError::Issuer);
        };
        if state.keys().is_empty() {
            return Err(LogoutError::UnknownKey);
        }
        crate::revocation::logout_token::validate(config, settings, state.keys(), token, now)
    }

    /// The `scope` attribute of a 403 for `rule`: its scopes, space-separated.
    pub fn scope_string(&self, rule: Option<usize>) -> &str {
        rule.and_then(|rule| self.config.policy.rules.get(rule))
            .map_or("", |rule| rule.scope_string.as_str())
    }
}

#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;

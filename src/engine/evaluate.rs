//! Evaluating a rule for a request: its requirement, then its scopes and claim conditions.

use std::rc::Rc;

use crate::cache::Miss;
use crate::config::{Mode, OnIdpError};
use crate::jwt::Verified;
use crate::jwt::validate::Parsed;
use crate::policy::Unmatched;
use crate::policy::requirement::Fallback;
use crate::rejection::{MalformedToken, Rejection};
use crate::token_source;

use super::admission::{Admission, Identities, Identity};
use super::plan::{Group, Plan};
use super::provider::{IntrospectionFailure, precheck_for_introspection};
use super::{
    CacheUse, CallKey, Decision, Engine, Evaluation, InHand, IntrospectionCacheUse, Lookups,
    Request,
};

/// 2024-01-01T00:00:00Z: a host clock before it is broken (one host's clock truncates to 32
/// bits and reads a few seconds after 1970), and every `exp` would look far in the future.
pub const MIN_PLAUSIBLE_TIME: i64 = 1_704_067_200;

/// Where a requirement stands for a request.
enum Verdict {
    Satisfied(Identities),
    /// No token where the requirement looks.
    Missing,
    /// A token is present and refused; by this provider, if one judged it.
    Failed(Rejection, Option<usize>),
    /// This provider's IdP must be asked first.
    Call(CallKey),
}

/// The parts of the engine one evaluation reads and the caches it updates, borrowed apart
/// from the plans it walks.
struct Judges<'e> {
    engine_config: &'e crate::config::Config,
    sources: &'e [crate::config::TokenSource],
    states: &'e mut [super::provider::ProviderState],
    request: &'e Request,
    now: i64,
    in_hand: &'e [InHand],
    lookups: Lookups,
}

impl Engine {
    pub(super) fn evaluate(
        &mut self,
        request: &Request,
        now: i64,
        in_hand: &[InHand],
    ) -> Evaluation {
        let mut evaluation = Evaluation {
            decision: Decision::Deny(Rejection::NoRule),
            rule: None,
            provider: None,
            lookups: Lookups {
                cache: CacheUse::NotUsed,
                introspection: IntrospectionCacheUse::NotUsed,
                unknown_kid: None,
            },
        };
        let Some(rule) = self.config.policy.find(&request.attributes()) else {
            if self.config.policy.unmatched == Unmatched::Public {
                evaluation.decision = Decision::Allow(Admission {
                    rule: None,
                    identities: Identities::default(),
                    strips: Vec::new(),
                });
            }
            return evaluation;
        };
        evaluation.rule = Some(rule);
        let Some(plan) = self.plans.get(rule) else {
            return evaluation;
        };
        let mut judges = Judges {
            engine_config: &self.config,
            sources: &self.sources,
            states: &mut self.states,
            request,
            now,
            in_hand,
            lookups: evaluation.lookups.clone(),
        };
        let verdict = judges.satisfy(plan);
        evaluation.lookups = judges.lookups;
        evaluation.decision = match verdict {
            Verdict::Satisfied(identities) => {
                evaluation.provider = identities.iter().next().map(|identity| identity.provider);
                match self.authorize(rule, &identities) {
                    Ok(()) => Decision::Allow(Admission {
                        rule: Some(rule),
                        strips: self.strips(&identities, request),
                        identities,
                    }),
                    Err((rejection, provider)) => {
                        evaluation.provider = Some(provider);
                        Decision::Deny(rejection)
                    }
                }
            }
            Verdict::Missing => Decision::Deny(Rejection::MissingToken),
            Verdict::Failed(rejection, provider) => {
                evaluation.provider = provider;
                Decision::Deny(rejection)
            }
            Verdict::Call(key) => {
                evaluation.provider = Some(key.provider);
                Decision::Introspect(key)
            }
        };
        evaluation
    }

    /// The rule's scopes and conditions, on every identity (a degraded identity of an
    /// `introspect` provider has no claims to check: fail-open admits it as it is).
    fn authorize(&self, rule: usize, identities: &Identities) -> Result<(), (Rejection, usize)> {
        let Some(rule) = self.config.policy.rules.get(rule) else {
            return Ok(());
        };
        for identity in identities.iter() {
            let unverified = identity.degraded
                && self
                    .config
                    .providers
                    .get(identity.provider)
                    .is_some_and(|p| p.mode == Mode::Introspect);
            if unverified {
                continue;
            }
            if let Some(demand) = rule.demands.get(identity.provider) {
                demand
                    .check(identity.verified.facts)
                    .map_err(|rejection| (rejection, identity.provider))?;
            }
        }
        Ok(())
    }

    /// The token removals the identities' providers ask for.
    fn strips(
        &self,
        identities: &Identities,
        request: &Request,
    ) -> Vec<token_source::HeaderUpdate> {
        identities
            .iter()
            .filter_map(|identity| {
                let provider = self.config.providers.get(identity.provider)?;
                if !provider.forward.strip_token {
                    return None;
                }
                token_source::strip_update(&provider.token_source, request.headers())
            })
            .collect()
    }
}

/// An admission that never needs claims: introspect mode's degraded path.
fn unverified() -> Rc<Verified> {
    Rc::new(Verified::default())
}

impl Judges<'_> {
    fn satisfy(&mut self, plan: &Plan) -> Verdict {
        match plan {
            Plan::Public => Verdict::Satisfied(Identities::default()),
            Plan::All(members) => {
                let mut identities = Identities::default();
                for member in members {
                    match self.satisfy(member) {
                        Verdict::Satisfied(more) => identities.extend(more),
                        other => return other,
                    }
                }
                Verdict::Satisfied(identities)
            }
            Plan::Any {
                groups,
                nested,
                fallback,
            } => self.satisfy_any(groups, nested, *fallback),
        }
    }

    fn satisfy_any(&mut self, groups: &[Group], nested: &[Plan], fallback: Fallback) -> Verdict {
        let mut call = None;
        let mut failed = None;
        let mut present = false;
        let verdicts = groups
            .iter()
            .map(|group| (Some(group), None))
            .chain(nested.iter().map(|plan| (None, Some(plan))));
        for (group, plan) in verdicts {
            let verdict = match (group, plan) {
                (Some(group), _) => self.satisfy_group(group),
                (None, Some(plan)) => self.satisfy(plan),
                (None, None) => continue,
            };
            match verdict {
                Verdict::Satisfied(identities) => return Verdict::Satisfied(identities),
                Verdict::Missing => {}
                Verdict::Failed(rejection, provider) => {
                    present = true;
                    failed.get_or_insert((rejection, provider));
                }
                Verdict::Call(key) => {
                    present = true;
                    call.get_or_insert(key);
                }
            }
        }
        if let Some(key) = call {
            return Verdict::Call(key);
        }
        match (fallback, failed) {
            (Fallback::AllowMissingOrFailed, _) => Verdict::Satisfied(Identities::default()),
            (Fallback::AllowMissing, _) if !present => Verdict::Satisfied(Identities::default()),
            (_, Some((rejection, provider))) => Verdict::Failed(rejection, provider),
            (_, None) => Verdict::Missing,
        }
    }

    /// The token of the group's source, judged by the one provider of the group it belongs
    /// to: the one whose cache knows it, else the one its issuer (or, for a token that is
    /// not a JWT, taking opaque tokens) names.
    fn satisfy_group(&mut self, group: &Group) -> Verdict {
        let Some(source) = self.sources.get(group.source) else {
            return Verdict::Missing;
        };
        let raw = match token_source::extract_unchecked(source, self.request.headers()) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Verdict::Missing,
            Err(rejection) => return Verdict::Failed(rejection, None),
        };
        // The caches are looked up on the token's bytes before its character check: only
        // tokens that passed the check are ever stored (see ProviderState), so a known token
        // needs none, and the check costs a cache hit more than the lookup does.
        let checked = |known: bool| match known.then(|| std::str::from_utf8(raw).ok()).flatten() {
            Some(token) => Ok(token),
            None => token_source::check(raw),
        };
        let now = self.now;
        if let [only] = group.providers.as_slice() {
            let Some(state) = self.states.get_mut(*only) else {
                return Verdict::Missing;
            };
            let looked_up = state.look_up_verified(raw, now);
            return match checked(looked_up.is_ok()) {
                Ok(token) => self.judge(*only, token, None, Some(looked_up)),
                Err(rejection) => Verdict::Failed(rejection, None),
            };
        }
        let known = group
            .providers
            .iter()
            .copied()
            .find(|p| self.states.get_mut(*p).is_some_and(|s| s.knows(raw, now)));
        let token = match checked(known.is_some()) {
            Ok(token) => token,
            Err(rejection) => return Verdict::Failed(rejection, None),
        };
        if let Some(known) = known {
            return self.judge(known, token, None, None);
        }
        if token.len() > group.max_token_bytes {
            return Verdict::Failed(
                Rejection::TokenTooLarge {
                    length: token.len(),
                    limit: group.max_token_bytes,
                },
                None,
            );
        }
        if !token.contains('.') {
            return match group.opaque {
                Some(provider) => self.judge(provider, token, None, None),
                None => Verdict::Failed(Rejection::Malformed(MalformedToken::Structure), None),
            };
        }
        let parsed = match Parsed::new(token, group.max_token_bytes) {
            Ok(parsed) => parsed,
            Err(rejection) => return Verdict::Failed(rejection, None),
        };
        let issuer = match parsed.unverified_issuer() {
            Ok(issuer) => issuer,
            Err(rejection) => return Verdict::Failed(rejection, None),
        };
        let providers = &self.engine_config.providers;
        match group.providers.iter().copied().find(|p| {
            providers
                .get(*p)
                .is_some_and(|p| Some(p.issuer.as_str()) == issuer)
        }) {
            Some(provider) => self.judge(provider, token, Some(&parsed), None),
            None => Verdict::Failed(Rejection::WrongIssuer, None),
        }
    }

    /// One provider's verdict on one token. On an implausible clock nothing is admitted: a
    /// refusal stands (the token is bad whatever the time), an admission becomes 503. A token
    /// of an ended session is refused however it was verified (cache hits included).
    /// `looked_up`: the token's lookup in this provider's verified-token cache, if made.
    fn judge(
        &mut self,
        index: usize,
        token: &str,
        parsed: Option<&Parsed<'_>>,
        looked_up: Option<Result<Rc<Verified>, Miss>>,
    ) -> Verdict {
        let verdict = match self.judge_at_face_value(index, token, parsed, looked_up) {
            Verdict::Satisfied(_) if self.now < MIN_PLAUSIBLE_TIME => {
                Verdict::Failed(Rejection::ClockUnavailable, Some(index))
            }
            verdict => verdict,
        };
        match (
            verdict,
            self.states.get(index).and_then(|s| s.revoked.as_ref()),
        ) {
            (Verdict::Satisfied(identities), Some(revoked)) => {
                if revoked.full_until > self.now {
                    return Verdict::Failed(Rejection::RevocationsFull, Some(index));
                }
                if identities
                    .iter()
                    .any(|id| revoked.ends(&id.verified, self.now))
                {
                    return Verdict::Failed(Rejection::SessionEnded, Some(index));
                }
                Verdict::Satisfied(identities)
            }
            (verdict, _) => verdict,
        }
    }

    fn judge_at_face_value(
        &mut self,
        index: usize,
        token: &str,
        parsed: Option<&Parsed<'_>>,
        looked_up: Option<Result<Rc<Verified>, Miss>>,
    ) -> Verdict {
        let config = self.engine_config;
        let (Some(provider), Some(catalog), Some(state)) = (
            config.providers.get(index),
            config.policy.catalogs.get(index),
            self.states.get_mut(index),
        ) else {
            return Verdict::Missing;
        };
        let failed = |rejection| Verdict::Failed(rejection, Some(index));
        let local = match provider.mode {
            Mode::Introspect => match precheck_for_introspection(provider, token, parsed) {
                Ok(()) => None,
                Err(rejection) => return failed(rejection),
            },
            Mode::Jwt | Mode::Hybrid => {
                match state.validate_locally(
                    provider,
                    catalog,
                    token,
                    parsed,
                    looked_up,
                    self.now,
                    &mut self.lookups,
                ) {
                    Ok(verified) => Some(verified),
                    Err(rejection) => return failed(rejection),
                }
            }
        };
        let identity = |verified, degraded| {
            Verdict::Satisfied(Identities::one(Identity {
                provider: index,
                verified,
                degraded,
            }))
        };
        if provider.mode == Mode::Jwt {
            return identity(local.unwrap_or_else(unverified), false);
        }
        match state.introspection_verdict(index, token, self.in_hand, self.now, &mut self.lookups) {
            None => Verdict::Call(CallKey {
                provider: index,
                token: Rc::from(token),
            }),
            // In hybrid mode the authentic local claims are what is forwarded.
            Some(Ok(active)) => identity(local.unwrap_or(active), false),
            Some(Err(IntrospectionFailure::Refused(rejection))) => failed(rejection),
            Some(Err(IntrospectionFailure::Idp(failure))) => match provider.on_idp_error {
                OnIdpError::Deny => failed(Rejection::IdpUnavailable(failure)),
                OnIdpError::Allow => identity(local.unwrap_or_else(unverified), true),
            },
        }
    }
}

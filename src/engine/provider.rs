//! One provider's state on a worker: its key set and its caches. Caches belong to the
//! provider, so a verdict reached for one provider never serves another (the mistake behind
//! Oathkeeper CVE-2026-33496: a cache key without the introspection server).

use std::rc::Rc;

use crate::cache::{Miss, TokenCache};
use crate::config::{JwksSource, Mode, Provider};
use crate::introspection::{self, CallAnswer, Judgement};
use crate::jwks::{JwksError, KeySet, SkippedKey};
use crate::jwt::validate::{self, Parsed, Verified};
use crate::policy::facts::FactCatalog;
use crate::rejection::{IdpFailure, MalformedToken, Rejection};
use crate::revocation::Revoked;
use crate::token_source;

use super::{CacheUse, InHand, IntrospectionCacheUse, IntrospectionOutcome, Lookups};

/// A cached introspection verdict.
#[derive(Debug, Clone)]
enum Verdict {
    Active(Rc<Verified>),
    Refused(Rejection),
}

/// Why the introspection of a token did not admit it.
pub(super) enum IntrospectionFailure {
    /// The IdP (or a check of its answer) refused it.
    Refused(Rejection),
    /// The IdP could not answer.
    Idp(IdpFailure),
}

pub(super) struct ProviderState {
    /// Ended sessions, for a provider with back-channel logout.
    pub(super) revoked: Option<Revoked>,
    keys: KeySet,
    /// The JWKS document behind `keys`, to recognise a refresh that changed nothing.
    keys_document: Vec<u8>,
    verified: TokenCache<Rc<Verified>>,
    /// Whether `verified` may hold a token without `kid` (found as its algorithm's only key).
    kid_less_verified: bool,
    introspected: TokenCache<Verdict>,
}

impl ProviderState {
    pub(super) fn new(provider: &Provider) -> ProviderState {
        let keys = match &provider.jwks {
            Some(JwksSource::Inline(keys)) => keys.clone(),
            _ => KeySet::default(),
        };
        let verified = TokenCache::for_verified_tokens(match provider.mode {
            Mode::Introspect => 0,
            Mode::Jwt | Mode::Hybrid => provider.cache_max_entries,
        });
        let introspected = TokenCache::new(
            provider
                .introspection
                .as_ref()
                .map_or(0, |introspection| introspection.max_cache_entries),
        );
        ProviderState {
            revoked: provider.backchannel.as_ref().map(|_| Revoked::default()),
            keys,
            keys_document: Vec::new(),
            verified,
            kid_less_verified: false,
            introspected,
        }
    }

    pub(super) fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn cache_entries(&self) -> usize {
        self.verified.len() + self.introspected.len()
    }

    pub(super) fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// See [`super::Engine::install_keys`].
    pub(super) fn install_keys(
        &mut self,
        provider: &Provider,
        jwks: &[u8],
    ) -> Result<Vec<SkippedKey>, JwksError> {
        if !self.keys.is_empty() && self.keys_document == jwks {
            return Ok(Vec::new());
        }
        let (keys, skipped) = KeySet::parse_after(jwks, provider.algorithms, &self.keys)?;
        // A rotation that only adds a key leaves every cached verdict true: keeping them
        // spares each worker re-verifying its whole cache at once.
        if !keys.keeps_verdicts_of(&self.keys, self.kid_less_verified) {
            self.verified.clear();
            self.kid_less_verified = false;
        }
        self.keys = keys;
        self.keys_document = jwks.to_vec();
        Ok(skipped)
    }

    /// Whether a cache of this provider holds a live verdict on `token` (to choose the
    /// provider of a token without parsing it).
    pub(super) fn knows(&mut self, token: &[u8], now: i64) -> bool {
        self.verified.get(token, now).is_some() || self.introspected.get(token, now).is_some()
    }

    /// The verified-token cache's entry for `token`, or the miss to insert it after.
    pub(super) fn look_up_verified(
        &mut self,
        token: &[u8],
        now: i64,
    ) -> Result<Rc<Verified>, Miss> {
        self.verified.lookup(token, now).map(Rc::clone)
    }

    /// Local validation, from the verified-token cache or in full. `looked_up` is this
    /// token's lookup in that cache, when the caller made it.
    #[expect(
        clippy::too_many_arguments,
        reason = "what the caller already knows of the token, each optional, passed as it is"
    )]
    pub(super) fn validate_locally(
        &mut self,
        provider: &Provider,
        catalog: &FactCatalog,
        token: &str,
        parsed: Option<&Parsed<'_>>,
        looked_up: Option<Result<Rc<Verified>, Miss>>,
        now: i64,
        lookups: &mut Lookups,
    ) -> Result<Rc<Verified>, Rejection> {
        let looked_up = match looked_up {
            Some(looked_up) => looked_up,
            None => self.look_up_verified(token.as_bytes(), now),
        };
        let miss = match looked_up {
            Ok(verified) => {
                lookups.cache = CacheUse::Hit;
                return Ok(verified);
            }
            Err(miss) => miss,
        };
        if self.verified.is_enabled() {
            lookups.cache = CacheUse::Miss;
        }
        let verified = match parsed {
            Some(parsed) => validate::verify(provider, &self.keys, catalog, parsed, now),
            None => validate::validate(provider, &self.keys, catalog, token, now),
        };
        if verified == Err(Rejection::UnknownKey) {
            // Rare (rotation, junk): the worker decides on a refetch by this kid.
            let kid = Parsed::new(token, provider.max_token_bytes)
                .ok()
                .map(|parsed| Box::from(parsed.key_id().unwrap_or_default()));
            lookups.unknown_kid = kid;
        }
        let verified = Rc::new(verified?);
        self.kid_less_verified |= verified.without_kid;
        // A cache hit skips the request's character check (token_source::check), so only
        // tokens that pass it may be stored: a verified token does, being three base64url
        // segments (Parsed::new decodes them) and two dots.
        self.verified
            .insert_after(miss, token, Rc::clone(&verified), verified.expires_at, now);
        Ok(verified)
    }

    /// The IdP's verdict on `token`: from an answer in hand or the cache; `None`: ask the IdP.
    pub(super) fn introspection_verdict(
        &mut self,
        index: usize,
        token: &str,
        in_hand: &[InHand],
        now: i64,
        lookups: &mut Lookups,
    ) -> Option<Result<Rc<Verified>, IntrospectionFailure>> {
        let answered = in_hand
            .iter()
            .find(|hand| hand.key.provider == index && &*hand.key.token == token);
        if let Some(hand) = answered {
            return Some(match &hand.outcome {
                IntrospectionOutcome::Active(verified) => Ok(Rc::clone(verified)),
                IntrospectionOutcome::Refused(rejection) => {
                    Err(IntrospectionFailure::Refused(rejection.clone()))
                }
                IntrospectionOutcome::Failed(failure) => Err(IntrospectionFailure::Idp(*failure)),
            });
        }
        match self.introspected.get(token.as_bytes(), now) {
            Some(Verdict::Active(verified)) => {
                lookups.introspection = IntrospectionCacheUse::HitActive;
                Some(Ok(Rc::clone(verified)))
            }
            Some(Verdict::Refused(rejection)) => {
                lookups.introspection = IntrospectionCacheUse::HitRefused;
                Some(Err(IntrospectionFailure::Refused(rejection.clone())))
            }
            None => {
                lookups.introspection = IntrospectionCacheUse::Miss;
                None
            }
        }
    }

    /// See [`super::Engine::record_introspection`].
    pub(super) fn record_introspection(
        &mut self,
        provider: &Provider,
        catalog: &FactCatalog,
        token: &str,
        answer: CallAnswer<'_>,
        now: i64,
    ) -> IntrospectionOutcome {
        let Some(settings) = &provider.introspection else {
            return IntrospectionOutcome::Failed(IdpFailure::BadResponse);
        };
        // A cache hit skips the request's character check: only tokens that pass it are
        // stored (every call is about a token that passed it; this keeps it so whatever the
        // caller hands in).
        let cacheable = token_source::is_b64token(token.as_bytes());
        let ttl = i64::try_from(settings.cache_ttl_seconds).unwrap_or(i64::MAX);
        let negative_ttl = i64::try_from(settings.negative_cache_ttl_seconds).unwrap_or(i64::MAX);
        match introspection::judge(provider, catalog, answer, now) {
            Err(failure) => IntrospectionOutcome::Failed(failure),
            Ok(Judgement::Active(verified)) => {
                let verified = Rc::new(verified);
                if ttl > 0 && cacheable {
                    let until = now.saturating_add(ttl);
                    let until = verified.expires_at.map_or(until, |exp| until.min(exp));
                    self.introspected.insert(
                        token,
                        Verdict::Active(Rc::clone(&verified)),
                        Some(until),
                        now,
                    );
                }
                IntrospectionOutcome::Active(verified)
            }
            Ok(Judgement::Refused(rejection)) => {
                let ttl = if rejection == Rejection::Inactive {
                    negative_ttl
                } else {
                    ttl
                };
                if ttl > 0 && cacheable {
                    self.introspected.insert(
                        token,
                        Verdict::Refused(rejection.clone()),
                        Some(now.saturating_add(ttl)),
                        now,
                    );
                }
                IntrospectionOutcome::Refused(rejection)
            }
        }
    }
}

/// Introspection is a round trip to the IdP: tokens that cannot be this provider's access
/// tokens are refused without one. JWT-shaped tokens must parse; tokens that are not JWTs go
/// to the IdP only for a provider that takes opaque tokens.
pub(super) fn precheck_for_introspection(
    provider: &Provider,
    token: &str,
    parsed: Option<&Parsed<'_>>,
) -> Result<(), Rejection> {
    if token.len() > provider.max_token_bytes {
        return Err(Rejection::TokenTooLarge {
            length: token.len(),
            limit: provider.max_token_bytes,
        });
    }
    if parsed.is_some() {
        return Ok(());
    }
    match token.bytes().filter(|b| *b == b'.').count() {
        0 if provider.opaque => Ok(()),
        2 => Parsed::new(token, provider.max_token_bytes).map(|_| ()),
        4 => Err(Rejection::Malformed(MalformedToken::Encrypted)),
        _ => Err(Rejection::Malformed(MalformedToken::Structure)),
    }
}

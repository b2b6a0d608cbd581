//! The per-worker decision engine: request headers and the time in, a decision out.
//!
//! The engine never performs I/O. It answers [`Decision::Allow`], [`Decision::Deny`] or
//! [`Decision::Introspect`] (ask the IdP about this token); the host makes the call, hands the
//! answer to [`Engine::record_introspection`], and resumes each waiting request with
//! [`Engine::resume`]. Refetching keys on an unknown `kid` and waiting for keys that are not
//! loaded yet are the host's business too, driven by the [`Rejection`] the engine returns.

use std::rc::Rc;

use jwt_compact::UntrustedToken;

use crate::cache::TokenCache;
use crate::config::{Config, DEGRADED_HEADER, JwksSource, Mode, OnIdpError};
use crate::introspection::{self, CallAnswer, HttpCall, Judgement};
use crate::jwks::{JwksError, KeySet, SkippedKey};
use crate::rejection::{IdpFailure, MalformedToken, Rejection};
use crate::token_source::{self, HeaderList, HeaderUpdate};
use crate::validate::{self, Verified};

/// How a cache took part in a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    Hit,
    Miss,
    /// Not consulted (no token, caching disabled, or not this mode's step).
    NotUsed,
}

/// How the introspection cache took part in a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionCacheUse {
    HitActive,
    HitRefused,
    Miss,
    NotUsed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Admission),
    Deny(Rejection),
    /// The IdP must judge this token: make [`Engine::introspection_call`], then resume.
    Introspect(Rc<str>),
}

/// An admitted request and what to change in it before forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    verified: Rc<Verified>,
    strip: Option<HeaderUpdate>,
    /// Admitted without the IdP's verdict (`on_idp_error: allow`).
    degraded: bool,
}

impl Admission {
    /// Calls `apply` with each header change, in order: for every configured claim header
    /// either its value or `None` (remove a client-supplied copy), the degraded marker when
    /// fail-open is configured, then the token removal.
    pub fn for_each_update(&self, config: &Config, mut apply: impl FnMut(&str, Option<&str>)) {
        for (index, rule) in config.forward.claims_to_headers.iter().enumerate() {
            let value = self
                .verified
                .forwarded
                .get(index)
                .and_then(Option::as_deref);
            apply(&rule.header, value);
        }
        if config.on_idp_error == OnIdpError::Allow {
            apply(DEGRADED_HEADER, self.degraded.then_some("idp-unavailable"));
        }
        match &self.strip {
            Some(HeaderUpdate::Set(name, value)) => apply(name, Some(value)),
            Some(HeaderUpdate::Remove(name)) => apply(name, None),
            None => {}
        }
    }

    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    pub fn is_degraded(&self) -> bool {
        self.degraded
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub decision: Decision,
    /// The verified-token cache (local validation).
    pub cache: CacheUse,
    pub introspection_cache: IntrospectionCacheUse,
}

/// What an introspection call came to, for the requests waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntrospectionOutcome {
    Active(Rc<Verified>),
    Refused(Rejection),
    Failed(IdpFailure),
}

/// A cached introspection verdict.
#[derive(Debug, Clone)]
enum Verdict {
    Active(Rc<Verified>),
    Refused(Rejection),
}

pub struct Engine {
    config: Config,
    keys: KeySet,
    /// The JWKS document behind `keys`, to recognise a refresh that changed nothing.
    keys_document: Vec<u8>,
    verified_cache: TokenCache<Rc<Verified>>,
    introspection_cache: TokenCache<Verdict>,
}

/// An admitted request never needs a verified token for introspect mode's degraded path.
fn unverified() -> Rc<Verified> {
    Rc::new(Verified {
        expires_at: None,
        forwarded: Vec::new(),
    })
}

impl Engine {
    pub fn new(config: Config) -> Engine {
        let keys = match &config.jwks {
            Some(JwksSource::Inline(keys)) => keys.clone(),
            Some(JwksSource::Remote(_)) | None => KeySet::default(),
        };
        let verified_cache = TokenCache::for_verified_tokens(match config.mode {
            Mode::Introspect => 0,
            Mode::Jwt | Mode::Hybrid => config.cache_max_entries,
        });
        let introspection_cache = TokenCache::new(
            config
                .introspection
                .as_ref()
                .map_or(0, |introspection| introspection.max_cache_entries),
        );
        Engine {
            config,
            keys,
            keys_document: Vec::new(),
            verified_cache,
            introspection_cache,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Replaces the key set with a freshly fetched JWKS document. On error the previous keys
    /// stay in place. When the document changed, cached verdicts are dropped: a key may have
    /// been withdrawn. An unchanged document (the usual periodic refresh) changes nothing.
    pub fn install_keys(&mut self, jwks: &[u8]) -> Result<Vec<SkippedKey>, JwksError> {
        if !self.keys.is_empty() && self.keys_document == jwks {
            return Ok(Vec::new());
        }
        let (keys, skipped) = KeySet::parse(jwks, self.config.algorithms)?;
        self.keys = keys;
        self.keys_document = jwks.to_vec();
        self.verified_cache.clear();
        Ok(skipped)
    }

    /// Decides on a request. `now` is Unix time in seconds.
    pub fn authenticate(&mut self, headers: &HeaderList, now: i64) -> Evaluation {
        self.evaluate(headers, now, None)
    }

    /// The call that introspects `token`; `None` in `jwt` mode.
    pub fn introspection_call(&self, token: &str) -> Option<HttpCall> {
        self.config
            .introspection
            .as_ref()
            .map(|introspection| introspection::request(introspection, token))
    }

    /// Judges the IdP's answer about `token` and caches the verdict: positive answers for
    /// `cache_ttl_seconds` but never beyond the token's `exp`, `active: false` for
    /// `negative_cache_ttl_seconds`. Failures are not cached.
    pub fn record_introspection(
        &mut self,
        token: &str,
        answer: CallAnswer<'_>,
        now: i64,
    ) -> IntrospectionOutcome {
        let Some(introspection) = &self.config.introspection else {
            return IntrospectionOutcome::Failed(IdpFailure::BadResponse);
        };
        let ttl = i64::try_from(introspection.cache_ttl_seconds).unwrap_or(i64::MAX);
        let negative_ttl =
            i64::try_from(introspection.negative_cache_ttl_seconds).unwrap_or(i64::MAX);
        match introspection::judge(&self.config, answer, now) {
            Err(failure) => IntrospectionOutcome::Failed(failure),
            Ok(Judgement::Active(verified)) => {
                let verified = Rc::new(verified);
                if ttl > 0 {
                    let until = now.saturating_add(ttl);
                    let until = verified.expires_at.map_or(until, |exp| until.min(exp));
                    self.introspection_cache.insert(
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
                if ttl > 0 {
                    self.introspection_cache.insert(
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

    /// Decides on a request that waited for an introspection of its token.
    pub fn resume(
        &mut self,
        headers: &HeaderList,
        outcome: &IntrospectionOutcome,
        now: i64,
    ) -> Evaluation {
        self.evaluate(headers, now, Some(outcome))
    }

    fn evaluate(
        &mut self,
        headers: &HeaderList,
        now: i64,
        outcome: Option<&IntrospectionOutcome>,
    ) -> Evaluation {
        let mut evaluation = Evaluation {
            decision: Decision::Deny(Rejection::MissingToken),
            cache: CacheUse::NotUsed,
            introspection_cache: IntrospectionCacheUse::NotUsed,
        };
        let token = match token_source::extract(&self.config.token_source, headers) {
            Ok(Some(token)) => token,
            Ok(None) => return evaluation,
            Err(rejection) => {
                evaluation.decision = Decision::Deny(rejection);
                return evaluation;
            }
        };
        let local = match self.config.mode {
            Mode::Introspect => match precheck_for_introspection(&self.config, token) {
                Ok(()) => unverified(),
                Err(rejection) => {
                    evaluation.decision = Decision::Deny(rejection);
                    return evaluation;
                }
            },
            Mode::Jwt | Mode::Hybrid => match self.validate_locally(token, now, &mut evaluation) {
                Ok(verified) => verified,
                Err(rejection) => {
                    evaluation.decision = Decision::Deny(rejection);
                    return evaluation;
                }
            },
        };
        let verdict = match self.config.mode {
            Mode::Jwt => Ok(local),
            Mode::Introspect | Mode::Hybrid => {
                match self.introspection_verdict(token, outcome, now, &mut evaluation) {
                    None => {
                        evaluation.decision = Decision::Introspect(Rc::from(token));
                        return evaluation;
                    }
                    // In hybrid mode the authentic local claims are forwarded.
                    Some(Ok(active)) if self.config.mode == Mode::Introspect => Ok(active),
                    Some(Ok(_)) => Ok(local),
                    Some(Err(IntrospectionFailure::Refused(rejection))) => Err(rejection),
                    Some(Err(IntrospectionFailure::Idp(failure))) => {
                        match self.config.on_idp_error {
                            OnIdpError::Deny => Err(Rejection::IdpUnavailable(failure)),
                            OnIdpError::Allow => {
                                evaluation.decision = self.admit(local, headers, true);
                                return evaluation;
                            }
                        }
                    }
                }
            }
        };
        evaluation.decision = match verdict {
            Ok(verified) => self.admit(verified, headers, false),
            Err(rejection) => Decision::Deny(rejection),
        };
        evaluation
    }

    fn validate_locally(
        &mut self,
        token: &str,
        now: i64,
        evaluation: &mut Evaluation,
    ) -> Result<Rc<Verified>, Rejection> {
        if let Some(verified) = self.verified_cache.get(token, now) {
            evaluation.cache = CacheUse::Hit;
            return Ok(Rc::clone(verified));
        }
        if self.verified_cache.is_enabled() {
            evaluation.cache = CacheUse::Miss;
        }
        let verified = Rc::new(validate::validate(&self.config, &self.keys, token, now)?);
        self.verified_cache
            .insert(token, Rc::clone(&verified), verified.expires_at, now);
        Ok(verified)
    }

    /// The IdP's verdict from the outcome just received or the cache; `None` = ask the IdP.
    fn introspection_verdict(
        &mut self,
        token: &str,
        outcome: Option<&IntrospectionOutcome>,
        now: i64,
        evaluation: &mut Evaluation,
    ) -> Option<Result<Rc<Verified>, IntrospectionFailure>> {
        match outcome {
            Some(IntrospectionOutcome::Active(verified)) => return Some(Ok(Rc::clone(verified))),
            Some(IntrospectionOutcome::Refused(rejection)) => {
                return Some(Err(IntrospectionFailure::Refused(rejection.clone())));
            }
            Some(IntrospectionOutcome::Failed(failure)) => {
                return Some(Err(IntrospectionFailure::Idp(*failure)));
            }
            None => {}
        }
        match self.introspection_cache.get(token, now) {
            Some(Verdict::Active(verified)) => {
                evaluation.introspection_cache = IntrospectionCacheUse::HitActive;
                Some(Ok(Rc::clone(verified)))
            }
            Some(Verdict::Refused(rejection)) => {
                evaluation.introspection_cache = IntrospectionCacheUse::HitRefused;
                Some(Err(IntrospectionFailure::Refused(rejection.clone())))
            }
            None => {
                evaluation.introspection_cache = IntrospectionCacheUse::Miss;
                None
            }
        }
    }

    fn admit(&self, verified: Rc<Verified>, headers: &HeaderList, degraded: bool) -> Decision {
        let strip = if self.config.forward.strip_token {
            token_source::strip_update(&self.config.token_source, headers)
        } else {
            None
        };
        Decision::Allow(Admission {
            verified,
            strip,
            degraded,
        })
    }
}

enum IntrospectionFailure {
    Refused(Rejection),
    Idp(IdpFailure),
}

/// Introspection is a round trip to the IdP: tokens that cannot be access tokens at all are
/// refused without one. Opaque tokens (no dots) go to the IdP; JWT-shaped tokens must parse.
fn precheck_for_introspection(config: &Config, token: &str) -> Result<(), Rejection> {
    if token.len() > config.max_token_bytes {
        return Err(Rejection::TokenTooLarge {
            length: token.len(),
            limit: config.max_token_bytes,
        });
    }
    match token.bytes().filter(|b| *b == b'.').count() {
        0 => Ok(()),
        2 => UntrustedToken::new(token)
            .map(|_| ())
            .map_err(|_| Rejection::Malformed(MalformedToken::Structure)),
        4 => Err(Rejection::Malformed(MalformedToken::Encrypted)),
        _ => Err(Rejection::Malformed(MalformedToken::Structure)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::algorithm::Algorithm;
    use crate::config;
    use crate::introspection::CallAnswer;
    use crate::rejection::{IdpFailure, RequestProblem};
    use crate::testkit::{TestKey, TokenSpec, jwks, tamper_signature};

    const NOW: i64 = 1_750_000_000;
    const ISSUER: &str = "https://idp.example/realms/tokengate";

    fn engine(extra: serde_json::Value) -> Engine {
        let mut config = json!({
            "issuer": ISSUER,
            "audiences": ["api"],
            "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk("a", Some("RS256"))])},
            "forward": {"claims_to_headers": [{"claim": "sub", "header": "x-jwt-sub"}]},
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            config[k] = v;
        }
        Engine::new(config::parse(config.to_string().as_bytes()).unwrap())
    }

    fn token(exp: i64) -> String {
        TokenSpec::access_token(Algorithm::Rs256, "a", ISSUER, "api", NOW)
            .claim("exp", exp)
            .sign(TestKey::rsa_a())
    }

    fn request(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        let mut headers = vec![(":path".to_owned(), b"/orders?x=1".to_vec())];
        headers.extend(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
        );
        headers
    }

    fn updates(engine: &Engine, evaluation: &Evaluation) -> Vec<(String, Option<String>)> {
        let Decision::Allow(admission) = &evaluation.decision else {
            panic!("expected allow, got {evaluation:?}");
        };
        let mut out = Vec::new();
        admission.for_each_update(engine.config(), |name, value| {
            out.push((name.to_owned(), value.map(str::to_owned)))
        });
        out
    }

    #[test]
    fn second_request_is_a_cache_hit_with_the_same_headers() {
        let mut engine = engine(json!({}));
        let bearer = format!("Bearer {}", token(NOW + 600));
        let req = request(&[("authorization", &bearer), ("x-jwt-sub", "spoofed")]);
        let first = engine.authenticate(&req, NOW);
        assert_eq!(first.cache, CacheUse::Miss);
        let second = engine.authenticate(&req, NOW + 1);
        assert_eq!(second.cache, CacheUse::Hit);
        let expected = vec![(
            "x-jwt-sub".to_owned(),
            Some("f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c".to_owned()),
        )];
        assert_eq!(updates(&engine, &first), expected);
        assert_eq!(updates(&engine, &second), expected);
    }

    #[test]
    fn cached_tokens_never_outlive_exp() {
        let mut engine = engine(json!({}));
        let bearer = format!("Bearer {}", token(NOW + 10));
        let req = request(&[("authorization", &bearer)]);
        assert_eq!(engine.authenticate(&req, NOW).cache, CacheUse::Miss);
        assert_eq!(engine.authenticate(&req, NOW + 9).cache, CacheUse::Hit);
        // At exp the entry is gone; within the skew the token is re-validated and admitted,
        // beyond it refused.
        let at_exp = engine.authenticate(&req, NOW + 10);
        assert_eq!(at_exp.cache, CacheUse::Miss);
        assert!(matches!(at_exp.decision, Decision::Allow(_)));
        let late = engine.authenticate(&req, NOW + 41);
        assert_eq!(late.decision, Decision::Deny(Rejection::Expired));
    }

    #[test]
    fn rejections_are_not_cached_and_keys_swap_clears_the_cache() {
        let mut engine = engine(json!({}));
        let bad = format!("Bearer {}", tamper_signature(&token(NOW + 600)));
        let req = request(&[("authorization", &bad)]);
        for _ in 0..2 {
            let evaluation = engine.authenticate(&req, NOW);
            assert_eq!(evaluation.decision, Decision::Deny(Rejection::BadSignature));
            assert_eq!(evaluation.cache, CacheUse::Miss);
        }
        let good = format!("Bearer {}", token(NOW + 600));
        let req = request(&[("authorization", &good)]);
        engine.authenticate(&req, NOW);
        assert_eq!(engine.authenticate(&req, NOW).cache, CacheUse::Hit);
        // The key is withdrawn: the cached verdict must go with it.
        let other = jwks(&[TestKey::rsa_b().public_jwk("b", Some("RS256"))]).to_string();
        engine.install_keys(other.as_bytes()).unwrap();
        let after = engine.authenticate(&req, NOW);
        assert_eq!(after.decision, Decision::Deny(Rejection::UnknownKey));
        // A broken key set leaves the current keys in place.
        assert!(engine.install_keys(b"{}").is_err());
        assert_eq!(engine.key_count(), 1);
        // Re-installing the same document keeps the cache.
        let rotated = format!(
            "Bearer {}",
            TokenSpec::access_token(Algorithm::Rs256, "b", ISSUER, "api", NOW)
                .sign(TestKey::rsa_b())
        );
        let req = request(&[("authorization", &rotated)]);
        assert_eq!(engine.authenticate(&req, NOW).cache, CacheUse::Miss);
        engine.install_keys(other.as_bytes()).unwrap();
        assert_eq!(engine.authenticate(&req, NOW).cache, CacheUse::Hit);
    }

    #[test]
    fn missing_and_malformed_requests() {
        let mut engine = engine(json!({}));
        let cases = [
            (vec![], Rejection::MissingToken),
            (
                vec![("authorization", "Basic Zm9vOmJhcg==")],
                Rejection::MissingToken,
            ),
            (
                vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
                Rejection::InvalidRequest(RequestProblem::MultipleTokens),
            ),
            (
                vec![("authorization", "Bearer ")],
                Rejection::InvalidRequest(RequestProblem::EmptyToken),
            ),
        ];
        for (pairs, expected) in cases {
            let evaluation = engine.authenticate(&request(&pairs), NOW);
            assert_eq!(evaluation.decision, Decision::Deny(expected));
            assert_eq!(evaluation.cache, CacheUse::NotUsed);
        }
    }

    #[test]
    fn token_is_stripped_when_asked() {
        let mut engine = engine(json!({"forward": {"strip_authorization": true}}));
        let bearer = format!("Bearer {}", token(NOW + 600));
        let evaluation = engine.authenticate(&request(&[("authorization", &bearer)]), NOW);
        assert_eq!(
            updates(&engine, &evaluation),
            vec![("authorization".to_owned(), None)]
        );

        let mut engine = engine_with_query();
        let path = format!("/orders?access_token={}&page=2", token(NOW + 600));
        let headers = vec![(":path".to_owned(), path.into_bytes())];
        let evaluation = engine.authenticate(&headers, NOW);
        assert_eq!(
            updates(&engine, &evaluation),
            vec![(":path".to_owned(), Some("/orders?page=2".to_owned()))]
        );
    }

    fn engine_with_query() -> Engine {
        engine(json!({
            "token_source": {"query": "access_token"},
            "forward": {"strip_authorization": true},
        }))
    }

    #[test]
    fn disabled_cache_is_not_used() {
        let mut engine = engine(json!({"cache": {"max_entries": 0}}));
        let bearer = format!("Bearer {}", token(NOW + 600));
        let req = request(&[("authorization", &bearer)]);
        for _ in 0..2 {
            let evaluation = engine.authenticate(&req, NOW);
            assert!(matches!(evaluation.decision, Decision::Allow(_)));
            assert_eq!(evaluation.cache, CacheUse::NotUsed);
        }
    }

    fn introspecting(mode: &str, extra: serde_json::Value) -> Engine {
        let mut settings = json!({
            "mode": mode,
            "introspection": {
                "cluster": "idp", "authority": "idp", "path": "/introspect",
                "client_id": "gateway", "client_secret": "secret",
                "cache_ttl_seconds": 30, "negative_cache_ttl_seconds": 5
            },
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            settings[k] = v;
        }
        if mode == "introspect" {
            settings["jwks"] = serde_json::Value::Null;
        }
        let mut config = json!({
            "issuer": ISSUER,
            "audiences": ["api"],
            "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk("a", Some("RS256"))])},
            "forward": {"claims_to_headers": [{"claim": "sub", "header": "x-jwt-sub"}]},
        });
        for (k, v) in settings.as_object().cloned().unwrap_or_default() {
            if v.is_null() {
                config.as_object_mut().unwrap().remove(&k);
            } else {
                config[k] = v;
            }
        }
        Engine::new(config::parse(config.to_string().as_bytes()).unwrap())
    }

    fn answer(body: serde_json::Value) -> String {
        body.to_string()
    }

    fn ok(body: &str) -> CallAnswer<'_> {
        CallAnswer {
            status: Some(200),
            body: body.as_bytes(),
        }
    }

    #[test]
    fn introspect_mode_asks_the_idp_once_and_caches() {
        let mut engine = introspecting("introspect", json!({}));
        for (garbage, expected) in [
            (
                "a.b.c.d.e",
                Rejection::Malformed(crate::rejection::MalformedToken::Encrypted),
            ),
            (
                "x.y",
                Rejection::Malformed(crate::rejection::MalformedToken::Structure),
            ),
            (
                "not.a.jwt",
                Rejection::Malformed(crate::rejection::MalformedToken::Structure),
            ),
        ] {
            let bearer = format!("Bearer {garbage}");
            let evaluation = engine.authenticate(&request(&[("authorization", &bearer)]), NOW);
            assert_eq!(evaluation.decision, Decision::Deny(expected), "{garbage}");
        }
        let token = token(NOW + 600);
        let bearer = format!("Bearer {token}");
        let req = request(&[("authorization", &bearer), ("x-jwt-sub", "spoofed")]);
        let first = engine.authenticate(&req, NOW);
        assert_eq!(
            first.decision,
            Decision::Introspect(Rc::from(token.as_str()))
        );
        assert_eq!(first.introspection_cache, IntrospectionCacheUse::Miss);
        let call = engine.introspection_call(&token).unwrap();
        assert_eq!(call.cluster, "idp");

        let body =
            answer(json!({"active": true, "sub": "from-idp", "exp": NOW + 20, "iss": ISSUER}));
        let outcome = engine.record_introspection(&token, ok(&body), NOW);
        assert!(matches!(outcome, IntrospectionOutcome::Active(_)));
        let resumed = engine.resume(&req, &outcome, NOW);
        assert_eq!(
            updates(&engine, &resumed),
            vec![("x-jwt-sub".to_owned(), Some("from-idp".to_owned()))]
        );
        // Cached, but never beyond exp (NOW + 20 < NOW + 30).
        let again = engine.authenticate(&req, NOW + 19);
        assert_eq!(again.introspection_cache, IntrospectionCacheUse::HitActive);
        assert!(matches!(again.decision, Decision::Allow(_)));
        let later = engine.authenticate(&req, NOW + 20);
        assert_eq!(later.introspection_cache, IntrospectionCacheUse::Miss);
        assert!(matches!(later.decision, Decision::Introspect(_)));
    }

    #[test]
    fn inactive_is_cached_briefly_and_failures_not_at_all() {
        let mut engine = introspecting("introspect", json!({}));
        let token = token(NOW + 600);
        let bearer = format!("Bearer {token}");
        let req = request(&[("authorization", &bearer)]);
        let inactive = answer(json!({"active": false}));
        let outcome = engine.record_introspection(&token, ok(&inactive), NOW);
        assert_eq!(outcome, IntrospectionOutcome::Refused(Rejection::Inactive));
        assert_eq!(
            engine.resume(&req, &outcome, NOW).decision,
            Decision::Deny(Rejection::Inactive)
        );
        let cached = engine.authenticate(&req, NOW + 4);
        assert_eq!(
            cached.introspection_cache,
            IntrospectionCacheUse::HitRefused
        );
        assert_eq!(cached.decision, Decision::Deny(Rejection::Inactive));
        assert!(matches!(
            engine.authenticate(&req, NOW + 5).decision,
            Decision::Introspect(_)
        ));

        let timeout = CallAnswer {
            status: Some(504),
            body: b"upstream request timeout",
        };
        let outcome = engine.record_introspection(&token, timeout, NOW + 5);
        assert_eq!(outcome, IntrospectionOutcome::Failed(IdpFailure::Timeout));
        let denied = engine.resume(&req, &outcome, NOW + 5);
        assert_eq!(
            denied.decision,
            Decision::Deny(Rejection::IdpUnavailable(IdpFailure::Timeout))
        );
        assert!(matches!(
            engine.authenticate(&req, NOW + 5).decision,
            Decision::Introspect(_)
        ));
    }

    #[test]
    fn fail_open_marks_the_request() {
        let mut engine = introspecting("hybrid", json!({"on_idp_error": "allow"}));
        let token = token(NOW + 600);
        let bearer = format!("Bearer {token}");
        let req = request(&[
            ("authorization", &bearer),
            ("x-tokengate-degraded", "forged"),
        ]);
        let outcome = IntrospectionOutcome::Failed(IdpFailure::Unreachable);
        let evaluation = engine.resume(&req, &outcome, NOW);
        let Decision::Allow(admission) = &evaluation.decision else {
            panic!("fail-open admits");
        };
        assert!(admission.is_degraded());
        assert_eq!(
            updates(&engine, &evaluation),
            vec![
                (
                    "x-jwt-sub".to_owned(),
                    Some("f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c".to_owned())
                ),
                (
                    "x-tokengate-degraded".to_owned(),
                    Some("idp-unavailable".to_owned())
                ),
            ]
        );
        // A verified admission clears a client-supplied marker.
        let active = answer(json!({"active": true}));
        let outcome = engine.record_introspection(&token, ok(&active), NOW);
        let evaluation = engine.resume(&req, &outcome, NOW);
        assert_eq!(
            updates(&engine, &evaluation)[1],
            ("x-tokengate-degraded".to_owned(), None)
        );
    }

    #[test]
    fn hybrid_validates_locally_before_any_callout() {
        let mut engine = introspecting("hybrid", json!({}));
        let forged = format!("Bearer {}", tamper_signature(&token(NOW + 600)));
        let evaluation = engine.authenticate(&request(&[("authorization", &forged)]), NOW);
        assert_eq!(evaluation.decision, Decision::Deny(Rejection::BadSignature));
        assert_eq!(
            evaluation.introspection_cache,
            IntrospectionCacheUse::NotUsed
        );
        let expired = format!("Bearer {}", token(NOW - 600));
        let evaluation = engine.authenticate(&request(&[("authorization", &expired)]), NOW);
        assert_eq!(evaluation.decision, Decision::Deny(Rejection::Expired));

        let token = token(NOW + 600);
        let bearer = format!("Bearer {token}");
        let req = request(&[("authorization", &bearer)]);
        assert!(matches!(
            engine.authenticate(&req, NOW).decision,
            Decision::Introspect(_)
        ));
        // The IdP says active; the local, signed claims are what is forwarded.
        let active = answer(json!({"active": true, "sub": "idp-view"}));
        let outcome = engine.record_introspection(&token, ok(&active), NOW);
        let evaluation = engine.resume(&req, &outcome, NOW);
        assert_eq!(
            evaluation.cache,
            CacheUse::Hit,
            "local validation is cached"
        );
        assert_eq!(
            updates(&engine, &evaluation),
            vec![(
                "x-jwt-sub".to_owned(),
                Some("f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c".to_owned())
            )]
        );
        // With both caches warm, no callout and no signature check.
        let warm = engine.authenticate(&req, NOW + 1);
        assert_eq!(warm.cache, CacheUse::Hit);
        assert_eq!(warm.introspection_cache, IntrospectionCacheUse::HitActive);
        // Revoked after the positive entry expired: refused.
        let revoked = answer(json!({"active": false}));
        let outcome = engine.record_introspection(&token, ok(&revoked), NOW + 31);
        assert_eq!(
            engine.resume(&req, &outcome, NOW + 31).decision,
            Decision::Deny(Rejection::Inactive)
        );
    }
}

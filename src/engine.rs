//! The per-worker decision engine: request headers and the time in, a decision out.
//!
//! The engine never performs I/O. The host glue feeds it key sets and requests and carries out
//! what it decides; refetching keys on an unknown `kid` and waiting for keys that are not
//! loaded yet are the host's business, driven by the [`Rejection`] the engine returns.

use std::rc::Rc;

use crate::cache::TokenCache;
use crate::config::{Config, JwksSource};
use crate::jwks::{JwksError, KeySet, SkippedKey};
use crate::rejection::Rejection;
use crate::token_source::{self, HeaderList, HeaderUpdate};
use crate::validate::{self, Verified};

/// How the verified-token cache took part in a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    Hit,
    Miss,
    /// No token to look up, or caching disabled.
    NotUsed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Admission),
    Deny(Rejection),
}

/// An admitted request and what to change in it before forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    verified: Rc<Verified>,
    strip: Option<HeaderUpdate>,
}

impl Admission {
    /// Calls `apply` with each header change, in order: for every configured claim header
    /// either its value or `None` (remove a client-supplied copy), then the token removal.
    pub fn for_each_update(&self, config: &Config, mut apply: impl FnMut(&str, Option<&str>)) {
        for (rule, value) in config
            .forward
            .claims_to_headers
            .iter()
            .zip(self.verified.forwarded.iter())
        {
            apply(&rule.header, value.as_deref());
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub decision: Decision,
    pub cache: CacheUse,
}

pub struct Engine {
    config: Config,
    keys: KeySet,
    /// The JWKS document behind `keys`, to recognise a refresh that changed nothing.
    keys_document: Vec<u8>,
    cache: TokenCache<Rc<Verified>>,
}

impl Engine {
    pub fn new(config: Config) -> Engine {
        let keys = match &config.jwks {
            JwksSource::Inline(keys) => keys.clone(),
            JwksSource::Remote(_) => KeySet::default(),
        };
        let cache = TokenCache::new(config.cache_max_entries);
        Engine {
            config,
            keys,
            keys_document: Vec::new(),
            cache,
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
        self.cache.clear();
        Ok(skipped)
    }

    /// Decides on a request. `now` is Unix time in seconds.
    pub fn authenticate(&mut self, headers: &HeaderList, now: i64) -> Evaluation {
        let token = match token_source::extract(&self.config.token_source, headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Self::deny(Rejection::MissingToken, CacheUse::NotUsed),
            Err(rejection) => return Self::deny(rejection, CacheUse::NotUsed),
        };
        let caching = self.cache.is_enabled();
        if let Some(verified) = self.cache.get(token, now) {
            let verified = Rc::clone(verified);
            return self.admit(verified, headers, CacheUse::Hit);
        }
        let cache_use = if caching {
            CacheUse::Miss
        } else {
            CacheUse::NotUsed
        };
        match validate::validate(&self.config, &self.keys, token, now) {
            Ok(verified) => {
                let verified = Rc::new(verified);
                self.cache
                    .insert(token, Rc::clone(&verified), verified.expires_at, now);
                self.admit(verified, headers, cache_use)
            }
            Err(rejection) => Self::deny(rejection, cache_use),
        }
    }

    fn admit(&self, verified: Rc<Verified>, headers: &HeaderList, cache: CacheUse) -> Evaluation {
        let strip = if self.config.forward.strip_token {
            token_source::strip_update(&self.config.token_source, headers)
        } else {
            None
        };
        Evaluation {
            decision: Decision::Allow(Admission { verified, strip }),
            cache,
        }
    }

    fn deny(rejection: Rejection, cache: CacheUse) -> Evaluation {
        Evaluation {
            decision: Decision::Deny(rejection),
            cache,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::algorithm::Algorithm;
    use crate::config;
    use crate::rejection::RequestProblem;
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
            .sign(&TestKey::rsa_a())
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
                .sign(&TestKey::rsa_b())
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
}

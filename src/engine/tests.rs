//! The engine on single-issuer configurations: caches, refusals, introspection and hybrid.
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

fn request(pairs: &[(&str, &str)]) -> Request {
    let mut headers = vec![(":path".to_owned(), b"/orders?x=1".to_vec())];
    headers.extend(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    Request::with_headers(headers)
}

fn updates(engine: &Engine, evaluation: &Evaluation) -> Vec<(String, Option<String>)> {
    let Decision::Allow(admission) = &evaluation.decision else {
        panic!("expected allow, got {evaluation:?}");
    };
    let mut out = Vec::new();
    engine.for_each_update(admission, |name, value| {
        out.push((name.to_owned(), value.map(str::to_owned)))
    });
    out
}

/// The introspection of `token` at the single provider.
fn key(token: &str) -> CallKey {
    CallKey {
        provider: 0,
        token: Rc::from(token),
    }
}

fn hand(token: &str, outcome: IntrospectionOutcome) -> [InHand; 1] {
    [InHand {
        key: key(token),
        outcome,
    }]
}

#[test]
fn second_request_is_a_cache_hit_with_the_same_headers() {
    let mut engine = engine(json!({}));
    let bearer = format!("Bearer {}", token(NOW + 600));
    let req = request(&[("authorization", &bearer), ("x-jwt-sub", "spoofed")]);
    let first = engine.authenticate(&req, NOW);
    assert_eq!(first.lookups.cache, CacheUse::Miss);
    let second = engine.authenticate(&req, NOW + 1);
    assert_eq!(second.lookups.cache, CacheUse::Hit);
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
    assert_eq!(engine.authenticate(&req, NOW).lookups.cache, CacheUse::Miss);
    assert_eq!(
        engine.authenticate(&req, NOW + 9).lookups.cache,
        CacheUse::Hit
    );
    // At exp the entry is gone; within the skew the token is re-validated and admitted,
    // beyond it refused.
    let at_exp = engine.authenticate(&req, NOW + 10);
    assert_eq!(at_exp.lookups.cache, CacheUse::Miss);
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
        assert_eq!(evaluation.lookups.cache, CacheUse::Miss);
    }
    let good = format!("Bearer {}", token(NOW + 600));
    let req = request(&[("authorization", &good)]);
    engine.authenticate(&req, NOW);
    assert_eq!(engine.authenticate(&req, NOW).lookups.cache, CacheUse::Hit);
    // The key is withdrawn: the cached verdict must go with it.
    let other = jwks(&[TestKey::rsa_b().public_jwk("b", Some("RS256"))]).to_string();
    engine.install_keys(0, other.as_bytes()).unwrap();
    let after = engine.authenticate(&req, NOW);
    assert_eq!(after.decision, Decision::Deny(Rejection::UnknownKey));
    // A broken key set leaves the current keys in place.
    assert!(engine.install_keys(0, b"{}").is_err());
    assert_eq!(engine.key_count(0), 1);
    // Re-installing the same document keeps the cache.
    let rotated = format!(
        "Bearer {}",
        TokenSpec::access_token(Algorithm::Rs256, "b", ISSUER, "api", NOW).sign(TestKey::rsa_b())
    );
    let req = request(&[("authorization", &rotated)]);
    assert_eq!(engine.authenticate(&req, NOW).lookups.cache, CacheUse::Miss);
    engine.install_keys(0, other.as_bytes()).unwrap();
    assert_eq!(engine.authenticate(&req, NOW).lookups.cache, CacheUse::Hit);
}

/// A new key set keeps the cached verdicts only when none of them changes: a rotation that
/// adds a key keeps them; one that changes a key's material, drops the key, or makes a
/// `kid`-less token's lookup ambiguous clears them, and the token is judged by the new set.
#[test]
fn a_new_key_set_keeps_the_cache_only_if_no_verdict_changes() {
    let a = || TestKey::rsa_a().public_jwk("a", Some("RS256"));
    let b = || TestKey::rsa_b().public_jwk("b", Some("RS256"));
    let a_changed = || TestKey::rsa_b().public_jwk("a", Some("RS256"));
    let with_kid = token(NOW + 600);
    let mut spec = TokenSpec::access_token(Algorithm::Rs256, "a", ISSUER, "api", NOW);
    spec.header.remove("kid");
    let without_kid = spec.sign(TestKey::rsa_a());
    // (what changes, the cached token, the new set's keys, its lookup after, its refusal)
    type Case<'t> = (
        &'t str,
        &'t str,
        Vec<serde_json::Value>,
        CacheUse,
        Option<Rejection>,
    );
    let cases: [Case<'_>; 5] = [
        (
            "a key added",
            &with_kid,
            vec![a(), b()],
            CacheUse::Hit,
            None,
        ),
        (
            "the same key again",
            &without_kid,
            vec![a()],
            CacheUse::Hit,
            None,
        ),
        (
            "a's material changed",
            &with_kid,
            vec![a_changed(), b()],
            CacheUse::Miss,
            Some(Rejection::BadSignature),
        ),
        (
            "a dropped",
            &with_kid,
            vec![b()],
            CacheUse::Miss,
            Some(Rejection::UnknownKey),
        ),
        (
            "no kid, now two keys",
            &without_kid,
            vec![a(), b()],
            CacheUse::Miss,
            Some(Rejection::UnknownKey),
        ),
    ];
    for (label, token, keys, cache, refusal) in cases {
        let mut engine = engine(json!({}));
        let bearer = format!("Bearer {token}");
        let req = request(&[("authorization", &bearer)]);
        assert!(
            matches!(engine.authenticate(&req, NOW).decision, Decision::Allow(_)),
            "{label}"
        );
        assert_eq!(
            engine.authenticate(&req, NOW).lookups.cache,
            CacheUse::Hit,
            "{label}"
        );
        // Another document (member order differs from the first), the same or other keys.
        let mut reordered = keys.clone();
        reordered.reverse();
        reordered.push(TestKey::p256().public_jwk("ec", Some("ES256")));
        engine
            .install_keys(0, jwks(&reordered).to_string().as_bytes())
            .unwrap();
        let after = engine.authenticate(&req, NOW);
        assert_eq!(after.lookups.cache, cache, "{label}");
        match refusal {
            None => assert!(
                matches!(after.decision, Decision::Allow(_)),
                "{label}: {after:?}"
            ),
            Some(rejection) => assert_eq!(after.decision, Decision::Deny(rejection), "{label}"),
        }
    }
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
        assert_eq!(evaluation.lookups.cache, CacheUse::NotUsed);
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
    let evaluation = engine.authenticate(&Request::with_headers(headers), NOW);
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
        assert_eq!(evaluation.lookups.cache, CacheUse::NotUsed);
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
            Rejection::Malformed(crate::rejection::MalformedToken::Base64),
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
    assert_eq!(first.decision, Decision::Introspect(key(&token)));
    assert_eq!(first.lookups.introspection, IntrospectionCacheUse::Miss);
    let call = engine.introspection_call(&key(&token)).unwrap();
    assert_eq!(call.cluster, "idp");

    let body = answer(json!({"active": true, "sub": "from-idp", "exp": NOW + 20, "iss": ISSUER}));
    let outcome = engine.record_introspection(&key(&token), ok(&body), NOW);
    assert!(matches!(outcome, IntrospectionOutcome::Active(_)));
    let resumed = engine.resume(&req, &hand(&token, outcome.clone()), NOW);
    assert_eq!(
        updates(&engine, &resumed),
        vec![("x-jwt-sub".to_owned(), Some("from-idp".to_owned()))]
    );
    // Cached, but never beyond exp (NOW + 20 < NOW + 30).
    let again = engine.authenticate(&req, NOW + 19);
    assert_eq!(
        again.lookups.introspection,
        IntrospectionCacheUse::HitActive
    );
    assert!(matches!(again.decision, Decision::Allow(_)));
    let later = engine.authenticate(&req, NOW + 20);
    assert_eq!(later.lookups.introspection, IntrospectionCacheUse::Miss);
    assert!(matches!(later.decision, Decision::Introspect(_)));
}

#[test]
fn inactive_is_cached_briefly_and_failures_not_at_all() {
    let mut engine = introspecting("introspect", json!({}));
    let token = token(NOW + 600);
    let bearer = format!("Bearer {token}");
    let req = request(&[("authorization", &bearer)]);
    let inactive = answer(json!({"active": false}));
    let outcome = engine.record_introspection(&key(&token), ok(&inactive), NOW);
    assert_eq!(outcome, IntrospectionOutcome::Refused(Rejection::Inactive));
    assert_eq!(
        engine
            .resume(&req, &hand(&token, outcome.clone()), NOW)
            .decision,
        Decision::Deny(Rejection::Inactive)
    );
    let cached = engine.authenticate(&req, NOW + 4);
    assert_eq!(
        cached.lookups.introspection,
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
    let outcome = engine.record_introspection(&key(&token), timeout, NOW + 5);
    assert_eq!(outcome, IntrospectionOutcome::Failed(IdpFailure::Timeout));
    let denied = engine.resume(&req, &hand(&token, outcome.clone()), NOW + 5);
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
    let evaluation = engine.resume(&req, &hand(&token, outcome.clone()), NOW);
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
    let outcome = engine.record_introspection(&key(&token), ok(&active), NOW);
    let evaluation = engine.resume(&req, &hand(&token, outcome.clone()), NOW);
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
        evaluation.lookups.introspection,
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
    let outcome = engine.record_introspection(&key(&token), ok(&active), NOW);
    let evaluation = engine.resume(&req, &hand(&token, outcome.clone()), NOW);
    assert_eq!(
        evaluation.lookups.cache,
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
    assert_eq!(warm.lookups.cache, CacheUse::Hit);
    assert_eq!(warm.lookups.introspection, IntrospectionCacheUse::HitActive);
    // Revoked after the positive entry expired: refused.
    let revoked = answer(json!({"active": false}));
    let outcome = engine.record_introspection(&key(&token), ok(&revoked), NOW + 31);
    assert_eq!(
        engine
            .resume(&req, &hand(&token, outcome.clone()), NOW + 31)
            .decision,
        Decision::Deny(Rejection::Inactive)
    );
}

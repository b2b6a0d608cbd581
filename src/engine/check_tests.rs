//! The caches are looked up on a token's bytes before the token's character check: nothing
//! that fails the check may ever be in a cache, and everything not in one is checked.

use serde_json::json;

use super::*;
use crate::algorithm::Algorithm;
use crate::config;
use crate::introspection::CallAnswer;
use crate::rejection::RequestProblem;
use crate::testkit::{TestKey, TokenSpec, jwks};

const NOW: i64 = 1_750_000_000;
const INTERNAL: &str = "https://idp.example/realms/internal";

/// A JWT provider and an introspecting one that takes opaque tokens: with two providers, the
/// engine asks both caches about a token before choosing the provider.
fn engine(providers: &[&str]) -> Engine {
    let all = json!({
        "internal": {
            "issuer": INTERNAL, "audiences": ["api"],
            "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk("a", Some("RS256"))])}
        },
        "machines": {
            "mode": "introspect", "opaque": true, "issuer": "https://machines.example",
            "audiences": [],
            "introspection": {"cluster": "idp", "authority": "idp", "path": "/i",
                              "client_id": "gw", "client_secret": "s"}
        }
    });
    let chosen: serde_json::Map<_, _> = providers
        .iter()
        .map(|name| (name.to_string(), all[name].clone()))
        .collect();
    let any: Vec<_> = providers.iter().map(|p| json!({"provider": p})).collect();
    let config = json!({
        "providers": chosen,
        "rules": [{"name": "api", "match": {"path": {"prefix": "/"}}, "requires": {"any": any}}]
    });
    Engine::new(config::parse(config.to_string().as_bytes()).unwrap())
}

fn request(value: &[u8]) -> Request {
    let mut bearer = b"Bearer ".to_vec();
    bearer.extend_from_slice(value);
    Request::with_headers(vec![
        (":path".to_owned(), b"/x".to_vec()),
        ("authorization".to_owned(), bearer),
    ])
}

fn refused(problem: RequestProblem) -> Decision {
    Decision::Deny(Rejection::InvalidRequest(problem))
}

/// What the IdP says of every token here.
fn active(engine: &mut Engine, token: &str) -> IntrospectionOutcome {
    let key = CallKey {
        provider: engine.config().providers.len() - 1,
        token: Rc::from(token),
    };
    let body = json!({"active": true, "sub": "robot"}).to_string();
    let answer = CallAnswer {
        status: Some(200),
        body: body.as_bytes(),
    };
    engine.record_introspection(&key, answer, NOW)
}

#[test]
fn a_token_that_fails_the_character_check_is_never_cached() {
    for providers in [&["machines"][..], &["internal", "machines"]] {
        let mut engine = engine(providers);
        // Handed an answer about a token no request could have carried, the engine keeps the
        // answer out of its cache: a later request with those bytes is checked and refused.
        for bad in ["opaque token", "opaque,token", "opaque\u{e9}"] {
            assert!(matches!(
                active(&mut engine, bad),
                IntrospectionOutcome::Active(_)
            ));
            let evaluation = engine.authenticate(&request(bad.as_bytes()), NOW);
            let problem = if bad.contains(',') {
                RequestProblem::MultipleTokens
            } else {
                RequestProblem::InvalidCharacters
            };
            assert_eq!(evaluation.decision, refused(problem), "{providers:?} {bad}");
            assert_eq!(
                evaluation.lookups.introspection,
                IntrospectionCacheUse::NotUsed
            );
        }
        assert_eq!(engine.cache_entries(), 0);
        // A token that passes is cached, and its next request is a hit.
        active(&mut engine, "opaque-token");
        let evaluation = engine.authenticate(&request(b"opaque-token"), NOW);
        assert!(
            matches!(evaluation.decision, Decision::Allow(_)),
            "{evaluation:?}"
        );
        assert_eq!(
            evaluation.lookups.introspection,
            IntrospectionCacheUse::HitActive
        );
    }
}

#[test]
fn bytes_beside_a_cached_token_are_checked() {
    for providers in [&["internal"][..], &["internal", "machines"]] {
        let mut engine = engine(providers);
        let token = TokenSpec::access_token(Algorithm::Rs256, "a", INTERNAL, "api", NOW)
            .sign(TestKey::rsa_a());
        let first = engine.authenticate(&request(token.as_bytes()), NOW);
        assert!(matches!(first.decision, Decision::Allow(_)), "{first:?}");
        let second = engine.authenticate(&request(token.as_bytes()), NOW);
        assert_eq!(second.lookups.cache, CacheUse::Hit);
        for (value, problem) in [
            (format!("{token},{token}"), RequestProblem::MultipleTokens),
            (format!("{token}, {token}"), RequestProblem::MultipleTokens),
            (format!("{token} "), RequestProblem::InvalidCharacters),
            (format!("{token}\u{e9}"), RequestProblem::InvalidCharacters),
            (format!("{token}\0"), RequestProblem::InvalidCharacters),
        ] {
            let evaluation = engine.authenticate(&request(value.as_bytes()), NOW);
            assert_eq!(
                evaluation.decision,
                refused(problem),
                "{providers:?} {value}"
            );
        }
        let mut not_utf8 = token.clone().into_bytes();
        not_utf8.push(0xff);
        let evaluation = engine.authenticate(&request(&not_utf8), NOW);
        assert_eq!(
            evaluation.decision,
            refused(RequestProblem::InvalidCharacters)
        );
    }
}

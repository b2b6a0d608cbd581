//! The filter's core per request: `Engine::authenticate` on a cached token and on a token seen
//! for the first time (full RS256 validation), and the steps a first sighting takes, with the
//! `jwt` gateway's configuration (envoy/jwt.yaml: four claims forwarded) and Keycloak-shaped
//! tokens like the ones `loadtest/benches/envoy_cpu.rs` sends. Runs natively and under WASI
//! (Node's V8, the engine family Envoy runs the filter on):
//!
//!     cargo bench -p tokengate --features testkit --bench engine [-- FILTER]
//!     cargo bench -p tokengate --features testkit --bench engine --target wasm32-wasip1 [-- FILTER]
//!
//! Each line: microseconds per operation, median and minimum of several timed runs after a
//! warm-up. The request rows include what the host does with the decision (visiting every
//! header update); they exclude the host calls themselves, which only Envoy can time
//! (`loadtest/benches/envoy_cpu.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/timing.rs"]
mod timing;

use std::hint::black_box;
use timing::{Bench, Evictor, RUNS};

use base64ct::Encoding as _;
use jwt_compact::UntrustedToken;
use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::config;
use tokengate::engine::{CacheUse, Decision, Engine, Evaluation, Request};
use tokengate::jwks::{KeyLookup, KeySet};
use tokengate::jwt::raw_claims::RawClaims;
use tokengate::jwt::{Parsed, validate};
use tokengate::revocation::set::{Entry, Kind};
use tokengate::testkit::{TestKey, TokenSpec, jwks, tamper_signature};
use tokengate::token_source;

const ISSUER: &str = "http://127.0.0.1:8080/realms/tokengate";
const AUDIENCE: &str = "tokengate-api";
const KID: &str = "k1";
const NOW: i64 = 1_750_000_000;
/// Distinct tokens cycled through a cache of `MISS_CACHE` entries: every lookup misses.
const MISS_TOKENS: usize = 64;
const MISS_CACHE: usize = 16;

/// envoy/jwt.yaml's plugin configuration, with the key inline and a cache of `cache` entries.
fn config(cache: usize) -> config::Config {
    config::parse(config_json(cache).as_bytes()).unwrap()
}

fn config_json(cache: usize) -> String {
    json!({
        "mode": "jwt",
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "algorithms": ["RS256", "ES256"],
        "clock_skew_seconds": 5,
        "realm": "tokengate",
        "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk(KID, Some("RS256"))])},
        "forward": {
            "strip_authorization": false,
            "claims_to_headers": [
                {"claim": "sub", "header": "x-jwt-sub"},
                {"claim": "azp", "header": "x-jwt-client"},
                {"claim": "scope", "header": "x-jwt-scope"},
                {"claim": "realm_access.roles", "header": "x-jwt-roles"}
            ]
        },
        "cache": {"max_entries": cache}
    })
    .to_string()
}

fn token(jti: &str) -> String {
    TokenSpec::access_token(Algorithm::Rs256, KID, ISSUER, AUDIENCE, NOW)
        .claim("jti", jti)
        .claim("sid", "bench-session")
        .sign(TestKey::rsa_a())
}

/// The claims of a Keycloak access token for the load-test user, as Keycloak issues them.
fn keycloak_claims() -> Value {
    json!({
        "exp": NOW + 300, "iat": NOW, "jti": "onrtac:0b6d7c2e-4f7a-4a8e-9a53-1f2d3c4b5a69",
        "iss": ISSUER, "aud": [AUDIENCE, "account"],
        "sub": "f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c", "typ": "Bearer",
        "azp": "tokengate-loadtest", "sid": "7a1c4e2b-9f3d-4b8e-a1c2-3d4e5f6a7b8c", "acr": "1",
        "allowed-origins": ["http://127.0.0.1:10000"],
        "realm_access": {"roles": ["offline_access", "uma_authorization", "default-roles-tokengate", "user"]},
        "resource_access": {
            "account": {"roles": ["manage-account", "manage-account-links", "view-profile"]},
            "tokengate-api": {"roles": ["reader", "writer"]}
        },
        "scope": "openid profile email", "email_verified": true, "name": "Load Test",
        "preferred_username": "loadtest", "given_name": "Load", "family_name": "Test",
        "email": "loadtest@example.com"
    })
}

/// `config(4096)` with back-channel logout: a cached token's session and subject are looked
/// up in the set of ended sessions on every request.
fn logout_config() -> config::Config {
    let mut raw: Value = serde_json::from_str(&config_json(4096)).unwrap();
    raw["backchannel_logout"] = json!({"path": "/logout", "audiences": ["tokengate-loadtest"]});
    config::parse(raw.to_string().as_bytes()).unwrap()
}

/// Ends `count` other sessions and, one in ten, other subjects: the set's size, not a match.
fn end_sessions(engine: &mut Engine, count: u64) {
    let entries = (0..count).map(|seq| Entry {
        seq,
        kind: if seq % 10 == 0 {
            Kind::Subject
        } else {
            Kind::Session
        },
        value: format!("ended-{seq:08x}-7a1c-4e2b-9f3d"),
        revoked_at: NOW,
        expires_at: NOW + 3600,
    });
    engine.revoked_mut(0).unwrap().apply(entries, NOW);
    assert_eq!(engine.revoked(0).unwrap().len() as u64, count);
}

/// A policy of three providers and ten rules whose tenth covers the bench's request
/// (`GET /orders/42`): the rule search and the provider choice on the cached path.
fn policy_config() -> config::Config {
    let rule = |name: &str, matcher: Value| json!({"name": name, "match": matcher, "requires": {"provider": "partner"}});
    let config = json!({
        "providers": {
            "internal": {
                "issuer": ISSUER, "audiences": [AUDIENCE], "algorithms": ["RS256"],
                "clock_skew_seconds": 5,
                "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk(KID, Some("RS256"))])},
                "forward": {"claims_to_headers": [
                    {"claim": "sub", "header": "x-jwt-sub"},
                    {"claim": "azp", "header": "x-jwt-client"},
                    {"claim": "scope", "header": "x-jwt-scope"},
                    {"claim": "realm_access.roles", "header": "x-jwt-roles"}
                ]}
            },
            "partner": {
                "issuer": "https://partner.example/realms/p", "audiences": [AUDIENCE],
                "algorithms": ["ES256"],
                "jwks": {"inline": jwks(&[TestKey::p256().public_jwk("ec", Some("ES256"))])}
            },
            "machines": {
                "mode": "introspect", "opaque": true, "issuer": "https://machines.example",
                "audiences": [],
                "introspection": {"cluster": "idp", "authority": "idp", "path": "/i",
                                  "client_id": "gw", "client_secret": "s"}
            }
        },
        "rules": [
            {"name": "health", "match": {"path": {"exact": "/health"}}, "requires": "public"},
            rule("admin", json!({"path": {"prefix": "/admin/"}})),
            rule("writes", json!({"path": {"pattern": "/api/*/orders"}, "methods": ["POST"]})),
            rule("api", json!({"path": {"pattern": "/api/**"}})),
            rule("reports", json!({"path": {"prefix": "/reports"}, "hosts": ["*.example.com"]})),
            rule("docs", json!({"path": {"prefix": "/docs"}})),
            rule("stock", json!({"path": {"pattern": "/stock/*/items"}})),
            rule("users", json!({"path": {"exact": "/users"}, "methods": ["GET"]})),
            rule("orders-write", json!({"path": {"prefix": "/orders"}, "methods": ["POST", "PUT"]})),
            {"name": "orders", "match": {"path": {"pattern": "/orders/**"}},
             "requires": {"any": [{"provider": "internal"}, {"provider": "partner"}, {"provider": "machines"}]}}
        ]
    });
    config::parse(config.to_string().as_bytes()).unwrap()
}

/// The request headers Envoy hands the filter for the bench's requests.
fn request(token: &str) -> Request {
    Request::with_headers(headers(token))
}

fn headers(token: &str) -> Vec<(String, Vec<u8>)> {
    [
        (":authority", "127.0.0.1:10000"),
        (":path", "/orders/42"),
        (":method", "GET"),
        (":scheme", "http"),
        ("authorization", &format!("Bearer {token}")),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "0b6d7c2e-4f7a-4a8e-9a53-1f2d3c4b5a69"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
    .collect()
}

/// What the host does with an evaluation: visit every header update.
fn settle(engine: &Engine, evaluation: &Evaluation) -> usize {
    match &evaluation.decision {
        Decision::Allow(admission) => {
            let mut bytes = 0;
            engine.for_each_update(admission, |name, value| {
                bytes += name.len() + value.map_or(0, str::len);
            });
            bytes
        }
        _ => 0,
    }
}

fn main() {
    let mut bench = Bench::from_args();
    let target = timing::target_name();
    println!("engine, {target}, median of {RUNS} runs");

    let repeated = token("bench-repeated");
    println!(
        "-- one request (token of {} bytes, {} headers)",
        repeated.len(),
        request(&repeated).headers.len()
    );
    {
        let mut engine = Engine::new(config(4096));
        let headers = request(&repeated);
        let first = engine.authenticate(&headers, NOW);
        assert!(matches!(first.decision, Decision::Allow(_)), "{first:?}");
        bench.run("authenticate, cached token (hit)", || {
            let evaluation = engine.authenticate(black_box(&headers), NOW);
            evaluation.lookups.cache == CacheUse::Hit && settle(&engine, &evaluation) > 0
        });
    }
    for ended in [0, 100_000] {
        let mut engine = Engine::new(logout_config());
        end_sessions(&mut engine, ended);
        let headers = request(&repeated);
        let first = engine.authenticate(&headers, NOW);
        assert!(matches!(first.decision, Decision::Allow(_)), "{first:?}");
        bench.run(
            &format!("authenticate, cached token, back-channel logout, {ended} sessions ended"),
            || {
                let evaluation = engine.authenticate(black_box(&headers), NOW);
                evaluation.lookups.cache == CacheUse::Hit && settle(&engine, &evaluation) > 0
            },
        );
    }
    {
        let mut engine = Engine::new(policy_config());
        let headers = request(&repeated);
        let first = engine.authenticate(&headers, NOW);
        assert!(matches!(first.decision, Decision::Allow(_)), "{first:?}");
        assert_eq!(first.rule, Some(9));
        bench.run(
            "authenticate, cached token, 10th rule of 10, 3 providers",
            || {
                let evaluation = engine.authenticate(black_box(&headers), NOW);
                evaluation.lookups.cache == CacheUse::Hit && settle(&engine, &evaluation) > 0
            },
        );
    }
    let misses: Vec<Request> = if bench.wants("authenticate, new") {
        (0..MISS_TOKENS)
            .map(|i| request(&token(&format!("bench-{i}"))))
            .collect()
    } else {
        Vec::new()
    };
    if !misses.is_empty() {
        let mut engine = Engine::new(config(MISS_CACHE));
        let mut next = 0;
        let mut miss = || {
            let headers = &misses[next % misses.len()];
            next += 1;
            let evaluation = engine.authenticate(black_box(headers), NOW);
            evaluation.lookups.cache == CacheUse::Miss && settle(&engine, &evaluation) > 0
        };
        bench.run(
            "authenticate, new token (miss: RS256 validation)",
            &mut miss,
        );
        // Inside Envoy, Envoy's own work between two requests leaves the filter's code and
        // data cold: a miss measured in Envoy costs about this row, not the one above.
        bench.run_cold(
            "authenticate, new token, cold caches (as inside a proxy)",
            &mut Evictor::new(),
            &mut miss,
        );
        let tampered: Vec<_> = misses
            .iter()
            .map(|miss| {
                let value = std::str::from_utf8(&miss.headers[4].1).unwrap();
                let token = value.strip_prefix("Bearer ").unwrap();
                request(&tamper_signature(token))
            })
            .collect();
        let mut next = 0;
        bench.run("authenticate, new token, bad signature", || {
            let headers = &tampered[next % tampered.len()];
            next += 1;
            let evaluation = engine.authenticate(black_box(headers), NOW);
            matches!(evaluation.decision, Decision::Deny(_))
        });
    }

    println!("-- a key set replaced (every worker installs each new set it sees)");
    {
        let allowed = [Algorithm::Rs256, Algorithm::Es256].into_iter().collect();
        let set = |keys: &[(&TestKey, &str, &str)]| {
            let keys: Vec<Value> = keys
                .iter()
                .map(|(key, kid, alg)| key.public_jwk(kid, Some(alg)))
                .collect();
            jwks(&keys).to_string()
        };
        let before = set(&[
            (TestKey::rsa_a(), "k1", "RS256"),
            (TestKey::rsa_b(), "k2", "RS256"),
            (TestKey::p256(), "ec1", "ES256"),
        ]);
        // A rotation: k1 retired, k3 added, two keys as they were.
        let after = set(&[
            (TestKey::rsa_b(), "k2", "RS256"),
            (TestKey::p256(), "ec1", "ES256"),
            (TestKey::rsa_a(), "k3", "RS256"),
        ]);
        let previous = KeySet::parse(before.as_bytes(), allowed).unwrap().0;
        bench.run(
            "KeySet::parse, rotated set (2 RSA-2048 + 1 P-256, all prepared)",
            || {
                KeySet::parse(black_box(after.as_bytes()), allowed)
                    .is_ok_and(|(set, _)| set.len() == 3)
            },
        );
        bench.run("KeySet::parse_after, rotated set (two keys reused)", || {
            KeySet::parse_after(black_box(after.as_bytes()), allowed, &previous)
                .is_ok_and(|(set, _)| set.len() == 3)
        });
    }

    println!("-- the steps of a miss");
    let whole = config(4096);
    let config = &whole.providers[0];
    let catalog = &whole.policy.catalogs[0];
    let headers = headers(&repeated);
    bench.run("token_source::extract", || {
        token_source::extract(&config.token_source, black_box(&headers)).is_ok_and(|t| t.is_some())
    });
    let keys = KeySet::parse(
        jwks(&[TestKey::rsa_a().public_jwk(KID, Some("RS256"))])
            .to_string()
            .as_bytes(),
        config.algorithms,
    )
    .unwrap()
    .0;
    bench.run("validate::validate (everything below)", || {
        validate::validate(config, &keys, catalog, black_box(&repeated), NOW).is_ok()
    });
    let payload = repeated.split('.').nth(1).unwrap();
    bench.run("Parsed::new (base64url, header read once)", || {
        Parsed::new(black_box(&repeated), 8192).is_ok()
    });
    bench.run("  of which: base64url decode of the payload", || {
        tokengate::jwt::base64url::decode(black_box(payload.as_bytes())).is_ok()
    });
    let decoded = tokengate::jwt::base64url::decode(payload.as_bytes()).unwrap();
    // The claims verify builds with envoy/jwt.yaml's configuration.
    let read = |name: &str| {
        [
            "iss",
            "sub",
            "jti",
            "aud",
            "typ",
            "sid",
            "scope",
            "scp",
            "azp",
            "realm_access",
        ]
        .contains(&name)
    };
    bench.run("RawClaims::read (the claims verify reads)", || {
        RawClaims::read(black_box(&decoded), &read).is_ok_and(|claims| claims.claims.len() == 9)
    });
    // A Keycloak access token as Keycloak issues it for the load-test user (twenty claims).
    let keycloak = serde_json::to_vec(&keycloak_claims()).unwrap();
    bench.run("RawClaims::read, full Keycloak claims", || {
        RawClaims::read(black_box(&keycloak), &read).is_ok_and(|claims| claims.claims.len() == 9)
    });
    println!("-- the steps, through jwt-compact (what Parsed::new and RawClaims replace)");
    bench.run(
        "jwt-compact UntrustedToken::try_from (base64, header)",
        || UntrustedToken::new(black_box(&repeated)).is_ok(),
    );
    let untrusted = UntrustedToken::new(&repeated).unwrap();
    bench.run("jwt-compact Claims<serde_json Map> (flatten)", || {
        untrusted
            .deserialize_claims_unchecked::<serde_json::Map<String, Value>>()
            .is_ok()
    });
    bench.run(
        "jwt-compact Claims<serde_json Map>, full Keycloak claims",
        || {
            serde_json::from_slice::<jwt_compact::Claims<serde_json::Map<String, Value>>>(
                black_box(&keycloak),
            )
            .is_ok()
        },
    );
    bench.run("base64ct decode of the payload", || {
        base64ct::Base64UrlUnpadded::decode_vec(black_box(payload)).is_ok()
    });
    println!("-- the signature");
    let (signed, signature) = repeated.rsplit_once('.').unwrap();
    bench.run("SHA-256 of the signing input", || {
        tokengate::rsa_verify::HashAlg::Sha256
            .digest(black_box(signed.as_bytes()))
            .len()
            == 32
    });
    let signature = base64ct::Base64UrlUnpadded::decode_vec(signature).unwrap();
    let KeyLookup::Found(entry) = keys.lookup(Some(KID), Algorithm::Rs256) else {
        panic!("key k1");
    };
    let verify = || {
        entry
            .key
            .verify(Algorithm::Rs256, black_box(signed.as_bytes()), &signature)
    };
    bench.run("signature: VerifyingKey::verify (SHA-256 + RSA)", verify);
    bench.run_cold(
        "signature: VerifyingKey::verify, cold caches",
        &mut Evictor::new(),
        verify,
    );
}

//! The whole engine decision on tokens minted from the harness's keys and mutated, or on
//! arbitrary token bytes, under a policy of three providers (RS256/PS256, ES256, EdDSA, inline
//! keys) and rules of every requirement kind.
//!
//! Invariants: an admitted token verifies under a key of the provider that admitted it (by
//! the reference implementations) and carries that provider's issuer, an accepted audience
//! and a live `exp`; an anonymous admission comes only from a rule that allows one; a refusal
//! is 400/401/403, or 503 only for an implausible clock; identity headers carry verified
//! values only; the same request decided again (from the cache) and the same sequence on a
//! fresh engine decide the same; the unmutated token of each provider is admitted.

use std::sync::OnceLock;

use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::config;
use tokengate::engine::{Decision, Engine, Evaluation, Request};
use tokengate::rejection::Rejection;

use crate::input::Choices;
use crate::keys::{Jws, Key};
use crate::oracle;
use crate::token::{Base, Minted, mint};

/// The time of every request unless the input moves it.
pub const NOW: i64 = 1_750_000_000;
/// Issuers of the three providers.
pub const RSA_ISSUER: &str = "https://rsa.example/realms/a";
/// See [`RSA_ISSUER`].
pub const EC_ISSUER: &str = "https://ec.example";
/// See [`RSA_ISSUER`].
pub const ED_ISSUER: &str = "https://ed.example/";
/// Where the `ed` provider's token travels (the whole value is the token).
pub const DEVICE_HEADER: &str = "x-device-token";
/// Rules, in configuration order.
pub const RULES: [&str; 7] = ["health", "admin", "writes", "device", "docs", "feed", "api"];
/// The bases the structured tokens start from.
pub const BASES: [Base; 4] = [
    Base {
        key: Key::RsaA,
        alg: Algorithm::Rs256,
        kid: Some("rsa"),
        issuer: RSA_ISSUER,
        audience: "api",
    },
    Base {
        key: Key::P256,
        alg: Algorithm::Es256,
        kid: Some("ec"),
        issuer: EC_ISSUER,
        audience: "account",
    },
    Base {
        key: Key::Ed25519,
        alg: Algorithm::EdDsa,
        kid: Some("ed"),
        issuer: ED_ISSUER,
        audience: "device",
    },
    Base {
        key: Key::RsaB,
        alg: Algorithm::Ps256,
        kid: Some("pss"),
        issuer: RSA_ISSUER,
        audience: "api",
    },
];
const WORDS: &[&str] = &[
    RSA_ISSUER, EC_ISSUER, ED_ISSUER, "rsa", "pss", "ec", "ed", "device", "forged",
];

/// What the harness knows of each provider, independently of tokengate's parsed config.
struct ProviderFacts {
    issuer: &'static str,
    keys: &'static [Key],
    algorithms: &'static [Algorithm],
    audiences: &'static [&'static str],
    skew: i64,
    token_types: &'static [&'static str],
}

const PROVIDERS: [ProviderFacts; 3] = [
    ProviderFacts {
        issuer: RSA_ISSUER,
        keys: &[Key::RsaA, Key::RsaB],
        algorithms: &[Algorithm::Rs256, Algorithm::Ps256],
        audiences: &["api"],
        skew: 30,
        token_types: &["Bearer"],
    },
    ProviderFacts {
        issuer: EC_ISSUER,
        keys: &[Key::P256],
        algorithms: &[Algorithm::Es256],
        audiences: &["api", "account"],
        skew: 0,
        token_types: &["Bearer"],
    },
    ProviderFacts {
        issuer: ED_ISSUER,
        keys: &[Key::Ed25519],
        algorithms: &[Algorithm::EdDsa],
        audiences: &[],
        skew: 30,
        token_types: &[],
    },
];

/// The policy: providers `rsa`, `ec`, `ed` (in that order) and [`RULES`].
pub fn policy() -> Value {
    json!({
        "realm": "api",
        "providers": {
            "rsa": {
                "issuer": RSA_ISSUER, "audiences": ["api"], "algorithms": ["RS256", "PS256"],
                "jwks": {"inline": {"keys": [
                    Key::RsaA.public_jwk("rsa", Some("RS256")),
                    Key::RsaB.public_jwk("pss", Some("PS256")),
                ]}},
                "forward": {
                    "strip_authorization": true,
                    "claims_to_headers": [
                        {"claim": "sub", "header": "x-sub"},
                        {"claim": "realm_access.roles", "header": "x-roles"}
                    ]
                }
            },
            "ec": {
                "issuer": EC_ISSUER, "audiences": ["api", "account"], "algorithms": ["ES256"],
                "clock_skew_seconds": 0,
                "jwks": {"inline": {"keys": [Key::P256.public_jwk("ec", Some("ES256"))]}},
                "forward": {"claims_to_headers": [{"claim": "sub", "header": "x-sub"}]}
            },
            "ed": {
                "issuer": ED_ISSUER, "audiences": [], "algorithms": ["EdDSA"], "token_types": [],
                "token_source": {"header": DEVICE_HEADER},
                "jwks": {"inline": {"keys": [Key::Ed25519.public_jwk("ed", None)]}},
                "forward": {"claims_to_headers": [{"claim": "azp", "header": "x-client"}]}
            }
        },
        "rules": [
            {"name": "health", "match": {"path": {"exact": "/health"}}, "requires": "public"},
            {"name": "admin", "match": {"path": {"prefix": "/admin/"}},
             "requires": {"provider": "rsa"},
             "claims": [{"claim": "realm_access.roles", "contains": "admin"}]},
            {"name": "writes", "match": {"path": {"pattern": "/api/*/orders"}, "methods": ["POST"]},
             "requires": {"any": [{"provider": "rsa"}, {"provider": "ec"}]},
             "scopes": ["orders:write"]},
            {"name": "device", "match": {"path": {"prefix": "/device"}},
             "requires": {"all": [{"provider": "rsa"}, {"provider": "ed"}]}},
            {"name": "docs", "match": {"path": {"prefix": "/docs"}},
             "requires": {"any": [{"provider": "rsa"}, "allow_missing"]}},
            {"name": "feed", "match": {"path": {"prefix": "/feed"}},
             "requires": {"any": [{"provider": "ec"}, "allow_missing_or_failed"]}},
            {"name": "api", "match": {"path": {"pattern": "/**"}},
             "requires": {"any": [{"provider": "rsa"}, {"provider": "ec"}, {"provider": "ed"}]}}
        ]
    })
}

/// A fresh engine on [`policy`] (parsed once: parsing its RSA keys costs more, under the
/// fuzzer's instrumentation, than the decisions it is built for).
pub fn engine() -> Engine {
    static CONFIG: OnceLock<config::Config> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        config::parse(policy().to_string().as_bytes()).expect("the harness's policy is valid")
    });
    Engine::new(config.clone())
}

/// The harness's facts of tokengate's provider `index`. The configuration names providers in
/// a JSON object, whose order is not the harness's: match them by issuer.
fn facts(index: usize) -> &'static ProviderFacts {
    static ORDER: OnceLock<Vec<usize>> = OnceLock::new();
    let order = ORDER.get_or_init(|| {
        let config =
            config::parse(policy().to_string().as_bytes()).expect("the harness's policy is valid");
        config
            .providers
            .iter()
            .map(|provider| {
                PROVIDERS
                    .iter()
                    .position(|facts| facts.issuer == provider.issuer)
                    .expect("every provider is one of the harness's")
            })
            .collect()
    });
    &PROVIDERS[order[index]]
}

/// One request of an input, and what the harness put in it.
#[derive(Debug, Clone)]
struct Case {
    request: Request,
    now: i64,
    /// The bearer token (after the scheme) of a single `authorization` header, if any.
    bearer: Option<Minted>,
    /// The device token, if any.
    device: Option<Minted>,
    /// A value of `authorization` that a `Bearer ` source reads as a credential.
    bearer_credential: bool,
    /// The unmutated first base token as the only credential on `/api/x` at `NOW`.
    baseline: bool,
}

fn raw_case(data: &[u8]) -> Case {
    let token = String::from_utf8_lossy(data).into_owned();
    let request = Request::with_headers(vec![
        (":path".to_owned(), b"/api/x".to_vec()),
        (":method".to_owned(), b"GET".to_vec()),
        (
            "authorization".to_owned(),
            format!("Bearer {token}").into_bytes(),
        ),
        ("x-sub".to_owned(), b"forged".to_vec()),
    ]);
    Case {
        request,
        now: NOW,
        bearer: Some(Minted {
            token,
            signed_by: None,
            pristine: false,
        }),
        device: None,
        bearer_credential: true,
        baseline: false,
    }
}

fn structured_case(c: &mut Choices<'_>) -> Case {
    let path = match c.index(12) {
        11 => c.text(24),
        at => [
            "/api/x",
            "/api/v1/orders",
            "/health",
            "/admin/users",
            "/docs/a",
            "/feed",
            "/device/1",
            "/api/v1/orders?x=1",
            "relative",
            "/health/",
            "/docs",
        ][at]
            .to_owned(),
    };
    let method = c.pick(&["GET", "POST", "post", ""]);
    let now = match c.index(10) {
        8 => NOW + c.pick(&[3601, 3631, -100, 31_536_000, -31_536_000]),
        9 => c.pick(&[0, 1_704_067_199, -1, i64::MAX, i64::MIN]),
        _ => NOW,
    };
    let mut headers = vec![
        (":path".to_owned(), path.clone().into_bytes()),
        (":method".to_owned(), method.as_bytes().to_vec()),
        ("x-sub".to_owned(), b"forged".to_vec()),
    ];
    let mut bearer = None;
    let placement = c.index(10);
    let mut authorization = Vec::new();
    if placement <= 6 {
        let token = mint(c, &BASES, WORDS, NOW);
        let scheme = match placement {
            4 => "bearer   ",
            5 => "BEARER ",
            6 => "Bearer\t",
            _ => "Bearer ",
        };
        authorization.push(format!("{scheme}{}", token.token));
        if placement != 6 {
            bearer = Some(token);
        }
    }
    match c.index(6) {
        1 => {
            // A second token, or the only one when none was placed above: then it is the
            // request's bearer token (the filter rightly judges it).
            let extra = mint(c, &BASES, WORDS, NOW);
            authorization.push(format!("Bearer {}", extra.token));
            if placement > 6 {
                bearer = Some(extra);
            }
        }
        2 => authorization.push("Basic dXNlcjpwYXNz".to_owned()),
        3 => authorization.push("Bearer".to_owned()),
        _ => {}
    }
    if authorization.len() > 1 {
        bearer = None;
    }
    let bearer_credential = authorization.iter().any(|value| {
        let value = value.as_bytes();
        value.len() >= 6
            && value[..6].eq_ignore_ascii_case(b"bearer")
            && (value.len() == 6 || value[6] == b' ')
    });
    for value in &authorization {
        headers.push(("authorization".to_owned(), value.clone().into_bytes()));
    }
    let device = match c.index(4) {
        1 | 2 => {
            let token = mint(c, &BASES, WORDS, NOW);
            headers.push((DEVICE_HEADER.to_owned(), token.token.clone().into_bytes()));
            Some(token)
        }
        3 => {
            headers.push((DEVICE_HEADER.to_owned(), c.bytes(40)));
            None
        }
        _ => None,
    };
    let baseline = path == "/api/x"
        && method == "GET"
        && now == NOW
        && authorization.len() == 1
        && device.is_none()
        && bearer.as_ref().is_some_and(|token| token.pristine);
    Case {
        request: Request::with_headers(headers),
        now,
        bearer,
        device,
        bearer_credential,
        baseline,
    }
}

/// Decodes an input: a token's text as it is when it starts like one (`eyJ`), else up to
/// three structured requests.
fn cases(data: &[u8]) -> Vec<Case> {
    if data.starts_with(b"eyJ") {
        return vec![raw_case(data)];
    }
    let mut c = Choices::new(data);
    let mut cases = vec![structured_case(&mut c)];
    while cases.len() < 3 && !c.is_empty() && c.flag() {
        cases.push(structured_case(&mut c));
    }
    cases
}

/// The decision and attribution, without the cache lookups (which differ on a second run).
fn outcome(evaluation: &Evaluation) -> (Decision, Option<usize>, Option<usize>) {
    (
        evaluation.decision.clone(),
        evaluation.rule,
        evaluation.provider,
    )
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let cases = cases(data);
    let mut engine = engine();
    let mut first_run = Vec::new();
    for case in &cases {
        let evaluation = engine.authenticate(&case.request, case.now);
        check(&engine, case, &evaluation);
        let again = engine.authenticate(&case.request, case.now);
        assert_eq!(
            outcome(&again),
            outcome(&evaluation),
            "the same request decided again (from the cache) decides otherwise"
        );
        first_run.push(outcome(&evaluation));
    }
    let mut fresh = self::engine();
    for (case, first) in cases.iter().zip(&first_run) {
        let evaluation = fresh.authenticate(&case.request, case.now);
        assert_eq!(
            &outcome(&evaluation),
            first,
            "a fresh engine decides the same sequence otherwise"
        );
    }
}

fn check(engine: &Engine, case: &Case, evaluation: &Evaluation) {
    match &evaluation.decision {
        Decision::Introspect(key) => panic!("no provider introspects, yet {key:?}"),
        Decision::Deny(rejection) => {
            oracle::check_rejection(rejection);
            match rejection {
                Rejection::ClockUnavailable => assert!(case.now < 1_704_067_200),
                Rejection::KeysUnavailable | Rejection::IdpUnavailable(_) => {
                    panic!("{rejection:?} with inline keys and no introspection")
                }
                _ => {}
            }
            assert!(
                !case.baseline,
                "the unmutated token was refused: {rejection:?}"
            );
        }
        Decision::Allow(admission) => {
            let rule = admission.rule.map(|rule| RULES[rule]);
            assert_eq!(admission.rule, evaluation.rule);
            if admission.identities.is_empty() {
                assert!(
                    matches!(rule, Some("health" | "docs" | "feed")),
                    "anonymous admission by rule {rule:?}"
                );
                if rule == Some("docs") {
                    assert!(
                        !case.bearer_credential,
                        "allow_missing admitted a request that carries a bearer credential"
                    );
                }
            }
            let mut subjects = Vec::new();
            for identity in admission.identities.iter() {
                assert!(!identity.degraded);
                let minted = match facts(identity.provider).issuer {
                    ED_ISSUER => case.device.as_ref(),
                    _ => case.bearer.as_ref(),
                }
                .unwrap_or_else(|| {
                    panic!(
                        "provider {} admitted a request without a token the harness placed: {:?}",
                        identity.provider, case.request
                    )
                });
                let jws = check_admitted_token(identity.provider, minted, case.now);
                if let Some(Value::String(sub)) = jws.claim("sub") {
                    subjects.push(sub.clone());
                }
            }
            engine.for_each_update(admission, |name, value| {
                if let Some(value) = value {
                    oracle::check_header_value(name, value);
                    if name == "x-sub" {
                        assert!(
                            subjects.iter().any(|sub| sub == value),
                            "x-sub {value:?} is no admitted token's sub"
                        );
                    }
                }
            });
        }
    }
}

/// The independent checks of an admitted token.
fn check_admitted_token(provider: usize, minted: &Minted, now: i64) -> Jws {
    let facts = facts(provider);
    let token = &minted.token;
    let jws = Jws::parse(token)
        .unwrap_or_else(|| panic!("admitted a token that is not a JWS: {token:?}"));
    let signed_by_harness = minted
        .signed_by
        .is_some_and(|(key, alg)| facts.keys.contains(&key) && facts.algorithms.contains(&alg));
    assert!(
        signed_by_harness || jws.verifies_under(facts.keys, facts.algorithms),
        "admitted a token whose signature does not verify under provider {provider}'s keys: {token}"
    );
    // Even a harness-signed token: its alg must be allowed and match the signing key.
    assert!(
        jws.verifies_under(facts.keys, facts.algorithms) || !signed_by_harness,
        "reference verification disagrees with the harness's own signature"
    );
    assert_eq!(
        jws.claim("iss").and_then(Value::as_str),
        Some(facts.issuer),
        "admitted with another issuer"
    );
    let exp = jws
        .claim("exp")
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("admitted without a numeric exp: {:?}", jws.payload));
    assert!(
        now as f64 <= exp.trunc() + facts.skew as f64,
        "admitted an expired token (exp {exp}, now {now})"
    );
    if let Some(nbf) = jws.claim("nbf") {
        let nbf = nbf.as_f64().expect("a numeric nbf");
        assert!(
            now as f64 >= nbf.trunc() - facts.skew as f64,
            "admitted before nbf"
        );
    }
    if !facts.audiences.is_empty() {
        let accepted = |aud: &Value| {
            aud.as_str()
                .is_some_and(|aud| facts.audiences.contains(&aud))
        };
        let ok = match jws.claim("aud") {
            Some(Value::Array(items)) => {
                items.iter().all(Value::is_string) && items.iter().any(accepted)
            }
            Some(aud) => accepted(aud),
            None => false,
        };
        assert!(ok, "admitted with audience {:?}", jws.claim("aud"));
    }
    let header_type = jws.header.get("typ");
    if let Some(typ) = header_type {
        let typ = typ.as_str().expect("admitted with a non-string header typ");
        assert!(
            ["JWT", "at+jwt", "application/at+jwt"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(typ)),
            "admitted with header typ {typ:?}"
        );
    }
    if !facts.token_types.is_empty() {
        match jws.claim("typ") {
            Some(Value::String(typ)) => assert!(
                facts
                    .token_types
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(typ)),
                "admitted with payload typ {typ:?}"
            ),
            None => assert!(
                header_type
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt")
                        || t.eq_ignore_ascii_case("application/at+jwt")),
                "admitted without payload typ and without an at+jwt header"
            ),
            Some(other) => panic!("admitted with payload typ {other:?}"),
        }
    }
    for name in ["kid", "alg", "cty"] {
        if let Some(value) = jws.header.get(name) {
            assert!(value.is_string(), "admitted with header {name} {value:?}");
        }
    }
    for name in ["iss", "sub", "jti"] {
        if let Some(value) = jws.claim(name) {
            assert!(value.is_string(), "admitted with claim {name} {value:?}");
        }
    }
    assert!(jws.header.get("crit").is_none(), "admitted with crit");
    jws
}

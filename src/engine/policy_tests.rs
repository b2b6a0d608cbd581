//! The engine on a policy: several providers, rules of every match kind and requirement
//! kind, claim conditions, and the cases other gateways got wrong.

use serde_json::{Value, json};

use super::*;
use crate::algorithm::Algorithm;
use crate::config;
use crate::rejection::MalformedToken;
use crate::testkit::{TestKey, TokenSpec, jwks, tamper_signature};

const NOW: i64 = 1_750_000_000;
const INTERNAL: &str = "https://idp.example/realms/internal";
const PARTNER: &str = "https://partner.example/realms/partner";
const MACHINES: &str = "https://machines.example";

fn policy() -> Value {
    json!({
        "realm": "api",
        "providers": {
            "internal": {
                "issuer": INTERNAL, "audiences": ["api"],
                "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk("a", Some("RS256"))])},
                "forward": {"claims_to_headers": [{"claim": "sub", "header": "x-sub"}]}
            },
            "partner": {
                "issuer": PARTNER, "audiences": ["api"], "algorithms": ["ES256"],
                "jwks": {"inline": jwks(&[TestKey::p256().public_jwk("ec", Some("ES256"))])},
                "forward": {"claims_to_headers": [
                    {"claim": "sub", "header": "x-sub"},
                    {"claim": "azp", "header": "x-partner-client"}
                ]}
            },
            "machines": {
                "mode": "introspect", "opaque": true, "issuer": MACHINES, "audiences": [],
                "introspection": {
                    "cluster": "idp", "authority": "idp", "path": "/introspect",
                    "client_id": "gw", "client_secret": "s"
                }
            }
        },
        "rules": [
            {"name": "health", "match": {"path": {"exact": "/health"}}, "requires": "public"},
            {"name": "admin", "match": {"path": {"prefix": "/admin/"}},
             "requires": {"provider": "internal"},
             "claims": [{"claim": "realm_access.roles", "contains": "admin"}]},
            {"name": "writes", "match": {"path": {"pattern": "/api/*/orders"}, "methods": ["POST"]},
             "requires": {"provider": "internal"}, "scopes": ["orders:write"]},
            {"name": "api", "match": {"path": {"pattern": "/api/**"}},
             "requires": {"any": [{"provider": "internal"}, {"provider": "partner"}, {"provider": "machines"}]}},
            {"name": "by-route", "match": {"route": "reports"}, "requires": {"provider": "partner"}},
            {"name": "docs", "match": {"path": {"prefix": "/docs"}},
             "requires": {"any": [{"provider": "internal"}, "allow_missing"]}},
            {"name": "feed", "match": {"path": {"prefix": "/feed"}},
             "requires": {"any": [{"provider": "internal"}, "allow_missing_or_failed"]}}
        ]
    })
}

fn engine(config: &Value) -> Engine {
    Engine::new(config::parse(config.to_string().as_bytes()).unwrap())
}

fn internal() -> TokenSpec {
    TokenSpec::access_token(Algorithm::Rs256, "a", INTERNAL, "api", NOW)
}

fn partner() -> TokenSpec {
    TokenSpec::access_token(Algorithm::Es256, "ec", PARTNER, "api", NOW)
}

fn request(method: &str, path: &str, token: Option<&str>) -> Request {
    let mut headers = vec![
        (":method".to_owned(), method.as_bytes().to_vec()),
        (":path".to_owned(), path.as_bytes().to_vec()),
        ("x-sub".to_owned(), b"forged".to_vec()),
    ];
    if let Some(token) = token {
        headers.push((
            "authorization".to_owned(),
            format!("Bearer {token}").into_bytes(),
        ));
    }
    Request::with_headers(headers)
}

fn rule_name(engine: &Engine, evaluation: &Evaluation) -> String {
    evaluation.rule.map_or("-".to_owned(), |r| {
        engine.config().policy.rules[r].name.to_string()
    })
}

fn provider_name(engine: &Engine, evaluation: &Evaluation) -> String {
    evaluation.provider.map_or("-".to_owned(), |p| {
        engine.config().providers[p].name.to_string()
    })
}

/// Allowed with these identity headers, or refused.
fn outcome(
    engine: &Engine,
    evaluation: &Evaluation,
) -> Result<Vec<(String, Option<String>)>, Rejection> {
    match &evaluation.decision {
        Decision::Allow(admission) => {
            let mut out = Vec::new();
            engine.for_each_update(admission, |name, value| {
                out.push((name.to_owned(), value.map(str::to_owned)))
            });
            Ok(out)
        }
        Decision::Deny(rejection) => Err(rejection.clone()),
        Decision::Introspect(key) => panic!("unexpected introspection of {key:?}"),
    }
}

const SUB: &str = "f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c";

#[test]
fn every_rule_and_requirement_kind() {
    let mut engine = engine(&policy());
    let admin = internal()
        .claim("realm_access", json!({"roles": ["user", "admin"]}))
        .sign(TestKey::rsa_a());
    let user = internal().sign(TestKey::rsa_a());
    let writer = internal()
        .claim("scope", "openid orders:write")
        .sign(TestKey::rsa_a());
    let forged = tamper_signature(&user);
    let partner_token = partner().sign(TestKey::p256());
    // `iss` says internal, the key is the partner's: verified against internal's keys alone.
    let impostor =
        TokenSpec::access_token(Algorithm::Es256, "ec", INTERNAL, "api", NOW).sign(TestKey::p256());
    let stranger =
        TokenSpec::access_token(Algorithm::Rs256, "a", "https://evil.example", "api", NOW)
            .sign(TestKey::rsa_a());
    let anonymous = || {
        vec![
            ("x-sub".to_owned(), None),
            ("x-partner-client".to_owned(), None),
        ]
    };
    let as_internal = || {
        vec![
            ("x-sub".to_owned(), Some(SUB.to_owned())),
            ("x-partner-client".to_owned(), None),
        ]
    };
    let as_partner = || {
        vec![
            ("x-sub".to_owned(), Some(SUB.to_owned())),
            (
                "x-partner-client".to_owned(),
                Some("tokengate-loadtest".to_owned()),
            ),
        ]
    };
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a str,
        Result<Vec<(String, Option<String>)>, Rejection>,
    );
    let cases: Vec<Case> = vec![
        // public: no token read, forged identity headers stripped, even with a bad token
        ("GET", "/health", None, "health", "-", Ok(anonymous())),
        (
            "GET",
            "/health",
            Some("garbage"),
            "health",
            "-",
            Ok(anonymous()),
        ),
        // a provider and a claim condition
        (
            "GET",
            "/admin/users",
            Some(&admin),
            "admin",
            "internal",
            Ok(as_internal()),
        ),
        (
            "GET",
            "/admin/users",
            Some(&user),
            "admin",
            "internal",
            Err(Rejection::ClaimConditions),
        ),
        // a rule with one provider judges every token with it: ES256 is not internal's
        (
            "GET",
            "/admin/users",
            Some(&partner_token),
            "admin",
            "internal",
            Err(Rejection::DisallowedAlgorithm),
        ),
        (
            "GET",
            "/admin/users",
            None,
            "admin",
            "-",
            Err(Rejection::MissingToken),
        ),
        // pattern + method, scopes
        (
            "POST",
            "/api/v1/orders",
            Some(&writer),
            "writes",
            "internal",
            Ok(as_internal()),
        ),
        (
            "POST",
            "/api/v1/orders",
            Some(&user),
            "writes",
            "internal",
            Err(Rejection::InsufficientScope),
        ),
        (
            "GET",
            "/api/v1/orders",
            Some(&user),
            "api",
            "internal",
            Ok(as_internal()),
        ),
        // any of three providers: the issuer chooses
        (
            "GET",
            "/api/v2/stock",
            Some(&partner_token),
            "api",
            "partner",
            Ok(as_partner()),
        ),
        (
            "GET",
            "/api/v2/stock",
            Some(&impostor),
            "api",
            "internal",
            Err(Rejection::DisallowedAlgorithm),
        ),
        (
            "GET",
            "/api/v2/stock",
            Some(&stranger),
            "api",
            "-",
            Err(Rejection::WrongIssuer),
        ),
        (
            "GET",
            "/api/v2/stock",
            None,
            "api",
            "-",
            Err(Rejection::MissingToken),
        ),
        (
            "GET",
            "/api/v2/stock",
            Some("a.b.c.d.e"),
            "api",
            "-",
            Err(Rejection::Malformed(MalformedToken::Encrypted)),
        ),
        // allow_missing: no token is fine, a token must be valid (unlike Envoy #15194)
        ("GET", "/docs/intro", None, "docs", "-", Ok(anonymous())),
        (
            "GET",
            "/docs/intro",
            Some(&user),
            "docs",
            "internal",
            Ok(as_internal()),
        ),
        (
            "GET",
            "/docs/intro",
            Some(&stranger),
            "docs",
            "internal",
            Err(Rejection::WrongIssuer),
        ),
        (
            "GET",
            "/docs/intro",
            Some(&forged),
            "docs",
            "internal",
            Err(Rejection::BadSignature),
        ),
        // allow_missing_or_failed: always forwarded, identity only when valid
        ("GET", "/feed", Some(&forged), "feed", "-", Ok(anonymous())),
        (
            "GET",
            "/feed",
            Some(&user),
            "feed",
            "internal",
            Ok(as_internal()),
        ),
        // no rule
        (
            "GET",
            "/elsewhere",
            Some(&user),
            "-",
            "-",
            Err(Rejection::NoRule),
        ),
    ];
    for (method, path, token, rule, provider, expected) in cases {
        let evaluation = engine.authenticate(&request(method, path, token), NOW);
        let label = format!(
            "{method} {path} {}",
            token.map_or("no token", |t| &t[..12.min(t.len())])
        );
        assert_eq!(outcome(&engine, &evaluation), expected, "{label}");
        assert_eq!(rule_name(&engine, &evaluation), rule, "rule of {label}");
        if expected.is_err() || provider != "-" {
            assert_eq!(
                provider_name(&engine, &evaluation),
                provider,
                "provider of {label}"
            );
        }
    }
}

#[test]
fn route_names_select_rules() {
    let mut engine = engine(&policy());
    let partner_token = partner().sign(TestKey::p256());
    let mut request = request("GET", "/reports/7", Some(&partner_token));
    assert_eq!(
        engine.authenticate(&request, NOW).decision,
        Decision::Deny(Rejection::NoRule)
    );
    request.route = Some(b"reports".to_vec());
    let evaluation = engine.authenticate(&request, NOW);
    assert!(matches!(evaluation.decision, Decision::Allow(_)));
    assert_eq!(rule_name(&engine, &evaluation), "by-route");
    assert!(engine.needs().route);
}

#[test]
fn opaque_tokens_go_to_the_one_provider_that_takes_them() {
    let mut engine = engine(&policy());
    let evaluation = engine.authenticate(&request("GET", "/api/x", Some("opaque-0123456789")), NOW);
    let Decision::Introspect(key) = &evaluation.decision else {
        panic!("introspection expected: {evaluation:?}");
    };
    assert_eq!(
        engine.config().providers[key.provider].name.as_str(),
        "machines"
    );
    let answer = json!({"active": true, "sub": "robot"}).to_string();
    let outcome = engine.record_introspection(
        key,
        crate::introspection::CallAnswer {
            status: Some(200),
            body: answer.as_bytes(),
        },
        NOW,
    );
    let hand = [InHand {
        key: key.clone(),
        outcome,
    }];
    let resumed = engine.resume(
        &request("GET", "/api/x", Some("opaque-0123456789")),
        &hand,
        NOW,
    );
    assert!(
        matches!(resumed.decision, Decision::Allow(_)),
        "{resumed:?}"
    );
    assert_eq!(provider_name(&engine, &resumed), "machines");
    // A rule whose providers take no opaque token refuses it without a call.
    let refused = engine.authenticate(&request("GET", "/admin/x", Some("opaque-0123456789")), NOW);
    assert!(
        matches!(refused.decision, Decision::Deny(Rejection::Malformed(_))),
        "{refused:?}"
    );
}

#[test]
fn verdicts_never_cross_providers() {
    let mut engine = engine(&policy());
    let user = internal().sign(TestKey::rsa_a());
    // Verified and cached for `internal` on /api ...
    let api = engine.authenticate(&request("GET", "/api/a", Some(&user)), NOW);
    assert_eq!(provider_name(&engine, &api), "internal");
    let again = engine.authenticate(&request("GET", "/api/a", Some(&user)), NOW);
    assert_eq!(again.lookups.cache, CacheUse::Hit);
    // ... yet the partner-only route does not accept it from that cache: partner judges it.
    let mut partner_only = request("GET", "/reports", Some(&user));
    partner_only.route = Some(b"reports".to_vec());
    let evaluation = engine.authenticate(&partner_only, NOW);
    assert_eq!(
        evaluation.decision,
        Decision::Deny(Rejection::DisallowedAlgorithm)
    );
    assert_eq!(provider_name(&engine, &evaluation), "partner");
}

#[test]
fn all_needs_every_token() {
    let config = json!({
        "providers": {
            "user": {
                "issuer": INTERNAL, "audiences": ["api"],
                "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk("a", Some("RS256"))])},
            },
            "device": {
                "issuer": PARTNER, "audiences": ["api"], "algorithms": ["ES256"],
                "token_source": {"header": "x-device-token"},
                "jwks": {"inline": jwks(&[TestKey::p256().public_jwk("ec", Some("ES256"))])},
            }
        },
        "rules": [{"name": "both", "requires": {"all": [{"provider": "user"}, {"provider": "device"}]}}]
    });
    let mut engine = engine(&config);
    let user = internal().sign(TestKey::rsa_a());
    let device = partner().sign(TestKey::p256());
    let both = Request::with_headers(vec![
        (
            "authorization".to_owned(),
            format!("Bearer {user}").into_bytes(),
        ),
        ("x-device-token".to_owned(), device.clone().into_bytes()),
    ]);
    let Decision::Allow(admission) = engine.authenticate(&both, NOW).decision else {
        panic!("both tokens");
    };
    let names: Vec<&str> = admission
        .identities
        .iter()
        .map(|i| engine.config().providers[i.provider].name.as_str())
        .collect();
    assert_eq!(names, vec!["user", "device"], "in requirement order");
    let one = Request::with_headers(vec![(
        "authorization".to_owned(),
        format!("Bearer {user}").into_bytes(),
    )]);
    assert_eq!(
        engine.authenticate(&one, NOW).decision,
        Decision::Deny(Rejection::MissingToken)
    );
    assert!(
        engine
            .needs()
            .headers
            .contains(&HeaderRead::All("x-device-token".to_owned()))
    );
}

#[test]
fn unmatched_requests_can_be_made_public_explicitly() {
    let mut config = policy();
    config["unmatched"] = json!("public");
    let engine_config = config::parse(config.to_string().as_bytes()).unwrap();
    assert!(
        engine_config
            .warnings()
            .iter()
            .any(|w| w.contains("unmatched"))
    );
    let mut engine = Engine::new(engine_config);
    let evaluation = engine.authenticate(&request("GET", "/elsewhere", None), NOW);
    assert_eq!(
        outcome(&engine, &evaluation),
        Ok(vec![
            ("x-sub".to_owned(), None),
            ("x-partner-client".to_owned(), None)
        ])
    );
}

#[test]
fn a_single_issuer_config_is_one_provider_and_one_rule() {
    let legacy = json!({
        "issuer": INTERNAL, "audiences": ["api"], "required_scopes": ["email"],
        "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk("a", Some("RS256"))])},
    });
    let mut engine = engine(&legacy);
    assert_eq!(
        engine.needs().headers,
        vec![HeaderRead::All("authorization".to_owned())]
    );
    assert!(!engine.needs().route);
    let user = internal().sign(TestKey::rsa_a());
    let evaluation = engine.authenticate(&request("GET", "/anything", Some(&user)), NOW);
    assert!(matches!(evaluation.decision, Decision::Allow(_)));
    assert_eq!(engine.scope_string(evaluation.rule), "email");
    let without = internal().claim("scope", "openid").sign(TestKey::rsa_a());
    let refused = engine.authenticate(&request("GET", "/", Some(&without)), NOW);
    assert_eq!(
        refused.decision,
        Decision::Deny(Rejection::InsufficientScope)
    );
}

#[test]
fn nothing_is_admitted_on_an_implausible_clock() {
    let mut engine = engine(&policy());
    let user = internal().sign(TestKey::rsa_a());
    // A host whose clock reads 1970 (seen in the wild): every token would look valid.
    let at_1970 = 4;
    let evaluation = engine.authenticate(&request("GET", "/api/x", Some(&user)), at_1970);
    assert_eq!(
        evaluation.decision,
        Decision::Deny(Rejection::ClockUnavailable)
    );
    assert_eq!(Rejection::ClockUnavailable.status(), 503);
    // Refusals stand, and public rules need no clock.
    let forged = engine.authenticate(
        &request("GET", "/api/x", Some(&tamper_signature(&user))),
        at_1970,
    );
    assert_eq!(forged.decision, Decision::Deny(Rejection::BadSignature));
    let public = engine.authenticate(&request("GET", "/health", None), at_1970);
    assert!(matches!(public.decision, Decision::Allow(_)));
}

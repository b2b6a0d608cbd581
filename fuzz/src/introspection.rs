//! The introspection-answer judge on arbitrary answers: one byte for the status, one for the
//! time, then the body (seeds: Keycloak-shaped answers, active and not).
//!
//! Invariants: no panic; a status other than 200 is the failure it stands for; a 200 whose
//! body is not a JSON object with a boolean `active` is a bad response; `active: false` is
//! `Inactive`; an admission has `active: true`, the provider's issuer and an accepted audience
//! when the answer names them, a live `exp`, its `exp` as the cache bound, and forwarded
//! values without control characters; a refusal is a 4xx.

use serde_json::{Map, Value, json};
use tokengate::config::{self, Config};
use tokengate::introspection::{CallAnswer, Judgement, judge};
use tokengate::rejection::{IdpFailure, Rejection};

use crate::input::Choices;
use crate::oracle;

/// The provider's issuer.
pub const ISSUER: &str = "https://idp.example/realms/r";
/// The time unless the input moves it.
pub const NOW: i64 = 1_750_000_000;
const SKEW: i64 = 30;

fn config() -> Config {
    let config = json!({
        "mode": "introspect", "opaque": true,
        "issuer": ISSUER, "audiences": ["api"],
        "required_scopes": ["email"],
        "introspection": {
            "cluster": "idp", "authority": "idp", "path": "/introspect",
            "client_id": "gw", "client_secret": "s"
        },
        "forward": {"claims_to_headers": [
            {"claim": "sub", "header": "x-sub"},
            {"claim": "exp", "header": "x-exp"},
            {"claim": "realm_access.roles", "header": "x-roles"}
        ]}
    });
    config::parse(config.to_string().as_bytes()).expect("the harness's configuration is valid")
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut c = Choices::new(data);
    let status = c.pick(&[
        Some(200),
        Some(200),
        Some(200),
        Some(200),
        None,
        Some(401),
        Some(403),
        Some(404),
        Some(500),
        Some(502),
        Some(503),
        Some(504),
        Some(204),
        Some(0),
    ]);
    let now = NOW + c.pick(&[0, 0, 0, 59, 61, 91, -3600, 7200]);
    let body = c.rest();
    let config = config();
    let provider = &config.providers[0];
    let catalog = &config.policy.catalogs[0];
    let judged = judge(
        provider,
        catalog,
        CallAnswer {
            status,
            body: &body,
        },
        now,
    );

    let expected_failure = match status {
        Some(200) => None,
        Some(504) => Some(IdpFailure::Timeout),
        Some(503) | None => Some(IdpFailure::Unreachable),
        Some(401 | 403) => Some(IdpFailure::ClientAuth),
        Some(500..=599) => Some(IdpFailure::ServerError),
        Some(_) => Some(IdpFailure::BadResponse),
    };
    if let Some(failure) = expected_failure {
        assert_eq!(judged, Err(failure), "status {status:?}");
        return;
    }
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&body) else {
        assert_eq!(judged, Err(IdpFailure::BadResponse), "not a JSON object");
        return;
    };
    match answer.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            assert_eq!(judged, Ok(Judgement::Refused(Rejection::Inactive)));
            return;
        }
        _ => {
            assert_eq!(judged, Err(IdpFailure::BadResponse), "active not a boolean");
            return;
        }
    }
    match judged {
        Err(failure) => {
            assert_eq!(failure, IdpFailure::BadResponse);
            let bad_time = ["exp", "nbf", "iat"].iter().any(|name| {
                answer
                    .get(*name)
                    .is_some_and(|value| !value.is_null() && value.as_i64().is_none())
            });
            assert!(
                bad_time,
                "a bad response with active: true and integer times"
            );
        }
        Ok(Judgement::Refused(rejection)) => {
            assert_ne!(rejection, Rejection::Inactive);
            oracle::check_rejection(&rejection);
            assert!(rejection.status() < 500, "{rejection:?}");
        }
        Ok(Judgement::Active(verified)) => check_active(&answer, &verified, now),
    }
}

fn check_active(answer: &Map<String, Value>, verified: &tokengate::jwt::Verified, now: i64) {
    if let Some(iss) = answer.get("iss") {
        assert_eq!(iss.as_str(), Some(ISSUER), "admitted with issuer {iss}");
    }
    if let Some(aud) = answer.get("aud") {
        let ok = match aud {
            Value::String(aud) => aud == "api",
            Value::Array(items) => {
                items.iter().all(Value::is_string) && items.iter().any(|a| a == "api")
            }
            _ => false,
        };
        assert!(ok, "admitted with audience {aud}");
    }
    let exp = answer.get("exp").and_then(Value::as_i64);
    if let Some(exp) = exp {
        assert!(
            now <= exp.saturating_add(SKEW),
            "admitted an expired answer"
        );
    }
    assert_eq!(
        verified.expires_at, exp,
        "the cache bound is not the answer's exp"
    );
    if let Some(nbf) = answer.get("nbf").and_then(Value::as_i64) {
        assert!(now >= nbf.saturating_sub(SKEW), "admitted before nbf");
    }
    if let Some(Value::String(typ)) = answer.get("typ") {
        assert!(
            typ.eq_ignore_ascii_case("bearer"),
            "admitted with typ {typ:?}"
        );
    }
    for value in verified.forwarded.iter().flatten() {
        oracle::check_header_value("forwarded", value);
    }
    match answer.get("sub") {
        Some(Value::String(sub)) => assert_eq!(verified.subject.as_deref(), Some(sub.as_str())),
        _ => assert_eq!(verified.subject, None),
    }
}

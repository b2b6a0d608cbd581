//! Introspection and hybrid gateways inside real Envoy, with a local HTTP server playing the
//! IdP's introspection endpoint so that every failure mode can be produced on demand (slow,
//! down, 5xx, garbage, refusing the gateway's credentials). The same gateways against real
//! Keycloak are in `keycloak_gateways.rs`.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::{Fixture, unix_now};
use futures::future::join_all;
use loadtest::http::Response;
use loadtest::stack::GatewaySpec;
use serde_json::json;
use tokengate::testkit::{TestKey, tamper_signature};

const INTROSPECT: &str = "/realms/tokengate/protocol/openid-connect/token/introspect";

impl Fixture {
    fn answer(&self, status: u16, body: serde_json::Value) {
        self.idp.set_response(INTROSPECT, status, body.to_string());
    }

    fn active(&self) -> serde_json::Value {
        json!({
            "active": true, "iss": self.issuer(), "aud": ["tokengate-api", "tokengate-gateway"],
            "typ": "Bearer", "sub": "introspected-subject", "azp": "tokengate-loadtest",
            "scope": "profile email", "exp": unix_now() + 300,
        })
    }

    fn calls(&self) -> u64 {
        self.idp.request_count(INTROSPECT)
    }
}

fn introspect(patch: serde_json::Value) -> GatewaySpec {
    GatewaySpec::new("introspect").patch(patch)
}

async fn metric(fixture: &Fixture, name: &str) -> Result<u64> {
    fixture.stat(name).await
}

fn assert_503(response: &Response, case: &str) -> Result<()> {
    ensure!(
        response.status == 503,
        "{case}: status {}: {}",
        response.status,
        response.text()
    );
    ensure!(
        response.header("retry-after") == Some("5"),
        "{case}: no Retry-After"
    );
    ensure!(
        response.header("www-authenticate").is_none(),
        "{case}: a 503 is no challenge"
    );
    Ok(())
}

#[tokio::test]
async fn introspection_verdicts_reach_the_client() -> Result<()> {
    let fixture = Fixture::start(introspect(json!({})))?;
    fixture.answer(200, fixture.active());
    let token = fixture.valid_token();
    let response = fixture.get_bearer(&token).await?;
    ensure!(response.status == 200, "active: {}", response.status);
    let echoed = response.json()?;
    ensure!(
        echoed["identity"]["x-jwt-sub"] == "introspected-subject",
        "claims come from the IdP's answer: {echoed}"
    );
    ensure!(metric(&fixture, "tokengate.introspection.calls").await? == 1);

    fixture.answer(200, json!({"active": false}));
    let before = metric(&fixture, "tokengate.denied.inactive").await?;
    let response = fixture.get_bearer(&token).await?;
    ensure!(response.status == 401);
    ensure!(
        response.header("www-authenticate")
            == Some(
                "Bearer realm=\"tokengate\", error=\"invalid_token\", \
                 error_description=\"The token is not active\""
            ),
        "{:?}",
        response.header("www-authenticate")
    );
    ensure!(metric(&fixture, "tokengate.denied.inactive").await? == before + 1);

    // Structurally broken tokens never reach the IdP.
    let calls = fixture.calls();
    for garbage in ["a.b.c.d.e", "x.y", "###", "not.a.jwt"] {
        let status = fixture.get_bearer(garbage).await?.status;
        ensure!(status == 401 || status == 400, "{garbage}: {status}");
    }
    let oversize = "a".repeat(9000);
    ensure!(fixture.get_bearer(&oversize).await?.status == 401);
    ensure!(fixture.calls() == calls, "a broken token cost a call");
    ensure!(
        !fixture
            .gateway
            .envoy
            .log_contents()
            .contains("no wake-up queue"),
        "calls must be dispatched by the root context"
    );
    Ok(())
}

#[tokio::test]
async fn idp_failures_are_503_with_their_kind() -> Result<()> {
    let mut fixture = Fixture::start(introspect(json!({"introspection": {"timeout_ms": 300}})))?;
    let token = fixture.valid_token();
    let cases: [(&str, u16, &str); 3] = [
        ("server_error", 500, "{}"),
        ("bad_response", 200, "<html>not json</html>"),
        ("client_auth", 401, "{\"error\":\"invalid_client\"}"),
    ];
    for (kind, status, body) in cases {
        fixture
            .idp
            .set_response(INTROSPECT, status, body.to_owned());
        let metric_name = format!("tokengate.introspection.idp_error.{kind}");
        let before = metric(&fixture, &metric_name).await?;
        let denied = metric(&fixture, "tokengate.denied.idp_unavailable").await?;
        assert_503(&fixture.get_bearer(&token).await?, kind)?;
        ensure!(
            metric(&fixture, &metric_name).await? == before + 1,
            "{kind}"
        );
        ensure!(metric(&fixture, "tokengate.denied.idp_unavailable").await? == denied + 1);
    }

    // Slow IdP: the answer comes within the call's timeout, not the IdP's delay.
    fixture.answer(200, fixture.active());
    fixture.idp.set_delay(Duration::from_secs(3));
    let started = Instant::now();
    assert_503(&fixture.get_bearer(&token).await?, "timeout")?;
    ensure!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    ensure!(metric(&fixture, "tokengate.introspection.idp_error.timeout").await? == 1);

    // IdP down: connection refused.
    fixture.idp.set_delay(Duration::ZERO);
    fixture.idp.stop();
    assert_503(&fixture.get_bearer(&token).await?, "unreachable")?;
    ensure!(metric(&fixture, "tokengate.introspection.idp_error.unreachable").await? == 1);

    // Back up: no restart needed.
    fixture.idp.start()?;
    ensure!(fixture.get_bearer(&token).await?.status == 200);
    Ok(())
}

#[tokio::test]
async fn concurrent_requests_with_one_token_share_one_call() -> Result<()> {
    let fixture = Fixture::start(introspect(json!({})))?;
    fixture.answer(200, fixture.active());
    // A slow IdP keeps the first call open while the others arrive.
    fixture.idp.set_delay(Duration::from_millis(400));
    let token = fixture.valid_token();
    let requests = (0..12).map(|_| fixture.get_bearer(&token));
    let responses = join_all(requests).await;
    for response in responses {
        ensure!(response?.status == 200);
    }
    ensure!(
        fixture.calls() == 1,
        "{} calls for one token",
        fixture.calls()
    );
    ensure!(metric(&fixture, "tokengate.introspection.calls").await? == 1);
    ensure!(metric(&fixture, "tokengate.introspection.coalesced").await? == 11);
    Ok(())
}

#[tokio::test]
async fn too_many_open_calls_are_refused_not_queued() -> Result<()> {
    let fixture = Fixture::start(introspect(json!({"introspection": {"max_in_flight": 2}})))?;
    fixture.answer(200, fixture.active());
    fixture.idp.set_delay(Duration::from_millis(500));
    let tokens: Vec<String> = (0..5)
        .map(|i| {
            fixture
                .token()
                .claim("jti", format!("distinct-{i}"))
                .sign(TestKey::rsa_a())
        })
        .collect();
    let responses = join_all(tokens.iter().map(|t| fixture.get_bearer(t))).await;
    let mut statuses: Vec<u16> = Vec::new();
    for response in responses {
        statuses.push(response?.status);
    }
    statuses.sort_unstable();
    ensure!(statuses == [200, 200, 503, 503, 503], "{statuses:?}");
    ensure!(metric(&fixture, "tokengate.introspection.idp_error.overloaded").await? == 3);
    Ok(())
}

#[tokio::test]
async fn introspection_cache_positive_and_negative() -> Result<()> {
    let fixture = Fixture::start(introspect(json!({"introspection": {
        "cache_ttl_seconds": 30, "negative_cache_ttl_seconds": 30
    }})))?;
    fixture.answer(200, fixture.active());
    let token = fixture.valid_token();
    for _ in 0..3 {
        ensure!(fixture.get_bearer(&token).await?.status == 200);
    }
    ensure!(fixture.calls() == 1);
    ensure!(metric(&fixture, "tokengate.introspection.cache_hit_positive").await? == 2);
    ensure!(metric(&fixture, "tokengate.introspection.cache_miss").await? == 1);

    fixture.answer(200, json!({"active": false}));
    let revoked = fixture.token().claim("jti", "other").sign(TestKey::rsa_a());
    for _ in 0..3 {
        ensure!(fixture.get_bearer(&revoked).await?.status == 401);
    }
    ensure!(fixture.calls() == 2);
    ensure!(metric(&fixture, "tokengate.introspection.cache_hit_negative").await? == 2);
    Ok(())
}

#[tokio::test]
async fn hybrid_never_calls_for_invalid_tokens_and_can_fail_open() -> Result<()> {
    let fixture =
        Fixture::start(GatewaySpec::new("hybrid").patch(json!({"on_idp_error": "allow"})))?;
    fixture.wait_for_keys().await?;
    fixture.answer(200, fixture.active());
    let token = fixture.valid_token();
    let response = fixture
        .get(&[
            ("authorization", &format!("Bearer {token}")),
            ("x-tokengate-degraded", "forged"),
        ])
        .await?;
    ensure!(response.status == 200);
    let echoed = response.json()?;
    ensure!(
        echoed["identity"].get("x-tokengate-degraded").is_none(),
        "{echoed}"
    );
    ensure!(
        echoed["identity"]["x-jwt-sub"] == common::SUB,
        "local claims are forwarded"
    );
    let calls = fixture.calls();

    let tampered = tamper_signature(&fixture.valid_token());
    ensure!(fixture.get_bearer(&tampered).await?.status == 401);
    let expired = fixture
        .token()
        .claim("exp", unix_now() - 60)
        .sign(TestKey::rsa_a());
    ensure!(fixture.get_bearer(&expired).await?.status == 401);
    ensure!(fixture.calls() == calls, "invalid tokens cost a call");
    ensure!(metric(&fixture, "tokengate.introspection.calls").await? == calls);

    // The IdP fails: fail-open admits, marked for the upstream, and counted.
    fixture.answer(500, json!({}));
    let fresh = fixture.token().claim("jti", "fresh").sign(TestKey::rsa_a());
    let response = fixture.get_bearer(&fresh).await?;
    ensure!(response.status == 200, "{}", response.status);
    ensure!(response.json()?["identity"]["x-tokengate-degraded"] == "idp-unavailable");
    ensure!(metric(&fixture, "tokengate.allowed_degraded").await? == 1);
    ensure!(
        fixture
            .gateway
            .envoy
            .log_contents()
            .contains("`on_idp_error` is `allow`")
    );
    Ok(())
}

//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0) in real Envoy, through the
//! `jwt-bcl` gateway: the IdP posts logout tokens to the logout listener only it reaches; the
//! API listener refuses the ended sessions' tokens.
//!
//! Against a local JWKS server holding the test keys (logout tokens minted here):
//! - [`refusals`]: every forged logout token gets 400 and revokes nothing, other methods 405,
//!   the API listener does not take logouts, and a flood of valid ones keeps the set of ended
//!   sessions bounded;
//! - [`keys`]: a logout token that comes before the gateway holds its keys gets 503 while the
//!   IdP is down and waits for the first key set when the IdP is slow; one signed with a key
//!   the gateway has not seen yet (a rotation) waits for one refetch;
//! - [`relay`]: between two replicas, a relay that finds its peer down, or answering 503, is
//!   sent again; one the peer refuses (400) is final.
//!
//! Against real Keycloak (`loadtest::keycloak::shared`), [`keycloak`]: an admin logout of a
//! password-grant session makes two replicas refuse that session's token, without
//! introspection, while another session of the same client stays admitted; and the time from
//! the logout call to the first refusal, over [`keycloak::MEASURED_SESSIONS`] sessions,
//! printed (asserted only against the issue's bound: refused within
//! [`keycloak::LOGOUT_TO_REFUSAL`] of Keycloak confirming the logout).

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod keycloak;
mod keys;
mod refusals;
mod relay;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Fixture, unix_now};
use loadtest::http::{self, Response};
use loadtest::stack::{GatewaySpec, RunningGateway, start_gateway};
use serde_json::json;
use tokengate::testkit::{TestKey, TokenSpec};

const GATEWAY: &str = "jwt-bcl";
/// The logout listener's path in `envoy/jwt-bcl.yaml`.
const LOGOUT_PATH: &str = "/backchannel-logout";
/// The client the logout tokens are for (`backchannel_logout.audiences`).
const CLIENT: &str = "tokengate-loadtest";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// `tokengate.revocation.*` and friends, as Envoy shows them.
const RECEIVED: &str = "tokengate.revocation.received";
const RELAYED: &str = "tokengate.revocation.relayed";
const ENTRIES: &str = "tokengate.revocation.entries";
const DROPPED: &str = "tokengate.revocation.dropped";
const SESSION_ENDED: &str = "tokengate.denied.session_ended";
const INTROSPECTIONS: &str = "tokengate.introspection.calls";

/// A logout token as Keycloak writes one (NOTES §9), for the local JWKS server's key `k1`.
fn logout_token(issuer: &str, sid: &str, jti: &str) -> TokenSpec {
    let now = unix_now();
    TokenSpec {
        header: json!({"alg": "RS256", "typ": "logout+jwt", "kid": "k1"})
            .as_object()
            .cloned()
            .unwrap(),
        claims: json!({
            "iss": issuer,
            "aud": CLIENT,
            "sub": common::SUB,
            "sid": sid,
            "jti": jti,
            "iat": now,
            "exp": now + 120,
            "typ": "Logout",
            "events": {EVENT: {}},
        })
        .as_object()
        .cloned()
        .unwrap(),
    }
}

fn form(token: &str) -> Vec<u8> {
    format!("logout_token={token}").into_bytes()
}

async fn post(url: &str, body: Vec<u8>) -> Result<Response> {
    http::send(
        "POST",
        url,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(body),
    )
    .await
}

async fn call(gateway: &RunningGateway, token: &str) -> Result<Response> {
    let bearer = format!("Bearer {token}");
    http::get(&gateway.url("/api/orders"), &[("authorization", &bearer)]).await
}

async fn stat(gateway: &RunningGateway, name: &str) -> Result<u64> {
    gateway.envoy.stat(&format!("wasmcustom.{name}")).await
}

/// The refusal of an ended session's token: 401 `invalid_token`, "session has ended".
fn ensure_session_ended(response: &Response, label: &str) -> Result<()> {
    ensure!(response.status == 401, "{label}: {}", response.status);
    let challenge = response.header("www-authenticate").unwrap_or_default();
    ensure!(
        challenge.contains(r#"error="invalid_token""#)
            && challenge.contains(r#"error_description="The token's session has ended""#),
        "{label}: {challenge}"
    );
    Ok(())
}

/// The answer to a refused logout token: 400, a JSON error, never cached.
fn ensure_refused_logout(response: &Response, label: &str) -> Result<()> {
    ensure!(
        response.status == 400,
        "{label}: {} {}",
        response.status,
        response.text()
    );
    ensure!(
        response.header("cache-control") == Some("no-store"),
        "{label}: {:?}",
        response.headers
    );
    ensure!(
        response.header("content-type") == Some("application/json"),
        "{label}: {:?}",
        response.headers
    );
    let error = response.json()?;
    ensure!(
        error["error"] == "invalid_request" && error["error_description"].is_string(),
        "{label}: {error}"
    );
    Ok(())
}

async fn wait_admitted(fixture: &Fixture, token: &str) -> Result<()> {
    for _ in 0..100 {
        if fixture.get_bearer(token).await?.status == 200 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("a valid token was never admitted")
}

/// Starts replica `name` of the gateway in `dir`: its logout listener on `own`, relaying to the
/// one on `peer`; `spec` adds to the gateway's own.
fn start_replica(
    dir: &std::path::Path,
    name: &str,
    spec: GatewaySpec,
    (own, peer): (u16, u16),
    (backend_port, idp_port): (u16, u16),
) -> Result<RunningGateway> {
    let gateway_dir = dir.join(name);
    std::fs::create_dir_all(&gateway_dir)?;
    start_gateway(
        &gateway_dir,
        &spec.replica(own, peer),
        backend_port,
        idp_port,
    )
    .with_context(|| format!("starting replica {name}"))
}

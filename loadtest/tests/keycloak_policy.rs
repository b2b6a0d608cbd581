//! The `policy` gateway (envoy/policy.yaml) in real Envoy against real Keycloak's two realms:
//! `tokengate` (RS256, JWKS at a fixed path) and `tokengate-partner` (ES256, JWKS found
//! through its discovery document), with users with and without the realm role `admin`.
//!
//! One Keycloak serves the suite (`loadtest::keycloak::shared`, or `TOKENGATE_KEYCLOAK_URL`).

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use loadtest::http::{self, Response};
use loadtest::keycloak::{
    self, ALICE, BOB, CAROL, ES256, LOADTEST, PARTNER_LOADTEST, PARTNER_REALM,
};
use loadtest::stack::{GatewaySpec, start_gateway};
use serde_json::Value;

async fn get(
    gateway: &loadtest::stack::RunningGateway,
    path: &str,
    token: Option<&str>,
) -> Result<Response> {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| vec![("authorization", value), ("x-jwt-sub", "forged")])
        .unwrap_or_else(|| vec![("x-jwt-sub", "forged")]);
    http::get(&gateway.url(path), &headers).await
}

/// The same token with its payload's `iss` replaced: signed by one realm's key, claiming the
/// other realm (the signature no longer matches, and the key is the wrong realm's).
fn with_issuer(token: &str, issuer: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
    let mut claims: Value = serde_json::from_slice(&payload).unwrap();
    claims["iss"] = Value::String(issuer.to_owned());
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts.join(".")
}

#[tokio::test]
async fn two_realms_through_the_policy_gateway() -> Result<()> {
    let kc = keycloak::shared()?;
    let dir = loadtest::paths::run_dir("keycloak-policy");
    let (_backend, backend) = loadtest::backend::spawn(&dir, "backend", 1)?;
    let gateway = start_gateway(&dir, &GatewaySpec::new("policy"), backend.port(), kc.port())?;
    let internal = kc.client();
    let partner = kc.realm_client(PARTNER_REALM);
    let alice = internal
        .password_grant(LOADTEST.id, LOADTEST.secret, ALICE.username, ALICE.password)
        .await?
        .access_token;
    let carol = internal
        .password_grant(LOADTEST.id, LOADTEST.secret, CAROL.username, CAROL.password)
        .await?
        .access_token;
    let es256 = internal
        .client_credentials(ES256.id, ES256.secret)
        .await?
        .access_token;
    let bob = partner
        .password_grant(
            PARTNER_LOADTEST.id,
            PARTNER_LOADTEST.secret,
            BOB.username,
            BOB.password,
        )
        .await?
        .access_token;
    ensure!(
        keycloak::decode_unverified(&bob)?.header["alg"] == "ES256",
        "the partner realm signs ES256"
    );

    // Both providers' keys are fetched at start (the partner's through discovery).
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&gateway, "/api/orders", Some(&bob)).await?.status != 200 {
        ensure!(
            Instant::now() < deadline,
            "the partner realm's token was never admitted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let impostor = with_issuer(&bob, &kc.issuer());
    let cases: Vec<(&str, &str, Option<&str>, u16)> = vec![
        ("no token on the public path", "/health", None, 200),
        ("no token on the API", "/api/orders", None, 401),
        (
            "realm A (alice) on the API",
            "/api/orders",
            Some(&alice),
            200,
        ),
        (
            "realm A, ES256 client, on the API",
            "/api/orders",
            Some(&es256),
            200,
        ),
        ("realm B (bob) on the API", "/api/orders", Some(&bob), 200),
        (
            "realm B on realm A's admin path",
            "/admin/users",
            Some(&bob),
            401,
        ),
        (
            "realm A without the admin role on the admin path",
            "/admin/users",
            Some(&alice),
            403,
        ),
        (
            "realm A with the admin role on the admin path",
            "/admin/users",
            Some(&carol),
            200,
        ),
        (
            "iss of realm A, signed by realm B",
            "/api/orders",
            Some(&impostor),
            401,
        ),
        (
            "realm B on the partner-only route",
            "/reports/q3",
            Some(&bob),
            200,
        ),
        (
            "realm A on the partner-only route",
            "/reports/q3",
            Some(&alice),
            401,
        ),
        (
            "realm B on the tools (RBAC admits it)",
            "/tools/run",
            Some(&bob),
            200,
        ),
        (
            "realm A on the tools (RBAC refuses it)",
            "/tools/run",
            Some(&alice),
            403,
        ),
        ("no rule", "/elsewhere", Some(&alice), 403),
    ];
    for (case, path, token, status) in cases {
        let response = get(&gateway, path, token).await?;
        ensure!(
            response.status == status,
            "{case}: {} (expected {status}): {}",
            response.status,
            response.text()
        );
        if status == 200 {
            let identity = &response.json()?["identity"];
            ensure!(
                identity["x-jwt-sub"] != "forged",
                "{case}: the forged header reached the backend"
            );
            if token.is_some() {
                ensure!(identity["x-jwt-sub"].is_string(), "{case}: {identity}");
            }
        }
        eprintln!("ok: {case} -> {status}");
    }
    let route = |response: &Response| {
        response
            .json()
            .map(|b| b["identity"]["x-tokengate-route"].clone())
    };
    ensure!(route(&get(&gateway, "/api/orders", Some(&bob)).await?)? == "api-partner");
    ensure!(route(&get(&gateway, "/api/orders", Some(&alice)).await?)? == "default");
    eprintln!("ok: the route follows the verified issuer (api-partner for realm B)");
    Ok(())
}

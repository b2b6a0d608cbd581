//! The built tokengate.wasm inside real Envoy, with the backend and a local JWKS server as
//! child processes on free ports. Every outcome is checked on the wire (status,
//! `WWW-Authenticate`, forwarded headers) and in Envoy's `/stats`.
//!
//! Needs `target/wasm32-wasip1/release/tokengate.wasm` and Envoy (see `scripts/setup`); the
//! suite fails, not skips, when they are missing.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::{AUDIENCE, CERTS, Fixture, SUB, published_keys, unix_now};
use loadtest::http::{self, Response};
use loadtest::stack::{GatewaySpec, start_gateway_expecting_refusal};
use serde_json::json;
use tokengate::algorithm::Algorithm;
use tokengate::testkit::{TestKey, TokenSpec, sign_raw, tamper_signature};

fn challenge(response: &Response) -> Option<&str> {
    response.header("www-authenticate")
}

fn invalid_token_challenge(description: &str) -> String {
    format!(
        "Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"{description}\""
    )
}

/// Sends one request and checks status, challenge and that exactly one `denied.<reason>`
/// (or `allowed`) increment happened.
async fn expect(
    fixture: &Fixture,
    case: &str,
    headers: &[(&str, &str)],
    status: u16,
    www_authenticate: Option<&str>,
    metric: &str,
) -> Result<Response> {
    let before = fixture.stat(metric).await?;
    let response = fixture.get(headers).await?;
    let after = fixture.stat(metric).await?;
    if response.status != status {
        bail!(
            "{case}: status {} (expected {status}): {}",
            response.status,
            response.text()
        );
    }
    if challenge(&response) != www_authenticate {
        bail!(
            "{case}: WWW-Authenticate {:?} (expected {www_authenticate:?})",
            challenge(&response)
        );
    }
    if after != before + 1 {
        bail!("{case}: {metric} went from {before} to {after}");
    }
    if status != 200 {
        let body = response.json()?;
        if !body["error"].is_string() || !body["error_description"].is_string() {
            bail!("{case}: body {body}");
        }
    }
    Ok(response)
}

#[tokio::test]
async fn every_outcome_has_its_status_challenge_and_metric() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt"))?;
    fixture.wait_for_keys().await?;
    let issuer = fixture.issuer();
    let now = unix_now();
    let token = |spec: TokenSpec| spec.sign(TestKey::rsa_a());
    let bearer = |token: String| format!("Bearer {token}");

    // Allowed: the identity reaches the backend, client-supplied identity headers do not.
    let valid = fixture.valid_token();
    let response = expect(
        &fixture,
        "valid",
        &[
            ("authorization", &bearer(valid.clone())),
            ("x-jwt-sub", "admin"),
            ("x-jwt-roles", "admin"),
        ],
        200,
        None,
        "tokengate.allowed",
    )
    .await?;
    let echoed = response.json()?;
    assert_eq!(echoed["identity"]["x-jwt-sub"], SUB);
    assert_eq!(echoed["identity"]["x-jwt-roles"], "offline_access user");
    assert_eq!(echoed["identity"]["x-jwt-client"], "tokengate-loadtest");
    assert_eq!(echoed["identity"]["x-jwt-scope"], "openid profile email");
    assert_eq!(echoed["identity"]["authorization"], bearer(valid.clone()));

    let es256 = TokenSpec::access_token(Algorithm::Es256, "ec1", &issuer, AUDIENCE, now)
        .sign(TestKey::p256());
    expect(
        &fixture,
        "ES256",
        &[("authorization", &bearer(es256))],
        200,
        None,
        "tokengate.allowed",
    )
    .await?;

    let bare = "Bearer realm=\"tokengate\"";
    expect(
        &fixture,
        "no credentials",
        &[],
        401,
        Some(bare),
        "tokengate.denied.missing",
    )
    .await?;
    expect(
        &fixture,
        "basic auth",
        &[("authorization", "Basic dXNlcjpwYXNz")],
        401,
        Some(bare),
        "tokengate.denied.missing",
    )
    .await?;

    let invalid_request = |description: &str| {
        format!(
            "Bearer realm=\"tokengate\", error=\"invalid_request\", error_description=\"{description}\""
        )
    };
    expect(
        &fixture,
        "two tokens",
        &[
            ("authorization", &bearer(valid.clone())),
            ("authorization", &bearer(valid.clone())),
        ],
        400,
        Some(&invalid_request("The request carries more than one token")),
        "tokengate.denied.invalid_request",
    )
    .await?;
    expect(
        &fixture,
        "scheme without token",
        &[("authorization", "Bearer")],
        400,
        Some(&invalid_request(
            "The authorization scheme is not followed by a token",
        )),
        "tokengate.denied.invalid_request",
    )
    .await?;

    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "too large",
            token(fixture.token().claim("pad", "x".repeat(9000))),
            "tokengate.denied.too_large",
            "The token is too large",
        ),
        (
            "not a JWT",
            "not-a-jwt".to_owned(),
            "tokengate.denied.malformed",
            "The token is malformed",
        ),
        (
            "JWE",
            "a.b.c.d.e".to_owned(),
            "tokengate.denied.malformed",
            "Encrypted tokens (JWE) are not accepted",
        ),
        (
            "crit",
            token(fixture.token().header("crit", json!(["exp"]))),
            "tokengate.denied.malformed",
            "The token requires unsupported header extensions",
        ),
        (
            "payload not an object",
            sign_raw(
                r#"{"alg":"RS256","kid":"k1"}"#,
                "[]",
                TestKey::rsa_a(),
                Algorithm::Rs256,
            ),
            "tokengate.denied.malformed",
            "The token claims are malformed",
        ),
        (
            "alg none",
            fixture
                .token()
                .header("alg", "none")
                .with_signature_segment(""),
            "tokengate.denied.algorithm",
            "The token signing algorithm is not allowed",
        ),
        (
            "alg HS256",
            fixture
                .token()
                .header("alg", "HS256")
                .with_signature_segment("c2ln"),
            "tokengate.denied.algorithm",
            "The token signing algorithm is not allowed",
        ),
        (
            "bad signature",
            tamper_signature(&fixture.valid_token()),
            "tokengate.denied.bad_signature",
            "The token signature is invalid",
        ),
        (
            "signed by the enc key",
            token(fixture.token().header("kid", "enc-key")),
            "tokengate.denied.unknown_kid",
            "The token signing key is unknown",
        ),
        (
            "weak key",
            token(fixture.token().header("kid", "weak")),
            "tokengate.denied.unknown_kid",
            "The token signing key is unknown",
        ),
        (
            "missing exp",
            token(fixture.token().without_claim("exp")),
            "tokengate.denied.missing_exp",
            "The token has no expiration time",
        ),
        (
            "expired",
            token(fixture.token().claim("exp", now - 120)),
            "tokengate.denied.expired",
            "The token expired",
        ),
        (
            "not yet valid",
            token(fixture.token().claim("nbf", now + 120)),
            "tokengate.denied.not_yet_valid",
            "The token is not valid yet",
        ),
        (
            "wrong issuer",
            token(
                fixture
                    .token()
                    .claim("iss", "http://evil.example/realms/tokengate"),
            ),
            "tokengate.denied.issuer",
            "The token issuer is not accepted",
        ),
        (
            "wrong audience",
            token(fixture.token().claim("aud", "account")),
            "tokengate.denied.audience",
            "The token audience is not accepted",
        ),
        (
            "ID token",
            token(fixture.token().claim("typ", "ID")),
            "tokengate.denied.token_type",
            "The token is not an access token",
        ),
        (
            "refresh token",
            token(fixture.token().claim("typ", "Refresh")),
            "tokengate.denied.token_type",
            "The token is not an access token",
        ),
        (
            "header injection via claim",
            token(fixture.token().claim("sub", "x\r\nx-admin: true")),
            "tokengate.denied.claim_value",
            "A token claim cannot be forwarded",
        ),
    ];
    for (case, token, metric, description) in cases {
        expect(
            &fixture,
            case,
            &[("authorization", &bearer(token))],
            401,
            Some(&invalid_token_challenge(description)),
            metric,
        )
        .await?;
    }
    // Nothing about a token ever reaches Envoy's log.
    let log = fixture.gateway.envoy.log_contents();
    assert!(!log.contains(&valid), "the token leaked into the log");
    Ok(())
}

#[tokio::test]
async fn verified_tokens_are_cached() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt"))?;
    fixture.wait_for_keys().await?;
    let token = fixture.valid_token();
    let hits = fixture.stat("tokengate.cache.hit").await?;
    let misses = fixture.stat("tokengate.cache.miss").await?;
    for _ in 0..5 {
        assert_eq!(fixture.get_bearer(&token).await?.status, 200);
    }
    assert_eq!(fixture.stat("tokengate.cache.miss").await?, misses + 1);
    assert_eq!(fixture.stat("tokengate.cache.hit").await?, hits + 4);
    // A cached token with a tampered signature is a different token: no hit.
    let response = fixture.get_bearer(&tamper_signature(&token)).await?;
    assert_eq!(response.status, 401);
    assert_eq!(fixture.stat("tokengate.cache.hit").await?, hits + 4);
    Ok(())
}

#[tokio::test]
async fn scopes_are_enforced_with_403() -> Result<()> {
    let fixture = Fixture::start(
        GatewaySpec::new("jwt").patch(json!({"required_scopes": ["email", "orders:read"]})),
    )?;
    fixture.wait_for_keys().await?;
    let lacking = fixture.valid_token();
    let scope_challenge = "Bearer realm=\"tokengate\", error=\"insufficient_scope\", \
         error_description=\"The token lacks a required scope\", scope=\"email orders:read\"";
    let header = format!("Bearer {lacking}");
    expect(
        &fixture,
        "lacking scope",
        &[("authorization", &header)],
        403,
        Some(scope_challenge),
        "tokengate.denied.scope",
    )
    .await?;
    let granted = fixture
        .token()
        .claim("scope", "email orders:read")
        .sign(TestKey::rsa_a());
    let header = format!("Bearer {granted}");
    expect(
        &fixture,
        "granted",
        &[("authorization", &header)],
        200,
        None,
        "tokengate.allowed",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_misconfigured_gateway_lets_expired_tokens_through() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt-no-exp"))?;
    fixture.wait_for_keys().await?;
    assert_eq!(
        fixture.stat("tokengate.config.exp_check_disabled").await?,
        1
    );
    let expired = fixture
        .token()
        .claim("exp", unix_now() - 3600)
        .sign(TestKey::rsa_a());
    let header = format!("Bearer {expired}");
    expect(
        &fixture,
        "expired",
        &[("authorization", &header)],
        200,
        None,
        "tokengate.allowed",
    )
    .await?;
    assert!(
        fixture
            .gateway
            .envoy
            .log_contents()
            .contains("expired tokens will be accepted"),
        "the start-up warning is missing"
    );
    // The signature is still checked.
    let forged = tamper_signature(&expired);
    assert_eq!(fixture.get_bearer(&forged).await?.status, 401);
    Ok(())
}

#[tokio::test]
async fn token_sources_and_stripping() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "forward": {"strip_authorization": true}
    })))?;
    fixture.wait_for_keys().await?;
    let response = fixture.get_bearer(&fixture.valid_token()).await?;
    assert_eq!(response.status, 200);
    let echoed = response.json()?;
    assert!(
        echoed["identity"].get("authorization").is_none(),
        "{echoed}"
    );
    assert_eq!(echoed["identity"]["x-jwt-sub"], SUB);

    let query = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "token_source": {"query": "access_token"},
        "forward": {"strip_authorization": true},
    })))?;
    query.wait_for_keys().await?;
    let url = query
        .gateway
        .url(&format!("/search?q=1&access_token={}", query.valid_token()));
    let response = http::get(&url, &[]).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()?["path"], "/search?q=1");
    let url = query.gateway.url("/search?access_token=a&access_token=b");
    assert_eq!(http::get(&url, &[]).await?.status, 400);

    let cookie = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "token_source": {"cookie": "session"},
    })))?;
    cookie.wait_for_keys().await?;
    let value = format!("theme=dark; session={}", cookie.valid_token());
    let response = cookie.get(&[("cookie", &value)]).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    Ok(())
}

/// Status of a GET sent as raw HTTP/1.1 (each header line exactly as given), for cases the
/// HTTP client would normalise: repeated lines, mixed-case names.
async fn raw_status(fixture: &Fixture, header_lines: &[String]) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = fixture.gateway.envoy.listen_port();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut request = format!("GET /orders/42 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for line in header_lines {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    status.ok_or_else(|| anyhow::anyhow!("no HTTP status in {text:?}"))
}

/// The filter reads only the header its token source needs. Envoy keeps `authorization` as
/// one entry, joining repeated lines with commas, so reading that one value still sees every
/// token; other headers (and `cookie`) stay separate entries and are read in full. Either way
/// a request carrying two tokens is refused with 400, whatever the spelling of the lines.
#[tokio::test]
async fn repeated_token_headers_are_refused_for_every_source() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt"))?;
    fixture.wait_for_keys().await?;
    let valid = fixture.valid_token();
    let one = format!("Authorization: Bearer {valid}");
    assert_eq!(raw_status(&fixture, std::slice::from_ref(&one)).await?, 200);
    for lines in [
        vec![one.clone(), one.clone()],
        vec![
            format!("authorization: Bearer {valid}"),
            format!("AUTHORIZATION: Bearer {valid}"),
        ],
        vec![one.clone(), "Authorization: Basic dXNlcjpwYXNz".to_owned()],
    ] {
        assert_eq!(raw_status(&fixture, &lines).await?, 400, "{lines:?}");
    }

    let header = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "token_source": {"header": "X-Token", "prefix": ""},
    })))?;
    header.wait_for_keys().await?;
    let token = header.valid_token();
    assert_eq!(header.get(&[("x-token", &token)]).await?.status, 200);
    let twice = header
        .get(&[("x-token", &token), ("x-token", &token)])
        .await?;
    assert_eq!(twice.status, 400, "{}", twice.text());
    let lines = [format!("x-token: {token}"), format!("X-TOKEN: {token}")];
    assert_eq!(raw_status(&header, &lines).await?, 400);

    let cookie = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "token_source": {"cookie": "session"},
    })))?;
    cookie.wait_for_keys().await?;
    let token = cookie.valid_token();
    let session = format!("session={token}");
    let twice = cookie
        .get(&[
            ("cookie", "theme=dark"),
            ("cookie", &session),
            ("cookie", &session),
        ])
        .await?;
    assert_eq!(twice.status, 400, "{}", twice.text());
    let split = cookie
        .get(&[("cookie", "theme=dark"), ("cookie", &session)])
        .await?;
    assert_eq!(split.status, 200, "{}", split.text());
    Ok(())
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_refetch_on_unknown_kid() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt"))?;
    fixture.wait_for_keys().await?;
    let fetches = fixture.idp.request_count(CERTS);
    // The IdP rotates: a new key appears, and tokens signed with it arrive at once.
    fixture.idp.set_response(
        CERTS,
        200,
        published_keys(&[TestKey::rsa_b().public_jwk("k2", Some("RS256"))]),
    );
    let rotated = fixture.token().header("kid", "k2").sign(TestKey::rsa_b());
    let header = format!("Bearer {rotated}");
    expect(
        &fixture,
        "new kid",
        &[("authorization", &header)],
        200,
        None,
        "tokengate.allowed",
    )
    .await?;
    assert_eq!(fixture.idp.request_count(CERTS), fetches + 1);
    assert_eq!(fixture.stat("tokengate.jwks.kid_refetch").await?, 1);

    // Another unknown kid within 30 s is refused without hammering the IdP.
    let unknown = fixture.token().header("kid", "k3").sign(TestKey::rsa_b());
    let header = format!("Bearer {unknown}");
    expect(
        &fixture,
        "rate-limited unknown kid",
        &[("authorization", &header)],
        401,
        Some(&invalid_token_challenge("The token signing key is unknown")),
        "tokengate.denied.unknown_kid",
    )
    .await?;
    assert_eq!(fixture.idp.request_count(CERTS), fetches + 1);
    assert_eq!(fixture.stat("tokengate.jwks.kid_refetch").await?, 1);
    Ok(())
}

#[tokio::test]
async fn idp_down_at_start_gives_503_then_recovers() -> Result<()> {
    let mut fixture = Fixture::start_with(GatewaySpec::new("jwt"), false)?;
    let token = fixture.valid_token();
    let header = format!("Bearer {token}");
    let response = expect(
        &fixture,
        "no keys yet",
        &[("authorization", &header)],
        503,
        None,
        "tokengate.denied.keys_unavailable",
    )
    .await?;
    assert_eq!(response.header("retry-after"), Some("5"));
    // Garbage is still garbage: a 401, not a 503.
    assert_eq!(fixture.get_bearer("garbage").await?.status, 401);
    fixture
        .gateway
        .envoy
        .wait_for_stat(
            "wasmcustom.tokengate.jwks.fetch_failure",
            1,
            Duration::from_secs(10),
        )
        .await?;

    fixture.idp.start()?;
    fixture.wait_for_keys().await?;
    assert_eq!(fixture.get_bearer(&token).await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn failed_refresh_keeps_the_last_good_keys() -> Result<()> {
    let mut fixture = Fixture::start(
        GatewaySpec::new("jwt").patch(json!({"jwks": {"remote": {"refresh_seconds": 10}}})),
    )?;
    fixture.wait_for_keys().await?;
    let token = fixture.valid_token();
    assert_eq!(fixture.get_bearer(&token).await?.status, 200);
    // The IdP starts serving garbage, then disappears.
    fixture
        .idp
        .set_response(CERTS, 200, "{\"keys\": \"nope\"}".to_owned());
    fixture
        .gateway
        .envoy
        .wait_for_stat(
            "wasmcustom.tokengate.jwks.fetch_failure",
            1,
            Duration::from_secs(30),
        )
        .await?;
    fixture.idp.stop();
    let failures = fixture.stat("tokengate.jwks.fetch_failure").await?;
    fixture
        .gateway
        .envoy
        .wait_for_stat(
            "wasmcustom.tokengate.jwks.fetch_failure",
            failures + 1,
            Duration::from_secs(30),
        )
        .await?;
    // A fresh token (no cache entry) still validates against the kept keys.
    let fresh = fixture.token().claim("jti", "fresh").sign(TestKey::rsa_a());
    assert_eq!(fixture.get_bearer(&fresh).await?.status, 200);
    assert_eq!(fixture.stat("tokengate.jwks.keys_loaded").await?, 2);
    Ok(())
}

#[tokio::test]
async fn workers_share_one_key_set() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt").concurrency(2))?;
    fixture.wait_for_keys().await?;
    // Let every worker tick a few times; they must take the shared copy, not fetch their own.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fetches = fixture.idp.request_count(CERTS);
    assert!(
        (1..=2).contains(&fetches),
        "{fetches} fetches for 2 workers"
    );
    let started = Instant::now();
    for i in 0..20 {
        let token = fixture
            .token()
            .claim("jti", format!("t{i}"))
            .sign(TestKey::rsa_a());
        assert_eq!(fixture.get_bearer(&token).await?.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(fixture.idp.request_count(CERTS), fetches);
    Ok(())
}

#[tokio::test]
async fn bad_configuration_stops_envoy_and_names_the_field() -> Result<()> {
    let dir = loadtest::paths::run_dir("e2e-bad-config");
    let cases = [
        (json!({"audiences": 5}), "field `audiences`"),
        (
            json!({"claims_to_verfy": ["exp"]}),
            "field `claims_to_verfy`",
        ),
        (json!({"mode": "introspect"}), "field `jwks`"),
        (json!({"mode": "hybrid"}), "field `introspection`"),
        (json!({"mode": "magic"}), "field `mode`"),
        (json!({"algorithms": ["none"]}), "field `algorithms[0]`"),
        (
            json!({"jwks": {"remote": {"path": "certs"}}}),
            "field `jwks.remote.path`",
        ),
    ];
    for (patch, expected) in cases {
        let spec = GatewaySpec::new("jwt").patch(patch.clone());
        let log = start_gateway_expecting_refusal(&dir, &spec, 9, 9)?;
        assert!(
            log.contains(&format!("tokengate: invalid configuration: {expected}")),
            "{patch}: log does not name the field:\n{log}"
        );
    }
    Ok(())
}

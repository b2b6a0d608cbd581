//! Every outcome of a request, with its status, `WWW-Authenticate` challenge and metric.

use super::*;

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

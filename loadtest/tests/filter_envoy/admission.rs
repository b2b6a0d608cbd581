//! Admitted tokens: the cache, scopes (403), and the misconfigured gateway that skips `exp`.

use super::*;

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

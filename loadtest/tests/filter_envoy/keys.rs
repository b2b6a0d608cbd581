//! The key set in Envoy: a rotation picked up by a refetch, an IdP down at start, a failed
//! refresh, one set shared by the workers.

use super::*;

#[tokio::test]
async fn key_rotation_is_picked_up_by_refetch_on_unknown_kid() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt"))?;
    fixture.wait_for_keys().await?;
    let cached = fixture.valid_token();
    assert_eq!(fixture.get_bearer(&cached).await?.status, 200);
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
    // The set only gained a key: the token verified before is still a cache hit.
    let (hits, misses) = (
        fixture.stat("tokengate.cache.hit").await?,
        fixture.stat("tokengate.cache.miss").await?,
    );
    assert_eq!(fixture.get_bearer(&cached).await?.status, 200);
    assert_eq!(fixture.stat("tokengate.cache.hit").await?, hits + 1);
    assert_eq!(fixture.stat("tokengate.cache.miss").await?, misses);

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

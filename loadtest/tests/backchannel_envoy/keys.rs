//! Logout tokens that come before the gateway holds their key: the first key set, a rotation.

use super::*;

/// A logout token that reaches a gateway before it holds its keys: while the IdP is down it
/// gets 503 with `Retry-After` (never a final 400: the sender may try again); and posted
/// before the first key set arrives from a slow IdP, it waits for it and is accepted.
#[tokio::test]
async fn a_logout_before_the_first_key_set_waits_for_it() -> Result<()> {
    let fixture = Fixture::start_with(GatewaySpec::new(GATEWAY), false)?;
    let issuer = fixture.issuer();
    let url = fixture.gateway.logout_url(LOGOUT_PATH);
    let early = logout_token(&issuer, "s-early", "jti-early").sign(TestKey::rsa_a());
    let refused = post(&url, form(&early)).await?;
    ensure!(
        refused.status == 503,
        "IdP down: {} {}",
        refused.status,
        refused.text()
    );
    ensure!(
        refused.header("retry-after").is_some(),
        "{:?}",
        refused.headers
    );
    ensure!(refused.header("cache-control") == Some("no-store"));
    ensure!(refused.json()?["error"] == "temporarily_unavailable");
    ensure!(
        stat(
            &fixture.gateway,
            "tokengate.revocation.rejected.keys_unavailable"
        )
        .await?
            >= 1
    );
    ensure!(stat(&fixture.gateway, RECEIVED).await? == 0);

    // Another gateway, whose IdP comes up as the gateway starts, answering each request a
    // second late: a logout posted at once finds no keys and waits for the fetch (a fresh
    // gateway has claimed no `kid` refetch yet, so one is allowed at once).
    drop(fixture);
    let mut fixture = Fixture::start_with(GatewaySpec::new(GATEWAY), false)?;
    fixture.idp.set_delay(Duration::from_secs(1));
    fixture.idp.start()?;
    let issuer = fixture.issuer();
    let url = fixture.gateway.logout_url(LOGOUT_PATH);
    let early = logout_token(&issuer, "s-early", "jti-early").sign(TestKey::rsa_a());
    let victim = fixture
        .token()
        .claim("sid", "s-early")
        .sign(TestKey::rsa_a());
    let accepted = post(&url, form(&early)).await?;
    ensure!(
        accepted.status == 200,
        "posted before the keys: {} {}",
        accepted.status,
        accepted.text()
    );
    ensure!(stat(&fixture.gateway, RECEIVED).await? == 1);
    ensure!(fixture.idp.request_count(common::CERTS) >= 1);
    fixture.idp.set_delay(Duration::ZERO);
    for _ in 0..100 {
        let response = fixture.get_bearer(&victim).await?;
        if response.status != 503 {
            return ensure_session_ended(&response, "the session ended before the keys came");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the API listener never loaded its keys")
}

/// A logout token signed with a key the IdP published after the gateway loaded its keys (a
/// rotation): it waits for one refetch and is accepted, and the session it ends is refused.
#[tokio::test]
async fn a_logout_signed_with_a_rotated_key_waits_for_the_refetch() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new(GATEWAY))?;
    fixture.wait_for_keys().await?;
    let issuer = fixture.issuer();
    let url = fixture.gateway.logout_url(LOGOUT_PATH);
    // The logout listener's filter holds k1 too: a logout with it is accepted at once.
    let warm = logout_token(&issuer, "s-warm", "jti-warm").sign(TestKey::rsa_a());
    let accepted = post(&url, form(&warm)).await?;
    ensure!(accepted.status == 200, "{}", accepted.text());

    let rotated = TestKey::rsa_b().public_jwk("k2", Some("RS256"));
    fixture
        .idp
        .set_response(common::CERTS, 200, common::published_keys(&[rotated]));
    let fetches = fixture.idp.request_count(common::CERTS);
    let mut spec = logout_token(&issuer, "s-rotated", "jti-rotated");
    spec.header.insert("kid".to_owned(), "k2".into());
    let accepted = post(&url, form(&spec.sign(TestKey::rsa_b()))).await?;
    ensure!(
        accepted.status == 200,
        "signed with the new key: {} {}",
        accepted.status,
        accepted.text()
    );
    ensure!(
        fixture.idp.request_count(common::CERTS) > fetches,
        "no refetch"
    );
    ensure!(stat(&fixture.gateway, RECEIVED).await? == 2);
    ensure!(
        stat(
            &fixture.gateway,
            "tokengate.revocation.rejected.unknown_kid"
        )
        .await?
            == 0
    );
    let victim = TokenSpec::access_token(
        tokengate::algorithm::Algorithm::Rs256,
        "k2",
        &issuer,
        common::AUDIENCE,
        unix_now(),
    )
    .claim("sid", "s-rotated")
    .sign(TestKey::rsa_b());
    ensure_session_ended(
        &fixture.get_bearer(&victim).await?,
        "a session of the new key",
    )
}

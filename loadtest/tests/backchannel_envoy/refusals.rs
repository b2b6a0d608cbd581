//! Forged logout tokens and a flood of valid ones, at one gateway.

use super::*;

#[tokio::test]
async fn forged_logout_tokens_get_400_and_revoke_nothing() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new(GATEWAY))?;
    let issuer = fixture.issuer();
    let victim = fixture
        .token()
        .claim("sid", "s-victim")
        .sign(TestKey::rsa_a());
    wait_admitted(&fixture, &victim).await?;
    let url = fixture.gateway.logout_url(LOGOUT_PATH);

    // One valid logout of another session first (its jti is the one replayed below). The
    // logout listener's filter may not hold its keys yet: the token then waits for them.
    let first = logout_token(&issuer, "s-other", "jti-first").sign(TestKey::rsa_a());
    let accepted = post(&url, form(&first)).await?;
    ensure!(accepted.status == 200, "{}", accepted.text());
    ensure!(accepted.header("cache-control") == Some("no-store"));
    ensure!(stat(&fixture.gateway, RECEIVED).await? == 1);

    let jtis = std::sync::atomic::AtomicU32::new(0);
    let valid = || {
        let n = jtis.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        logout_token(&issuer, "s-victim", &format!("jti-victim-{n}"))
    };
    let forged: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "signed with another key",
            form(&valid().sign(TestKey::rsa_b())),
            "bad_signature",
        ),
        (
            "for another client",
            form(&valid().claim("aud", "someone-else").sign(TestKey::rsa_a())),
            "audience",
        ),
        (
            "without events",
            form(&valid().without_claim("events").sign(TestKey::rsa_a())),
            "missing_event",
        ),
        (
            "with a nonce",
            form(&valid().claim("nonce", "n-1").sign(TestKey::rsa_a())),
            "nonce",
        ),
        (
            "crit null in the header (RFC 7515 §4.1.11)",
            form(
                &valid()
                    .header("crit", serde_json::Value::Null)
                    .sign(TestKey::rsa_a()),
            ),
            "malformed",
        ),
        ("replayed", form(&first), "replayed"),
        (
            "an access token",
            form(
                &fixture
                    .token()
                    .claim("sid", "s-victim")
                    .sign(TestKey::rsa_a()),
            ),
            "token_type",
        ),
        ("oversize", form(&"a".repeat(17 * 1024)), "too_large"),
        ("no logout_token", b"token=x".to_vec(), "missing_token"),
    ];
    for (label, body, reason) in forged {
        let response = post(&url, body).await?;
        ensure_refused_logout(&response, label)?;
        let metric = format!("tokengate.revocation.rejected.{reason}");
        let counted = stat(&fixture.gateway, &metric).await?;
        ensure!(counted >= 1, "{label}: not counted as {reason}");
        ensure!(
            fixture.get_bearer(&victim).await?.status == 200,
            "{label} revoked the session"
        );
        eprintln!("ok: {label} -> 400 ({reason})");
    }
    ensure!(stat(&fixture.gateway, RECEIVED).await? == 1);

    // Only POST.
    let get = http::get(&url, &[]).await?;
    ensure!(get.status == 405, "GET: {}", get.status);
    ensure!(get.header("allow") == Some("POST"), "{:?}", get.headers);

    // The API listener has no logout path: a logout posted there is an API request (no bearer
    // token: 401), and with a bearer token it goes to the backend like any request; neither
    // ends the session.
    let on_api = fixture.gateway.url(LOGOUT_PATH);
    let body = form(&valid().sign(TestKey::rsa_a()));
    let unauthenticated = post(&on_api, body.clone()).await?;
    ensure!(unauthenticated.status == 401, "{}", unauthenticated.status);
    let bearer = format!("Bearer {victim}");
    let forwarded = http::send(
        "POST",
        &on_api,
        &[
            ("authorization", &bearer),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        Some(body),
    )
    .await?;
    ensure!(
        forwarded.status == 200 && forwarded.json()?["path"] == LOGOUT_PATH,
        "the backend answers: {} {}",
        forwarded.status,
        forwarded.text()
    );
    ensure!(stat(&fixture.gateway, RECEIVED).await? == 1);
    ensure!(fixture.get_bearer(&victim).await?.status == 200);

    // And a valid logout of the victim's session ends it, on the API listener.
    let ended = post(&url, form(&valid().sign(TestKey::rsa_a()))).await?;
    ensure!(ended.status == 200, "{}", ended.text());
    ensure_session_ended(&fixture.get_bearer(&victim).await?, "victim")?;
    ensure!(stat(&fixture.gateway, SESSION_ENDED).await? >= 1);
    ensure!(stat(&fixture.gateway, RECEIVED).await? == 2);
    let other = fixture
        .token()
        .claim("sid", "s-alive")
        .sign(TestKey::rsa_a());
    ensure!(fixture.get_bearer(&other).await?.status == 200);
    Ok(())
}

/// Far more logouts than the set holds: the set stays at its bound (the oldest are forgotten,
/// counted), the newest sessions stay ended, and the gateway keeps answering.
#[tokio::test]
async fn a_flood_of_logouts_keeps_the_set_bounded() -> Result<()> {
    const MAX_ENTRIES: u64 = 1024;
    const LOGOUTS: u64 = 2600;
    let spec = GatewaySpec::new(GATEWAY)
        .patch(json!({"backchannel_logout": {"max_entries": MAX_ENTRIES}}));
    let fixture = Fixture::start(spec)?;
    let issuer = fixture.issuer();
    let url = fixture.gateway.logout_url(LOGOUT_PATH);
    let first = logout_token(&issuer, "flood-0", "flood-jti-0").sign(TestKey::rsa_a());
    let accepted = post(&url, form(&first)).await?;
    ensure!(accepted.status == 200, "{}", accepted.text());
    for n in 1..LOGOUTS {
        let token = logout_token(&issuer, &format!("flood-{n}"), &format!("flood-jti-{n}"))
            .sign(TestKey::rsa_a());
        let response = post(&url, form(&token)).await?;
        ensure!(response.status == 200, "logout {n}: {}", response.text());
    }
    let newest = fixture
        .token()
        .claim("sid", format!("flood-{}", LOGOUTS - 1))
        .sign(TestKey::rsa_a());
    ensure_session_ended(&fixture.get_bearer(&newest).await?, "newest")?;
    let entries = stat(&fixture.gateway, ENTRIES).await?;
    let dropped = stat(&fixture.gateway, DROPPED).await?;
    eprintln!("{LOGOUTS} logouts: {entries} entries held, {dropped} dropped");
    ensure!(stat(&fixture.gateway, RECEIVED).await? == LOGOUTS);
    ensure!(
        entries > 0 && entries <= MAX_ENTRIES,
        "entries {entries} > {MAX_ENTRIES}"
    );
    ensure!(dropped >= LOGOUTS - MAX_ENTRIES, "dropped {dropped}");
    // drop_oldest: the first session was forgotten, its token is admitted again.
    let oldest = fixture
        .token()
        .claim("sid", "flood-0")
        .sign(TestKey::rsa_a());
    ensure!(fixture.get_bearer(&oldest).await?.status == 200);
    Ok(())
}

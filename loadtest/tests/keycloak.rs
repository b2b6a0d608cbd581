//! The realms in a real Keycloak: what their tokens look like, how
//! introspection and revocation behave, and that a restart keeps the keys.
//!
//! Fetches and builds Keycloak on first run (see `loadtest::keycloak`); set
//! `TOKENGATE_KEYCLOAK_URL` to run against an already running one instead.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use loadtest::keycloak::{
    self, ADMIN_ROLE, ALICE, API_AUDIENCE, BOB, CAROL, ES256, GATEWAY, Keycloak, LOADTEST,
    PARTNER_GATEWAY, PARTNER_LOADTEST, PARTNER_REALM, SHORT_LIVED, USER_ROLE,
};
use loadtest::paths;
use serde_json::Value;

fn shared() -> Result<&'static Keycloak> {
    let started = Instant::now();
    let kc = keycloak::shared()?;
    let waited = started.elapsed();
    if waited > Duration::from_secs(1) {
        match (
            kc.preparation_duration(),
            kc.database_preparation_duration(),
            kc.startup_duration(),
        ) {
            (Some(preparation), Some(database), Some(start)) => eprintln!(
                "shared Keycloak at {} ready after {waited:.1?}: preparation {preparation:.1?} \
                 (of which the database {database:.1?}), start {start:.1?}",
                kc.base_url()
            ),
            _ => eprintln!(
                "external Keycloak at {} ready after {waited:.1?}",
                kc.base_url()
            ),
        }
    }
    Ok(kc)
}

fn audiences(payload: &Value) -> Vec<String> {
    match &payload["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn distribution_and_java_are_found_idempotently() -> Result<()> {
    let java = keycloak::java_home()?;
    assert!(java.join("bin/java").is_file(), "{}", java.display());
    let first = keycloak::ensure_distribution()?;
    let started = Instant::now();
    let second = keycloak::ensure_distribution()?;
    assert_eq!(first, second);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(first.join("bin/kc.sh").is_file());
    assert!(first.ends_with(format!("keycloak-{}", keycloak::VERSION)));
    assert!(first.starts_with(keycloak::cache_dir()));
    eprintln!("Keycloak {} runs on {}", keycloak::VERSION, java.display());
    Ok(())
}

#[tokio::test]
async fn client_credentials_token_has_issuer_audiences_and_type() -> Result<()> {
    let kc = shared()?;
    let token = kc
        .client()
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?;
    assert_eq!(token.token_type, "Bearer");
    assert!(
        (1..=300).contains(&token.expires_in),
        "{}",
        token.expires_in
    );
    let jwt = keycloak::decode_unverified(&token.access_token)?;
    assert_eq!(jwt.header["alg"], "RS256");
    assert_eq!(jwt.payload["iss"], kc.issuer());
    assert_eq!(jwt.payload["typ"], "Bearer");
    assert_eq!(jwt.payload["azp"], LOADTEST.id);
    let aud = audiences(&jwt.payload);
    assert!(aud.iter().any(|a| a == API_AUDIENCE), "aud: {aud:?}");
    assert!(aud.iter().any(|a| a == GATEWAY.id), "aud: {aud:?}");
    let scope = jwt.payload["scope"].as_str().unwrap_or_default();
    assert!(scope.split(' ').any(|s| s == "profile"), "scope: {scope}");
    assert_eq!(token.scope.as_deref(), Some(scope));
    eprintln!("client credentials token payload: {}", jwt.payload);

    // The discovery document agrees with the URLs the harness hands out.
    let discovery = kc.client().discovery().await?;
    assert_eq!(discovery["issuer"], kc.issuer());
    assert_eq!(discovery["token_endpoint"], kc.token_endpoint());
    assert_eq!(
        discovery["introspection_endpoint"],
        kc.introspection_endpoint()
    );
    assert_eq!(discovery["revocation_endpoint"], kc.revocation_endpoint());
    assert_eq!(discovery["jwks_uri"], kc.jwks_uri());
    Ok(())
}

#[tokio::test]
async fn password_grant_for_alice_carries_the_user_role() -> Result<()> {
    let kc = shared()?;
    let token = kc
        .client()
        .password_grant(LOADTEST.id, LOADTEST.secret, ALICE.username, ALICE.password)
        .await?;
    let jwt = keycloak::decode_unverified(&token.access_token)?;
    let roles = strings(&jwt.payload["realm_access"]["roles"]);
    assert!(roles.contains(&USER_ROLE), "roles: {roles:?}");
    assert_eq!(jwt.payload["preferred_username"], ALICE.username);
    assert_eq!(jwt.payload["email"], "alice@example.org");
    assert_eq!(jwt.payload["iss"], kc.issuer());
    let aud = audiences(&jwt.payload);
    assert!(aud.iter().any(|a| a == API_AUDIENCE), "aud: {aud:?}");
    assert!(aud.iter().any(|a| a == GATEWAY.id), "aud: {aud:?}");

    assert!(!roles.contains(&ADMIN_ROLE), "alice is no admin: {roles:?}");

    let wrong = kc
        .client()
        .password_grant(LOADTEST.id, LOADTEST.secret, ALICE.username, "wrong")
        .await;
    assert!(wrong.is_err(), "a wrong password was accepted");
    Ok(())
}

#[tokio::test]
async fn password_grant_for_carol_carries_the_admin_role() -> Result<()> {
    let kc = shared()?;
    let token = kc
        .client()
        .password_grant(LOADTEST.id, LOADTEST.secret, CAROL.username, CAROL.password)
        .await?;
    let jwt = keycloak::decode_unverified(&token.access_token)?;
    let roles = strings(&jwt.payload["realm_access"]["roles"]);
    assert!(roles.contains(&ADMIN_ROLE), "roles: {roles:?}");
    assert!(roles.contains(&USER_ROLE), "roles: {roles:?}");
    assert_eq!(jwt.payload["preferred_username"], CAROL.username);
    Ok(())
}

/// The partner realm signs with ES256 by default: client credentials and password grants,
/// the API audience, introspection by its own gateway client, and no RSA signing key.
#[tokio::test]
async fn partner_realm_issues_es256_tokens_for_the_api() -> Result<()> {
    let kc = shared()?;
    let client = kc.realm_client(PARTNER_REALM);
    assert_eq!(client.issuer(), kc.realm_issuer(PARTNER_REALM));
    let service = client
        .client_credentials(PARTNER_LOADTEST.id, PARTNER_LOADTEST.secret)
        .await?;
    let bob = client
        .password_grant(
            PARTNER_LOADTEST.id,
            PARTNER_LOADTEST.secret,
            BOB.username,
            BOB.password,
        )
        .await?;
    let jwks = client.jwks().await?;
    let keys = jwks["keys"].as_array().context("JWKS has no keys")?;
    assert!(
        !keys.iter().any(|k| k["kty"] == "RSA" && k["use"] == "sig"),
        "the partner realm has an RSA signing key: {jwks}"
    );
    for (what, token) in [("service account", &service), ("bob", &bob)] {
        let jwt = keycloak::decode_unverified(&token.access_token)?;
        assert_eq!(jwt.header["alg"], "ES256", "{what}: {}", jwt.header);
        let kid = jwt.header["kid"].as_str().context("no kid")?;
        let key = keys
            .iter()
            .find(|k| k["kid"] == kid)
            .with_context(|| format!("{what}: kid {kid} not in {jwks}"))?;
        assert_eq!(key["crv"], "P-256");
        assert_eq!(jwt.payload["iss"], kc.realm_issuer(PARTNER_REALM));
        let aud = audiences(&jwt.payload);
        assert!(aud.iter().any(|a| a == API_AUDIENCE), "{what}: aud {aud:?}");
        assert!(
            aud.iter().any(|a| a == PARTNER_GATEWAY.id),
            "{what}: aud {aud:?}"
        );
        let active = client
            .introspect(
                &token.access_token,
                PARTNER_GATEWAY.id,
                PARTNER_GATEWAY.secret,
            )
            .await?;
        assert_eq!(active["active"], true, "{what}: {active}");
    }
    let jwt = keycloak::decode_unverified(&bob.access_token)?;
    assert_eq!(jwt.payload["preferred_username"], BOB.username);
    assert!(strings(&jwt.payload["realm_access"]["roles"]).contains(&USER_ROLE));

    // The realms are separate IdPs: the first realm's gateway secret does not work here, and
    // the first realm does not know the partner's tokens.
    let wrong_secret = client
        .introspect(&bob.access_token, GATEWAY.id, GATEWAY.secret)
        .await;
    assert!(
        wrong_secret.is_err(),
        "the first realm's gateway secret was accepted"
    );
    let foreign = kc
        .client()
        .introspect(&bob.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    assert_eq!(foreign["active"], false, "{foreign}");
    Ok(())
}

#[tokio::test]
async fn short_lived_token_expires_after_two_seconds() -> Result<()> {
    let kc = shared()?;
    let client = kc.client();
    let token = client
        .client_credentials(SHORT_LIVED.id, SHORT_LIVED.secret)
        .await?;
    let jwt = keycloak::decode_unverified(&token.access_token)?;
    let iat = jwt.payload["iat"].as_i64().context("iat")?;
    let exp = jwt.payload["exp"].as_i64().context("exp")?;
    assert_eq!(exp - iat, 2, "payload: {}", jwt.payload);

    let fresh = client
        .introspect(&token.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    assert_eq!(fresh["active"], true, "fresh: {fresh}");
    tokio::time::sleep(keycloak::SHORT_LIVED_LIFESPAN + Duration::from_millis(1100)).await;
    let expired = client
        .introspect(&token.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    assert_eq!(expired["active"], false, "expired: {expired}");
    Ok(())
}

#[tokio::test]
async fn es256_token_is_signed_by_a_p256_key_in_the_jwks() -> Result<()> {
    let kc = shared()?;
    let client = kc.client();
    let token = client.client_credentials(ES256.id, ES256.secret).await?;
    let jwt = keycloak::decode_unverified(&token.access_token)?;
    assert_eq!(jwt.header["alg"], "ES256");
    let kid = jwt.header["kid"]
        .as_str()
        .context("ES256 token has no kid")?;

    let jwks = client.jwks().await?;
    let keys = jwks["keys"].as_array().context("JWKS has no keys")?;
    let key = keys
        .iter()
        .find(|k| k["kid"] == kid)
        .with_context(|| format!("kid {kid} not in JWKS {jwks}"))?;
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");

    // The gateway still accepts it at introspection.
    let introspection = client
        .introspect(&token.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    Ok(())
}

#[tokio::test]
async fn jwks_has_rsa_signing_and_encryption_keys() -> Result<()> {
    let kc = shared()?;
    let jwks = kc.client().jwks().await?;
    let keys = jwks["keys"].as_array().context("JWKS has no keys")?;
    let rsa = |usage: &str, alg: &str| {
        keys.iter()
            .find(|k| k["kty"] == "RSA" && k["use"] == usage && k["alg"] == alg)
            .cloned()
    };
    let sig = rsa("sig", "RS256").with_context(|| format!("no RS256 sig key: {jwks}"))?;
    let enc = rsa("enc", "RSA-OAEP").with_context(|| format!("no RSA-OAEP enc key: {jwks}"))?;
    assert_ne!(sig["kid"], enc["kid"]);

    // Tokens are signed by the sig key, never the enc one.
    let token = kc
        .client()
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?;
    let jwt = keycloak::decode_unverified(&token.access_token)?;
    assert_eq!(jwt.header["kid"], sig["kid"]);
    Ok(())
}

#[tokio::test]
async fn introspection_is_active_until_revoked_by_the_minting_client() -> Result<()> {
    let kc = shared()?;
    let client = kc.client();
    let token = client
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?;
    let active = client
        .introspect(&token.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["client_id"], LOADTEST.id);
    assert_eq!(active["iss"], kc.issuer());

    client
        .revoke(&token.access_token, LOADTEST.id, LOADTEST.secret)
        .await?;
    let revoked = client
        .introspect(&token.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    assert_eq!(revoked["active"], false, "{revoked}");

    // Bad client credentials are an error (401), not an inactive token.
    let bad = client
        .introspect(&token.access_token, GATEWAY.id, "not-the-secret")
        .await;
    let message = format!("{:#}", bad.err().context("bad secret accepted")?);
    assert!(message.contains("401"), "{message}");

    // A garbage token is simply inactive.
    let garbage = client
        .introspect("not.a.token", GATEWAY.id, GATEWAY.secret)
        .await?;
    assert_eq!(garbage["active"], false, "{garbage}");
    Ok(())
}

#[tokio::test]
async fn external_mode_talks_to_a_running_keycloak() -> Result<()> {
    let kc = shared()?;
    let external = Keycloak::external(&format!("{}/", kc.base_url()), kc.management_url())?;
    assert!(!external.is_managed());
    assert_eq!(external.issuer(), kc.issuer());
    assert_eq!(external.port(), kc.port());
    assert!(external.is_running());
    assert!(external.stop().is_err());
    assert!(external.restart().is_err());
    let token = external
        .client()
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?;
    let introspection = kc
        .client()
        .introspect(&token.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    Ok(())
}

/// Uses its own Keycloak: stopping the shared one would break other tests.
#[tokio::test]
async fn restart_keeps_keys_so_earlier_tokens_stay_valid() -> Result<()> {
    let dir = paths::run_dir("keycloak-restart");
    let kc = Keycloak::start(&dir)?;
    let first_start = kc.startup_duration().unwrap_or_default();
    eprintln!(
        "Keycloak (own instance) started in {first_start:.1?} (preparation {:.1?}); log {}",
        kc.preparation_duration().unwrap_or_default(),
        dir.join("keycloak.log").display()
    );
    assert!(kc.is_running());
    let client = kc.client();
    let before = client
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?;
    let jwks_before = client.jwks().await?;
    let port = kc.port();
    // The database was prepared by another Keycloak on other ports; the issuer follows this
    // instance's port all the same.
    assert_eq!(
        keycloak::decode_unverified(&before.access_token)?.payload["iss"],
        format!("http://127.0.0.1:{port}/realms/{}", keycloak::REALM)
    );

    kc.stop()?;
    assert!(!kc.is_running());
    assert!(client.jwks().await.is_err(), "Keycloak still answers");

    let restart = kc.restart()?;
    eprintln!("Keycloak restarted in {restart:.1?} (first start {first_start:.1?})");
    assert!(kc.is_running());
    assert_eq!(kc.port(), port);
    assert_eq!(kc.startup_duration(), Some(restart));

    let jwks_after = client.jwks().await?;
    assert_eq!(jwks_before, jwks_after, "keys changed across the restart");
    let introspection = client
        .introspect(&before.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    // And it still mints, with the same signing key.
    let after = client
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?;
    assert_eq!(
        keycloak::decode_unverified(&after.access_token)?.header["kid"],
        keycloak::decode_unverified(&before.access_token)?.header["kid"]
    );
    Ok(())
}

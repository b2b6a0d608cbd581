//! The admin API helpers (`loadtest::keycloak::AdminClient`) and logouts, against a real
//! Keycloak.
//!
//! These tests change realms (client settings, sessions, signing keys), so they run on a
//! Keycloak of their own, never the shared one (`TOKENGATE_KEYCLOAK_URL` is not used here):
//! one instance for this binary, started from the prepared database on first use.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use loadtest::keycloak::{
    self, ALICE, BOB, CAROL, GATEWAY, Keycloak, LOADTEST, PARTNER_GATEWAY, PARTNER_LOADTEST,
    PARTNER_REALM, REALM,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How long Keycloak may take to send a back-channel logout token (0.33 s measured).
const LOGOUT_TOKEN_WAIT: Duration = Duration::from_secs(20);

fn own_keycloak() -> Result<&'static Keycloak> {
    static KEYCLOAK: OnceLock<Result<Keycloak, String>> = OnceLock::new();
    KEYCLOAK
        .get_or_init(|| {
            let dir = loadtest::paths::run_dir("keycloak-admin");
            let kc = Keycloak::start(&dir).map_err(|e| format!("{e:#}"))?;
            eprintln!(
                "own Keycloak at {}: preparation {:.1?}, start {:.1?}; log {}",
                kc.base_url(),
                kc.preparation_duration().unwrap_or_default(),
                kc.startup_duration().unwrap_or_default(),
                dir.join("keycloak.log").display()
            );
            Ok(kc)
        })
        .as_ref()
        .map_err(|e| anyhow!("the test's own Keycloak is unavailable: {e}"))
}

#[tokio::test]
async fn users_are_found_by_exact_username() -> Result<()> {
    let kc = own_keycloak()?;
    let admin = kc.admin();
    let alice = admin.user_id(REALM, ALICE.username).await?;
    let carol = admin.user_id(REALM, CAROL.username).await?;
    let bob = admin.user_id(PARTNER_REALM, BOB.username).await?;
    ensure!(alice != carol && alice != bob);
    // The id is the `sub` of the user's tokens.
    let token = kc
        .client()
        .password_grant(LOADTEST.id, LOADTEST.secret, ALICE.username, ALICE.password)
        .await?;
    let sub = keycloak::decode_unverified(&token.access_token)?.payload["sub"].clone();
    ensure!(sub == alice.as_str(), "sub {sub} is not alice's id {alice}");
    // Realms are separate; prefixes are not matches.
    ensure!(admin.user_id(PARTNER_REALM, ALICE.username).await.is_err());
    ensure!(admin.user_id(REALM, "ali").await.is_err());
    Ok(())
}

#[tokio::test]
async fn client_attributes_are_updated_and_merged() -> Result<()> {
    let kc = own_keycloak()?;
    let admin = kc.admin();
    let before = admin.client(REALM, keycloak::OTHER_API.id).await?;
    let updated = admin
        .update_client(
            REALM,
            keycloak::OTHER_API.id,
            &serde_json::json!({
                "description": "changed by a test",
                "attributes": {"access.token.lifespan": "123"},
            }),
        )
        .await?;
    ensure!(updated["description"] == "changed by a test", "{updated}");
    ensure!(
        updated["attributes"]["access.token.lifespan"] == "123",
        "{updated}"
    );
    ensure!(updated["id"] == before["id"]);
    // The change takes effect: new tokens of the client live 123 s.
    let token = kc
        .client()
        .client_credentials(keycloak::OTHER_API.id, keycloak::OTHER_API.secret)
        .await?;
    // Judged from the token: `expires_in` is counted when Keycloak answers, a second or two
    // later on busy cores.
    let payload = keycloak::decode_unverified(&token.access_token)?.payload;
    let lifetime = payload["exp"].as_i64().unwrap_or(0) - payload["iat"].as_i64().unwrap_or(0);
    ensure!(lifetime == 123, "exp - iat = {lifetime}: {payload}");
    Ok(())
}

/// A session's end reaches the client's back-channel logout URL: configure it through the
/// admin API, open a session by password grant, log the user out through the admin API, and
/// receive the logout token.
#[tokio::test]
async fn admin_logout_sends_a_backchannel_logout_token() -> Result<()> {
    let kc = own_keycloak()?;
    let admin = kc.admin();
    let receiver = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/backchannel-logout", receiver.local_addr()?);
    let client = admin
        .set_backchannel_logout(PARTNER_REALM, PARTNER_LOADTEST.id, &url)
        .await?;
    ensure!(client["frontchannelLogout"] == false, "{client}");
    ensure!(
        client["attributes"]["backchannel.logout.url"] == url.as_str(),
        "{client}"
    );
    ensure!(
        client["attributes"]["backchannel.logout.session.required"] == "true",
        "{client}"
    );

    let partner = kc.realm_client(PARTNER_REALM);
    let session = partner
        .password_grant(
            PARTNER_LOADTEST.id,
            PARTNER_LOADTEST.secret,
            BOB.username,
            BOB.password,
        )
        .await?;
    let access = keycloak::decode_unverified(&session.access_token)?;
    let bob = admin.user_id(PARTNER_REALM, BOB.username).await?;
    let received = tokio::spawn(receive_one_post(receiver));
    admin.logout_user(PARTNER_REALM, &bob).await?;
    let body = tokio::time::timeout(LOGOUT_TOKEN_WAIT, received)
        .await
        .context("no back-channel logout request")???;

    let token = form_urlencoded::parse(body.as_bytes())
        .find(|(name, _)| name == "logout_token")
        .map(|(_, value)| value.into_owned())
        .with_context(|| format!("no logout_token in {body:?}"))?;
    let logout = keycloak::decode_unverified(&token)?;
    eprintln!("logout token: {} {}", logout.header, logout.payload);
    ensure!(logout.header["typ"] == "logout+jwt", "{}", logout.header);
    ensure!(logout.payload["iss"] == kc.realm_issuer(PARTNER_REALM));
    ensure!(
        logout.payload["aud"] == PARTNER_LOADTEST.id,
        "{}",
        logout.payload
    );
    ensure!(logout.payload["sub"] == bob.as_str());
    ensure!(
        logout.payload["sid"] == access.payload["sid"],
        "{}",
        logout.payload
    );
    ensure!(
        logout.payload["events"]
            .get("http://schemas.openid.net/event/backchannel-logout")
            .is_some(),
        "{}",
        logout.payload
    );

    // The session is over: its access token is inactive, its refresh token refused.
    let introspection = partner
        .introspect(
            &session.access_token,
            PARTNER_GATEWAY.id,
            PARTNER_GATEWAY.secret,
        )
        .await?;
    ensure!(introspection["active"] == false, "{introspection}");
    let refresh = session.refresh_token.context("no refresh token")?;
    ensure!(
        partner
            .refresh(PARTNER_LOADTEST.id, PARTNER_LOADTEST.secret, &refresh)
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session() -> Result<()> {
    let kc = own_keycloak()?;
    let client = kc.client();
    let session = client
        .password_grant(LOADTEST.id, LOADTEST.secret, CAROL.username, CAROL.password)
        .await?;
    let refresh = session.refresh_token.clone().context("no refresh token")?;
    // A refresh works while the session lives...
    client
        .refresh(LOADTEST.id, LOADTEST.secret, &refresh)
        .await?;
    let active = client
        .introspect(&session.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    ensure!(active["active"] == true, "{active}");

    // ...and not after the client logged the session out; nor does the access token stay
    // active.
    ensure!(
        client
            .logout(LOADTEST.id, "not-the-secret", &refresh)
            .await
            .is_err(),
        "logout with a wrong secret was accepted"
    );
    client
        .logout(LOADTEST.id, LOADTEST.secret, &refresh)
        .await?;
    ensure!(
        client
            .refresh(LOADTEST.id, LOADTEST.secret, &refresh)
            .await
            .is_err()
    );
    let inactive = client
        .introspect(&session.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    ensure!(inactive["active"] == false, "{inactive}");
    Ok(())
}

/// Key rotation: a new RSA key with a higher priority signs new tokens at once; the old key
/// stays in the JWKS and the tokens it signed stay valid.
/// Held by the tests that add signing keys to the realm: each reads which key is active.
static REALM_KEYS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_new_rsa_key_of_higher_priority_signs_new_tokens() -> Result<()> {
    let _keys = REALM_KEYS.lock().await;
    let kc = own_keycloak()?;
    let admin = kc.admin();
    let client = kc.client();
    let old_token = client
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?;
    let old_kid = kid(&old_token.access_token)?;
    let before = admin.realm_keys(REALM).await?;
    ensure!(before.kids().contains(&old_kid.as_str()), "{before:?}");

    let priority = top_priority(kc).await? + 100;
    let new_kid = admin.add_rsa_signing_key(REALM, priority).await?;
    ensure!(new_kid != old_kid);
    let after = admin.realm_keys(REALM).await?;
    ensure!(after.kids().contains(&new_kid.as_str()), "{after:?}");
    ensure!(after.kids().contains(&old_kid.as_str()), "{after:?}");
    ensure!(
        after.active.get("RS256") == Some(&new_kid),
        "active: {:?}",
        after.active
    );
    let key = after
        .keys
        .iter()
        .find(|k| k.kid == new_kid)
        .context("new key not listed")?;
    ensure!(
        key.algorithm == "RS256"
            && key.key_use == "SIG"
            && i64::from(priority) == key.provider_priority
    );
    eprintln!("kids after rotation: {:?}", after.kids());

    let new_token = client
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?;
    ensure!(kid(&new_token.access_token)? == new_kid);
    let jwks = client.jwks().await?;
    let jwks_kids: Vec<&str> = jwks["keys"]
        .as_array()
        .context("JWKS has no keys")?
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    ensure!(jwks_kids.contains(&new_kid.as_str()), "{jwks}");
    ensure!(jwks_kids.contains(&old_kid.as_str()), "{jwks}");
    let old = client
        .introspect(&old_token.access_token, GATEWAY.id, GATEWAY.secret)
        .await?;
    ensure!(old["active"] == true, "{old}");
    Ok(())
}

fn kid(token: &str) -> Result<String> {
    keycloak::decode_unverified(token)?.header["kid"]
        .as_str()
        .map(str::to_string)
        .context("token without kid")
}

/// Accepts one HTTP/1.1 request, answers 200 and returns its body.
async fn receive_one_post(listener: TcpListener) -> Result<String> {
    let (mut stream, _) = listener.accept().await?;
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut buffer).await?;
        ensure!(n > 0, "connection closed mid-request: {request:?}");
        request.extend_from_slice(&buffer[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            ensure!(head.starts_with("post "), "not a POST: {head}");
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .context("no content-length")?;
            break (end + 4, length);
        }
    };
    while request.len() < head_end + length {
        let n = stream.read(&mut buffer).await?;
        ensure!(n > 0, "connection closed mid-body");
        request.extend_from_slice(&buffer[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await?;
    Ok(String::from_utf8_lossy(&request[head_end..head_end + length]).into_owned())
}

/// Key rotation that nothing can block, against real Keycloak and real Envoy: tokens with a
/// junk `kid` first (one refetch, then remembered as missing: no more fetches), then a key
/// added through the admin API, and a token signed with it is admitted on its first request
/// once the refetch floor has passed.
#[tokio::test]
async fn a_junk_kid_does_not_delay_a_new_signing_key() -> Result<()> {
    use loadtest::stack::{GatewaySpec, start_gateway};
    let _keys = REALM_KEYS.lock().await;
    let kc = own_keycloak()?;
    let dir = loadtest::paths::run_dir("keycloak-rotation");
    let (_backend, backend) = loadtest::backend::spawn(&dir, "backend", 1)?;
    let gateway = start_gateway(&dir, &GatewaySpec::new("jwt"), backend.port(), kc.port())?;
    let envoy = &gateway.envoy;
    envoy
        .wait_for_stat(
            "wasmcustom.tokengate.jwks.keys_loaded",
            1,
            Duration::from_secs(30),
        )
        .await?;
    let client = kc.client();
    let call = |token: String| {
        let url = gateway.url("/api/orders");
        async move {
            let bearer = format!("Bearer {token}");
            loadtest::http::get(&url, &[("authorization", &bearer)]).await
        }
    };
    let refetches = || envoy.stat("wasmcustom.tokengate.jwks.kid_refetch");
    let token = client
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?
        .access_token;
    ensure!(
        call(token.clone()).await?.status == 200,
        "a valid token first"
    );

    // A junk kid: the header says a key the IdP never had.
    let junk = with_kid(&token, "no-such-key")?;
    let before = refetches().await?;
    ensure!(call(junk.clone()).await?.status == 401);
    ensure!(
        refetches().await? == before + 1,
        "one refetch for the junk kid"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    for _ in 0..5 {
        ensure!(call(junk.clone()).await?.status == 401);
    }
    ensure!(
        refetches().await? == before + 1,
        "the junk kid, remembered as missing, costs no further fetch"
    );
    eprintln!("ok: a repeated junk kid is refused without a fetch");

    // The IdP adds a key; a token signed with it is admitted at once (the floor has passed).
    let priority = top_priority(kc).await? + 100;
    let new_kid = kc.admin().add_rsa_signing_key(REALM, priority).await?;
    let rotated = client
        .client_credentials(LOADTEST.id, LOADTEST.secret)
        .await?
        .access_token;
    ensure!(kid(&rotated)? == new_kid, "Keycloak signs with the new key");
    let response = call(rotated).await?;
    ensure!(
        response.status == 200,
        "the new key's token: {} {}",
        response.status,
        response.text()
    );
    ensure!(
        refetches().await? == before + 2,
        "one refetch for the new kid"
    );
    eprintln!("ok: a token of the new key {new_kid} is admitted on its first request");
    Ok(())
}

/// The highest priority of the realm's keys: a key added above it signs the next tokens.
async fn top_priority(kc: &Keycloak) -> Result<u32> {
    let keys = kc.admin().realm_keys(REALM).await?;
    let top = keys
        .keys
        .iter()
        .map(|k| k.provider_priority)
        .max()
        .unwrap_or(0);
    Ok(u32::try_from(top.max(0))?)
}

/// The token with its header's `kid` replaced (the signature no longer matters: the key is
/// looked up first).
fn with_kid(token: &str, kid: &str) -> Result<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (header, rest) = token.split_once('.').context("not a JWS")?;
    let mut header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header)?)?;
    header["kid"] = serde_json::Value::String(kid.to_owned());
    Ok(format!(
        "{}.{rest}",
        URL_SAFE_NO_PAD.encode(header.to_string())
    ))
}

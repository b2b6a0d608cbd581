//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0) in real Envoy, through the
//! `jwt-bcl` gateway: the IdP posts logout tokens to the logout listener only it reaches; the
//! API listener refuses the ended sessions' tokens.
//!
//! - against a local JWKS server holding the test keys (logout tokens minted here): every
//!   forged logout token gets 400 and revokes nothing, other methods 405, the API listener does
//!   not take logouts, and a flood of valid ones keeps the set of ended sessions bounded; a
//!   logout token that comes before the gateway holds its keys gets 503 while the IdP is down
//!   and waits for the first key set when the IdP is slow;
//! - against real Keycloak (`loadtest::keycloak::shared`): an admin logout of a password-grant
//!   session makes two replicas refuse that session's token, without introspection, while
//!   another session of the same client stays admitted; and the time from the logout call to
//!   the first refusal, over [`MEASURED_SESSIONS`] sessions, printed (asserted only against
//!   the issue's bound: refused within [`LOGOUT_TO_REFUSAL`] of Keycloak confirming the logout).

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Fixture, unix_now};
use loadtest::http::{self, Response};
use loadtest::keycloak::{self, ALICE, CAROL, Keycloak, LOADTEST, REALM};
use loadtest::ports::free_port;
use loadtest::stack::{GatewaySpec, RunningGateway, start_gateway};
use serde_json::json;
use tokengate::testkit::{TestKey, TokenSpec};

const GATEWAY: &str = "jwt-bcl";
/// The logout listener's path in `envoy/jwt-bcl.yaml`.
const LOGOUT_PATH: &str = "/backchannel-logout";
/// The client the logout tokens are for (`backchannel_logout.audiences`).
const CLIENT: &str = "tokengate-loadtest";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The issue's bound: a logout at Keycloak makes the gateway refuse within a second (counted
/// from Keycloak's answer to the logout call: it posts the logout token before answering, and
/// a cold Keycloak takes seconds for its first).
const LOGOUT_TO_REFUSAL: Duration = Duration::from_secs(1);
/// Sessions the logout-to-refusal time is measured over.
const MEASURED_SESSIONS: usize = 20;
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

/// A replica that is down when a logout arrives, and starts within the retries: the relay gets
/// no answer, is sent again (1 s, then 2 s later) and the late replica refuses the session.
#[tokio::test]
async fn a_relay_reaches_a_replica_that_starts_late() -> Result<()> {
    let dir = loadtest::paths::run_dir("bcl-late-replica");
    let (_backend, addr) = loadtest::backend::spawn(&dir, "backend", 1)?;
    let mut idp = loadtest::jwks_server::JwksServer::reserve()?;
    idp.set_response(common::CERTS, 200, common::published_keys(&[]));
    idp.start()?;
    let issuer = format!("http://127.0.0.1:{}/realms/tokengate", idp.port());
    let (port_a, port_b) = (free_port()?, free_port()?);
    let start = |name: &str, own: u16, peer: u16| -> Result<RunningGateway> {
        let gateway_dir = dir.join(name);
        std::fs::create_dir_all(&gateway_dir)?;
        let spec = GatewaySpec::new(GATEWAY).replica(own, peer);
        start_gateway(&gateway_dir, &spec, addr.port(), idp.port())
            .with_context(|| format!("starting replica {name}"))
    };
    let a = start("a", port_a, port_b)?;
    let logout = logout_token(&issuer, "s-late", "jti-late").sign(TestKey::rsa_a());
    let accepted = post(&a.logout_url(LOGOUT_PATH), form(&logout)).await?;
    ensure!(accepted.status == 200, "{}", accepted.text());
    // B starts now: A's first relay found nobody.
    let b = start("b", port_b, port_a)?;
    let session = TokenSpec::access_token(
        tokengate::algorithm::Algorithm::Rs256,
        "k1",
        &issuer,
        common::AUDIENCE,
        unix_now(),
    )
    .claim("sid", "s-late")
    .sign(TestKey::rsa_a());
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(&b, RECEIVED).await? == 0 {
        ensure!(
            Instant::now() < deadline,
            "B never got the relay (A: {} retried, {} failed)",
            stat(&a, "tokengate.revocation.relay_retried").await?,
            stat(&a, "tokengate.revocation.relay_failed").await?
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(stat(&a, "tokengate.revocation.relay_retried").await? >= 1);
    ensure!(stat(&a, RELAYED).await? == 1);
    loop {
        let response = call(&b, &session).await?;
        if response.status != 503 {
            break ensure_session_ended(&response, "B, after a late relay");
        }
        ensure!(Instant::now() < deadline, "B never loaded its keys");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

/// Two replicas of the gateway behind one Keycloak client URL.
struct Replicas {
    _dir: std::path::PathBuf,
    _backend: loadtest::process::ManagedProcess,
    a: RunningGateway,
    b: RunningGateway,
}

impl Replicas {
    /// A receives Keycloak's logouts and relays each to B.
    fn start(kc: &Keycloak) -> Result<Replicas> {
        let dir = loadtest::paths::run_dir("bcl-replicas");
        let (backend, addr) = loadtest::backend::spawn(&dir, "backend", 1)?;
        let (port_a, port_b) = (free_port()?, free_port()?);
        let start = |name: &str, own: u16, peer: u16| -> Result<RunningGateway> {
            let gateway_dir = dir.join(name);
            std::fs::create_dir_all(&gateway_dir)?;
            let spec = GatewaySpec::new(GATEWAY).replica(own, peer);
            start_gateway(&gateway_dir, &spec, addr.port(), kc.port())
                .with_context(|| format!("starting replica {name}"))
        };
        let a = start("a", port_a, port_b)?;
        let b = start("b", port_b, port_a)?;
        Ok(Replicas {
            _dir: dir,
            _backend: backend,
            a,
            b,
        })
    }

    fn both(&self) -> [(&'static str, &RunningGateway); 2] {
        [("a", &self.a), ("b", &self.b)]
    }

    async fn wait_admitted(&self, token: &str) -> Result<()> {
        for (name, gateway) in self.both() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while call(gateway, token).await?.status != 200 {
                ensure!(Instant::now() < deadline, "{name} never admitted the token");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Polls both replicas until each refuses `token`, at most [`LOGOUT_TO_REFUSAL`] after
    /// `confirmed` (Keycloak answered the logout call); the time from `since` (the call was
    /// made) to each one's first refusal, and that refusal.
    async fn wait_refused(
        &self,
        token: &str,
        since: Instant,
        confirmed: Instant,
    ) -> Result<[(Duration, Response); 2]> {
        let mut refused: [Option<(Duration, Response)>; 2] = [None, None];
        let deadline = confirmed + LOGOUT_TO_REFUSAL;
        while refused.iter().any(Option::is_none) {
            for (slot, (name, gateway)) in refused.iter_mut().zip(self.both()) {
                if slot.is_some() {
                    continue;
                }
                let response = call(gateway, token).await?;
                if response.status != 200 {
                    *slot = Some((since.elapsed(), response));
                } else {
                    ensure!(
                        Instant::now() < deadline,
                        "replica {name} still admits the session's token {:?} after Keycloak \
                         confirmed the logout",
                        confirmed.elapsed()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(refused.map(|slot| slot.unwrap()))
    }
}

async fn password_grant(kc: &Keycloak, user: keycloak::User) -> Result<String> {
    Ok(kc
        .client()
        .password_grant(LOADTEST.id, LOADTEST.secret, user.username, user.password)
        .await?
        .access_token)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Keycloak's admin logout of a password-grant session reaches replica A through the client's
/// back-channel URL, A relays it to B, and both refuse that session's token (no introspection)
/// while another session of the same client stays admitted. Then the logout-to-refusal time
/// over [`MEASURED_SESSIONS`] sessions.
#[tokio::test]
async fn keycloak_logout_ends_the_session_in_both_replicas() -> Result<()> {
    let kc = keycloak::shared()?;
    let replicas = Replicas::start(kc)?;
    let admin = kc.admin();
    // Sessions that earlier tests opened for alice in the shared Keycloak would each post a
    // logout of their own when she is logged out: end them while no URL is registered.
    let alice = admin.user_id(REALM, ALICE.username).await?;
    admin.logout_user(REALM, &alice).await?;
    let receiver = replicas.a.logout_url(LOGOUT_PATH);
    let client = admin
        .set_backchannel_logout(REALM, LOADTEST.id, &receiver)
        .await?;
    ensure!(
        client["attributes"]["backchannel.logout.url"] == receiver.as_str(),
        "{client}"
    );
    let result = logouts_against_keycloak(kc, &replicas).await;
    // The shared Keycloak outlives this test: leave no URL pointing at a stopped gateway.
    admin
        .update_client(
            REALM,
            LOADTEST.id,
            &json!({"attributes": {"backchannel.logout.url": ""}}),
        )
        .await?;
    result
}

async fn logouts_against_keycloak(kc: &Keycloak, replicas: &Replicas) -> Result<()> {
    let admin = kc.admin();
    let alice = admin.user_id(REALM, ALICE.username).await?;
    let other_session = password_grant(kc, CAROL).await?;
    let session = password_grant(kc, ALICE).await?;
    replicas.wait_admitted(&other_session).await?;
    replicas.wait_admitted(&session).await?;
    let mut before = Vec::new();
    for (_, gateway) in replicas.both() {
        before.push((
            stat(gateway, INTROSPECTIONS).await?,
            stat(gateway, RECEIVED).await?,
            stat(gateway, SESSION_ENDED).await?,
        ));
    }

    let logout = Instant::now();
    admin.logout_user(REALM, &alice).await?;
    let confirmed = Instant::now();
    eprintln!("Keycloak's logout call took {:?}", confirmed - logout);
    let refused = replicas.wait_refused(&session, logout, confirmed).await?;
    for (((name, gateway), (after, response)), (introspections, received, ended)) in
        replicas.both().into_iter().zip(&refused).zip(&before)
    {
        eprintln!("replica {name}: refused {after:?} after the logout call");
        ensure_session_ended(response, name)?;
        ensure!(stat(gateway, RECEIVED).await? == received + 1, "{name}");
        ensure!(stat(gateway, SESSION_ENDED).await? > *ended, "{name}");
        ensure!(stat(gateway, ENTRIES).await? >= 1, "{name}");
        ensure!(
            stat(gateway, INTROSPECTIONS).await? == *introspections,
            "{name} introspected"
        );
        ensure!(
            call(gateway, &other_session).await?.status == 200,
            "{name}: another session of the client was ended too"
        );
    }
    ensure!(stat(&replicas.a, RELAYED).await? >= 1, "A relayed nothing");

    // An access token is no logout token.
    let access = post(
        &replicas.a.logout_url(LOGOUT_PATH),
        form(&password_grant(kc, CAROL).await?),
    )
    .await?;
    ensure_refused_logout(&access, "an access token")?;
    ensure!(stat(&replicas.a, "tokengate.revocation.rejected.token_type").await? >= 1);
    ensure!(call(&replicas.a, &other_session).await?.status == 200);

    // Logout to first refusal, per replica, over several sessions.
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..MEASURED_SESSIONS {
        let session = password_grant(kc, ALICE).await?;
        replicas.wait_admitted(&session).await?;
        let logout = Instant::now();
        admin.logout_user(REALM, &alice).await?;
        let refused = replicas
            .wait_refused(&session, logout, Instant::now())
            .await?;
        for (series, (after, response)) in times.iter_mut().zip(&refused) {
            ensure_session_ended(response, "measured session")?;
            series.push(*after);
        }
    }
    for ((name, _), series) in replicas.both().into_iter().zip(&mut times) {
        series.sort();
        eprintln!(
            "logout-to-refusal, replica {name} ({}), {} sessions: p50 {:.0?}, p99 {:.0?}, max {:.0?}",
            if name == "a" {
                "receives Keycloak's POST"
            } else {
                "learns by relay"
            },
            series.len(),
            percentile(series, 50.0),
            percentile(series, 99.0),
            series[series.len() - 1],
        );
    }
    Ok(())
}

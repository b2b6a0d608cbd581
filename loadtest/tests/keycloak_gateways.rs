//! Every gateway of `envoy/` in real Envoy against real Keycloak (the repo's realm), with
//! tokens minted by Keycloak: valid, ES256, expired (2-second client), revoked (RFC 7009),
//! tampered; and a Keycloak outage and recovery without restarting Envoy.
//!
//! One Keycloak serves the suite (`loadtest::keycloak::shared`, or `TOKENGATE_KEYCLOAK_URL`);
//! the outage test starts one of its own, since it stops and restarts it.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use loadtest::backend;
use loadtest::http::{self, Response};
use loadtest::keycloak::{self, ES256, Keycloak, LOADTEST, OTHER_API, SHORT_LIVED};
use loadtest::process::ManagedProcess;
use loadtest::stack::{GatewaySpec, RunningGateway, start_gateway};
use serde_json::json;
use tokengate::testkit::tamper_signature;

struct Gateways {
    dir: PathBuf,
    _backend: ManagedProcess,
    backend_port: u16,
    idp_port: u16,
    running: Vec<(String, RunningGateway)>,
}

impl Gateways {
    fn new(label: &str, kc: &Keycloak) -> Result<Gateways> {
        let dir = loadtest::paths::run_dir(label);
        let (backend, addr) = backend::spawn(&dir, "backend", 1)?;
        Ok(Gateways {
            dir,
            _backend: backend,
            backend_port: addr.port(),
            idp_port: kc.port(),
            running: Vec::new(),
        })
    }

    fn start(&mut self, name: &str, spec: GatewaySpec) -> Result<()> {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir)?;
        let gateway = start_gateway(&dir, &spec, self.backend_port, self.idp_port)
            .with_context(|| format!("starting {name}"))?;
        self.running.push((name.to_owned(), gateway));
        Ok(())
    }

    fn get(&self, name: &str) -> Result<&RunningGateway> {
        self.running
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, g)| g)
            .with_context(|| format!("no gateway {name}"))
    }

    async fn call(&self, name: &str, token: &str) -> Result<Response> {
        let gateway = self.get(name)?;
        let bearer = format!("Bearer {token}");
        http::get(&gateway.url("/api/orders"), &[("authorization", &bearer)]).await
    }

    async fn stat(&self, name: &str, metric: &str) -> Result<u64> {
        self.get(name)?
            .envoy
            .stat(&format!("wasmcustom.{metric}"))
            .await
    }

    /// Sends `token` to each gateway and checks the status each must answer.
    async fn expect(&self, token_kind: &str, token: &str, expected: &[(&str, u16)]) -> Result<()> {
        for (name, status) in expected {
            let response = self.call(name, token).await?;
            ensure!(
                response.status == *status,
                "{token_kind} token at {name}: {} (expected {status}): {}",
                response.status,
                response.text()
            );
            eprintln!("ok: {token_kind} token at {name} -> {status}");
        }
        Ok(())
    }

    /// Waits until every gateway admits `token` (keys fetched at start).
    async fn wait_ready(&self, token: &str) -> Result<()> {
        for (name, _) in &self.running {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let status = self.call(name, token).await?.status;
                if status == 200 {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "{name} never admitted a valid token ({status})"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }
}

fn shared_keycloak() -> Result<&'static Keycloak> {
    let kc = keycloak::shared()?;
    if let (Some(preparation), Some(start)) = (kc.preparation_duration(), kc.startup_duration()) {
        eprintln!(
            "Keycloak {} at {}: fetch/unpack/build {preparation:.1?}, start {start:.1?}",
            keycloak::VERSION,
            kc.base_url()
        );
    }
    Ok(kc)
}

async fn mint(kc: &Keycloak, client: keycloak::Client) -> Result<String> {
    Ok(kc
        .client()
        .client_credentials(client.id, client.secret)
        .await?
        .access_token)
}

const ALL: [&str; 6] = [
    "no-auth",
    "native-jwt",
    "jwt",
    "jwt-no-exp",
    "introspect",
    "hybrid",
];

#[tokio::test]
async fn every_gateway_against_keycloak() -> Result<()> {
    let kc = shared_keycloak()?;
    // The 2-second token is minted first: it must be expired beyond the gateways' 5 s leeway
    // by the time it is checked.
    let short_lived = mint(kc, SHORT_LIVED).await?;
    let minted_short = Instant::now();

    let mut gateways = Gateways::new("kc-gateways", kc)?;
    for name in ALL {
        gateways.start(name, GatewaySpec::new(name))?;
    }
    // Hybrid with a short introspection cache, to see revocation once the entry is gone.
    gateways.start(
        "hybrid-short-cache",
        GatewaySpec::new("hybrid").patch(json!({"introspection": {"cache_ttl_seconds": 2}})),
    )?;

    let valid = mint(kc, LOADTEST).await?;
    gateways.wait_ready(&valid).await?;
    let every = |status: u16| -> Vec<(&str, u16)> {
        ALL.iter()
            .map(|name| (*name, status))
            .chain([("hybrid-short-cache", status)])
            .collect()
    };
    gateways.expect("valid", &valid, &every(200)).await?;
    let password = kc
        .client()
        .password_grant(
            LOADTEST.id,
            LOADTEST.secret,
            keycloak::ALICE.username,
            keycloak::ALICE.password,
        )
        .await?
        .access_token;
    gateways
        .expect("password-grant", &password, &every(200))
        .await?;
    let echoed = gateways.call("jwt", &password).await?.json()?;
    ensure!(
        echoed["identity"]["x-jwt-roles"]
            .as_str()
            .is_some_and(|roles| roles.split(' ').any(|r| r == keycloak::USER_ROLE)),
        "realm roles are forwarded: {echoed}"
    );
    let es256 = mint(kc, ES256).await?;
    gateways.expect("ES256", &es256, &every(200)).await?;

    // Issued for another API: refused everywhere but no-auth (introspect sees it active, then
    // checks the audience).
    let other_api = mint(kc, OTHER_API).await?;
    let mut expected = every(401);
    expected[0].1 = 200;
    // Envoy's jwt_authn answers a wrong audience with 403, not RFC 6750's 401 invalid_token.
    expected[1].1 = 403;
    gateways
        .expect("wrong audience", &other_api, &expected)
        .await?;
    ensure!(
        gateways
            .stat("introspect", "tokengate.denied.audience")
            .await?
            == 1
    );

    // Tampered: refused everywhere but no-auth, and hybrid spends no call on it.
    let calls_before = gateways
        .stat("hybrid", "tokengate.introspection.calls")
        .await?;
    let tampered = tamper_signature(&mint(kc, LOADTEST).await?);
    let mut expected = every(401);
    expected[0].1 = 200;
    gateways.expect("tampered", &tampered, &expected).await?;
    ensure!(
        gateways
            .stat("hybrid", "tokengate.introspection.calls")
            .await?
            == calls_before,
        "hybrid introspected a token that fails local validation"
    );
    ensure!(
        gateways
            .stat("hybrid", "tokengate.denied.bad_signature")
            .await?
            == 1
    );

    // Revoked (by the client it was issued to): local validation cannot know.
    let revoked = mint(kc, LOADTEST).await?;
    gateways
        .expect(
            "fresh",
            &revoked,
            &[("hybrid", 200), ("hybrid-short-cache", 200)],
        )
        .await?;
    kc.client()
        .revoke(&revoked, LOADTEST.id, LOADTEST.secret)
        .await?;
    let inactive_before = gateways
        .stat("introspect", "tokengate.denied.inactive")
        .await?;
    gateways
        .expect(
            "revoked",
            &revoked,
            &[
                ("no-auth", 200),
                ("native-jwt", 200),
                ("jwt", 200),
                ("jwt-no-exp", 200),
                ("introspect", 401),
                // Within the introspection cache TTL, the cached verdict stands.
                ("hybrid", 200),
            ],
        )
        .await?;
    ensure!(
        gateways
            .stat("introspect", "tokengate.denied.inactive")
            .await?
            == inactive_before + 1
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    gateways
        .expect(
            "revoked, cache entry gone",
            &revoked,
            &[("hybrid-short-cache", 401)],
        )
        .await?;

    // Expired: the seed's gap, reproduced on purpose by jwt-no-exp.
    let expired_at = minted_short + Duration::from_secs(2 + 5 + 2);
    if let Some(wait) = expired_at.checked_duration_since(Instant::now()) {
        tokio::time::sleep(wait).await;
    }
    gateways
        .expect(
            "expired",
            &short_lived,
            &[
                ("no-auth", 200),
                ("native-jwt", 401),
                ("jwt", 401),
                ("jwt-no-exp", 200),
                ("introspect", 401),
                ("hybrid", 401),
            ],
        )
        .await?;
    ensure!(gateways.stat("jwt", "tokengate.denied.expired").await? == 1);
    ensure!(gateways.stat("hybrid", "tokengate.denied.expired").await? == 1);
    ensure!(
        gateways
            .stat("jwt-no-exp", "tokengate.config.exp_check_disabled")
            .await?
            == 1
    );
    let challenge = gateways.call("jwt", &short_lived).await?;
    ensure!(
        challenge.header("www-authenticate")
            == Some(
                "Bearer realm=\"tokengate\", error=\"invalid_token\", \
                 error_description=\"The token expired\""
            )
    );
    Ok(())
}

#[tokio::test]
async fn keycloak_outage_and_recovery() -> Result<()> {
    let dir = loadtest::paths::run_dir("kc-outage");
    let kc = Keycloak::start(&dir)?;
    let mut gateways = Gateways::new("kc-outage-gateways", &kc)?;
    gateways.start("introspect", GatewaySpec::new("introspect"))?;
    gateways.start("hybrid", GatewaySpec::new("hybrid"))?;
    let cached = mint(&kc, LOADTEST).await?;
    let uncached = mint(&kc, LOADTEST).await?;
    gateways.wait_ready(&cached).await?;

    kc.stop()?;
    let started = Instant::now();
    let response = gateways.call("introspect", &cached).await?;
    ensure!(
        response.status == 503,
        "introspect with Keycloak down: {}",
        response.status
    );
    ensure!(response.header("retry-after").is_some());
    ensure!(
        started.elapsed() < Duration::from_secs(3),
        "answered after {:?}",
        started.elapsed()
    );
    eprintln!(
        "ok: Keycloak stopped: introspect -> 503 with Retry-After in {:?}",
        started.elapsed()
    );
    ensure!(
        gateways
            .stat(
                "introspect",
                "tokengate.introspection.idp_error.unreachable"
            )
            .await?
            >= 1
    );
    // Hybrid keeps admitting what it has verified and cached; new tokens wait for the IdP.
    gateways
        .expect("cached", &cached, &[("hybrid", 200)])
        .await?;
    gateways
        .expect("uncached", &uncached, &[("hybrid", 503)])
        .await?;

    let restart = kc.restart()?;
    eprintln!("Keycloak restart took {restart:.1?}");
    gateways
        .expect(
            "after restart",
            &uncached,
            &[("introspect", 200), ("hybrid", 200)],
        )
        .await?;
    gateways
        .expect("after restart", &cached, &[("introspect", 200)])
        .await?;
    Ok(())
}

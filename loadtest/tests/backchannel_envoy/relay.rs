//! Two replicas: the relay of an accepted logout to the peer, sent again or given up.

use loadtest::ports::free_port;

use super::*;

/// What replicas of one test share: the backend and a JWKS server holding the test keys.
struct Site {
    dir: std::path::PathBuf,
    _backend: loadtest::process::ManagedProcess,
    backend_port: u16,
    idp: loadtest::jwks_server::JwksServer,
}

impl Site {
    fn start(name: &str) -> Result<Site> {
        let dir = loadtest::paths::run_dir(name);
        let (backend, addr) = loadtest::backend::spawn(&dir, "backend", 1)?;
        let mut idp = loadtest::jwks_server::JwksServer::reserve()?;
        idp.set_response(common::CERTS, 200, common::published_keys(&[]));
        idp.start()?;
        Ok(Site {
            dir,
            _backend: backend,
            backend_port: addr.port(),
            idp,
        })
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}/realms/tokengate", self.idp.port())
    }

    /// (backend, IdP) ports for [`start_replica`].
    fn ports(&self) -> (u16, u16) {
        (self.backend_port, self.idp.port())
    }
}

/// A replica that is down when a logout arrives, and starts within the retries: the relay gets
/// no answer, is sent again (1 s, then 2 s later) and the late replica refuses the session.
#[tokio::test]
async fn a_relay_reaches_a_replica_that_starts_late() -> Result<()> {
    let site = Site::start("bcl-late-replica")?;
    let (dir, issuer, ports) = (&site.dir, site.issuer(), site.ports());
    let (port_a, port_b) = (free_port()?, free_port()?);
    let a = start_replica(dir, "a", GatewaySpec::new(GATEWAY), (port_a, port_b), ports)?;
    let logout = logout_token(&issuer, "s-late", "jti-late").sign(TestKey::rsa_a());
    let accepted = post(&a.logout_url(LOGOUT_PATH), form(&logout)).await?;
    ensure!(accepted.status == 200, "{}", accepted.text());
    // B starts now: A's first relay found nobody.
    let b = start_replica(dir, "b", GatewaySpec::new(GATEWAY), (port_b, port_a), ports)?;
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

/// What replica A's relays came to: (relayed, retried, failed), once one is final or after
/// `within`.
async fn relay_outcome(a: &RunningGateway, within: Duration) -> Result<(u64, u64, u64)> {
    let deadline = Instant::now() + within;
    loop {
        let relayed = stat(a, RELAYED).await?;
        let failed = stat(a, "tokengate.revocation.relay_failed").await?;
        if relayed + failed > 0 || Instant::now() >= deadline {
            let retried = stat(a, "tokengate.revocation.relay_retried").await?;
            return Ok((relayed, retried, failed));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A peer that answers 503 (it holds no keys: its IdP is down) gets the relay three times, 1 s
/// and 2 s apart, and then A gives up; a peer that refuses the token (400: it serves another
/// client) gets it once.
#[tokio::test]
async fn a_relay_is_sent_again_after_a_503_and_given_up_after_a_400() -> Result<()> {
    let site = Site::start("bcl-relay-answers")?;
    let (dir, issuer, ports) = (&site.dir, site.issuer(), site.ports());
    let spec = || GatewaySpec::new(GATEWAY);

    // B's IdP never answers: B has no keys and answers every logout 503.
    let down_idp = free_port()?;
    let (port_a, port_b) = (free_port()?, free_port()?);
    let a = start_replica(dir, "a", spec(), (port_a, port_b), ports)?;
    let b = start_replica(
        dir,
        "b",
        spec(),
        (port_b, port_a),
        (site.backend_port, down_idp),
    )?;
    let logout = logout_token(&issuer, "s-503", "jti-503").sign(TestKey::rsa_a());
    let accepted = post(&a.logout_url(LOGOUT_PATH), form(&logout)).await?;
    ensure!(accepted.status == 200, "{}", accepted.text());
    let outcome = relay_outcome(&a, Duration::from_secs(15)).await?;
    ensure!(
        outcome == (0, 2, 1),
        "a peer answering 503: (relayed, retried, failed) = {outcome:?}, not (0, 2, 1)"
    );
    let unavailable = stat(&b, "tokengate.revocation.rejected.keys_unavailable").await?;
    ensure!(
        unavailable == 3,
        "B answered {unavailable} relays with 503, not 3"
    );
    ensure!(stat(&b, RECEIVED).await? == 0);
    drop((a, b));

    // C holds the keys but takes logouts for another client: 400, final.
    let (port_a, port_c) = (free_port()?, free_port()?);
    let other_client =
        spec().patch(json!({"backchannel_logout": {"audiences": ["another-client"]}}));
    let a = start_replica(dir, "a2", spec(), (port_a, port_c), ports)?;
    let c = start_replica(dir, "c", other_client, (port_c, port_a), ports)?;
    let logout = logout_token(&issuer, "s-400", "jti-400").sign(TestKey::rsa_a());
    let accepted = post(&a.logout_url(LOGOUT_PATH), form(&logout)).await?;
    ensure!(accepted.status == 200, "{}", accepted.text());
    let outcome = relay_outcome(&a, Duration::from_secs(15)).await?;
    ensure!(
        outcome == (0, 0, 1),
        "a peer answering 400: (relayed, retried, failed) = {outcome:?}, not (0, 0, 1)"
    );
    // Nothing more comes: a 400 is final.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure!(stat(&a, "tokengate.revocation.relay_retried").await? == 0);
    ensure!(stat(&c, "tokengate.revocation.rejected.audience").await? == 1);
    ensure!(stat(&c, RECEIVED).await? == 0);
    Ok(())
}

//! Real Keycloak posts its logouts to two replicas' URL; both refuse the session.

use loadtest::keycloak::{self, ALICE, CAROL, Keycloak, LOADTEST, REALM};
use loadtest::ports::free_port;

use super::*;

/// The bound: a logout at Keycloak makes the gateway refuse within a second (counted
/// from Keycloak's answer to the logout call: it posts the logout token before answering, and
/// a cold Keycloak takes seconds for its first).
pub const LOGOUT_TO_REFUSAL: Duration = Duration::from_secs(1);
/// Sessions the logout-to-refusal time is measured over.
pub const MEASURED_SESSIONS: usize = 20;

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
        let spec = || GatewaySpec::new(GATEWAY);
        let ports = (addr.port(), kc.port());
        let a = start_replica(&dir, "a", spec(), (port_a, port_b), ports)?;
        let b = start_replica(&dir, "b", spec(), (port_b, port_a), ports)?;
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

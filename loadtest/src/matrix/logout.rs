//! The `logged-out` token kind at Keycloak, and the logout-to-refusal time.
//!
//! **Wiring.** The gateways whose profile `receives_logouts` (jwt, hybrid) run with the logout
//! listener of `envoy/jwt-bcl.yaml` added ([`crate::render_logout`]); the first of them is the
//! one Keycloak posts to and relays each logout token to the second (the `peers` relay that
//! replicas use: Keycloak has one back-channel URL per client). For the run, the harness points
//! the minting client's `backchannel.logout.url` at that listener (admin API; the realm file
//! stays the source of truth) and puts the client's attributes back afterwards. With
//! `--target`, the URL is the one given (`--target-logout-url`: the compose stack's
//! `http://envoy:10001/backchannel-logout`).
//!
//! **Tokens.** A `logged-out` pool is one password-grant session of `alice` (plus refresh
//! grants of it) that the harness then ends with `DELETE /admin/realms/tokengate/sessions/{sid}`:
//! Keycloak posts the logout token to the registered URL before it answers.
//!
//! **Logout to refusal.** Per gateway whose expected verdict is PASS, during its
//! `api-logged-out` cell at the first rate that cell runs at, after the warm-up: for each of
//! `logout_sessions` fresh sessions (minted before the cells, with the pools), one request
//! checks the gateway admits the session's token; then the clock starts (`Instant::now()` in
//! the harness, monotonic) right before the admin call that ends the session is sent, and
//! stops when the answer of the first request with that token that is not 200 has been read;
//! requests are repeated every [`POLL_INTERVAL`], at most [`REFUSAL_TIMEOUT`] after Keycloak
//! answered the logout call (a session still admitted then counts as not refused).
//! [`CONCURRENCY`] sessions are measured at once. The cell's load runs for at least
//! [`MEASURED_CELL_MIN`], so that the measurement happens under it; a session refused after
//! the load stopped is counted apart (`under_load`). The time includes Keycloak's own work
//! (it posts the logout token before answering), the relay for the second gateway, and up to
//! one poll interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::flock::FileLock;
use crate::keycloak::{self, AdminClient, KeycloakClient};
use crate::matrix::scenario::{self, GatewayProfile, Scenario, TokenKind, Verdict};
use crate::stack::GatewaySpec;

/// Sessions measured per gateway by default.
pub const DEFAULT_SESSIONS: usize = 20;
/// How long after Keycloak answered the logout call a gateway may still admit the token.
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Between two requests with a session's token.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Sessions measured at once.
pub const CONCURRENCY: usize = 5;
/// The measured cell's load lasts at least this long.
pub const MEASURED_CELL_MIN: Duration = Duration::from_secs(3);
/// Password grants in flight at once while opening sessions: each costs Keycloak a password
/// hash (about 250 ms of a core), and the pools are minted at the same time.
const GRANT_CONCURRENCY: usize = 2;

pub const SCENARIO: Scenario = Scenario::Api(TokenKind::LoggedOut);

/// A user session of `alice` through the minting client, and one access token of it.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub sid: String,
}

/// The `sid` claim of a Keycloak access token.
pub fn sid(token: &str) -> Result<String> {
    keycloak::decode_unverified(token)?.payload["sid"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the access token has no sid (no user session)"))
}

/// Opens `count` sessions (one password grant each).
pub async fn open_sessions(client: &KeycloakClient, count: usize) -> Result<Vec<Session>> {
    let limit = Arc::new(Semaphore::new(GRANT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let (client, limit) = (client.clone(), Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let (who, user) = (keycloak::LOADTEST, keycloak::ALICE);
            let token = client
                .password_grant(who.id, who.secret, user.username, user.password)
                .await?
                .access_token;
            Ok::<_, anyhow::Error>(Session {
                sid: sid(&token)?,
                token,
            })
        });
    }
    let mut sessions = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        sessions.push(joined.context("a session task failed")??);
    }
    Ok(sessions)
}

/// Adds the logout listener to the specs of the gateways that receive logouts: the first
/// relays to the second. Returns the label of the one Keycloak must post to.
pub fn wire_specs(specs: &mut [(String, GatewaySpec)]) -> Result<Option<String>> {
    let wired: Vec<usize> = specs
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| scenario::profile(name).is_some_and(|p| p.receives_logouts))
        .map(|(index, _)| index)
        .collect();
    if wired.len() > 2 {
        bail!("the matrix relays logouts to one peer: more than two gateways receive logouts");
    }
    let ports: Vec<u16> = wired
        .iter()
        .map(|_| crate::ports::free_port())
        .collect::<std::io::Result<_>>()?;
    for (position, index) in wired.iter().enumerate() {
        let own = ports[position];
        let peer = match ports.get(1 - position.min(1)) {
            Some(port) if wired.len() == 2 => *port,
            _ => crate::render::NO_PEER_PORT,
        };
        let (_, spec) = &mut specs[*index];
        *spec = spec.clone().with_logout_listener().replica(own, peer);
    }
    Ok(wired.first().map(|index| specs[*index].0.clone()))
}

/// The minting client's back-channel logout URL, set for a run and put back after it. Runs
/// that register one against the same Keycloak take turns (a file lock).
pub struct Registration {
    admin: Arc<AdminClient>,
    previous: Value,
    _lock: FileLock,
}

impl Registration {
    pub async fn register(admin: Arc<AdminClient>, keycloak_url: &str, url: &str) -> Result<Self> {
        let key: String = keycloak_url
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let lock = FileLock::exclusive(
            &std::env::temp_dir().join(format!("tokengate-backchannel-{key}.lock")),
        )?;
        let client = admin.client(keycloak::REALM, keycloak::LOADTEST.id).await?;
        let attribute = |name: &str| client["attributes"][name].as_str().unwrap_or("").to_owned();
        let previous = json!({
            "frontchannelLogout": client["frontchannelLogout"],
            "attributes": {
                "backchannel.logout.url": attribute("backchannel.logout.url"),
                "backchannel.logout.session.required":
                    attribute("backchannel.logout.session.required"),
            },
        });
        admin
            .set_backchannel_logout(keycloak::REALM, keycloak::LOADTEST.id, url)
            .await?;
        Ok(Registration {
            admin,
            previous,
            _lock: lock,
        })
    }

    /// Puts the client's attributes back as they were.
    pub async fn restore(self) -> Result<()> {
        self.admin
            .update_client(keycloak::REALM, keycloak::LOADTEST.id, &self.previous)
            .await
            .map(|_| ())
    }
}

/// What one measured session showed.
#[derive(Debug, Clone, Copy)]
pub struct SessionOutcome {
    /// From the logout call to the first refused answer; `None`: still admitted
    /// [`REFUSAL_TIMEOUT`] after Keycloak answered.
    pub refused_after: Option<Duration>,
    pub refused_at: Option<Instant>,
}

/// Measures `sessions` against the gateway at `host` (see the module comment).
pub async fn measure(
    host: &str,
    sessions: Vec<Session>,
    admin: Arc<AdminClient>,
) -> Result<Vec<SessionOutcome>> {
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for session in sessions {
        let (limit, admin) = (Arc::clone(&limit), Arc::clone(&admin));
        let url = format!("http://{host}{}", scenario::API_PATH);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            measure_one(&url, &session, &admin).await
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.context("a measuring task failed")??);
    }
    Ok(outcomes)
}

async fn measure_one(url: &str, session: &Session, admin: &AdminClient) -> Result<SessionOutcome> {
    let bearer = format!("Bearer {}", session.token);
    let headers = [("authorization", bearer.as_str())];
    let before = crate::http::get(url, &headers).await?.status;
    if before != 200 {
        bail!("a fresh session's token was answered {before} before its logout");
    }
    let started = Instant::now();
    admin.end_session(keycloak::REALM, &session.sid).await?;
    let deadline = Instant::now() + REFUSAL_TIMEOUT;
    loop {
        let status = crate::http::get(url, &headers).await?.status;
        let now = Instant::now();
        if status != 200 {
            return Ok(SessionOutcome {
                refused_after: Some(now - started),
                refused_at: Some(now),
            });
        }
        if now > deadline {
            return Ok(SessionOutcome {
                refused_after: None,
                refused_at: None,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The logout-to-refusal figures of one gateway, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct LogoutTimes {
    pub gateway: String,
    /// The rate of the `api-logged-out` cell it was measured in.
    pub rate: f64,
    pub sessions: usize,
    pub refused: usize,
    /// Refused before the cell's load stopped.
    pub under_load: usize,
    /// Still admitted [`REFUSAL_TIMEOUT`] after Keycloak answered the logout call.
    pub not_refused: usize,
    /// Percentiles over every session, a session not refused counting as slower than any
    /// refused one: `None` when the session at that rank was not refused.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub timeout_ms: u64,
}

impl LogoutTimes {
    pub fn new(gateway: &str, rate: f64, outcomes: &[SessionOutcome], load_end: Instant) -> Self {
        let mut times: Vec<Option<Duration>> = outcomes.iter().map(|o| o.refused_after).collect();
        // None (not refused) sorts after every time.
        times.sort_by_key(|time| (time.is_none(), *time));
        let at = |p: f64| -> Option<f64> {
            let rank = ((p / 100.0) * times.len() as f64).ceil() as usize;
            let index = rank.clamp(1, times.len().max(1)) - 1;
            times
                .get(index)
                .copied()
                .flatten()
                .map(|t| t.as_secs_f64() * 1000.0)
        };
        let refused = times.iter().filter(|t| t.is_some()).count();
        LogoutTimes {
            gateway: gateway.to_owned(),
            rate,
            sessions: outcomes.len(),
            refused,
            under_load: outcomes
                .iter()
                .filter(|o| o.refused_at.is_some_and(|at| at <= load_end))
                .count(),
            not_refused: outcomes.len() - refused,
            p50_ms: at(50.0),
            p99_ms: at(99.0),
            max_ms: at(100.0),
            timeout_ms: REFUSAL_TIMEOUT.as_millis() as u64,
        }
    }

    /// One table row: gateway, cell, sessions, p50, p99, max, not refused, under load.
    pub fn row(&self) -> Vec<String> {
        let ms = |value: Option<f64>| match value {
            Some(ms) => format!("{ms:.0}"),
            None => format!("> {} (not refused)", self.timeout_ms),
        };
        vec![
            self.gateway.clone(),
            format!("{} @ {} req/s", SCENARIO.name(), self.rate),
            self.sessions.to_string(),
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.max_ms),
            self.not_refused.to_string(),
            format!("{}/{}", self.under_load, self.sessions),
        ]
    }
}

pub const TABLE_HEADER: [&str; 8] = [
    "gateway",
    "measured in",
    "sessions",
    "p50 ms",
    "p99 ms",
    "max ms",
    "not refused",
    "under load",
];

/// What the table measures, in one sentence for the reports.
pub const TABLE_NOTE: &str = "From the admin call that ends a session at Keycloak to the \
    first refused request with that session's token (harness clock, polled every 5 ms, at most \
    1 s after Keycloak answered), while the gateway carries its api-logged-out cell's load.";

/// The gateways whose logout-to-refusal time the run measures, and in which cell.
#[derive(Debug, Default)]
pub struct Plan {
    pub gateways: Vec<String>,
    /// The rate of the measured cell.
    pub rate: Option<f64>,
}

impl Plan {
    /// Every gateway that must refuse an ended session's token is measured at `rate`.
    pub fn gateways<'a>(
        profiles: impl IntoIterator<Item = &'a GatewayProfile>,
    ) -> Vec<&'a GatewayProfile> {
        profiles
            .into_iter()
            .filter(|profile| scenario::expected_verdict(profile, SCENARIO) == Verdict::Pass)
            .collect()
    }

    pub fn measures(&self, gateway: &str, scenario: Scenario, rate: f64) -> bool {
        scenario == SCENARIO
            && self.rate == Some(rate)
            && self.gateways.iter().any(|g| g == gateway)
    }
}

/// Runs `load` (the cell's driver) on this thread while the sessions are measured on another,
/// from the end of the warm-up on.
#[allow(clippy::too_many_arguments)]
pub fn run_measured<T>(
    gateway: &str,
    rate: f64,
    host: &str,
    sessions: Vec<Session>,
    admin: Arc<AdminClient>,
    warmup: Duration,
    load: impl FnOnce() -> Result<T>,
) -> Result<(T, LogoutTimes)> {
    let host = host.to_owned();
    let measuring = std::thread::spawn(move || -> Result<Vec<SessionOutcome>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            tokio::time::sleep(warmup).await;
            measure(&host, sessions, admin).await
        })
    });
    let loaded = load();
    let load_end = Instant::now();
    let outcomes = measuring
        .join()
        .map_err(|_| anyhow!("the logout measurement panicked"))??;
    Ok((
        loaded?,
        LogoutTimes::new(gateway, rate, &outcomes, load_end),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ms: Option<u64>) -> SessionOutcome {
        let now = Instant::now();
        SessionOutcome {
            refused_after: ms.map(Duration::from_millis),
            refused_at: ms.map(|ms| now + Duration::from_millis(ms)),
        }
    }

    #[test]
    fn percentiles_count_a_session_not_refused_as_the_slowest() {
        let start = Instant::now();
        let all: Vec<SessionOutcome> = (1..=20).map(|n| outcome(Some(n * 10))).collect();
        let times = LogoutTimes::new("jwt", 20.0, &all, start + Duration::from_secs(60));
        assert_eq!((times.p50_ms, times.p99_ms), (Some(100.0), Some(200.0)));
        assert_eq!(
            (times.refused, times.not_refused, times.under_load),
            (20, 0, 20)
        );

        let mut one_missing = all.clone();
        one_missing[3] = outcome(None);
        let times = LogoutTimes::new("jwt", 20.0, &one_missing, start);
        assert_eq!(times.p99_ms, None);
        assert_eq!(times.p50_ms, Some(110.0));
        assert_eq!((times.not_refused, times.under_load), (1, 0));
        assert!(times.row()[4].contains("not refused"));
    }

    #[test]
    fn jwt_relays_to_hybrid_and_only_they_get_the_listener() {
        let names = ["no-auth", "jwt", "introspect", "hybrid"];
        let mut specs: Vec<(String, GatewaySpec)> = names
            .iter()
            .map(|n| ((*n).to_owned(), GatewaySpec::new(n)))
            .collect();
        let receiver = wire_specs(&mut specs).unwrap();
        assert_eq!(receiver.as_deref(), Some("jwt"));
        let (jwt, hybrid) = (&specs[1].1, &specs[3].1);
        assert!(jwt.backchannel_logout && hybrid.backchannel_logout);
        assert!(!specs[0].1.backchannel_logout && !specs[2].1.backchannel_logout);
        assert_eq!(jwt.peer_logout_port, hybrid.logout_port);
        assert_eq!(hybrid.peer_logout_port, jwt.logout_port);

        let mut alone = vec![("hybrid".to_owned(), GatewaySpec::new("hybrid"))];
        assert_eq!(wire_specs(&mut alone).unwrap().as_deref(), Some("hybrid"));
        assert_eq!(
            alone[0].1.peer_logout_port,
            Some(crate::render::NO_PEER_PORT)
        );
    }

    #[test]
    fn the_measured_gateways_are_those_that_must_refuse() {
        let measured: Vec<&str> = Plan::gateways(&scenario::GATEWAYS)
            .iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(measured, ["jwt", "introspect", "hybrid"]);
    }
}

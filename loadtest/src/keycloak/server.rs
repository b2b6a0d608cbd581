//! One Keycloak server: started here on free ports from the prepared database, or an external
//! one named by a URL. Running one process (ports, home, readiness) is `launch.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::admin::AdminClient;
use super::client::KeycloakClient;
use super::database::{self, PreparedDatabase};
use super::distribution::ensure_built;
use super::java::java_home;
use super::launch::{Launch, make_home};
use super::realm::{MINTING_CLIENTS, REALM};
use super::{STOP_GRACE, non_empty_env};
use crate::process::ManagedProcess;

/// Use this running Keycloak instead of starting one (see [`shared`]).
pub const URL_ENV: &str = "TOKENGATE_KEYCLOAK_URL";
/// Optional management base URL of the Keycloak named by [`URL_ENV`].
pub const MANAGEMENT_URL_ENV: &str = "TOKENGATE_KEYCLOAK_MANAGEMENT_URL";

/// How long an external Keycloak may take to answer (it was started by someone else, who
/// waited for it already).
const EXTERNAL_READY_TIMEOUT: Duration = Duration::from_secs(240);
pub(super) const READY_POLL: Duration = Duration::from_millis(250);
/// How long the warm-up after a start may take, in all.
const WARM_UP_BUDGET: Duration = Duration::from_secs(90);
const DROP_GRACE: Duration = Duration::from_secs(10);
const PROCESS_NAME: &str = "keycloak";

/// A Keycloak serving the repository's realms on 127.0.0.1: one started here
/// (stopped when dropped) or an external one from [`Keycloak::external`].
#[derive(Debug)]
pub struct Keycloak {
    base_url: String,
    management_url: Option<String>,
    managed: Option<Managed>,
    admin: OnceLock<AdminClient>,
}

#[derive(Debug)]
struct Managed {
    launch: Launch,
    realms: Vec<String>,
    process: Mutex<Option<Arc<ManagedProcess>>>,
    startup: Mutex<Duration>,
    preparation: Duration,
    database: Duration,
}

impl Keycloak {
    /// Starts a Keycloak with every realm of `keycloak/realm-*.json`, on free ports, and
    /// waits until it is ready (as long as it makes progress; see `readiness`). Its log
    /// (`keycloak.log`) and home (`keycloak-home/`, database included) go into `dir`; an
    /// existing `keycloak-home/` there is replaced.
    ///
    /// Fetches and builds the distribution and prepares the database first if the cache
    /// lacks them (see [`preparation_duration`](Self::preparation_duration)). Blocking.
    pub fn start(dir: &Path) -> Result<Keycloak> {
        let prepare_started = Instant::now();
        let java_home = java_home()?;
        let dist = ensure_built(&java_home)?;
        crate::paths::ensure_dir(dir)?;
        let database_started = Instant::now();
        let prepared: PreparedDatabase = database::ensure_prepared(&dist, &java_home, dir)?;
        let database = database_started.elapsed();
        let preparation = prepare_started.elapsed();

        let home = dir.join("keycloak-home");
        make_home(&dist, &home)?;
        database::copy_into(&prepared, &home)?;

        let launch = Launch::on_free_ports(&dist, &java_home, &home, dir, PROCESS_NAME)?;
        let managed = Managed {
            launch,
            realms: prepared.realms,
            process: Mutex::new(None),
            startup: Mutex::new(Duration::ZERO),
            preparation,
            database,
        };
        managed.launch()?;
        Ok(Keycloak {
            base_url: managed.launch.base_url(),
            management_url: Some(managed.launch.management_url()),
            managed: Some(managed),
            admin: OnceLock::new(),
        })
    }

    /// A Keycloak that is already running, with the repository's realms, at
    /// `base_url` (`http://host:port`, no path). Waits up to 240 s until its
    /// realm answers (and `management_url`'s `/health/ready`, if given).
    ///
    /// Mint and introspect through this same URL: Keycloak compares a
    /// token's issuer with the base URL of the request.
    pub fn external(base_url: &str, management_url: Option<&str>) -> Result<Keycloak> {
        let base_url = base_url.trim_end_matches('/').to_string();
        if !base_url.starts_with("http://") {
            bail!("Keycloak URL {base_url:?} must be a plain http:// URL");
        }
        let keycloak = Keycloak {
            base_url,
            management_url: management_url.map(|u| u.trim_end_matches('/').to_string()),
            managed: None,
            admin: OnceLock::new(),
        };
        let deadline = Instant::now() + EXTERNAL_READY_TIMEOUT;
        loop {
            match keycloak.probe() {
                Ok(()) => return Ok(keycloak),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context(format!(
                        "Keycloak at {} not ready within {EXTERNAL_READY_TIMEOUT:?}",
                        keycloak.base_url
                    )));
                }
                Err(_) => std::thread::sleep(READY_POLL),
            }
        }
    }

    /// [`Keycloak::external`] from `TOKENGATE_KEYCLOAK_URL` (and
    /// `TOKENGATE_KEYCLOAK_MANAGEMENT_URL`); `None` if the former is unset.
    pub fn from_env() -> Result<Option<Keycloak>> {
        let Some(url) = non_empty_env(URL_ENV) else {
            return Ok(None);
        };
        let management = non_empty_env(MANAGEMENT_URL_ENV);
        Keycloak::external(&url, management.as_deref())
            .with_context(|| format!("using the Keycloak named by {URL_ENV}"))
            .map(Some)
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The HTTP port of [`base_url`](Self::base_url).
    pub fn port(&self) -> u16 {
        match &self.managed {
            Some(m) => m.launch.http_port,
            None => port_of(&self.base_url).unwrap_or(80),
        }
    }

    /// `http://127.0.0.1:PORT` of the management interface (health), if known.
    pub fn management_url(&self) -> Option<&str> {
        self.management_url.as_deref()
    }

    /// `{base}/realms/tokengate`, the `iss` of every token of the first realm.
    pub fn issuer(&self) -> String {
        self.realm_issuer(REALM)
    }

    /// `{base}/realms/{realm}`, the `iss` of `realm`'s tokens.
    pub fn realm_issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base_url)
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/protocol/openid-connect/token", self.issuer())
    }

    pub fn introspection_endpoint(&self) -> String {
        format!("{}/protocol/openid-connect/token/introspect", self.issuer())
    }

    pub fn revocation_endpoint(&self) -> String {
        format!("{}/protocol/openid-connect/revoke", self.issuer())
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/protocol/openid-connect/certs", self.issuer())
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    /// An HTTP client for the first realm's token, introspection, revocation
    /// and JWKS endpoints.
    pub fn client(&self) -> KeycloakClient {
        KeycloakClient::new(&self.base_url)
    }

    /// The same for `realm` (e.g. [`super::PARTNER_REALM`]).
    pub fn realm_client(&self, realm: &str) -> KeycloakClient {
        KeycloakClient::for_realm(&self.base_url, realm)
    }

    /// The admin REST API, as the master realm's bootstrap admin: one client (and login)
    /// for every caller.
    pub fn admin(&self) -> &AdminClient {
        self.admin.get_or_init(|| AdminClient::new(&self.base_url))
    }

    /// Whether this Keycloak was started here (and so can be stopped and
    /// restarted).
    pub fn is_managed(&self) -> bool {
        self.managed.is_some()
    }

    /// From spawning Keycloak to its readiness, for the latest start or
    /// restart; `None` for an external Keycloak.
    pub fn startup_duration(&self) -> Option<Duration> {
        self.managed.as_ref().map(|m| *lock(&m.startup))
    }

    /// Time [`Keycloak::start`] spent before starting the server: fetching, unpacking and
    /// building the distribution and preparing the database (near zero when cached); `None`
    /// for an external Keycloak.
    pub fn preparation_duration(&self) -> Option<Duration> {
        self.managed.as_ref().map(|m| m.preparation)
    }

    /// The part of [`preparation_duration`](Self::preparation_duration) spent preparing the
    /// database (or waiting for another process to): a whole Keycloak start with schema
    /// creation and import when the cache had none, near zero otherwise.
    pub fn database_preparation_duration(&self) -> Option<Duration> {
        self.managed.as_ref().map(|m| m.database)
    }

    /// The log file of a Keycloak started here (restarts append to it).
    pub fn log_path(&self) -> Option<PathBuf> {
        self.managed.as_ref().map(|m| m.launch.log_path())
    }

    /// The last `lines` lines of the log; empty for an external Keycloak.
    pub fn log_tail(&self, lines: usize) -> String {
        self.managed
            .as_ref()
            .and_then(|m| lock(&m.process).clone())
            .map(|p| p.log_tail(lines))
            .unwrap_or_default()
    }

    /// For a Keycloak started here: whether its process is alive. For an
    /// external one: whether its realm answers right now.
    pub fn is_running(&self) -> bool {
        match &self.managed {
            Some(m) => lock(&m.process).as_ref().is_some_and(|p| p.is_running()),
            None => self.probe().is_ok(),
        }
    }

    /// Graceful stop: SIGTERM, up to 30 s to exit, then SIGKILL. The data
    /// directory is kept for [`restart`](Self::restart). Fails for an
    /// external Keycloak.
    pub fn stop(&self) -> Result<()> {
        let managed = self.managed_or_bail("stop")?;
        managed.stop(STOP_GRACE)
    }

    /// Stops Keycloak (if running) and starts it again on the same ports with
    /// the same database, so realm, keys and issued tokens carry over. Waits
    /// for readiness; returns the start time. Fails for an external Keycloak.
    pub fn restart(&self) -> Result<Duration> {
        let managed = self.managed_or_bail("restart")?;
        managed.stop(STOP_GRACE)?;
        managed.launch()?;
        Ok(*lock(&managed.startup))
    }

    fn managed_or_bail(&self, what: &str) -> Result<&Managed> {
        self.managed.as_ref().ok_or_else(|| {
            anyhow!(
                "cannot {what} the external Keycloak at {}: it was not started here",
                self.base_url
            )
        })
    }

    /// One readiness check: management `/health/ready` (if known) and the
    /// first realm's discovery document.
    fn probe(&self) -> Result<()> {
        if let Some(management) = &self.management_url {
            let url = format!("{management}/health/ready");
            let response = crate::http::get_blocking(&url, Duration::from_secs(2))?;
            if response.status != 200 {
                bail!("{url} answered {}", response.status);
            }
        }
        let url = self.discovery_url();
        let response = crate::http::get_blocking(&url, Duration::from_secs(5))?;
        if response.status != 200 {
            bail!(
                "{url} answered {} (is the {REALM} realm imported?)",
                response.status
            );
        }
        Ok(())
    }
}

impl Drop for Keycloak {
    fn drop(&mut self) {
        if let Some(managed) = &self.managed {
            let _ = managed.stop(DROP_GRACE);
        }
    }
}

impl Managed {
    /// Spawns Keycloak on its database and waits for readiness; records the start time.
    fn launch(&self) -> Result<()> {
        let started = Instant::now();
        let (process, follower) = self.launch.spawn(false)?;
        let process = Arc::new(process);
        *lock(&self.process) = Some(Arc::clone(&process));
        self.launch.wait_ready(&process, follower, "starting")?;
        for realm in &self.realms {
            self.launch.check_realm(realm)?;
        }
        *lock(&self.startup) = started.elapsed();
        let warming = Instant::now();
        match warm_up(&self.launch.base_url(), &self.realms) {
            Ok(()) => eprintln!(
                "keycloak :{} ready in {:.1?}, warmed up in {:.1?}",
                self.launch.http_port,
                *lock(&self.startup),
                warming.elapsed()
            ),
            // Not fatal: a test that needs Keycloak to answer will say what failed.
            Err(e) => eprintln!(
                "keycloak :{} ready, but warming up failed after {:.1?}: {e:#}",
                self.launch.http_port,
                warming.elapsed()
            ),
        }
        Ok(())
    }

    fn stop(&self, grace: Duration) -> Result<()> {
        let process = lock(&self.process).clone();
        if let Some(process) = process {
            process
                .stop(grace)
                .with_context(|| format!("stopping Keycloak (pid {})", process.pid()))?;
        }
        Ok(())
    }
}

/// Takes the cost of the first requests after a start (cold JIT, keys and caches loaded on
/// first use): on busy cores the first token request after a start took over 10 s, and the
/// first introspection after a restart over 2 s (a gateway's timeout), while later ones take
/// milliseconds. Mints one token and introspects it per realm that has minting clients,
/// trying again (the abandoned request still warms Keycloak) for up to [`WARM_UP_BUDGET`].
/// Runs on a thread with its own runtime, since callers may be inside one.
fn warm_up(base_url: &str, realms: &[String]) -> Result<()> {
    let base_url = base_url.to_string();
    let realms = realms.to_vec();
    let thread = std::thread::spawn(move || -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("a runtime for the warm-up")?;
        let deadline = Instant::now() + WARM_UP_BUDGET;
        runtime.block_on(async {
            loop {
                match warm_up_once(&base_url, &realms).await {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() >= deadline => return Err(e),
                    Err(_) => tokio::time::sleep(READY_POLL).await,
                }
            }
        })
    });
    thread
        .join()
        .map_err(|_| anyhow!("the warm-up thread panicked"))?
}

async fn warm_up_once(base_url: &str, realms: &[String]) -> Result<()> {
    for (realm, minter, gateway) in MINTING_CLIENTS {
        if !realms.iter().any(|r| r == realm) {
            continue;
        }
        let client = KeycloakClient::for_realm(base_url, realm);
        let token = client
            .client_credentials(minter.id, minter.secret)
            .await
            .with_context(|| format!("minting in realm {realm}"))?;
        client
            .introspect(&token.access_token, gateway.id, gateway.secret)
            .await
            .with_context(|| format!("introspecting in realm {realm}"))?;
    }
    Ok(())
}

/// One Keycloak for the whole test process, started on first use and reused
/// by every test; or the external one named by `TOKENGATE_KEYCLOAK_URL`.
///
/// Its log and home are in a fresh `target/tokengate-runs/keycloak-*`
/// directory. It is never dropped: it dies with the test process. Do not
/// stop or restart it, or change its realms' keys or clients; tests that need to do so
/// start their own.
pub fn shared() -> Result<&'static Keycloak> {
    static SHARED: OnceLock<Result<Keycloak, String>> = OnceLock::new();
    let result = SHARED.get_or_init(|| {
        let started = match Keycloak::from_env() {
            Ok(Some(external)) => Ok(external),
            Ok(None) => Keycloak::start(&crate::paths::run_dir("keycloak")),
            Err(e) => Err(e),
        };
        // anyhow::Error is not Clone; every caller gets the same message.
        started.map_err(|e| format!("{e:#}"))
    });
    result
        .as_ref()
        .map_err(|e| anyhow!("the shared Keycloak is unavailable: {e}"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn port_of(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (_, port) = authority.rsplit_once(':')?;
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_of_a_url() {
        assert_eq!(port_of("http://127.0.0.1:8080"), Some(8080));
        assert_eq!(port_of("http://127.0.0.1:8080/x"), Some(8080));
        assert_eq!(port_of("http://localhost"), None);
    }
}

//! A real Keycloak for the end-to-end tests and load runs.
//!
//! # Where it comes from
//!
//! The server distribution (pinned to [`VERSION`]) is fetched from Maven
//! Central with `mvn` into `<repo>/.cache/downloads/`, unpacked into
//! `<repo>/.cache/keycloak-<VERSION>/` and built once with `kc.sh build`
//! ([`ensure_built`]). All of that happens on first use and is skipped when
//! already done; a file lock makes it safe for several test processes at once.
//!
//! # How it runs
//!
//! Not with `start-dev`: that re-runs Quarkus' build step (about 20 s on two
//! cores) on *every* start, and writes the result into the shared
//! distribution, which races when two instances start together. Instead the
//! distribution is built once for the embedded H2 database (`dev-file`) and
//! every instance runs `kc.sh start --optimized` in production mode with
//! what start-dev would have set: plain HTTP, no strict hostname (the issuer
//! follows the request's host and port) and a local cache (no clustering).
//!
//! Each instance gets its own Keycloak home (`kc.home.dir`): a directory of
//! symlinks onto the distribution plus a real `data/` holding its H2 database,
//! its transaction log and `data/import/` with the repository realm
//! ([`REALM_FILE`]). Two instances therefore never share state, and a
//! restarted instance keeps its database, so its signing keys and the tokens
//! it issued stay valid.
//!
//! `kc.sh` runs Java as a background child and waits for it. So that Java
//! dies with us even when we are killed (our direct child gets the kernel's
//! parent-death signal, a grandchild would not), Java is started through a
//! small wrapper that arms `PR_SET_PDEATHSIG` with util-linux `setpriv`.
//!
//! # Sharing one Keycloak
//!
//! [`shared`] starts one Keycloak per test process on first use. Set
//! `TOKENGATE_KEYCLOAK_URL` (e.g. `http://127.0.0.1:8080`) to use an already
//! running Keycloak with the tokengate realm instead, for instance one that CI
//! starts once for all test binaries; `TOKENGATE_KEYCLOAK_MANAGEMENT_URL`
//! (e.g. `http://127.0.0.1:9000`) adds a readiness check on `/health/ready`.
//! `keycloak/README.md` shows how to start one by hand.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

use crate::process::{ManagedProcess, ProcessSpec, describe_status};

/// The pinned Keycloak release.
pub const VERSION: &str = "26.7.3";
/// The realm every client and user below lives in.
pub const REALM: &str = "tokengate";
/// The realm export imported into every started instance, relative to the
/// repository root. Docker compose mounts the same file.
pub const REALM_FILE: &str = "keycloak/realm-tokengate.json";

/// The audience the gateway checks; every minted access token carries it.
pub const API_AUDIENCE: &str = "tokengate-api";

/// A confidential client of the realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub id: &'static str,
    pub secret: &'static str,
}

/// Mints tokens (client credentials and password grants); 300 s lifetime.
pub const LOADTEST: Client = Client {
    id: "tokengate-loadtest",
    secret: "loadtest-secret",
};
/// The gateway's own client: no flows, only calls the introspection endpoint.
/// Every minted token has it in `aud`, which Keycloak requires for
/// introspection to answer `active: true`.
pub const GATEWAY: Client = Client {
    id: "tokengate-gateway",
    secret: "gateway-secret",
};
/// Client credentials; its access tokens expire 2 s after issue.
pub const SHORT_LIVED: Client = Client {
    id: "tokengate-short",
    secret: "short-secret",
};
/// How long [`SHORT_LIVED`]'s access tokens live.
pub const SHORT_LIVED_LIFESPAN: Duration = Duration::from_secs(2);
/// Client credentials; its access tokens are signed with ES256 (P-256).
pub const ES256: Client = Client {
    id: "tokengate-es256",
    secret: "es256-secret",
};
/// Client credentials; its tokens are for another API: `aud` holds `tokengate-gateway` (so
/// introspection answers) but not `tokengate-api`.
pub const OTHER_API: Client = Client {
    id: "tokengate-other-api",
    secret: "other-api-secret",
};

/// A realm user for the password grant (through [`LOADTEST`]), with realm
/// role [`USER_ROLE`].
pub const ALICE: User = User {
    username: "alice",
    password: "alice-password",
};
/// The realm role that `alice` has (`realm_access.roles`).
pub const USER_ROLE: &str = "user";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub username: &'static str,
    pub password: &'static str,
}

/// The master realm's administrator in instances started here.
pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin";

/// Use this running Keycloak instead of starting one (see [`shared`]).
pub const URL_ENV: &str = "TOKENGATE_KEYCLOAK_URL";
/// Optional management base URL of the Keycloak named by [`URL_ENV`].
pub const MANAGEMENT_URL_ENV: &str = "TOKENGATE_KEYCLOAK_MANAGEMENT_URL";
/// A JDK to run Keycloak with, instead of the one [`java_home`] picks.
pub const JAVA_HOME_ENV: &str = "TOKENGATE_JAVA_HOME";

/// Options baked into the distribution by `kc.sh build`. Every start must
/// agree with them, or `--optimized` refuses to start.
const BUILD_OPTIONS: &[&str] = &["--db=dev-file", "--health-enabled=true"];
/// Where JDKs are installed on Debian-like systems.
const JVM_DIR: &str = "/usr/lib/jvm";
/// Java releases Keycloak 26.7 supports, most preferred first.
const SUPPORTED_JAVA: &[u32] = &[25, 21, 17];
/// The heap used unless `JAVA_OPTS_KC_HEAP` is already set.
const DEFAULT_HEAP: &str = "-Xms64m -Xmx512m";

const READY_TIMEOUT: Duration = Duration::from_secs(240);
const READY_POLL: Duration = Duration::from_millis(250);
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);
/// Keycloak shuts down in a second or two on SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);
const DROP_GRACE: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 60;

// ---------------------------------------------------------------- distribution

/// `<repo_root>/.cache`, where downloads and the unpacked server live
/// (git-ignored).
pub fn cache_dir() -> PathBuf {
    crate::paths::repo_root().join(".cache")
}

/// The unpacked distribution, `<cache>/keycloak-<VERSION>`; fetched and
/// unpacked first if missing. Idempotent; safe to call concurrently, from
/// threads or processes.
pub fn ensure_distribution() -> Result<PathBuf> {
    let cache = cache_dir();
    let dist = cache.join(format!("keycloak-{VERSION}"));
    if distribution_complete(&dist) {
        return Ok(dist);
    }
    crate::paths::ensure_dir(&cache)?;
    let _lock = FileLock::exclusive(&lock_path(&cache))?;
    // Another process may have finished while we waited for the lock.
    if distribution_complete(&dist) {
        return Ok(dist);
    }
    let zip = fetch_zip(&cache)?;
    unpack(&zip, &cache, &dist)?;
    Ok(dist)
}

/// The distribution, built (`kc.sh build`) for how [`Keycloak::start`] runs
/// it, with `java_home`. Builds at most once per distribution and JDK.
pub fn ensure_built(java_home: &Path) -> Result<PathBuf> {
    let dist = ensure_distribution()?;
    let cache = cache_dir();
    let marker = dist.join(".tokengate-build");
    let wanted = build_marker(java_home);
    let wrapper = java_wrapper_path(&cache);
    // The stamp catches a build made behind our back (say a `kc.sh
    // start-dev` run from this directory), which `--optimized` would reject.
    let current = || {
        fs::read_to_string(&marker).is_ok_and(|m| m == format!("{wanted}{}", build_stamp(&dist)))
            && (!setpriv_available() || wrapper.is_file())
    };
    if current() {
        return Ok(dist);
    }
    let _lock = FileLock::exclusive(&lock_path(&cache))?;
    if current() {
        return Ok(dist);
    }
    if setpriv_available() {
        write_java_wrapper(&wrapper)?;
    }
    // A half-finished earlier build must not look current.
    let _ = fs::remove_file(&marker);
    let build = ManagedProcess::spawn(
        java_env(
            ProcessSpec::new(
                &format!("keycloak-{VERSION}-build"),
                dist.join("bin/kc.sh"),
                &cache,
            )
            .arg("build")
            .args(BUILD_OPTIONS),
            java_home,
            &cache,
        )
        .cwd(&dist),
    )
    .context("starting `kc.sh build`")?;
    let status = match build.wait_exit(BUILD_TIMEOUT) {
        Some(status) => status,
        None => {
            let _ = build.stop(STOP_GRACE);
            bail!(
                "`kc.sh build` did not finish within {BUILD_TIMEOUT:?}; log {}:\n{}",
                build.log_path().display(),
                build.log_tail(LOG_TAIL_LINES)
            );
        }
    };
    if !status.success() {
        bail!(
            "`kc.sh build` failed ({}); log {}:\n{}",
            describe_status(status),
            build.log_path().display(),
            build.log_tail(LOG_TAIL_LINES)
        );
    }
    fs::write(&marker, format!("{wanted}{}", build_stamp(&dist)))
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(dist)
}

/// The JDK to run Keycloak with: `TOKENGATE_JAVA_HOME` if set, else the
/// newest supported one (25, then 21, then 17) among the JDKs in
/// `/usr/lib/jvm`, `JAVA_HOME` and the `java` on `PATH`.
pub fn java_home() -> Result<PathBuf> {
    if let Some(dir) = non_empty_env(JAVA_HOME_ENV) {
        let dir = PathBuf::from(dir);
        if dir.join("bin/java").is_file() {
            return Ok(dir);
        }
        bail!(
            "{JAVA_HOME_ENV}={} has no bin/java; point it at a JDK {SUPPORTED_JAVA:?} or unset it",
            dir.display()
        );
    }

    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = fs::read_dir(JVM_DIR) {
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        candidates.extend(dirs);
    }
    if let Some(dir) = non_empty_env("JAVA_HOME") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(java) = find_on_path("java")
        && let Ok(real) = java.canonicalize()
        && let Some(home) = real.parent().and_then(Path::parent)
    {
        candidates.push(home.to_path_buf());
    }

    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for dir in candidates {
        let Ok(real) = dir.canonicalize() else {
            continue;
        };
        if !real.join("bin/java").is_file() || found.iter().any(|(_, d)| *d == real) {
            continue;
        }
        if let Some(major) = java_major(&real) {
            found.push((major, real));
        }
    }
    for wanted in SUPPORTED_JAVA {
        if let Some((_, dir)) = found.iter().find(|(major, _)| major == wanted) {
            return Ok(dir.clone());
        }
    }
    let seen: Vec<String> = found
        .iter()
        .map(|(major, dir)| format!("{} (Java {major})", dir.display()))
        .collect();
    bail!(
        "no JDK {SUPPORTED_JAVA:?} found for Keycloak (found: [{}]); install one or set {JAVA_HOME_ENV}",
        seen.join(", ")
    )
}

/// The major version from a JDK's `release` file (`JAVA_VERSION="25.0.3"`).
fn java_major(home: &Path) -> Option<u32> {
    let release = fs::read_to_string(home.join("release")).ok()?;
    let line = release
        .lines()
        .find_map(|l| l.strip_prefix("JAVA_VERSION="))?;
    let version = line.trim().trim_matches('"');
    version.split(['.', '-', '+']).next()?.parse().ok()
}

fn distribution_complete(dist: &Path) -> bool {
    dist.join("bin/kc.sh").is_file() && dist.join("lib/quarkus-run.jar").is_file()
}

fn lock_path(cache: &Path) -> PathBuf {
    cache.join(format!("keycloak-{VERSION}.lock"))
}

fn build_marker(java_home: &Path) -> String {
    let java = java_home
        .canonicalize()
        .unwrap_or_else(|_| java_home.to_path_buf());
    format!(
        "kc.sh build {}\njava {}\nwrapper {}\n",
        BUILD_OPTIONS.join(" "),
        java.display(),
        setpriv_available()
    )
}

/// When Quarkus last wrote the built application into the distribution.
fn build_stamp(dist: &Path) -> String {
    let modified = fs::metadata(dist.join("lib/quarkus/quarkus-application.dat"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    match modified {
        Some(t) => format!("built {}.{:09}\n", t.as_secs(), t.subsec_nanos()),
        None => "built never\n".to_string(),
    }
}

/// The distribution zip in `<cache>/downloads/`, fetched with Maven if absent.
fn fetch_zip(cache: &Path) -> Result<PathBuf> {
    let downloads = cache.join("downloads");
    let name = format!("keycloak-quarkus-dist-{VERSION}.zip");
    let zip = downloads.join(&name);
    if zip.is_file() {
        return Ok(zip);
    }
    if find_on_path("mvn").is_none() {
        bail!(
            "Keycloak {VERSION} is not in {} and `mvn` is not on PATH to fetch it \
             (install Maven, or put {name} into {} by hand)",
            cache.display(),
            downloads.display()
        );
    }
    // Into a private directory first, so an interrupted copy never looks like
    // a complete zip.
    let partial = downloads.join(format!(".partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    crate::paths::ensure_dir(&partial)?;
    let output = Command::new("mvn")
        .arg("-q")
        .arg("-B")
        .arg("dependency:copy")
        .arg(format!(
            "-Dartifact=org.keycloak:keycloak-quarkus-dist:{VERSION}:zip"
        ))
        .arg(format!("-DoutputDirectory={}", partial.display()))
        .output()
        .context("running mvn")?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&partial);
        bail!(
            "mvn could not fetch org.keycloak:keycloak-quarkus-dist:{VERSION}:zip ({}):\n{}{}",
            describe_status(output.status),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let fetched = partial.join(&name);
    fs::rename(&fetched, &zip)
        .with_context(|| format!("moving {} to {}", fetched.display(), zip.display()))?;
    let _ = fs::remove_dir_all(&partial);
    Ok(zip)
}

/// Unpacks `zip` (whose single top-level directory is `keycloak-<VERSION>`)
/// into a staging directory, then moves it to `dist` in one rename.
fn unpack(zip: &Path, cache: &Path, dist: &Path) -> Result<()> {
    let staging = cache.join(format!(".unpack-keycloak-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    crate::paths::ensure_dir(&staging)?;
    let mut command = if find_on_path("unzip").is_some() {
        let mut c = Command::new("unzip");
        c.arg("-q").arg(zip).arg("-d").arg(&staging);
        c
    } else if find_on_path("python3").is_some() {
        let mut c = Command::new("python3");
        c.args(["-m", "zipfile", "-e"]).arg(zip).arg(&staging);
        c
    } else {
        bail!(
            "neither `unzip` nor `python3` is on PATH to unpack {}",
            zip.display()
        );
    };
    let output = command
        .output()
        .with_context(|| format!("unpacking {}", zip.display()))?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&staging);
        bail!(
            "unpacking {} failed ({}); delete it to fetch it again:\n{}{}",
            zip.display(),
            describe_status(output.status),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let unpacked = staging.join(format!("keycloak-{VERSION}"));
    if !distribution_complete(&unpacked) {
        let _ = fs::remove_dir_all(&staging);
        bail!(
            "{} did not contain keycloak-{VERSION}/bin/kc.sh; delete it to fetch it again",
            zip.display()
        );
    }
    // Python's zipfile drops the executable bits.
    make_scripts_executable(&unpacked.join("bin"))?;
    let _ = fs::remove_dir_all(dist);
    fs::rename(&unpacked, dist)
        .with_context(|| format!("moving {} to {}", unpacked.display(), dist.display()))?;
    let _ = fs::remove_dir_all(&staging);
    Ok(())
}

fn make_scripts_executable(bin: &Path) -> Result<()> {
    for entry in fs::read_dir(bin).with_context(|| format!("listing {}", bin.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sh") {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", path.display()))?;
        }
    }
    Ok(())
}

fn java_wrapper_path(cache: &Path) -> PathBuf {
    cache.join("keycloak-java-pdeathsig.sh")
}

/// `kc.sh` runs `$JAVA` in the background and waits for it; this wrapper
/// makes Java die with `kc.sh`, which dies with us.
fn write_java_wrapper(path: &Path) -> Result<()> {
    let script = "#!/bin/sh\n\
        # Written by loadtest::keycloak. kc.sh starts $JAVA as its child; arm the\n\
        # parent-death signal so Java cannot outlive kc.sh (and so the tests).\n\
        exec setpriv --pdeathsig KILL -- \"$JAVA_HOME/bin/java\" \"$@\"\n";
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    fs::write(&partial, script).with_context(|| format!("writing {}", partial.display()))?;
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", partial.display()))?;
    fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn setpriv_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| find_on_path("setpriv").is_some())
}

/// Adds the Java settings every `kc.sh` run gets.
fn java_env(spec: ProcessSpec, java_home: &Path, cache: &Path) -> ProcessSpec {
    let mut spec = spec.env("JAVA_HOME", java_home);
    if setpriv_available() {
        spec = spec.env("JAVA", java_wrapper_path(cache));
    }
    if std::env::var_os("JAVA_OPTS_KC_HEAP").is_none() {
        spec = spec.env("JAVA_OPTS_KC_HEAP", DEFAULT_HEAP);
    }
    spec
}

// ---------------------------------------------------------------- the server

/// A Keycloak serving the tokengate realm on 127.0.0.1: one started here
/// (stopped when dropped) or an external one from [`Keycloak::external`].
#[derive(Debug)]
pub struct Keycloak {
    base_url: String,
    management_url: Option<String>,
    managed: Option<Managed>,
}

#[derive(Debug)]
struct Managed {
    dist: PathBuf,
    java_home: PathBuf,
    home: PathBuf,
    log_dir: PathBuf,
    http_port: u16,
    management_port: u16,
    process: Mutex<Option<Arc<ManagedProcess>>>,
    startup: Mutex<Duration>,
    preparation: Duration,
}

impl Keycloak {
    /// Starts a fresh Keycloak with the repository realm imported, on free
    /// ports, and waits until it is ready (up to 240 s). Its log
    /// (`keycloak.log`) and home (`keycloak-home/`, database included) go
    /// into `dir`; an existing `keycloak-home/` there is replaced.
    ///
    /// Fetches and builds the distribution first if needed (see
    /// [`preparation_duration`](Self::preparation_duration)). Blocking.
    pub fn start(dir: &Path) -> Result<Keycloak> {
        let prepare_started = Instant::now();
        let java_home = java_home()?;
        let dist = ensure_built(&java_home)?;
        let preparation = prepare_started.elapsed();

        crate::paths::ensure_dir(dir)?;
        let home = dir.join("keycloak-home");
        make_home(&dist, &home)?;

        let http_port = crate::ports::free_port().context("choosing Keycloak's HTTP port")?;
        let management_port =
            crate::ports::free_port().context("choosing Keycloak's management port")?;
        let managed = Managed {
            dist,
            java_home,
            home,
            log_dir: dir.to_path_buf(),
            http_port,
            management_port,
            process: Mutex::new(None),
            startup: Mutex::new(Duration::ZERO),
            preparation,
        };
        managed.launch(true)?;
        Ok(Keycloak {
            base_url: format!("http://127.0.0.1:{http_port}"),
            management_url: Some(format!("http://127.0.0.1:{management_port}")),
            managed: Some(managed),
        })
    }

    /// A Keycloak that is already running, with the tokengate realm, at
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
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match keycloak.probe() {
                Ok(()) => return Ok(keycloak),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context(format!(
                        "Keycloak at {} not ready within {READY_TIMEOUT:?}",
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
            Some(m) => m.http_port,
            None => port_of(&self.base_url).unwrap_or(80),
        }
    }

    /// `http://127.0.0.1:PORT` of the management interface (health), if known.
    pub fn management_url(&self) -> Option<&str> {
        self.management_url.as_deref()
    }

    /// `{base}/realms/tokengate`, the `iss` of every token.
    pub fn issuer(&self) -> String {
        format!("{}/realms/{REALM}", self.base_url)
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

    /// An HTTP client for this Keycloak's token, introspection, revocation
    /// and JWKS endpoints.
    pub fn client(&self) -> KeycloakClient {
        KeycloakClient::new(&self.base_url)
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

    /// Time [`Keycloak::start`] spent fetching, unpacking and building the
    /// distribution (near zero when cached); `None` for an external Keycloak.
    pub fn preparation_duration(&self) -> Option<Duration> {
        self.managed.as_ref().map(|m| m.preparation)
    }

    /// The log file of a Keycloak started here (restarts append to it).
    pub fn log_path(&self) -> Option<PathBuf> {
        self.managed
            .as_ref()
            .map(|m| m.log_dir.join(format!("{}.log", PROCESS_NAME)))
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
        managed.launch(false)?;
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
    /// realm's discovery document.
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

const PROCESS_NAME: &str = "keycloak";

impl Managed {
    /// Spawns Keycloak and waits for readiness; records the start time.
    fn launch(&self, import_realm: bool) -> Result<()> {
        let cache = cache_dir();
        let mut spec = ProcessSpec::new(PROCESS_NAME, self.dist.join("bin/kc.sh"), &self.log_dir)
            // kc.sh sets kc.home.dir to the distribution; a later -D wins.
            .arg(format!("-Dkc.home.dir={}", self.home.display()))
            .arg("start")
            .arg("--optimized")
            .args(BUILD_OPTIONS)
            .arg("--cache=local")
            .arg("--http-enabled=true")
            .arg("--hostname-strict=false")
            .arg("--http-host=127.0.0.1")
            .arg(format!("--http-port={}", self.http_port))
            .arg(format!("--http-management-port={}", self.management_port))
            // Every readiness poll before bootstrap ends is logged otherwise.
            .arg("--log-level=info,io.smallrye.health:warn")
            .env("KC_BOOTSTRAP_ADMIN_USERNAME", ADMIN_USERNAME)
            .env("KC_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .cwd(&self.home);
        if import_realm {
            // Only the first start: later ones find the realm in the database.
            spec = spec.arg("--import-realm");
        }
        let spec = java_env(spec, &self.java_home, &cache);

        let started = Instant::now();
        let process = Arc::new(ManagedProcess::spawn(spec).context("starting Keycloak")?);
        *lock(&self.process) = Some(Arc::clone(&process));
        let ready_url = format!("http://127.0.0.1:{}/health/ready", self.management_port);
        loop {
            if let Some(status) = process.try_exit_status() {
                bail!(
                    "Keycloak exited ({}) before becoming ready; log {}:\n{}",
                    describe_status(status),
                    process.log_path().display(),
                    process.log_tail(LOG_TAIL_LINES)
                );
            }
            // Connection refused until the management interface is up; 503
            // while the realm is imported.
            if let Ok(response) = crate::http::get_blocking(&ready_url, Duration::from_secs(2))
                && response.status == 200
            {
                break;
            }
            if started.elapsed() >= READY_TIMEOUT {
                let _ = process.stop(STOP_GRACE);
                bail!(
                    "Keycloak not ready at {ready_url} within {READY_TIMEOUT:?}; log {}:\n{}",
                    process.log_path().display(),
                    process.log_tail(LOG_TAIL_LINES)
                );
            }
            std::thread::sleep(READY_POLL);
        }
        *lock(&self.startup) = started.elapsed();
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

/// A fresh Keycloak home: symlinks onto everything in the distribution but
/// `data/`, which is real and holds the realm to import.
fn make_home(dist: &Path, home: &Path) -> Result<()> {
    if home.exists() {
        fs::remove_dir_all(home).with_context(|| format!("removing old {}", home.display()))?;
    }
    let import = home.join("data/import");
    crate::paths::ensure_dir(&import)?;
    for entry in fs::read_dir(dist).with_context(|| format!("listing {}", dist.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "data" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        let link = home.join(&name);
        std::os::unix::fs::symlink(entry.path(), &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    let realm = crate::paths::repo_root().join(REALM_FILE);
    let target = import.join("realm-tokengate.json");
    fs::copy(&realm, &target).with_context(|| {
        format!(
            "copying the realm {} to {}",
            realm.display(),
            target.display()
        )
    })?;
    Ok(())
}

/// One Keycloak for the whole test process, started on first use and reused
/// by every test; or the external one named by `TOKENGATE_KEYCLOAK_URL`.
///
/// Its log and home are in a fresh `target/tokengate-runs/keycloak-*`
/// directory. It is never dropped: it dies with the test process. Do not
/// stop or restart it; tests that need to do so start their own.
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

// ---------------------------------------------------------------- client

/// A token endpoint response.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub token_type: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub refresh_expires_in: Option<u64>,
    #[serde(default)]
    pub id_token: Option<String>,
}

/// Calls the tokengate realm's OAuth endpoints. Each call opens its own
/// connection (see [`crate::http::send`]), so it works from any runtime.
#[derive(Debug, Clone)]
pub struct KeycloakClient {
    issuer: String,
}

impl KeycloakClient {
    /// For the Keycloak at `base_url` (`http://host:port`).
    pub fn new(base_url: &str) -> Self {
        Self {
            issuer: format!("{}/realms/{REALM}", base_url.trim_end_matches('/')),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/protocol/openid-connect/{path}", self.issuer)
    }

    /// Client credentials grant, client authenticated with HTTP Basic.
    pub async fn client_credentials(&self, client_id: &str, secret: &str) -> Result<TokenResponse> {
        self.token(client_id, secret, &[("grant_type", "client_credentials")])
            .await
    }

    /// Resource owner password grant for `username`, through `client_id`.
    pub async fn password_grant(
        &self,
        client_id: &str,
        secret: &str,
        username: &str,
        password: &str,
    ) -> Result<TokenResponse> {
        self.token(
            client_id,
            secret,
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    async fn token(
        &self,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse> {
        let url = self.endpoint("token");
        let response = post_form(&url, client_id, secret, form).await?;
        if response.status != 200 {
            bail!(
                "token request as {client_id} answered {}: {}",
                response.status,
                response.text()
            );
        }
        serde_json::from_slice(&response.body).with_context(|| {
            format!(
                "token response from {url} is not a token: {}",
                response.text()
            )
        })
    }

    /// RFC 7662 introspection of an access token, as `client_id`. Keycloak
    /// answers `{"active": false}` for expired, revoked and foreign tokens,
    /// and for tokens whose `aud` lacks `client_id`. Fails on any status but
    /// 200 (401: bad client credentials).
    pub async fn introspect(
        &self,
        token: &str,
        client_id: &str,
        secret: &str,
    ) -> Result<serde_json::Value> {
        let url = self.endpoint("token/introspect");
        let response = post_form(
            &url,
            client_id,
            secret,
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .await?;
        if response.status != 200 {
            bail!(
                "introspection as {client_id} answered {}: {}",
                response.status,
                response.text()
            );
        }
        response.json()
    }

    /// RFC 7009 revocation of an access token. `client_id` must be the
    /// client the token was issued to (its `azp`).
    pub async fn revoke(&self, token: &str, client_id: &str, secret: &str) -> Result<()> {
        let url = self.endpoint("revoke");
        let response = post_form(
            &url,
            client_id,
            secret,
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .await?;
        if response.status != 200 {
            bail!(
                "revocation as {client_id} answered {}: {}",
                response.status,
                response.text()
            );
        }
        Ok(())
    }

    /// The realm's JWKS (signing keys and the RSA-OAEP encryption key).
    pub async fn jwks(&self) -> Result<serde_json::Value> {
        get_json(&self.endpoint("certs")).await
    }

    /// The realm's OpenID Provider metadata.
    pub async fn discovery(&self) -> Result<serde_json::Value> {
        get_json(&format!("{}/.well-known/openid-configuration", self.issuer)).await
    }
}

async fn get_json(url: &str) -> Result<serde_json::Value> {
    let response = crate::http::get(url, &[]).await?;
    if response.status != 200 {
        bail!(
            "GET {url} answered {}: {}",
            response.status,
            response.text()
        );
    }
    response.json()
}

async fn post_form(
    url: &str,
    client_id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> Result<crate::http::Response> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let authorization = basic_auth(client_id, secret);
    crate::http::send(
        "POST",
        url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
            ("authorization", &authorization),
        ],
        Some(body.into_bytes()),
    )
    .await
}

/// `Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 §2.3.1
/// specifies for client credentials.
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// A JWT's header and payload, decoded without any verification.
#[derive(Debug, Clone)]
pub struct UnverifiedJwt {
    pub header: serde_json::Value,
    pub payload: serde_json::Value,
}

/// Decodes a compact JWS's header and payload. Checks nothing: for tests and
/// for the load driver's bookkeeping (e.g. reading `exp`), never for trust.
pub fn decode_unverified(token: &str) -> Result<UnverifiedJwt> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("not a compact JWS (three dot-separated parts)");
    };
    let decode = |part: &str, what: &str| -> Result<serde_json::Value> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .with_context(|| format!("JWT {what} is not base64url"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("JWT {what} is not JSON"))
    };
    Ok(UnverifiedJwt {
        header: decode(header, "header")?,
        payload: decode(payload, "payload")?,
    })
}

// ---------------------------------------------------------------- helpers

/// An exclusive `flock` on a file, released when dropped. Also excludes other
/// threads of this process (each lock opens its own file description).
struct FileLock {
    _file: File,
}

impl FileLock {
    fn exclusive(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        loop {
            // SAFETY: flock has no memory-safety preconditions; the fd is
            // valid for as long as `file` lives.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(Self { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn port_of(url: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (_, port) = authority.rsplit_once(':')?;
    port.parse().ok()
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_urlencodes_then_base64s() {
        assert_eq!(
            basic_auth("tokengate-gateway", "gateway-secret"),
            format!(
                "Basic {}",
                STANDARD.encode("tokengate-gateway:gateway-secret")
            )
        );
        // ':' and ' ' inside the parts must not confuse the server's split.
        assert_eq!(
            basic_auth("a:b", "c d"),
            format!("Basic {}", STANDARD.encode("a%3Ab:c+d"))
        );
    }

    #[test]
    fn decodes_jwt_parts_and_rejects_junk() -> Result<()> {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"iss":"x","exp":5}"#);
        let jwt = decode_unverified(&format!("{header}.{payload}.sig"))?;
        assert_eq!(jwt.header["kid"], "k1");
        assert_eq!(jwt.payload["exp"], 5);
        assert!(decode_unverified("a.b").is_err());
        assert!(decode_unverified("a.b.c.d.e").is_err());
        assert!(decode_unverified(&format!("{header}.!!!.sig")).is_err());
        Ok(())
    }

    #[test]
    fn reads_java_major_and_url_port() -> Result<()> {
        let dir = crate::paths::run_dir("keycloak-unit");
        fs::write(
            dir.join("release"),
            "IMPLEMENTOR=\"x\"\nJAVA_VERSION=\"25.0.3\"\n",
        )?;
        assert_eq!(java_major(&dir), Some(25));
        fs::write(dir.join("release"), "JAVA_VERSION=\"17\"\n")?;
        assert_eq!(java_major(&dir), Some(17));
        assert_eq!(port_of("http://127.0.0.1:8080"), Some(8080));
        assert_eq!(port_of("http://127.0.0.1:8080/x"), Some(8080));
        assert_eq!(port_of("http://localhost"), None);
        Ok(())
    }
}

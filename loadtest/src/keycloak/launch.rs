//! How to run one Keycloak process (its home, ports and log): starting it, waiting until it is
//! ready, checking a realm. [`super::server`] keeps the server's lifecycle; the database
//! preparation uses the same launch.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::distribution::{BUILD_OPTIONS, cache_dir, java_env};
use super::readiness::{GroupCpu, LogFollower, Observed, Verdict, Watch};
use super::realm::{ADMIN_PASSWORD, ADMIN_USERNAME};
use super::server::READY_POLL;
use super::{LOG_TAIL_LINES, STOP_GRACE};
use crate::process::{ManagedProcess, ProcessSpec, describe_status};

/// How to run one Keycloak process: its home, ports and log.
#[derive(Debug, Clone)]
pub(super) struct Launch {
    dist: PathBuf,
    java_home: PathBuf,
    home: PathBuf,
    log_dir: PathBuf,
    name: String,
    pub(super) http_port: u16,
    management_port: u16,
}

impl Launch {
    pub(super) fn on_free_ports(
        dist: &Path,
        java_home: &Path,
        home: &Path,
        log_dir: &Path,
        name: &str,
    ) -> Result<Self> {
        let http_port = crate::ports::free_port().context("choosing Keycloak's HTTP port")?;
        let management_port =
            crate::ports::free_port().context("choosing Keycloak's management port")?;
        Ok(Self {
            dist: dist.to_path_buf(),
            java_home: java_home.to_path_buf(),
            home: home.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            name: name.to_string(),
            http_port,
            management_port,
        })
    }

    pub(super) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub(super) fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management_port)
    }

    pub(super) fn log_path(&self) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.name))
    }

    /// Starts `kc.sh start --optimized`; with `import_realm`, imports `data/import/`. The
    /// follower reads the log from where this run's output begins.
    pub(super) fn spawn(&self, import_realm: bool) -> Result<(ManagedProcess, LogFollower)> {
        let mut spec = ProcessSpec::new(&self.name, self.dist.join("bin/kc.sh"), &self.log_dir)
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
            spec = spec.arg("--import-realm");
        }
        let spec = java_env(spec, &self.java_home, &cache_dir());
        let follower = LogFollower::from_end(&spec.log_path());
        let process = ManagedProcess::spawn(spec).context("starting Keycloak")?;
        Ok((process, follower))
    }

    /// Waits until `/health/ready` answers 200, for as long as Keycloak makes progress
    /// (see `readiness`), saying on stderr what it is doing. On failure the process is
    /// stopped and the error carries the log's tail.
    pub(super) fn wait_ready(
        &self,
        process: &ManagedProcess,
        mut follower: LogFollower,
        what: &str,
    ) -> Result<()> {
        let ready_url = format!("{}/health/ready", self.management_url());
        let cpu = GroupCpu::new(process.pid());
        let mut watch = Watch::new(Instant::now());
        let label = format!("keycloak :{} {what}", self.http_port);
        loop {
            if let Some(status) = process.try_exit_status() {
                bail!(
                    "Keycloak exited ({}) before becoming ready while {}; log {}:\n{}",
                    describe_status(status),
                    watch.phase(),
                    process.log_path().display(),
                    process.log_tail(LOG_TAIL_LINES)
                );
            }
            // Connection refused until the management interface is up; 503
            // while the schema is created and realms are imported.
            if let Ok(response) = crate::http::get_blocking(&ready_url, Duration::from_secs(2))
                && response.status == 200
            {
                return Ok(());
            }
            let (log_len, lines) = follower.poll();
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let seen = Observed {
                log_len,
                new_lines: &lines,
                cpu: cpu.total(),
            };
            let (verdict, report) = watch.observe(Instant::now(), seen);
            if let Some(report) = report {
                eprintln!("{label}: {report}");
            }
            let why = match verdict {
                Verdict::Waiting => {
                    std::thread::sleep(READY_POLL);
                    continue;
                }
                Verdict::Stalled { phase, idle } => format!(
                    "stalled while {phase}: no new log line and under {:?} of CPU per {:?} \
                     for {idle:.0?}",
                    super::readiness::CPU_BUSY,
                    super::readiness::CPU_WINDOW,
                ),
                Verdict::TooLong { phase } => format!(
                    "still {phase} after {:.0?}, the overall bound",
                    super::readiness::OVERALL_LIMIT
                ),
            };
            let _ = process.stop(STOP_GRACE);
            bail!(
                "Keycloak not ready at {ready_url}: {why}; log {}:\n{}",
                process.log_path().display(),
                process.log_tail(LOG_TAIL_LINES)
            );
        }
    }

    /// Whether `realm`'s discovery document answers.
    pub(super) fn check_realm(&self, realm: &str) -> Result<()> {
        let url = format!(
            "{}/realms/{realm}/.well-known/openid-configuration",
            self.base_url()
        );
        let response = crate::http::get_blocking(&url, Duration::from_secs(10))?;
        if response.status != 200 {
            bail!("{url} answered {}", response.status);
        }
        Ok(())
    }
}

/// A fresh Keycloak home: symlinks onto everything in the distribution but
/// `data/`, which is the instance's own (database, transaction log, import).
pub(super) fn make_home(dist: &Path, home: &Path) -> Result<()> {
    if home.exists() {
        fs::remove_dir_all(home).with_context(|| format!("removing old {}", home.display()))?;
    }
    crate::paths::ensure_dir(&home.join("data"))?;
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
    Ok(())
}

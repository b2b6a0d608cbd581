//! Running a real Envoy against a rendered config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::process::{ManagedProcess, ProcessSpec, describe_status};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_POLL: Duration = Duration::from_millis(50);
const STOP_GRACE: Duration = Duration::from_secs(5);
const LOG_TAIL_LINES: usize = 60;

#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    pub binary: PathBuf,
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
    /// `-l`, e.g. "info" or "debug".
    pub log_level: String,
    /// `--component-log-level`, e.g. "wasm:debug".
    pub component_log_level: Option<String>,
}

impl EnvoyOptions {
    /// The binary from [`crate::paths::envoy_binary`], one worker, info logs.
    pub fn from_paths() -> Result<Self> {
        Ok(Self::with_binary(crate::paths::envoy_binary()?))
    }

    pub fn with_binary(binary: PathBuf) -> Self {
        Self {
            binary,
            concurrency: 1,
            log_level: "info".to_string(),
            component_log_level: None,
        }
    }

    fn spec(&self, config_path: &Path, dir: &Path) -> ProcessSpec {
        let mut spec = ProcessSpec::new("envoy", &self.binary, dir)
            .arg("-c")
            .arg(config_path)
            // Lets several Envoys run at once without shared-memory clashes.
            .arg("--disable-hot-restart")
            .arg("--concurrency")
            .arg(self.concurrency.to_string())
            .arg("-l")
            .arg(&self.log_level)
            // Access logs and Envoy's own log reach the file within a fifth of a second, not
            // the default ten, so a test can read what a request just logged.
            .arg("--file-flush-interval-msec")
            .arg("200");
        if let Some(levels) = &self.component_log_level {
            spec = spec.arg("--component-log-level").arg(levels);
        }
        spec
    }
}

/// A running, ready Envoy. Stopped when dropped.
#[derive(Debug)]
pub struct Envoy {
    process: ManagedProcess,
    admin_port: u16,
    listen_port: u16,
}

impl Envoy {
    /// Starts Envoy on `config_path` (whose admin listener must be on
    /// 127.0.0.1:`admin_port`) and waits until `/ready` answers 200.
    ///
    /// Blocking, so it works from sync code and from async tests alike.
    pub fn start(
        config_path: &Path,
        admin_port: u16,
        listen_port: u16,
        opts: &EnvoyOptions,
        dir: &Path,
    ) -> Result<Envoy> {
        let process = ManagedProcess::spawn(opts.spec(config_path, dir))
            .with_context(|| format!("starting Envoy with {}", config_path.display()))?;
        let ready_url = format!("http://127.0.0.1:{admin_port}/ready");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = process.try_exit_status() {
                bail!(
                    "Envoy exited ({}) before becoming ready, config {}; log {}:\n{}",
                    describe_status(status),
                    config_path.display(),
                    process.log_path().display(),
                    process.log_tail(LOG_TAIL_LINES)
                );
            }
            // Connection refused until the admin listener is up; 503 while
            // initialising.
            if let Ok(response) = crate::http::get_blocking(&ready_url, Duration::from_secs(2))
                && response.status == 200
            {
                return Ok(Envoy {
                    process,
                    admin_port,
                    listen_port,
                });
            }
            if Instant::now() >= deadline {
                let _ = process.stop(STOP_GRACE);
                bail!(
                    "Envoy not ready at {ready_url} within {READY_TIMEOUT:?}, config {}; log {}:\n{}",
                    config_path.display(),
                    process.log_path().display(),
                    process.log_tail(LOG_TAIL_LINES)
                );
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// `envoy --mode validate -c FILE`: a static check that builds the
    /// configuration without serving. Errors carry Envoy's output.
    pub fn validate(binary: &Path, config_path: &Path) -> Result<()> {
        let output = Command::new(binary)
            .arg("--mode")
            .arg("validate")
            .arg("-c")
            .arg(config_path)
            .arg("--disable-hot-restart")
            .output()
            .with_context(|| format!("running {} --mode validate", binary.display()))?;
        if output.status.success() {
            return Ok(());
        }
        Err(anyhow!(
            "Envoy rejected {} ({}):\n{}{}",
            config_path.display(),
            describe_status(output.status),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    /// Starts Envoy expecting it to refuse the config: it must exit non-zero
    /// within `timeout`. Returns its log. Fails if it exits 0 or is still
    /// running at the deadline (it is then stopped).
    pub fn start_expecting_refusal(
        config_path: &Path,
        opts: &EnvoyOptions,
        dir: &Path,
        timeout: Duration,
    ) -> Result<String> {
        let process = ManagedProcess::spawn(opts.spec(config_path, dir))
            .with_context(|| format!("starting Envoy with {}", config_path.display()))?;
        match process.wait_exit(timeout) {
            Some(status) if !status.success() => Ok(process.log_contents()),
            Some(status) => bail!(
                "Envoy exited with success ({}) on {}, expected a refusal; log:\n{}",
                describe_status(status),
                config_path.display(),
                process.log_tail(LOG_TAIL_LINES)
            ),
            None => {
                let _ = process.stop(STOP_GRACE);
                bail!(
                    "Envoy accepted {} and kept running for {timeout:?}, expected a refusal; log:\n{}",
                    config_path.display(),
                    process.log_tail(LOG_TAIL_LINES)
                )
            }
        }
    }

    /// `http://127.0.0.1:LISTEN_PORT{path}`
    pub fn listen_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listen_port)
    }

    /// `http://127.0.0.1:ADMIN_PORT{path}`
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    pub fn process(&self) -> &ManagedProcess {
        &self.process
    }

    /// Every counter and gauge from the admin `/stats` page.
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>> {
        let response = crate::http::get(&self.admin_url("/stats"), &[]).await?;
        if response.status != 200 {
            bail!(
                "Envoy admin /stats answered {}: {}",
                response.status,
                response.text()
            );
        }
        Ok(parse_stats(&response.text()))
    }

    /// One counter or gauge; 0 if Envoy has not created it (yet).
    pub async fn stat(&self, name: &str) -> Result<u64> {
        Ok(self.stats().await?.get(name).copied().unwrap_or(0))
    }

    /// Polls until stat `name` is at least `min`; returns its value.
    pub async fn wait_for_stat(&self, name: &str, min: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.stat(name).await?;
            if value >= min {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                bail!("stat {name} is {value}, still below {min} after {timeout:?}");
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    pub fn log_contents(&self) -> String {
        self.process.log_contents()
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&self) -> Result<ExitStatus> {
        self.process.stop(STOP_GRACE)
    }
}

/// Parses the admin `/stats` text format, `name: value` per line. Lines whose
/// value is not an integer (histogram summaries, text readouts) are skipped.
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            // Stat names may contain ':' (e.g. in cluster names), values never
            // do, so split at the last separator.
            let (name, value) = line.rsplit_once(": ")?;
            let value = value.trim().parse::<u64>().ok()?;
            Some((name.trim().to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_stats;

    #[test]
    fn parses_counters_and_skips_histograms() {
        let stats = parse_stats(
            "cluster.backend.upstream_rq_200: 3\n\
             server.live: 1\n\
             cluster.a:b.rq: 7\n\
             http.ingress.downstream_rq_time: P0(nan,1) P25(nan,1.025)\n\
             http.ingress.downstream_rq_time: No recorded values\n\
             server.version_text: \"1.40.0\"\n",
        );
        assert_eq!(stats.get("cluster.backend.upstream_rq_200"), Some(&3));
        assert_eq!(stats.get("server.live"), Some(&1));
        assert_eq!(stats.get("cluster.a:b.rq"), Some(&7));
        assert_eq!(stats.len(), 3);
    }
}

//! `docker-compose up` of the stack's `loadtest` service: compose brings up what it depends on
//! (Keycloak, the backend, the rendered gateway config, Envoy), runs the matrix, and stops
//! `loadtest` alone when it exits, so Envoy and Keycloak can still be asked afterwards, and the
//! next run (another GATEWAY: a new Envoy and config) finds Keycloak already up.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// Longest a whole `up` may take: a Keycloak start on an empty database (minutes on a busy
/// machine), the kit build when it is not cached, the matrix.
const RUN_TIMEOUT: Duration = Duration::from_secs(1200);
const POLL: Duration = Duration::from_millis(500);

/// The docker CLI `scripts/test-docker` names (the one matching its daemon), else `docker`.
pub fn docker() -> Command {
    Command::new(std::env::var("DOCKER").unwrap_or_else(|_| "docker".to_owned()))
}

fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The daemon these tests may use: the one `DOCKER_HOST` names, which scripts/test-docker
/// started. Any other daemon (the default socket) is not ours to use.
pub fn daemon() -> Result<String> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    ensure!(
        host.starts_with("unix://"),
        "DOCKER_HOST is not set to a daemon of this test run (got {host:?}): run \
         scripts/test-docker, which starts one; without Docker this tier fails, it never skips"
    );
    let version = output(docker().args(["version", "--format", "{{.Server.Version}}"]))
        .with_context(|| format!("no Docker daemon answers at {host}"))?;
    Ok(version.trim().to_owned())
}

pub struct Stack {
    file: PathBuf,
    project: String,
}

/// What one `up` showed.
#[derive(Debug)]
pub struct StackRun {
    /// `up --exit-code-from loadtest`'s exit code: the loadtest container's.
    pub exit_code: i32,
    pub elapsed: Duration,
    pub log: PathBuf,
    /// The run's copy of `out/report.json` (absent when the run wrote none).
    pub report: PathBuf,
    /// Keycloak's health status after the run (`healthy`, `unhealthy`, ...).
    pub keycloak_health: String,
    /// Keycloak's health log holds a check that passed.
    pub keycloak_health_passed: bool,
    /// `/stats?filter=tokengate` read from inside the Envoy container after the run: counters
    /// and gauges by name (empty when Envoy is not running).
    pub envoy_stats: BTreeMap<String, u64>,
    pub envoy_log: String,
}

impl Stack {
    pub fn new(file: PathBuf) -> Result<Stack> {
        daemon()?;
        let project =
            std::env::var("TOKENGATE_COMPOSE_PROJECT").unwrap_or_else(|_| "tokengate".to_owned());
        Ok(Stack { file, project })
    }

    fn compose(&self) -> Command {
        let mut command = Command::new("docker-compose");
        command
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(&self.file)
            // The Dockerfile uses cache mounts: BuildKit, through the docker CLI.
            .env("COMPOSE_DOCKER_CLI_BUILD", "1")
            .env("DOCKER_BUILDKIT", "1");
        command
    }

    pub fn down(&self) -> Result<()> {
        output(
            self.compose()
                .args(["down", "-v", "--remove-orphans"])
                .stdin(Stdio::null()),
        )
        .map(drop)
    }

    /// The container of `service` in this project, running or not.
    fn container(&self, service: &str) -> Option<String> {
        output(docker().args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ]))
        .ok()
        .and_then(|ids| ids.lines().next().map(str::to_owned))
    }

    fn health(&self, container: &str) -> Option<Value> {
        let json =
            output(docker().args(["inspect", "--format", "{{json .State.Health}}", container]))
                .ok()?;
        serde_json::from_str(json.trim()).ok()
    }

    /// Envoy's admin `/stats`, asked from inside its container (its port 9901 is the stack's).
    fn envoy_stats(&self, container: &str) -> Option<BTreeMap<String, u64>> {
        let text = output(docker().args([
            "exec",
            container,
            "bash",
            "-c",
            "exec 3<>/dev/tcp/127.0.0.1/9901 && \
             printf 'GET /stats?filter=tokengate HTTP/1.1\\r\\nHost: localhost\\r\\n\
             Connection: close\\r\\n\\r\\n' >&3 && cat <&3",
        ]))
        .ok()?;
        let stats: BTreeMap<String, u64> = text
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect();
        (!stats.is_empty()).then_some(stats)
    }

    /// `GATEWAY=<gateway> docker-compose up --build --exit-code-from loadtest loadtest` with
    /// `env`; what the stack shows afterwards.
    pub fn up(&self, gateway: &str, label: &str, env: &[(&str, &str)]) -> Result<StackRun> {
        let dir = loadtest::paths::run_dir(&format!("docker-{label}"));
        let log = dir.join("compose.log");
        let report = loadtest::paths::repo_root().join("out/report.json");
        let _ = std::fs::remove_file(&report);

        let log_file = File::create(&log)?;
        let mut command = self.compose();
        command
            .args(["up", "--build", "--exit-code-from", "loadtest", "loadtest"])
            .env("GATEWAY", gateway)
            // The report in ./out belongs to whoever runs the test.
            .env(
                "TOKENGATE_USER",
                // SAFETY: getuid and getgid cannot fail and touch no memory.
                format!("{}:{}", unsafe { libc::getuid() }, unsafe {
                    libc::getgid()
                }),
            )
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        for (name, value) in env {
            command.env(name, value);
        }
        let start = Instant::now();
        let mut child = command.spawn().context("starting docker-compose up")?;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if start.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "docker-compose up did not finish within {RUN_TIMEOUT:?} (log {})",
                    log.display()
                );
            }
            std::thread::sleep(POLL);
        };

        let mut run = StackRun {
            exit_code: status.code().unwrap_or(-1),
            elapsed: start.elapsed(),
            log,
            report: dir.join("report.json"),
            keycloak_health: String::new(),
            keycloak_health_passed: false,
            envoy_stats: BTreeMap::new(),
            envoy_log: String::new(),
        };
        if let Some(health) = self.container("keycloak").and_then(|id| self.health(&id)) {
            run.keycloak_health = health["Status"].as_str().unwrap_or_default().to_owned();
            run.keycloak_health_passed = health["Log"]
                .as_array()
                .is_some_and(|log| log.iter().any(|check| check["ExitCode"] == 0));
        }
        if let Some(envoy) = self.container("envoy") {
            run.envoy_stats = self.envoy_stats(&envoy).unwrap_or_default();
            let out = docker().args(["logs", &envoy]).output()?;
            run.envoy_log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if report.is_file() {
            std::fs::copy(&report, &run.report)?;
        }
        Ok(run)
    }
}

/// `down -v` when dropped: a failed assertion or a panic still leaves nothing running.
pub struct Down<'a>(pub &'a Stack);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.0.down() {
            eprintln!("docker-compose down -v failed: {err:#}");
        }
    }
}

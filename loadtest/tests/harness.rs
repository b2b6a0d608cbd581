//! Proves the stack-running pieces work against real processes and a real
//! Envoy. Envoy tests fail (not skip) when Envoy is missing.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use loadtest::envoy::{Envoy, EnvoyOptions};
use loadtest::jwks_server::JwksServer;
use loadtest::process::{ManagedProcess, ProcessSpec};
use loadtest::{backend, http, paths, ports};

const PDEATHSIG_HELPER_ENV: &str = "TOKENGATE_TEST_PDEATHSIG_DIR";

// ---------------------------------------------------------------- ports

#[test]
fn free_ports_are_distinct_and_bindable() -> Result<()> {
    let ports: Vec<u16> = (0..300)
        .map(|_| ports::free_port())
        .collect::<Result<_, _>>()?;
    let unique: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
    for port in ports.iter().take(20) {
        TcpListener::bind((Ipv4Addr::LOCALHOST, *port))
            .with_context(|| format!("binding handed-out port {port}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- paths

#[test]
fn run_dirs_are_fresh_and_binaries_are_found() -> Result<()> {
    let a = paths::run_dir("harness");
    let b = paths::run_dir("harness");
    assert_ne!(a, b);
    assert!(a.is_dir() && b.is_dir());
    assert!(
        a.starts_with(paths::repo_root().join("target").join("tokengate-runs")) || {
            // CARGO_TARGET_DIR moves the runs directory along with the target.
            std::env::var_os("CARGO_TARGET_DIR").is_some()
        }
    );
    let backend = paths::sibling_binary("backend")?;
    assert!(backend.is_file());
    assert!(paths::sibling_binary("no-such-binary-here").is_err());
    Ok(())
}

// ---------------------------------------------------------------- process

#[test]
fn managed_process_captures_output_env_and_cwd() -> Result<()> {
    let dir = paths::run_dir("process-output");
    let process = ManagedProcess::spawn(
        ProcessSpec::new("shell", "/bin/sh", &dir)
            .arg("-c")
            .arg("echo \"to stdout $GREETING\"; echo 'to stderr' >&2; pwd; exit 3")
            .env("GREETING", "hello")
            .cwd("/tmp"),
    )?;
    let status = process
        .wait_exit(Duration::from_secs(10))
        .context("shell did not exit")?;
    assert_eq!(status.code(), Some(3));
    assert!(!process.is_running());
    let log = process.log_contents();
    assert!(log.contains("to stdout hello"), "log: {log}");
    assert!(log.contains("to stderr"), "log: {log}");
    assert!(log.contains("/tmp"), "log: {log}");
    assert_eq!(process.log_path(), dir.join("shell.log"));
    assert_eq!(process.log_tail(1), "/tmp");
    // Stopping an exited process just reports its status.
    assert_eq!(process.stop(Duration::from_millis(100))?.code(), Some(3));
    Ok(())
}

#[test]
fn spawn_failure_names_the_program() {
    let dir = paths::run_dir("process-missing");
    let err = ManagedProcess::spawn(ProcessSpec::new("ghost", "/no/such/program", &dir))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("/no/such/program"), "error: {err}");
}

#[test]
fn stop_kills_the_whole_process_group() -> Result<()> {
    let dir = paths::run_dir("process-group");
    let process = ManagedProcess::spawn(
        ProcessSpec::new("sleepers", "/bin/sh", &dir)
            .arg("-c")
            .arg("sleep 100 & sleep 100; echo unreachable"),
    )?;
    let pgid = process.pid();
    wait_until(Duration::from_secs(10), || {
        Ok(live_group_members(pgid)?.len() >= 3)
    })
    .context("shell and both sleeps did not appear")?;
    assert!(process.is_running());

    let started = Instant::now();
    process.stop(Duration::from_secs(5))?;
    assert!(!process.is_running());
    // sh dies on SIGTERM at once; no need to wait out the grace period.
    assert!(started.elapsed() < Duration::from_secs(4));
    let survivors = group_members_after_kill(pgid)?;
    assert!(
        survivors.is_empty(),
        "survivors in group {pgid}: {survivors:?}"
    );
    Ok(())
}

#[test]
fn stop_escalates_to_sigkill_after_grace() -> Result<()> {
    let dir = paths::run_dir("process-stubborn");
    let process = ManagedProcess::spawn(
        ProcessSpec::new("stubborn", "/bin/sh", &dir)
            .arg("-c")
            .arg("trap '' TERM; echo armed; while true; do sleep 0.05; done"),
    )?;
    process.wait_for_log("armed", Duration::from_secs(10))?;
    let started = Instant::now();
    let status = process.stop(Duration::from_millis(300))?;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "status: {status:?}"
    );
    assert!(group_members_after_kill(process.pid())?.is_empty());
    Ok(())
}

#[test]
fn shared_child_outlives_the_thread_that_spawned_it() -> Result<()> {
    let dir = paths::run_dir("process-shared");
    let spawner_dir = dir.clone();
    let process = std::thread::spawn(move || {
        ManagedProcess::spawn(ProcessSpec::new("shared", "/bin/sleep", spawner_dir).arg("100"))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("spawning thread panicked"))??;
    // Had the short-lived thread forked it, PR_SET_PDEATHSIG would have
    // killed it when that thread ended.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        process.is_running(),
        "shared child died with its spawning thread"
    );
    assert!(is_alive(process.pid())?);
    process.stop(Duration::from_secs(2))?;
    assert!(!is_alive(process.pid())?);
    Ok(())
}

/// Runs `pdeathsig_helper` in a child copy of this test binary; that copy
/// spawns a long sleep and exits abruptly. The kernel must then kill the
/// sleep.
#[test]
fn children_die_when_the_test_process_dies() -> Result<()> {
    let dir = paths::run_dir("process-pdeathsig");
    let output = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "pdeathsig_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PDEATHSIG_HELPER_ENV, &dir)
        .output()
        .context("running the helper process")?;
    let pid_file = dir.join("sleep.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .with_context(|| {
            format!(
                "helper wrote no pid file; its output:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })?
        .trim()
        .parse()?;
    wait_until(Duration::from_secs(10), || Ok(!is_alive(pid)?))
        .with_context(|| format!("sleep {pid} survived its parent process"))
}

/// Does nothing in a normal run; see `children_die_when_the_test_process_dies`.
#[test]
fn pdeathsig_helper() -> Result<()> {
    let Some(dir) = std::env::var_os(PDEATHSIG_HELPER_ENV) else {
        return Ok(());
    };
    let dir = PathBuf::from(dir);
    let process = ManagedProcess::spawn(ProcessSpec::new("sleep", "/bin/sleep", &dir).arg("100"))?;
    std::fs::write(dir.join("sleep.pid"), process.pid().to_string())?;
    // Exit without running destructors, so only the kernel's death signal
    // can stop the sleep.
    std::process::exit(0)
}

// ---------------------------------------------------------------- backend

#[tokio::test]
async fn backend_binary_echoes_identity_headers() -> Result<()> {
    let dir = paths::run_dir("backend-binary");
    let (process, addr) = backend::spawn(&dir, "backend", 2)?;
    let response = http::send(
        "POST",
        &format!("http://{addr}/api/orders?id=7"),
        &[
            ("Authorization", "Bearer first"),
            ("Authorization", "Bearer second"),
            ("X-JWT-Sub", "alice"),
            ("x-tokengate-status", "ok"),
            ("x-other", "not echoed"),
            ("content-type", "application/json"),
        ],
        Some(br#"{"item":"book"}"#.to_vec()),
    )
    .await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let body = response.json()?;
    assert_eq!(body["ok"], true);
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/api/orders?id=7");
    let identity = body["identity"]
        .as_object()
        .context("identity is not an object")?;
    assert_eq!(
        identity.get("authorization"),
        Some(&serde_json::json!(["Bearer first", "Bearer second"]))
    );
    assert_eq!(identity.get("x-jwt-sub"), Some(&serde_json::json!("alice")));
    assert_eq!(
        identity.get("x-tokengate-status"),
        Some(&serde_json::json!("ok"))
    );
    assert_eq!(identity.len(), 3, "identity: {identity:?}");

    // SIGTERM is a clean shutdown.
    let status = process.stop(Duration::from_secs(5))?;
    assert_eq!(status.code(), Some(0), "log: {}", process.log_contents());
    Ok(())
}

#[tokio::test]
async fn backend_serve_answers_every_method_and_path() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(backend::serve(listener));
    for (method, path) in [
        ("GET", "/"),
        ("PUT", "/a/b/c"),
        ("DELETE", "/users/1"),
        ("PATCH", "/x"),
        ("OPTIONS", "/anything"),
    ] {
        let response = http::send(method, &format!("http://{addr}{path}"), &[], None).await?;
        assert_eq!(response.status, 200, "{method} {path}");
        let body = response.json()?;
        assert_eq!(body["method"], method);
        assert_eq!(body["path"], path);
        assert_eq!(body["identity"], serde_json::json!({}));
    }
    // HEAD gets the headers and no body.
    let head = http::send("HEAD", &format!("http://{addr}/"), &[], None).await?;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    server.abort();
    Ok(())
}

// ---------------------------------------------------------------- JWKS server

#[tokio::test]
async fn jwks_server_serves_counts_stops_and_restarts() -> Result<()> {
    let mut jwks = JwksServer::reserve()?;
    let port = jwks.port();
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "reserved port accepts connections before start"
    );

    jwks.start()?;
    jwks.start()?; // idempotent
    let keys = r#"{"keys":[]}"#;
    jwks.set_response("/jwks", 200, keys.to_string());
    let response = http::get(&jwks.url("/jwks?x=1"), &[]).await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), keys);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(http::get(&jwks.url("/other"), &[]).await?.status, 404);
    jwks.set_response("/jwks", 503, "{}".to_string());
    assert_eq!(http::get(&jwks.url("/jwks"), &[]).await?.status, 503);
    assert_eq!(jwks.request_count("/jwks"), 2);
    assert_eq!(jwks.request_count("/other"), 1);
    assert_eq!(jwks.request_count("/never"), 0);

    // An idle keep-alive connection is closed by stop, not just the listener.
    let mut idle = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    idle.set_read_timeout(Some(Duration::from_secs(5)))?;
    idle.write_all(b"GET /jwks HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf)?;
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503"));

    jwks.stop();
    assert!(!jwks.is_running());
    let closed = match idle.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "open connection survived stop");
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "port still accepts connections after stop"
    );
    assert!(http::get(&jwks.url("/jwks"), &[]).await.is_err());

    jwks.start()?;
    jwks.set_response("/jwks", 200, keys.to_string());
    assert_eq!(http::get(&jwks.url("/jwks"), &[]).await?.status, 200);
    assert_eq!(jwks.request_count("/jwks"), 4);

    jwks.set_delay(Duration::from_millis(400));
    let started = Instant::now();
    assert_eq!(http::get(&jwks.url("/jwks"), &[]).await?.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    Ok(())
}

#[test]
fn jwks_server_works_from_sync_code() -> Result<()> {
    let mut jwks = JwksServer::reserve()?;
    jwks.start()?;
    jwks.set_response("/certs", 200, r#"{"keys":[1]}"#.to_string());
    let response = http::get_blocking(&jwks.url("/certs"), Duration::from_secs(5))?;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()?["keys"][0], 1);
    assert_eq!(jwks.request_count("/certs"), 1);
    drop(jwks);
    Ok(())
}

// ---------------------------------------------------------------- Envoy

/// A plain proxy: listener -> router -> the backend, admin on `admin_port`.
/// `cluster_extra` is spliced into the cluster (indented for it).
fn plain_envoy_config(
    admin_port: u16,
    listen_port: u16,
    backend_port: u16,
    cluster_extra: &str,
) -> String {
    format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}
static_resources:
  listeners:
  - name: ingress
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listen_port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: backend }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {backend_port} }}
{cluster_extra}"#
    )
}

/// TLS to the backend with a CA file that does not exist. The config is
/// well-formed; only building the cluster at startup finds the problem.
const MISSING_CA_TLS: &str = r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context:
            trusted_ca: { filename: /nonexistent/tokengate-test-ca.pem }
"#;

fn write_config(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[tokio::test]
async fn envoy_proxies_to_backend_and_reports_stats() -> Result<()> {
    let opts = EnvoyOptions::from_paths()?;
    let dir = paths::run_dir("envoy-plain");
    let (_backend, backend_addr) = backend::spawn(&dir, "backend", 1)?;
    let (admin, listen) = (ports::free_port()?, ports::free_port()?);
    let config = write_config(
        &dir,
        "envoy.yaml",
        &plain_envoy_config(admin, listen, backend_addr.port(), ""),
    )?;
    Envoy::validate(&opts.binary, &config)?;
    let envoy = Envoy::start(&config, admin, listen, &opts, &dir)?;
    assert_eq!(envoy.admin_port(), admin);
    assert!(envoy.process().is_running());

    let response = http::get(
        &envoy.listen_url("/through/envoy"),
        &[("x-jwt-sub", "bob"), ("authorization", "Bearer t")],
    )
    .await?;
    assert_eq!(response.status, 200, "body: {}", response.text());
    assert!(response.header("x-envoy-upstream-service-time").is_some());
    let body = response.json()?;
    assert_eq!(body["path"], "/through/envoy");
    assert_eq!(body["identity"]["x-jwt-sub"], "bob");
    assert_eq!(body["identity"]["authorization"], "Bearer t");

    let stats: BTreeMap<String, u64> = envoy.stats().await?;
    assert!(stats.len() > 100, "only {} stats parsed", stats.len());
    assert_eq!(stats.get("server.state"), Some(&0), "0 means LIVE");
    assert_eq!(envoy.stat("cluster.backend.upstream_rq_200").await?, 1);
    assert_eq!(envoy.stat("no.such.stat").await?, 0);
    envoy
        .wait_for_stat("http.ingress.downstream_rq_2xx", 1, Duration::from_secs(5))
        .await?;

    let status = envoy.stop()?;
    assert!(status.success(), "Envoy exit: {status:?}");
    assert!(envoy.log_contents().contains("starting main dispatch loop"));
    Ok(())
}

#[test]
fn several_envoys_run_at_once() -> Result<()> {
    let opts = EnvoyOptions::from_paths()?;
    let dir = paths::run_dir("envoy-several");
    let mut envoys = Vec::new();
    for i in 0..2 {
        let sub = dir.join(format!("envoy-{i}"));
        std::fs::create_dir_all(&sub)?;
        let (admin, listen, upstream) = (
            ports::free_port()?,
            ports::free_port()?,
            ports::free_port()?,
        );
        let config = write_config(
            &sub,
            "envoy.yaml",
            &plain_envoy_config(admin, listen, upstream, ""),
        )?;
        envoys.push(Envoy::start(&config, admin, listen, &opts, &sub)?);
    }
    for envoy in &envoys {
        let ready = http::get_blocking(&envoy.admin_url("/ready"), Duration::from_secs(5))?;
        assert_eq!(ready.status, 200);
        // Nothing listens upstream: Envoy itself answers 503.
        let proxied = http::get_blocking(&envoy.listen_url("/"), Duration::from_secs(5))?;
        assert_eq!(proxied.status, 503);
    }
    Ok(())
}

#[test]
fn envoy_validate_reports_bad_configs() -> Result<()> {
    let opts = EnvoyOptions::from_paths()?;
    let dir = paths::run_dir("envoy-validate");
    let bad = write_config(
        &dir,
        "bad.yaml",
        &plain_envoy_config(1, 2, 3, "    no_such_field_here: true\n"),
    )?;
    let err = match Envoy::validate(&opts.binary, &bad) {
        Ok(()) => bail!("validate accepted a config with an unknown field"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("no_such_field_here"), "error: {err}");
    Ok(())
}

#[test]
fn envoy_refusing_to_start_is_detected() -> Result<()> {
    let opts = EnvoyOptions::from_paths()?;
    let dir = paths::run_dir("envoy-refusal");
    let (admin, listen) = (ports::free_port()?, ports::free_port()?);
    let config = write_config(
        &dir,
        "envoy.yaml",
        &plain_envoy_config(admin, listen, 9, MISSING_CA_TLS),
    )?;
    let log = Envoy::start_expecting_refusal(&config, &opts, &dir, Duration::from_secs(30))?;
    assert!(log.contains("tokengate-test-ca.pem"), "log: {log}");

    // start reports the same failure as an error carrying the log tail.
    let sub = dir.join("start");
    let err = match Envoy::start(&config, admin, listen, &opts, &sub) {
        Ok(_) => bail!("Envoy started with a missing CA file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("exited"), "error: {err}");
    assert!(err.contains("tokengate-test-ca.pem"), "error: {err}");
    Ok(())
}

/// A config `--mode validate` accepts but the real server cannot run:
/// validation never binds sockets, so a taken listener port only shows up at
/// startup.
#[test]
fn envoy_refusal_that_only_startup_catches() -> Result<()> {
    let opts = EnvoyOptions::from_paths()?;
    let dir = paths::run_dir("envoy-port-taken");
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let listen = taken.local_addr()?.port();
    let admin = ports::free_port()?;
    let config = write_config(
        &dir,
        "envoy.yaml",
        &plain_envoy_config(admin, listen, 9, ""),
    )?;
    Envoy::validate(&opts.binary, &config)?;
    let log = Envoy::start_expecting_refusal(&config, &opts, &dir, Duration::from_secs(30))?;
    assert!(log.contains("Address already in use"), "log: {log}");
    drop(taken);
    Ok(())
}

#[test]
fn start_expecting_refusal_fails_when_envoy_accepts_the_config() -> Result<()> {
    let opts = EnvoyOptions::from_paths()?;
    let dir = paths::run_dir("envoy-accepts");
    let (admin, listen) = (ports::free_port()?, ports::free_port()?);
    let config = write_config(
        &dir,
        "envoy.yaml",
        &plain_envoy_config(admin, listen, 9, ""),
    )?;
    let result = Envoy::start_expecting_refusal(&config, &opts, &dir, Duration::from_secs(3));
    let err = match result {
        Ok(_) => bail!("a good config counted as refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("kept running"), "error: {err}");
    Ok(())
}

// ---------------------------------------------------------------- helpers

fn wait_until(timeout: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done()? {
        if Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `(pid, state, pgrp)` from /proc/PID/stat, None if the process is gone.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume
    // after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Alive means present and not a zombie (an orphaned zombie may linger if
/// nothing reaps it).
fn is_alive(pid: u32) -> Result<bool> {
    Ok(matches!(proc_stat(pid), Some((state, _)) if state != 'Z' && state != 'X'))
}

/// The group's live members once a kill has had time to land: SIGKILL is delivered
/// asynchronously, so a member can still be running for a moment after `stop` returned.
fn group_members_after_kill(pgid: u32) -> Result<Vec<u32>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let members = live_group_members(pgid)?;
        if members.is_empty() || Instant::now() >= deadline {
            return Ok(members);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn live_group_members(pgid: u32) -> Result<Vec<u32>> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((state, pgrp)) = proc_stat(pid)
            && pgrp == pgid
            && state != 'Z'
            && state != 'X'
        {
            members.push(pid);
        }
    }
    ensure!(members.len() < 1000, "implausible group size");
    Ok(members)
}

//! Real Envoy through the harness: proxying, stats, several at once, configs it refuses.

use super::*;

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

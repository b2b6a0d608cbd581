//! Starting one scenario's Envoy, waiting until it serves, measuring it.

use super::*;

pub(crate) struct Stack {
    pub(crate) dir: PathBuf,
    /// Snapshots of the other modules the scenarios run.
    pub(crate) modules: BTreeMap<Wasm, PathBuf>,
    pub(crate) backend: loadtest::process::ManagedProcess,
    pub(crate) backend_port: u16,
    pub(crate) idp: JwksServer,
}

/// Verified-token cache lookups over the whole scenario, from Envoy's stats.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheCounts {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

impl CacheCounts {
    /// tokengate's `cache.hit`/`cache.miss`, or jwt_authn's `jwt_cache_hit`/`jwt_cache_miss`.
    pub(crate) fn from_stats(gateway: &str, stats: &BTreeMap<String, u64>) -> Option<CacheCounts> {
        let sum = |suffix: &str| -> Option<u64> {
            let mut found = stats
                .iter()
                .filter(|(name, _)| name.ends_with(suffix))
                .peekable();
            found.peek()?;
            Some(found.map(|(_, v)| *v).sum())
        };
        let (hit, miss) = match gateway {
            "jwt" | "jwt-bcl" => (
                "wasmcustom.tokengate.cache.hit",
                "wasmcustom.tokengate.cache.miss",
            ),
            "native-jwt" => (".jwt_cache_hit", ".jwt_cache_miss"),
            _ => return None,
        };
        Some(CacheCounts {
            hits: sum(hit)?,
            misses: sum(miss)?,
        })
    }

    pub(crate) fn hit_share(&self) -> f64 {
        self.hits as f64 / (self.hits + self.misses).max(1) as f64
    }
}

pub(crate) struct ScenarioResult {
    pub(crate) name: &'static str,
    pub(crate) gateway: &'static str,
    pub(crate) tokens: Tokens,
    pub(crate) distinct_tokens: usize,
    pub(crate) expected_status: u16,
    pub(crate) measurement: Measurement,
    pub(crate) cache: Option<CacheCounts>,
    /// Envoy µs per request of every round of this scenario, in run order (the result itself
    /// is the median round's).
    pub(crate) rounds_us: Vec<f64>,
}

impl ScenarioResult {
    pub(crate) fn requests(&self) -> u64 {
        self.measurement.tally.measured.responses
    }

    /// The driver's measured window, over which the requests are counted.
    pub(crate) fn seconds(&self) -> f64 {
        self.measurement.window.as_secs_f64()
    }

    pub(crate) fn requests_per_second(&self) -> f64 {
        self.requests() as f64 / self.seconds().max(f64::MIN_POSITIVE)
    }

    /// Envoy CPU µs per request made in the window; NaN if none completed.
    ///
    /// The CPU window is the sampler's, which a busy machine may wake late: Envoy's CPU rate
    /// over it over the request rate over the driver's window, which is CPU over requests when
    /// the two windows have one length.
    pub(crate) fn envoy_us_per_request(&self) -> f64 {
        let envoy = &self.measurement.envoy;
        let cpu_per_second = envoy.process.total().as_secs_f64() * 1e6
            / envoy.wall.as_secs_f64().max(f64::MIN_POSITIVE);
        match self.requests() {
            0 => f64::NAN,
            _ => cpu_per_second / self.requests_per_second(),
        }
    }

    pub(crate) fn bad(&self) -> u64 {
        self.measurement.tally.warmup.bad() + self.measurement.tally.measured.bad()
    }

    /// Machine CPU time in the window that was neither Envoy's, the client's nor the
    /// backend's (softirq networking, other processes), as a share of one core.
    pub(crate) fn other_share(&self) -> f64 {
        let m = &self.measurement;
        let accounted = m.envoy.process.total() + m.envoy.own.total() + m.backend.process.total();
        let other = m.envoy.machine.busy.saturating_sub(accounted);
        other.as_secs_f64() / m.envoy.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    pub(crate) fn to_json(&self) -> Value {
        let m = &self.measurement;
        let phase = |p: &PhaseTally| {
            json!({
                "responses": p.responses,
                "unexpected_statuses": p.unexpected.iter()
                    .map(|(s, n)| (s.to_string(), json!(n)))
                    .collect::<serde_json::Map<String, Value>>(),
                "transport_errors": p.transport_errors,
            })
        };
        let us_per_request = self.envoy_us_per_request();
        json!({
            "scenario": self.name,
            "gateway": self.gateway,
            "tokens": self.tokens.label(),
            "distinct_tokens": self.distinct_tokens,
            "expected_status": self.expected_status,
            "requests": self.requests(),
            "seconds": self.seconds(),
            "requests_per_second": self.requests_per_second(),
            "envoy_cpu_us_per_request": if us_per_request.is_finite() { json!(us_per_request) } else { Value::Null },
            "envoy_cpu_us_per_request_rounds": self.rounds_us,
            "envoy_cpu_user_s": m.envoy.process.user.as_secs_f64(),
            "envoy_cpu_system_s": m.envoy.process.system.as_secs_f64(),
            "envoy_cpu_percent": m.envoy.process_share() * 100.0,
            "client_cpu_percent": m.envoy.own_share() * 100.0,
            "backend_cpu_percent": m.backend.process_share() * 100.0,
            "other_cpu_percent": self.other_share() * 100.0,
            "machine_busy_percent": m.envoy.machine_busy_share() * 100.0,
            "unexpected": self.bad(),
            "warmup": phase(&m.tally.warmup),
            "measured": phase(&m.tally.measured),
            "reconnects": m.tally.reconnects,
            "cache_hits": self.cache.map(|c| c.hits),
            "cache_misses": self.cache.map(|c| c.misses),
        })
    }
}

pub(crate) fn verify_envoy_process(gateway: &RunningGateway) -> Result<u32> {
    let pid = gateway.envoy.process().pid();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .with_context(|| format!("reading /proc/{pid}/exe"))?;
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.starts_with("envoy") {
        bail!(
            "pid {pid} runs {}, not Envoy: the CPU time would not be Envoy's",
            exe.display()
        );
    }
    eprintln!("  Envoy is pid {pid}, {}", exe.display());
    Ok(pid)
}

pub(crate) async fn wait_until_serving(
    gateway: &RunningGateway,
    scenario: &Scenario,
    probe_token: &HeaderValue,
) -> Result<()> {
    if scenario.gateway == "jwt" && scenario.wasm == Wasm::Tokengate {
        gateway
            .envoy
            .wait_for_stat("wasmcustom.tokengate.jwks.keys_loaded", 1, READY_TIMEOUT)
            .await?;
    }
    let probe = probe_token.to_str().context("probe token")?;
    let headers: Vec<(&str, &str)> = if scenario.tokens == Tokens::None {
        Vec::new()
    } else {
        vec![("authorization", probe)]
    };
    let url = gateway.url(REQUEST_PATH);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last = match loadtest::http::get(&url, &headers).await {
            Ok(response) if response.status == 200 => return Ok(()),
            Ok(response) => format!("status {}: {}", response.status, response.text()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "{}: a valid request still fails after {READY_TIMEOUT:?} ({last}); Envoy log {}:\n{}",
                scenario.name,
                gateway.envoy.log_path().display(),
                gateway.envoy.process().log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Renders `spec`'s template, exactly as `start_gateway` does, but with `wasm` as the filter's
/// code, and starts Envoy on it.
pub(crate) fn start_with_wasm(
    dir: &Path,
    spec: &GatewaySpec,
    stack: &Stack,
    wasm: &Path,
    direct_response: bool,
) -> Result<RunningGateway> {
    let mut topology = Topology::native(
        free_port()?,
        free_port()?,
        stack.backend_port,
        stack.idp.port(),
        wasm.display().to_string(),
    );
    topology.wasm_runtime = loadtest::paths::wasm_runtime();
    // Templates without a logout listener ignore it.
    topology.logout_port = free_port()?;
    let envoy_dir = loadtest::paths::repo_root().join("envoy");
    let mut text = render::render_gateway(
        &envoy_dir,
        &spec.gateway,
        &topology,
        spec.plugin_patch.as_ref(),
    )?;
    if direct_response {
        text = answer_directly(&text)?;
    }
    let config_path = render::write_rendered(dir, &spec.gateway, &text)?;
    let mut options = EnvoyOptions::from_paths()?;
    options.concurrency = spec.concurrency;
    let envoy = Envoy::start(
        &config_path,
        topology.admin_port,
        topology.listen_port,
        &options,
        dir,
    )?;
    Ok(RunningGateway {
        envoy,
        config_path,
        topology,
    })
}

/// The rendered gateway with its one route answering 200 from Envoy instead of proxying to the
/// backend (both forms the renderer writes: the template's flow mapping and the re-emitted
/// block mapping).
pub(crate) fn answer_directly(config: &str) -> Result<String> {
    const FLOW: &str = "route: { cluster: backend }";
    const ANSWER: &str = r#"{ status: 200, body: { inline_string: "{\"ok\":true}" } }"#;
    if config.matches(FLOW).count() == 1 {
        return Ok(config.replacen(FLOW, &format!("direct_response: {ANSWER}"), 1));
    }
    let lines: Vec<&str> = config.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut replaced = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let next = lines.get(i + 1).map(|l| l.trim());
        if line.trim() == "route:" && next == Some("cluster: backend") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push(format!("{indent}direct_response: {ANSWER}"));
            replaced += 1;
            i += 2;
            continue;
        }
        out.push(line.to_owned());
        i += 1;
    }
    if replaced != 1 {
        bail!("expected one route to the backend in the rendered config, found {replaced}");
    }
    Ok(out.join("\n") + "\n")
}

pub(crate) fn run_scenario(
    runtime: &tokio::runtime::Runtime,
    stack: &Stack,
    tokens: &TokenSets,
    options: &Options,
    scenario: &'static Scenario,
) -> Result<ScenarioResult> {
    let dir = stack.dir.join(scenario.name);
    loadtest::paths::ensure_dir(&dir)?;
    let mut spec = GatewaySpec::new(scenario.gateway).concurrency(1);
    if let Some(patch) = scenario.plugin_patch {
        let patch = patch.replace("${IDP_PORT}", &stack.idp.port().to_string());
        spec = spec.patch(serde_json::from_str(&patch).context("the scenario's plugin patch")?);
    }
    let direct = options.direct_response;
    let started = match scenario.wasm {
        Wasm::Tokengate if direct => loadtest::paths::wasm_path()
            .and_then(|wasm| start_with_wasm(&dir, &spec, stack, &wasm, true)),
        Wasm::Tokengate => start_gateway(&dir, &spec, stack.backend_port, stack.idp.port()),
        other => match stack.modules.get(&other) {
            Some(wasm) => start_with_wasm(&dir, &spec, stack, wasm, direct),
            None => Err(anyhow!("{} was not prepared", other.file_name())),
        },
    };
    let gateway = started.with_context(|| {
        format!(
            "starting gateway {} for {}",
            scenario.gateway, scenario.name
        )
    })?;
    let envoy_pid = verify_envoy_process(&gateway)?;
    let probe = tokens
        .repeated
        .first()
        .context("no repeated token was minted")?;
    let authorization = tokens.for_kind(scenario.tokens);
    let distinct_tokens = authorization.len();
    let load = Load {
        addr: SocketAddr::from(([127, 0, 0, 1], gateway.envoy.listen_port())),
        label: scenario.name,
        authorization,
        expected_status: scenario.expected_status,
    };
    runtime.block_on(async {
        wait_until_serving(&gateway, scenario, probe).await?;
        end_sessions(&gateway, stack, scenario.ended_sessions).await
    })?;
    let measurement = run_load(
        &load,
        options.connections,
        options.warmup,
        options.window,
        envoy_pid,
        stack.backend.pid(),
    )?;
    // After the load, so reading the admin page costs nothing inside the window.
    let stats = runtime
        .block_on(gateway.envoy.stats())
        .context("reading Envoy's stats")?;
    let stats_text: String = stats.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    let stats_path = dir.join("stats.txt");
    std::fs::write(&stats_path, stats_text)
        .with_context(|| format!("writing {}", stats_path.display()))?;
    let cache = CacheCounts::from_stats(scenario.gateway, &stats);
    if let Err(e) = gateway.envoy.stop() {
        eprintln!("{}: stopping Envoy: {e:#}", scenario.name);
    }
    Ok(ScenarioResult {
        name: scenario.name,
        gateway: scenario.gateway,
        tokens: scenario.tokens,
        distinct_tokens,
        expected_status: scenario.expected_status,
        measurement,
        cache,
        rounds_us: Vec::new(),
    })
}

/// The logout listener's path in `envoy/jwt-bcl.yaml`, and the client its logout tokens name.
const LOGOUT_PATH: &str = "/backchannel-logout";
const LOGOUT_AUDIENCE: &str = "tokengate-loadtest";
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Ends `count` sessions (none of them the measured token's) by posting a logout token for
/// each to the gateway's logout listener, as the IdP would. ES256-signed: minting a thousand
/// RS256 tokens would cost seconds.
pub(crate) async fn end_sessions(
    gateway: &RunningGateway,
    stack: &Stack,
    count: usize,
) -> Result<()> {
    let issuer = format!("http://127.0.0.1:{}/realms/tokengate", stack.idp.port());
    let url = gateway.logout_url(LOGOUT_PATH);
    let now = unix_now();
    let (kid, key) = signing_key(Algorithm::Es256);
    let deadline = Instant::now() + READY_TIMEOUT;
    for n in 0..count {
        let token = TokenSpec {
            header: serde_json::json!({"alg": "ES256", "typ": "logout+jwt", "kid": kid})
                .as_object()
                .cloned()
                .context("logout header")?,
            claims: serde_json::json!({
                "iss": issuer, "aud": LOGOUT_AUDIENCE, "sub": format!("ended-{n}"),
                "sid": format!("bench-ended-{n}"), "jti": format!("bench-logout-{n}"),
                "iat": now, "exp": now + 300, "typ": "Logout", "events": {LOGOUT_EVENT: {}},
            })
            .as_object()
            .cloned()
            .context("logout claims")?,
        }
        .sign(key);
        let body = format!("logout_token={token}").into_bytes();
        loop {
            let response = loadtest::http::send(
                "POST",
                &url,
                &[("content-type", "application/x-www-form-urlencoded")],
                Some(body.clone()),
            )
            .await?;
            if response.status == 200 {
                break;
            }
            // The logout listener loads its keys on its own first fetch.
            if n > 0 || Instant::now() >= deadline {
                bail!(
                    "logout {n}: status {}: {}",
                    response.status,
                    response.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if count > 0 {
        let entries = gateway
            .envoy
            .stats()
            .await?
            .get("wasmcustom.tokengate.revocation.entries")
            .copied()
            .unwrap_or_default();
        if entries < count as u64 {
            bail!("{count} sessions ended, but the revocation set holds {entries}");
        }
    }
    Ok(())
}

/// Each scenario's median round (by Envoy µs per request), carrying every round's figure.
pub(crate) fn median_rounds(rounds: Vec<Vec<ScenarioResult>>) -> Vec<ScenarioResult> {
    let mut by_scenario: Vec<Vec<ScenarioResult>> = Vec::new();
    for round in rounds {
        for (index, result) in round.into_iter().enumerate() {
            match by_scenario.get_mut(index) {
                Some(results) => results.push(result),
                None => by_scenario.push(vec![result]),
            }
        }
    }
    by_scenario
        .into_iter()
        .filter_map(|mut results| {
            let rounds_us: Vec<f64> = results
                .iter()
                .map(ScenarioResult::envoy_us_per_request)
                .collect();
            results.sort_by(|a, b| {
                a.envoy_us_per_request()
                    .total_cmp(&b.envoy_us_per_request())
            });
            let middle = results.len() / 2;
            let mut median = results.into_iter().nth(middle)?;
            median.rounds_us = rounds_us;
            Some(median)
        })
        .collect()
}

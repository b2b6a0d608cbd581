//! The scenario matrix: gateways × scenarios × rates, each cell an open-loop run of its own,
//! judged twice — did the gateway answer as expected (performance table), and did it let
//! through anything it must refuse (security verdicts).

pub mod charts;
mod config;
pub mod findmax;
pub mod html;
mod keycloak_cells;
pub mod logout;
mod policy_scenarios;
mod probes;
pub mod report;
pub mod scenario;
mod terminal;
pub mod tokens;
pub mod validity;
pub mod verdicts;

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::driver::{
    self, DriverConfig, Load, RequestSource, RequestTemplate, RoundRobin, Thresholds,
};
use crate::keycloak::{self, KeycloakClient};
use crate::stack::{NativeStack, StackOptions};
use report::{Cell, Report, Settings};
use scenario::{ExpectationClassifier, GatewayProfile, GatewayRequest, Scenario, TokenKind};
use tokens::TokenPools;

pub use config::{
    DEFAULT_LOAD_BUDGET_SECS, ExternalTarget, IDP_RATE, MatrixConfig, Profile,
    QUICK_LOAD_BUDGET_SECS, union_of_rates,
};

/// Measured sessions opened longer ago than this are opened again before they are measured
/// (Keycloak's access tokens live 300 s).
const SESSIONS_FRESH_FOR: Duration = Duration::from_secs(200);

/// A running gateway the matrix sends to.
pub(crate) struct GatewayTarget {
    pub(crate) name: String,
    pub(crate) profile: &'static GatewayProfile,
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
}

/// Runs the matrix and writes the report (JSON, Markdown, charts) into `config.out`.
pub fn run(config: &MatrixConfig) -> Result<Report> {
    std::fs::create_dir_all(&config.out)
        .with_context(|| format!("creating {}", config.out.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // The stack: started here, or the one given.
    let (stack, gateways, keycloak_url, logout_url) = match &config.target {
        Some(target) => {
            let profile = scenario::profile(&target.gateway)
                .ok_or_else(|| anyhow!("unknown gateway `{}`", target.gateway))?;
            let (addr, host) = resolve(&target.gateway_url)?;
            let gateway = GatewayTarget {
                name: target.gateway.clone(),
                profile,
                addr,
                host,
            };
            let logout_url = target.logout_url.clone();
            (None, vec![gateway], target.keycloak_url.clone(), logout_url)
        }
        None => {
            eprintln!(
                "starting the native stack: Keycloak, backend, {} ...",
                config.gateways.join(", ")
            );
            let options = StackOptions {
                envoy_workers: config.envoy_workers,
                ..StackOptions::default()
            };
            let mut specs: Vec<(String, crate::stack::GatewaySpec)> = config
                .gateways
                .iter()
                .map(|name| {
                    let mut spec = crate::stack::GatewaySpec::new(name);
                    if let Some((_, patch)) = config.patches.iter().find(|(g, _)| g == name) {
                        spec = spec.patch(patch.clone());
                    }
                    (name.clone(), spec)
                })
                .collect();
            let receiver = logout::wire_specs(&mut specs)?;
            let stack = NativeStack::start_specs(&specs, &options)?;
            let logout_url = receiver
                .and_then(|name| stack.gateway(&name))
                .map(|g| g.logout_url(crate::render_logout::LOGOUT_PATH));
            let mut gateways = Vec::new();
            for name in &config.gateways {
                let profile = scenario::profile(name)
                    .ok_or_else(|| anyhow!("no expectations known for gateway `{name}`"))?;
                let running = stack
                    .gateway(name)
                    .ok_or_else(|| anyhow!("gateway `{name}` did not start"))?;
                let (addr, host) = resolve(&running.url(""))?;
                gateways.push(GatewayTarget {
                    name: name.clone(),
                    profile,
                    addr,
                    host,
                });
            }
            let url = stack.keycloak().base_url().to_owned();
            eprintln!("{}", stack.describe());
            (Some(stack), gateways, url, logout_url)
        }
    };
    let (keycloak_addr, keycloak_host) = resolve(&keycloak_url)?;
    let client = KeycloakClient::new(&keycloak_url);

    eprintln!("minting token pools ({} per kind) ...", config.pool_size);
    let policy_cells = config.scenarios.iter().any(|scenario| {
        matches!(scenario, Scenario::Policy(_))
            && gateways
                .iter()
                .any(|g| scenario::runs_on(g.profile, *scenario))
    });
    let partner =
        policy_cells.then(|| KeycloakClient::for_realm(&keycloak_url, keycloak::PARTNER_REALM));
    let logged_out = config.scenarios.contains(&logout::SCENARIO);
    let measured: Vec<&str> = if logged_out {
        logout::Plan::gateways(gateways.iter().map(|g| g.profile))
            .iter()
            .map(|p| p.name)
            .collect()
    } else {
        Vec::new()
    };
    // The measured sessions are opened next to the pools (password grants: Keycloak's CPU).
    let (pools, sessions) = runtime.block_on(async {
        tokio::join!(
            TokenPools::mint_with_policy(client.clone(), partner, config.pool_size),
            logout::open_sessions(&client, measured.len() * config.logout_sessions),
        )
    });
    let (mut pools, mut sessions) = (pools?, sessions?);
    let mut sessions_opened = std::time::Instant::now();
    runtime.block_on(probes::wait_until_admitted(&gateways, &pools))?;
    let admin = Arc::new(keycloak::AdminClient::new(&keycloak_url));
    let receivers = gateways.iter().any(|g| g.profile.receives_logouts);
    let registration = match (&logout_url, logged_out && receivers) {
        (Some(url), true) => {
            eprintln!("Keycloak posts the minting client's logouts to {url}");
            Some(runtime.block_on(logout::Registration::register(
                Arc::clone(&admin),
                &keycloak_url,
                url,
            ))?)
        }
        (None, true) => {
            bail!("api-logged-out on a gateway that receives logouts needs --target-logout-url")
        }
        _ => None,
    };
    let plan = logout::Plan {
        rate: config.rates_for(logout::SCENARIO).first().copied(),
        gateways: measured.iter().map(|name| (*name).to_owned()).collect(),
    };
    // Everything that needs Keycloak's logouts delivered, so that the registration is put
    // back whatever happens.
    let result = (|| -> Result<Report> {
        if logged_out {
            runtime.block_on(pools.enable_logged_out(Arc::clone(&admin)))?;
        }
        let total = config.cells(gateways.iter().map(|g| g.profile));
        eprintln!(
            "{total} cells: {:.0} s of scheduled load, plus each cell's set-up",
            config.scheduled_secs()
        );
        let idle_pacing = |rate| driver::idle_pacing(rate, NOISE_PROBE, driver::DEFAULT_SPIN);
        let noise = machine_noise(config, idle_pacing, &mut std::io::stderr())?;
        let progress = progress_bar(config.progress, total as u64);
        let mut cells = Vec::with_capacity(total);
        let mut logout_times = Vec::new();
        for rate in &config.all_rates() {
            for scenario in &config.scenarios {
                if !config.rates_for(*scenario).contains(rate) {
                    continue;
                }
                let kind = match scenario {
                    Scenario::IntrospectExpired => Some(TokenKind::Expired),
                    _ => scenario.token_kind(),
                };
                runtime.block_on(pools.ready_for(kind, config.warmup + config.duration))?;
                if scenario.through_gateway() {
                    for gateway in &gateways {
                        if !scenario::runs_on(gateway.profile, *scenario) {
                            continue;
                        }
                        progress.set_message(format!(
                            "{rate} req/s  {}  {}",
                            scenario.name(),
                            gateway.name
                        ));
                        let measure = plan.measures(&gateway.name, *scenario, *rate);
                        if measure && sessions_opened.elapsed() > SESSIONS_FRESH_FOR {
                            sessions = runtime.block_on(logout::open_sessions(
                                &client,
                                measured.len() * config.logout_sessions,
                            ))?;
                            sessions_opened = std::time::Instant::now();
                        }
                        let mine = measure.then(|| {
                            let index = measured.iter().position(|n| *n == gateway.name);
                            let from = index.unwrap_or(0) * config.logout_sessions;
                            let to = (from + config.logout_sessions).min(sessions.len());
                            (sessions[from..to].to_vec(), Arc::clone(&admin))
                        });
                        let (cell, times) =
                            run_gateway_cell(config, *rate, *scenario, gateway, &pools, mine)?;
                        cells.push(cell);
                        logout_times.extend(times);
                        progress.inc(1);
                    }
                } else {
                    progress.set_message(format!("{rate} req/s  {}  keycloak", scenario.name()));
                    cells.push(keycloak_cells::run_keycloak_cell(
                        config,
                        *rate,
                        *scenario,
                        keycloak_addr,
                        &keycloak_host,
                        &pools,
                        &runtime,
                    )?);
                    progress.inc(1);
                }
            }
        }
        progress.finish_and_clear();

        let settings = Settings::from_config(
            config,
            &gateways.iter().map(|g| g.name.clone()).collect::<Vec<_>>(),
        );
        let mut report = Report::new(settings, cells);
        report.logout_to_refusal = logout_times;
        report.machine_noise = noise;
        runtime.block_on(probes::probe_gaps(&mut report, &gateways, &mut pools))?;
        Ok(report)
    })();
    if let Some(registration) = registration {
        runtime.block_on(registration.restore())?;
    }
    let report = result?;
    drop(stack);
    report.write(&config.out)?;
    html::browser::screenshot_or_note(&config.out);
    Ok(report)
}

/// The headers a gateway scenario's request carries besides `host`: the bearer token when
/// there is one, and the forged identity header.
pub(crate) fn request_headers(
    request: &GatewayRequest,
    token: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(token) = token {
        headers.push(("authorization", format!("Bearer {token}")));
    }
    if let Some((name, value)) = request.forged_header {
        headers.push((name, value.to_owned()));
    }
    headers
}

/// How long the idle pacing probe paces: 1 000 wake-ups at 1 000 req/s.
const NOISE_PROBE: Duration = Duration::from_secs(1);

/// This machine's own scheduling noise with the stack up and idle: `probe` (the driver's pacing
/// with nothing to send) at the run's highest rate. Only says on `log` that it measures: the
/// figures are printed once, in the terminal summary (and kept in the reports).
fn machine_noise(
    config: &MatrixConfig,
    probe: impl FnOnce(f64) -> Result<driver::LatencySummary>,
    log: &mut impl Write,
) -> Result<Option<driver::LatencySummary>> {
    let Some(rate) = config.all_rates().last().copied() else {
        return Ok(None);
    };
    let _ = writeln!(
        log,
        "measuring this machine's own scheduling noise (an idle pacing probe at {rate} req/s) ..."
    );
    probe(rate).map(Some)
}

fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} cells  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `http://host:port[/...]` → the socket address to connect to and the `host` header.
pub fn resolve(url: &str) -> Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{url}: only http:// URLs are supported"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .ok_or_else(|| anyhow!("{authority} resolves to nothing"))?;
    Ok((addr, authority.to_owned()))
}

pub(crate) fn driver_config(
    config: &MatrixConfig,
    rate: f64,
    addr: SocketAddr,
    host: &str,
    label: String,
) -> DriverConfig {
    let mut driver = DriverConfig::open_loop(addr, rate);
    driver.host = Some(host.to_owned());
    driver.label = label;
    driver.threads = config.driver_threads;
    driver.warmup = config.warmup;
    driver.duration = config.duration;
    if let Load::Open(open) = &mut driver.load {
        open.max_in_flight = config.max_in_flight;
    }
    driver
}

pub(crate) fn cell_label(gateway: &str, scenario: Scenario, rate: f64) -> String {
    format!("{gateway}.{}.r{}", scenario.name(), rate.round() as u64)
}

fn run_gateway_cell(
    config: &MatrixConfig,
    rate: f64,
    scenario: Scenario,
    gateway: &GatewayTarget,
    pools: &TokenPools,
    measure: Option<(Vec<logout::Session>, Arc<keycloak::AdminClient>)>,
) -> Result<(Cell, Option<logout::LogoutTimes>)> {
    let request = scenario
        .request()
        .ok_or_else(|| anyhow!("{} is not a gateway scenario", scenario.name()))?;
    let tokens = pools.tokens(request.token);
    if tokens.is_empty() && request.token != TokenKind::Missing {
        bail!("no {} tokens minted", request.token.name());
    }
    let tokens: Vec<Option<&str>> = if tokens.is_empty() {
        vec![None]
    } else {
        tokens.iter().map(|t| Some(t.as_str())).collect()
    };
    let mut templates = Vec::new();
    for token in tokens {
        let mut template = RequestTemplate::get(request.path)?;
        for (name, value) in request_headers(&request, token) {
            template = template.header(name, &value)?;
        }
        templates.push(template);
    }
    let expectation = scenario::expectation(gateway.profile, scenario);
    let classifier = ExpectationClassifier {
        expectation: expectation.clone(),
    };
    let label = cell_label(&gateway.name, scenario, rate);
    let mut driver = driver_config(config, rate, gateway.addr, &gateway.host, label);
    let source: Arc<dyn RequestSource> = Arc::new(RoundRobin::new(templates)?);
    let run = |driver: &DriverConfig| driver::run(driver, source, Arc::new(classifier));
    let (result, times) = match measure {
        None => (run(&driver)?, None),
        Some((sessions, admin)) => {
            driver.duration = driver.duration.max(logout::MEASURED_CELL_MIN);
            let (result, times) = logout::run_measured(
                &gateway.name,
                rate,
                &gateway.host,
                sessions,
                admin,
                config.warmup,
                || run(&driver),
            )?;
            (result, Some(times))
        }
    };
    let cell = Cell::new(
        rate,
        scenario,
        Some(gateway.profile),
        expectation,
        result,
        &Thresholds::default(),
        None,
    );
    Ok((cell, times))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// What a run prints about the machine's noise, from the probe to the terminal summary,
    /// names its figures once.
    #[test]
    fn the_noise_line_is_printed_once() {
        let config = MatrixConfig::for_profile(Profile::Quick, PathBuf::from("out"));
        let measured = driver::LatencySummary {
            p50_us: 7,
            p99_us: 42,
            max_us: 90,
            ..Default::default()
        };
        let mut log = Vec::new();
        let noise = machine_noise(&config, |_| Ok(measured), &mut log).unwrap();
        let mut report = Report::new(Settings::from_config(&config, &config.gateways), Vec::new());
        report.machine_noise = noise;
        let printed = String::from_utf8(log).unwrap() + &report.terminal_summary(Path::new("out"));
        let line = report::noise_line(&measured);
        assert_eq!(printed.matches(&line).count(), 1, "{printed}");
    }
}

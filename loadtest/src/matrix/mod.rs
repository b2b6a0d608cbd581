//! The scenario matrix: gateways × scenarios × rates, each cell an open-loop run of its own,
//! judged twice — did the gateway answer as expected (performance table), and did it let
//! through anything it must refuse (security verdicts).

pub mod charts;
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

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::driver::{
    self, DriverConfig, Load, RequestSource, RequestTemplate, RoundRobin, Thresholds,
};
use crate::keycloak::{self, KeycloakClient};
use crate::stack::{NativeStack, StackOptions};
use report::{Cell, Report, Settings};
use scenario::{ExpectationClassifier, GatewayProfile, GatewayRequest, Scenario, TokenKind};
use tokens::TokenPools;

/// Where requests go when the matrix drives an already running stack.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalTarget {
    /// The gateway's base URL (`http://host:port`).
    pub gateway_url: String,
    /// Which gateway template it runs (decides the expected outcomes).
    pub gateway: String,
    /// Keycloak's base URL, as the gateway's issuer names it.
    pub keycloak_url: String,
    /// The gateway's back-channel logout URL as Keycloak reaches it: registered at the minting
    /// client for the run (needed for `api-logged-out` on a gateway that receives logouts).
    pub logout_url: Option<String>,
}

/// What `loadtest run` runs when no flag says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The write-up's experiment: every gateway × token kind at 100, 500 and 1000 req/s in
    /// short cells, the policy scenarios at 100 req/s, Keycloak's own scenarios (token
    /// generation, introspection) at a rate a 2-core IdP sustains next to the gateways.
    #[default]
    Default,
    /// A first look: every gateway × token kind at 100 req/s only.
    Quick,
    /// Every scenario at every rate in 5-second cells, Keycloak's scenarios included.
    Full,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Quick => "quick",
            Profile::Full => "full",
        }
    }
}

/// What Keycloak's own scenarios (token generation, introspection) are driven at outside the
/// full profile: a rate the IdP sustains on 2 cores while the gateways' Envoys share them. At
/// 500 and 1000 req/s token generation keeps Keycloak signing on both cores and starves the
/// driver; the write-up generated tokens once per thread (5–6 tokens/s).
pub const IDP_RATE: f64 = 10.0;

/// Seconds of scheduled load ([`MatrixConfig::scheduled_secs`]) the default profile may take
/// of its 5 minutes: the rest is the stack's start (about 60 s on 2 quiet cores, Keycloak's
/// JVM most of it) and each cell's set-up (about 0.1 s each, 20 s for the 201 cells).
pub const DEFAULT_LOAD_BUDGET_SECS: f64 = 200.0;
/// The same for the quick profile's 90 s.
pub const QUICK_LOAD_BUDGET_SECS: f64 = 40.0;

/// Measured sessions opened longer ago than this are opened again before they are measured
/// (Keycloak's access tokens live 300 s).
const SESSIONS_FRESH_FOR: Duration = Duration::from_secs(200);

#[derive(Debug, Clone, PartialEq)]
pub struct MatrixConfig {
    pub profile: Profile,
    pub gateways: Vec<String>,
    pub scenarios: Vec<Scenario>,
    /// Rates of the API scenarios (`api-*`).
    pub rates: Vec<f64>,
    /// Rates of the policy scenarios (`policy-*`).
    pub policy_rates: Vec<f64>,
    /// Rates of the scenarios at Keycloak (its cost, not a gateway's).
    pub idp_rates: Vec<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub pool_size: usize,
    pub driver_threads: usize,
    pub max_in_flight: usize,
    pub envoy_workers: u32,
    pub out: PathBuf,
    pub target: Option<ExternalTarget>,
    /// RFC 7386 merge patches of a gateway's plugin configuration (tokengate gateways), e.g.
    /// `introspect` with its introspection cache on.
    pub patches: Vec<(String, serde_json::Value)>,
    pub progress: bool,
    /// Sessions the logout-to-refusal time is measured over, per gateway.
    pub logout_sessions: usize,
}

impl MatrixConfig {
    /// The matrix of `profile`: the one place the CLI's defaults live.
    ///
    /// Cell lengths, from the budget ([`DEFAULT_LOAD_BUDGET_SECS`], tested below): the default
    /// profile's 201 cells (9 token kinds × 7 gateways × 3 rates, 8 policy and 4 Keycloak
    /// cells) plus the three longer cells logout-to-refusal is measured in must fit 5 minutes
    /// on 2 cores with the stack's start (Keycloak 30–40 s warm on quiet cores, minting,
    /// Envoys) and each cell's own set-up (connections, stragglers: about 0.1 s), which leaves
    /// 0.9 s of load per cell. The warm-up is the shortest that passes once through the token
    /// pool at the lowest rate (10 tokens at 100 req/s: 0.1 s, so each token's first, uncached
    /// validation falls in it) with margin: 0.15 s. The 0.75 s measured give 75, 375 and 750
    /// samples at 100, 500 and 1000 req/s, so p99 rests on the slowest 1, 4 and 8 requests (p50
    /// and p90 on many more): steady at 500 and 1000 req/s, a first estimate at 100, where
    /// `--duration` buys a steadier one. The quick profile halves that again (100 req/s only,
    /// 0.3 s cells after 0.1 s: p99 is the slowest of 30) to fit 90 s; the full profile's 5 s
    /// cells are the whole matrix as it ran before profiles.
    pub fn for_profile(profile: Profile, out: PathBuf) -> MatrixConfig {
        let seconds = Duration::from_secs_f64;
        let all_rates = vec![100.0, 500.0, 1000.0];
        let (rates, policy_rates, idp_rates, warmup, duration, pool_size) = match profile {
            Profile::Default => (
                all_rates,
                vec![100.0],
                vec![IDP_RATE],
                seconds(0.15),
                seconds(0.75),
                10,
            ),
            Profile::Quick => (
                vec![100.0],
                vec![100.0],
                vec![IDP_RATE],
                seconds(0.1),
                seconds(0.3),
                5,
            ),
            Profile::Full => (
                all_rates.clone(),
                all_rates.clone(),
                all_rates,
                seconds(1.0),
                seconds(5.0),
                50,
            ),
        };
        MatrixConfig {
            profile,
            gateways: scenario::GATEWAYS
                .iter()
                .map(|g| g.name.to_owned())
                .collect(),
            scenarios: Scenario::all().collect(),
            rates,
            policy_rates,
            idp_rates,
            warmup,
            duration,
            pool_size,
            driver_threads: 1,
            max_in_flight: driver::DEFAULT_MAX_IN_FLIGHT,
            envoy_workers: 1,
            out,
            target: None,
            patches: Vec::new(),
            progress: true,
            logout_sessions: logout::DEFAULT_SESSIONS,
        }
    }

    /// Today's whole matrix: every gateway and scenario at 100, 500 and 1000 req/s (the
    /// policy scenarios on the policy gateway).
    pub fn default_matrix(out: PathBuf) -> MatrixConfig {
        MatrixConfig::for_profile(Profile::Full, out)
    }

    /// The rates `scenario` is driven at.
    pub fn rates_for(&self, scenario: Scenario) -> &[f64] {
        match scenario {
            Scenario::Api(_) => &self.rates,
            Scenario::Policy(_) => &self.policy_rates,
            _ => &self.idp_rates,
        }
    }

    /// How many cells the matrix has on `gateways`.
    pub fn cells<'a>(&self, gateways: impl Iterator<Item = &'a GatewayProfile> + Clone) -> usize {
        self.scenarios
            .iter()
            .map(|s| {
                let targets = if s.through_gateway() {
                    gateways
                        .clone()
                        .filter(|g| scenario::runs_on(g, *s))
                        .count()
                } else {
                    1
                };
                targets * self.rates_for(*s).len()
            })
            .sum()
    }

    /// The seconds of load the matrix schedules on its own gateways: every cell's warm-up and
    /// measured window, and the longer cells the logout-to-refusal time is measured in.
    /// Excludes the stack's start, minting, and each cell's set-up.
    pub fn scheduled_secs(&self) -> f64 {
        let profiles: Vec<&GatewayProfile> = self
            .gateways
            .iter()
            .filter_map(|name| scenario::profile(name))
            .collect();
        let cells = self.cells(profiles.iter().copied());
        let measured = if self.scenarios.contains(&logout::SCENARIO) {
            logout::Plan::gateways(profiles.iter().copied()).len()
        } else {
            0
        };
        let per_cell = (self.warmup + self.duration).as_secs_f64();
        let longer = logout::MEASURED_CELL_MIN.saturating_sub(self.duration);
        cells as f64 * per_cell + measured as f64 * longer.as_secs_f64()
    }

    /// Every rate some scenario is driven at, ascending.
    pub fn all_rates(&self) -> Vec<f64> {
        union_of_rates(
            self.scenarios
                .iter()
                .flat_map(|scenario| self.rates_for(*scenario).iter().copied()),
        )
    }
}

/// The distinct rates of `rates`, ascending.
pub fn union_of_rates(rates: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut all: Vec<f64> = rates.into_iter().collect();
    all.sort_by(f64::total_cmp);
    all.dedup();
    all
}

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
        let noise = machine_noise(config)?;
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

/// This machine's own scheduling noise with the stack up and idle: the driver's pacing at the
/// run's highest rate with nothing to send.
fn machine_noise(config: &MatrixConfig) -> Result<Option<driver::LatencySummary>> {
    let Some(rate) = config.all_rates().last().copied() else {
        return Ok(None);
    };
    let noise = driver::idle_pacing(rate, NOISE_PROBE, driver::DEFAULT_SPIN)?;
    eprintln!("{}", report::noise_line(&noise));
    Ok(Some(noise))
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
    use super::*;

    /// The profiles' arithmetic fits their budgets (seconds of load scheduled, not a clock).
    #[test]
    fn the_profiles_fit_their_time_budgets() {
        let out = PathBuf::from("out");
        let default = MatrixConfig::for_profile(Profile::Default, out.clone());
        let profiles = || scenario::GATEWAYS.iter();
        assert_eq!(default.cells(profiles()), 9 * 7 * 3 + 8 + 4);
        let secs = default.scheduled_secs();
        assert!(secs <= DEFAULT_LOAD_BUDGET_SECS, "default: {secs} s");
        let quick = MatrixConfig::for_profile(Profile::Quick, out.clone());
        assert_eq!(quick.cells(profiles()), 9 * 7 + 8 + 4);
        let secs = quick.scheduled_secs();
        assert!(secs <= QUICK_LOAD_BUDGET_SECS, "quick: {secs} s");
        // The full profile is the whole matrix in 5 s cells, over any budget.
        let full = MatrixConfig::for_profile(Profile::Full, out);
        assert_eq!(full.cells(profiles()), (9 * 7 + 8 + 4) * 3);
    }
}

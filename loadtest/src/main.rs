//! `loadtest`: bring up the native stack, run the scenario matrix, render Envoy configs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::time::Duration;

use loadtest::keycloak::Keycloak;
use loadtest::matrix::findmax::{self, FindMaxConfig};
use loadtest::matrix::report;
use loadtest::matrix::scenario::Scenario;
use loadtest::matrix::{self, ExternalTarget, MatrixConfig};
use loadtest::render::{self, Topology};
use loadtest::stack::{NativeStack, StackOptions};

#[derive(Parser)]
#[command(
    name = "loadtest",
    version,
    about = "tokengate's native stack runner and load driver"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scenario matrix (gateways × scenarios × rates) against the native stack (or an
    /// already running one with --target), print the report, write report.json/.md and charts.
    ///
    /// Exit codes: 0 all verdicts as expected; 2 a security GAP on a gateway not known to be
    /// insecure; 3 this machine could not drive some cell (the driver was behind and did not
    /// deliver the load, or late sends make up over half of a cell's median); 1 other failure.
    Run(Box<RunArgs>),
    /// Start Keycloak, the backend and Envoy with the given gateways on free 127.0.0.1
    /// ports; print the URLs; tear everything down on Ctrl-C.
    Up {
        /// Gateways (templates in envoy/), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "jwt")]
        gateway: Vec<String>,
        /// Envoy worker threads per gateway.
        #[arg(long, default_value_t = 1)]
        envoy_workers: u32,
    },
    /// Start one Keycloak with the repo's realms (keycloak/realm-*.json) and keep it running
    /// until Ctrl-C / SIGTERM.
    Keycloak {
        /// Write `TOKENGATE_KEYCLOAK_URL=...` lines here once Keycloak is ready.
        #[arg(long)]
        env_file: Option<PathBuf>,
    },
    /// Generate the concrete host cases (tokens minted now, placeholders resolved) from the
    /// table every host tier runs (`hosts/cases.json`; see hosts/README.md).
    HostCases {
        /// The table.
        #[arg(long)]
        table: Option<PathBuf>,
        /// Where to write the concrete cases (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Send the same generated tokens to tokengate and to Envoy's jwt_authn in one Envoy and
    /// compare the verdicts. Exit code 2 when tokengate admits a token jwt_authn refuses that
    /// is not a listed intended difference.
    Differential(loadtest::differential::cli::Args),
    /// Soak: distinct valid tokens through one Envoy worker twice over, then invalid ones;
    /// prints Envoy's RSS, tokengate's cache gauge, errors and latency per reading.
    Soak(loadtest::soak::cli::Args),
    /// Render gateway templates for an environment.
    Render {
        /// Gateways to render, comma-separated; all when omitted.
        #[arg(long, value_delimiter = ',')]
        gateway: Vec<String>,
        #[arg(long, value_enum, default_value_t = Profile::Compose)]
        profile: Profile,
        /// Output directory (one `<gateway>.yaml` each).
        #[arg(long)]
        out: PathBuf,
        /// Templates directory.
        #[arg(long)]
        envoy_dir: Option<PathBuf>,
        /// Wasm path as Envoy will see it (compose default: /etc/envoy/tokengate.wasm).
        #[arg(long)]
        wasm_path: Option<String>,
        /// Add the back-channel logout listener of jwt-bcl.yaml to the gateways the matrix
        /// sends logouts to (jwt, hybrid), as the native matrix runs them.
        #[arg(long)]
        backchannel_logout: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// What to run: `default` (every gateway × token kind at 100, 500 and 1000 req/s in short
    /// cells; Keycloak's own scenarios at a rate the IdP sustains), `quick` (100 req/s only, a
    /// first look), `full` (every scenario at every rate, 5-second cells). The flags below
    /// change the profile's settings.
    #[arg(long, value_enum, default_value_t = matrix::Profile::Default)]
    profile: matrix::Profile,
    /// Gateways to test, comma-separated (templates in envoy/). Default: all.
    #[arg(long, value_delimiter = ',')]
    gateways: Vec<String>,
    /// Scenarios, comma-separated: generate-token, introspect-valid, introspect-expired,
    /// introspect-invalid, api-valid, api-expired, api-invalid-signature, api-malformed,
    /// api-missing, api-revoked, api-alg-none, api-wrong-audience, and on the policy gateway
    /// only policy-public-no-token, policy-api-no-token, policy-api-partner,
    /// policy-admin-partner, policy-admin-without-role, policy-admin-with-role,
    /// policy-api-cross-realm, policy-public-forged-identity. Default: all.
    #[arg(long, value_delimiter = ',', env = "LOADTEST_SCENARIOS")]
    scenarios: Vec<String>,
    /// Target rates of the API scenarios in requests per second, comma-separated; the policy
    /// scenarios too unless --policy-rates says otherwise.
    #[arg(long, value_delimiter = ',', env = "LOADTEST_RATES")]
    rates: Vec<f64>,
    /// Rates of the policy scenarios.
    #[arg(long, value_delimiter = ',')]
    policy_rates: Vec<f64>,
    /// Rates of the scenarios at Keycloak (generate-token, introspect-*).
    #[arg(long, value_delimiter = ',')]
    idp_rates: Vec<f64>,
    /// Measured seconds per cell.
    #[arg(long, env = "LOADTEST_DURATION")]
    duration: Option<f64>,
    /// Warm-up seconds per cell (same rate, not measured).
    #[arg(long, env = "LOADTEST_WARMUP")]
    warmup: Option<f64>,
    /// Distinct tokens per token kind.
    #[arg(long, env = "LOADTEST_POOL_SIZE")]
    pool_size: Option<usize>,
    /// Driver threads (each a current-thread runtime with its own connections).
    #[arg(long)]
    driver_threads: Option<usize>,
    /// Connections (= requests in flight) the driver may open per cell.
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Envoy worker threads per gateway.
    #[arg(long)]
    envoy_workers: Option<u32>,
    /// Where report.json, report.md, report.html and the charts go.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Drive an already running gateway (e.g. the compose stack) at this URL instead of
    /// starting the native stack; needs --target-gateway and --keycloak.
    #[arg(long, requires_all = ["target_gateway", "keycloak"])]
    target: Option<String>,
    /// With --target: which gateway template it runs (decides the expected outcomes).
    #[arg(long)]
    target_gateway: Option<String>,
    /// With --target: Keycloak's URL, as the gateway's issuer names it.
    #[arg(long)]
    keycloak: Option<String>,
    /// With --target: the gateway's back-channel logout URL as Keycloak reaches it (the
    /// compose stack: http://envoy:10001/backchannel-logout), registered at the minting client
    /// for the run; api-logged-out on jwt or hybrid needs it.
    #[arg(long, requires = "target")]
    target_logout_url: Option<String>,
    /// Sessions the logout-to-refusal time is measured over, per gateway (default 20).
    #[arg(long)]
    logout_sessions: Option<usize>,
    /// Instead of the matrix: step the rate up per gateway until p99 exceeds --slo-ms or the
    /// run turns invalid, and print the highest sustainable rate side by side.
    #[arg(long)]
    find_max: bool,
    #[arg(long, default_value_t = 10.0)]
    slo_ms: f64,
    #[arg(long, default_value_t = 250.0)]
    start_rate: f64,
    #[arg(long, default_value_t = 1.4)]
    factor: f64,
    #[arg(long, default_value_t = 20000.0)]
    max_rate: f64,
    /// Patch a gateway's plugin configuration (RFC 7386 merge patch), e.g.
    /// `--patch 'introspect={"introspection":{"cache_ttl_seconds":30}}'`. Repeatable.
    #[arg(long = "patch", value_parser = parse_patch)]
    patches: Vec<(String, serde_json::Value)>,
    /// No progress bar (for logs).
    #[arg(long)]
    no_progress: bool,
}

fn parse_patch(text: &str) -> std::result::Result<(String, serde_json::Value), String> {
    let (gateway, json) = text
        .split_once('=')
        .ok_or_else(|| "expected GATEWAY=JSON".to_owned())?;
    let patch: serde_json::Value =
        serde_json::from_str(json).map_err(|err| format!("patch for {gateway}: {err}"))?;
    if !patch.is_object() {
        return Err(format!("patch for {gateway} must be a JSON object"));
    }
    Ok((gateway.to_owned(), patch))
}

#[derive(Clone, Copy, ValueEnum)]
enum Profile {
    /// Service hostnames of compose/docker-compose.yml.
    Compose,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => return run(*args),
        Command::Differential(args) => match loadtest::differential::cli::main(args) {
            Ok(code) => return code,
            Err(err) => Err(err),
        },
        Command::Soak(args) => match loadtest::soak::cli::main(args) {
            Ok(code) => return code,
            Err(err) => Err(err),
        },
        Command::Up {
            gateway,
            envoy_workers,
        } => up(&gateway, envoy_workers),
        Command::Keycloak { env_file } => keycloak(env_file),
        Command::HostCases { table, out } => host_cases(table, &out),
        Command::Render {
            gateway,
            profile,
            out,
            envoy_dir,
            wasm_path,
            backchannel_logout,
        } => render_templates(
            &gateway,
            profile,
            &out,
            envoy_dir,
            wasm_path,
            backchannel_logout,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadtest: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn host_cases(table: Option<PathBuf>, out: &std::path::Path) -> Result<()> {
    let table = table.unwrap_or_else(|| loadtest::paths::repo_root().join("hosts/cases.json"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let concrete = loadtest::host_cases::generate_file(&table, i64::try_from(now)?)?;
    let text = serde_json::to_string_pretty(&concrete)?;
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{} cases, {} bad configurations -> {}",
        concrete.cases.len(),
        concrete.bad_configs.len(),
        out.display()
    );
    Ok(())
}

fn run(args: RunArgs) -> ExitCode {
    match run_matrix(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("loadtest: {err:#}");
            ExitCode::from(report::exit::FAILURE)
        }
    }
}

/// The profile's matrix, changed by the flags given.
fn matrix_config(args: &RunArgs) -> Result<MatrixConfig> {
    let mut config = MatrixConfig::for_profile(args.profile, args.out.clone());
    if !args.gateways.is_empty() {
        config.gateways = args.gateways.clone();
    }
    if !args.scenarios.is_empty() {
        config.scenarios = args
            .scenarios
            .iter()
            .map(|name| {
                Scenario::parse(name).ok_or_else(|| anyhow::anyhow!("unknown scenario `{name}`"))
            })
            .collect::<Result<_>>()?;
    }
    if !args.rates.is_empty() {
        config.rates = args.rates.clone();
        config.policy_rates = args.rates.clone();
    }
    if !args.policy_rates.is_empty() {
        config.policy_rates = args.policy_rates.clone();
    }
    if !args.idp_rates.is_empty() {
        config.idp_rates = args.idp_rates.clone();
    }
    let seconds =
        |value: Option<f64>, default: Duration| value.map_or(default, Duration::from_secs_f64);
    config.duration = seconds(args.duration, config.duration);
    config.warmup = seconds(args.warmup, config.warmup);
    config.pool_size = args.pool_size.unwrap_or(config.pool_size);
    config.driver_threads = args.driver_threads.unwrap_or(config.driver_threads);
    config.max_in_flight = args.max_in_flight.unwrap_or(config.max_in_flight);
    config.envoy_workers = args.envoy_workers.unwrap_or(config.envoy_workers);
    config.progress = !args.no_progress;
    config.patches = args.patches.clone();
    config.logout_sessions = args.logout_sessions.unwrap_or(config.logout_sessions);
    if let (Some(url), Some(gateway), Some(keycloak)) =
        (&args.target, &args.target_gateway, &args.keycloak)
    {
        config.target = Some(ExternalTarget {
            gateway_url: url.clone(),
            gateway: gateway.clone(),
            keycloak_url: keycloak.clone(),
            logout_url: args.target_logout_url.clone(),
        });
    }
    Ok(config)
}

fn run_matrix(args: RunArgs) -> Result<u8> {
    let config = matrix_config(&args)?;
    if args.find_max {
        let report = findmax::run(&FindMaxConfig {
            start_rate: args.start_rate,
            factor: args.factor,
            max_rate: args.max_rate,
            slo_p99: Duration::from_secs_f64(args.slo_ms / 1000.0),
            step: config,
        })?;
        println!("{}", report.text());
        return Ok(report::exit::OK);
    }
    let report = matrix::run(&config)?;
    print!("{}", report.terminal_summary(&config.out));
    Ok(report.exit_code())
}

/// Blocks until Ctrl-C or SIGTERM.
fn wait_for_shutdown() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = term.recv() => {}
        }
        Ok(())
    })
}

fn up(gateways: &[String], envoy_workers: u32) -> Result<()> {
    let options = StackOptions {
        envoy_workers,
        ..StackOptions::default()
    };
    eprintln!(
        "starting Keycloak, the backend and {} ...",
        gateways.join(", ")
    );
    let stack = NativeStack::start(gateways, &options)?;
    println!("{}", stack.describe());
    println!("Ctrl-C stops everything.");
    wait_for_shutdown()?;
    eprintln!("stopping ...");
    drop(stack);
    Ok(())
}

fn keycloak(env_file: Option<PathBuf>) -> Result<()> {
    let dir = loadtest::paths::run_dir("keycloak");
    let keycloak = Keycloak::start(&dir)?;
    let mut lines = vec![format!("TOKENGATE_KEYCLOAK_URL={}", keycloak.base_url())];
    if let Some(management) = keycloak.management_url() {
        lines.push(format!("TOKENGATE_KEYCLOAK_MANAGEMENT_URL={management}"));
    }
    let text = lines.join("\n") + "\n";
    if let Some(path) = env_file {
        // Written whole, then renamed: a reader never sees half a file.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &text)
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &path)?;
    }
    print!("{text}");
    if let (Some(preparation), Some(database), Some(start)) = (
        keycloak.preparation_duration(),
        keycloak.database_preparation_duration(),
        keycloak.startup_duration(),
    ) {
        eprintln!(
            "Keycloak ready in {start:.1?} after {preparation:.1?} of preparation (database \
             {database:.1?}); Ctrl-C or SIGTERM stops it"
        );
    }
    wait_for_shutdown()?;
    keycloak.stop()
}

fn render_templates(
    gateways: &[String],
    profile: Profile,
    out: &std::path::Path,
    envoy_dir: Option<PathBuf>,
    wasm_path: Option<String>,
    backchannel_logout: bool,
) -> Result<()> {
    let envoy_dir = envoy_dir.unwrap_or_else(|| loadtest::paths::repo_root().join("envoy"));
    let mut topology = match profile {
        Profile::Compose => Topology::compose(),
    };
    if let Some(wasm_path) = wasm_path {
        topology.wasm_path = wasm_path;
    }
    let names = if gateways.is_empty() {
        render::gateways(&envoy_dir)?
    } else {
        gateways.to_vec()
    };
    for name in names {
        let receives_logouts =
            matrix::scenario::profile(&name).is_some_and(|profile| profile.receives_logouts);
        let text = if backchannel_logout && receives_logouts {
            loadtest::render_logout::render_with_logout(&envoy_dir, &name, &topology, None)?
        } else {
            render::render_gateway(&envoy_dir, &name, &topology, None)?
        };
        let path = render::write_rendered(out, &name, &text)?;
        println!("{}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(argv: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["loadtest", "run"].iter().chain(argv)).unwrap();
        match cli.command {
            Command::Run(args) => *args,
            _ => unreachable!(),
        }
    }

    /// The CLI's defaults are the profile's: `loadtest run` with no flags is the default
    /// matrix, `--profile full` today's whole matrix.
    #[test]
    fn no_flags_yield_the_profile_s_matrix() {
        for (argv, profile) in [
            (&[][..], matrix::Profile::Default),
            (&["--profile", "quick"][..], matrix::Profile::Quick),
            (&["--profile", "full"][..], matrix::Profile::Full),
        ] {
            let config = matrix_config(&run_args(argv)).unwrap();
            let mut expected = MatrixConfig::for_profile(profile, PathBuf::from("out"));
            expected.progress = true;
            assert_eq!(config, expected, "{argv:?}");
        }
        assert_eq!(
            MatrixConfig::default_matrix(PathBuf::from("out")),
            MatrixConfig::for_profile(matrix::Profile::Full, PathBuf::from("out"))
        );
    }

    #[test]
    fn flags_change_the_profile_s_settings() {
        let config = matrix_config(&run_args(&[
            "--rates",
            "20,100",
            "--duration",
            "1",
            "--gateways",
            "jwt",
        ]))
        .unwrap();
        assert_eq!(config.profile, matrix::Profile::Default);
        assert_eq!(config.rates, vec![20.0, 100.0]);
        assert_eq!(config.policy_rates, vec![20.0, 100.0]);
        assert_eq!(config.idp_rates, vec![matrix::IDP_RATE]);
        assert_eq!(config.duration, Duration::from_secs(1));
        assert_eq!(config.gateways, vec!["jwt".to_owned()]);
    }
}

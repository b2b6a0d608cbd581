//! Command-line options and their environment fallbacks (flags win over the environment).

use clap::{CommandFactory, FromArgMatches, Parser};

use super::*;

/// Envoy CPU time per request at one Envoy worker, for each gateway side by side.
#[derive(Debug, Parser)]
#[command(name = "envoy_cpu")]
pub(crate) struct Args {
    /// Scenarios to run, comma-separated (default: all); see the list below.
    #[arg(long, value_name = "SCENARIO,...", env = "ENVOY_CPU_ONLY")]
    only: Option<String>,
    /// More scenarios to run, as with --only (`cargo bench`'s filter position).
    #[arg(value_name = "SCENARIO")]
    filters: Vec<String>,
    /// The measured window, in seconds.
    #[arg(long, value_name = "SECS", env = "ENVOY_CPU_WINDOW", default_value = "5",
          value_parser = positive_seconds)]
    window: Duration,
    /// Warm-up before each window, in seconds (may be 0).
    #[arg(long, value_name = "SECS", env = "ENVOY_CPU_WARMUP", default_value = "1",
          value_parser = seconds)]
    warmup: Duration,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, value_name = "N", env = "ENVOY_CPU_CONNECTIONS", default_value = "16",
          value_parser = at_least_one)]
    connections: usize,
    /// Distinct tokens for the unique scenarios.
    #[arg(long, value_name = "N", env = "ENVOY_CPU_TOKENS", default_value = "12000",
          value_parser = at_least_one)]
    tokens: usize,
    /// The scenario list N times, interleaved; each scenario reports its median round and the
    /// spread.
    #[arg(long, value_name = "N", env = "ENVOY_CPU_ROUNDS", default_value = "1",
          value_parser = at_least_one)]
    rounds: usize,
    /// Envoy answers 200 itself, no backend: only the filters' and Envoy's own work per
    /// request. The environment variable turns it on with any value but `0`.
    #[arg(long, env = "ENVOY_CPU_DIRECT_RESPONSE", num_args = 0, default_missing_value = "1",
          value_parser = switch, action = clap::ArgAction::Set, default_value = "0")]
    direct_response: bool,
    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

pub(crate) struct Options {
    pub(crate) scenarios: Vec<&'static Scenario>,
    pub(crate) window: Duration,
    pub(crate) warmup: Duration,
    pub(crate) connections: usize,
    pub(crate) unique_tokens: usize,
    /// Answer from Envoy's route (`direct_response`) instead of proxying to the backend.
    pub(crate) direct_response: bool,
    /// Times the whole scenario list runs, interleaved; each scenario reports its median round.
    pub(crate) rounds: usize,
}

/// The environment fallbacks; an empty one counts as unset.
const ENVIRONMENT: [&str; 7] = [
    "ENVOY_CPU_ONLY",
    "ENVOY_CPU_WINDOW",
    "ENVOY_CPU_WARMUP",
    "ENVOY_CPU_CONNECTIONS",
    "ENVOY_CPU_TOKENS",
    "ENVOY_CPU_ROUNDS",
    "ENVOY_CPU_DIRECT_RESPONSE",
];

/// Parses the command line (exits on `--help` or a malformed flag, as clap does).
///
/// Must run before this process starts any thread: it may remove environment variables.
pub(crate) fn parse_options() -> Result<Options> {
    for name in ENVIRONMENT {
        if std::env::var_os(name).is_some_and(|value| value.is_empty()) {
            // SAFETY: called from main before any other thread exists, so nothing reads the
            // environment concurrently. clap would read the empty value as one.
            unsafe { std::env::remove_var(name) };
        }
    }
    let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
    let command = Args::command().after_help(format!("scenarios: {}", names.join(", ")));
    let args = Args::from_arg_matches(&command.get_matches()).map_err(|e| e.exit())?;
    Options::from_args(args)
}

impl Options {
    fn from_args(args: Args) -> Result<Options> {
        let mut names: Vec<String> = args.only.into_iter().collect();
        names.extend(args.filters);
        let scenarios = if names.is_empty() {
            SCENARIOS.iter().collect()
        } else {
            select_scenarios(&names.join(","))?
        };
        Ok(Options {
            scenarios,
            window: args.window,
            warmup: args.warmup,
            connections: args.connections,
            unique_tokens: args.tokens,
            direct_response: args.direct_response,
            rounds: args.rounds,
        })
    }
}

pub(crate) fn select_scenarios(list: &str) -> Result<Vec<&'static Scenario>> {
    let mut selected: Vec<&'static Scenario> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let scenario = SCENARIOS.iter().find(|s| s.name == name).with_context(|| {
            format!(
                "unknown scenario {name:?}; choose from {}",
                SCENARIOS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if !selected.iter().any(|s| s.name == scenario.name) {
            selected.push(scenario);
        }
    }
    if selected.is_empty() {
        bail!("--only selects no scenario");
    }
    // Always in the canonical order, so tables from different runs line up.
    selected.sort_by_key(|s| SCENARIOS.iter().position(|c| c.name == s.name));
    Ok(selected)
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    let seconds = text
        .parse::<f64>()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("must be a non-negative number of seconds, got {seconds}"))
}

fn positive_seconds(text: &str) -> Result<Duration, String> {
    match seconds(text)? {
        d if d.is_zero() => Err(format!("must be a positive number of seconds, got {text}")),
        d => Ok(d),
    }
}

/// The old parser's reading of `ENVOY_CPU_DIRECT_RESPONSE`: any value but `0` turns it on.
fn switch(text: &str) -> Result<bool, String> {
    Ok(text != "0")
}

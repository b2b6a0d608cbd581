//! Command-line options and their environment fallbacks.

use super::*;

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

pub(crate) fn parse_options() -> Result<Options> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut only = env("ENVOY_CPU_ONLY");
    let mut window = env("ENVOY_CPU_WINDOW");
    let mut warmup = env("ENVOY_CPU_WARMUP");
    let mut connections = env("ENVOY_CPU_CONNECTIONS");
    let mut tokens = env("ENVOY_CPU_TOKENS");
    let mut rounds = env("ENVOY_CPU_ROUNDS");
    let mut direct_response = env("ENVOY_CPU_DIRECT_RESPONSE").is_some_and(|v| v != "0");

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--only" => only = Some(value()?),
            "--window" => window = Some(value()?),
            "--warmup" => warmup = Some(value()?),
            "--connections" => connections = Some(value()?),
            "--tokens" => tokens = Some(value()?),
            "--rounds" => rounds = Some(value()?),
            "--direct-response" => direct_response = true,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                println!(
                    "scenarios: {}",
                    SCENARIOS
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }

    let scenarios = match only {
        None => SCENARIOS.iter().collect(),
        Some(list) => select_scenarios(&list)?,
    };
    let connections = parse_number(connections.as_deref(), "connections", 16)?;
    if connections == 0 {
        bail!("--connections must be at least 1");
    }
    let unique_tokens = parse_number(tokens.as_deref(), "tokens", 12_000)?;
    if unique_tokens == 0 {
        bail!("--tokens must be at least 1");
    }
    let rounds = parse_number(rounds.as_deref(), "rounds", 1)?;
    if rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    Ok(Options {
        rounds,
        scenarios,
        window: parse_seconds(window.as_deref(), "window", 5.0)?,
        warmup: parse_seconds(warmup.as_deref(), "warmup", 1.0)?,
        connections,
        unique_tokens,
        direct_response,
    })
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

pub(crate) fn parse_number(text: Option<&str>, what: &str, default: usize) -> Result<usize> {
    match text {
        None => Ok(default),
        Some(text) => text
            .parse()
            .with_context(|| format!("{what} {text:?} is not a whole number")),
    }
}

pub(crate) fn parse_seconds(text: Option<&str>, what: &str, default: f64) -> Result<Duration> {
    let seconds = match text {
        None => default,
        Some(text) => text
            .parse::<f64>()
            .with_context(|| format!("{what} {text:?} is not a number of seconds"))?,
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero() || what == "warmup")
        .with_context(|| format!("{what} must be a positive number of seconds, got {seconds}"))
}

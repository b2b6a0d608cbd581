//! The wasmtime tier: runs the host cases (`loadtest host-cases`) against a build of the
//! filter inside `proxy-wasm-host` (wasmtime).
//!
//! ```sh
//! tokengate-host-wasmtime --cases cases.concrete.json --wasm tokengate.wasm --label fast
//! ```
//!
//! Prints one line per case (PASS, FAIL, UNSUPPORTED with the missing needs, KNOWN FAILURE
//! with the reported bug) and a closing `N passed, N failed, N skipped` line; exits 1 when
//! any case failed (a known failure that passes counts as failed: its mark must go).

mod check;
mod host;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use host::{Runtime, Start, World};
use tokengate_host_cases::{Case, Concrete, Need};

/// The tier's name in the cases' `known_failures`.
const TIER: &str = "wasmtime";

/// What this host supports: everything. The clock
/// is virtual (the wall clock at the case's start, moved on by ticks), ticks are delivered by
/// the harness at the period the plugin asked for, two VMs share one in-memory store.
const SUPPORTED: [Need; 5] = [
    Need::Clock,
    Need::HttpCall,
    Need::Tick,
    Need::TwoVms,
    Need::TwoRoots,
];

/// Cases older than this may hold tokens whose times have moved (a `nbf` reached).
const MAX_AGE_SECONDS: i64 = 900;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

struct Args {
    cases: PathBuf,
    wasm: PathBuf,
    label: String,
}

fn args() -> Result<Args> {
    let mut cases = None;
    let mut wasm = None;
    let mut label = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--cases" => cases = Some(PathBuf::from(value)),
            "--wasm" => wasm = Some(PathBuf::from(value)),
            "--label" => label = Some(value),
            other => bail!("unknown argument {other} (--cases FILE --wasm FILE --label NAME)"),
        }
    }
    Ok(Args {
        cases: cases.context("--cases FILE is required")?,
        wasm: wasm.context("--wasm FILE is required")?,
        label: label.unwrap_or_else(|| "wasm".to_owned()),
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("wasmtime tier: {err:#}");
            ExitCode::from(1)
        }
    }
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    unsupported: usize,
    known: usize,
}

fn run() -> Result<bool> {
    let args = args()?;
    let text = std::fs::read_to_string(&args.cases)
        .with_context(|| format!("reading {}", args.cases.display()))?;
    let concrete: Concrete = serde_json::from_str(&text).context("the cases do not parse")?;
    let age = unix_now() - concrete.generated_at;
    if !(0..=MAX_AGE_SECONDS).contains(&age) {
        bail!(
            "the cases were generated {age} s ago: their times are relative to then, \
             regenerate them (loadtest host-cases)"
        );
    }
    let wasm =
        std::fs::read(&args.wasm).with_context(|| format!("reading {}", args.wasm.display()))?;
    let started = Instant::now();
    let runtime = Runtime::new(&wasm)
        .with_context(|| format!("loading {} into wasmtime", args.wasm.display()))?;
    println!(
        "wasmtime/{}: {} compiled in {:.2} s",
        args.label,
        args.wasm.display(),
        started.elapsed().as_secs_f64()
    );
    let label = &args.label;
    let mut tally = Tally::default();

    for bad in &concrete.bad_configs {
        let name = format!("bad configuration: {}", bad.name);
        match refused_with(&runtime, &bad.config, &bad.log) {
            Ok(()) => {
                tally.passed += 1;
                println!("PASS  wasmtime/{label}: {name}");
            }
            Err(err) => {
                tally.failed += 1;
                println!("FAIL  wasmtime/{label}: {name}: {err:#}");
            }
        }
    }

    for case in &concrete.cases {
        let missing: Vec<&str> = case
            .missing(&SUPPORTED)
            .into_iter()
            .map(Need::as_str)
            .collect();
        if !missing.is_empty() {
            tally.unsupported += 1;
            println!(
                "UNSUPPORTED  wasmtime/{label}: {} (needs {missing:?})",
                case.name
            );
            continue;
        }
        let started = Instant::now();
        let result = run_case(&runtime, &concrete, case);
        let took = started.elapsed().as_secs_f64();
        match (result, case.known_failures.get(TIER)) {
            (Ok(()), None) => {
                tally.passed += 1;
                println!("PASS  wasmtime/{label}: {} ({took:.2} s)", case.name);
            }
            (Err(err), None) => {
                tally.failed += 1;
                println!("FAIL  wasmtime/{label}: {}: {err:#}", case.name);
            }
            (Err(err), Some(reason)) => {
                tally.known += 1;
                println!(
                    "KNOWN FAILURE  wasmtime/{label}: {} ({reason}): {err:#}",
                    case.name
                );
            }
            (Ok(()), Some(reason)) => {
                tally.failed += 1;
                println!(
                    "FAIL  wasmtime/{label}: {} passes but is marked as a known failure \
                     ({reason}): remove the mark",
                    case.name
                );
            }
        }
    }
    println!(
        "wasmtime/{label}: {} unsupported, {} known failures",
        tally.unsupported, tally.known
    );
    println!(
        "wasmtime-{label}: {} passed, {} failed, {} skipped",
        tally.passed,
        tally.failed,
        tally.unsupported + tally.known
    );
    Ok(tally.failed == 0)
}

fn refused_with(runtime: &Runtime, config: &serde_json::Value, log: &str) -> Result<()> {
    match World::start(runtime, &[config], 1, BTreeMap::new())? {
        Start::Serving(_) => bail!("on_configure accepted it"),
        Start::Refused(world) => {
            let text = world.log.text();
            if !text.contains(log) {
                bail!("refused, but the log does not say `{log}`:\n{text}");
            }
            Ok(())
        }
    }
}

fn run_case(runtime: &Runtime, concrete: &Concrete, case: &Case) -> Result<()> {
    let names: Vec<&String> = if case.roots.is_empty() {
        vec![&case.config]
    } else {
        case.roots.iter().collect()
    };
    let mut configs = Vec::new();
    for name in names {
        configs.push(
            concrete
                .configs
                .get(name)
                .with_context(|| format!("no configuration `{name}`"))?,
        );
    }
    let mut world = match World::start(runtime, &configs, case.vms, case.idp.clone())? {
        Start::Serving(world) => world,
        Start::Refused(world) => bail!(
            "the plugin refused its configuration:\n{}",
            world.log.text()
        ),
    };
    let calls_at_start = BTreeMap::new();
    for (index, step) in case.steps.iter().enumerate() {
        check::step(&mut world, step).with_context(|| format!("step {index}"))?;
    }
    if let Some(totals) = &case.expect_total {
        check::calls(&totals.idp_calls, &calls_at_start, &world.idp_calls)
            .context("over the whole case")?;
    }
    let log = world.log.text();
    for (name, token) in &concrete.tokens {
        if token.len() >= 16 && log.contains(token.as_str()) {
            bail!("token `{name}` leaked into the log");
        }
    }
    Ok(())
}

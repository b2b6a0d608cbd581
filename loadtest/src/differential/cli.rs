//! `loadtest differential`: the comparison at any size, outside the test suite.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::{Options, run};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cases in all (the fixed edge cases first, then seeded random ones).
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Seed of the random cases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests in flight per listener.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Merge this JSON into tokengate's configuration (e.g. '{"clock_skew_seconds":60}' to
    /// watch the comparison fail).
    #[arg(long)]
    pub tokengate_patch: Option<String>,
    /// Also write the report (Markdown) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Exit code 0 when nothing unintended was found, 2 otherwise.
pub fn main(args: Args) -> Result<ExitCode> {
    let tokengate_patch = args
        .tokengate_patch
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .context("--tokengate-patch is not JSON")?;
    let options = Options {
        seed: args.seed,
        count: args.count,
        concurrency: args.concurrency,
        tokengate_patch,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the runtime")?;
    let report = runtime.block_on(run(&options))?;
    let text = report.render();
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

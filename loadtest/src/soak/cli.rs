//! `loadtest soak`: the long run, bounded in tokens and time, stopping by itself.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Options, run};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Distinct valid tokens per valid phase (the run sends two such phases).
    #[arg(long, default_value_t = 1_000_000)]
    pub valid: u64,
    /// Distinct invalid tokens (bad signatures).
    #[arg(long, default_value_t = 1_000_000)]
    pub invalid: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// tokengate's cache.max_entries.
    #[arg(long, default_value_t = 4096)]
    pub cache_entries: u64,
    /// Readings per phase.
    #[arg(long, default_value_t = 10)]
    pub checkpoints: u64,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub max_seconds: u64,
    /// Threads signing the valid tokens.
    #[arg(long, default_value_t = 1)]
    pub minting_threads: usize,
}

/// Exit code 0 when no request failed and the cache stayed within its bound, 2 otherwise.
pub fn main(args: Args) -> Result<ExitCode> {
    let options = Options {
        valid: args.valid,
        invalid: args.invalid,
        connections: args.connections,
        cache_entries: args.cache_entries,
        checkpoints: args.checkpoints,
        max_duration: Duration::from_secs(args.max_seconds),
        minting_threads: args.minting_threads,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("building the runtime")?;
    let report = runtime.block_on(run(&options))?;
    println!("{}", report.render());
    if let Some((after_fill, end)) = report.rss_after_fill_and_end(options.valid / 10) {
        println!(
            "RSS after the first tenth of the first phase {} MiB, at the end {} MiB",
            after_fill / 1024,
            end / 1024
        );
    }
    let ok = report.errors() == 0 && report.max_cache_entries() <= options.cache_entries;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

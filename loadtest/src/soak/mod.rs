//! Soak: many distinct tokens through one Envoy worker running tokengate, as fast as it
//! answers, watching Envoy's resident memory, the filter's cache gauge, errors and latency.
//!
//! Phases: `valid` tokens twice (the second pass shows whether memory keeps growing once the
//! cache is full), then `invalid` ones (bad signatures, never cached). Valid tokens are EdDSA
//! with a distinct `jti`, signed by a pool of threads ahead of the sender (Ed25519 signing is
//! tens of microseconds, RSA milliseconds); an invalid token is a valid token's header and
//! signature around another token's payload, so it costs no signing at all.

pub mod cli;
mod mint;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::differential::stack::{CERTS, published_keys};
use crate::jwks_server::JwksServer;
use crate::process::ManagedProcess;
use crate::stack::{GatewaySpec, RunningGateway, start_gateway};

pub const CACHE_GAUGE: &str = "wasmcustom.tokengate.cache.entries";

#[derive(Debug, Clone)]
pub struct Options {
    /// Distinct valid tokens per valid phase (two such phases).
    pub valid: u64,
    /// Distinct invalid tokens.
    pub invalid: u64,
    /// Connections kept busy (requests in flight).
    pub connections: usize,
    /// tokengate's `cache.max_entries`.
    pub cache_entries: u64,
    /// Checkpoints per phase (RSS, cache gauge, latency window).
    pub checkpoints: u64,
    /// The whole run stops (and fails) after this long.
    pub max_duration: Duration,
    /// Threads signing valid tokens.
    pub minting_threads: usize,
}

/// One reading, taken after `sent` tokens of `phase`.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub phase: &'static str,
    pub sent: u64,
    /// Tokens sent since the run began.
    pub total: u64,
    pub rss_kib: u64,
    pub cache_entries: u64,
    /// Answers not as expected (valid: 200, invalid: 401) and transport errors, so far.
    pub errors: u64,
    pub rate: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub rss_at_start_kib: u64,
    pub checkpoints: Vec<Checkpoint>,
    pub first_error: Option<String>,
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = format!(
            "Envoy RSS before the first token: {} MiB\n\n\
             | phase | tokens | total | RSS MiB | cache entries | errors | req/s | p50 µs | p99 µs | max µs |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            self.rss_at_start_kib / 1024
        );
        for c in &self.checkpoints {
            out.push_str(&format!(
                "| {} | {} | {} | {:.1} | {} | {} | {:.0} | {} | {} | {} |\n",
                c.phase,
                c.sent,
                c.total,
                c.rss_kib as f64 / 1024.0,
                c.cache_entries,
                c.errors,
                c.rate,
                c.p50_us,
                c.p99_us,
                c.max_us
            ));
        }
        if let Some(error) = &self.first_error {
            out.push_str(&format!("\nfirst error: {error}\n"));
        }
        out
    }

    pub fn errors(&self) -> u64 {
        self.checkpoints.last().map_or(0, |c| c.errors)
    }

    pub fn max_cache_entries(&self) -> u64 {
        self.checkpoints
            .iter()
            .map(|c| c.cache_entries)
            .max()
            .unwrap_or(0)
    }

    /// RSS when `phase` began (the previous phase's last reading) and at its last reading.
    /// Over `valid again` the cache is full from its first token: a bounded cache keeps RSS
    /// flat there, one that never evicts grows it by every entry it keeps.
    pub fn rss_over_phase(&self, phase: &str) -> Option<(u64, u64)> {
        let first = self.checkpoints.iter().position(|c| c.phase == phase)?;
        let before = self.checkpoints.get(first.checked_sub(1)?)?;
        let end = self.checkpoints.iter().rfind(|c| c.phase == phase)?;
        Some((before.rss_kib, end.rss_kib))
    }

    /// RSS at the first checkpoint after `fill` tokens (the caches full, the allocator warm),
    /// and at the end: a leak shows as the end far above the former.
    pub fn rss_after_fill_and_end(&self, fill: u64) -> Option<(u64, u64)> {
        let after = self.checkpoints.iter().find(|c| c.total >= fill)?;
        let end = self.checkpoints.last()?;
        Some((after.rss_kib, end.rss_kib))
    }
}

/// Envoy's resident set, from /proc.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc status")
}

struct Stack {
    _backend: ManagedProcess,
    _idp: JwksServer,
    gateway: RunningGateway,
}

fn start(options: &Options) -> Result<(Stack, String)> {
    let dir = crate::paths::run_dir("soak");
    let (backend, backend_addr) = crate::backend::spawn(&dir, "backend", 1)?;
    let mut idp = JwksServer::reserve()?;
    idp.set_response(CERTS, 200, published_keys());
    idp.start()?;
    let spec = GatewaySpec::new("jwt").concurrency(1).patch(json!({
        "algorithms": ["RS256", "ES256", "EdDSA"],
        "cache": {"max_entries": options.cache_entries},
    }));
    let gateway = start_gateway(&dir, &spec, backend_addr.port(), idp.port())?;
    let issuer = format!("http://127.0.0.1:{}/realms/tokengate", idp.port());
    Ok((
        Stack {
            _backend: backend,
            _idp: idp,
            gateway,
        },
        issuer,
    ))
}

/// Runs every phase; fails only when the stack cannot run (the caller judges the report).
pub async fn run(options: &Options) -> Result<Report> {
    let deadline = Instant::now() + options.max_duration;
    let (stack, issuer) = start(options)?;
    let envoy = &stack.gateway.envoy;
    envoy
        .wait_for_stat(
            "wasmcustom.tokengate.jwks.keys_loaded",
            1,
            Duration::from_secs(30),
        )
        .await
        .context("tokengate never loaded the key set")?;
    let pid = envoy.process().pid();
    let url = stack.gateway.url("/orders/42");
    let mut report = Report {
        rss_at_start_kib: rss_kib(pid)?,
        ..Report::default()
    };
    let errors = Arc::new(AtomicU64::new(0));
    let mut total = 0;
    let phases: [(&'static str, u64, u64); 3] = [
        ("valid", options.valid, 0),
        ("valid again", options.valid, options.valid),
        ("invalid", options.invalid, 0),
    ];
    for (phase, count, offset) in phases {
        if count == 0 {
            continue;
        }
        let tokens = if phase == "invalid" {
            mint::invalid(&issuer, count)
        } else {
            mint::valid(&issuer, offset, count, options.minting_threads)
        };
        let step = count.div_ceil(options.checkpoints.max(1));
        let mut sent = 0;
        while sent < count {
            if Instant::now() > deadline {
                bail!(
                    "soak stopped after {:?} at {phase} {sent}:\n{}",
                    options.max_duration,
                    report.render()
                );
            }
            let batch = step.min(count - sent);
            let expected = if phase == "invalid" { 401 } else { 200 };
            let window = send(
                &url,
                &tokens,
                batch,
                expected,
                options.connections,
                &errors,
                &mut report,
            )
            .await?;
            sent += batch;
            total += batch;
            report.checkpoints.push(Checkpoint {
                phase,
                sent,
                total,
                rss_kib: rss_kib(pid)?,
                cache_entries: envoy.stat(CACHE_GAUGE).await?,
                errors: errors.load(Ordering::Relaxed),
                rate: window.rate,
                p50_us: window.p50_us,
                p99_us: window.p99_us,
                max_us: window.max_us,
            });
        }
    }
    Ok(report)
}

struct Window {
    rate: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// Sends the next `count` tokens from `tokens` over `connections` keep-alive connections.
async fn send(
    url: &str,
    tokens: &mint::Supply,
    count: u64,
    expected: u16,
    connections: usize,
    errors: &Arc<AtomicU64>,
    report: &mut Report,
) -> Result<Window> {
    let started = Instant::now();
    let remaining = Arc::new(AtomicU64::new(count));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (url, tokens, remaining, errors) = (
            url.to_owned(),
            tokens.clone(),
            Arc::clone(&remaining),
            Arc::clone(errors),
        );
        tasks.spawn(async move {
            // One client per task: its one pooled connection is reused request after request.
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            let mut histogram = hdrhistogram::Histogram::<u64>::new(3).ok();
            let mut first_error = None;
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let Some(token) = tokens.next().await else {
                    break;
                };
                let request = hyper::Request::get(&url)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::new(Bytes::new()));
                let begun = Instant::now();
                let outcome = match request {
                    Ok(request) => match client.request(request).await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.into_body().collect().await;
                            (status == expected)
                                .then_some(())
                                .ok_or(format!("status {status}"))
                        }
                        Err(err) => Err(format!("request failed: {err}")),
                    },
                    Err(err) => Err(format!("request not built: {err}")),
                };
                let micros = u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let Some(h) = histogram.as_mut() {
                    let _ = h.record(micros.max(1));
                }
                if let Err(error) = outcome {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.get_or_insert(error);
                }
            }
            (histogram, first_error)
        });
    }
    let mut merged = hdrhistogram::Histogram::<u64>::new(3).context("histogram")?;
    while let Some(joined) = tasks.join_next().await {
        let (histogram, first_error) = joined.context("a sender task failed")?;
        if let Some(h) = histogram {
            let _ = merged.add(h);
        }
        if report.first_error.is_none() {
            report.first_error = first_error;
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-6);
    Ok(Window {
        rate: count as f64 / seconds,
        p50_us: merged.value_at_quantile(0.5),
        p99_us: merged.value_at_quantile(0.99),
        max_us: merged.max(),
    })
}

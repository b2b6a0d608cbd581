//! `--find-max`: the highest rate each gateway sustains with a valid token, stepping the rate
//! up until p99 exceeds the SLO or the run stops being valid.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use serde_json::json;

use crate::driver::{self, ExpectStatus, RequestSource, RequestTemplate, RoundRobin, Thresholds};
use crate::keycloak::KeycloakClient;
use crate::matrix::report::{self, Health, render_table};
use crate::matrix::scenario::TokenKind;
use crate::matrix::tokens::TokenPools;
use crate::matrix::{MatrixConfig, driver_config, resolve};
use crate::stack::{GatewaySpec, NativeStack, StackOptions};

/// A step the driver could not keep (a preempted driver thread on a busy machine, not the
/// gateway's doing) is measured again this many times before the search stops there.
const DRIVER_RETRIES: usize = 2;

/// What the search does after measuring one step.
#[derive(Debug, PartialEq)]
enum Next {
    /// The gateway sustained the rate: record it and step up.
    Sustained,
    /// The driver could not keep the schedule: measure the same rate again.
    Again,
    /// The search ends here, for this reason.
    Stop(String),
}

fn judge_step(
    health: &Health,
    p99_us: u64,
    slo_us: u64,
    unexpected: u64,
    rate: f64,
    driver_retries_left: usize,
) -> Next {
    match (health, p99_us <= slo_us, unexpected) {
        (Health::Valid, true, 0) => Next::Sustained,
        (Health::Valid, false, _) => Next::Stop(format!(
            "p99 {:.2} ms over the SLO at {rate:.0} req/s",
            p99_us as f64 / 1000.0
        )),
        (_, _, n) if n > 0 => Next::Stop(format!("{n} unexpected answers at {rate:.0} req/s")),
        (Health::Saturated { reasons }, _, _) => Next::Stop(format!(
            "saturated at {rate:.0} req/s: {}",
            reasons.join("; ")
        )),
        (Health::DriverLimited { .. }, _, _) if driver_retries_left > 0 => Next::Again,
        (Health::DriverLimited { reasons }, _, _) => Next::Stop(format!(
            "driver limited at {rate:.0} req/s: {}",
            reasons.join("; ")
        )),
        (Health::Valid, true, _) => Next::Stop("unexpected answers".to_owned()),
    }
}

#[derive(Debug, Clone)]
pub struct FindMaxConfig {
    pub start_rate: f64,
    /// Each step multiplies the rate by this.
    pub factor: f64,
    pub max_rate: f64,
    pub slo_p99: Duration,
    pub step: MatrixConfig,
}

/// One contender: a gateway as configured, and the tokens it is sent.
struct Contender {
    label: &'static str,
    description: &'static str,
    spec: GatewaySpec,
    /// Distinct tokens cycled through; 0 sends no token.
    tokens: usize,
}

fn contenders(pool_size: usize) -> Vec<Contender> {
    vec![
        Contender {
            label: "no-auth",
            description: "Envoy alone, no token",
            spec: GatewaySpec::new("no-auth"),
            tokens: 0,
        },
        Contender {
            label: "native-jwt",
            description: "Envoy jwt_authn, one repeated token (its JWT cache)",
            spec: GatewaySpec::new("native-jwt"),
            tokens: 1,
        },
        Contender {
            label: "jwt-repeated",
            description: "tokengate jwt, one repeated token (verified-token cache)",
            spec: GatewaySpec::new("jwt"),
            tokens: 1,
        },
        Contender {
            label: "jwt-unique",
            description: "tokengate jwt, cache off: every request a full RS256 verification",
            spec: GatewaySpec::new("jwt").patch(json!({"cache": {"max_entries": 0}})),
            tokens: pool_size,
        },
        Contender {
            label: "hybrid-warm",
            description: "tokengate hybrid, one repeated token (both caches warm)",
            spec: GatewaySpec::new("hybrid"),
            tokens: 1,
        },
    ]
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rate: f64,
    pub achieved: f64,
    pub p99_us: u64,
    pub unexpected: u64,
    pub health: Health,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindMaxRow {
    pub label: String,
    pub description: String,
    /// Highest rate held within the SLO, if any.
    pub max_rate: Option<f64>,
    pub p99_at_max_us: Option<u64>,
    pub stopped_because: String,
    /// max_rate / native-jwt's max_rate.
    pub ratio_to_native_jwt: Option<f64>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindMaxReport {
    pub slo_p99_ms: f64,
    pub start_rate: f64,
    pub factor: f64,
    pub step_secs: f64,
    pub rows: Vec<FindMaxRow>,
}

impl FindMaxReport {
    pub fn text(&self) -> String {
        let header = [
            "gateway",
            "what",
            "max sustainable req/s",
            "p99 at max (ms)",
            "× native-jwt",
            "stopped because",
        ];
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                vec![
                    row.label.clone(),
                    row.description.clone(),
                    row.max_rate.map_or("-".to_owned(), |r| format!("{r:.0}")),
                    row.p99_at_max_us
                        .map_or("-".to_owned(), |us| format!("{:.2}", us as f64 / 1000.0)),
                    row.ratio_to_native_jwt
                        .map_or("-".to_owned(), |r| format!("{r:.2}")),
                    row.stopped_because.clone(),
                ]
            })
            .collect();
        format!(
            "== Highest sustainable rate (p99 ≤ {} ms, valid run, all answers as expected) ==\n{}",
            self.slo_p99_ms,
            render_table(&header, &rows)
        )
    }
}

pub fn run(config: &FindMaxConfig) -> Result<FindMaxReport> {
    let step = &config.step;
    std::fs::create_dir_all(&step.out)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let contenders = contenders(step.pool_size);
    let specs: Vec<(String, GatewaySpec)> = contenders
        .iter()
        .map(|c| (c.label.to_owned(), c.spec.clone()))
        .collect();
    eprintln!("starting the native stack for --find-max ...");
    let stack = NativeStack::start_specs(
        &specs,
        &StackOptions {
            envoy_workers: step.envoy_workers,
            ..StackOptions::default()
        },
    )?;
    eprintln!("{}", stack.describe());
    let client = KeycloakClient::new(stack.keycloak().base_url());
    let mut pools = runtime.block_on(TokenPools::mint(client, step.pool_size))?;
    let mut rows = Vec::new();
    for contender in &contenders {
        let gateway = stack
            .gateway(contender.label)
            .ok_or_else(|| anyhow!("{} did not start", contender.label))?;
        let (addr, host) = resolve(&gateway.url(""))?;
        let mut steps = Vec::new();
        let mut rate = config.start_rate;
        let mut best: Option<(f64, u64)> = None;
        let mut driver_retries_left = DRIVER_RETRIES;
        let stopped_because = loop {
            if rate > config.max_rate {
                break format!("reached the configured maximum {} req/s", config.max_rate);
            }
            runtime.block_on(pools.ready_for(None, step.warmup + step.duration))?;
            let tokens = pools.tokens(TokenKind::Valid);
            let mut templates = Vec::new();
            for token in tokens.iter().take(contender.tokens.max(1)) {
                let template = RequestTemplate::get("/api/orders")?;
                templates.push(if contender.tokens == 0 {
                    template
                } else {
                    template.header("authorization", &format!("Bearer {token}"))?
                });
            }
            let label = format!("findmax.{}.r{}", contender.label, rate.round() as u64);
            let driver = driver_config(step, rate, addr, &host, label);
            let source: Arc<dyn RequestSource> = Arc::new(RoundRobin::new(templates)?);
            let result = driver::run(&driver, source, Arc::new(ExpectStatus::new([200])))
                .with_context(|| format!("{} at {rate} req/s", contender.label))?;
            let health = report::health(&result, &Thresholds::default());
            let p99 = result.latency_corrected.p99_us;
            eprintln!(
                "  {:<13} {:>7.0} req/s: achieved {:>7.0}, p99 {:>8.2} ms, {:?}",
                contender.label,
                rate,
                result.achieved_rate,
                p99 as f64 / 1000.0,
                health
            );
            steps.push(Step {
                rate,
                achieved: result.achieved_rate,
                p99_us: p99,
                unexpected: result.unexpected,
                health: health.clone(),
            });
            let slo_us = config.slo_p99.as_micros() as u64;
            match judge_step(
                &health,
                p99,
                slo_us,
                result.unexpected,
                rate,
                driver_retries_left,
            ) {
                Next::Sustained => best = Some((rate, p99)),
                Next::Again => {
                    driver_retries_left -= 1;
                    continue;
                }
                Next::Stop(reason) => break reason,
            }
            rate *= config.factor;
            driver_retries_left = DRIVER_RETRIES;
        };
        rows.push(FindMaxRow {
            label: contender.label.to_owned(),
            description: contender.description.to_owned(),
            max_rate: best.map(|(rate, _)| rate),
            p99_at_max_us: best.map(|(_, p99)| p99),
            stopped_because,
            ratio_to_native_jwt: None,
            steps,
        });
    }
    let native = rows
        .iter()
        .find(|row| row.label == "native-jwt")
        .and_then(|row| row.max_rate);
    for row in &mut rows {
        row.ratio_to_native_jwt = match (row.max_rate, native) {
            (Some(rate), Some(native)) if native > 0.0 => Some(rate / native),
            _ => None,
        };
    }
    let report = FindMaxReport {
        slo_p99_ms: config.slo_p99.as_secs_f64() * 1000.0,
        start_rate: config.start_rate,
        factor: config.factor,
        step_secs: step.duration.as_secs_f64(),
        rows,
    };
    let path: PathBuf = step.out.join("find-max.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::write(step.out.join("find-max.md"), report.text())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn late() -> Health {
        Health::DriverLimited {
            reasons: vec!["schedule lag".to_owned()],
        }
    }

    #[test]
    fn a_step_the_driver_could_not_keep_is_measured_again_before_the_search_stops() {
        assert_eq!(judge_step(&late(), 500, 10_000, 0, 960.0, 2), Next::Again);
        assert_eq!(judge_step(&late(), 500, 10_000, 0, 960.0, 1), Next::Again);
        let Next::Stop(reason) = judge_step(&late(), 500, 10_000, 0, 960.0, 0) else {
            panic!("no retries left must stop");
        };
        assert!(
            reason.starts_with("driver limited at 960 req/s"),
            "{reason}"
        );
    }

    #[test]
    fn the_gateway_s_own_limits_stop_the_search_at_once() {
        assert_eq!(
            judge_step(&Health::Valid, 500, 10_000, 0, 960.0, 2),
            Next::Sustained
        );
        let saturated = Health::Saturated {
            reasons: vec!["drops".to_owned()],
        };
        for (health, p99, unexpected, expected) in [
            (Health::Valid, 20_000, 0, "p99 20.00 ms over the SLO"),
            (saturated, 500, 0, "saturated at 960 req/s"),
            (Health::Valid, 500, 3, "3 unexpected answers"),
        ] {
            let Next::Stop(reason) = judge_step(&health, p99, 10_000, unexpected, 960.0, 2) else {
                panic!("{expected}: must stop");
            };
            assert!(reason.starts_with(expected), "{reason}");
        }
    }
}

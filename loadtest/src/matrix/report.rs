//! The matrix report: per-rate performance tables, security verdicts, `report.json`
//! (schema: `loadtest/report.schema.json`), `report.md`, SVG charts, and the exit code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::driver::{RunResult, Thresholds};
use crate::matrix::MatrixConfig;
use crate::matrix::scenario::{self, Expectation, GatewayProfile, Scenario, TokenKind, Verdict};

pub const SCHEMA_VERSION: u32 = 1;

/// Exit codes of `loadtest run`.
pub mod exit {
    /// Every verdict as expected, every cell measured validly.
    pub const OK: u8 = 0;
    /// Something failed (a valid token refused, a cell with no answers, an error).
    pub const FAILURE: u8 = 1;
    /// A gateway not known to be insecure let through a token it must refuse.
    pub const SECURITY_GAP: u8 = 2;
    /// The driver could not keep the schedule: latency figures would mislead.
    pub const INVALID_RUN: u8 = 3;
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub gateways: Vec<String>,
    pub scenarios: Vec<String>,
    pub rates: Vec<f64>,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub pool_size: usize,
    pub driver_threads: usize,
    pub max_in_flight: usize,
    pub envoy_workers: u32,
    /// The gateway URL when an external stack was driven (`--target`).
    pub target: Option<String>,
    /// Plugin configuration patches applied to gateways (`--patch`).
    pub patches: BTreeMap<String, serde_json::Value>,
}

impl Settings {
    pub fn from_config(config: &MatrixConfig, gateways: &[String]) -> Settings {
        Settings {
            gateways: gateways.to_vec(),
            scenarios: config.scenarios.iter().map(|s| s.name()).collect(),
            rates: config.rates.clone(),
            warmup_secs: config.warmup.as_secs_f64(),
            duration_secs: config.duration.as_secs_f64(),
            pool_size: config.pool_size,
            driver_threads: config.driver_threads,
            max_in_flight: config.max_in_flight,
            envoy_workers: config.envoy_workers,
            target: config.target.as_ref().map(|t| t.gateway_url.clone()),
            patches: config.patches.iter().cloned().collect(),
        }
    }
}

/// Whether a cell's latency can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    Valid,
    /// The target could not keep up (drops, achieved rate short): a result, not a flaw.
    Saturated {
        reasons: Vec<String>,
    },
    /// The driver sent late: the run cannot be trusted.
    DriverLimited {
        reasons: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub rate: f64,
    pub scenario: String,
    pub token_kind: Option<TokenKind>,
    /// The gateway, or `keycloak` for requests straight at Keycloak.
    pub gateway: String,
    pub expected: Expectation,
    /// Share of answered requests that were not the expected outcome, in percent.
    pub unexpected_pct: f64,
    /// 2xx answers.
    pub admitted: u64,
    /// 4xx answers.
    pub refused: u64,
    pub health: Health,
    pub note: Option<String>,
    pub result: RunResult,
}

impl Cell {
    pub fn new(
        rate: f64,
        scenario: Scenario,
        gateway: Option<&GatewayProfile>,
        expected: Expectation,
        result: RunResult,
        thresholds: &Thresholds,
        note: Option<String>,
    ) -> Cell {
        let count = |range: std::ops::Range<u16>| -> u64 {
            result
                .status_counts
                .iter()
                .filter(|(status, _)| range.contains(status))
                .map(|(_, n)| n)
                .sum()
        };
        let unexpected_pct = if result.completed == 0 {
            100.0
        } else {
            100.0 * result.unexpected as f64 / result.completed as f64
        };
        Cell {
            rate,
            scenario: scenario.name(),
            token_kind: match scenario {
                Scenario::Api(kind) => Some(kind),
                _ => None,
            },
            gateway: gateway.map_or("keycloak", |g| g.name).to_owned(),
            expected,
            unexpected_pct,
            admitted: count(200..300),
            refused: count(400..500),
            health: health(&result, thresholds),
            note,
            result,
        }
    }
}

/// The driver's validity verdict, split by whose fault it is: late sends are the driver's
/// (the run cannot be trusted); drops and a short achieved rate are the target's (with no
/// backlog, an arrival that finds every connection busy is dropped, not sent late).
pub fn health(result: &RunResult, thresholds: &Thresholds) -> Health {
    let driver = result.driver_problems(thresholds);
    if !driver.is_empty() {
        return Health::DriverLimited { reasons: driver };
    }
    let target = result.target_problems(thresholds);
    if target.is_empty() {
        Health::Valid
    } else {
        Health::Saturated { reasons: target }
    }
}

/// One row of the security verdict table: a gateway and a token kind, over every rate.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictRow {
    pub gateway: String,
    pub token_kind: TokenKind,
    /// What a secure gateway does with this kind: `admit` (valid) or `refuse`.
    pub secure: &'static str,
    pub expected_status: u16,
    /// Status counts over every rate, e.g. `{"401": 15000}`.
    pub actual: BTreeMap<u16, u64>,
    pub admitted: u64,
    pub refused: u64,
    pub verdict: Verdict,
    /// Set when the gateway is documented to have this gap.
    pub known_gap: Option<&'static str>,
    /// A request that showed the verdict (for a GAP: one that was admitted).
    pub sample_request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub exit_code: u8,
    pub cells: usize,
    pub gaps: usize,
    pub known_gaps: usize,
    pub unexpected_gaps: usize,
    pub failures: usize,
    pub saturated_cells: usize,
    pub driver_limited_cells: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: String,
    pub settings: Settings,
    pub cells: Vec<Cell>,
    pub verdicts: Vec<VerdictRow>,
    pub summary: Summary,
}

impl Report {
    pub fn new(settings: Settings, cells: Vec<Cell>) -> Report {
        let verdicts = verdicts(&cells);
        let summary = summarize(&cells, &verdicts);
        Report {
            schema_version: SCHEMA_VERSION,
            tool: format!("tokengate loadtest {}", env!("CARGO_PKG_VERSION")),
            settings,
            cells,
            verdicts,
            summary,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.summary.exit_code
    }

    /// Writes `report.json`, `report.md` and the charts into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("report.json"), json + "\n")
            .with_context(|| format!("writing {}", dir.join("report.json").display()))?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        super::charts::write_all(self, dir)?;
        Ok(())
    }

    /// The tables for a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for rate in &self.settings.rates {
            let _ = writeln!(out, "\n== {rate} req/s ==");
            let rows = self.performance_rows(*rate);
            out.push_str(&render_table(&PERFORMANCE_HEADER, &rows));
        }
        out.push_str("\n== Security verdicts (all rates) ==\n");
        out.push_str(&render_table(&VERDICT_HEADER, &self.verdict_rows()));
        let _ = writeln!(out, "\n{}", self.summary_line());
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("# tokengate load test report\n\n");
        let _ = writeln!(
            out,
            "Gateways: {}. Rates: {} req/s, {} s measured after {} s warm-up per cell, open loop \
             (latency from each request's due time).\n",
            self.settings.gateways.join(", "),
            self.settings
                .rates
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.settings.duration_secs,
            self.settings.warmup_secs
        );
        for rate in &self.settings.rates {
            let _ = writeln!(out, "## {rate} req/s\n");
            out.push_str(&render_markdown_table(
                &PERFORMANCE_HEADER,
                &self.performance_rows(*rate),
            ));
            out.push('\n');
        }
        out.push_str("## Security verdicts\n\n");
        out.push_str(&render_markdown_table(
            &VERDICT_HEADER,
            &self.verdict_rows(),
        ));
        let _ = writeln!(out, "\n{}\n", self.summary_line());
        out.push_str("Charts: `latency-<scenario>.svg` (latency percentiles against rate, one line per gateway), `outcomes.svg` (admitted/refused per gateway and token kind).\n");
        out
    }

    fn summary_line(&self) -> String {
        let s = &self.summary;
        let meaning = match s.exit_code {
            exit::OK => "all verdicts as expected",
            exit::SECURITY_GAP => "SECURITY GAP on a gateway not known to be insecure",
            exit::INVALID_RUN => {
                "invalid run: the driver could not keep the schedule (latency figures are not trustworthy)"
            }
            _ => "failure",
        };
        format!(
            "exit {}: {meaning}. {} cells; {} GAPs ({} known, {} unexpected); {} failures; {} saturated; {} driver-limited.",
            s.exit_code,
            s.cells,
            s.gaps,
            s.known_gaps,
            s.unexpected_gaps,
            s.failures,
            s.saturated_cells,
            s.driver_limited_cells
        )
    }

    fn performance_rows(&self, rate: f64) -> Vec<Vec<String>> {
        self.cells
            .iter()
            .filter(|cell| cell.rate == rate)
            .map(|cell| {
                let r = &cell.result;
                let latency = &r.latency_corrected;
                let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
                let health = match &cell.health {
                    Health::Valid => "ok".to_owned(),
                    Health::Saturated { .. } => "SATURATED".to_owned(),
                    Health::DriverLimited { .. } => "INVALID".to_owned(),
                };
                let mut notes = Vec::new();
                if let Some(note) = &cell.note {
                    notes.push(note.clone());
                }
                if r.errors.total() > 0 {
                    notes.push(format!("{} transport errors", r.errors.total()));
                }
                match &cell.health {
                    Health::Valid => {}
                    Health::Saturated { reasons } | Health::DriverLimited { reasons } => {
                        notes.push(reasons.join("; "))
                    }
                }
                vec![
                    cell.scenario.clone(),
                    cell.gateway.clone(),
                    format!("{:.0}", rate),
                    format!("{:.1}", r.achieved_rate),
                    format!("{:.2}", latency.mean_us / 1000.0),
                    ms(latency.p50_us),
                    ms(latency.p90_us),
                    ms(latency.p99_us),
                    ms(latency.p999_us),
                    ms(latency.max_us),
                    format!("{:.2}", cell.unexpected_pct),
                    status_summary(&r.status_counts),
                    format!("{:.1}/{:.1}", r.received_kib_per_sec, r.sent_kib_per_sec),
                    health,
                    notes.join("; "),
                ]
            })
            .collect()
    }

    fn verdict_rows(&self) -> Vec<Vec<String>> {
        self.verdicts
            .iter()
            .map(|row| {
                let verdict = match (row.verdict, row.known_gap) {
                    (Verdict::Gap, Some(reason)) => format!("GAP (known: {reason})"),
                    (Verdict::Gap, None) => "GAP".to_owned(),
                    (Verdict::Pass, _) => "PASS".to_owned(),
                    (Verdict::Fail, _) => "FAIL".to_owned(),
                    (Verdict::NotApplicable, _) => "n/a (no authentication)".to_owned(),
                };
                vec![
                    row.gateway.clone(),
                    row.token_kind.name().to_owned(),
                    row.secure.to_owned(),
                    row.expected_status.to_string(),
                    status_summary(&row.actual),
                    verdict,
                    row.sample_request_id.clone().unwrap_or_default(),
                ]
            })
            .collect()
    }

    /// Attaches the id of a probe request that showed each GAP.
    pub fn set_sample(&mut self, gateway: &str, kind: TokenKind, request_id: String) {
        if let Some(row) = self
            .verdicts
            .iter_mut()
            .find(|row| row.gateway == gateway && row.token_kind == kind)
        {
            row.sample_request_id = Some(request_id);
        }
    }
}

const PERFORMANCE_HEADER: [&str; 15] = [
    "scenario",
    "gateway",
    "target rps",
    "achieved rps",
    "avg ms",
    "p50",
    "p90",
    "p99",
    "p99.9",
    "max",
    "unexpected %",
    "statuses",
    "KB/s rx/tx",
    "run",
    "notes",
];

const VERDICT_HEADER: [&str; 7] = [
    "gateway",
    "token kind",
    "secure",
    "gateway answers",
    "actual",
    "verdict",
    "sample request id",
];

fn status_summary(counts: &BTreeMap<u16, u64>) -> String {
    counts
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn verdicts(cells: &[Cell]) -> Vec<VerdictRow> {
    let mut rows: Vec<VerdictRow> = Vec::new();
    for cell in cells {
        let (Some(kind), Some(_)) = (cell.token_kind, scenario::profile(&cell.gateway)) else {
            continue;
        };
        let row = match rows
            .iter_mut()
            .find(|row| row.gateway == cell.gateway && row.token_kind == kind)
        {
            Some(row) => row,
            None => {
                rows.push(VerdictRow {
                    gateway: cell.gateway.clone(),
                    token_kind: kind,
                    secure: if kind == TokenKind::Valid {
                        "admit"
                    } else {
                        "refuse"
                    },
                    expected_status: cell.expected.status,
                    actual: BTreeMap::new(),
                    admitted: 0,
                    refused: 0,
                    verdict: Verdict::Pass,
                    known_gap: None,
                    sample_request_id: None,
                });
                let last = rows.len() - 1;
                &mut rows[last]
            }
        };
        for (status, n) in &cell.result.status_counts {
            *row.actual.entry(*status).or_insert(0) += n;
        }
        row.admitted += cell.admitted;
        row.refused += cell.refused;
        if row.sample_request_id.is_none() {
            row.sample_request_id = cell
                .result
                .unexpected_samples
                .first()
                .map(|sample| sample.request_id.clone());
        }
    }
    for row in &mut rows {
        if let Some(profile) = scenario::profile(&row.gateway) {
            row.verdict = scenario::verdict(profile, row.token_kind, row.admitted, row.refused);
            if row.verdict == Verdict::Gap {
                row.known_gap = scenario::expectation(profile, row.token_kind).known_gap;
            }
        }
    }
    rows
}

fn summarize(cells: &[Cell], verdicts: &[VerdictRow]) -> Summary {
    let gaps = verdicts
        .iter()
        .filter(|r| r.verdict == Verdict::Gap)
        .count();
    let known_gaps = verdicts
        .iter()
        .filter(|r| r.verdict == Verdict::Gap && r.known_gap.is_some())
        .count();
    let failures = verdicts
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .count()
        + cells.iter().filter(|c| c.result.completed == 0).count();
    let saturated_cells = cells
        .iter()
        .filter(|c| matches!(c.health, Health::Saturated { .. }))
        .count();
    let driver_limited_cells = cells
        .iter()
        .filter(|c| matches!(c.health, Health::DriverLimited { .. }))
        .count();
    let unexpected_gaps = gaps - known_gaps;
    let exit_code = if unexpected_gaps > 0 {
        exit::SECURITY_GAP
    } else if failures > 0 {
        exit::FAILURE
    } else if driver_limited_cells > 0 {
        exit::INVALID_RUN
    } else {
        exit::OK
    };
    Summary {
        exit_code,
        cells: cells.len(),
        gaps,
        known_gaps,
        unexpected_gaps,
        failures,
        saturated_cells,
        driver_limited_cells,
    }
}

pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(header.to_vec()) + "\n";
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn render_markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

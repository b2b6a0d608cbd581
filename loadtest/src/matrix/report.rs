//! The matrix report: per-rate performance tables, security verdicts, `report.json`
//! (schema: `loadtest/report.schema.json`), `report.md`, SVG charts, and the exit code.
//!
//! Verdicts are rows of data, one per (gateway, scenario): what the scenario sends, what a
//! secure gateway does with it, what this one answered, and the verdict. Scenarios that were
//! not run because they do not apply (the policy scenarios on a gateway without the policy
//! routes) get a row too, NOT_APPLICABLE with the reason, so a reader sees what was not asked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::driver::{Distortion, LatencySummary, RunResult, Thresholds};
use crate::matrix::scenario::{
    Challenge, Expectation, GatewayProfile, Scenario, Secure, TokenKind, Verdict,
};
use crate::matrix::validity::summarize;
pub use crate::matrix::validity::{Health, Summary, exit, health};
pub use crate::matrix::verdicts::VerdictRow;
use crate::matrix::verdicts::verdicts;
use crate::matrix::{MatrixConfig, Profile, logout, union_of_rates};

/// 2: verdicts are per scenario (policy scenarios), with the forged-header count. 3: the
/// `logged-out` token kind and `logout_to_refusal`. 4: each cell's `distortion` and `marks`,
/// `summary.marked_cells`, `machine_noise`.
pub const SCHEMA_VERSION: u32 = 4;

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub profile: Profile,
    pub gateways: Vec<String>,
    pub scenarios: Vec<String>,
    /// Rates of the API scenarios.
    pub rates: Vec<f64>,
    pub policy_rates: Vec<f64>,
    /// Rates of the scenarios at Keycloak.
    pub idp_rates: Vec<f64>,
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
            profile: config.profile,
            gateways: gateways.to_vec(),
            scenarios: config.scenarios.iter().map(|s| s.name()).collect(),
            rates: config.rates.clone(),
            policy_rates: config.policy_rates.clone(),
            idp_rates: config.idp_rates.clone(),
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

    /// Every rate a cell may have, ascending.
    pub fn all_rates(&self) -> Vec<f64> {
        union_of_rates(
            self.rates
                .iter()
                .chain(&self.policy_rates)
                .chain(&self.idp_rates)
                .copied(),
        )
    }
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
    /// Answers whose backend received a header the gateway must strip
    /// ([`Expectation::must_strip`]).
    pub leaked: u64,
    pub health: Health,
    /// How far late sends may have moved the reported latency: the target's own p99 lies
    /// between `result.latency_uncorrected.p99_us` and `result.latency_corrected.p99_us`.
    pub distortion: Distortion,
    /// Why the cell's latency is marked as distorted (empty: it is not).
    pub marks: Vec<String>,
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
        // The classifier judges an answer with the expected status unexpected only when the
        // backend received the header that had to be stripped, so those are the leaks.
        let leaked = match expected.must_strip {
            Some(_) => count(expected.status..expected.status.saturating_add(1))
                .saturating_sub(result.expected),
            None => 0,
        };
        let unexpected_pct = if result.completed == 0 {
            100.0
        } else {
            100.0 * result.unexpected as f64 / result.completed as f64
        };
        Cell {
            rate,
            scenario: scenario.name(),
            token_kind: scenario.token_kind(),
            gateway: gateway.map_or("keycloak", |g| g.name).to_owned(),
            expected,
            unexpected_pct,
            admitted: count(200..300),
            refused: count(400..500),
            leaked,
            health: health(&result, thresholds),
            distortion: result.distortion(),
            marks: result.distortion_marks(thresholds),
            note,
            result,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: String,
    pub settings: Settings,
    pub cells: Vec<Cell>,
    pub verdicts: Vec<VerdictRow>,
    /// Per gateway measured: from ending a session at Keycloak to the first refused request
    /// with its token, under the `api-logged-out` cell's load (`matrix/logout.rs`).
    pub logout_to_refusal: Vec<super::logout::LogoutTimes>,
    /// This machine's own scheduling noise, measured before the cells: how late an idle
    /// driver thread pacing at the highest rate was woken, in µs
    /// ([`idle_pacing`](crate::driver::idle_pacing)). A cell's schedule lag near it is the
    /// machine's; far above it, the cell's (its target competing for the cores).
    pub machine_noise: Option<LatencySummary>,
    pub summary: Summary,
}

impl Report {
    pub fn new(settings: Settings, cells: Vec<Cell>) -> Report {
        let verdicts = verdicts(&settings, &cells);
        let summary = summarize(&cells, &verdicts);
        Report {
            schema_version: SCHEMA_VERSION,
            tool: format!("tokengate loadtest {}", env!("CARGO_PKG_VERSION")),
            settings,
            cells,
            verdicts,
            logout_to_refusal: Vec::new(),
            machine_noise: None,
            summary,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.summary.exit_code
    }

    /// Writes `report.json`, `report.md`, the charts and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("report.json"), json + "\n")
            .with_context(|| format!("writing {}", dir.join("report.json").display()))?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        super::charts::write_all(self, dir)?;
        // Last: it inlines the charts.
        std::fs::write(dir.join("report.html"), super::html::render(self, dir))
            .with_context(|| format!("writing {}", dir.join("report.html").display()))?;
        Ok(())
    }

    /// The tables for a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for rate in &self.settings.all_rates() {
            let rows = self.performance_rows(*rate);
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n== {rate} req/s ==");
            out.push_str(&render_table(&PERFORMANCE_HEADER, &rows));
        }
        out.push_str("\n== Security verdicts (all rates) ==\n");
        out.push_str(&render_table(&VERDICT_HEADER, &self.verdict_rows()));
        for line in self.not_run_lines() {
            let _ = writeln!(out, "{line}");
        }
        if !self.logout_to_refusal.is_empty() {
            out.push_str("\n== Logout to refusal ==\n");
            out.push_str(&render_table(&logout::TABLE_HEADER, &self.logout_rows()));
            let _ = writeln!(out, "{}", logout::TABLE_NOTE);
        }
        let _ = writeln!(out, "\n{}", self.summary_line());
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from("# tokengate load test report\n\n");
        let _ = writeln!(
            out,
            "Profile `{}`. Gateways: {}. Rates: {} req/s (API scenarios), {} req/s (policy \
             scenarios), {} req/s (Keycloak's own scenarios: the IdP's cost, not a gateway's); \
             {} s measured after {} s warm-up per cell, open loop (latency from each request's \
             due time).\n",
            self.settings.profile.name(),
            self.settings.gateways.join(", "),
            rate_list(&self.settings.rates),
            rate_list(&self.settings.policy_rates),
            rate_list(&self.settings.idp_rates),
            self.settings.duration_secs,
            self.settings.warmup_secs
        );
        out.push_str(
            "Latency is in ms, corrected (from each request's due time). `p99 bound` is how far \
             late sends may have moved it: the gateway's own p99 lies between the corrected p99 \
             and the corrected p99 minus the bound; `lag` is the driver's schedule lag p99. \
             `marked` cells' figures stand with that bound; `INVALID` ones this machine could \
             not drive; `SATURATED` ones the gateway could not keep up with.\n",
        );
        if let Some(noise) = &self.machine_noise {
            let _ = writeln!(out, "\n{}", noise_line(noise));
        }
        out.push('\n');
        for rate in &self.settings.all_rates() {
            if self.performance_rows(*rate).is_empty() {
                continue;
            }
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
        for line in self.not_run_lines() {
            let _ = writeln!(out, "\n{line}");
        }
        if !self.logout_to_refusal.is_empty() {
            out.push_str("\n## Logout to refusal\n\n");
            let _ = writeln!(out, "{}\n", logout::TABLE_NOTE);
            out.push_str(&render_markdown_table(
                &logout::TABLE_HEADER,
                &self.logout_rows(),
            ));
        }
        let _ = writeln!(out, "\n{}\n", self.summary_line());
        out.push_str("Charts: `latency-<scenario>.svg` (latency percentiles against rate, one line per gateway), `outcomes.svg` (admitted/refused per gateway and scenario).\n");
        out
    }

    pub(crate) fn summary_line(&self) -> String {
        let s = &self.summary;
        let meaning = match s.exit_code {
            exit::OK => "all verdicts as expected",
            exit::SECURITY_GAP => "SECURITY GAP on a gateway not known to be insecure",
            exit::INVALID_RUN => {
                "invalid run: this machine could not drive some cell (the verdicts stand; those cells' latency does not)"
            }
            _ => "failure",
        };
        format!(
            "exit {}: {meaning}. {} cells; {} GAPs ({} known, {} unexpected); {} failures; {} saturated; {} driver-limited; {} marked.",
            s.exit_code,
            s.cells,
            s.gaps,
            s.known_gaps,
            s.unexpected_gaps,
            s.failures,
            s.saturated_cells,
            s.driver_limited_cells,
            s.marked_cells
        )
    }

    pub(crate) fn performance_rows(&self, rate: f64) -> Vec<Vec<String>> {
        self.cells
            .iter()
            .filter(|cell| cell.rate == rate)
            .map(|cell| {
                let r = &cell.result;
                let latency = &r.latency_corrected;
                let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
                let health = match &cell.health {
                    Health::Valid if !cell.marks.is_empty() => "marked".to_owned(),
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
                notes.extend(cell.marks.iter().cloned());
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
                    format!(
                        "+{} (lag {})",
                        ms(cell.distortion.p99_us),
                        ms(cell.distortion.lag_p99_us)
                    ),
                    format!("{:.2}", cell.unexpected_pct),
                    status_summary(&r.status_counts),
                    format!("{:.1}/{:.1}", r.received_kib_per_sec, r.sent_kib_per_sec),
                    health,
                    notes.join("; "),
                ]
            })
            .collect()
    }

    /// The rows of scenarios that ran (those that did not are summed up by
    /// [`Report::not_run_lines`]).
    pub(crate) fn verdict_rows(&self) -> Vec<Vec<String>> {
        self.verdicts
            .iter()
            .filter(|row| row.cells > 0)
            .map(|row| {
                let verdict = match (row.verdict, row.known_gap) {
                    (Verdict::Gap, Some(reason)) => format!("GAP (known: {reason})"),
                    (Verdict::Gap, None) if row.leaked > 0 => format!(
                        "GAP ({} reached the backend {}×)",
                        row.must_strip.unwrap_or("a forged header"),
                        row.leaked
                    ),
                    (Verdict::Gap, None) => "GAP".to_owned(),
                    (Verdict::Pass, _) => "PASS".to_owned(),
                    (Verdict::Fail, _) => "FAIL".to_owned(),
                    (Verdict::NotApplicable, _) => {
                        format!("n/a ({})", row.not_applicable.unwrap_or("not applicable"))
                    }
                };
                let mut secure = match row.secure {
                    Secure::Admit => "admit".to_owned(),
                    Secure::Refuse => "refuse".to_owned(),
                };
                if let Some(header) = row.must_strip {
                    secure.push_str(&format!(", strip {header}"));
                }
                vec![
                    row.gateway.clone(),
                    row.scenario.clone(),
                    row.request.clone(),
                    secure,
                    expected_answer(row.expected_status, row.expected_challenge),
                    status_summary(&row.actual),
                    verdict,
                    row.sample_request_id.clone().unwrap_or_default(),
                ]
            })
            .collect()
    }

    /// One line per reason for the scenarios not run on some gateway because they do not
    /// apply there: which scenarios, which gateways.
    fn not_run_lines(&self) -> Vec<String> {
        let mut by_reason: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
        for row in self.verdicts.iter().filter(|row| row.cells == 0) {
            let (scenarios, gateways) = by_reason
                .entry(row.not_applicable.unwrap_or("not run"))
                .or_default();
            if !scenarios.contains(&row.scenario.as_str()) {
                scenarios.push(&row.scenario);
            }
            if !gateways.contains(&row.gateway.as_str()) {
                gateways.push(&row.gateway);
            }
        }
        by_reason
            .into_iter()
            .map(|(reason, (scenarios, gateways))| {
                format!(
                    "Not run, n/a ({reason}): {} on {}.",
                    scenarios.join(", "),
                    gateways.join(", ")
                )
            })
            .collect()
    }

    /// Attaches what a probe request showed to a verdict row.
    pub(crate) fn logout_rows(&self) -> Vec<Vec<String>> {
        self.logout_to_refusal
            .iter()
            .map(logout::LogoutTimes::row)
            .collect()
    }

    pub fn set_sample(&mut self, gateway: &str, scenario: &str, sample: String) {
        if let Some(row) = self
            .verdicts
            .iter_mut()
            .find(|row| row.gateway == gateway && row.scenario == scenario)
        {
            row.sample_request_id = Some(sample);
        }
    }
}

pub(crate) const PERFORMANCE_HEADER: [&str; 16] = [
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
    // The bound on p99: corrected − uncorrected p99, then the schedule lag p99 (ms).
    "p99 bound",
    "unexpected %",
    "statuses",
    "KB/s rx/tx",
    "run",
    "notes",
];

pub(crate) const VERDICT_HEADER: [&str; 8] = [
    "gateway",
    "scenario",
    "request",
    "secure",
    "gateway answers",
    "actual",
    "verdict",
    "sample request id",
];

/// What the idle pacing probe measured, in one sentence.
/// Rates as the reports list them: "100, 500, 1000".
pub(crate) fn rate_list(rates: &[f64]) -> String {
    rates
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn noise_line(noise: &LatencySummary) -> String {
    format!(
        "This machine's own scheduling noise (an idle driver thread pacing before the run): \
         lag p50 {} µs, p99 {} µs, max {} µs.",
        noise.p50_us, noise.p99_us, noise.max_us
    )
}

/// `401 invalid_token`, `401 Bearer` (a challenge without an error), `200`.
fn expected_answer(status: u16, challenge: Challenge) -> String {
    match challenge {
        Challenge::None => status.to_string(),
        Challenge::Bare => format!("{status} Bearer"),
        Challenge::InvalidToken => format!("{status} invalid_token"),
        Challenge::InsufficientScope => format!("{status} insufficient_scope"),
    }
}

fn status_summary(counts: &BTreeMap<u16, u64>) -> String {
    counts
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
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

pub(crate) fn render_markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;

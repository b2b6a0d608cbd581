//! `report.html`: the report a person opens first, one self-contained file (inline CSS and
//! SVG, no script, nothing fetched; `browser.rs` checks it in headless Chromium), in the
//! order of the questions a reader has:
//!
//! 1. what did each gateway let through — the verdicts, gateway × token kind, GAPs with the
//!    request that showed them and why they are known (the expired-token GAP of `jwt-no-exp`
//!    first: the write-up's finding);
//! 2. what did it cost — latency against rate per gateway, Envoy CPU per request where the
//!    bench measured it, the IdP's own numbers apart; next to it the write-up's published
//!    figures for the same scenarios (`writeup.rs`);
//! 3. the full tables;
//! 4. how the run was made — settings, machine, whether the driver kept its schedule.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::matrix::report::{
    Cell, Health, PERFORMANCE_HEADER, Report, VERDICT_HEADER, VerdictRow, rate_list,
};

pub mod browser;
mod cost;
pub mod verdicts;
pub mod writeup;

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#1b1b1b}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2}
.PASS{background:#d9f2d9}.GAP{background:#f8d0d0;font-weight:bold}
.FAIL{background:#ffe0a0;font-weight:bold}.NOT_APPLICABLE{background:#eee;color:#777}
.known{background:#fbe3c8}td.lead{outline:3px solid #b00020;outline-offset:-3px}
td small{font-weight:normal}
.key{font-size:13px;color:#444}.key span{padding:0 4px}
.headline{border:2px solid #b00020;background:#fff3f3;padding:.6em 1em;margin:1em 0}
.ok{border:2px solid #2e7d32;background:#f1faf1;padding:.6em 1em;margin:1em 0}
.warn{border:2px solid #b26a00;background:#fff8ec;padding:.6em 1em;margin:1em 0}
svg{max-width:100%;height:auto}figure{margin:1em 0}
code{background:#f4f4f4;padding:0 3px}
details{margin:.6em 0}summary{cursor:pointer;font-weight:bold}
";

/// The HTML of `report`, with the charts found in `dir` inlined.
pub fn render(report: &Report, dir: &Path) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str("<title>tokengate load test report</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n<h1>tokengate load test report</h1>\n");
    let summary = &report.summary;
    let _ = writeln!(
        out,
        "<p id=\"summary\">{} — profile <code>{}</code>, {} cells, exit {}: {} GAP(s) ({} \
         known, {} unexpected), {} failure(s), {} cell(s) this machine could not drive, {} \
         marked (figures stand with a large bound).</p>",
        escape(&report.tool),
        report.settings.profile.name(),
        summary.cells,
        summary.exit_code,
        summary.gaps,
        summary.known_gaps,
        summary.unexpected_gaps,
        summary.failures,
        summary.driver_limited_cells,
        summary.marked_cells
    );
    verdicts::section(&mut out, report);
    logout_to_refusal(&mut out, report);
    cost::section(&mut out, report, dir);
    writeup::section(&mut out, report);
    tables(&mut out, report);
    how(&mut out, report);
    out.push_str("</body></html>\n");
    out
}

/// How fast each gateway refused an ended session's token (`matrix/logout.rs`).
fn logout_to_refusal(out: &mut String, report: &Report) {
    if report.logout_to_refusal.is_empty() {
        return;
    }
    out.push_str(
        "<section id=\"logout-to-refusal\"><h2>How fast a logout at Keycloak was refused</h2>\n",
    );
    let _ = writeln!(out, "<p>{}</p>", escape(super::logout::TABLE_NOTE));
    table(out, &super::logout::TABLE_HEADER, &report.logout_rows());
    out.push_str("</section>\n");
}

fn tables(out: &mut String, report: &Report) {
    out.push_str("<section id=\"tables\"><h2>Full tables</h2>\n");
    out.push_str("<details open><summary>Security verdicts (all rates)</summary>\n");
    table(out, &VERDICT_HEADER, &report.verdict_rows());
    out.push_str("</details>\n");
    for rate in report.settings.all_rates() {
        let rows = report.performance_rows(rate);
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "<details><summary>{rate} req/s</summary>");
        table(out, &PERFORMANCE_HEADER, &rows);
        out.push_str("</details>\n");
    }
    out.push_str("</section>\n");
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><tr>");
    for name in header {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn how(out: &mut String, report: &Report) {
    let s = &report.settings;
    let summary = &report.summary;
    out.push_str("<section id=\"how\"><h2>How the run was made</h2>\n<ul>\n");
    let lines = [
        format!("Tool: {}; profile {}.", report.tool, s.profile.name()),
        versions(s.target.is_some()),
        format!("Gateways: {}.", s.gateways.join(", ")),
        format!(
            "Rates: {} req/s (API scenarios), {} req/s (policy scenarios), {} req/s (at Keycloak).",
            rate_list(&s.rates),
            rate_list(&s.policy_rates),
            rate_list(&s.idp_rates)
        ),
        format!(
            "Cells: {} s measured after {} s warm-up, open loop; {} distinct tokens per kind; \
             {} driver thread(s), at most {} connections; {} Envoy worker(s) per gateway.",
            s.duration_secs,
            s.warmup_secs,
            s.pool_size,
            s.driver_threads,
            s.max_in_flight,
            s.envoy_workers
        ),
        format!("Machine: {}.", machine()),
        format!(
            "Driver validity: {} of {} cells valid, {} saturated (the target could not keep \
             up: a result), {} this machine could not drive (driver behind and load not \
             delivered, or late sends over half the median: no figures), {} marked (late \
             sends moved the tail: figures stand with their p99 bound).",
            summary.cells - summary.saturated_cells - summary.driver_limited_cells,
            summary.cells,
            summary.saturated_cells,
            summary.driver_limited_cells,
            summary.marked_cells
        ),
    ];
    let noise = report.machine_noise.as_ref().map(super::report::noise_line);
    for line in lines.iter().chain(noise.iter()) {
        let _ = writeln!(out, "<li>{}</li>", escape(line));
    }
    if let Some(target) = &s.target {
        let _ = writeln!(
            out,
            "<li>Driven against a running stack at {}.</li>",
            escape(target)
        );
    }
    out.push_str("</ul>\n");
    let limited: Vec<&Cell> = report
        .cells
        .iter()
        .filter(|cell| matches!(cell.health, Health::DriverLimited { .. }))
        .collect();
    if !limited.is_empty() {
        let _ = writeln!(
            out,
            "<details class=\"warn\"><summary>{} cells this machine could not drive on \
             schedule</summary><ul>",
            limited.len()
        );
        for cell in limited {
            if let Health::DriverLimited { reasons } = &cell.health {
                let _ = writeln!(
                    out,
                    "<li><code>{} {} @ {} req/s</code>: {}</li>",
                    escape(&cell.gateway),
                    escape(&cell.scenario),
                    cell.rate,
                    escape(&reasons.join("; "))
                );
            }
        }
        out.push_str("</ul></details>\n");
    }
    out.push_str("</section>\n");
}

/// What the stack ran: Keycloak's version is the harness's; Envoy's is asked of the binary the
/// stack uses (best effort). A run against `--target` drove a stack of someone else's making.
fn versions(external: bool) -> String {
    if external {
        return "Versions: the target's own (an external stack).".to_owned();
    }
    let envoy = crate::paths::envoy_binary()
        .ok()
        .and_then(|binary| {
            std::process::Command::new(binary)
                .arg("--version")
                .output()
                .ok()
        })
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            let (_, version) = text.split_once("version:")?;
            Some(version.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!(
        "Versions: Envoy {envoy}; Keycloak {}; the filter built from this checkout.",
        crate::keycloak::VERSION
    )
}

/// CPU model, core count and kernel, from /proc (best effort: absent facts are left out).
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| format!(", Linux {}", text.trim()))
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let kib: u64 = text
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(format!(", {:.0} GiB", kib as f64 / (1024.0 * 1024.0)))
        })
        .unwrap_or_default();
    format!("{model}, {cores} cores available{memory}{kernel}")
}

fn gateway_order(report: &Report) -> Vec<String> {
    let mut gateways: Vec<String> = Vec::new();
    for row in &report.verdicts {
        if !gateways.contains(&row.gateway) {
            gateways.push(row.gateway.clone());
        }
    }
    gateways
}

fn find<'a>(report: &'a Report, gateway: &str, scenario: &str) -> Option<&'a VerdictRow> {
    report
        .verdicts
        .iter()
        .find(|row| row.gateway == gateway && row.scenario == scenario)
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn status_summary(counts: &BTreeMap<u16, u64>) -> String {
    counts
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

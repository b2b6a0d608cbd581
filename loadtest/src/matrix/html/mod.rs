//! `report.html`: the report a person opens first, one self-contained file (inline CSS and
//! SVG, no script, nothing fetched), in the order of the questions a reader has:
//!
//! 1. what did each gateway let through — the verdicts, gateway × token kind, GAPs with the
//!    request that showed them and why they are known (the expired-token GAP of `jwt-no-exp`
//!    first: the write-up's finding);
//! 2. what did it cost — latency against rate per gateway, the IdP's own numbers apart;
//! 3. the full tables;
//! 4. how the run was made — settings, machine, whether the driver kept its schedule.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::matrix::report::{Cell, Health, PERFORMANCE_HEADER, Report, VERDICT_HEADER, VerdictRow};
use crate::matrix::scenario::{API_SCENARIOS, Verdict};

/// The chart files [`super::charts::write_all`] wrote, inlined in this order (the rest follow
/// in a collapsed section).
const HEADLINE_CHARTS: [&str; 2] = ["latency-api-valid.svg", "latency-api-invalid-signature.svg"];

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#1b1b1b}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2}
td.PASS{background:#d9f2d9}td.GAP{background:#f8d0d0;font-weight:bold}
td.FAIL{background:#ffe0a0;font-weight:bold}td.NOT_APPLICABLE{background:#eee;color:#777}
td.known{background:#fbe3c8}
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
    let _ = writeln!(
        out,
        "<p>{} — profile <code>{}</code>, {} cells, exit {}.</p>",
        escape(&report.tool),
        report.settings.profile.name(),
        report.summary.cells,
        report.summary.exit_code
    );
    verdicts(&mut out, report);
    logout_to_refusal(&mut out, report);
    cost(&mut out, report, dir);
    tables(&mut out, report);
    how(&mut out, report);
    out.push_str("</body></html>\n");
    out
}

fn verdicts(out: &mut String, report: &Report) {
    out.push_str("<section id=\"verdicts\"><h2>What each gateway let through</h2>\n");
    let gaps: Vec<&VerdictRow> = report
        .verdicts
        .iter()
        .filter(|row| row.verdict == Verdict::Gap)
        .collect();
    // The write-up's finding first: a gateway that does not verify `exp` admits expired tokens.
    let mut ordered = gaps.clone();
    ordered.sort_by_key(|row| !(row.gateway == "jwt-no-exp" && row.scenario == "api-expired"));
    if let Some(first) = ordered.first() {
        let _ = writeln!(
            out,
            "<div class=\"headline\" id=\"headline\"><strong>GAP: <code>{}</code> admitted {} \
             ({}).</strong> {} Sample: <code>{}</code></div>",
            escape(&first.gateway),
            escape(&first.request),
            escape(&first.scenario),
            escape(&gap_sentence(first)),
            escape(first.sample_request_id.as_deref().unwrap_or("none"))
        );
    } else {
        out.push_str("<div class=\"ok\">No gateway admitted anything it must refuse.</div>\n");
    }
    let unexpected = report.summary.unexpected_gaps;
    if unexpected > 0 {
        let _ = writeln!(
            out,
            "<div class=\"headline\"><strong>{unexpected} GAP(s) on gateways not known to be \
             insecure.</strong></div>"
        );
    }

    // Gateways down, the API token kinds across.
    let gateways = gateway_order(report);
    let kinds: Vec<String> = API_SCENARIOS
        .iter()
        .map(|s| s.name())
        .filter(|name| report.verdicts.iter().any(|v| &v.scenario == name))
        .collect();
    if !kinds.is_empty() {
        out.push_str("<table id=\"verdict-grid\"><tr><th>gateway \\ token on /api/orders</th>");
        for kind in &kinds {
            let _ = write!(out, "<th>{}</th>", escape(kind.trim_start_matches("api-")));
        }
        out.push_str("</tr>\n");
        for gateway in &gateways {
            let _ = write!(out, "<tr><th>{}</th>", escape(gateway));
            for kind in &kinds {
                match find(report, gateway, kind) {
                    Some(row) => grid_cell(out, row),
                    None => out.push_str("<td></td>"),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }

    // The policy gateway's own scenarios, one row each.
    let policy: Vec<&VerdictRow> = report
        .verdicts
        .iter()
        .filter(|row| row.scenario.starts_with("policy-") && row.cells > 0)
        .collect();
    if !policy.is_empty() {
        out.push_str(
            "<h3>Per-route policy (envoy/policy.yaml, Keycloak's two realms)</h3>\n<table \
             id=\"policy-verdicts\"><tr><th>gateway</th><th>request</th><th>secure \
             gateway</th><th>answers</th><th>verdict</th></tr>\n",
        );
        for row in policy {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                escape(&row.gateway),
                escape(&row.request),
                secure_words(row),
                escape(&status_summary(&row.actual))
            );
            grid_cell(out, row);
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }

    if !gaps.is_empty() {
        out.push_str("<h3>Every GAP, in one sentence each</h3>\n<ul id=\"gaps\">\n");
        for row in ordered {
            let _ = writeln!(
                out,
                "<li><code>{}</code> admitted {}: {} <small>(sample <code>{}</code>)</small></li>",
                escape(&row.gateway),
                escape(&row.request),
                escape(&gap_sentence(row)),
                escape(row.sample_request_id.as_deref().unwrap_or("none"))
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

/// Why a GAP is there, for a reader who has not read the gateway's configuration.
fn gap_sentence(row: &VerdictRow) -> String {
    match (row.scenario.as_str(), row.known_gap) {
        ("api-expired", Some(_)) => "Known: this gateway is configured not to verify exp \
             (misconfigured on purpose, as in the write-up), so a token past its expiry is \
             still admitted."
            .to_owned(),
        ("api-revoked", Some(_)) => "Known: local signature validation cannot see a \
             revocation at the IdP; only introspection (introspect, hybrid) does."
            .to_owned(),
        (_, Some(reason)) => format!("Known: {reason}."),
        (_, None) if row.leaked > 0 => format!(
            "Unexpected: the forged {} header reached the backend {} times.",
            row.must_strip.unwrap_or("identity"),
            row.leaked
        ),
        (_, None) => "Unexpected: this gateway is not known to admit it.".to_owned(),
    }
}

fn grid_cell(out: &mut String, row: &VerdictRow) {
    let (class, text) = match row.verdict {
        Verdict::Pass => ("PASS", "PASS".to_owned()),
        Verdict::Gap if row.known_gap.is_some() => ("GAP known", "GAP (known)".to_owned()),
        Verdict::Gap => ("GAP", "GAP".to_owned()),
        Verdict::Fail => ("FAIL", "FAIL".to_owned()),
        Verdict::NotApplicable => ("NOT_APPLICABLE", "n/a".to_owned()),
    };
    let title = match row.verdict {
        Verdict::NotApplicable => row.not_applicable.unwrap_or("not applicable").to_owned(),
        _ => status_summary(&row.actual),
    };
    let _ = write!(
        out,
        "<td class=\"{class}\" title=\"{}\">{}</td>",
        escape(&title),
        escape(&text)
    );
}

fn secure_words(row: &VerdictRow) -> String {
    let mut text = match row.secure {
        crate::matrix::scenario::Secure::Admit => "admit".to_owned(),
        crate::matrix::scenario::Secure::Refuse => "refuse".to_owned(),
    };
    if let Some(header) = row.must_strip {
        text.push_str(&format!(", strip {header}"));
    }
    escape(&text)
}

fn cost(out: &mut String, report: &Report, dir: &Path) {
    out.push_str("<section id=\"cost\"><h2>What it cost</h2>\n");
    out.push_str(
        "<p>Latency is measured from each request's due time (open loop): p50 solid, p99 \
         dashed, one colour per gateway, named at the line's end in the table below.</p>\n",
    );
    cost_table(out, report);
    for chart in HEADLINE_CHARTS {
        inline_chart(out, dir, chart);
    }
    let idp: Vec<&Cell> = report
        .cells
        .iter()
        .filter(|cell| cell.gateway == "keycloak")
        .collect();
    if !idp.is_empty() {
        out.push_str(
            "<h3>The IdP's own cost (Keycloak, not a gateway)</h3>\n<p>Token generation and \
             introspection straight at Keycloak, at a rate it sustains next to the gateways on \
             this machine.</p>\n<table id=\"idp\"><tr><th>scenario</th><th>target \
             req/s</th><th>achieved</th><th>p50 ms</th><th>p99 ms</th><th>statuses</th></tr>\n",
        );
        for cell in idp {
            let latency = &cell.result.latency_corrected;
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&cell.scenario),
                cell.rate,
                cell.result.achieved_rate,
                ms(latency.p50_us),
                ms(latency.p99_us),
                escape(&status_summary(&cell.result.status_counts))
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str(
        "<p>Envoy CPU per request is not measured by the matrix: <code>cargo bench -p \
         loadtest --bench envoy_cpu</code> measures it per gateway.</p>\n",
    );
    let mut rest: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".svg") && !HEADLINE_CHARTS.contains(&name.as_str()))
        .collect();
    rest.sort();
    if !rest.is_empty() {
        out.push_str("<details><summary>Every chart</summary>\n");
        for chart in &rest {
            inline_chart(out, dir, chart);
        }
        out.push_str("</details>\n");
    }
    out.push_str("</section>\n");
}

/// Valid tokens on /api/orders: p50 / p99 per gateway and rate, the numbers behind the chart.
fn cost_table(out: &mut String, report: &Report) {
    let cells: Vec<&Cell> = report
        .cells
        .iter()
        .filter(|cell| cell.scenario == "api-valid")
        .collect();
    if cells.is_empty() {
        return;
    }
    let mut rates: Vec<f64> = cells.iter().map(|cell| cell.rate).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    out.push_str("<table id=\"cost-table\"><tr><th>gateway (valid token)</th>");
    for rate in &rates {
        let _ = write!(out, "<th>{rate} req/s: p50 / p99 ms</th>");
    }
    out.push_str("</tr>\n");
    for gateway in gateway_order(report) {
        let _ = write!(out, "<tr><th>{}</th>", escape(&gateway));
        for rate in &rates {
            match cells
                .iter()
                .find(|cell| cell.gateway == gateway && cell.rate == *rate)
            {
                Some(cell) => {
                    let latency = &cell.result.latency_corrected;
                    let mark = match cell.health {
                        Health::Valid => "",
                        Health::Saturated { .. } => " (saturated)",
                        Health::DriverLimited { .. } => " (driver late)",
                    };
                    let _ = write!(
                        out,
                        "<td>{} / {}{mark}</td>",
                        ms(latency.p50_us),
                        ms(latency.p99_us)
                    );
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn inline_chart(out: &mut String, dir: &Path, name: &str) {
    let Ok(svg) = std::fs::read_to_string(dir.join(name)) else {
        return;
    };
    // The SVG element itself: an XML declaration is not allowed inside HTML.
    let Some(start) = svg.find("<svg") else {
        return;
    };
    let _ = writeln!(
        out,
        "<figure class=\"chart\" data-chart=\"{}\">{}<figcaption>{}</figcaption></figure>",
        escape(name),
        &svg[start..],
        escape(name)
    );
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
    let rates = |rates: &[f64]| {
        rates
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lines = [
        format!("Tool: {}; profile {}.", report.tool, s.profile.name()),
        format!("Gateways: {}.", s.gateways.join(", ")),
        format!(
            "Rates: {} req/s (API scenarios), {} req/s (policy scenarios), {} req/s (at Keycloak).",
            rates(&s.rates),
            rates(&s.policy_rates),
            rates(&s.idp_rates)
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
             up: a result), {} driver-limited (requests went out late: latency figures \
             distorted).",
            summary.cells - summary.saturated_cells - summary.driver_limited_cells,
            summary.cells,
            summary.saturated_cells,
            summary.driver_limited_cells
        ),
    ];
    for line in lines {
        let _ = writeln!(out, "<li>{}</li>", escape(&line));
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

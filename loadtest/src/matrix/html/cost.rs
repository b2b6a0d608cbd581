//! What it cost: latency against rate per gateway (a table and the charts), Envoy CPU per
//! request where the `envoy_cpu` bench measured it, and the IdP's own numbers, apart from the
//! gateways' because they are Keycloak's cost.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{escape, gateway_order, ms, status_summary};
use crate::matrix::report::{Cell, Health, Report};

/// The chart files [`crate::matrix::charts::write_all`] wrote, inlined in this order (the
/// rest follow in a collapsed section).
pub const HEADLINE_CHARTS: [&str; 2] =
    ["latency-api-valid.svg", "latency-api-invalid-signature.svg"];

pub(super) fn section(out: &mut String, report: &Report, dir: &Path) {
    out.push_str("<section id=\"cost\"><h2>What it cost</h2>\n");
    out.push_str(
        "<p>Latency is measured from each request's due time (open loop): p50 solid, p99 \
         dashed, one colour per gateway, each line named at its end.</p>\n",
    );
    latency_table(out, report);
    for chart in HEADLINE_CHARTS {
        inline_chart(out, dir, chart);
    }
    envoy_cpu(out, &bench_path());
    idp(out, report);
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
fn latency_table(out: &mut String, report: &Report) {
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

/// Token generation and introspection straight at Keycloak.
fn idp(out: &mut String, report: &Report) {
    let cells: Vec<&Cell> = report
        .cells
        .iter()
        .filter(|cell| cell.gateway == "keycloak")
        .collect();
    if cells.is_empty() {
        return;
    }
    out.push_str(
        "<h3>The IdP's own cost (Keycloak, not a gateway)</h3>\n<p>Token generation and \
         introspection straight at Keycloak, at a rate it sustains next to the gateways on \
         this machine.</p>\n<table id=\"idp\"><tr><th>scenario</th><th>target \
         req/s</th><th>achieved</th><th>avg ms</th><th>p50 ms</th><th>p99 \
         ms</th><th>statuses</th></tr>\n",
    );
    for cell in cells {
        let latency = &cell.result.latency_corrected;
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            escape(&cell.scenario),
            cell.rate,
            cell.result.achieved_rate,
            latency.mean_us / 1000.0,
            ms(latency.p50_us),
            ms(latency.p99_us),
            escape(&status_summary(&cell.result.status_counts))
        );
    }
    out.push_str("</table>\n");
}

/// What `cargo bench -p loadtest --bench envoy_cpu` writes (the fields read here).
#[derive(Debug, Deserialize)]
struct Bench {
    unix_time: Option<u64>,
    scenarios: Vec<BenchScenario>,
}

#[derive(Debug, Deserialize)]
struct BenchScenario {
    scenario: String,
    gateway: Option<String>,
    requests_per_second: Option<f64>,
    envoy_cpu_us_per_request: Option<f64>,
}

/// Where the bench writes its figures: `<target>/bench/envoy_cpu.json`.
fn bench_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from("target"), PathBuf::from);
    crate::paths::repo_root()
        .join(target)
        .join("bench/envoy_cpu.json")
}

/// Envoy CPU per request is the bench's measurement (closed loop, one worker), not the
/// matrix's: shown when the bench has run on this checkout, with when it ran.
fn envoy_cpu(out: &mut String, path: &Path) {
    let bench: Option<Bench> = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let Some(bench) = bench.filter(|b| !b.scenarios.is_empty()) else {
        out.push_str(
            "<p id=\"envoy-cpu\">Envoy CPU per request: not measured on this checkout. \
             <code>cargo bench -p loadtest --bench envoy_cpu</code> measures it per gateway \
             and the next report shows it here.</p>\n",
        );
        return;
    };
    let when = bench
        .unix_time
        .map_or_else(String::new, |t| format!(" ({})", utc_date(t)));
    let _ = writeln!(
        out,
        "<h3>Envoy CPU per request</h3>\n<p>From the <code>envoy_cpu</code> bench's last \
         run{} on this checkout (one Envoy worker, closed loop), not from this run.</p>\n\
         <table id=\"envoy-cpu\"><tr><th>bench scenario</th><th>gateway</th><th>Envoy CPU \
         µs / request</th><th>req/s</th></tr>",
        escape(&when)
    );
    for scenario in &bench.scenarios {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&scenario.scenario),
            escape(scenario.gateway.as_deref().unwrap_or("")),
            scenario
                .envoy_cpu_us_per_request
                .map_or_else(|| "–".to_owned(), |us| format!("{us:.1}")),
            scenario
                .requests_per_second
                .map_or_else(|| "–".to_owned(), |r| format!("{r:.0}"))
        );
    }
    out.push_str("</table>\n");
}

/// `2026-12-02 13:45 UTC` for a Unix time (the civil calendar from days since 1970-01-01).
fn utc_date(unix: u64) -> String {
    let (days, seconds) = ((unix / 86_400) as i64, unix % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        seconds / 3_600,
        seconds % 3_600 / 60
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_cpu_is_shown_when_the_bench_ran_and_said_missing_otherwise() {
        let dir = crate::paths::run_dir("html-cpu");
        let path = dir.join("envoy_cpu.json");
        let mut out = String::new();
        envoy_cpu(&mut out, &path);
        assert!(out.contains("not measured on this checkout"), "{out}");
        std::fs::write(
            &path,
            r#"{"unix_time": 1764683100, "scenarios": [{"scenario": "jwt", "gateway": "jwt",
                "requests_per_second": 4000.0, "envoy_cpu_us_per_request": 91.5}]}"#,
        )
        .unwrap();
        let mut out = String::new();
        envoy_cpu(&mut out, &path);
        assert!(
            out.contains("<td>jwt</td><td>jwt</td><td>91.5</td><td>4000</td>"),
            "{out}"
        );
        assert!(out.contains("last run (2025-12-02 13:45 UTC)"), "{out}");
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
    }
}

//! "Kong JWT plugin vs tokengate": the write-up's published figures (`loadtest/data/
//! writeup.json`, one file with its source named) next to this run's for the same scenarios
//! and load. The API scenarios compare with tokengate's `jwt` gateway (exp verified) and
//! `jwt-no-exp` (configured as the write-up's Kong was); Keycloak's own scenarios with the
//! cells at Keycloak, at whatever rate this run drove them (the IdP's cost, not a gateway's).

use std::fmt::Write as _;

use serde::Deserialize;

use super::{escape, status_summary};
use crate::matrix::report::{Cell, Report};

/// The article's figures, compiled in: a report never depends on where it is rendered.
pub const DATA: &str = include_str!("../../../data/writeup.json");

/// The gateways an API scenario of the article is compared with.
pub const COMPARED_GATEWAYS: [&str; 2] = ["jwt", "jwt-no-exp"];

#[derive(Debug, Deserialize)]
pub struct Writeup {
    pub source: Source,
    pub provenance: String,
    pub error_pct_note: String,
    pub figures: Vec<Figure>,
}

#[derive(Debug, Deserialize)]
pub struct Source {
    pub title: String,
    pub publisher: String,
    pub url: String,
    pub setup: String,
}

/// One row of the article's results: a scenario at a load level. A figure the article's
/// record does not give is `None`.
#[derive(Debug, Deserialize)]
pub struct Figure {
    pub load_rps: f64,
    pub article_scenario: String,
    /// This project's scenarios it compares with.
    pub scenarios: Vec<String>,
    /// Low and high (equal for a single figure).
    pub avg_ms: Option<[f64; 2]>,
    pub error_pct: Option<f64>,
    pub throughput_rps_approx: Option<f64>,
    pub note: Option<String>,
}

pub fn load() -> Result<Writeup, serde_json::Error> {
    serde_json::from_str(DATA)
}

pub(super) fn section(out: &mut String, report: &Report) {
    let writeup = match load() {
        Ok(writeup) => writeup,
        Err(err) => {
            let _ = writeln!(
                out,
                "<p class=\"warn\">The write-up's figures could not be read: {}</p>",
                escape(&err.to_string())
            );
            return;
        }
    };
    let source = &writeup.source;
    let _ = writeln!(
        out,
        "<section id=\"writeup\"><h2>Kong JWT plugin vs tokengate</h2>\n<p>The write-up \
         <cite>{}</cite> ({}, <code>{}</code>): {}</p>\n<p><small>{} {}</small></p>",
        escape(&source.title),
        escape(&source.publisher),
        escape(&source.url),
        escape(&source.setup),
        escape(&writeup.provenance),
        escape(&writeup.error_pct_note)
    );
    out.push_str(
        "<table id=\"writeup-table\"><tr><th rowspan=\"2\">load</th><th \
         rowspan=\"2\">scenario</th><th colspan=\"3\">write-up (Kong JWT plugin)</th><th \
         colspan=\"7\">this run (tokengate)</th></tr>\n<tr><th>avg ms</th><th>error \
         %</th><th>throughput</th><th>gateway</th><th>target req/s</th><th>achieved</th><th>avg \
         ms</th><th>non-2xx %</th><th>unexpected %</th><th>statuses</th></tr>\n",
    );
    for figure in &writeup.figures {
        let ours = matches(report, figure);
        let span = ours.len().max(1);
        let _ = write!(
            out,
            "<tr><td rowspan=\"{span}\">{} RPS</td><td rowspan=\"{span}\">{}{}</td><td \
             rowspan=\"{span}\">{}</td><td rowspan=\"{span}\">{}</td><td rowspan=\"{span}\">{}</td>",
            figure.load_rps,
            escape(&figure.article_scenario),
            figure
                .note
                .as_deref()
                .map_or_else(String::new, |n| format!("<br><small>{}</small>", escape(n))),
            avg(figure.avg_ms),
            figure
                .error_pct
                .map_or_else(|| "not recorded".to_owned(), |e| format!("{e:.2}")),
            figure
                .throughput_rps_approx
                .map_or_else(|| "not recorded".to_owned(), |t| format!("≈{t:.0} RPS"))
        );
        if ours.is_empty() {
            out.push_str("<td colspan=\"7\">not run in this run</td></tr>\n");
            continue;
        }
        for (index, cell) in ours.iter().enumerate() {
            if index > 0 {
                out.push_str("<tr>");
            }
            our_columns(out, cell, figure.scenarios.len() > 1);
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</table>\n</section>\n");
}

/// This run's cells for `figure`: the API scenarios on the compared gateways at the same
/// load; Keycloak's scenarios at the same load if run there, else at every rate they ran.
fn matches<'a>(report: &'a Report, figure: &Figure) -> Vec<&'a Cell> {
    let of_scenario = |cell: &&Cell| figure.scenarios.contains(&cell.scenario);
    let gateway: Vec<&Cell> = COMPARED_GATEWAYS
        .iter()
        .flat_map(|gateway| {
            report
                .cells
                .iter()
                .filter(of_scenario)
                .filter(move |cell| cell.gateway == *gateway && cell.rate == figure.load_rps)
        })
        .collect();
    if !gateway.is_empty() {
        return gateway;
    }
    let idp: Vec<&Cell> = report
        .cells
        .iter()
        .filter(of_scenario)
        .filter(|cell| cell.gateway == "keycloak")
        .collect();
    let same_load: Vec<&Cell> = idp
        .iter()
        .copied()
        .filter(|cell| cell.rate == figure.load_rps)
        .collect();
    if same_load.is_empty() { idp } else { same_load }
}

/// `with_scenario`: the figure covers several of this run's scenarios, so each row names its.
fn our_columns(out: &mut String, cell: &Cell, with_scenario: bool) {
    let result = &cell.result;
    let answered: u64 = result.status_counts.values().sum();
    let non_2xx = answered.saturating_sub(cell.admitted);
    let non_2xx_pct = if answered == 0 {
        100.0
    } else {
        100.0 * non_2xx as f64 / answered as f64
    };
    let _ = write!(
        out,
        "<td>{}{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{non_2xx_pct:.2}</td>\
         <td>{:.2}</td><td>{}</td>",
        escape(&cell.gateway),
        if with_scenario {
            format!("<br><small>{}</small>", escape(&cell.scenario))
        } else {
            String::new()
        },
        cell.rate,
        result.achieved_rate,
        result.latency_corrected.mean_us / 1000.0,
        cell.unexpected_pct,
        escape(&status_summary(&result.status_counts))
    );
}

fn avg(range: Option<[f64; 2]>) -> String {
    match range {
        None => "not recorded".to_owned(),
        Some([low, high]) if low == high => format!("{low:.2}"),
        Some([low, high]) => format!("{low:.2}–{high:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::scenario::Scenario;

    /// The data file parses, names its source, and compares only with scenarios that exist.
    #[test]
    fn the_writeup_data_names_its_source_and_real_scenarios() {
        let writeup = load().unwrap();
        assert!(writeup.source.url.starts_with("https://"));
        assert!(!writeup.provenance.is_empty());
        assert!(!writeup.figures.is_empty());
        for figure in &writeup.figures {
            assert!(
                [100.0, 500.0, 1000.0].contains(&figure.load_rps),
                "{figure:?}"
            );
            assert!(!figure.scenarios.is_empty());
            for name in &figure.scenarios {
                assert!(Scenario::parse(name).is_some(), "unknown scenario {name}");
            }
            if let Some([low, high]) = figure.avg_ms {
                assert!(0.0 < low && low <= high, "{figure:?}");
            }
        }
    }
}

//! The report's first screen: what each gateway let through. The write-up's finding (a gateway
//! that does not verify `exp` admits expired tokens) is the headline when it was measured; the
//! grid is gateway × token kind; every GAP follows with its sample request and one sentence.

use std::fmt::Write as _;

use super::{escape, find, gateway_order, status_summary};
use crate::matrix::report::{Report, VerdictRow};
use crate::matrix::scenario::{API_SCENARIOS, Secure, Verdict};

/// The write-up's finding: the GAP the headline names first when it is there.
pub const HEADLINE_GAP: (&str, &str) = ("jwt-no-exp", "api-expired");

pub(super) fn section(out: &mut String, report: &Report) {
    out.push_str("<section id=\"verdicts\"><h2>What each gateway let through</h2>\n");
    let mut gaps: Vec<&VerdictRow> = report
        .verdicts
        .iter()
        .filter(|row| row.verdict == Verdict::Gap)
        .collect();
    gaps.sort_by_key(|row| (row.gateway.as_str(), row.scenario.as_str()) != HEADLINE_GAP);
    headline(out, report, &gaps);
    grid(out, report);
    policy(out, report);
    if !gaps.is_empty() {
        out.push_str("<h3>Every GAP, in one sentence each</h3>\n<ul id=\"gaps\">\n");
        for row in &gaps {
            let _ = writeln!(
                out,
                "<li><code>{}</code> admitted {}: {} <small>(sample <code>{}</code>)</small></li>",
                escape(&row.gateway),
                escape(&row.request),
                escape(&gap_sentence(row)),
                escape(sample(row))
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn headline(out: &mut String, report: &Report, gaps: &[&VerdictRow]) {
    match gaps.first() {
        Some(first) => {
            let _ = writeln!(
                out,
                "<div class=\"headline\" id=\"headline\"><strong>GAP: <code>{}</code> admitted \
                 {} ({}).</strong> {} Sample: <code>{}</code></div>",
                escape(&first.gateway),
                escape(&first.request),
                escape(&first.scenario),
                escape(&gap_sentence(first)),
                escape(sample(first))
            );
        }
        None => {
            out.push_str("<div class=\"ok\">No gateway admitted anything it must refuse.</div>\n")
        }
    }
    let unexpected = report.summary.unexpected_gaps;
    if unexpected > 0 {
        let _ = writeln!(
            out,
            "<div class=\"headline\" id=\"unexpected\"><strong>{unexpected} GAP(s) on gateways \
             not known to be insecure.</strong></div>"
        );
    }
}

/// Gateways down, the API token kinds across; each cell says PASS or GAP, its tooltip the
/// answers counted, and a GAP cell the sample request that showed it.
fn grid(out: &mut String, report: &Report) {
    let kinds: Vec<String> = API_SCENARIOS
        .iter()
        .map(|s| s.name())
        .filter(|name| report.verdicts.iter().any(|v| &v.scenario == name))
        .collect();
    if kinds.is_empty() {
        return;
    }
    out.push_str("<table id=\"verdict-grid\"><tr><th>gateway \\ token on /api/orders</th>");
    for kind in &kinds {
        let _ = write!(out, "<th>{}</th>", escape(kind.trim_start_matches("api-")));
    }
    out.push_str("</tr>\n");
    for gateway in gateway_order(report) {
        let _ = write!(
            out,
            "<tr data-gateway=\"{0}\"><th>{0}</th>",
            escape(&gateway)
        );
        for kind in &kinds {
            match find(report, &gateway, kind) {
                Some(row) => cell(out, row),
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str(
        "</table>\n<p class=\"key\"><span class=\"PASS\">PASS</span> answered as a secure \
         gateway must · <span class=\"GAP\">GAP</span> admitted a token it must refuse · \
         <span class=\"known\">GAP (known)</span> documented for this gateway, explained below \
         · <span class=\"NOT_APPLICABLE\">n/a</span> the gateway does not authenticate. Hover a \
         cell for the answers counted.</p>\n",
    );
}

/// The policy gateway's own scenarios, one row each.
fn policy(out: &mut String, report: &Report) {
    let rows: Vec<&VerdictRow> = report
        .verdicts
        .iter()
        .filter(|row| row.scenario.starts_with("policy-") && row.cells > 0)
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Per-route policy (envoy/policy.yaml, Keycloak's two realms)</h3>\n<table \
         id=\"policy-verdicts\"><tr><th>gateway</th><th>request</th><th>secure \
         gateway</th><th>answers</th><th>verdict</th></tr>\n",
    );
    for row in rows {
        let _ = write!(
            out,
            "<tr data-gateway=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            escape(&row.gateway),
            escape(&row.gateway),
            escape(&row.request),
            secure_words(row),
            escape(&status_summary(&row.actual))
        );
        cell(out, row);
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// Why a GAP is there, for a reader who has not read the gateway's configuration.
pub(super) fn gap_sentence(row: &VerdictRow) -> String {
    match (row.scenario.as_str(), row.known_gap) {
        ("api-expired", Some(_)) => "Known: this gateway is configured not to verify exp \
             (misconfigured on purpose, as in the write-up), so a token past its expiry is \
             still admitted."
            .to_owned(),
        ("api-revoked", Some(_)) => "Known: local signature validation cannot see a \
             revocation at the IdP; only introspection (introspect, hybrid) does."
            .to_owned(),
        ("api-logged-out", Some(reason)) => {
            format!("Known: {reason}, so a token of an ended session stays valid until it expires.")
        }
        (_, Some(reason)) => format!("Known: {reason}."),
        (_, None) if row.leaked > 0 => format!(
            "Unexpected: the forged {} header reached the backend {} times.",
            row.must_strip.unwrap_or("identity"),
            row.leaked
        ),
        (_, None) => "Unexpected: this gateway is not known to admit it.".to_owned(),
    }
}

fn sample(row: &VerdictRow) -> &str {
    row.sample_request_id.as_deref().unwrap_or("none recorded")
}

fn cell(out: &mut String, row: &VerdictRow) {
    let headline = (row.gateway.as_str(), row.scenario.as_str()) == HEADLINE_GAP;
    let (class, text) = match row.verdict {
        Verdict::Pass => ("PASS", "PASS"),
        Verdict::Gap if headline => ("GAP known lead", "GAP (known)"),
        Verdict::Gap if row.known_gap.is_some() => ("GAP known", "GAP (known)"),
        Verdict::Gap => ("GAP", "GAP"),
        Verdict::Fail => ("FAIL", "FAIL"),
        Verdict::NotApplicable => ("NOT_APPLICABLE", "n/a"),
    };
    let mut title = match row.verdict {
        Verdict::NotApplicable => row.not_applicable.unwrap_or("not applicable").to_owned(),
        _ => status_summary(&row.actual),
    };
    if row.verdict == Verdict::Gap {
        title.push_str(&format!("; sample {}", sample(row)));
    }
    let _ = write!(
        out,
        "<td class=\"{class}\" data-scenario=\"{}\" title=\"{}\">{}",
        escape(&row.scenario),
        escape(&title),
        text
    );
    // The sample's answer in the cell (the whole request id is in the tooltip and below).
    if let Some((_, answer)) = row
        .sample_request_id
        .as_deref()
        .and_then(|s| s.split_once(" → "))
    {
        let _ = write!(out, "<br><small>sample → {}</small>", escape(answer));
    }
    out.push_str("</td>");
}

fn secure_words(row: &VerdictRow) -> String {
    let mut text = match row.secure {
        Secure::Admit => "admit".to_owned(),
        Secure::Refuse => "refuse".to_owned(),
    };
    if let Some(header) = row.must_strip {
        text.push_str(&format!(", strip {header}"));
    }
    escape(&text)
}

//! The differential test against Envoy's own `jwt_authn`: the same generated tokens sent to
//! tokengate and to jwt_authn in one Envoy ([`stack`]), the verdicts compared. A token
//! tokengate admits and jwt_authn refuses is a finding unless [`intended`] lists it; the
//! reverse (tokengate stricter) is counted per category.
//!
//! The cases are the fixed edge cases of [`cases`] followed by seeded random ones
//! ([`random`]); the same seed and count give the same cases.

pub mod cases;
pub mod cli;
pub mod encodings;
pub mod intended;
pub mod mint;
pub mod random;
pub mod stack;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::task::JoinSet;

use cases::Template;
use stack::DiffStack;

/// How a listener answered: 200 from the backend is an admission, 401/403 a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    Refused(u16),
    /// Anything else: another status, or no answer (0).
    Other(u16),
}

impl Verdict {
    fn of(status: u16) -> Verdict {
        match status {
            200 => Verdict::Admitted,
            400 | 401 | 403 => Verdict::Refused(status),
            other => Verdict::Other(other),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub category: &'static str,
    pub label: String,
    pub authorization: String,
    pub tokengate: Verdict,
    pub reference: Verdict,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Cases in all, the fixed ones first (all of them, whatever the count).
    pub count: usize,
    /// Requests in flight per listener.
    pub concurrency: usize,
    /// Merged into tokengate's configuration (to show that a laxer filter is caught).
    pub tokengate_patch: Option<Value>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub total: usize,
    pub both_admitted: usize,
    pub both_refused: usize,
    /// tokengate admitted, jwt_authn refused, not an intended difference: failures.
    pub unintended: Vec<Finding>,
    /// tokengate admitted, jwt_authn refused, explained by [`intended::INTENDED`] (its name).
    pub intended: Vec<(Finding, &'static str)>,
    /// tokengate refused, jwt_authn admitted, per category: count and the first example.
    pub stricter: BTreeMap<&'static str, (usize, Finding)>,
    /// Any answer other than 200/400/401/403 from either listener: failures.
    pub errors: Vec<Finding>,
    /// Fixed valid cases (category `valid`) either listener refused: failures (a listener
    /// that refuses everything would otherwise pass).
    pub valid_refused: Vec<Finding>,
    /// Cases that are no valid header value, not sent.
    pub unsendable: usize,
    /// Cases per category.
    pub categories: BTreeMap<&'static str, usize>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.unintended.is_empty() && self.errors.is_empty() && self.valid_refused.is_empty()
    }

    /// Markdown: the totals, the findings, the stricter-than-jwt_authn table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} tokens: both admitted {}, both refused {}, tokengate stricter {}, \
             intended differences {}, unintended (tokengate admits, jwt_authn refuses) {}, \
             other answers {}, valid tokens refused {}, not sendable {}",
            self.total,
            self.both_admitted,
            self.both_refused,
            self.stricter.values().map(|(n, _)| n).sum::<usize>(),
            self.intended.len(),
            self.unintended.len(),
            self.errors.len(),
            self.valid_refused.len(),
            self.unsendable,
        );
        let cats: Vec<String> = self
            .categories
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = writeln!(out, "cases per category: {}", cats.join(", "));
        let mut section = |title: &str, findings: &[&Finding]| {
            if findings.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n{title}:");
            for f in findings.iter().take(50) {
                let _ = writeln!(
                    out,
                    "- [{}] {} — tokengate {:?}, jwt_authn {:?}: `{}`",
                    f.category,
                    f.label,
                    f.tokengate,
                    f.reference,
                    shorten(&f.authorization)
                );
                if let Some(payload) = decoded_payload(&f.authorization) {
                    let _ = writeln!(out, "  payload `{}`", shorten(&payload));
                }
            }
        };
        section(
            "UNINTENDED: tokengate admits, jwt_authn refuses",
            &self.unintended.iter().collect::<Vec<_>>(),
        );
        section("Other answers", &self.errors.iter().collect::<Vec<_>>());
        section(
            "Valid tokens refused",
            &self.valid_refused.iter().collect::<Vec<_>>(),
        );
        if !self.intended.is_empty() {
            let mut counts: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
            for (f, name) in &self.intended {
                counts.entry(name).or_insert((0, &f.label)).0 += 1;
            }
            let _ = writeln!(
                out,
                "\nIntended differences (tokengate admits, jwt_authn refuses):"
            );
            for (name, (count, example)) in counts {
                let _ = writeln!(out, "- {name}: {count} tokens, e.g. {example}");
            }
        }
        if !self.stricter.is_empty() {
            let _ = writeln!(
                out,
                "\ntokengate refuses, jwt_authn admits:\n\n| category | tokens | example |\n| --- | ---: | --- |"
            );
            for (category, (count, example)) in &self.stricter {
                let _ = writeln!(out, "| {category} | {count} | {} |", example.label);
            }
        }
        out
    }
}

/// The token's payload as text, when its second segment decodes.
pub fn decoded_payload(authorization: &str) -> Option<String> {
    let token = authorization.rsplit(' ').next()?;
    let payload = mint::unb64(token.split('.').nth(1)?)?;
    Some(String::from_utf8_lossy(&payload).into_owned())
}

fn shorten(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { '·' } else { c })
        .collect();
    if text.chars().count() <= 400 {
        return text;
    }
    let head: String = text.chars().take(80).collect();
    let tail: String = text
        .chars()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}…{tail}")
}

/// Every template for `options`: the fixed cases, then random ones up to the count.
pub fn templates(options: &Options) -> Vec<Template> {
    let mut all = cases::fixed();
    let fixed = all.len();
    all.extend((fixed..options.count.max(fixed)).map(|i| random::template(options.seed, i)));
    all
}

/// Starts the two listeners, sends every case to both, compares.
pub async fn run(options: &Options) -> Result<Report> {
    let stack = DiffStack::start(options.tokengate_patch.clone())?;
    stack
        .envoy
        .wait_for_stat(
            "wasmcustom.tokengate.jwks.keys_loaded",
            1,
            Duration::from_secs(30),
        )
        .await
        .context("tokengate never loaded the key set")?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let templates = templates(options);
    let issuer = stack.issuer();
    let mut report = Report::default();
    let chunk = options.concurrency.max(1);
    for group in templates.chunks(chunk) {
        // Minted just before they are sent: a time edge is measured from this moment.
        let now = unix_now();
        let mut requests = JoinSet::new();
        for (slot, template) in group.iter().enumerate() {
            let authorization = (template.make)(&issuer, now);
            if hyper::header::HeaderValue::from_str(&authorization).is_err() {
                // Not a header value any client could send (a mutation made it so).
                report.unsendable += 1;
                continue;
            }
            let client = client.clone();
            let urls = (stack.tokengate_url(), stack.reference_url());
            requests.spawn(async move {
                let (ours, theirs) = tokio::join!(
                    status(&client, &urls.0, &authorization),
                    status(&client, &urls.1, &authorization)
                );
                (slot, authorization, ours, theirs)
            });
        }
        let mut answers = Vec::new();
        while let Some(joined) = requests.join_next().await {
            answers.push(joined.context("a request task failed")?);
        }
        answers.sort_by_key(|a| a.0);
        for (slot, authorization, ours, theirs) in answers {
            let template = &group[slot];
            record(
                &mut report,
                Finding {
                    category: template.category,
                    label: template.label.clone(),
                    authorization,
                    tokengate: Verdict::of(ours),
                    reference: Verdict::of(theirs),
                },
            );
        }
    }
    Ok(report)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn record(report: &mut Report, finding: Finding) {
    report.total += 1;
    *report.categories.entry(finding.category).or_default() += 1;
    if finding.category == "valid"
        && (finding.tokengate != Verdict::Admitted || finding.reference != Verdict::Admitted)
    {
        report.valid_refused.push(finding.clone());
    }
    match (finding.tokengate, finding.reference) {
        (Verdict::Other(_), _) | (_, Verdict::Other(_)) => report.errors.push(finding),
        (Verdict::Admitted, Verdict::Admitted) => report.both_admitted += 1,
        (Verdict::Refused(_), Verdict::Refused(_)) => report.both_refused += 1,
        (Verdict::Admitted, Verdict::Refused(_)) => match intended::explain(&finding.authorization)
        {
            Some(intended) => report.intended.push((finding, intended.name)),
            None => report.unintended.push(finding),
        },
        (Verdict::Refused(_), Verdict::Admitted) => {
            let entry = report
                .stricter
                .entry(finding.category)
                .or_insert_with(|| (0, finding.clone()));
            entry.0 += 1;
        }
    }
}

/// The status a listener answers `authorization` with; 0 when it does not answer (or the
/// value cannot be sent as a header).
async fn status(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    authorization: &str,
) -> u16 {
    let Ok(request) = hyper::Request::get(url)
        .header("authorization", authorization)
        .body(Full::new(Bytes::new()))
    else {
        return 0;
    };
    match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            status
        }
        _ => 0,
    }
}

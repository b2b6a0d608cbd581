//! The security verdict table: one row per (gateway, scenario) over every rate — what the
//! scenario sends, what a secure gateway does with it, what this one answered, the verdict.
//! Scenarios not run because they do not apply (the policy scenarios on a gateway without the
//! policy routes) get a row too, NOT_APPLICABLE with the reason.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::matrix::report::{Cell, Settings};
use crate::matrix::scenario::{
    self, Challenge, Counts, Expectation, Scenario, Secure, TokenKind, Verdict,
};

/// One row of the security verdict table: a gateway and a scenario, over every rate.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictRow {
    pub gateway: String,
    pub scenario: String,
    pub token_kind: TokenKind,
    /// The request in words: path, token, forged header.
    pub request: String,
    /// What a secure gateway does with it.
    pub secure: Secure,
    /// A header a secure gateway strips before the backend.
    pub must_strip: Option<&'static str>,
    /// What this gateway answers (as configured).
    pub expected_status: u16,
    pub expected_challenge: Challenge,
    /// Status counts over every rate, e.g. `{"401": 15000}`.
    pub actual: BTreeMap<u16, u64>,
    pub admitted: u64,
    pub refused: u64,
    /// Answers whose backend received the header that had to be stripped.
    pub leaked: u64,
    /// Cells aggregated (one per rate; 0 when the scenario was not run on this gateway).
    pub cells: usize,
    pub verdict: Verdict,
    /// Set when the gateway is documented to have this gap.
    pub known_gap: Option<&'static str>,
    /// Why the verdict is NOT_APPLICABLE.
    pub not_applicable: Option<&'static str>,
    /// A request that showed the verdict (for a GAP: one that was admitted).
    pub sample_request_id: Option<String>,
}

impl VerdictRow {
    pub(crate) fn new(
        gateway: &str,
        scenario: Scenario,
        expected: &Expectation,
    ) -> Option<VerdictRow> {
        let request = scenario.request()?;
        Some(VerdictRow {
            gateway: gateway.to_owned(),
            scenario: scenario.name(),
            token_kind: request.token,
            request: request.describe(),
            secure: scenario.secure()?,
            must_strip: expected.must_strip,
            expected_status: expected.status,
            expected_challenge: expected.challenge,
            actual: BTreeMap::new(),
            admitted: 0,
            refused: 0,
            leaked: 0,
            cells: 0,
            verdict: Verdict::Pass,
            known_gap: None,
            not_applicable: None,
            sample_request_id: None,
        })
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            admitted: self.admitted,
            refused: self.refused,
            leaked: self.leaked,
        }
    }
}

/// One row per (gateway, scenario) that ran, over every rate, in the order of the cells; then
/// one per (gateway, scenario) of the settings that was not run because it does not apply.
pub(crate) fn verdicts(settings: &Settings, cells: &[Cell]) -> Vec<VerdictRow> {
    let mut rows: Vec<VerdictRow> = Vec::new();
    for cell in cells {
        let (Some(scenario), Some(_)) = (
            Scenario::parse(&cell.scenario),
            scenario::profile(&cell.gateway),
        ) else {
            continue;
        };
        let index = match rows
            .iter()
            .position(|row| row.gateway == cell.gateway && row.scenario == cell.scenario)
        {
            Some(index) => index,
            None => {
                let Some(row) = VerdictRow::new(&cell.gateway, scenario, &cell.expected) else {
                    continue;
                };
                rows.push(row);
                rows.len() - 1
            }
        };
        let row = &mut rows[index];
        for (status, n) in &cell.result.status_counts {
            *row.actual.entry(*status).or_insert(0) += n;
        }
        row.admitted += cell.admitted;
        row.refused += cell.refused;
        row.leaked += cell.leaked;
        row.cells += 1;
        if row.sample_request_id.is_none() {
            row.sample_request_id = cell
                .result
                .unexpected_samples
                .first()
                .map(|sample| sample.request_id.clone());
        }
    }
    for gateway in &settings.gateways {
        let Some(profile) = scenario::profile(gateway) else {
            continue;
        };
        for scenario in settings.scenarios.iter().filter_map(|s| Scenario::parse(s)) {
            let name = scenario.name();
            if scenario::runs_on(profile, scenario)
                || rows
                    .iter()
                    .any(|row| &row.gateway == gateway && row.scenario == name)
            {
                continue;
            }
            if let Some(row) =
                VerdictRow::new(gateway, scenario, &scenario::expectation(profile, scenario))
            {
                rows.push(row);
            }
        }
    }
    for row in &mut rows {
        let (Some(profile), Some(scenario)) = (
            scenario::profile(&row.gateway),
            Scenario::parse(&row.scenario),
        ) else {
            continue;
        };
        row.not_applicable = scenario::not_applicable(profile, scenario);
        row.verdict = scenario::verdict(profile, scenario, row.counts());
        if row.verdict == Verdict::Gap {
            row.known_gap = scenario::expectation(profile, scenario).known_gap;
        }
    }
    rows
}

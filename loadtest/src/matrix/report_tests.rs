//! Unit tests of `report.rs`.

use super::*;
use crate::driver::RunResult;
use crate::matrix::scenario::{self, POLICY_SCENARIOS, TokenKind};
use std::path::Path;

fn schema() -> serde_json::Value {
    let path = crate::paths::repo_root().join("loadtest/report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn enum_of(schema: &serde_json::Value, def: &str) -> Vec<String> {
    schema["$defs"][def]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The schema's lists are the code's: a scenario or token kind added in one place only
/// fails here, not in a user's validator.
#[test]
fn the_schema_names_every_scenario_token_kind_and_challenge() {
    let schema = schema();
    let scenarios: Vec<String> = Scenario::all().map(Scenario::name).collect();
    assert_eq!(enum_of(&schema, "scenario"), scenarios);
    let kinds: Vec<String> = TokenKind::ALL.iter().map(|k| k.name().to_owned()).collect();
    assert_eq!(enum_of(&schema, "token_kind"), kinds);
    for kind in TokenKind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
    }
    let challenges: Vec<String> = [
        Challenge::None,
        Challenge::Bare,
        Challenge::InvalidToken,
        Challenge::InsufficientScope,
    ]
    .iter()
    .map(|c| {
        serde_json::to_value(c)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    })
    .collect();
    assert_eq!(enum_of(&schema, "challenge"), challenges);
    assert_eq!(
        schema["properties"]["schema_version"]["const"],
        SCHEMA_VERSION
    );
}

/// A measured window of `statuses`, `expected` of them judged as expected.
fn result(statuses: &[(u16, u64)], expected: u64) -> RunResult {
    let completed: u64 = statuses.iter().map(|(_, n)| n).sum();
    RunResult::synthetic(completed as f64, statuses, expected, 500, 20).unwrap()
}

fn cell(gateway: &str, scenario: Scenario, statuses: &[(u16, u64)], expected: u64) -> Cell {
    let profile = scenario::profile(gateway).unwrap();
    Cell::new(
        10.0,
        scenario,
        Some(profile),
        scenario::expectation(profile, scenario),
        result(statuses, expected),
        &Thresholds::default(),
        None,
    )
}

fn settings(gateways: &[&str], scenarios: &[Scenario]) -> Settings {
    Settings {
        profile: Profile::Quick,
        gateways: gateways.iter().map(|g| (*g).to_owned()).collect(),
        scenarios: scenarios.iter().map(|s| s.name()).collect(),
        rates: vec![10.0],
        policy_rates: vec![10.0],
        idp_rates: vec![10.0],
        warmup_secs: 0.0,
        duration_secs: 1.0,
        pool_size: 1,
        driver_threads: 1,
        max_in_flight: 4,
        envoy_workers: 1,
        target: None,
        patches: BTreeMap::new(),
    }
}

fn policy(name: &str) -> Scenario {
    Scenario::parse(&format!("policy-{name}")).unwrap()
}

#[test]
fn a_forged_header_that_reached_the_backend_is_an_unexpected_gap() {
    let forged = policy("public-forged-identity");
    let admin = policy("admin-with-role");
    // 10 answers of 200, 3 of them judged unexpected: the backend saw the header.
    let leaky = cell("policy", forged, &[(200, 10)], 7);
    assert_eq!((leaky.admitted, leaky.leaked), (10, 3));
    // The same count on a scenario with nothing to strip is not a leak.
    assert_eq!(cell("policy", admin, &[(200, 10)], 7).leaked, 0);

    let cells = vec![
        cell("jwt", Scenario::Api(TokenKind::Valid), &[(200, 10)], 10),
        cell("policy", Scenario::Api(TokenKind::Valid), &[(200, 10)], 10),
        leaky,
        cell("policy", admin, &[(200, 10)], 10),
    ];
    let scenarios = [Scenario::Api(TokenKind::Valid), forged, admin];
    let report = Report::new(settings(&["jwt", "policy"], &scenarios), cells);
    let row = |gateway: &str, scenario: Scenario| {
        report
            .verdicts
            .iter()
            .find(|r| r.gateway == gateway && r.scenario == scenario.name())
            .unwrap()
    };
    let gap = row("policy", forged);
    assert_eq!(
        (gap.verdict, gap.leaked, gap.known_gap),
        (Verdict::Gap, 3, None)
    );
    assert_eq!(gap.must_strip, Some("x-jwt-sub"));
    assert_eq!(row("policy", admin).verdict, Verdict::Pass);
    // Not run on jwt: a row that says so.
    let not_run = row("jwt", forged);
    assert_eq!(
        (not_run.verdict, not_run.cells, not_run.not_applicable),
        (Verdict::NotApplicable, 0, Some("not a policy gateway"))
    );
    assert_eq!(report.verdicts.len(), 6);
    assert_eq!(report.summary.unexpected_gaps, 1);
    assert_eq!(report.exit_code(), exit::SECURITY_GAP);

    let text = report.text();
    assert!(
        text.contains("GAP (x-jwt-sub reached the backend 3×)"),
        "{text}"
    );
    assert!(text.contains("admit, strip x-jwt-sub"), "{text}");
    assert!(
        text.contains(
            "Not run, n/a (not a policy gateway): policy-public-forged-identity, \
             policy-admin-with-role on jwt."
        ),
        "{text}"
    );
    assert!(
        report
            .markdown()
            .contains("| policy | policy-public-forged-identity |")
    );

    let json = serde_json::to_value(&report).unwrap();
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// report.html leads with the write-up's finding, then the verdict grid, then cost, the
/// full tables and how the run was made; it references nothing outside itself.
#[test]
fn the_html_report_leads_with_the_expired_token_gap() {
    let scenarios = [
        Scenario::Api(TokenKind::Valid),
        Scenario::Api(TokenKind::Revoked),
        Scenario::Api(TokenKind::Expired),
    ];
    let mut cells = Vec::new();
    for gateway in ["jwt", "jwt-no-exp"] {
        cells.push(cell(gateway, scenarios[0], &[(200, 10)], 10));
        cells.push(cell(gateway, scenarios[1], &[(200, 10)], 10));
    }
    cells.push(cell("jwt", scenarios[2], &[(401, 10)], 0));
    cells.push(cell("jwt-no-exp", scenarios[2], &[(200, 10)], 10));
    let mut report = Report::new(settings(&["jwt", "jwt-no-exp"], &scenarios), cells);
    report.set_sample("jwt-no-exp", "api-expired", "probe → 200".to_owned());
    let dir = crate::paths::run_dir("html-unit");
    std::fs::create_dir_all(&dir).unwrap();
    report.write(&dir).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let at = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing from report.html"))
    };
    let headline = at("id=\"headline\"");
    assert!(html[headline..].starts_with(
        "id=\"headline\"><strong>GAP: <code>jwt-no-exp</code> admitted /api/orders, expired token"
    ));
    assert!(headline < at("id=\"verdict-grid\""));
    assert!(at("id=\"verdict-grid\"") < at("id=\"cost\""));
    assert!(at("id=\"cost\"") < at("id=\"tables\""));
    assert!(at("id=\"tables\"") < at("id=\"how\""));
    assert!(at("<figure class=\"chart\" data-chart=\"latency-api-valid.svg\"><svg") > 0);
    assert!(html.contains("<td class=\"GAP known\""));
    // Self-contained: no script, no stylesheet or image fetched.
    for outside in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!html.contains(outside), "report.html contains {outside}");
    }
    assert!(!html.contains("<?xml"));
}

/// Every policy scenario answered as the table says: all PASS, exit 0; refusing the
/// ones to admit is a FAIL (exit 1), admitting the ones to refuse a GAP (exit 2).
#[test]
fn policy_verdicts_and_exit_codes() {
    let scenarios: Vec<Scenario> = POLICY_SCENARIOS.iter().map(Scenario::Policy).collect();
    let as_expected = |scenario: Scenario| {
        let status = scenario::expectation(scenario::profile("policy").unwrap(), scenario).status;
        cell("policy", scenario, &[(status, 10)], 10)
    };
    let report = Report::new(
        settings(&["policy"], &scenarios),
        scenarios.iter().map(|s| as_expected(*s)).collect(),
    );
    assert!(report.verdicts.iter().all(|r| r.verdict == Verdict::Pass));
    assert_eq!(report.exit_code(), exit::OK);

    let mut refused = scenarios
        .iter()
        .map(|s| as_expected(*s))
        .collect::<Vec<_>>();
    refused[5] = cell("policy", policy("admin-with-role"), &[(403, 10)], 0);
    let report = Report::new(settings(&["policy"], &scenarios), refused);
    assert_eq!(report.exit_code(), exit::FAILURE);

    let mut admitted = scenarios
        .iter()
        .map(|s| as_expected(*s))
        .collect::<Vec<_>>();
    admitted[4] = cell("policy", policy("admin-without-role"), &[(200, 10)], 0);
    let report = Report::new(settings(&["policy"], &scenarios), admitted);
    assert_eq!(report.exit_code(), exit::SECURITY_GAP);
}

/// A jwt `api-valid` cell at 1000 req/s whose requests took `service_us` and went out
/// `lag_us` late, changed by `tweak` (drops, driver CPU).
fn timed(service_us: u64, lag_us: u64, tweak: impl FnOnce(&mut RunResult)) -> Cell {
    let scenario = Scenario::Api(TokenKind::Valid);
    let profile = scenario::profile("jwt").unwrap();
    let mut result =
        RunResult::synthetic(1000.0, &[(200, 1000)], 1000, service_us, lag_us).unwrap();
    tweak(&mut result);
    Cell::new(
        1000.0,
        scenario,
        Some(profile),
        scenario::expectation(profile, scenario),
        result,
        &Thresholds::default(),
        None,
    )
}

fn dropped(result: &mut RunResult) {
    result.scheduled += 3;
    result.dropped = 3;
}

/// What the matrix makes of the driver's rule: a noisy machine's figures are marked and the
/// run stands; a gateway that cannot keep up is a finding (exit 0); only a cell this machine
/// could not drive, or whose p99 is mostly lateness, makes the run invalid (exit 3).
#[test]
fn the_exit_code_separates_the_gateway_s_shortfall_from_the_machine_s() {
    let scenarios = [Scenario::Api(TokenKind::Valid)];
    let run = |cell: Cell| Report::new(settings(&["jwt"], &scenarios), vec![cell]);

    let noisy = run(timed(1_000, 300, |_| {}));
    assert_eq!(noisy.cells[0].health, Health::Valid);
    assert_eq!(noisy.cells[0].distortion.p99_us, 300);
    assert_eq!(
        (noisy.summary.marked_cells, noisy.exit_code()),
        (1, exit::OK)
    );
    let row = &noisy.performance_rows(1000.0)[0];
    assert!(row.contains(&"+0.30 (lag 0.30)".to_owned()), "{row:?}");
    assert!(row.contains(&"marked".to_owned()), "{row:?}");

    let saturated = run(timed(5_000, 20, dropped));
    assert!(matches!(
        saturated.cells[0].health,
        Health::Saturated { .. }
    ));
    assert_eq!(saturated.exit_code(), exit::OK);

    let behind = run(timed(5_000, 1_200, dropped));
    assert!(matches!(
        behind.cells[0].health,
        Health::DriverLimited { .. }
    ));
    assert_eq!(behind.exit_code(), exit::INVALID_RUN);

    let mostly_lateness = run(timed(300, 400, |_| {}));
    assert!(matches!(
        mostly_lateness.cells[0].health,
        Health::DriverLimited { .. }
    ));
    assert_eq!(mostly_lateness.exit_code(), exit::INVALID_RUN);

    let json = serde_json::to_value(&mostly_lateness).unwrap();
    assert_eq!(json["cells"][0]["distortion"]["p99_us"], 400);
    let validator = jsonschema::validator_for(&schema()).unwrap();
    assert!(validator.is_valid(&json));
}

/// The terminal gets the answer, not the tables: verdict counts, each GAP with its sentence,
/// the cells this machine could not drive, the marked ones, where the reports are.
#[test]
fn the_terminal_summary_names_the_gaps_and_the_reports() {
    let valid = Scenario::Api(TokenKind::Valid);
    let expired = Scenario::Api(TokenKind::Expired);
    let mut report = Report::new(
        settings(&["jwt", "jwt-no-exp"], &[valid, expired]),
        vec![
            cell("jwt", valid, &[(200, 10)], 10),
            cell("jwt-no-exp", expired, &[(200, 10)], 10),
            cell("jwt", expired, &[(200, 10)], 0),
            timed(1_000, 300, |_| {}),
            timed(300, 400, |_| {}),
        ],
    );
    report.machine_noise = Some(crate::driver::LatencySummary {
        p99_us: 42,
        ..Default::default()
    });
    let text = report.terminal_summary(Path::new("out"));
    for expected in [
        "Verdicts: 1 PASS, 2 GAP (1 known, 1 unexpected), 0 FAIL, 0 not applicable.",
        "  GAP jwt-no-exp api-expired: known: exp is not verified",
        "  GAP jwt api-expired: UNEXPECTED: /api/orders, expired token admitted 10×",
        "Cells: 5 measured; 1 this machine could not drive (driver-limited); 0 saturated",
        "1 marked (latency distorted",
        "  INVALID jwt api-valid at 1000 req/s: corrected p50 700 µs is 400 µs above",
        "  marked jwt api-valid at 1000 req/s: p99 1.30 ms, of which up to 0.30 ms late sends",
        "lag p50 0 µs, p99 42 µs",
        "exit 2: SECURITY GAP",
        "Reports: out/report.html (open it first), out/report.md (the full tables), out/report.json.",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // The full tables stay in report.md.
    assert!(!text.contains("achieved rps"), "{text}");
    assert!(text.lines().count() < 15, "{text}");
}

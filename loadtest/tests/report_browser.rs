//! `report.html` in headless Chromium: a report rendered from synthetic results (no stack)
//! is loaded from `file://`; the verdict grid and the charts must be laid out with a size, the
//! page must raise no error, the write-up's finding (the `jwt-no-exp` expired-token GAP) must
//! be on the first screen (1280×800), and the first screen is kept as `report.png` next to the
//! report. Without Chromium the test fails under `CI=true` and skips loudly elsewhere.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::{Context, Result, ensure};
use loadtest::driver::{RunResult, Thresholds};
use loadtest::matrix::html::browser::{self, FIRST_SCREEN};
use loadtest::matrix::report::{Cell, Report, Settings};
use loadtest::matrix::scenario::{self, API_SCENARIOS, Expectation, KEYCLOAK_SCENARIOS, Scenario};
use loadtest::matrix::{IDP_RATE, Profile};
use serde_json::Value;

const RATES: [f64; 3] = [100.0, 500.0, 1000.0];

/// Every gateway × API token kind at the write-up's three rates, each answered as its
/// configuration says (so the known GAPs are there), and Keycloak's own scenarios.
fn synthetic_report() -> Result<Report> {
    let gateways: Vec<&str> = scenario::GATEWAYS.iter().map(|g| g.name).collect();
    let mut cells = Vec::new();
    for (index, gateway) in gateways.iter().enumerate() {
        let profile = scenario::profile(gateway).context("profile")?;
        for scenario in API_SCENARIOS {
            for rate in RATES {
                let expected = scenario::expectation(profile, scenario);
                let answered = (rate / 10.0) as u64;
                // Latency growing with rate and differing per gateway, for charts with lines.
                let service_us = 300 + 80 * index as u64 + (rate / 2.0) as u64;
                let result = RunResult::synthetic(
                    rate,
                    &[(expected.status, answered)],
                    answered,
                    service_us,
                    40,
                )?;
                cells.push(Cell::new(
                    rate,
                    scenario,
                    Some(profile),
                    expected,
                    result,
                    &Thresholds::default(),
                    None,
                ));
            }
        }
    }
    for scenario in KEYCLOAK_SCENARIOS {
        let result = RunResult::synthetic(IDP_RATE, &[(200, 10)], 10, 9_000, 100)?;
        cells.push(Cell::new(
            IDP_RATE,
            scenario,
            None,
            Expectation::status(200),
            result,
            &Thresholds::default(),
            None,
        ));
    }
    let settings = Settings {
        profile: Profile::Default,
        gateways: gateways.iter().map(|g| (*g).to_owned()).collect(),
        scenarios: KEYCLOAK_SCENARIOS
            .iter()
            .chain(&API_SCENARIOS)
            .map(|s: &Scenario| s.name())
            .collect(),
        rates: RATES.to_vec(),
        policy_rates: vec![100.0],
        idp_rates: vec![IDP_RATE],
        warmup_secs: 0.25,
        duration_secs: 1.0,
        pool_size: 20,
        driver_threads: 1,
        max_in_flight: 64,
        envoy_workers: 1,
        target: None,
        patches: BTreeMap::new(),
    };
    let mut report = Report::new(settings, cells);
    report.set_sample(
        "jwt-no-exp",
        "api-expired",
        "jwt-no-exp.api-expired.gap-probe → 200 OK".to_owned(),
    );
    Ok(report)
}

fn number(value: &Value, path: &[&str]) -> Result<f64> {
    let mut at = value;
    for key in path {
        at = &at[key];
    }
    at.as_f64()
        .with_context(|| format!("{} missing in the probe: {value}", path.join(".")))
}

#[test]
fn the_report_renders_in_chromium_with_the_gap_on_the_first_screen() -> Result<()> {
    let Some(chromium) = browser::find_chromium() else {
        let message = "NO CHROMIUM: report.html was not checked in a browser \
                       (apt-get install chromium, or scripts/setup; TOKENGATE_CHROMIUM names one)";
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("{message}");
        }
        // Straight to stderr: the test harness captures eprintln! of a passing test.
        let _ = writeln!(std::io::stderr(), "\n!!!!! SKIPPED: {message} !!!!!\n");
        return Ok(());
    };
    let dir = loadtest::paths::run_dir("report-browser");
    let report = synthetic_report()?;
    report.write(&dir)?;
    let html = dir.join("report.html");

    let probe = browser::probe(&chromium, &html, FIRST_SCREEN)?;
    let layout = &probe.layout;
    eprintln!("probe of {}: {layout}", html.display());
    ensure!(
        probe.console_errors.is_empty(),
        "console errors: {:#?}",
        probe.console_errors
    );
    ensure!(
        layout["errors"].as_array().is_some_and(Vec::is_empty),
        "errors raised by the page: {}",
        layout["errors"]
    );
    // The first screen is the screenshot's: 1280×800 of the page, unscrolled. (In --dump-dom
    // mode Chromium counts window decorations into --window-size, so innerHeight is smaller;
    // the width, and with it the layout, is the same.)
    let screen_height = f64::from(FIRST_SCREEN.1);
    ensure!(
        number(layout, &["viewport", "width"])? == f64::from(FIRST_SCREEN.0),
        "viewport {}",
        layout["viewport"]
    );
    for element in ["verdict_grid", "gap_cell", "headline", "writeup_table"] {
        ensure!(
            number(layout, &[element, "width"])? > 0.0
                && number(layout, &[element, "height"])? > 0.0,
            "{element} not rendered: {}",
            layout[element]
        );
    }
    // The write-up's finding on the first screen: the headline and the grid's GAP cell.
    for element in ["headline", "gap_cell"] {
        let (top, bottom) = (
            number(layout, &[element, "top"])?,
            number(layout, &[element, "bottom"])?,
        );
        ensure!(
            top >= 0.0 && bottom <= screen_height,
            "{element} is not on the first screen ({top}..{bottom} of {screen_height} px)"
        );
    }
    let gap_text = layout["gap_cell_text"].as_str().unwrap_or_default();
    ensure!(
        gap_text.starts_with("GAP (known)"),
        "the GAP cell says {gap_text:?}"
    );
    ensure!(
        layout["headline_text"]
            .as_str()
            .is_some_and(|t| t.contains("jwt-no-exp") && t.contains("expired token")),
        "headline {}",
        layout["headline_text"]
    );
    let charts = layout["charts"]
        .as_array()
        .context("no charts in the probe")?;
    let shown: Vec<&Value> = charts.iter().filter(|c| c["shown"] == true).collect();
    ensure!(shown.len() >= 2, "charts shown: {charts:?}");
    for chart in shown {
        ensure!(
            number(chart, &["box", "width"])? > 100.0 && number(chart, &["box", "height"])? > 100.0,
            "chart {} not rendered: {chart}",
            chart["name"]
        );
    }

    let png = dir.join("report.png");
    browser::screenshot(&chromium, &html, &png, FIRST_SCREEN)?;
    let bytes = std::fs::read(&png)?;
    ensure!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is no PNG",
        png.display()
    );
    eprintln!("screenshot: {}", png.display());
    Ok(())
}

//! SVG charts of a report: latency percentiles against rate per scenario (one line per
//! gateway, named at its end rather than in a legend), and the outcome of every gateway × scenario.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::matrix::report::Report;
use crate::matrix::scenario::Verdict;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Writes `latency-<scenario>.svg` for each scenario and `outcomes.svg`.
pub fn write_all(report: &Report, dir: &Path) -> Result<()> {
    let mut scenarios: Vec<&str> = report.cells.iter().map(|c| c.scenario.as_str()).collect();
    scenarios.dedup();
    scenarios.sort_unstable();
    scenarios.dedup();
    for scenario in scenarios {
        latency_chart(
            report,
            scenario,
            &dir.join(format!("latency-{scenario}.svg")),
        )?;
    }
    outcome_grid(report, &dir.join("outcomes.svg"))
}

fn plot_error<E: std::fmt::Debug>(err: E) -> anyhow::Error {
    anyhow!("drawing a chart: {err:?}")
}

fn latency_chart(report: &Report, scenario: &str, path: &Path) -> Result<()> {
    let mut gateways: Vec<&str> = report
        .cells
        .iter()
        .filter(|c| c.scenario == scenario)
        .map(|c| c.gateway.as_str())
        .collect();
    gateways.sort_unstable();
    gateways.dedup();
    let points = |gateway: &str,
                  pick: fn(&crate::driver::LatencySummary) -> u64|
     -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = report
            .cells
            .iter()
            .filter(|c| c.scenario == scenario && c.gateway == gateway && c.result.completed > 0)
            .map(|c| (c.rate, pick(&c.result.latency_corrected) as f64 / 1000.0))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points
    };
    let max_rate = report.settings.all_rates().into_iter().fold(1.0, f64::max);
    let max_ms = report
        .cells
        .iter()
        .filter(|c| c.scenario == scenario)
        .map(|c| c.result.latency_corrected.p99_us as f64 / 1000.0)
        .fold(0.1, f64::max);
    // The axis starts under the fastest p50, not at a fixed floor: the lines use the height.
    let min_ms = report
        .cells
        .iter()
        .filter(|c| c.scenario == scenario && c.result.completed > 0)
        .map(|c| c.result.latency_corrected.p50_us as f64 / 1000.0)
        .fold(max_ms, f64::min)
        .max(0.005)
        / 2.0;

    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{scenario}: latency from due time (solid p50, dashed p99)"),
            ("sans-serif", 20),
        )
        .margin(12)
        // Room for the gateway names at the lines' ends: no legend to look up.
        .margin_right(LABEL_ROOM)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_rate * 1.05, (min_ms..max_ms * 1.5).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("target rate (req/s)")
        .y_desc("latency (ms, log)")
        .draw()
        .map_err(plot_error)?;
    let mut labels: Vec<(String, (i32, i32), RGBColor)> = Vec::new();
    for (index, gateway) in gateways.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        let p50 = points(gateway, |l| l.p50_us);
        let p99 = points(gateway, |l| l.p99_us);
        if let Some(last) = p50.last() {
            labels.push(((*gateway).to_owned(), chart.backend_coord(last), color));
        }
        // Marks too: a run at one rate has points and no lines.
        chart
            .draw_series(p50.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(p50, color.stroke_width(2)))
            .map_err(plot_error)?;
        chart
            .draw_series(DashedLineSeries::new(p99, 6, 4, color.stroke_width(1)))
            .map_err(plot_error)?;
    }
    let font = ("sans-serif", 14).into_font();
    for (name, (x, y), color) in spread_labels(labels, LABEL_GAP) {
        root.draw(&Text::new(name, (x + 6, y - 7), font.color(&color)))
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Pixels right of the plot for the line labels.
const LABEL_ROOM: u32 = 110;
/// Least vertical distance between two labels' baselines, in pixels.
const LABEL_GAP: i32 = 15;

/// Labels at their lines' ends, moved apart vertically (top to bottom, in order of height) so
/// that none overlaps the one above: lines that end close together keep readable names.
fn spread_labels<T>(
    mut labels: Vec<(T, (i32, i32), RGBColor)>,
    gap: i32,
) -> Vec<(T, (i32, i32), RGBColor)> {
    labels.sort_by_key(|(_, (_, y), _)| *y);
    let mut floor = i32::MIN;
    for (_, (_, y), _) in &mut labels {
        *y = (*y).max(floor.saturating_add(gap));
        floor = *y;
    }
    labels
}

/// A grid: gateways down, scenarios across (in the order of the settings); each cell coloured
/// by verdict and labelled with the share of requests admitted, grey where not applicable.
fn outcome_grid(report: &Report, path: &Path) -> Result<()> {
    let mut gateways: Vec<&str> = Vec::new();
    for verdict in &report.verdicts {
        if !gateways.contains(&verdict.gateway.as_str()) {
            gateways.push(&verdict.gateway);
        }
    }
    let kinds: Vec<&str> = report
        .settings
        .scenarios
        .iter()
        .map(String::as_str)
        .filter(|name| report.verdicts.iter().any(|v| v.scenario == *name))
        .collect();
    let (cell_w, cell_h, left, top) = (140i32, 44i32, 120i32, 76i32);
    let width = (left + cell_w * kinds.len() as i32 + 20).max(400) as u32;
    let height = (top + cell_h * gateways.len() as i32 + 60) as u32;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let title = ("sans-serif", 18).into_font();
    root.draw(&Text::new(
        "Outcomes: share of requests admitted (green PASS, red GAP, orange known GAP)",
        (10, 10),
        title,
    ))
    .map_err(plot_error)?;
    let label = ("sans-serif", 13).into_font();
    for (column, kind) in kinds.iter().enumerate() {
        let x = left + cell_w * column as i32;
        // `policy-admin-without-role`: the family on one line, the rest below.
        let (family, rest) = kind.split_once('-').unwrap_or(("", kind));
        root.draw(&Text::new(family, (x + 4, top - 34), label.clone()))
            .map_err(plot_error)?;
        root.draw(&Text::new(rest, (x + 4, top - 18), label.clone()))
            .map_err(plot_error)?;
    }
    for (row, gateway) in gateways.iter().enumerate() {
        let y = top + cell_h * row as i32;
        root.draw(&Text::new(
            *gateway,
            (10, y + cell_h / 2 - 7),
            label.clone(),
        ))
        .map_err(plot_error)?;
        for (column, kind) in kinds.iter().enumerate() {
            let Some(verdict) = report
                .verdicts
                .iter()
                .find(|v| v.gateway == *gateway && v.scenario == *kind)
            else {
                continue;
            };
            let x = left + cell_w * column as i32;
            let fill = match (verdict.verdict, verdict.known_gap) {
                (Verdict::Pass, _) => RGBColor(198, 239, 206),
                (Verdict::Gap, Some(_)) => RGBColor(255, 221, 170),
                (Verdict::Gap, None) | (Verdict::Fail, _) => RGBColor(255, 180, 180),
                (Verdict::NotApplicable, _) => RGBColor(230, 230, 230),
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cell_w - 4, y + cell_h - 4)],
                fill.filled(),
            ))
            .map_err(plot_error)?;
            let total = verdict.actual.values().sum::<u64>().max(1);
            let text = if verdict.cells == 0 {
                "n/a".to_owned()
            } else {
                format!(
                    "{:.0}% admitted",
                    100.0 * verdict.admitted as f64 / total as f64
                )
            };
            root.draw(&Text::new(text, (x + 6, y + cell_h / 2 - 8), label.clone()))
                .map_err(plot_error)?;
        }
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_that_would_overlap_are_moved_apart_in_order() {
        let c = PALETTE[0];
        let spread = spread_labels(
            vec![("b", (5, 104), c), ("a", (5, 100), c), ("c", (5, 300), c)],
            15,
        );
        let ys: Vec<(&str, i32)> = spread.iter().map(|(n, (_, y), _)| (*n, *y)).collect();
        assert_eq!(ys, [("a", 100), ("b", 115), ("c", 300)]);
    }
}

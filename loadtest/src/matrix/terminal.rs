//! What `loadtest run` prints after the progress bar: the answer in a few lines (verdict
//! counts, each GAP with its known-GAP sentence, the cells this machine could not drive, the
//! saturated and marked ones, where the reports are). The full tables are in report.md.

use std::fmt::Write as _;
use std::path::Path;

use crate::matrix::report::{Cell, Health, Report, noise_line};
use crate::matrix::scenario::Verdict;
use crate::matrix::validity::is_marked;

/// Marked cells named one by one in the summary; the rest are counted (report.md lists all).
const MARKED_LISTED: usize = 5;

impl Report {
    /// The terminal summary; `dir` is where the reports were written.
    pub fn terminal_summary(&self, dir: &Path) -> String {
        let mut out = String::new();
        let count = |verdict: Verdict| {
            self.verdicts
                .iter()
                .filter(|row| row.cells > 0 && row.verdict == verdict)
                .count()
        };
        let s = &self.summary;
        let _ = writeln!(
            out,
            "Verdicts: {} PASS, {} GAP ({} known, {} unexpected), {} FAIL, {} not applicable.",
            count(Verdict::Pass),
            s.gaps,
            s.known_gaps,
            s.unexpected_gaps,
            count(Verdict::Fail),
            self.verdicts
                .iter()
                .filter(|row| row.verdict == Verdict::NotApplicable)
                .count(),
        );
        for row in self.verdicts.iter().filter(|r| r.verdict == Verdict::Gap) {
            let why = match row.known_gap {
                Some(sentence) => format!("known: {sentence}"),
                None if row.leaked > 0 => format!(
                    "UNEXPECTED: {} reached the backend {}×",
                    row.must_strip.unwrap_or("a forged header"),
                    row.leaked
                ),
                None => format!("UNEXPECTED: {} admitted {}×", row.request, row.admitted),
            };
            let sample = row
                .sample_request_id
                .as_deref()
                .map(|id| format!(" [request {id}]"))
                .unwrap_or_default();
            let _ = writeln!(out, "  GAP {} {}: {why}{sample}", row.gateway, row.scenario);
        }
        for row in self.verdicts.iter().filter(|r| r.verdict == Verdict::Fail) {
            let _ = writeln!(
                out,
                "  FAIL {} {}: {} refused {}×",
                row.gateway, row.scenario, row.request, row.refused
            );
        }
        let _ = writeln!(
            out,
            "Cells: {} measured; {} this machine could not drive (driver-limited); {} saturated \
             (the gateway could not keep up: a finding); {} marked (latency distorted by late \
             sends, reported with its bound).",
            s.cells, s.driver_limited_cells, s.saturated_cells, s.marked_cells
        );
        for cell in &self.cells {
            match &cell.health {
                Health::DriverLimited { reasons } => {
                    let _ = writeln!(out, "  INVALID {}: {}", name(cell), reasons.join("; "));
                }
                Health::Saturated { reasons } => {
                    let _ = writeln!(out, "  SATURATED {}: {}", name(cell), reasons.join("; "));
                }
                Health::Valid => {}
            }
        }
        let marked: Vec<&Cell> = self.cells.iter().filter(|c| is_marked(c)).collect();
        for cell in marked.iter().take(MARKED_LISTED) {
            let p99 = cell.result.latency_corrected.p99_us as f64 / 1000.0;
            let _ = writeln!(
                out,
                "  marked {}: p99 {p99:.2} ms, of which up to {:.2} ms late sends (lag p99 {:.2} ms)",
                name(cell),
                cell.distortion.p99_us as f64 / 1000.0,
                cell.distortion.lag_p99_us as f64 / 1000.0,
            );
        }
        if marked.len() > MARKED_LISTED {
            let _ = writeln!(
                out,
                "  ... and {} more marked cells (report.md)",
                marked.len() - MARKED_LISTED
            );
        }
        if let Some(noise) = &self.machine_noise {
            let _ = writeln!(out, "{}", noise_line(noise));
        }
        let _ = writeln!(out, "{}", self.summary_line());
        let _ = writeln!(
            out,
            "Reports: {} (open it first), {} (the full tables), {}.",
            dir.join("report.html").display(),
            dir.join("report.md").display(),
            dir.join("report.json").display()
        );
        out
    }
}

fn name(cell: &Cell) -> String {
    format!("{} {} at {} req/s", cell.gateway, cell.scenario, cell.rate)
}

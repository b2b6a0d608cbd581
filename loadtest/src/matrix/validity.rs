//! Whether the matrix's answer stands, in one place: each cell's health (sound, the target's
//! finding, or the driver's failure), its distortion marks, and the run's exit code.
//!
//! Per cell the driver's rule decides ([`Thresholds`](crate::driver::Thresholds) says it
//! whole): a cell is *driver-limited* (the run exits 3) only when the driver could not deliver
//! the load because it was behind, or when late sends make up over half of its reported
//! median; *saturated* (a finding about the gateway, exit 0) when the load was not delivered while
//! the driver kept its schedule; *marked* (its figures stand, with their bound) when the
//! distortion is large relative to what it reports. Security verdicts never depend on it:
//! they count answers, not times.

use serde::Serialize;

use crate::driver::{RunResult, Thresholds};
use crate::matrix::report::Cell;
use crate::matrix::scenario::Verdict;
use crate::matrix::verdicts::VerdictRow;

/// Exit codes of `loadtest run`.
pub mod exit {
    /// Every verdict as expected, and this machine could drive every cell (figures of marked
    /// or saturated cells included: they are findings, with their bounds).
    pub const OK: u8 = 0;
    /// Something failed (a valid token refused, a cell with no answers, an error).
    pub const FAILURE: u8 = 1;
    /// A gateway not known to be insecure let through a token it must refuse.
    pub const SECURITY_GAP: u8 = 2;
    /// This machine could not drive some cell: the driver was behind and did not deliver the
    /// load, or late sends make up over half of a cell's reported median. The verdicts stand.
    pub const INVALID_RUN: u8 = 3;
}

/// Whose fault it is when a cell's load or latency is not what was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    Valid,
    /// The gateway could not keep up (drops, achieved rate short) while the driver kept its
    /// schedule: a finding about the gateway, not a flaw of the run.
    Saturated {
        reasons: Vec<String>,
    },
    /// This machine could not drive the cell: the driver was behind and did not deliver the
    /// load, or its lateness makes up most of the reported p99.
    DriverLimited {
        reasons: Vec<String>,
    },
}

/// The cell's health by the driver's rule: the driver's fault first (it makes the cell's
/// figures unusable), then the target's.
pub fn health(result: &RunResult, thresholds: &Thresholds) -> Health {
    let driver = result.driver_problems(thresholds);
    if !driver.is_empty() {
        return Health::DriverLimited { reasons: driver };
    }
    let target = result.target_problems(thresholds);
    if target.is_empty() {
        Health::Valid
    } else {
        Health::Saturated { reasons: target }
    }
}

/// A cell whose figures stand with a distortion mark: marked, and not driver-limited (whose
/// figures do not stand at all).
pub fn is_marked(cell: &Cell) -> bool {
    !cell.marks.is_empty() && !matches!(cell.health, Health::DriverLimited { .. })
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub exit_code: u8,
    pub cells: usize,
    pub gaps: usize,
    pub known_gaps: usize,
    pub unexpected_gaps: usize,
    pub failures: usize,
    pub saturated_cells: usize,
    pub driver_limited_cells: usize,
    /// Cells this machine could drive whose latency late sends distorted by a large share of
    /// what they report ([`is_marked`]): reported with their bound, not a reason for exit 3.
    pub marked_cells: usize,
}

/// The run's exit code: an unexpected GAP outranks a failure, which outranks a cell this
/// machine could not drive.
pub(crate) fn summarize(cells: &[Cell], verdicts: &[VerdictRow]) -> Summary {
    let count = |verdict: Verdict| verdicts.iter().filter(|r| r.verdict == verdict).count();
    let gaps = count(Verdict::Gap);
    let known_gaps = verdicts
        .iter()
        .filter(|r| r.verdict == Verdict::Gap && r.known_gap.is_some())
        .count();
    let failures = count(Verdict::Fail) + cells.iter().filter(|c| c.result.completed == 0).count();
    let saturated_cells = cells
        .iter()
        .filter(|c| matches!(c.health, Health::Saturated { .. }))
        .count();
    let driver_limited_cells = cells
        .iter()
        .filter(|c| matches!(c.health, Health::DriverLimited { .. }))
        .count();
    let marked_cells = cells.iter().filter(|c| is_marked(c)).count();
    let unexpected_gaps = gaps - known_gaps;
    let exit_code = if unexpected_gaps > 0 {
        exit::SECURITY_GAP
    } else if failures > 0 {
        exit::FAILURE
    } else if driver_limited_cells > 0 {
        exit::INVALID_RUN
    } else {
        exit::OK
    };
    Summary {
        exit_code,
        cells: cells.len(),
        gaps,
        known_gaps,
        unexpected_gaps,
        failures,
        saturated_cells,
        driver_limited_cells,
        marked_cells,
    }
}

//! Unit tests of `result.rs` and `validity.rs`.

use super::*;
use crate::validity::{Thresholds, Validity};

/// An open-loop result at 1000 req/s over 1 s whose requests took
/// `service_us` and went out `lag_us` late.
fn result(service_us: u64, lag_us: u64, completed: u64) -> RunResult {
    RunResult::synthetic(1000.0, &[(200, completed)], completed, service_us, lag_us)
        .expect("histograms")
}

fn reasons(result: &RunResult) -> Vec<String> {
    match result.validity(&Thresholds::default()) {
        Validity::Valid => Vec::new(),
        Validity::Invalid { reasons } => reasons,
    }
}

#[test]
fn a_kept_schedule_is_valid() {
    assert_eq!(reasons(&result(300, 5, 1000)), Vec::<String>::new());
    // 40 µs late on a 100 µs target: under the 50 µs floor.
    assert!(reasons(&result(100, 40, 1000)).is_empty());
    // 100 µs late on a 1 ms target: under 25 %.
    assert!(reasons(&result(1_000, 100, 1000)).is_empty());
}

#[test]
fn late_sends_that_inflate_latency_are_invalid() {
    let r = reasons(&result(300, 120, 1000));
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].contains("corrected p50") && r[1].contains("corrected p99"));
}

#[test]
fn lag_over_the_ceiling_is_invalid_even_for_slow_targets() {
    let r = reasons(&result(50_000, 1_500, 1000));
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].contains("schedule lag p99"));
}

#[test]
fn missing_rate_drops_and_empty_runs_are_invalid() {
    let r = reasons(&result(300, 5, 900));
    assert!(
        r.iter().any(|r| r.contains("achieved 900.0 req/s")),
        "{r:?}"
    );

    let mut dropped = result(300, 5, 1000);
    dropped.scheduled += 3;
    dropped.dropped = 3;
    assert!(
        reasons(&dropped)
            .iter()
            .any(|r| r.contains("3 of 1003 arrivals dropped"))
    );

    let empty = result(300, 5, 0);
    assert!(reasons(&empty).iter().any(|r| r == "no request completed"));
}

fn problems(result: &RunResult) -> (Vec<String>, Vec<String>, Vec<String>) {
    let t = Thresholds::default();
    (
        result.driver_problems(&t),
        result.distortion_marks(&t),
        result.target_problems(&t),
    )
}

#[test]
fn a_noisy_machine_marks_the_figures_and_keeps_them() {
    // 300 µs late on a 1 ms target: 30 % of the figure, marked with its bound.
    let r = result(1_000, 300, 1000);
    let (driver, marks, target) = problems(&r);
    assert!(
        driver.is_empty() && target.is_empty(),
        "{driver:?} {target:?}"
    );
    assert_eq!(marks.len(), 2, "{marks:?}");
    let bound = r.distortion();
    assert_eq!((bound.lag_p99_us, bound.p99_us), (300, 300));
    assert!((bound.p99_ratio - 0.3).abs() < 0.01, "{bound:?}");
    // Lag over the ceiling on a slow target: marked, the p99 barely moved.
    let (driver, marks, _) = problems(&result(50_000, 1_500, 1000));
    assert!(driver.is_empty(), "{driver:?}");
    assert!(marks[0].contains("schedule lag p99 1500"), "{marks:?}");
}

#[test]
fn distortion_over_the_figure_itself_invalidates_the_run() {
    // 400 µs late on a 300 µs target: over half the typical request's latency is lateness.
    let (driver, marks, target) = problems(&result(300, 400, 1000));
    assert_eq!(driver.len(), 1, "{driver:?}");
    assert!(driver[0].contains("corrected p50 700 µs is 400 µs above"));
    assert!(!marks.is_empty() && target.is_empty());
    // A few sends late enough to double the p99 leave the median alone: a bound, marked.
    let mut tail = RunResult::synthetic(1000.0, &[(200, 970)], 970, 300, 0).expect("result");
    let late = RunResult::synthetic(1000.0, &[(200, 30)], 30, 300, 900).expect("result");
    tail.merge(&late).expect("merge");
    tail.window_secs = 1.0;
    tail.elapsed_secs = 1.0;
    tail.refresh_derived();
    let (driver, marks, target) = problems(&tail);
    assert!(
        driver.is_empty() && target.is_empty(),
        "{driver:?} {target:?}"
    );
    assert!(
        marks.iter().any(|m| m.contains("corrected p99 1200 µs")),
        "{marks:?}"
    );
    // Exactly at the figure: still a figure with a large bound.
    let (driver, _, _) = problems(&result(300, 300, 1000));
    assert!(driver.is_empty(), "{driver:?}");
}

#[test]
fn a_short_delivery_is_the_driver_s_when_it_was_behind_and_the_target_s_otherwise() {
    let mut on_time = result(5_000, 20, 1000);
    on_time.scheduled += 3;
    on_time.dropped = 3;
    let (driver, _, target) = problems(&on_time);
    assert!(driver.is_empty(), "{driver:?}");
    assert!(
        target[0].contains("3 of 1003 arrivals dropped"),
        "{target:?}"
    );
    assert!(target[0].contains("with the driver on schedule"));

    let mut late = result(5_000, 1_200, 1000);
    late.scheduled += 3;
    late.dropped = 3;
    let (driver, _, target) = problems(&late);
    assert!(target.is_empty(), "{target:?}");
    assert!(driver[0].contains("while the driver was behind (schedule lag p99"));

    // Short of the rate with the driver thread busy all along.
    let mut busy = result(1_000, 20, 900);
    busy.driver_cpu_secs = 0.95;
    let (driver, _, target) = problems(&busy);
    assert!(target.is_empty(), "{target:?}");
    assert!(driver[0].contains("achieved 900.0 req/s"), "{driver:?}");
    assert!(driver[0].contains("driver threads busy 95 %"), "{driver:?}");
}

#[test]
fn a_short_window_is_not_short_by_rounding() {
    // 10 req/s over 0.75 s: the schedule has 7 arrivals, 9.3 req/s, not 7.5.
    let mut r = RunResult::synthetic(10.0, &[(200, 7)], 7, 300, 5).expect("result");
    r.window_secs = 0.75;
    r.refresh_derived();
    assert!(r.target_problems(&Thresholds::default()).is_empty());
    let mut short = RunResult::synthetic(10.0, &[(200, 6)], 6, 300, 5).expect("result");
    short.window_secs = 0.75;
    short.refresh_derived();
    assert_eq!(short.target_problems(&Thresholds::default()).len(), 1);
}

#[test]
fn closed_loop_results_skip_schedule_checks() {
    let mut closed = result(300, 5_000, 1000);
    closed.mode = Mode::ClosedLoop;
    closed.target_rate = None;
    assert!(closed.validity(&Thresholds::default()).is_valid());
    assert_eq!(closed.latency(), &closed.latency_uncorrected);
}

#[test]
fn merging_pools_counts_and_histograms() {
    let mut a = result(300, 5, 1000);
    let b = result(600, 5, 500);
    a.merge(&b).expect("merge");
    assert_eq!(a.completed, 1500);
    assert_eq!(a.latency_uncorrected.count, 1500);
    assert_eq!(a.status_counts.get(&200), Some(&1500));
    assert!((a.window_secs - 2.0).abs() < 1e-9);
    assert!((a.achieved_rate - 750.0).abs() < 1e-9);
    assert!(a.latency_uncorrected.max_us >= 600);
    let json = serde_json::to_value(&a).expect("json");
    assert!(json.get("histograms").is_none());
    assert_eq!(json["mode"], "open_loop");
}

#[test]
fn histograms_saturate_instead_of_failing() {
    let mut h = new_histogram().expect("histogram");
    h.saturating_record(0);
    h.saturating_record(HISTOGRAM_MAX_US * 10);
    assert_eq!(h.len(), 2);
    assert!(h.max() >= HISTOGRAM_MAX_US);
}

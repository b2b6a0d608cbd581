//! What a run measured, and whether the measurement can be trusted.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest value the histograms track, in µs (60 s); larger values are
/// recorded as 60 s.
pub const HISTOGRAM_MAX_US: u64 = 60_000_000;
/// Significant decimal digits kept by the histograms (0.1 % resolution).
pub const HISTOGRAM_SIGFIG: u8 = 3;
/// Unexpected responses kept as samples per run.
pub const SAMPLE_LIMIT: usize = 10;

/// The three latency distributions of a run, in microseconds.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Due time → last body byte (coordinated-omission corrected). Empty in
    /// closed-loop runs, which have no schedule.
    pub corrected: Histogram<u64>,
    /// Send → last body byte; includes the connect when the request had to
    /// open a connection.
    pub uncorrected: Histogram<u64>,
    /// Send − due time: how late the driver handed requests to connections.
    /// Empty in closed-loop runs.
    pub lag: Histogram<u64>,
}

impl Histograms {
    pub fn new() -> Result<Self> {
        Ok(Self {
            corrected: new_histogram()?,
            uncorrected: new_histogram()?,
            lag: new_histogram()?,
        })
    }

    pub fn add(&mut self, other: &Histograms) -> Result<()> {
        self.corrected
            .add(&other.corrected)
            .context("merging corrected latency histograms")?;
        self.uncorrected
            .add(&other.uncorrected)
            .context("merging uncorrected latency histograms")?;
        self.lag
            .add(&other.lag)
            .context("merging schedule-lag histograms")?;
        Ok(())
    }
}

/// A histogram with the driver's bounds: 1 µs … 60 s, 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_SIGFIG)
        .context("creating a latency histogram")
}

/// A histogram's headline figures, in µs. All zero when it is empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            mean_us: histogram.mean(),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }
}

/// Failed requests by cause. Responses of any status are not errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// The connection could not be opened (refused, unreachable, …).
    pub connect: u64,
    /// No complete response within the request timeout, or still in flight
    /// when the run's straggler allowance ran out.
    pub timeout: u64,
    /// The connection closed before the response was complete.
    pub closed: u64,
    /// The response was not valid HTTP/1.1.
    pub protocol: u64,
    /// Any other I/O failure (e.g. a reset while reading).
    pub io: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.closed + self.protocol + self.io
    }

    pub(crate) fn count(&mut self, kind: ErrorKind) {
        let slot = match kind {
            ErrorKind::Connect => &mut self.connect,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::Closed => &mut self.closed,
            ErrorKind::Protocol => &mut self.protocol,
            ErrorKind::Io => &mut self.io,
        };
        *slot += 1;
    }

    fn add(&mut self, other: &ErrorCounts) {
        self.connect += other.connect;
        self.timeout += other.timeout;
        self.closed += other.closed;
        self.protocol += other.protocol;
        self.io += other.io;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    Connect,
    Timeout,
    Closed,
    Protocol,
    Io,
}

/// One unexpected response, to be looked up in the gateway's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnexpectedSample {
    pub index: u64,
    /// The `x-request-id` sent: `<label>-<index>`.
    pub request_id: String,
    pub status: u16,
    pub www_authenticate: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    OpenLoop,
    ClosedLoop,
}

/// The outcome of a run (or of several merged). Counts cover the measured
/// window only: arrivals due (open loop) or requests started (closed loop)
/// after the warm-up and before the end.
///
/// Invariants: `scheduled = sent + dropped`, `sent = completed +
/// errors.total()`, `completed = expected + unexpected` = sum of
/// `status_counts`.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub label: String,
    pub mode: Mode,
    /// Requests per second asked for; None in closed loop.
    pub target_rate: Option<f64>,
    pub threads: usize,
    /// Closed loop: connections kept busy. Open loop: the in-flight cap.
    pub connections: usize,
    /// Arrivals due in the window (closed loop: requests started).
    pub scheduled: u64,
    /// Handed to a connection.
    pub sent: u64,
    /// Answered with a complete response, whatever the status.
    pub completed: u64,
    /// Never sent: every connection was busy (and the backlog full), or the
    /// run ended first. Any drop means the schedule was not kept.
    pub dropped: u64,
    pub errors: ErrorCounts,
    pub status_counts: BTreeMap<u16, u64>,
    pub expected: u64,
    pub unexpected: u64,
    /// The first few unexpected responses, lowest index first.
    pub unexpected_samples: Vec<UnexpectedSample>,
    pub latency_corrected: LatencySummary,
    pub latency_uncorrected: LatencySummary,
    pub schedule_lag: LatencySummary,
    /// HTTP bytes written and read on the sockets, headers included.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// KiB (1024 bytes) per second of the window, as JMeter reports KB/s.
    pub sent_kib_per_sec: f64,
    pub received_kib_per_sec: f64,
    /// Connections opened over the whole run, warm-up included.
    pub connections_opened: u64,
    /// Length of the measured window.
    pub window_secs: f64,
    /// completed / window_secs.
    pub achieved_rate: f64,
    /// Wall time of the whole run: warm-up, window and stragglers.
    pub elapsed_secs: f64,
    /// CPU time the driver threads used over the whole run (all threads):
    /// near `elapsed_secs × threads` means the driver was the bottleneck.
    pub driver_cpu_secs: f64,
    #[serde(skip)]
    pub(crate) histograms: Histograms,
}

/// When a run's latency figures cannot be trusted, and whose fault that is.
///
/// Defaults come from measuring one driver thread against the backend
/// binary on this 2-core VM (`measure_open_loop_lag` in tests/driver.rs).
/// With the machine otherwise quiet, schedule lag p99 stays at 2–70 µs
/// from 1 000 to 50 000 req/s (p50 ≈ 1 µs with the default spin, ≈ 35 µs
/// without: the vCPU's timer wake-up). When other work competes for the two
/// cores it jumps to 0.3–8 ms (scheduler time slices), and the corrected
/// percentiles grow with it.
///
/// Latency on a noisy machine is still a figure, with a known error: each
/// request's corrected latency is its uncorrected latency plus its lag, so
/// the target's own p99 lies between the uncorrected and the corrected p99,
/// and their difference is the figure's bound ([`Distortion`]). The rule,
/// in one place ([`RunResult::driver_problems`],
/// [`RunResult::distortion_marks`], [`RunResult::target_problems`]):
///
/// * **invalid** (the driver's fault; `loadtest run` exits 3):
///   - the load was not delivered (any drop, or achieved below
///     `min_rate_fraction` of the target) while the driver itself was
///     behind: schedule lag p99 above `max_lag_p99_us`, or the driver's
///     threads busy for `driver_busy_fraction` of the run's wall time;
///   - or the distortion is large enough to change a conclusion: the
///     corrected p50 exceeds the uncorrected p50 by more than
///     `conclusion_inflation` (100 %) of it (and the floor), i.e. late
///     sends make up over half of the typical request's reported latency:
///     the cell's figures are the machine's more than the target's, and
///     any comparison of them with another target's could turn around. The
///     median, not the p99: a short cell's p99 rests on its slowest few
///     requests, so one preemption of the driver can double it; that is
///     the p99's bound, reported and marked, not a reason to discard the
///     run;
/// * **marked** (reported with its bound, not invalid): schedule lag p99
///   above `max_lag_p99_us` (1 ms: over ten times the quiet p99, about a
///   whole gateway p99), or the corrected p50 or p99 above the uncorrected
///   one by more than `max_inflation` (25 %) of it and
///   `inflation_floor_us` (50 µs; below it the difference is within this
///   VM's timer wake-up noise);
/// * **saturated** (the target's fault, a finding about it): nothing
///   completed, or the load was not delivered while the driver kept its
///   schedule. Without a backlog an arrival that finds every connection
///   busy is dropped, not sent late, so on-time drops are the target's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Completed requests per second below this fraction of the target
    /// rate: the load was not delivered (open loop).
    pub min_rate_fraction: f64,
    /// Schedule lag p99 above this (µs): the driver was behind.
    pub max_lag_p99_us: u64,
    /// Corrected p50/p99 more than this fraction above the uncorrected
    /// p50/p99 mark the run…
    pub max_inflation: f64,
    /// …if the difference is also above this (µs).
    pub inflation_floor_us: u64,
    /// Corrected p50 more than this fraction above the uncorrected p50 (and
    /// above the floor) make the run invalid.
    pub conclusion_inflation: f64,
    /// Driver CPU time over this fraction of wall time × threads: the
    /// driver was the bottleneck.
    pub driver_busy_fraction: f64,
    /// More dropped arrivals than this: the load was not delivered.
    pub max_dropped: u64,
}

/// Default absolute lag ceiling, µs; see [`Thresholds`].
pub const DEFAULT_MAX_LAG_P99_US: u64 = 1_000;

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_rate_fraction: 0.95,
            max_lag_p99_us: DEFAULT_MAX_LAG_P99_US,
            max_inflation: 0.25,
            inflation_floor_us: 50,
            conclusion_inflation: 1.0,
            driver_busy_fraction: 0.9,
            max_dropped: 0,
        }
    }
}

/// How far late sends may have moved a run's reported (corrected) latency. All zero in
/// closed loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Distortion {
    /// Schedule lag p99, µs.
    pub lag_p99_us: u64,
    /// Corrected − uncorrected p50, µs.
    pub p50_us: u64,
    /// Corrected − uncorrected p99, µs: the bound on the reported p99.
    pub p99_us: u64,
    /// `p99_us` over the uncorrected p99 (0 when that is 0).
    pub p99_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "validity", rename_all = "snake_case")]
pub enum Validity {
    Valid,
    Invalid { reasons: Vec<String> },
}

impl Validity {
    pub fn is_valid(&self) -> bool {
        matches!(self, Validity::Valid)
    }
}

impl RunResult {
    /// The latency to report: corrected in open loop, uncorrected (the only
    /// kind) in closed loop.
    pub fn latency(&self) -> &LatencySummary {
        match self.mode {
            Mode::OpenLoop => &self.latency_corrected,
            Mode::ClosedLoop => &self.latency_uncorrected,
        }
    }

    /// The full distributions, e.g. to merge runs or print percentiles not
    /// in the summaries.
    pub fn histograms(&self) -> &Histograms {
        &self.histograms
    }

    /// Pools `other` (a repeat of the same scenario) into this result:
    /// counts, bytes, histograms and windows add up; rates are recomputed
    /// over the combined window; the target rate becomes the window-weighted
    /// mean; samples keep the lowest indices.
    pub fn merge(&mut self, other: &RunResult) -> Result<()> {
        self.histograms.add(&other.histograms)?;
        self.target_rate = match (self.target_rate, other.target_rate) {
            (Some(a), Some(b)) => {
                let total = self.window_secs + other.window_secs;
                Some(if total > 0.0 {
                    (a * self.window_secs + b * other.window_secs) / total
                } else {
                    a
                })
            }
            (a, b) => a.or(b),
        };
        self.threads = self.threads.max(other.threads);
        self.connections = self.connections.max(other.connections);
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.completed += other.completed;
        self.dropped += other.dropped;
        self.errors.add(&other.errors);
        for (status, n) in &other.status_counts {
            *self.status_counts.entry(*status).or_insert(0) += n;
        }
        self.expected += other.expected;
        self.unexpected += other.unexpected;
        self.unexpected_samples
            .extend(other.unexpected_samples.iter().cloned());
        self.unexpected_samples.sort_by_key(|s| s.index);
        self.unexpected_samples.truncate(SAMPLE_LIMIT);
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.connections_opened += other.connections_opened;
        self.window_secs += other.window_secs;
        self.elapsed_secs += other.elapsed_secs;
        self.driver_cpu_secs += other.driver_cpu_secs;
        self.refresh_derived();
        Ok(())
    }

    /// A one-second open-loop window made of given figures rather than a run: `statuses`
    /// answers, `expected` of them as expected, each taking `service_us` and sent `lag_us`
    /// late. For tests of what consumes results (validity rules, verdicts, reports), so that
    /// no test spells out every field and a new field is set in one place.
    pub fn synthetic(
        target_rate: f64,
        statuses: &[(u16, u64)],
        expected: u64,
        service_us: u64,
        lag_us: u64,
    ) -> Result<RunResult> {
        let completed = statuses.iter().map(|(_, n)| n).sum();
        let mut histograms = Histograms::new()?;
        for _ in 0..completed {
            histograms.uncorrected.saturating_record(service_us);
            histograms.corrected.saturating_record(service_us + lag_us);
            histograms.lag.saturating_record(lag_us);
        }
        let mut result = RunResult {
            label: "synthetic".into(),
            mode: Mode::OpenLoop,
            target_rate: Some(target_rate),
            threads: 1,
            connections: 8,
            scheduled: completed,
            sent: completed,
            completed,
            dropped: 0,
            errors: ErrorCounts::default(),
            status_counts: statuses.iter().copied().collect(),
            expected,
            unexpected: completed.saturating_sub(expected),
            unexpected_samples: Vec::new(),
            latency_corrected: LatencySummary::default(),
            latency_uncorrected: LatencySummary::default(),
            schedule_lag: LatencySummary::default(),
            bytes_sent: 0,
            bytes_received: 0,
            sent_kib_per_sec: 0.0,
            received_kib_per_sec: 0.0,
            connections_opened: 1,
            window_secs: 1.0,
            achieved_rate: 0.0,
            elapsed_secs: 1.0,
            driver_cpu_secs: 0.1,
            histograms,
        };
        result.refresh_derived();
        Ok(result)
    }

    /// Recomputes summaries and rates from the histograms and counts.
    pub(crate) fn refresh_derived(&mut self) {
        self.latency_corrected = LatencySummary::of(&self.histograms.corrected);
        self.latency_uncorrected = LatencySummary::of(&self.histograms.uncorrected);
        self.schedule_lag = LatencySummary::of(&self.histograms.lag);
        let per_sec = |n: u64| {
            if self.window_secs > 0.0 {
                n as f64 / self.window_secs
            } else {
                0.0
            }
        };
        self.achieved_rate = per_sec(self.completed);
        self.sent_kib_per_sec = per_sec(self.bytes_sent) / 1024.0;
        self.received_kib_per_sec = per_sec(self.bytes_received) / 1024.0;
    }

    /// Whether the latency figures can be trusted without qualification
    /// (the strict view, for benchmarks that need a quiet machine): the
    /// schedule was kept (no drops, requests sent on time, no distortion)
    /// and the target kept up with it. The reasons are
    /// [`driver_problems`](Self::driver_problems), then
    /// [`distortion_marks`](Self::distortion_marks), then
    /// [`target_problems`](Self::target_problems).
    pub fn validity(&self, thresholds: &Thresholds) -> Validity {
        let mut reasons = self.driver_problems(thresholds);
        reasons.extend(self.distortion_marks(thresholds));
        reasons.extend(self.target_problems(thresholds));
        if reasons.is_empty() {
            Validity::Valid
        } else {
            Validity::Invalid { reasons }
        }
    }

    /// How far late sends may have moved the reported latency.
    pub fn distortion(&self) -> Distortion {
        if self.mode != Mode::OpenLoop {
            return Distortion::default();
        }
        let (c, u) = (&self.latency_corrected, &self.latency_uncorrected);
        let p99_us = c.p99_us.saturating_sub(u.p99_us);
        Distortion {
            lag_p99_us: self.schedule_lag.p99_us,
            p50_us: c.p50_us.saturating_sub(u.p50_us),
            p99_us,
            p99_ratio: if u.p99_us == 0 {
                0.0
            } else {
                p99_us as f64 / u.p99_us as f64
            },
        }
    }

    /// The load was not delivered: arrivals dropped, or the achieved rate
    /// short of the target. Whose fault it is decides the rest.
    fn delivery_shortfalls(&self, thresholds: &Thresholds) -> Vec<String> {
        let mut problems = Vec::new();
        if self.dropped > thresholds.max_dropped {
            problems.push(format!(
                "{} of {} arrivals dropped: every connection was busy",
                self.dropped, self.scheduled
            ));
        }
        // Against the arrivals the schedule had in the window (a whole number: 10 req/s over
        // 0.75 s is 7 of them, not 7.5), so that a short window is not short by rounding.
        if let Some(target) = self.target_rate
            && self.completed > 0
            && (self.completed as f64)
                < (target * self.window_secs).floor() * thresholds.min_rate_fraction
        {
            problems.push(format!(
                "achieved {:.1} req/s, below {:.0} % of the target {:.1} req/s",
                self.achieved_rate,
                thresholds.min_rate_fraction * 100.0,
                target
            ));
        }
        problems
    }

    /// Why the driver was behind its schedule, if it was: lag over the
    /// ceiling, or its threads busy nearly all the time.
    fn driver_behind(&self, thresholds: &Thresholds) -> Option<String> {
        if self.mode != Mode::OpenLoop {
            return None;
        }
        let lag = self.schedule_lag.p99_us;
        if lag > thresholds.max_lag_p99_us {
            return Some(format!(
                "schedule lag p99 {lag} µs over {} µs",
                thresholds.max_lag_p99_us
            ));
        }
        let capacity = self.elapsed_secs * self.threads.max(1) as f64;
        if capacity > 0.0 && self.driver_cpu_secs >= thresholds.driver_busy_fraction * capacity {
            return Some(format!(
                "driver threads busy {:.0} % of the run",
                100.0 * self.driver_cpu_secs / capacity
            ));
        }
        None
    }

    /// The run is invalid, by the driver's fault (see [`Thresholds`]): it
    /// could not deliver the load because it was behind, or late sends
    /// make up over half of the median. Empty in closed loop.
    pub fn driver_problems(&self, thresholds: &Thresholds) -> Vec<String> {
        let mut problems = Vec::new();
        if self.mode != Mode::OpenLoop {
            return problems;
        }
        if let Some(behind) = self.driver_behind(thresholds) {
            for shortfall in self.delivery_shortfalls(thresholds) {
                problems.push(format!(
                    "{shortfall} while the driver was behind ({behind}): this machine could not drive the cell"
                ));
            }
        }
        let distortion = self.distortion();
        let u = self.latency_uncorrected.p50_us;
        let allowed =
            (thresholds.conclusion_inflation * u as f64).max(thresholds.inflation_floor_us as f64);
        if distortion.p50_us as f64 > allowed {
            problems.push(format!(
                "corrected p50 {} µs is {} µs above the uncorrected p50 {u} µs (over {:.0} %): late sends make up most of the typical request's latency",
                self.latency_corrected.p50_us,
                distortion.p50_us,
                thresholds.conclusion_inflation * 100.0
            ));
        }
        problems
    }

    /// The run is marked (its figures stand, with their bound; see
    /// [`Thresholds`]): requests went out late, or late sends inflated the
    /// corrected p50/p99 by a large share of what is reported. Empty in
    /// closed loop.
    pub fn distortion_marks(&self, thresholds: &Thresholds) -> Vec<String> {
        let mut marks = Vec::new();
        if self.mode != Mode::OpenLoop {
            return marks;
        }
        let lag = self.schedule_lag.p99_us;
        if lag > thresholds.max_lag_p99_us {
            marks.push(format!(
                "schedule lag p99 {lag} µs exceeds {} µs: requests went out late",
                thresholds.max_lag_p99_us
            ));
        }
        let (corrected, uncorrected) = (&self.latency_corrected, &self.latency_uncorrected);
        for (name, c, u) in [
            ("p50", corrected.p50_us, uncorrected.p50_us),
            ("p99", corrected.p99_us, uncorrected.p99_us),
        ] {
            let allowed =
                (thresholds.max_inflation * u as f64).max(thresholds.inflation_floor_us as f64);
            if c.saturating_sub(u) as f64 > allowed {
                marks.push(format!(
                    "corrected {name} {c} µs is {} µs above the uncorrected {name} {u} µs (allowed {allowed:.0} µs): late sends distort the latency",
                    c - u
                ));
            }
        }
        marks
    }

    /// The target (or the connection cap) could not carry the load while
    /// the driver kept its schedule: nothing completed, arrivals were
    /// dropped, or the achieved rate fell short. A finding about the target.
    pub fn target_problems(&self, thresholds: &Thresholds) -> Vec<String> {
        let mut problems = Vec::new();
        if self.completed == 0 {
            problems.push("no request completed".to_string());
        }
        if self.driver_behind(thresholds).is_none() {
            for shortfall in self.delivery_shortfalls(thresholds) {
                problems.push(format!(
                    "{shortfall} with the driver on schedule: the target could not keep up (or max_in_flight is too low)"
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

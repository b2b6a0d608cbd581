//! Whether a run's latency figures can be trusted, and whose fault it is when they cannot:
//! the rule in one place ([`Thresholds`] says it whole).

use serde::Serialize;

use crate::result::{Mode, RunResult};

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

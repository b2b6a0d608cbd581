//! What a run measured (whether it can be trusted, and whose fault it is when not: `validity.rs`).

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

    /// A result with nothing counted yet: what a run's figures are added to, and the base of
    /// `synthetic`, so that a new field gets its zero in one place.
    pub(crate) fn empty(
        label: String,
        mode: Mode,
        target_rate: Option<f64>,
        threads: usize,
        connections: usize,
    ) -> Result<RunResult> {
        Ok(RunResult {
            label,
            mode,
            target_rate,
            threads,
            connections,
            scheduled: 0,
            sent: 0,
            completed: 0,
            dropped: 0,
            errors: ErrorCounts::default(),
            status_counts: BTreeMap::new(),
            expected: 0,
            unexpected: 0,
            unexpected_samples: Vec::new(),
            latency_corrected: LatencySummary::default(),
            latency_uncorrected: LatencySummary::default(),
            schedule_lag: LatencySummary::default(),
            bytes_sent: 0,
            bytes_received: 0,
            sent_kib_per_sec: 0.0,
            received_kib_per_sec: 0.0,
            connections_opened: 0,
            window_secs: 0.0,
            achieved_rate: 0.0,
            elapsed_secs: 0.0,
            driver_cpu_secs: 0.0,
            histograms: Histograms::new()?,
        })
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
            scheduled: completed,
            sent: completed,
            completed,
            status_counts: statuses.iter().copied().collect(),
            expected,
            unexpected: completed.saturating_sub(expected),
            connections_opened: 1,
            window_secs: 1.0,
            elapsed_secs: 1.0,
            driver_cpu_secs: 0.1,
            histograms,
            ..RunResult::empty("synthetic".into(), Mode::OpenLoop, Some(target_rate), 1, 8)?
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
}

#[cfg(test)]
#[path = "result_tests.rs"]
mod tests;

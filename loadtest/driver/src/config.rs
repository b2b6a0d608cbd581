//! What a run does: target, schedule, limits.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};

/// Default per-request budget, connect through the last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on connections (= requests in flight) across all threads.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Longest accepted per-request timeout; also bounds how long a run can
/// overrun its schedule. Latency histograms track up to 60 s.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `OpenLoop::spin`: above this VM's usual timer wake-up latency.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);
/// Longest accepted `OpenLoop::spin`.
pub const MAX_SPIN: Duration = Duration::from_millis(1);
/// Most driver threads accepted.
pub const MAX_THREADS: usize = 64;

#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Where to connect (plain HTTP/1.1).
    pub addr: SocketAddr,
    /// `host` header for requests that carry none; `addr` when unset.
    pub host: Option<String>,
    /// Prefix of every `x-request-id` (`<label>-<index>`), so a request from
    /// a report can be found in gateway logs. Visible ASCII, no spaces.
    pub label: String,
    /// Driver threads, each with its own current-thread runtime,
    /// connections, histograms and share of the schedule.
    pub threads: usize,
    /// Sent at the same rate as the measured window; results discarded,
    /// connections kept.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Per request, from the moment it is handed to a connection (connect
    /// included) to its last body byte. Also how long stragglers are awaited
    /// after the window ends.
    pub timeout: Duration,
    pub load: Load,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    Open(OpenLoop),
    Closed(ClosedLoop),
}

/// Fixed arrival rate, independent of how fast the target answers.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenLoop {
    /// Requests per second, across all threads.
    pub rate: f64,
    /// Connections (= requests in flight; no pipelining) across all threads,
    /// split evenly between them. An arrival finding every connection busy
    /// is queued in the backlog if there is room, else dropped and counted.
    pub max_in_flight: usize,
    /// Arrivals that may wait for a connection (per run, split between
    /// threads). 0 (default): drop at once. A backlog behaves like wrk2's
    /// fixed connections: late sends, latency corrected from the due time.
    pub backlog: usize,
    /// Connections opened when the run starts (per run, split between
    /// threads), counted against `max_in_flight`; otherwise they are opened
    /// as arrivals need them.
    pub preconnect: usize,
    /// Wake this long before each due time and busy-poll the runtime (I/O
    /// included) until it. A sleeping vCPU here takes ~20–40 µs to wake on a
    /// timer; spinning removes that bias from lag and corrected latency
    /// (lag p50 ≈ 1 µs instead of ≈ 35 µs) at a CPU cost of at most
    /// `rate × spin` (5 % of a core at 1000 req/s). Zero: sleep on the
    /// timer until the due time. Not applied when a thread's arrivals are
    /// less than two spins apart (above 10 000 req/s per thread for the
    /// default): the thread would spin most of the time, and it is rarely
    /// asleep long enough to pay the wake-up anyway. Default
    /// [`DEFAULT_SPIN`].
    pub spin: Duration,
}

impl OpenLoop {
    pub fn new(rate: f64) -> Self {
        Self {
            rate,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            backlog: 0,
            preconnect: 0,
            spin: DEFAULT_SPIN,
        }
    }
}

/// Each connection sends its next request as soon as the previous answer
/// is in: the maximum-throughput mode `wrk` has. Latency here is the
/// uncorrected kind only; there is no schedule to be late for.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedLoop {
    /// Across all threads, split evenly between them.
    pub connections: usize,
}

impl DriverConfig {
    /// An open-loop run with defaults: label `run`, 1 thread, 1 s warm-up,
    /// 10 s measured, 5 s timeout.
    pub fn open_loop(addr: SocketAddr, rate: f64) -> Self {
        Self::with_load(addr, Load::Open(OpenLoop::new(rate)))
    }

    /// A closed-loop run with the same defaults.
    pub fn closed_loop(addr: SocketAddr, connections: usize) -> Self {
        Self::with_load(addr, Load::Closed(ClosedLoop { connections }))
    }

    fn with_load(addr: SocketAddr, load: Load) -> Self {
        Self {
            addr,
            host: None,
            label: "run".to_string(),
            threads: 1,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            timeout: DEFAULT_TIMEOUT,
            load,
        }
    }

    /// The latest a run can end: warm-up + duration + timeout (stragglers),
    /// not counting thread start-up and a few milliseconds of slack.
    pub fn max_run_time(&self) -> Duration {
        self.warmup + self.duration + self.timeout
    }

    pub fn validate(&self) -> Result<()> {
        if self.label.is_empty() || !self.label.bytes().all(|b| b.is_ascii_graphic()) {
            bail!(
                "label {:?} must be non-empty visible ASCII without spaces (it goes into x-request-id)",
                self.label
            );
        }
        if let Some(host) = &self.host
            && (host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()))
        {
            bail!("host {host:?} is not a valid host header value");
        }
        if self.threads == 0 || self.threads > MAX_THREADS {
            bail!("threads must be 1..={MAX_THREADS}, not {}", self.threads);
        }
        if self.duration.is_zero() {
            bail!("duration must be positive");
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            bail!(
                "timeout must be positive and at most {MAX_TIMEOUT:?}, not {:?}",
                self.timeout
            );
        }
        match &self.load {
            Load::Open(open) => {
                if !open.rate.is_finite() || open.rate <= 0.0 {
                    bail!(
                        "rate must be a positive number of requests per second, not {}",
                        open.rate
                    );
                }
                let arrivals = open.rate * (self.warmup + self.duration).as_secs_f64();
                if arrivals > 1e12 {
                    bail!("{arrivals} scheduled requests is beyond any run this driver can make");
                }
                if open.max_in_flight < self.threads {
                    bail!(
                        "max_in_flight ({}) must be at least the number of threads ({})",
                        open.max_in_flight,
                        self.threads
                    );
                }
                if open.spin > MAX_SPIN {
                    bail!("spin ({:?}) must be at most {MAX_SPIN:?}", open.spin);
                }
                if open.preconnect > open.max_in_flight {
                    bail!(
                        "preconnect ({}) cannot exceed max_in_flight ({})",
                        open.preconnect,
                        open.max_in_flight
                    );
                }
            }
            Load::Closed(closed) => {
                if closed.connections < self.threads {
                    bail!(
                        "connections ({}) must be at least the number of threads ({})",
                        closed.connections,
                        self.threads
                    );
                }
            }
        }
        Ok(())
    }
}

/// Thread `k`'s share of `total` split between `threads`.
pub(crate) fn share(total: usize, threads: usize, k: usize) -> usize {
    let threads = threads.max(1);
    total / threads + usize::from(k < total % threads)
}

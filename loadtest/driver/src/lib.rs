//! The load driver's measurement engine: an HTTP/1.1 load generator that
//! keeps a fixed arrival rate (open loop) with latency that can be trusted,
//! plus a closed-loop mode for maximum-throughput comparisons with `wrk`.
//!
//! # Measurement model
//!
//! * **Open loop.** Request *i* is due at `t0 + i / rate`, whatever the
//!   target does. Three distributions are kept, in µs, in HdrHistograms
//!   (1 µs … 60 s, 3 significant digits; no per-request samples are kept):
//!   - *corrected* latency, due time → last response byte (what wrk2 does
//!     against coordinated omission);
//!   - *uncorrected* latency, send → last response byte;
//!   - *schedule lag*, send − due time: how late the driver was.
//!
//!   corrected = uncorrected + lag for every request, so corrected ≥
//!   uncorrected at every percentile. "Send" is when a connection task
//!   takes the request; a request that has to open a connection includes
//!   the connect in its latency (a real client would wait for it too).
//! * **Pacing** uses a `timerfd` with absolute CLOCK_MONOTONIC deadlines in
//!   tokio's reactor; tokio's own timer (1 ms wheel) would add up to 1 ms of
//!   lag, more than a gateway's p50. Each wake-up sends every arrival whose
//!   due time has passed. By default the timer fires 50 µs early and the
//!   driver busy-polls its runtime (I/O included) up to the due time
//!   ([`OpenLoop::spin`]): a sleeping vCPU takes ~20–40 µs to wake, which
//!   would otherwise be added to every corrected latency.
//! * **Threads.** Each driver thread runs a current-thread runtime and owns
//!   arrivals `i ≡ k (mod threads)`, its connections and its histograms;
//!   nothing is shared on the hot path. Results are merged at the end.
//! * **Connections.** Keep-alive HTTP/1.1 (`hyper::client::conn::http1`),
//!   one request in flight per connection. An arrival takes the oldest idle
//!   connection, or opens one while fewer than `max_in_flight` exist; if
//!   all are busy it waits in the backlog (if configured) or is dropped and
//!   counted. A connection that failed or timed out is closed.
//! * **Warm-up** runs at the same rate; its requests are not recorded, its
//!   connections stay open. A request belongs to the window by its due time
//!   (closed loop: its start).
//! * **Bounded.** The schedule ends at `warmup + duration`; requests in
//!   flight then get at most `timeout` more (each request's deadline is
//!   `min(send, end) + timeout`), and whatever is still outstanding is
//!   counted as a timeout (in flight) or dropped (never sent).
//! * **Wire bytes** are counted on the socket, headers and framing
//!   included, for JMeter-comparable KB/s.
//! * **Validity.** A run's latency on a noisy machine is still a figure,
//!   with a known error: [`RunResult::distortion`] is its bound (schedule
//!   lag p99; corrected − uncorrected at p50 and p99). The run is *invalid*
//!   only when the driver could not deliver the load because it was behind,
//!   or when late sends make up over half of the reported median
//!   ([`RunResult::driver_problems`]); *marked* when the distortion is large
//!   relative to what is reported ([`RunResult::distortion_marks`]); and the
//!   *target's* finding when the load was not delivered while the driver
//!   kept its schedule ([`RunResult::target_problems`]).
//!   [`RunResult::validity`] is the strict union of the three. See
//!   [`Thresholds`] for the rule and the measurements behind the defaults,
//!   and [`idle_pacing`] for the machine's own scheduling noise.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use loadtest_driver::{self as driver, DriverConfig, ExpectStatus, RequestTemplate, Thresholds};
//!
//! # fn main() -> anyhow::Result<()> {
//! let addr = "127.0.0.1:8080".parse()?;
//! let mut config = DriverConfig::open_loop(addr, 1000.0);
//! config.label = "valid-jwt".into();
//! config.duration = Duration::from_secs(30);
//! let request = RequestTemplate::get("/api/items")?.header("authorization", "Bearer eyJ...")?;
//! let result = driver::run(&config, Arc::new(request), Arc::new(ExpectStatus::new([200])))?;
//! println!("{}", serde_json::to_string_pretty(&result)?);
//! println!("{:?}", result.validity(&Thresholds::default()));
//! # Ok(())
//! # }
//! ```

mod clock;
mod config;
mod engine;
mod pacer;
mod probe;
mod request;
mod result;
mod validity;
mod wire;

pub use config::{
    ClosedLoop, DEFAULT_MAX_IN_FLIGHT, DEFAULT_SPIN, DEFAULT_TIMEOUT, DriverConfig, Load, MAX_SPIN,
    MAX_THREADS, MAX_TIMEOUT, OpenLoop,
};
pub use engine::{REQUEST_ID_HEADER, run};
pub use probe::idle_pacing;
pub use request::{Classifier, ExpectStatus, Outcome, RequestSource, RequestTemplate, RoundRobin};
pub use result::{
    ErrorCounts, HISTOGRAM_MAX_US, HISTOGRAM_SIGFIG, Histograms, LatencySummary, Mode, RunResult,
    SAMPLE_LIMIT, UnexpectedSample, new_histogram,
};
pub use validity::{DEFAULT_MAX_LAG_P99_US, Distortion, Thresholds, Validity};

//! The measurement engine: driver threads, pacing, connections, recording.
//!
//! Each driver thread runs a current-thread tokio runtime with a `LocalSet`.
//! Everything a thread touches on the hot path (connection pool, backlog,
//! histograms, counters, wire-byte totals) is owned by that thread behind
//! `Rc`/`RefCell`/`Cell`: no locks, no atomics. Results are merged once the
//! threads have finished.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::http::uri::{Parts, PathAndQuery};
use hyper::{Request, Uri};
use tokio::sync::Notify;
use tokio::task::LocalSet;

use super::clock::{duration_ns, now_ns, ns_to_us, thread_cpu_ns, tokio_instant};
use super::config::{DriverConfig, Load, OpenLoop, share};
use super::pacer::{Pacer, minimise_timer_slack, raise_priority};
use super::request::{Classifier, Outcome, RequestSource};
use super::result::{
    ErrorCounts, ErrorKind, Histograms, Mode, RunResult, SAMPLE_LIMIT, UnexpectedSample,
};
use super::wire::WireCounters;

mod exchange;
mod schedule;

use exchange::{Answer, Conn, connect, exchange};
use schedule::{closed_worker, drain, open_schedule, preconnect};

/// The request-id header the engine sets on every request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How long after the threads report ready the schedule starts.
const START_LEAD: Duration = Duration::from_millis(2);
/// Arrivals dispatched back to back before the scheduler lets the
/// connections' tasks run (only reached when it is behind schedule).
const MAX_BURST: u32 = 32;
/// Past `end + timeout`, how long stragglers (whose own timeouts should
/// have fired by then) are given before they are counted as timeouts.
const DRAIN_GRACE: Duration = Duration::from_millis(50);
/// Pause after a failed connect in closed loop, so a refusing target does
/// not turn the driver into a connect-spinning loop.
const CLOSED_LOOP_CONNECT_BACKOFF: Duration = Duration::from_millis(10);
/// Status codes tracked per thread (HTTP statuses are three digits).
const STATUS_SLOTS: usize = 1000;

/// Runs `config` to completion and returns what it measured.
///
/// Blocks the calling thread for about `warmup + duration` (plus up to
/// `timeout` for stragglers): call it from a plain thread or through
/// `tokio::task::spawn_blocking`, not from inside an async task.
pub fn run(
    config: &DriverConfig,
    source: Arc<dyn RequestSource>,
    classifier: Arc<dyn Classifier>,
) -> Result<RunResult> {
    config.validate()?;
    let host_text = config
        .host
        .clone()
        .unwrap_or_else(|| config.addr.to_string());
    let host = HeaderValue::try_from(host_text.as_str())
        .with_context(|| format!("host {host_text:?} is not a valid header value"))?;
    let plan = Arc::new(Plan {
        config: config.clone(),
        host,
        request_id_header: HeaderName::from_static(REQUEST_ID_HEADER),
        source,
        classifier,
        warmup_ns: duration_ns(config.warmup),
        duration_ns: duration_ns(config.duration),
        timeout_ns: duration_ns(config.timeout),
    });

    let started = Instant::now();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut start_txs = Vec::with_capacity(config.threads);
    let mut handles = Vec::with_capacity(config.threads);
    let mut spawn_error = None;
    for k in 0..config.threads {
        let (start_tx, start_rx) = mpsc::channel::<u64>();
        let plan = Arc::clone(&plan);
        let ready = ready_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("driver-{k}"))
            .spawn(move || driver_thread(plan, k, ready, start_rx));
        match spawned {
            Ok(handle) => {
                start_txs.push(start_tx);
                handles.push(handle);
            }
            Err(e) => {
                spawn_error = Some(anyhow!(e).context(format!("spawning driver thread {k}")));
                break;
            }
        }
    }
    drop(ready_tx);

    // Every spawned thread reports once, ready or failed; then all start
    // from the same t0 so the schedule is one schedule.
    let mut setup_error = spawn_error;
    for _ in 0..handles.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                setup_error.get_or_insert_with(|| anyhow!(e));
            }
            Err(_) => {
                setup_error.get_or_insert_with(|| anyhow!("a driver thread exited during setup"));
            }
        }
    }
    if setup_error.is_none() {
        let t0 = now_ns() + duration_ns(START_LEAD);
        for tx in &start_txs {
            // A thread that is gone reports its error through join below.
            let _ = tx.send(t0);
        }
    }
    // Unstarted threads see the channel close and exit.
    drop(start_txs);

    let mut outputs = Vec::with_capacity(handles.len());
    let mut thread_error = None;
    for (k, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(output)) => outputs.push(output),
            Ok(Err(e)) => {
                thread_error.get_or_insert(e.context(format!("driver thread {k}")));
            }
            Err(_) => {
                thread_error.get_or_insert_with(|| anyhow!("driver thread {k} panicked"));
            }
        }
    }
    if let Some(e) = setup_error.or(thread_error) {
        return Err(e);
    }
    assemble(&plan, outputs, started.elapsed())
}

/// Read-only description of the run, shared by the driver threads.
struct Plan {
    config: DriverConfig,
    host: HeaderValue,
    request_id_header: HeaderName,
    source: Arc<dyn RequestSource>,
    classifier: Arc<dyn Classifier>,
    warmup_ns: u64,
    duration_ns: u64,
    timeout_ns: u64,
}

fn driver_thread(
    plan: Arc<Plan>,
    k: usize,
    ready: mpsc::Sender<Result<(), String>>,
    start: mpsc::Receiver<u64>,
) -> Result<ThreadOutput> {
    minimise_timer_slack();
    let _ = raise_priority();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("building driver thread {k}'s runtime: {e}")));
            return Err(anyhow!(e).context("building the driver runtime"));
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    let t0 = start
        .recv()
        .map_err(|_| anyhow!("run cancelled before it started"))?;

    let cpu_start = thread_cpu_ns();
    let local = LocalSet::new();
    let output = local.block_on(&runtime, async move {
        let thread = Rc::new(DriverThread::new(plan, k, t0)?);
        match &thread.plan.config.load {
            Load::Open(open) => {
                for _ in 0..share(open.preconnect, thread.threads(), k) {
                    thread.state.borrow_mut().slots += 1;
                    tokio::task::spawn_local(preconnect(Rc::clone(&thread)));
                }
                open_schedule(&thread, open).await?;
            }
            Load::Closed(closed) => {
                let workers = share(closed.connections, thread.threads(), k);
                thread.state.borrow_mut().busy = workers;
                for _ in 0..workers {
                    tokio::task::spawn_local(closed_worker(Rc::clone(&thread)));
                }
            }
        }
        drain(&thread).await;
        Ok::<_, anyhow::Error>(thread.output())
    });
    // Remaining tasks (idle connections' drivers) are dropped with the
    // LocalSet, before the runtime they are registered with.
    drop(local);
    output.map(|mut output| {
        output.cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
        output
    })
}

/// One scheduled (open loop) or started (closed loop) request.
#[derive(Debug, Clone, Copy)]
struct Job {
    index: u64,
    /// Due time (open loop) or start time (closed loop), `now_ns` clock.
    due: u64,
    measured: bool,
}

struct DriverThread {
    plan: Arc<Plan>,
    k: usize,
    /// Start of the measured window and end of the schedule, `now_ns` clock.
    window_start: u64,
    end: u64,
    wire: Rc<WireCounters>,
    state: RefCell<State>,
    /// Signalled when the last busy worker finishes.
    all_idle: Notify,
}

struct State {
    /// Open connections waiting for a request, oldest first (so the load
    /// rotates over all of them, and over the target's workers).
    idle: VecDeque<Conn>,
    /// Connections open, opening or in use: at most `max_slots`.
    slots: usize,
    max_slots: usize,
    backlog: VecDeque<Job>,
    backlog_cap: usize,
    /// Workers running (each owns a slot while it runs).
    busy: usize,
    /// Of those, workers on a measured request.
    measured_busy: usize,
    /// Closed loop: this thread's next request sequence number.
    next_seq: u64,
    /// Wire totals when the first measured request went out.
    window_bytes: Option<(u64, u64)>,
    stats: Stats,
}

#[derive(Clone)]
struct Stats {
    histograms: Histograms,
    scheduled: u64,
    sent: u64,
    completed: u64,
    dropped: u64,
    errors: ErrorCounts,
    statuses: Vec<u64>,
    expected: u64,
    unexpected: u64,
    samples: Vec<UnexpectedSample>,
    connections_opened: u64,
}

struct ThreadOutput {
    stats: Stats,
    bytes_sent: u64,
    bytes_received: u64,
    cpu_ns: u64,
}

impl DriverThread {
    fn new(plan: Arc<Plan>, k: usize, t0: u64) -> Result<Self> {
        let (max_slots, backlog_cap) = match &plan.config.load {
            Load::Open(open) => (
                share(open.max_in_flight, plan.config.threads, k),
                share(open.backlog, plan.config.threads, k),
            ),
            Load::Closed(closed) => (share(closed.connections, plan.config.threads, k), 0),
        };
        let window_start = t0.saturating_add(plan.warmup_ns);
        let end = window_start.saturating_add(plan.duration_ns);
        Ok(Self {
            k,
            window_start,
            end,
            wire: Rc::new(WireCounters::default()),
            state: RefCell::new(State {
                idle: VecDeque::new(),
                slots: 0,
                max_slots,
                backlog: VecDeque::new(),
                backlog_cap,
                busy: 0,
                measured_busy: 0,
                next_seq: 0,
                window_bytes: None,
                stats: Stats {
                    histograms: Histograms::new()?,
                    scheduled: 0,
                    sent: 0,
                    completed: 0,
                    dropped: 0,
                    errors: ErrorCounts::default(),
                    statuses: vec![0; STATUS_SLOTS],
                    expected: 0,
                    unexpected: 0,
                    samples: Vec::new(),
                    connections_opened: 0,
                },
            }),
            all_idle: Notify::new(),
            plan,
        })
    }

    fn threads(&self) -> usize {
        self.plan.config.threads
    }

    /// Per-request deadline: `timeout` after the send, and never later than
    /// the cutoff, which bounds the whole run.
    fn deadline(&self, sent_at: u64) -> u64 {
        sent_at
            .saturating_add(self.plan.timeout_ns)
            .min(self.cutoff())
    }

    /// End of the straggler allowance: `timeout` after the schedule's end.
    fn cutoff(&self) -> u64 {
        self.end.saturating_add(self.plan.timeout_ns)
    }

    fn build_request(&self, index: u64) -> Request<Full<Bytes>> {
        let mut request = self.plan.source.request(index);
        if request.uri().scheme().is_some() || request.uri().authority().is_some() {
            to_origin_form(&mut request);
        }
        let headers = request.headers_mut();
        if !headers.contains_key(HOST) {
            headers.insert(HOST, self.plan.host.clone());
        }
        if let Ok(id) = HeaderValue::try_from(request_id(&self.plan.config.label, index)) {
            headers.insert(self.plan.request_id_header.clone(), id);
        }
        request
    }

    fn finish_worker(&self, state: &mut State) {
        state.busy = state.busy.saturating_sub(1);
        if state.busy == 0 {
            self.all_idle.notify_one();
        }
    }

    fn output(&self) -> ThreadOutput {
        let state = self.state.borrow();
        let (end_sent, end_received) = self.wire.snapshot();
        let (start_sent, start_received) = state.window_bytes.unwrap_or((end_sent, end_received));
        ThreadOutput {
            stats: state.stats.clone(),
            bytes_sent: end_sent.saturating_sub(start_sent),
            bytes_received: end_received.saturating_sub(start_received),
            cpu_ns: 0,
        }
    }
}

impl State {
    fn mark_window_start(&mut self, wire: &WireCounters) {
        if self.window_bytes.is_none() {
            self.window_bytes = Some(wire.snapshot());
        }
    }

    /// An idle connection that is still open, discarding closed ones.
    fn take_idle(&mut self) -> Option<Conn> {
        while let Some(conn) = self.idle.pop_front() {
            if conn.is_closed() {
                self.slots = self.slots.saturating_sub(1);
                continue;
            }
            return Some(conn);
        }
        None
    }

    /// Next backlogged arrival, now owned by a worker; None once `cutoff`
    /// (the end of the straggler allowance) has passed, leaving the rest to
    /// be counted as dropped.
    fn take_backlog(&mut self, cutoff: u64) -> Option<Job> {
        if self.backlog.is_empty() || now_ns() >= cutoff {
            return None;
        }
        let job = self.backlog.pop_front()?;
        if job.measured {
            self.measured_busy += 1;
        }
        Some(job)
    }
}

impl Stats {
    fn record(
        &mut self,
        closed_loop: bool,
        label: &str,
        job: &Job,
        sent_at: u64,
        done: u64,
        result: Result<Answer, ErrorKind>,
    ) {
        if !job.measured {
            return;
        }
        self.sent += 1;
        if !closed_loop {
            self.histograms
                .lag
                .saturating_record(ns_to_us(sent_at.saturating_sub(job.due)));
        }
        match result {
            Ok(answer) => {
                self.completed += 1;
                if let Some(slot) = self.statuses.get_mut(usize::from(answer.status)) {
                    *slot += 1;
                }
                match answer.outcome {
                    Outcome::Expected => self.expected += 1,
                    Outcome::Unexpected => {
                        self.unexpected += 1;
                        if self.samples.len() < SAMPLE_LIMIT {
                            self.samples.push(UnexpectedSample {
                                index: job.index,
                                request_id: request_id(label, job.index),
                                status: answer.status,
                                www_authenticate: answer.www_authenticate,
                            });
                        }
                    }
                }
                self.histograms
                    .uncorrected
                    .saturating_record(ns_to_us(done.saturating_sub(sent_at)));
                if !closed_loop {
                    self.histograms
                        .corrected
                        .saturating_record(ns_to_us(done.saturating_sub(job.due)));
                }
            }
            Err(kind) => self.errors.count(kind),
        }
    }
}

fn request_id(label: &str, index: u64) -> String {
    let mut id = String::with_capacity(label.len() + 21);
    id.push_str(label);
    id.push('-');
    let _ = write!(id, "{index}");
    id
}

/// Rewrites an absolute-form URI to origin-form (HTTP/1.1 to an origin
/// server), moving its authority into `host` unless one is set.
fn to_origin_form(request: &mut Request<Full<Bytes>>) {
    let uri = request.uri().clone();
    if let Some(authority) = uri.authority()
        && !request.headers().contains_key(HOST)
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(HOST, value);
    }
    let mut parts = Parts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    if let Ok(origin) = Uri::from_parts(parts) {
        *request.uri_mut() = origin;
    }
}

fn assemble(plan: &Plan, outputs: Vec<ThreadOutput>, elapsed: Duration) -> Result<RunResult> {
    let config = &plan.config;
    let (mode, target_rate, connections) = match &config.load {
        Load::Open(open) => (Mode::OpenLoop, Some(open.rate), open.max_in_flight),
        Load::Closed(closed) => (Mode::ClosedLoop, None, closed.connections),
    };
    let mut histograms = Histograms::new()?;
    let mut statuses = vec![0u64; STATUS_SLOTS];
    let mut result_samples = Vec::new();
    let mut result = RunResult {
        window_secs: config.duration.as_secs_f64(),
        elapsed_secs: elapsed.as_secs_f64(),
        ..RunResult::empty(
            config.label.clone(),
            mode,
            target_rate,
            config.threads,
            connections,
        )?
    };
    for output in outputs {
        let stats = output.stats;
        histograms.add(&stats.histograms)?;
        for (total, n) in statuses.iter_mut().zip(&stats.statuses) {
            *total += n;
        }
        result.scheduled += stats.scheduled;
        result.sent += stats.sent;
        result.completed += stats.completed;
        result.dropped += stats.dropped;
        let e = stats.errors;
        result.errors.connect += e.connect;
        result.errors.timeout += e.timeout;
        result.errors.closed += e.closed;
        result.errors.protocol += e.protocol;
        result.errors.io += e.io;
        result.expected += stats.expected;
        result.unexpected += stats.unexpected;
        result_samples.extend(stats.samples);
        result.connections_opened += stats.connections_opened;
        result.bytes_sent += output.bytes_sent;
        result.bytes_received += output.bytes_received;
        result.driver_cpu_secs += Duration::from_nanos(output.cpu_ns).as_secs_f64();
    }
    result.status_counts = statuses
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .filter_map(|(status, n)| u16::try_from(status).ok().map(|s| (s, *n)))
        .collect();
    result_samples.sort_by_key(|s| s.index);
    result_samples.truncate(SAMPLE_LIMIT);
    result.unexpected_samples = result_samples;
    result.histograms = histograms;
    result.refresh_derived();
    Ok(result)
}

//! The load: the driver's closed loop (`loadtest::driver`), with Envoy's and the backend's CPU
//! sampled over the driver's measured window.
//!
//! The driver measures by its own window (requests *started* after the warm-up and before the
//! end) and offers no hook at the window's start, so the bench wraps the request source and the
//! classifier: the source signals its first request (the run's start) and counts the requests
//! built, the classifier counts every answer by status. A sampler thread starts the CPU window
//! a warm-up after the first request and stops it a window later; the warm-up's counts are the
//! run's totals less the driver's measured ones.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::mpsc;

use hyper::HeaderMap;
use loadtest::driver::{
    self, Classifier, DriverConfig, ExpectStatus, Outcome, RequestSource, RequestTemplate,
    RoundRobin, RunResult,
};

use super::*;

/// What one phase saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct PhaseTally {
    pub(crate) responses: u64,
    pub(crate) unexpected: BTreeMap<u16, u64>,
    pub(crate) transport_errors: u64,
}

impl PhaseTally {
    pub(crate) fn bad(&self) -> u64 {
        self.unexpected.values().sum::<u64>() + self.transport_errors
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) warmup: PhaseTally,
    pub(crate) measured: PhaseTally,
    /// Connections opened beyond one per connection slot (Envoy closed one, or it failed).
    pub(crate) reconnects: u64,
}

pub(crate) struct Measurement {
    pub(crate) tally: Tally,
    /// The driver's measured window.
    pub(crate) window: Duration,
    pub(crate) envoy: CpuWindow,
    pub(crate) backend: CpuWindow,
}

/// One scenario's load: where, what, and the answer it expects.
pub(crate) struct Load {
    pub(crate) addr: SocketAddr,
    pub(crate) label: &'static str,
    /// One request per value, cycled; none: requests without `authorization`.
    pub(crate) authorization: Vec<HeaderValue>,
    pub(crate) expected_status: u16,
}

/// The requests, cycled by the driver's index, counting how many were built and telling the
/// sampler when the first one went out.
struct CountedSource {
    requests: RoundRobin,
    built: AtomicU64,
    started: AtomicBool,
    /// Taken by the first request; dropped after the run, so a sampler still waiting wakes.
    start_signal: Mutex<Option<mpsc::Sender<Instant>>>,
}

impl RequestSource for CountedSource {
    fn request(&self, index: u64) -> Request<Full<Bytes>> {
        self.built.fetch_add(1, Ordering::Relaxed);
        if !self.started.load(Ordering::Relaxed) && !self.started.swap(true, Ordering::AcqRel) {
            let now = Instant::now();
            if let Some(signal) = self.start_signal.lock().ok().and_then(|mut s| s.take()) {
                let _ = signal.send(now);
            }
        }
        self.requests.request(index)
    }
}

/// The expected status, counting every answer of the run (warm-up included) by outcome.
struct CountedClassifier {
    expected: ExpectStatus,
    answers: AtomicU64,
    unexpected: Mutex<BTreeMap<u16, u64>>,
}

impl Classifier for CountedClassifier {
    fn classify(&self, status: u16, headers: &HeaderMap) -> Outcome {
        self.answers.fetch_add(1, Ordering::Relaxed);
        let outcome = self.expected.classify(status, headers);
        if outcome == Outcome::Unexpected
            && let Ok(mut unexpected) = self.unexpected.lock()
        {
            *unexpected.entry(status).or_default() += 1;
        }
        outcome
    }
}

/// Runs `load` closed-loop over `connections` keep-alive connections from one driver thread:
/// `warmup`, then the measured `window` with Envoy's and the backend's CPU sampled over it.
pub(crate) fn run_load(
    load: &Load,
    connections: usize,
    warmup: Duration,
    window: Duration,
    envoy_pid: u32,
    backend_pid: u32,
) -> Result<Measurement> {
    let template = RequestTemplate::get(REQUEST_PATH)?;
    let templates = if load.authorization.is_empty() {
        vec![template]
    } else {
        load.authorization
            .iter()
            .map(|value| template.clone().header_value(AUTHORIZATION, value.clone()))
            .collect()
    };
    let (signal, first_request) = mpsc::channel();
    let source = Arc::new(CountedSource {
        requests: RoundRobin::new(templates)?,
        built: AtomicU64::new(0),
        started: AtomicBool::new(false),
        start_signal: Mutex::new(Some(signal)),
    });
    let classifier = Arc::new(CountedClassifier {
        expected: ExpectStatus::new([load.expected_status]),
        answers: AtomicU64::new(0),
        unexpected: Mutex::new(BTreeMap::new()),
    });
    let mut config = DriverConfig::closed_loop(load.addr, connections);
    config.label = load.label.to_owned();
    config.warmup = warmup;
    config.duration = window;
    config.timeout = REQUEST_TIMEOUT;

    let sampler = std::thread::Builder::new()
        .name("cpu-window".to_owned())
        .spawn(move || sample_window(&first_request, warmup, window, envoy_pid, backend_pid))
        .context("spawning the CPU sampler")?;
    let result = driver::run(&config, source.clone(), classifier.clone());
    // Whatever happened, the sampler must not wait for a first request any more.
    drop(source.start_signal.lock().ok().and_then(|mut s| s.take()));
    let sampled = sampler
        .join()
        .map_err(|_| anyhow!("the CPU sampler panicked"))?;
    let result = result.context("the closed-loop load")?;
    let (envoy, backend) = sampled?;
    let unexpected = classifier
        .unexpected
        .lock()
        .map(|u| u.clone())
        .unwrap_or_default();
    let tally = tally(
        &result,
        load.expected_status,
        source.built.load(Ordering::Relaxed),
        classifier.answers.load(Ordering::Relaxed),
        &unexpected,
    );
    Ok(Measurement {
        tally,
        window: Duration::from_secs_f64(result.window_secs),
        envoy,
        backend,
    })
}

/// The measured window's counts from the driver; the warm-up's from the run's totals (`built`
/// requests, `answers`, `unexpected` answers by status) less those.
fn tally(
    result: &RunResult,
    expected_status: u16,
    built: u64,
    answers: u64,
    unexpected: &BTreeMap<u16, u64>,
) -> Tally {
    let measured_unexpected: BTreeMap<u16, u64> = result
        .status_counts
        .iter()
        .filter(|(status, _)| **status != expected_status)
        .map(|(status, n)| (*status, *n))
        .collect();
    let warmup_unexpected = unexpected
        .iter()
        .map(|(status, n)| {
            let measured = measured_unexpected.get(status).copied().unwrap_or(0);
            (*status, n.saturating_sub(measured))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let warmup_requests = built.saturating_sub(result.scheduled);
    let warmup_responses = answers.saturating_sub(result.completed);
    Tally {
        warmup: PhaseTally {
            responses: warmup_responses,
            unexpected: warmup_unexpected,
            transport_errors: warmup_requests.saturating_sub(warmup_responses),
        },
        measured: PhaseTally {
            responses: result.completed,
            unexpected: measured_unexpected,
            transport_errors: result.errors.total(),
        },
        reconnects: result
            .connections_opened
            .saturating_sub(result.connections as u64),
    }
}

/// Waits for the run's first request, then samples Envoy's and the backend's CPU time over the
/// driver's measured window: from a warm-up after that request, for `window`.
fn sample_window(
    first_request: &mpsc::Receiver<Instant>,
    warmup: Duration,
    window: Duration,
    envoy_pid: u32,
    backend_pid: u32,
) -> Result<(CpuWindow, CpuWindow)> {
    raise_priority();
    let started = first_request
        .recv()
        .map_err(|_| anyhow!("the load ended before its first request"))?;
    std::thread::sleep((started + warmup).saturating_duration_since(Instant::now()));
    let envoy = CpuSampler::start(envoy_pid).context("sampling Envoy's CPU time")?;
    let backend = CpuSampler::start(backend_pid).context("sampling the backend's CPU time")?;
    std::thread::sleep(window);
    Ok((envoy.stop()?, backend.stop()?))
}

/// The driver threads' priority (nice -10) for the sampler, so a busy machine wakes it as
/// promptly as the load; without the privilege it keeps its own, and the rate ratio in
/// `ScenarioResult::envoy_us_per_request` absorbs a late wake-up.
fn raise_priority() {
    // SAFETY: gettid has no preconditions; setpriority on this thread's id changes only its
    // nice value.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10);
    }
}

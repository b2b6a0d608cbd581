//! The load driver's measurement engine against real sockets: the backend
//! binary, and in-process servers that stall, refuse or never answer.
//!
//! Timing assertions are deliberately loose (2 cores, tests sharing them);
//! `measure_*` tests (ignored) print the figures the driver achieves here:
//! `cargo test --release -p loadtest --test driver -- --ignored --nocapture`.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use loadtest::driver::{
    self, DriverConfig, ExpectStatus, Load, Mode, OpenLoop, Outcome, RequestTemplate, RoundRobin,
    RunResult, Thresholds, Validity,
};
use loadtest::process::ManagedProcess;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Driver runs are timing-sensitive: one at a time within this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn backend() -> (ManagedProcess, SocketAddr) {
    let dir = loadtest::paths::run_dir("driver");
    loadtest::backend::spawn(&dir, "backend", 1).expect("start the backend binary")
}

/// An HTTP/1.1 server on its own thread and runtime, until dropped.
struct TestServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start_server<F, Fut>(handler: F) -> TestServer
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    spawn_server_thread(move |listener| async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Accepts connections and never reads or answers.
fn start_silent_server() -> TestServer {
    spawn_server_thread(|listener| async move {
        let mut held = Vec::new();
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        }
    })
}

fn spawn_server_thread<S, Fut>(serve: S) -> TestServer
where
    S: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx
                .send(listener.local_addr().expect("local addr"))
                .expect("send addr");
            tokio::select! {
                _ = serve(listener) => {}
                _ = shutdown_rx => {}
            }
        });
    });
    let addr = addr_rx.recv().expect("server address");
    TestServer {
        addr,
        shutdown: Some(shutdown_tx),
        thread: Some(thread),
    }
}

fn ok_response(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
    *response.status_mut() = status;
    response
}

fn request_index(request: &Request<Incoming>) -> Option<u64> {
    let id = request.headers().get("x-request-id")?.to_str().ok()?;
    id.rsplit('-').next()?.parse().ok()
}

fn expect_200() -> Arc<ExpectStatus> {
    Arc::new(ExpectStatus::new([200]))
}

fn get(path: &str) -> Arc<RequestTemplate> {
    Arc::new(RequestTemplate::get(path).expect("template"))
}

fn open(addr: SocketAddr, rate: f64, warmup_ms: u64, duration_ms: u64) -> DriverConfig {
    let mut config = DriverConfig::open_loop(addr, rate);
    config.warmup = Duration::from_millis(warmup_ms);
    config.duration = Duration::from_millis(duration_ms);
    config
}

fn open_mut(config: &mut DriverConfig) -> &mut OpenLoop {
    match &mut config.load {
        Load::Open(open) => open,
        Load::Closed(_) => panic!("not an open-loop config"),
    }
}

/// Bookkeeping every result must satisfy.
fn check_invariants(result: &RunResult) {
    assert_eq!(
        result.scheduled,
        result.sent + result.dropped,
        "{result:#?}"
    );
    assert_eq!(
        result.sent,
        result.completed + result.errors.total(),
        "{result:#?}"
    );
    assert_eq!(result.completed, result.expected + result.unexpected);
    assert_eq!(result.completed, result.status_counts.values().sum::<u64>());
    assert_eq!(result.latency_uncorrected.count, result.completed);
    match result.mode {
        Mode::OpenLoop => {
            assert_eq!(result.latency_corrected.count, result.completed);
            // Lag is recorded for every request handed to a connection
            // (stragglers cut off at the end have none).
            assert!(result.schedule_lag.count <= result.sent);
            let (c, u) = (&result.latency_corrected, &result.latency_uncorrected);
            assert!(c.p50_us >= u.p50_us && c.p99_us >= u.p99_us && c.max_us >= u.max_us);
            assert!(c.mean_us >= u.mean_us);
        }
        Mode::ClosedLoop => {
            assert_eq!(result.latency_corrected.count, 0);
            assert_eq!(result.schedule_lag.count, 0);
        }
    }
    assert!(result.unexpected_samples.len() <= driver::SAMPLE_LIMIT);
}

fn reasons(validity: &Validity) -> Vec<String> {
    match validity {
        Validity::Valid => Vec::new(),
        Validity::Invalid { reasons } => reasons.clone(),
    }
}

#[test]
fn open_loop_at_500_rps_against_the_backend() {
    let _serial = serial();
    let (_backend, addr) = backend();
    let mut config = open(addr, 500.0, 500, 2_000);
    config.label = "t500".into();
    let source = Arc::new(
        RequestTemplate::get("/api/items?page=1")
            .and_then(|t| t.header("authorization", "Bearer not-a-real-token"))
            .expect("template"),
    );
    let result = driver::run(&config, source, expect_200()).expect("run");
    eprintln!("{}", serde_json::to_string_pretty(&result).expect("json"));
    check_invariants(&result);

    assert!((999..=1001).contains(&result.scheduled), "{result:#?}");
    assert_eq!(result.dropped, 0);
    assert_eq!(result.errors.total(), 0, "{:?}", result.errors);
    assert!(result.achieved_rate >= 475.0, "{}", result.achieved_rate);
    assert_eq!(result.unexpected, 0);
    assert_eq!(result.expected, result.completed);
    assert_eq!(result.status_counts.get(&200), Some(&result.completed));
    assert_eq!(result.schedule_lag.count, result.sent);

    // Smallest possible request: request line, host, x-request-id, and the
    // authorization header; the smallest response: a status line and the
    // blank line. Neither can be over a few hundred bytes here.
    let min_request = format!(
        "GET /api/items?page=1 HTTP/1.1\r\nauthorization: Bearer not-a-real-token\r\nhost: {addr}\r\nx-request-id: t500-250\r\n\r\n"
    )
    .len() as u64;
    let min_response = "HTTP/1.1 200 OK\r\n\r\n".len() as u64;
    assert!(result.bytes_sent >= result.completed * min_request);
    assert!(result.bytes_sent <= result.sent * 512);
    assert!(result.bytes_received >= result.completed * min_response);
    assert!(result.bytes_received <= result.sent * 2048);
    assert!(result.sent_kib_per_sec > 0.0 && result.received_kib_per_sec > 0.0);
    // A few connections suffice at 500 req/s with sub-ms answers.
    assert!(result.connections_opened >= 1 && result.connections_opened < 64);

    let json = serde_json::to_value(&result).expect("json");
    for key in [
        "target_rate",
        "scheduled",
        "sent",
        "completed",
        "dropped",
        "errors",
        "status_counts",
        "expected",
        "unexpected",
        "unexpected_samples",
        "latency_corrected",
        "latency_uncorrected",
        "schedule_lag",
        "bytes_sent",
        "bytes_received",
        "window_secs",
        "achieved_rate",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["status_counts"]["200"], result.completed);
    assert!(json["latency_corrected"]["p99_us"].as_u64().is_some());
}

#[test]
fn stalled_target_drops_arrivals_and_is_invalid() {
    let _serial = serial();
    let server = start_server(|_request| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ok_response(StatusCode::OK)
    });
    let mut config = open(server.addr, 100.0, 0, 2_000);
    config.timeout = Duration::from_secs(2);
    open_mut(&mut config).max_in_flight = 4;
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    check_invariants(&result);

    // 4 connections × ~3.3 answers/s cannot carry 100 req/s.
    assert!(result.dropped > 100, "{result:#?}");
    assert!(result.completed >= 4, "{result:#?}");
    assert!(result.latency_uncorrected.p50_us >= 300_000);
    assert!(result.latency_corrected.p99_us > 300_000);

    let validity = result.validity(&Thresholds::default());
    let reasons = reasons(&validity);
    assert!(!validity.is_valid());
    assert!(reasons.iter().any(|r| r.contains("dropped")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("achieved")),
        "{reasons:?}"
    );
}

#[test]
fn stalled_target_with_backlog_shows_queueing_in_corrected_latency() {
    let _serial = serial();
    let server = start_server(|_request| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ok_response(StatusCode::OK)
    });
    let mut config = open(server.addr, 50.0, 0, 2_000);
    config.timeout = Duration::from_secs(1);
    let load = open_mut(&mut config);
    load.max_in_flight = 2;
    load.backlog = 1_000;
    let started = Instant::now();
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    let elapsed = started.elapsed();
    check_invariants(&result);

    // Arrivals wait for one of two connections: each answer takes 300 ms,
    // but the corrected latency counts the wait since the due time too.
    let (c, u) = (&result.latency_corrected, &result.latency_uncorrected);
    assert!(u.p99_us >= 300_000 && u.p99_us < 700_000, "{u:?}");
    assert!(
        c.p99_us > 2 * u.p99_us,
        "corrected {c:?} vs uncorrected {u:?}"
    );
    assert!(result.schedule_lag.p99_us > 300_000);
    // What was still queued when the straggler allowance ran out.
    assert!(result.dropped > 0);
    let reasons = reasons(&result.validity(&Thresholds::default()));
    assert!(reasons.iter().any(|r| r.contains("lag")), "{reasons:?}");
    assert!(elapsed < config.max_run_time() + Duration::from_millis(1_500));
}

#[test]
fn unexpected_responses_are_sampled_with_request_ids() {
    let _serial = serial();
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let server_seen = Arc::clone(&seen);
    let server = start_server(move |request| {
        let seen = Arc::clone(&server_seen);
        async move {
            if let Some(id) = request.headers().get("x-request-id")
                && let Ok(id) = id.to_str()
            {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.to_string());
            }
            // Odd requests are refused: the scenario expected 200s.
            match request_index(&request) {
                Some(i) if i % 2 == 1 => {
                    let mut response = ok_response(StatusCode::UNAUTHORIZED);
                    response.headers_mut().insert(
                        "www-authenticate",
                        "Bearer realm=\"api\", error=\"invalid_token\""
                            .parse()
                            .expect("header"),
                    );
                    response
                }
                _ => ok_response(StatusCode::OK),
            }
        }
    });
    let mut config = open(server.addr, 200.0, 200, 1_000);
    config.label = "gap".into();
    let result = driver::run(&config, get("/api"), expect_200()).expect("run");
    check_invariants(&result);

    assert!(result.completed >= 190, "{result:#?}");
    assert!(result.unexpected.abs_diff(result.expected) <= 1);
    assert_eq!(result.status_counts.get(&401), Some(&result.unexpected));
    let samples = &result.unexpected_samples;
    assert_eq!(samples.len(), driver::SAMPLE_LIMIT);
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    for pair in samples.windows(2) {
        assert!(pair[0].index < pair[1].index);
    }
    for sample in samples {
        assert_eq!(sample.status, 401);
        assert_eq!(sample.index % 2, 1);
        // Warm-up requests (indices < 40) are not part of the result.
        assert!(sample.index >= 40, "{sample:?}");
        assert_eq!(sample.request_id, format!("gap-{}", sample.index));
        assert!(
            seen.contains(&sample.request_id),
            "{} not seen by the server",
            sample.request_id
        );
        assert_eq!(
            sample.www_authenticate.as_deref(),
            Some("Bearer realm=\"api\", error=\"invalid_token\"")
        );
    }
    // Unexpected responses are not transport errors, and do not make the
    // measurement invalid: they are the finding.
    assert_eq!(result.errors.total(), 0);
}

#[test]
fn index_aware_classifier_and_round_robin_sources() {
    let _serial = serial();
    let (_backend, addr) = backend();

    /// Expects 200 for even indices and 401 for odd ones: against the
    /// backend (always 200) every odd request is a "gap".
    struct Alternating;
    impl driver::Classifier for Alternating {
        fn classify(&self, _status: u16, _headers: &HeaderMap) -> Outcome {
            Outcome::Expected
        }
        fn classify_request(&self, index: u64, status: u16, _headers: &HeaderMap) -> Outcome {
            let expected = if index.is_multiple_of(2) { 200 } else { 401 };
            if status == expected {
                Outcome::Expected
            } else {
                Outcome::Unexpected
            }
        }
    }

    let templates = RoundRobin::new(vec![
        RequestTemplate::get("/valid").expect("template"),
        RequestTemplate::get("/expired").expect("template"),
    ])
    .expect("round robin");
    let mut config = open(addr, 300.0, 0, 1_000);
    config.threads = 2;
    let result = driver::run(&config, Arc::new(templates), Arc::new(Alternating)).expect("run");
    check_invariants(&result);
    assert!((299..=301).contains(&result.scheduled), "{result:#?}");
    assert!(
        result.unexpected.abs_diff(result.expected) <= 1,
        "{result:#?}"
    );
    for sample in &result.unexpected_samples {
        assert_eq!(sample.index % 2, 1);
        assert_eq!(sample.status, 200);
        assert_eq!(sample.www_authenticate, None);
    }
}

#[test]
fn connection_refused_counts_connect_errors_and_ends_on_time() {
    let _serial = serial();
    // A port nothing listens on: bound, then released.
    let addr = {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let mut config = open(addr, 200.0, 200, 1_000);
    config.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    let elapsed = started.elapsed();
    check_invariants(&result);

    assert!(result.sent > 0);
    assert_eq!(result.errors.connect, result.sent, "{result:#?}");
    assert_eq!(result.completed, 0);
    assert_eq!(result.connections_opened, 0);
    assert!(elapsed < config.max_run_time() + Duration::from_millis(1_500));
    let reasons = reasons(&result.validity(&Thresholds::default()));
    assert!(
        reasons.iter().any(|r| r.contains("no request completed")),
        "{reasons:?}"
    );

    // Closed loop too: errors counted, no spinning past the end.
    let mut closed = DriverConfig::closed_loop(addr, 4);
    closed.warmup = Duration::from_millis(100);
    closed.duration = Duration::from_millis(500);
    closed.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let result = driver::run(&closed, get("/"), expect_200()).expect("run");
    check_invariants(&result);
    assert!(result.errors.connect > 0);
    // 10 ms back-off per failed connect and connection.
    assert!(result.errors.connect <= 4 * 60, "{:?}", result.errors);
    assert!(started.elapsed() < closed.max_run_time() + Duration::from_millis(1_500));
}

#[test]
fn runs_against_a_silent_target_end_within_warmup_duration_and_timeout() {
    let _serial = serial();
    let server = start_silent_server();

    let mut config = open(server.addr, 50.0, 300, 1_000);
    config.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    let elapsed = started.elapsed();
    check_invariants(&result);
    assert_eq!(result.completed, 0);
    assert!((49..=51).contains(&result.sent), "{result:#?}");
    assert_eq!(result.errors.timeout, result.sent, "{result:#?}");
    // Requests sent at the very end get their full timeout.
    assert!(elapsed >= config.warmup + config.duration + Duration::from_millis(900));
    assert!(elapsed < config.max_run_time() + Duration::from_millis(1_500));

    let mut closed = DriverConfig::closed_loop(server.addr, 3);
    closed.warmup = Duration::from_millis(200);
    closed.duration = Duration::from_millis(500);
    closed.timeout = Duration::from_millis(400);
    let started = Instant::now();
    let result = driver::run(&closed, get("/"), expect_200()).expect("run");
    let elapsed = started.elapsed();
    check_invariants(&result);
    assert_eq!(result.completed, 0);
    assert!(result.errors.timeout >= 3, "{result:#?}");
    assert!(elapsed < closed.max_run_time() + Duration::from_millis(1_500));
}

#[test]
fn closed_loop_against_the_backend() {
    let _serial = serial();
    let (_backend, addr) = backend();
    let mut config = DriverConfig::closed_loop(addr, 4);
    config.warmup = Duration::from_millis(200);
    config.duration = Duration::from_millis(1_000);
    config.label = "closed".into();
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    check_invariants(&result);
    assert!(result.completed > 100, "{result:#?}");
    assert_eq!(result.errors.total(), 0);
    assert_eq!(result.scheduled, result.sent);
    assert_eq!(result.connections_opened, 4);
    assert!(result.target_rate.is_none());
    assert_eq!(result.latency(), &result.latency_uncorrected);
    assert!(result.validity(&Thresholds::default()).is_valid());
}

#[test]
fn preconnected_connections_take_turns() {
    let _serial = serial();
    let (_backend, addr) = backend();
    let mut config = open(addr, 100.0, 0, 500);
    open_mut(&mut config).preconnect = 3;
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    check_invariants(&result);
    assert_eq!(result.completed, 50, "{result:#?}");
    // 10 ms between arrivals, sub-ms answers: the three preconnected
    // connections are enough, and none needed opening on demand.
    assert_eq!(result.connections_opened, 3, "{result:#?}");
}

#[test]
fn results_merge_across_runs() {
    let _serial = serial();
    let (_backend, addr) = backend();
    let config = open(addr, 200.0, 0, 500);
    let first = driver::run(&config, get("/"), expect_200()).expect("run");
    let second = driver::run(&config, get("/"), expect_200()).expect("run");
    let mut merged = first.clone();
    merged.merge(&second).expect("merge");
    check_invariants(&merged);
    assert_eq!(merged.completed, first.completed + second.completed);
    assert_eq!(
        merged.histograms().corrected.len(),
        first.histograms().corrected.len() + second.histograms().corrected.len()
    );
    assert_eq!(merged.latency_corrected.count, merged.completed);
    assert!((merged.window_secs - 1.0).abs() < 1e-9);
    assert_eq!(merged.target_rate, Some(200.0));
    assert!(merged.latency_corrected.max_us >= first.latency_corrected.max_us);
}

#[test]
fn invalid_configs_are_refused() {
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let cases: Vec<DriverConfig> = vec![
        {
            let mut c = open(addr, 0.0, 0, 1_000);
            c.label = "x".into();
            c
        },
        {
            let mut c = open(addr, 10.0, 0, 1_000);
            c.label = "has space".into();
            c
        },
        open(addr, 10.0, 0, 0),
        {
            let mut c = open(addr, 10.0, 0, 1_000);
            c.threads = 4;
            open_mut(&mut c).max_in_flight = 2;
            c
        },
        {
            let mut c = open(addr, 10.0, 0, 1_000);
            c.timeout = Duration::ZERO;
            c
        },
        DriverConfig::closed_loop(addr, 0),
    ];
    for config in cases {
        assert!(
            driver::run(&config, get("/"), expect_200()).is_err(),
            "{config:?}"
        );
    }
    assert!(RequestTemplate::get("no-slash").is_err());
    assert!(RoundRobin::new(Vec::new()).is_err());
}

// ---- Measurements (ignored: they take minutes and print figures) ----

fn summary_line(result: &RunResult) -> String {
    let lag = &result.schedule_lag;
    let c = &result.latency_corrected;
    let u = &result.latency_uncorrected;
    format!(
        "target {:>6} achieved {:>8.1} cpu {:>4.0}% dropped {:>5} err {:>4} | lag p50 {:>4} p99 {:>5} p99.9 {:>5} max {:>6} µs | corr p50 {:>5} p99 {:>6} | uncorr p50 {:>5} p99 {:>6} µs | conns {}",
        result.target_rate.unwrap_or(0.0),
        result.achieved_rate,
        100.0 * result.driver_cpu_secs / result.elapsed_secs,
        result.dropped,
        result.errors.total(),
        lag.p50_us,
        lag.p99_us,
        lag.p999_us,
        lag.max_us,
        c.p50_us,
        c.p99_us,
        u.p50_us,
        u.p99_us,
        result.connections_opened,
    )
}

fn rates_from_env(default: &[f64]) -> Vec<f64> {
    std::env::var("DRIVER_RATES")
        .ok()
        .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Lag and latency of one driver thread against the backend binary (one
/// worker thread) at increasing rates. `DRIVER_RATES=1000,5000` overrides
/// the rates, `DRIVER_SECS` the window (default 10 s), `DRIVER_SPIN_US` sets
/// `OpenLoop::spin`, `DRIVER_TARGET` an already running target.
#[test]
#[ignore]
fn measure_open_loop_lag() {
    let _serial = serial();
    let (_backend, addr) = target_from_env();
    let secs = env_number("DRIVER_SECS", 10) as u64;
    for rate in rates_from_env(&[1_000.0, 2_000.0, 3_000.0, 5_000.0, 8_000.0, 10_000.0]) {
        let mut config = open(addr, rate, 2_000, secs * 1_000);
        config.label = format!("lag{rate}");
        if let Ok(spin) = std::env::var("DRIVER_SPIN_US") {
            open_mut(&mut config).spin =
                Duration::from_micros(spin.parse().expect("DRIVER_SPIN_US is a number"));
        }
        let result = driver::run(&config, get("/"), expect_200()).expect("run");
        println!(
            "{} | {:?}",
            summary_line(&result),
            result.validity(&Thresholds::default())
        );
    }
}

/// Closed-loop maximum throughput with 16 connections (`DRIVER_CONNECTIONS`)
/// against the backend binary (one worker thread), to compare with
/// `wrk -t1 -c16` against the same backend (`DRIVER_TARGET=127.0.0.1:PORT`
/// to use one started by hand).
#[test]
#[ignore]
fn measure_closed_loop_max() {
    let _serial = serial();
    let (_backend, addr) = target_from_env();
    let connections = env_number("DRIVER_CONNECTIONS", 16);
    let threads = env_number("DRIVER_THREADS", 1);
    let mut config = DriverConfig::closed_loop(addr, connections);
    config.threads = threads;
    config.warmup = Duration::from_secs(2);
    config.duration = Duration::from_secs(env_number("DRIVER_SECS", 10) as u64);
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    let u = &result.latency_uncorrected;
    println!(
        "closed loop, {connections} connections, {threads} driver thread(s): {:.0} req/s, driver cpu {:.0} %, p50 {} µs, p99 {} µs, max {} µs, errors {}, {:.0} KiB/s received",
        result.achieved_rate,
        100.0 * result.driver_cpu_secs / result.elapsed_secs,
        u.p50_us,
        u.p99_us,
        u.max_us,
        result.errors.total(),
        result.received_kib_per_sec,
    );
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `DRIVER_TARGET` if set, else a fresh backend binary with one thread.
fn target_from_env() -> (Option<ManagedProcess>, SocketAddr) {
    match std::env::var("DRIVER_TARGET") {
        Ok(addr) => (None, addr.parse().expect("DRIVER_TARGET is host:port")),
        Err(_) => {
            let (process, addr) = backend();
            (Some(process), addr)
        }
    }
}

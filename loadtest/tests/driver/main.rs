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

mod closed_loop;
mod measure;
mod open_loop;
mod outcomes;

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

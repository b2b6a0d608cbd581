//! A controllable stand-in for an identity provider's JWKS endpoint.
//!
//! Tests choose what each path returns, count requests, add delay, and stop
//! the server (closing open connections) to simulate an outage.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// How long `stop` waits for the server task to close everything.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    responses: HashMap<String, (u16, String)>,
    counts: HashMap<String, u64>,
    delay: Duration,
}

struct Running {
    shutdown: oneshot::Sender<()>,
    stopped: mpsc::Receiver<()>,
}

/// Serves configured responses on 127.0.0.1 from its own runtime thread, so
/// it works the same from sync and async tests.
pub struct JwksServer {
    port: u16,
    /// The port, bound but not listening until the first `start`: held so that nothing else
    /// (another server's `free_port`, an outgoing connection's ephemeral port) takes it in
    /// between, while connections to it are still refused as to a server that is down.
    held: Option<tokio::net::TcpSocket>,
    state: Arc<Mutex<State>>,
    // Option only so Drop can take it: dropping a Runtime from async code
    // panics, `shutdown_background` does not.
    runtime: Option<Runtime>,
    running: Option<Running>,
}

impl JwksServer {
    /// Picks a port without listening on it yet, so a config can name the
    /// port before the server is (or ever is) up.
    pub fn reserve() -> Result<Self> {
        let held = tokio::net::TcpSocket::new_v4()
            .and_then(|socket| {
                socket.set_reuseaddr(true)?;
                socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
                Ok(socket)
            })
            .context("reserving a port for the JWKS server")?;
        let port = held
            .local_addr()
            .context("reserving a port for the JWKS server")?
            .port();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("jwks-server")
            .enable_all()
            .build()
            .context("building the JWKS server runtime")?;
        Ok(Self {
            port,
            held: Some(held),
            state: Arc::new(Mutex::new(State::default())),
            runtime: Some(runtime),
            running: None,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Starts listening on the reserved port; does nothing if already up.
    pub fn start(&mut self) -> Result<()> {
        if self.running.is_some() {
            return Ok(());
        }
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| anyhow!("JWKS server runtime is gone"))?;
        // Listen synchronously so the port accepts connections once start returns. A restart
        // binds again; SO_REUSEADDR keeps TIME_WAIT from the connections the previous stop
        // closed from blocking it.
        let _guard = runtime.enter();
        let listener = match self.held.take() {
            Some(socket) => socket.listen(1024),
            None => StdTcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)))
                .and_then(|listener| {
                    listener.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(listener)
                }),
        }
        .with_context(|| format!("JWKS server: listening on 127.0.0.1:{}", self.port))?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (stopped_tx, stopped_rx) = mpsc::channel();
        runtime.spawn(accept_loop(
            listener,
            Arc::clone(&self.state),
            shutdown_rx,
            stopped_tx,
        ));
        self.running = Some(Running {
            shutdown: shutdown_tx,
            stopped: stopped_rx,
        });
        Ok(())
    }

    /// Stops listening and closes every open connection, so the port then
    /// refuses connections. Does nothing if not running.
    pub fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let _ = running.shutdown.send(());
        // Blocks briefly, but on our own runtime's work, never the caller's.
        let _ = running.stopped.recv_timeout(STOP_TIMEOUT);
    }

    /// Serves `status` with a JSON `body` at `path` (query strings ignored).
    pub fn set_response(&self, path: &str, status: u16, body: String) {
        self.state()
            .responses
            .insert(path.to_string(), (status, body));
    }

    /// Forgets the response for `path`, which then answers 404.
    pub fn clear_response(&self, path: &str) {
        self.state().responses.remove(path);
    }

    /// Requests received for `path` (whatever was answered, 404s included).
    pub fn request_count(&self, path: &str) -> u64 {
        self.state().counts.get(path).copied().unwrap_or(0)
    }

    /// Requests received for all paths.
    pub fn total_requests(&self) -> u64 {
        self.state().counts.values().sum()
    }

    pub fn reset_counts(&self) {
        self.state().counts.clear();
    }

    /// Holds every response back this long (zero for none).
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Only plain maps behind the lock: still consistent after a panic.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    state: Arc<Mutex<State>>,
    mut shutdown: oneshot::Receiver<()>,
    stopped: mpsc::Sender<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(Arc::clone(&state), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Aborting a connection task drops its socket, closing the connection.
    connections.shutdown().await;
    let _ = stopped.send(());
}

async fn handle(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let (reply, delay) = {
        let mut state = lock(&state);
        *state.counts.entry(path.clone()).or_insert(0) += 1;
        (state.responses.get(&path).cloned(), state.delay)
    };
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, body) = reply.unwrap_or_else(|| (404, r#"{"error":"not found"}"#.to_string()));
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

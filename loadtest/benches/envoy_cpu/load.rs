//! Closed-loop load over keep-alive HTTP/1.1 connections, and the CPU window.

use super::*;

pub(crate) const WARMUP: u8 = 0;
pub(crate) const MEASURE: u8 = 1;
pub(crate) const STOP: u8 = 2;

/// Shared by all connection tasks; read-only but for the phase and the token cursor.
pub(crate) struct Load {
    pub(crate) addr: SocketAddr,
    pub(crate) host: HeaderValue,
    pub(crate) uri: Uri,
    pub(crate) authorization: Vec<HeaderValue>,
    pub(crate) cursor: AtomicUsize,
    pub(crate) phase: AtomicU8,
    pub(crate) expected_status: u16,
}

impl Load {
    pub(crate) fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    pub(crate) fn request(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        let auth = match self.authorization.len() {
            0 => None,
            1 => self.authorization.first(),
            n => self
                .authorization
                .get(self.cursor.fetch_add(1, Ordering::Relaxed) % n),
        };
        if let Some(value) = auth {
            headers.insert(AUTHORIZATION, value.clone());
        }
        request
    }
}

/// What one connection saw in one phase.
#[derive(Debug, Default, Clone)]
pub(crate) struct PhaseTally {
    pub(crate) responses: u64,
    pub(crate) unexpected: BTreeMap<u16, u64>,
    pub(crate) transport_errors: u64,
}

impl PhaseTally {
    pub(crate) fn add(&mut self, other: &PhaseTally) {
        self.responses += other.responses;
        self.transport_errors += other.transport_errors;
        for (status, count) in &other.unexpected {
            *self.unexpected.entry(*status).or_default() += count;
        }
    }

    pub(crate) fn bad(&self) -> u64 {
        self.unexpected.values().sum::<u64>() + self.transport_errors
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) warmup: PhaseTally,
    pub(crate) measured: PhaseTally,
    /// Connections opened after the first (Envoy closed one, or it failed).
    pub(crate) reconnects: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, other: &Tally) {
        self.warmup.add(&other.warmup);
        self.measured.add(&other.measured);
        self.reconnects += other.reconnects;
    }

    pub(crate) fn phase_mut(&mut self, phase: u8) -> &mut PhaseTally {
        if phase == MEASURE {
            &mut self.measured
        } else {
            &mut self.warmup
        }
    }
}

pub(crate) async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or Envoy closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

pub(crate) async fn exchange(sender: &mut SendRequest<Empty<Bytes>>, load: &Load) -> Result<u16> {
    sender.ready().await?;
    let response = sender.send_request(load.request()).await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(status)
}

/// One keep-alive connection, one request at a time, until the phase is STOP.
pub(crate) async fn drive_connection(load: Arc<Load>) -> Tally {
    let mut tally = Tally::default();
    let mut first = true;
    while load.phase() != STOP {
        if !first {
            tally.reconnects += 1;
        }
        first = false;
        let mut sender = match connect(load.addr).await {
            Ok(sender) => sender,
            Err(_) => {
                tally.phase_mut(load.phase()).transport_errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while load.phase() != STOP {
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut sender, &load))
                .await
                .unwrap_or_else(|_| Err(anyhow!("no response within {REQUEST_TIMEOUT:?}")));
            // Counted in the phase it completed in.
            let phase = load.phase();
            if phase == STOP {
                break;
            }
            let counts = tally.phase_mut(phase);
            match outcome {
                Ok(status) => {
                    counts.responses += 1;
                    if status != load.expected_status {
                        *counts.unexpected.entry(status).or_default() += 1;
                    }
                }
                Err(_) => {
                    counts.transport_errors += 1;
                    break;
                }
            }
            if sender.is_closed() {
                break;
            }
        }
    }
    tally
}

pub(crate) struct Measurement {
    pub(crate) tally: Tally,
    pub(crate) envoy: CpuWindow,
    pub(crate) backend: CpuWindow,
}

pub(crate) async fn run_load(
    load: Load,
    connections: usize,
    warmup: Duration,
    window: Duration,
    envoy_pid: u32,
    backend_pid: u32,
) -> Result<Measurement> {
    let load = Arc::new(load);
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(drive_connection(Arc::clone(&load))))
        .collect();
    tokio::time::sleep(warmup).await;
    let sampled = sample_window(&load, window, envoy_pid, backend_pid).await;
    // Stop the load whatever happened, so the tasks end.
    load.phase.store(STOP, Ordering::Relaxed);
    let mut tally = Tally::default();
    for task in tasks {
        let connection = task.await.context("a connection task failed")?;
        tally.add(&connection);
    }
    let (envoy, backend) = sampled?;
    Ok(Measurement {
        tally,
        envoy,
        backend,
    })
}

pub(crate) async fn sample_window(
    load: &Load,
    window: Duration,
    envoy_pid: u32,
    backend_pid: u32,
) -> Result<(CpuWindow, CpuWindow)> {
    let envoy = CpuSampler::start(envoy_pid).context("sampling Envoy's CPU time")?;
    let backend = CpuSampler::start(backend_pid).context("sampling the backend's CPU time")?;
    load.phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(window).await;
    load.phase.store(STOP, Ordering::Relaxed);
    Ok((envoy.stop()?, backend.stop()?))
}

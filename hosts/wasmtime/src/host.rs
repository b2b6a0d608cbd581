//! The embedder side of `proxy-wasm-host`: what a proxy gives the guest (request header maps,
//! a clock, shared data, metrics, a log, an outbox for HTTP calls) and the loop that delivers
//! queue wake-ups, call answers and ticks, as a proxy's event loop would.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use proxy_wasm_host::abi::v0_2_1::types::{LogLevel, MapType, MetricType, Status, StreamType};
use proxy_wasm_host::abi::v0_2_1::{
    Access, CalloutId, Callouts, Clock, ContextId, Guest, GuestError, GuestId, Host, HttpCall,
    HttpCallRefusal, HttpCallResponse, InMemoryStore, Invocation, LocalResponse, LogContext,
    LogSink, MetricId, PluginConfig, QueueId, SharedServices, SharedValue, Started, StreamKind,
    StreamState, VmServices,
};
use proxy_wasm_host::{Engine, HeaderMap, HeaderMapExt, Limits, Module, VecHeaderMap};

use tokengate_host_cases::IdpAnswer;

/// The tick period's worth of virtual time each tick advances the clock by, when the plugin
/// asked for none (it always asks: 250 ms).
const DEFAULT_TICK: Duration = Duration::from_millis(250);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The wall clock at the start of the case, moved on by ticks only: a refresh due in 10 s
/// is due after 40 ticks, without waiting.
pub struct VirtualClock {
    start: u64,
    nanos: AtomicU64,
}

impl VirtualClock {
    fn new() -> VirtualClock {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        VirtualClock {
            start: now,
            nanos: AtomicU64::new(now),
        }
    }

    fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn realtime_nanos(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }

    fn monotonic_nanos(&self) -> u64 {
        self.realtime_nanos() - self.start
    }
}

/// Every log line of the case's guests.
#[derive(Default)]
pub struct LogLines(Mutex<Vec<String>>);

impl LogLines {
    pub fn text(&self) -> String {
        lock(&self.0).join("\n")
    }
}

impl LogSink for LogLines {
    fn log(&self, _: LogContext<'_>, level: LogLevel, message: &[u8]) {
        let line = format!("[{level:?}] {}", String::from_utf8_lossy(message));
        lock(&self.0).push(line);
    }
}

/// The in-memory store of the crate, watched: metric names are recorded as they are defined
/// (the store itself offers no read by name) and queue items are noted for delivery.
pub struct Store {
    inner: InMemoryStore,
    metrics: Mutex<BTreeMap<String, (MetricId, MetricType)>>,
    enqueued: Arc<Mutex<Vec<QueueId>>>,
}

impl Store {
    fn new() -> Store {
        let enqueued = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&enqueued);
        Store {
            inner: InMemoryStore::new().with_enqueue_observer(Arc::new(move |item| {
                lock(&sink).push(item.queue);
            })),
            metrics: Mutex::new(BTreeMap::new()),
            enqueued,
        }
    }

    /// Every counter and gauge by name (histograms keep no value).
    pub fn snapshot(&self, call: Invocation) -> BTreeMap<String, u64> {
        lock(&self.metrics)
            .iter()
            .filter(|(_, (_, kind))| *kind != MetricType::Histogram)
            .filter_map(|(name, (id, _))| {
                let value = self.inner.get_metric(call, *id).ok()?;
                Some((name.clone(), value))
            })
            .collect()
    }

    fn take_enqueued(&self) -> Vec<QueueId> {
        std::mem::take(&mut *lock(&self.enqueued))
    }
}

impl SharedServices for Store {
    fn get_shared_data(
        &self,
        call: Invocation,
        vm_id: &[u8],
        key: &[u8],
    ) -> Result<SharedValue, Status> {
        self.inner.get_shared_data(call, vm_id, key)
    }

    fn set_shared_data(
        &self,
        call: Invocation,
        vm_id: &[u8],
        key: &[u8],
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), Status> {
        self.inner.set_shared_data(call, vm_id, key, value, cas)
    }

    fn register_shared_queue(
        &self,
        call: Invocation,
        vm_id: &[u8],
        name: &[u8],
    ) -> Result<QueueId, Status> {
        self.inner.register_shared_queue(call, vm_id, name)
    }

    fn resolve_shared_queue(
        &self,
        call: Invocation,
        vm_id: &[u8],
        name: &[u8],
    ) -> Result<QueueId, Status> {
        self.inner.resolve_shared_queue(call, vm_id, name)
    }

    fn enqueue_shared_queue(
        &self,
        call: Invocation,
        queue: QueueId,
        value: &[u8],
    ) -> Result<(), Status> {
        self.inner.enqueue_shared_queue(call, queue, value)
    }

    fn dequeue_shared_queue(&self, call: Invocation, queue: QueueId) -> Result<Vec<u8>, Status> {
        self.inner.dequeue_shared_queue(call, queue)
    }

    fn define_metric(
        &self,
        call: Invocation,
        vm_id: &[u8],
        kind: MetricType,
        name: &[u8],
    ) -> Result<MetricId, Status> {
        let id = self.inner.define_metric(call, vm_id, kind, name)?;
        let name = String::from_utf8_lossy(name).into_owned();
        lock(&self.metrics).insert(name, (id, kind));
        Ok(id)
    }

    fn record_metric(&self, call: Invocation, metric: MetricId, value: u64) -> Result<(), Status> {
        self.inner.record_metric(call, metric, value)
    }

    fn increment_metric(
        &self,
        call: Invocation,
        metric: MetricId,
        delta: i64,
    ) -> Result<(), Status> {
        self.inner.increment_metric(call, metric, delta)
    }

    fn get_metric(&self, call: Invocation, metric: MetricId) -> Result<u64, Status> {
        self.inner.get_metric(call, metric)
    }
}

/// A call a guest made, waiting for its answer.
struct Pending {
    guest: GuestId,
    context: ContextId,
    callout: CalloutId,
    path: String,
}

/// Receives the guests' HTTP calls; the event loop answers them as the case's IdP says.
#[derive(Default)]
pub struct Outbox(Mutex<Vec<Pending>>);

impl Callouts for Outbox {
    fn http_call(
        &self,
        call: Invocation,
        callout: CalloutId,
        request: HttpCall<'_>,
    ) -> Result<(), HttpCallRefusal> {
        if request.upstream.as_ref() != b"idp" {
            return Err(HttpCallRefusal::UnknownUpstream);
        }
        let path = request
            .headers
            .iter()
            .find(|(name, _)| name.as_ref() == b":path")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();
        lock(&self.0).push(Pending {
            guest: call.guest,
            context: call.context,
            callout,
            path,
        });
        Ok(())
    }
}

/// What became of a request.
#[derive(Debug, Clone)]
pub enum Outcome {
    Continued,
    Replied(LocalResponse<'static>),
}

pub struct RequestState {
    pub headers: VecHeaderMap,
    pub outcome: Option<Outcome>,
}

/// The stream state lent to every scope: all open requests of the case, keyed by guest and
/// context, since a call's answer resumes whichever request waited on it.
#[derive(Default)]
pub struct Requests(HashMap<(GuestId, ContextId), RequestState>);

impl Requests {
    fn get(&mut self, call: Invocation) -> Result<&mut RequestState, Status> {
        self.0
            .get_mut(&(call.guest, call.context))
            .ok_or(Status::NotFound)
    }
}

impl StreamState for Requests {
    fn header_map(
        &mut self,
        call: Invocation,
        _: Access,
        map: MapType,
    ) -> Result<&mut dyn HeaderMap, Status> {
        match map {
            MapType::HttpRequestHeaders => Ok(&mut self.get(call)?.headers),
            _ => Err(Status::NotFound),
        }
    }

    fn continue_stream(&mut self, call: Invocation, stream: StreamType) -> Result<(), Status> {
        if stream != StreamType::HttpRequest {
            return Err(Status::BadArgument);
        }
        let request = self.get(call)?;
        request.outcome.get_or_insert(Outcome::Continued);
        Ok(())
    }

    fn send_local_response(
        &mut self,
        call: Invocation,
        response: LocalResponse<'_>,
    ) -> Result<(), Status> {
        self.get(call)?.outcome = Some(Outcome::Replied(response.into_owned()));
        Ok(())
    }
}

/// One VM: a guest and the root contexts (plugin configurations) it serves.
struct Vm {
    guest: Guest,
    roots: Vec<ContextId>,
}

/// Everything one case runs on: its VMs and the services they share.
pub struct World {
    vms: Vec<Vm>,
    pub store: Arc<Store>,
    outbox: Arc<Outbox>,
    clock: Arc<VirtualClock>,
    pub log: Arc<LogLines>,
    requests: Option<Requests>,
    pub idp: BTreeMap<String, IdpAnswer>,
    /// Calls the IdP answered, by path.
    pub idp_calls: BTreeMap<String, u64>,
}

/// The compiled module and the linked host functions, shared by every case of a build.
pub struct Runtime {
    engine: Engine,
    host: Host,
    module: Module,
}

impl Runtime {
    pub fn new(wasm: &[u8]) -> Result<Runtime> {
        let engine = Engine::new()?;
        let module = Module::new(&engine, wasm)?;
        let host = Host::new(&engine)?;
        Ok(Runtime {
            engine,
            host,
            module,
        })
    }
}

fn plugin(configuration: &serde_json::Value, root_id: &str) -> PluginConfig {
    PluginConfig::new()
        .with_name("tokengate")
        .with_root_id(root_id)
        .with_configuration(configuration.to_string())
}

/// How a plugin start ended.
pub enum Start {
    Serving(World),
    Refused(World),
}

impl World {
    fn services(&self) -> VmServices {
        VmServices::new(Arc::clone(&self.log) as Arc<dyn LogSink>)
            .with_clock(Arc::clone(&self.clock) as Arc<dyn Clock>)
            .with_vm_id("tokengate")
            .with_shared(Arc::clone(&self.store) as Arc<dyn SharedServices>)
            .with_callouts(Arc::clone(&self.outbox) as Arc<dyn Callouts>)
    }

    /// Starts `vms` VMs, each with one root per configuration (root ids `tokengate`,
    /// `tokengate-1`, ...). A refused configuration ends the start.
    pub fn start(
        runtime: &Runtime,
        configs: &[&serde_json::Value],
        vms: usize,
        idp: BTreeMap<String, IdpAnswer>,
    ) -> Result<Start> {
        let _ = &runtime.engine;
        let mut world = World {
            vms: Vec::new(),
            store: Arc::new(Store::new()),
            outbox: Arc::new(Outbox::default()),
            clock: Arc::new(VirtualClock::new()),
            log: Arc::new(LogLines::default()),
            requests: Some(Requests::default()),
            idp,
            idp_calls: BTreeMap::new(),
        };
        for _ in 0..vms {
            let mut guest = Guest::new(
                &runtime.host,
                &runtime.module,
                world.services(),
                &Limits::default(),
            )?;
            let mut roots = Vec::new();
            for (index, config) in configs.iter().enumerate() {
                let root_id = if index == 0 {
                    "tokengate".to_owned()
                } else {
                    format!("tokengate-{index}")
                };
                match guest.start(plugin(config, &root_id))? {
                    Started::Serving(root) => roots.push(root),
                    Started::Refused { .. } => return Ok(Start::Refused(world)),
                }
            }
            world.vms.push(Vm { guest, roots });
            world.settle()?;
        }
        Ok(Start::Serving(world))
    }

    /// A metric snapshot (counters and gauges by name).
    pub fn metrics(&self) -> BTreeMap<String, u64> {
        let Some(vm) = self.vms.first() else {
            return BTreeMap::new();
        };
        let context = vm.roots.first().copied().or(ContextId::try_from(1).ok());
        match context {
            Some(context) => self.store.snapshot(Invocation::new(vm.guest.id(), context)),
            None => BTreeMap::new(),
        }
    }

    fn take_requests(&mut self) -> Result<Requests> {
        self.requests
            .take()
            .ok_or_else(|| anyhow!("the request table was lost in an earlier failure"))
    }

    /// Runs `body` on VM `vm` in a scope lent the request table, and takes the table back.
    fn with_vm<R>(
        &mut self,
        vm: usize,
        body: impl FnOnce(
            &mut proxy_wasm_host::abi::v0_2_1::CallScope<'_, Requests>,
            &[ContextId],
        ) -> Result<R, GuestError>,
    ) -> Result<R> {
        let requests = self.take_requests()?;
        let vm = self.vms.get_mut(vm).ok_or_else(|| anyhow!("no VM {vm}"))?;
        let roots = vm.roots.clone();
        let (answer, requests) = vm.guest.with(requests, |scope| body(scope, &roots));
        self.requests = Some(requests);
        Ok(answer?)
    }

    /// Delivers what the guests are waiting for until nothing is: queue wake-ups (to the roots
    /// that registered the queue) and the IdP's answers to open calls.
    fn settle(&mut self) -> Result<()> {
        for _ in 0..64 {
            let queues = self.store.take_enqueued();
            let calls = std::mem::take(&mut *lock(&self.outbox.0));
            if queues.is_empty() && calls.is_empty() {
                return Ok(());
            }
            for queue in queues {
                for vm in 0..self.vms.len() {
                    let roots = self.vms[vm].guest.queue_registrants(queue);
                    for root in roots {
                        self.with_vm(vm, |scope, _| scope.on_queue_ready(root, queue))?;
                    }
                }
            }
            for call in calls {
                self.answer(call)?;
            }
        }
        bail!("the guests kept asking for more than 64 rounds of deliveries")
    }

    fn answer(&mut self, call: Pending) -> Result<()> {
        let answer = self.idp.get(&call.path).cloned();
        let response = match answer {
            Some(IdpAnswer { down: true, .. }) => HttpCallResponse::failed(),
            Some(answer) => {
                *self.idp_calls.entry(call.path.clone()).or_default() += 1;
                let status = answer.status.unwrap_or(200).to_string();
                HttpCallResponse::received(vec![
                    (b":status".to_vec().into(), status.into_bytes().into()),
                    (
                        b"content-type".to_vec().into(),
                        b"application/json".to_vec().into(),
                    ),
                ])
                .with_body(answer.body.unwrap_or_default().into_bytes())
            }
            None => {
                *self.idp_calls.entry(call.path.clone()).or_default() += 1;
                HttpCallResponse::received(vec![(
                    b":status".to_vec().into(),
                    b"404".to_vec().into(),
                )])
                .with_body(b"{\"error\":\"not found\"}".to_vec())
            }
        };
        let vm = self
            .vms
            .iter()
            .position(|vm| vm.guest.id() == call.guest)
            .ok_or_else(|| anyhow!("a call from an unknown guest"))?;
        self.with_vm(vm, |scope, _| {
            scope.on_http_call_response(call.context, call.callout, response)
        })
    }

    /// One tick period: the clock moves on, every root that asked for ticks gets one.
    pub fn tick(&mut self) -> Result<()> {
        let period = self
            .vms
            .iter()
            .flat_map(|vm| {
                vm.roots
                    .iter()
                    .filter_map(|root| vm.guest.tick_period(*root))
            })
            .min()
            .unwrap_or(DEFAULT_TICK);
        self.clock.advance(period);
        for vm in 0..self.vms.len() {
            let roots: Vec<ContextId> = self.vms[vm]
                .roots
                .iter()
                .copied()
                .filter(|root| self.vms[vm].guest.tick_period(*root).is_some())
                .collect();
            for root in roots {
                self.with_vm(vm, |scope, _| scope.on_tick(root))?;
                self.settle()?;
            }
        }
        Ok(())
    }

    /// Sends one request through VM `vm`, root `root`; returns the request as the upstream
    /// would receive it, or the local reply.
    pub fn request(
        &mut self,
        vm: usize,
        root: usize,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(Outcome, VecHeaderMap)> {
        let (guest_id, root) = self
            .vms
            .get(vm)
            .and_then(|v| Some((v.guest.id(), *v.roots.get(root)?)))
            .ok_or_else(|| anyhow!("no VM {vm} with a root {root}"))?;
        let (stream, action) = self.with_vm(vm, |scope, _| {
            let stream = scope.on_context_create(Some(root))?;
            scope.expect_stream_kind(stream, StreamKind::Http)?;
            scope.stream_mut().0.insert(
                (guest_id, stream),
                RequestState {
                    headers: VecHeaderMap::from(headers),
                    outcome: None,
                },
            );
            let action = scope.on_request_headers(stream, 0, true)?;
            Ok((stream, action))
        })?;
        // Continue from the callback itself: the request goes on (unless it was answered).
        if action == proxy_wasm_host::abi::v0_2_1::types::Action::Continue
            && let Some(state) = self
                .requests
                .as_mut()
                .and_then(|r| r.0.get_mut(&(guest_id, stream)))
        {
            state.outcome.get_or_insert(Outcome::Continued);
        }
        self.settle()?;
        let state = self
            .requests
            .as_mut()
            .and_then(|requests| requests.0.remove(&(guest_id, stream)))
            .ok_or_else(|| anyhow!("the request's state is gone"))?;
        // Put it back for the end-of-stream callbacks, then finish the stream as a proxy does.
        let outcome = state.outcome.clone();
        let headers = VecHeaderMap::from(state.headers.pairs());
        if let Some(requests) = self.requests.as_mut() {
            requests.0.insert((guest_id, stream), state);
        }
        self.with_vm(vm, |scope, _| {
            scope.on_done(stream)?;
            scope.on_log(stream)?;
            scope.on_delete(stream)?;
            Ok(())
        })?;
        if let Some(requests) = self.requests.as_mut() {
            requests.0.remove(&(guest_id, stream));
        }
        let outcome = outcome.ok_or_else(|| {
            anyhow!("the request was paused and never resumed nor answered (action {action:?})")
        })?;
        Ok((outcome, headers))
    }
}

/// The pairs a header map holds, as text.
pub fn text_pairs(map: &VecHeaderMap) -> Vec<(String, String)> {
    map.pairs()
        .into_iter()
        .map(|(name, value)| {
            (
                String::from_utf8_lossy(&name).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect()
}

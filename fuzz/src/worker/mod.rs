//! The worker on fake hosts (two workers sharing one key set, as Envoy's workers of one VM id
//! do), fed arbitrary sequences of requests, timer ticks, wake-ups, call answers (right,
//! failed, garbage) and host refusals, under a policy of a remote-JWKS `jwt` provider, an
//! `introspect` provider for opaque tokens and a fail-open `hybrid` provider.
//!
//! Invariants: no panic; a forwarded request carries a token that deserved it — a valid JWT
//! whose `kid` the harness served with its key, an opaque token the harness's IdP answered
//! active for, a valid hybrid token (vouched for by the IdP, or marked degraded); every local
//! reply is 400/401/403 or a 503 with `Retry-After`; every call names a cluster, `:method`,
//! `:path` and `:authority`; a request is resumed only while it waits, once; once every call
//! has ended (answered or failed) no request is left waiting; the same sequence on fresh
//! workers gives the same trace.

use std::collections::{BTreeMap, BTreeSet};

use tokengate::config::DEGRADED_HEADER;
use tokengate::engine::Request;
use tokengate::filter::fake::{FakeHost, RequestEffect};
use tokengate::filter::{CallResponse, Now, Resumption, Step, Waiter, Worker};

use crate::input::Choices;
use crate::oracle;

mod world;

use world::{
    HYBRID_HEADER, HYBRID_ISSUER, INTROSPECT_ISSUER, LIFETIME, NOW_MS, QUEUE, SKEW, Sent,
    configuration, introspection_answer, jwks_answer, tokens,
};

struct Side {
    host: FakeHost,
    worker: Worker,
    /// Wake-up items already delivered.
    woken: usize,
}

#[derive(Debug, Clone, Copy)]
enum CallKind {
    Jwks,
    Introspection,
    Hybrid,
}

#[derive(Debug, Clone)]
struct Outstanding {
    side: usize,
    token: u32,
    kind: CallKind,
    /// The introspected token.
    subject: Option<String>,
}

struct Run {
    sides: [Side; 2],
    now_ms: u64,
    next_context: u32,
    /// Waiting requests: context → what it carries.
    waiting: BTreeMap<u32, (usize, Sent)>,
    /// Every request ever made: context → what it carries.
    sent: BTreeMap<u32, Sent>,
    outstanding: Vec<Outstanding>,
    /// kids the IdP ever served with the key the remote tokens are signed with.
    served_kids: BTreeSet<&'static str>,
    /// Tokens the IdP vouched for, per introspection path.
    vouched: BTreeSet<(String, bool)>,
    trace: Vec<String>,
}

fn now(ms: u64) -> Now {
    Now::from_nanos(ms * 1_000_000)
}

impl Run {
    fn new() -> Run {
        let side = || {
            let mut host = FakeHost::new();
            let worker = Worker::configure(&mut host, &configuration(), Some(QUEUE))
                .expect("the harness's configuration is valid");
            (host, worker)
        };
        let (first_host, first) = side();
        let mut second_host = first_host.sharing();
        let second = Worker::configure(&mut second_host, &configuration(), Some(QUEUE))
            .expect("the harness's configuration is valid");
        Run {
            sides: [
                Side {
                    host: first_host,
                    worker: first,
                    woken: 0,
                },
                Side {
                    host: second_host,
                    worker: second,
                    woken: 0,
                },
            ],
            now_ms: NOW_MS,
            next_context: 1,
            waiting: BTreeMap::new(),
            sent: BTreeMap::new(),
            outstanding: Vec::new(),
            served_kids: BTreeSet::new(),
            vouched: BTreeSet::new(),
            trace: Vec::new(),
        }
    }

    fn request(&mut self, side: usize, path: &str, sent: Sent) {
        let context = self.next_context;
        self.next_context += 1;
        let mut headers = vec![
            (":path".to_owned(), path.as_bytes().to_vec()),
            (":method".to_owned(), b"GET".to_vec()),
        ];
        if let Some(token) = sent.text() {
            let (name, value) = match sent {
                Sent::Hybrid | Sent::HybridForged => (HYBRID_HEADER, token),
                _ => ("authorization", format!("Bearer {token}")),
            };
            headers.push((name.to_owned(), value.into_bytes()));
        }
        self.sent.insert(context, sent);
        let waiter = Waiter::new(context, Request::with_headers(headers));
        let now = now(self.now_ms);
        let step = {
            let Side { host, worker, .. } = &mut self.sides[side];
            worker.on_request(host, waiter, now)
        };
        self.trace.push(format!(
            "request {context} {path} {sent:?} -> {}",
            describe(&step)
        ));
        match step {
            Step::Wait => {
                self.waiting.insert(context, (side, sent));
            }
            step => self.settled(side, context, step),
        }
        self.collect_calls();
    }

    fn settled(&mut self, side: usize, context: u32, step: Step) {
        let sent = self.sent.get(&context).copied().unwrap_or(Sent::Nothing);
        match step {
            Step::Wait => {
                self.waiting.insert(context, (side, sent));
            }
            Step::Reply(response) => oracle::check_response(&response),
            Step::ReadBody => panic!("request {context} reads its body, with no logout endpoint"),
            Step::Forward(admission) => {
                let Side { host, worker, .. } = &mut self.sides[side];
                worker.apply_admission(host, &admission);
                let effects = host.take_effects();
                let mut degraded = false;
                for effect in &effects {
                    if let RequestEffect::Set(name, value) = effect {
                        oracle::check_header_value(name, value);
                        degraded |= name == DEGRADED_HEADER;
                    }
                }
                assert_eq!(degraded, admission.is_degraded());
                let now_s = (self.now_ms / 1000) as i64;
                let live = now_s <= (NOW_MS / 1000) as i64 + LIFETIME + SKEW;
                match sent {
                    Sent::Remote(kid) => {
                        assert!(live, "admitted an expired token");
                        assert!(
                            self.served_kids.contains(kid),
                            "admitted a token with kid {kid} that the IdP never served"
                        );
                    }
                    Sent::Opaque(name) => assert!(
                        self.vouched.contains(&(name.to_owned(), false)),
                        "admitted opaque token {name} that the IdP never vouched for"
                    ),
                    Sent::Hybrid => {
                        assert!(live, "admitted an expired hybrid token");
                        let vouched = self.vouched.contains(&(tokens().hybrid.clone(), true));
                        assert!(
                            vouched || admission.is_degraded(),
                            "admitted a hybrid token neither vouched for nor marked degraded"
                        );
                    }
                    other => panic!("admitted {other:?}"),
                }
            }
        }
    }

    fn resumed(&mut self, side: usize, resumptions: Vec<Resumption>) {
        for Resumption { context_id, step } in resumptions {
            self.trace
                .push(format!("resume {context_id} -> {}", describe(&step)));
            let Some((waited_on, _)) = self.waiting.remove(&context_id) else {
                panic!("resumed context {context_id}, which is not waiting");
            };
            assert_eq!(waited_on, side, "resumed on another worker");
            self.settled(side, context_id, step);
        }
        self.collect_calls();
    }

    fn collect_calls(&mut self) {
        for side in 0..2 {
            for (token, call) in self.sides[side].host.take_calls() {
                let header = |name: &str| {
                    call.headers
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                };
                assert!(!call.cluster.is_empty(), "a call without a cluster");
                assert!(call.timeout_ms > 0);
                for name in [":method", ":path", ":authority"] {
                    assert!(
                        header(name).is_some_and(|v| !v.is_empty()),
                        "a call without {name}"
                    );
                }
                let path = header(":path").unwrap_or_default();
                let kind = match path.as_str() {
                    "/certs" => CallKind::Jwks,
                    "/introspect" => CallKind::Introspection,
                    "/hybrid-introspect" => CallKind::Hybrid,
                    other => panic!("a call to {other}"),
                };
                let body = String::from_utf8_lossy(&call.body).into_owned();
                let subject = body
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("token="))
                    .map(str::to_owned);
                assert!(
                    self.sides[side].worker.response_body_limit(token).is_some(),
                    "the worker does not know its own call"
                );
                self.trace.push(format!("call {side} {token} {path}"));
                self.outstanding.push(Outstanding {
                    side,
                    token,
                    kind,
                    subject,
                });
            }
        }
    }

    fn wake(&mut self, side: usize) {
        let queued = self.sides[side].host.queued.len();
        if self.sides[side].woken == queued {
            return;
        }
        self.sides[side].woken = queued;
        let now = now(self.now_ms);
        let resumptions = {
            let Side { host, worker, .. } = &mut self.sides[side];
            worker.on_wake(host, now)
        };
        self.trace.push(format!("wake {side}"));
        self.resumed(side, resumptions);
    }

    fn tick(&mut self, side: usize) {
        let now = now(self.now_ms);
        let resumptions = {
            let Side { host, worker, .. } = &mut self.sides[side];
            worker.on_tick(host, now)
        };
        self.trace.push(format!("tick {side} at {}", self.now_ms));
        self.resumed(side, resumptions);
        self.collect_calls();
    }

    fn answer(
        &mut self,
        at: usize,
        response: CallResponse,
        served: Vec<&'static str>,
        vouches: bool,
    ) {
        let call = self.outstanding.remove(at);
        let side = call.side;
        let mut response = response;
        let limit = self.sides[side].worker.response_body_limit(call.token);
        if response
            .body
            .as_ref()
            .is_some_and(|b| limit.is_some_and(|l| b.len() > l))
        {
            response.body = None;
        }
        if response.status == Some(200) && response.body.is_some() {
            match call.kind {
                CallKind::Jwks => self.served_kids.extend(served),
                CallKind::Introspection | CallKind::Hybrid if vouches => {
                    if let Some(subject) = &call.subject {
                        let decoded = subject
                            .replace("%2B", "+")
                            .replace("%2F", "/")
                            .replace("%3D", "=");
                        self.vouched
                            .insert((decoded, matches!(call.kind, CallKind::Hybrid)));
                    }
                }
                _ => {}
            }
        }
        let now = now(self.now_ms);
        self.trace.push(format!(
            "answer {side} {} {:?}",
            call.token, response.status
        ));
        let resumptions = {
            let Side { host, worker, .. } = &mut self.sides[side];
            worker.on_call_response(host, call.token, &response, now)
        };
        self.resumed(side, resumptions);
    }

    fn event(&mut self, c: &mut Choices<'_>) {
        let side = c.index(2);
        match c.index(9) {
            0..=2 => {
                let path = c.pick(&["/api/x", "/api/x", "/h/1", "/nope"]);
                let sent = c.pick(&[
                    Sent::Remote("k1"),
                    Sent::Remote("k2"),
                    Sent::Remote("k3"),
                    Sent::RemoteForged,
                    Sent::RemoteExpired,
                    Sent::Opaque("opaqueA"),
                    Sent::Opaque("opaqueB"),
                    Sent::Opaque("opaqueC"),
                    Sent::Hybrid,
                    Sent::HybridForged,
                    Sent::Garbage,
                    Sent::Nothing,
                ]);
                let path = match sent {
                    Sent::Hybrid | Sent::HybridForged if c.flag() => "/h/1",
                    _ => path,
                };
                self.request(side, path, sent);
            }
            3 => {
                self.now_ms += c.pick(&[0, 250, 1000, 10_000, 300_000, 3_600_000]);
                self.tick(side);
            }
            4 => self.wake(side),
            5 | 6 if !self.outstanding.is_empty() => {
                let at = c.index(self.outstanding.len());
                let status = c.pick(&[
                    Some(200),
                    Some(200),
                    Some(200),
                    Some(500),
                    Some(503),
                    Some(504),
                    None,
                    Some(404),
                    Some(401),
                ]);
                let now_s = (self.now_ms / 1000) as i64;
                let (served, vouches, body) = match self.outstanding[at].kind {
                    CallKind::Jwks => {
                        let (served, body) = jwks_answer(c);
                        (served, false, body)
                    }
                    CallKind::Introspection => {
                        let (vouches, body) = introspection_answer(c, INTROSPECT_ISSUER, now_s);
                        (Vec::new(), vouches, body)
                    }
                    CallKind::Hybrid => {
                        let (vouches, body) = introspection_answer(c, HYBRID_ISSUER, now_s);
                        (Vec::new(), vouches, body)
                    }
                };
                let body = if c.index(8) == 0 { None } else { Some(body) };
                self.answer(at, CallResponse { status, body }, served, vouches);
            }
            7 => {
                let host = &mut self.sides[side].host;
                host.refuse_calls = !host.refuse_calls;
                self.trace
                    .push(format!("refuse_calls {side} {}", host.refuse_calls));
            }
            8 => {
                let host = &mut self.sides[side].host;
                host.refuse_queue = !host.refuse_queue;
                self.trace
                    .push(format!("refuse_queue {side} {}", host.refuse_queue));
            }
            _ => self.now_ms += 1000,
        }
    }

    /// Every call ends: wake-ups are delivered, and calls still open fail as a timeout would.
    fn drain(&mut self) {
        for side in &mut self.sides {
            side.host.refuse_calls = false;
            side.host.refuse_queue = false;
        }
        for _ in 0..16 {
            self.wake(0);
            self.wake(1);
            if self.outstanding.is_empty() {
                if self.waiting.is_empty() {
                    return;
                }
                self.now_ms += 1000;
                self.tick(0);
                self.tick(1);
                if self.outstanding.is_empty()
                    && self.sides.iter().all(|s| s.woken == s.host.queued.len())
                {
                    break;
                }
                continue;
            }
            let timeout = CallResponse {
                status: Some(504),
                body: None,
            };
            self.answer(0, timeout, Vec::new(), false);
        }
        assert!(
            self.waiting.is_empty(),
            "requests {:?} still wait after every call ended",
            self.waiting.keys().collect::<Vec<_>>()
        );
    }
}

fn describe(step: &Step) -> String {
    match step {
        Step::Forward(admission) => format!("forward {:?}", admission.rule),
        Step::Reply(response) => format!("reply {}", response.status),
        Step::Wait => "wait".to_owned(),
        Step::ReadBody => "read body".to_owned(),
    }
}

fn play(data: &[u8]) -> Vec<String> {
    let mut c = Choices::new(data);
    let mut run = Run::new();
    for _ in 0..32 {
        if c.is_empty() {
            break;
        }
        run.event(&mut c);
    }
    run.drain();
    run.trace
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let first = play(data);
    let second = play(data);
    assert_eq!(
        first, second,
        "the same sequence on fresh workers traces otherwise"
    );
}

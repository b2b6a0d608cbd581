//! Per-request records of an open-loop driver run: when each request went out, when its answer
//! came, its status and whether a 503 carried `Retry-After`. The driver keeps only histograms;
//! a fault test needs to know *when* things failed, to tell a fault window from its recovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::HeaderMap;
use hyper::{Request, header::HeaderName};
use loadtest::driver::{Classifier, Outcome, RequestSource, RequestTemplate};
use serde::Serialize;

/// What a request carries, hence what it may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A token the IdP and the keys vouch for: 200, or 503 while the IdP is unavailable.
    Valid,
    /// A token that must never be admitted (revoked, forged, unknown key): 401, or 503.
    Refused,
    /// A token no IdP answer can make good (a forged signature): 401, whatever the IdP does.
    Forged,
}

/// The run's request mix (template `index % len`) and what was recorded for every index.
pub struct Timeline {
    t0: Instant,
    templates: Vec<(Kind, RequestTemplate)>,
    sent_ns: Vec<AtomicU64>,
    done_ns: Vec<AtomicU64>,
    status: Vec<AtomicU16>,
    retry_after: Vec<AtomicBool>,
}

const NOT_YET: u64 = u64::MAX;

impl Timeline {
    pub fn new(templates: Vec<(Kind, RequestTemplate)>, capacity: usize) -> Arc<Timeline> {
        let fill = |v: u64| (0..capacity).map(|_| AtomicU64::new(v)).collect();
        Arc::new(Timeline {
            t0: Instant::now(),
            templates,
            sent_ns: fill(NOT_YET),
            done_ns: fill(NOT_YET),
            status: (0..capacity).map(|_| AtomicU16::new(0)).collect(),
            retry_after: (0..capacity).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// Time since the timeline was created: the clock fault phases are marked with.
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn stamp(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(NOT_YET - 1)
    }

    fn kind(&self, index: u64) -> Kind {
        let n = self.templates.len().max(1) as u64;
        self.templates
            .get((index % n) as usize)
            .map_or(Kind::Valid, |(kind, _)| *kind)
    }

    /// The requests sent in `[from, to)`, with what became of them.
    pub fn between(&self, from: Duration, to: Duration) -> Vec<Record> {
        let (from, to) = (from.as_nanos() as u64, to.as_nanos() as u64);
        let mut out = Vec::new();
        for (index, sent) in self.sent_ns.iter().enumerate() {
            let sent = sent.load(Ordering::Acquire);
            if sent == NOT_YET || sent < from || sent >= to {
                continue;
            }
            let done = self.done_ns[index].load(Ordering::Acquire);
            out.push(Record {
                sent: Duration::from_nanos(sent),
                latency: (done != NOT_YET).then(|| Duration::from_nanos(done.saturating_sub(sent))),
                status: self.status[index].load(Ordering::Acquire),
                retry_after: self.retry_after[index].load(Ordering::Acquire),
                kind: self.kind(index as u64),
            });
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Record {
    pub sent: Duration,
    /// `None`: never answered (the driver's timeout, or a closed connection).
    pub latency: Option<Duration>,
    pub status: u16,
    pub retry_after: bool,
    pub kind: Kind,
}

/// The driver's request source and classifier over one [`Timeline`].
pub struct Tracked(pub Arc<Timeline>);

impl RequestSource for Tracked {
    fn request(&self, index: u64) -> Request<Full<Bytes>> {
        if let Some(slot) = self.0.sent_ns.get(index as usize) {
            slot.store(self.0.stamp(), Ordering::Release);
        }
        let n = self.0.templates.len().max(1) as u64;
        match self.0.templates.get((index % n) as usize) {
            Some((_, template)) => template.build(),
            None => Request::new(Full::new(Bytes::new())),
        }
    }
}

impl Classifier for Tracked {
    fn classify(&self, _status: u16, _headers: &HeaderMap) -> Outcome {
        Outcome::Expected
    }

    fn classify_request(&self, index: u64, status: u16, headers: &HeaderMap) -> Outcome {
        let i = index as usize;
        if let (Some(done), Some(slot), Some(retry)) = (
            self.0.done_ns.get(i),
            self.0.status.get(i),
            self.0.retry_after.get(i),
        ) {
            slot.store(status, Ordering::Release);
            retry.store(
                headers.contains_key(HeaderName::from_static("retry-after")),
                Ordering::Release,
            );
            done.store(self.0.stamp(), Ordering::Release);
        }
        let allowed = match self.0.kind(index) {
            Kind::Valid => status == 200 || status == 503,
            Kind::Refused => status == 401 || status == 503,
            Kind::Forged => status == 401,
        };
        if allowed {
            Outcome::Expected
        } else {
            Outcome::Unexpected
        }
    }
}

/// One fault's figures, as printed and written to `target/faults.json`.
#[derive(Debug, Clone, Serialize)]
pub struct FaultFigures {
    pub gateway: String,
    pub fault: String,
    pub requests: usize,
    /// Worst send → response-headers time of any request sent during the fault or its recovery.
    pub worst_latency_ms: u64,
    /// The same, for requests with a good token only.
    pub worst_valid_latency_ms: u64,
    /// Status → count over the same requests ("none": never answered).
    pub statuses: std::collections::BTreeMap<String, usize>,
    /// From the IdP back to the last refused valid request (0: the first request after it passed).
    pub recovery_ms: u64,
    /// Everything that broke a rule; empty when the fault was survived.
    pub violations: Vec<String>,
}

/// The figures as a Markdown table (the README's Reliability table takes it as it is).
pub fn table(figures: &[FaultFigures]) -> String {
    let mut out = String::from(
        "| gateway | fault | requests | worst latency (good tokens) | statuses | recovery | verdict |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        let statuses: Vec<String> = f.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        let verdict = if f.violations.is_empty() {
            "ok".to_owned()
        } else {
            f.violations.join("; ")
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} ms ({} ms) | {} | {} ms | {} |\n",
            f.gateway,
            f.fault,
            f.requests,
            f.worst_latency_ms,
            f.worst_valid_latency_ms,
            statuses.join(" "),
            f.recovery_ms,
            verdict
        ));
    }
    out
}

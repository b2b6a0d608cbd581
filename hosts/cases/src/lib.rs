//! The concrete host cases as `loadtest host-cases` writes them (format: hosts/README.md), and
//! the host-independent part of checking an answer against one ([`check`]).
//!
//! One definition for the writer (loadtest) and every reader (the Envoy tier in loadtest, the
//! wasmtime tier under hosts/wasmtime): a field added here is written and read the same way,
//! and `deny_unknown_fields` makes a reader older than the writer fail loudly, not skip it.

pub mod check;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// What a case may need from a host beyond plain request callbacks. Each tier declares the
/// ones it supports; a case needing anything else is reported as unsupported, never passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// The host's clock (`proxy_get_current_time_nanoseconds`) is the wall clock.
    Clock,
    /// `proxy_http_call`, answered as the case's `idp` block says.
    HttpCall,
    /// `proxy_on_tick` at the period the plugin asked for.
    Tick,
    /// Two VMs of one plugin sharing shared data.
    TwoVms,
    /// Two plugin configurations (root contexts) in one VM.
    TwoRoots,
}

impl Need {
    /// The name the table uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Clock => "clock",
            Need::HttpCall => "http_call",
            Need::Tick => "tick",
            Need::TwoVms => "two_vms",
            Need::TwoRoots => "two_roots",
        }
    }
}

/// The generated file every tier runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concrete {
    /// Unix seconds the tokens' times are relative to.
    pub generated_at: i64,
    pub issuer: String,
    /// Plugin configurations by name, as JSON objects.
    pub configs: BTreeMap<String, Value>,
    pub bad_configs: Vec<BadConfig>,
    pub cases: Vec<Case>,
    /// Every minted token by name: no tier's log may contain one.
    pub tokens: BTreeMap<String, String>,
}

/// A configuration `proxy_on_configure` must refuse, naming `field` in the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadConfig {
    pub name: String,
    pub config: Value,
    pub field: String,
    /// The log line's expected text.
    pub log: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The plugin configuration (name in `configs`); with `roots`, the first root's.
    pub config: String,
    /// Part of the short run (the portable build in Envoy).
    #[serde(default)]
    pub short: bool,
    #[serde(default)]
    pub needs: Vec<Need>,
    /// Needs a plugin instance of its own (a tier may otherwise share one per configuration).
    #[serde(default)]
    pub fresh: bool,
    /// VMs of the plugin (1 or 2); requests name theirs with `vm`.
    #[serde(default = "one")]
    pub vms: usize,
    /// Several plugin configurations in one VM; requests name theirs with `root`.
    #[serde(default)]
    pub roots: Vec<String>,
    /// The IdP's answers by request path, from the start of the case.
    #[serde(default)]
    pub idp: BTreeMap<String, IdpAnswer>,
    pub steps: Vec<Step>,
    /// Checked once all steps ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_total: Option<Totals>,
    /// Tier name → why this case is known to fail there (a reported bug). The tier runs it
    /// and requires it to fail; once it passes, the mark must go.
    #[serde(default)]
    pub known_failures: BTreeMap<String, String>,
}

fn one() -> usize {
    1
}

impl Case {
    /// Whether a tier may run this case on an instance shared with other cases of the same
    /// configuration: requests only, nothing that changes the IdP or waits on time.
    pub fn shareable(&self) -> bool {
        !self.fresh
            && self.vms == 1
            && self.roots.is_empty()
            && self.idp.is_empty()
            && self.steps.iter().all(|step| step.request.is_some())
    }

    /// The needs a tier lacks, given what it supports.
    pub fn missing(&self, supported: &[Need]) -> Vec<Need> {
        self.needs
            .iter()
            .copied()
            .filter(|need| !supported.contains(need))
            .collect()
    }
}

/// What the IdP answers at one path: a status and body, or nothing at all (`down`: connection
/// refused, or a call that ends without a response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub down: bool,
}

/// One step; exactly one of `request`, `idp`, `until`, `ticks` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// Replaces the IdP's answers for these paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<BTreeMap<String, IdpAnswer>>,
    /// Lets time pass (ticks, in Envoy real time) until a metric reaches a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Until>,
    /// Upper bound for `until`, in (virtual or real) seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<u64>,
    /// Lets this many tick periods pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticks: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Which VM serves it (Envoy picks its worker itself).
    #[serde(default)]
    pub vm: usize,
    /// Which root (plugin configuration) of the VM serves it.
    #[serde(default)]
    pub root: usize,
    #[serde(default = "default_path")]
    pub path: String,
    /// In order, repeats kept; `:method`, `:path`, `:authority` are the tier's.
    pub headers: Vec<(String, String)>,
}

fn default_path() -> String {
    "/orders/42?page=1".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Until {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gauge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    /// Reached when the metric is at least this.
    pub value: u64,
}

impl Until {
    pub fn metric(&self) -> &str {
        self.gauge
            .as_deref()
            .or(self.counter.as_deref())
            .unwrap_or_default()
    }
}

/// The expected outcome of a step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The request goes on to the upstream.
    #[serde(rename = "continue", default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    /// The filter answers itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// Counter increments during the step, exactly. `tokengate.allowed`,
    /// `tokengate.allowed_degraded` and `tokengate.denied.*` not listed must not move.
    #[serde(default)]
    pub metrics: BTreeMap<String, u64>,
    /// Gauge values after the step.
    #[serde(default)]
    pub gauges: BTreeMap<String, u64>,
    /// Calls the IdP received during the step, by path.
    #[serde(default)]
    pub idp_calls: BTreeMap<String, CallCount>,
    /// Texts the plugin's log must contain (since its start).
    #[serde(default)]
    pub log: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    #[serde(default)]
    pub idp_calls: BTreeMap<String, CallCount>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// Request headers the upstream must see with exactly this value (a single entry), or
    /// must not see (`null`). Headers not listed are not checked.
    #[serde(default)]
    pub upstream: BTreeMap<String, Option<String>>,
    /// The path (and query) the upstream must see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub status: u16,
    /// The JSON body's `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Absent from the case: not checked; `null`: the header must be absent.
    #[serde(
        default,
        deserialize_with = "some",
        skip_serializing_if = "Option::is_none"
    )]
    pub www_authenticate: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
}

fn some<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// An exact count, or a range for races a host may have (Envoy's workers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CallCount {
    Exact(u64),
    Range { min: u64, max: u64 },
}

impl CallCount {
    pub fn admits(self, count: u64) -> bool {
        match self {
            CallCount::Exact(n) => count == n,
            CallCount::Range { min, max } => (min..=max).contains(&count),
        }
    }
}

/// The counters every step checks, listed or not (listed ones must match, others stay still).
pub fn is_outcome_counter(name: &str) -> bool {
    name == "tokengate.allowed"
        || name == "tokengate.allowed_degraded"
        || name.starts_with("tokengate.denied.")
}

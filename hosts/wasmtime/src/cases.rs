//! The concrete cases, as `loadtest host-cases` writes them (format: hosts/README.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Concrete {
    /// Unix seconds the tokens' times are relative to.
    pub generated_at: i64,
    pub configs: BTreeMap<String, Value>,
    pub bad_configs: Vec<BadConfig>,
    pub cases: Vec<Case>,
    pub tokens: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct BadConfig {
    pub name: String,
    pub config: Value,
    pub log: String,
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub config: String,
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default = "one")]
    pub vms: usize,
    #[serde(default)]
    pub roots: Vec<String>,
    #[serde(default)]
    pub idp: BTreeMap<String, IdpAnswer>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub expect_total: Option<Totals>,
    #[serde(default)]
    pub known_failures: BTreeMap<String, String>,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdpAnswer {
    pub status: Option<u16>,
    pub body: Option<String>,
    #[serde(default)]
    pub down: bool,
}

#[derive(Debug, Deserialize)]
pub struct Step {
    pub request: Option<Request>,
    pub idp: Option<BTreeMap<String, IdpAnswer>>,
    pub until: Option<Until>,
    pub max_seconds: Option<u64>,
    pub ticks: Option<u32>,
    pub expect: Option<Expect>,
}

#[derive(Debug, Deserialize)]
pub struct Request {
    #[serde(default)]
    pub vm: usize,
    #[serde(default)]
    pub root: usize,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
pub struct Until {
    pub gauge: Option<String>,
    pub counter: Option<String>,
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

#[derive(Debug, Default, Deserialize)]
pub struct Expect {
    #[serde(rename = "continue")]
    pub forward: Option<Forward>,
    pub reply: Option<Reply>,
    #[serde(default)]
    pub metrics: BTreeMap<String, u64>,
    #[serde(default)]
    pub gauges: BTreeMap<String, u64>,
    #[serde(default)]
    pub idp_calls: BTreeMap<String, CallCount>,
    #[serde(default)]
    pub log: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Totals {
    #[serde(default)]
    pub idp_calls: BTreeMap<String, CallCount>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Forward {
    #[serde(default)]
    pub upstream: BTreeMap<String, Option<String>>,
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Reply {
    pub status: u16,
    pub error: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub www_authenticate: Option<Option<String>>,
    pub retry_after: Option<String>,
}

fn some<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, Copy, Deserialize)]
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

/// Counters every step checks: listed ones must match, unlisted ones must not move.
pub fn is_outcome_counter(name: &str) -> bool {
    name == "tokengate.allowed"
        || name == "tokengate.allowed_degraded"
        || name.starts_with("tokengate.denied.")
}

//! The parts of a step's check that do not depend on the host: the filter's own reply, the
//! counters and gauges, the IdP's call counts. Each tier observes these its own way (Envoy over
//! HTTP and its admin stats, wasmtime from the host's state) and hands in what it saw; every
//! mismatch is pushed to `problems`, so one failing step reports all of them at once.

use std::collections::BTreeMap;

use crate::{CallCount, Expect, Reply, is_outcome_counter};

/// The filter answered itself: its status, the challenge headers, and an OAuth2 error body
/// (RFC 6750 §3: `error` and `error_description`, both strings). `header` looks a response
/// header up by its lower-case name.
pub fn reply_problems(
    expected: &Reply,
    status: u32,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    problems: &mut Vec<String>,
) {
    if status != u32::from(expected.status) {
        problems.push(format!(
            "status {status} (expected {}): {}",
            expected.status,
            String::from_utf8_lossy(body)
        ));
    }
    if let Some(challenge) = &expected.www_authenticate {
        let got = header("www-authenticate");
        if got.as_ref() != challenge.as_ref() {
            problems.push(format!("WWW-Authenticate {got:?}, expected {challenge:?}"));
        }
    }
    if let Some(retry) = &expected.retry_after {
        let got = header("retry-after");
        if got.as_ref() != Some(retry) {
            problems.push(format!("Retry-After {got:?}, expected {retry:?}"));
        }
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(body) => {
            if !body["error"].is_string() || !body["error_description"].is_string() {
                problems.push(format!("body {body} lacks error/error_description"));
            }
            if let Some(error) = &expected.error
                && body["error"] != error.as_str()
            {
                problems.push(format!("body error {}, expected {error}", body["error"]));
            }
        }
        Err(_) => problems.push(format!(
            "body (status {status}) is not JSON: {}",
            String::from_utf8_lossy(body)
        )),
    }
}

/// Counter moves over the step must be exactly the listed ones; the outcome counters must not
/// move unless listed (a silent extra allow or deny is the failure this catches). Gauges are
/// compared by value after the step.
pub fn metric_problems(
    expect: &Expect,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    problems: &mut Vec<String>,
) {
    let delta = |name: &str| {
        after
            .get(name)
            .copied()
            .unwrap_or(0)
            .wrapping_sub(before.get(name).copied().unwrap_or(0))
    };
    for (name, expected) in &expect.metrics {
        let got = delta(name);
        if got != *expected {
            problems.push(format!("{name} moved by {got}, expected {expected}"));
        }
    }
    for name in after.keys() {
        if is_outcome_counter(name) && !expect.metrics.contains_key(name) && delta(name) != 0 {
            problems.push(format!("{name} moved by {} (not expected)", delta(name)));
        }
    }
    for (name, expected) in &expect.gauges {
        let got = after.get(name).copied().unwrap_or(0);
        if got != *expected {
            problems.push(format!("gauge {name} is {got}, expected {expected}"));
        }
    }
}

/// Calls the IdP received between two counts, against the expected counts by path.
pub fn call_problems(
    expected: &BTreeMap<String, CallCount>,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    problems: &mut Vec<String>,
) {
    for (path, count) in expected {
        let got = after.get(path).copied().unwrap_or(0) - before.get(path).copied().unwrap_or(0);
        if !count.admits(got) {
            problems.push(format!(
                "the IdP got {got} calls at {path}, expected {count:?}"
            ));
        }
    }
}

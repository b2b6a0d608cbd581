//! Runs one step of a case and compares what happened with what the case expects.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::host::{Outcome, World, text_pairs};
use tokengate_host_cases::check::{call_problems, metric_problems, reply_problems};
use tokengate_host_cases::{CallCount, Expect, Step};

pub fn step(world: &mut World, step: &Step) -> Result<()> {
    let metrics_before = world.metrics();
    let calls_before = world.idp_calls.clone();
    let mut observed = None;
    if let Some(request) = &step.request {
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (b":authority".to_vec(), b"api.test".to_vec()),
            (b":path".to_vec(), request.path.clone().into_bytes()),
        ];
        headers.extend(
            request
                .headers
                .iter()
                .map(|(name, value)| (name.clone().into_bytes(), value.clone().into_bytes())),
        );
        observed = Some(world.request(request.vm, request.root, headers)?);
    } else if let Some(answers) = &step.idp {
        for (path, answer) in answers {
            world.idp.insert(path.clone(), answer.clone());
        }
    } else if let Some(until) = &step.until {
        let max_ticks = step.max_seconds.unwrap_or(10) * 4;
        let mut reached = false;
        for _ in 0..=max_ticks {
            if world.metrics().get(until.metric()).copied().unwrap_or(0) >= until.value {
                reached = true;
                break;
            }
            world.tick()?;
        }
        if !reached {
            bail!(
                "{} did not reach {} within {} s of ticks (it is {})",
                until.metric(),
                until.value,
                step.max_seconds.unwrap_or(10),
                world.metrics().get(until.metric()).copied().unwrap_or(0)
            );
        }
    } else if let Some(ticks) = step.ticks {
        for _ in 0..ticks {
            world.tick()?;
        }
    }
    let Some(expect) = &step.expect else {
        return Ok(());
    };
    let metrics_after = world.metrics();
    let mut problems = Vec::new();
    if let Some((outcome, upstream)) = &observed {
        outcome_problems(expect, outcome, upstream, &mut problems);
    }
    metric_problems(expect, &metrics_before, &metrics_after, &mut problems);
    if let Err(err) = calls(&expect.idp_calls, &calls_before, &world.idp_calls) {
        problems.push(err.to_string());
    }
    let log = world.log.text();
    for text in &expect.log {
        if !log.contains(text.as_str()) {
            problems.push(format!("the log does not say `{text}`"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("; "))
    }
}

fn outcome_problems(
    expect: &Expect,
    outcome: &Outcome,
    upstream: &proxy_wasm_host::VecHeaderMap,
    problems: &mut Vec<String>,
) {
    match (outcome, &expect.forward, &expect.reply) {
        (Outcome::Continued, Some(forward), _) => {
            let pairs = text_pairs(upstream);
            for (name, expected) in &forward.upstream {
                let values: Vec<&String> = pairs
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
                    .collect();
                match expected {
                    None if !values.is_empty() => {
                        problems.push(format!("upstream got {name}: {values:?}, expected none"))
                    }
                    Some(value) if values != [value] => problems.push(format!(
                        "upstream got {name}: {values:?}, expected [{value:?}]"
                    )),
                    _ => {}
                }
            }
            if let Some(path) = &forward.path {
                let got = pairs.iter().find(|(n, _)| n == ":path").map(|(_, v)| v);
                if got != Some(path) {
                    problems.push(format!("upstream path {got:?}, expected {path:?}"));
                }
            }
        }
        (Outcome::Replied(reply), _, Some(expected)) => {
            let header = |name: &str| {
                reply
                    .headers
                    .iter()
                    .find(|(n, _)| n.as_ref().eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            };
            reply_problems(expected, reply.status_code, header, &reply.body, problems);
        }
        (Outcome::Continued, None, _) => problems.push("the request was forwarded".to_owned()),
        (Outcome::Replied(reply), _, None) => problems.push(format!(
            "answered {} instead of forwarding: {}",
            reply.status_code,
            String::from_utf8_lossy(&reply.body)
        )),
    }
}

/// Calls the IdP received between two counts, against the expected counts by path.
pub fn calls(
    expected: &BTreeMap<String, CallCount>,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> Result<()> {
    let mut problems = Vec::new();
    call_problems(expected, before, after, &mut problems);
    match problems.first() {
        None => Ok(()),
        Some(first) => bail!("{first}"),
    }
}

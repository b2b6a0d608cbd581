//! What one decision costs in host calls. Each `Host` call crosses the wasm boundary in a real
//! host, so the per-request count is part of the filter's cost: these tests pin it, so that a
//! change adding a call to the cached path shows here and not only in a benchmark.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::fake::FakeHost;
use super::test_support::{ISSUER, NOW, request};
use super::*;
use crate::algorithm::Algorithm;
use crate::testkit::{TestKey, TokenSpec, jwks};

fn token(jti: &str) -> String {
    TokenSpec::access_token(Algorithm::Rs256, "k1", ISSUER, "api", NOW.seconds)
        .claim("jti", jti)
        .claim("sid", "s-1")
        .sign(TestKey::rsa_a())
}

fn config(extra: Value) -> Vec<u8> {
    let mut config = json!({
        "issuer": ISSUER,
        "audiences": ["api"],
        "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk("k1", Some("RS256"))])},
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    config.to_string().into_bytes()
}

/// The host calls of a first request (a cache miss) and of the same token again (a hit).
fn calls(extra: Value) -> (BTreeMap<&'static str, u64>, BTreeMap<&'static str, u64>) {
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &config(extra), Some(7)).unwrap();
    let token = token("t-1");
    host.take_host_calls();
    let step = worker.on_request(&mut host, request(1, &token), NOW);
    assert!(matches!(step, Step::Forward(_)), "admitted: {step:?}");
    let miss = host.take_host_calls();
    let step = worker.on_request(&mut host, request(2, &token), NOW);
    assert!(matches!(step, Step::Forward(_)), "admitted again: {step:?}");
    (miss, host.take_host_calls())
}

fn counts(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    pairs.iter().copied().collect()
}

#[test]
fn a_cached_token_costs_its_metrics_and_nothing_else() {
    let (miss, hit) = calls(json!({}));
    // A hit: `allowed` and the cache's hit, each in the total and the provider's counter.
    assert_eq!(hit, counts(&[("increment_metric", 4)]));
    // A miss counts the same way and sets the cache-size gauge.
    assert_eq!(
        miss,
        counts(&[("increment_metric", 4), ("record_metric", 1)])
    );
}

#[test]
fn back_channel_logout_adds_one_shared_read_per_request() {
    let bcl = json!({"backchannel_logout": {"path": "/backchannel-logout", "audiences": ["app"]}});
    let (miss, hit) = calls(bcl);
    // The generation check of the shared log of ended sessions; the log itself is read only
    // when the generation moved.
    assert_eq!(hit, counts(&[("increment_metric", 4), ("shared_get", 1)]));
    assert_eq!(
        miss,
        counts(&[
            ("increment_metric", 4),
            ("record_metric", 1),
            ("shared_get", 1)
        ])
    );
}

#[test]
fn a_miss_that_leaves_the_cache_size_as_it_was_sets_no_gauge() {
    let mut host = FakeHost::new();
    let config = config(json!({"cache": {"max_entries": 2}}));
    let mut worker = Worker::configure(&mut host, &config, Some(7)).unwrap();
    let mut gauge_sets = |jti: &str, id: u32| {
        host.take_host_calls();
        let step = worker.on_request(&mut host, request(id, &token(jti)), NOW);
        assert!(matches!(step, Step::Forward(_)), "{jti} admitted: {step:?}");
        host.take_host_calls()
            .get("record_metric")
            .copied()
            .unwrap_or(0)
    };
    // The size goes 0 → 1 → 2, then a full cache stays at 2: each new token evicts one.
    let sets: Vec<u64> = ["t-1", "t-2", "t-3", "t-4"]
        .iter()
        .zip(1..)
        .map(|(jti, id)| gauge_sets(jti, id))
        .collect();
    assert_eq!(sets, [1, 1, 0, 0]);
}

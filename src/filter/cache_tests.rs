//! The cache-size gauge on a fake host: it follows the verified-token cache and stops at the
//! configured bound, however many distinct tokens arrive.

use serde_json::json;

use super::fake::FakeHost;
use super::test_support::{ISSUER, NOW, request};
use super::*;
use crate::algorithm::Algorithm;
use crate::testkit::{TestKey, TokenSpec, jwks};

fn distinct_token(n: u32) -> String {
    TokenSpec::access_token(Algorithm::Rs256, "k1", ISSUER, "api", NOW.seconds)
        .claim("jti", format!("jti-{n}"))
        .sign(TestKey::rsa_a())
}

#[test]
fn the_cache_gauge_counts_entries_up_to_the_bound() {
    let mut host = FakeHost::new();
    let config = json!({
        "issuer": ISSUER,
        "audiences": ["api"],
        "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk("k1", Some("RS256"))])},
        "cache": {"max_entries": 3},
    });
    let mut worker = Worker::configure(&mut host, config.to_string().as_bytes(), Some(7)).unwrap();
    let gauge = "tokengate.cache.entries";
    for n in 0..2 {
        let step = worker.on_request(&mut host, request(n + 1, &distinct_token(n)), NOW);
        assert!(matches!(step, Step::Forward(_)), "admitted: {step:?}");
    }
    assert_eq!(host.metric(gauge), 2);
    // A hit adds nothing; a refused token is never stored.
    worker.on_request(&mut host, request(10, &distinct_token(0)), NOW);
    worker.on_request(&mut host, request(11, "not.a.jwt"), NOW);
    assert_eq!(host.metric(gauge), 2);
    for n in 2..20 {
        worker.on_request(&mut host, request(n + 20, &distinct_token(n)), NOW);
    }
    assert_eq!(host.metric("tokengate.cache.miss"), 21);
    assert_eq!(host.metric(gauge), 3);
}

//! The worker on a fake host: shared keys, fetch claims, refetches on unknown `kid`, requests
//! waiting on calls and coalescing, call failures, and what the host is asked to do.

use serde_json::{Value, json};

use super::fake::{FakeHost, RequestEffect};
use super::test_support::{ISSUER, NOW, request};
use super::*;
use crate::algorithm::Algorithm;
use crate::testkit::{TestKey, TokenSpec, jwks};

const QUEUE: u32 = 7;

fn later(now: Now, millis: u64) -> Now {
    Now::from_nanos((now.millis + millis) * 1_000_000)
}

fn remote_config(extra: Value) -> Vec<u8> {
    let mut config = json!({
        "issuer": ISSUER,
        "audiences": ["api"],
        "jwks": {"remote": {"cluster": "idp", "authority": "idp", "path": "/certs"}},
        "forward": {"claims_to_headers": [{"claim": "sub", "header": "x-sub"}]},
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        config[k] = v;
    }
    config.to_string().into_bytes()
}

fn introspect_config() -> Vec<u8> {
    json!({
        "mode": "introspect",
        "opaque": true,
        "issuer": ISSUER,
        "audiences": ["api"],
        "introspection": {
            "cluster": "idp", "authority": "idp", "path": "/introspect",
            "client_id": "gw", "client_secret": "s", "max_in_flight": 2
        },
    })
    .to_string()
    .into_bytes()
}

fn key_set(kids: &[&str]) -> Vec<u8> {
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| TestKey::rsa_a().public_jwk(kid, Some("RS256")))
        .collect();
    jwks(&keys).to_string().into_bytes()
}

fn token(kid: &str) -> String {
    TokenSpec::access_token(Algorithm::Rs256, kid, ISSUER, "api", NOW.seconds)
        .sign(TestKey::rsa_a())
}

fn ok(body: Vec<u8>) -> CallResponse {
    CallResponse {
        status: Some(200),
        body: Some(body),
    }
}

fn status_of(step: &Step) -> u16 {
    match step {
        Step::Forward(_) => 200,
        Step::Reply(response) => response.status,
        Step::Wait | Step::ReadBody => 0,
    }
}

fn worker(host: &mut FakeHost, config: &[u8]) -> Worker {
    Worker::configure(host, config, Some(QUEUE)).unwrap()
}

/// A worker whose remote key set holds `kids`, fetched on its first tick.
fn worker_with_keys(host: &mut FakeHost, kids: &[&str]) -> Worker {
    let mut worker = worker(host, &remote_config(json!({})));
    worker.on_tick(host, NOW);
    let (call, _) = host.take_calls().pop().unwrap();
    assert!(
        worker
            .on_call_response(host, call, &ok(key_set(kids)), NOW)
            .is_empty()
    );
    worker
}

#[test]
fn bad_configuration_names_the_field() {
    let mut host = FakeHost::new();
    let err = Worker::configure(&mut host, br#"{"issuer": "x", "audiences": [], "jwks": {"remote": {"cluster": "", "authority": "a", "path": "/"}}}"#, None)
        .err()
        .unwrap();
    assert!(err.contains("jwks.remote.cluster"), "{err}");
}

#[test]
fn admission_headers_are_carried_out_by_the_host() {
    let mut host = FakeHost::new();
    let inline = json!({"inline": jwks(&[TestKey::rsa_a().public_jwk("k1", Some("RS256"))])});
    let mut worker = worker(
        &mut host,
        &remote_config(json!({"jwks": inline, "forward": {
            "strip_authorization": true,
            "claims_to_headers": [{"claim": "sub", "header": "x-sub"}]
        }})),
    );
    assert!(!worker.wants_ticks());
    let step = worker.on_request(&mut host, request(1, &token("k1")), NOW);
    let Step::Forward(admission) = step else {
        panic!("admitted: {step:?}");
    };
    worker.apply_admission(&mut host, &admission);
    assert_eq!(
        host.take_effects(),
        vec![
            RequestEffect::Set(
                "x-sub".into(),
                "f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c".into()
            ),
            RequestEffect::Remove("authorization".into()),
        ]
    );
    assert_eq!(host.metric("tokengate.allowed"), 1);
    assert_eq!(host.metric("tokengate.cache.miss"), 1);
    let again = worker.on_request(&mut host, request(2, &token("k1")), NOW);
    assert_eq!(status_of(&again), 200);
    assert_eq!(host.metric("tokengate.cache.hit"), 1);
    let refused = worker.on_request(&mut host, request(3, "not.a.jwt"), NOW);
    assert_eq!(status_of(&refused), 401);
    assert_eq!(host.metric("tokengate.denied.malformed"), 1);
}

#[test]
fn one_fetch_serves_every_worker_through_shared_data() {
    let mut first_host = FakeHost::new();
    let mut second_host = first_host.sharing();
    let mut first = worker(&mut first_host, &remote_config(json!({})));
    let mut second = worker(&mut second_host, &remote_config(json!({})));
    assert!(first.wants_ticks());
    // No keys yet: 503, and no refetch storm (only an unknown kid may refetch).
    let early = first.on_request(&mut first_host, request(1, &token("k1")), NOW);
    assert_eq!(status_of(&early), 503);
    assert_eq!(first_host.metric("tokengate.denied.keys_unavailable"), 1);

    // Both tick; the first claims the fetch, the second sees it in flight.
    first.on_tick(&mut first_host, NOW);
    second.on_tick(&mut second_host, NOW);
    let calls = first_host.take_calls();
    assert_eq!(calls.len(), 1);
    assert!(
        second_host.take_calls().is_empty(),
        "one fetch for all workers"
    );
    let (token_id, call) = &calls[0];
    let path = call
        .headers
        .iter()
        .find(|(n, _)| n == ":path")
        .map(|(_, v)| v.as_str());
    assert_eq!(path, Some("/certs"));
    first.on_call_response(&mut first_host, *token_id, &ok(key_set(&["k1"])), NOW);
    assert_eq!(first_host.metric("tokengate.jwks.fetch_success"), 1);
    assert_eq!(first_host.metric("tokengate.jwks.keys_loaded"), 1);

    // The second worker installs the published keys on its next tick, without a call.
    second.on_tick(&mut second_host, later(NOW, 250));
    assert!(second_host.take_calls().is_empty());
    assert_eq!(second.engine().key_count(0), 1);
    let step = second.on_request(&mut second_host, request(2, &token("k1")), NOW);
    assert_eq!(status_of(&step), 200);
}

#[test]
fn a_failed_refresh_keeps_the_last_keys_and_backs_off() {
    let mut host = FakeHost::new();
    let mut worker = worker_with_keys(&mut host, &["k1"]);
    // The periodic refresh is due after refresh_seconds (300 s by default).
    let due = later(NOW, 300_000);
    worker.on_tick(&mut host, due);
    let (call, _) = host.take_calls().pop().unwrap();
    let failed = CallResponse {
        status: Some(500),
        body: Some(b"oops".to_vec()),
    };
    worker.on_call_response(&mut host, call, &failed, due);
    assert_eq!(host.metric("tokengate.jwks.fetch_failure"), 1);
    assert_eq!(worker.engine().key_count(0), 1);
    assert_eq!(
        status_of(&worker.on_request(&mut host, request(1, &token("k1")), due)),
        200
    );
    // Retried after the first backoff step (1 s), not before.
    worker.on_tick(&mut host, later(due, 999));
    assert!(host.take_calls().is_empty());
    worker.on_tick(&mut host, later(due, 1_000));
    assert_eq!(host.take_calls().len(), 1);
}

#[test]
fn unknown_kid_waits_for_one_refetch_shared_by_its_requests() {
    let mut host = FakeHost::new();
    let mut worker = worker_with_keys(&mut host, &["k1"]);
    let rotated = token("k2");
    // Two requests with the new kid: both wait; one wake-up, one call.
    assert_eq!(
        worker.on_request(&mut host, request(10, &rotated), NOW),
        Step::Wait
    );
    assert_eq!(
        worker.on_request(&mut host, request(11, &rotated), NOW),
        Step::Wait
    );
    assert_eq!(host.queued.len(), 1);
    assert_eq!(host.queued[0].0, QUEUE);
    assert!(host.calls.is_empty(), "the root context dispatches");
    assert!(worker.on_wake(&mut host, NOW).is_empty());
    let calls = host.take_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(host.metric("tokengate.jwks.kid_refetch"), 1);
    let resumed = worker.on_call_response(&mut host, calls[0].0, &ok(key_set(&["k1", "k2"])), NOW);
    let contexts: Vec<(u32, u16)> = resumed
        .iter()
        .map(|r| (r.context_id, status_of(&r.step)))
        .collect();
    assert_eq!(contexts, vec![(10, 200), (11, 200)]);

    // Another unknown kid right after: within the refetch floor, refused at once.
    let junk = worker.on_request(&mut host, request(12, &token("k3")), later(NOW, 1_000));
    assert_eq!(status_of(&junk), 401);
    assert_eq!(host.metric("tokengate.denied.unknown_kid"), 1);
    assert!(host.queued.len() == 1 && host.calls.is_empty());
}

#[test]
fn without_a_wake_queue_the_request_dispatches_its_own_call() {
    let mut host = FakeHost::new();
    let mut worker = worker_with_keys(&mut host, &["k1"]);
    host.refuse_queue = true;
    assert_eq!(
        worker.on_request(&mut host, request(5, &token("k2")), NOW),
        Step::Wait
    );
    let calls = host.take_calls();
    assert_eq!(calls.len(), 1);
    // The IdP answers without the kid: the request is refused once the answer is in.
    let resumed = worker.on_call_response(&mut host, calls[0].0, &ok(key_set(&["k1"])), NOW);
    assert_eq!(resumed.len(), 1);
    assert_eq!(status_of(&resumed[0].step), 401);

    // A refetch that cannot start at all is a fetch failure and an immediate answer.
    let mut host = FakeHost::new();
    let mut worker = worker_with_keys(&mut host, &["k1"]);
    host.refuse_queue = true;
    host.refuse_calls = true;
    let step = worker.on_request(&mut host, request(6, &token("k2")), NOW);
    assert_eq!(status_of(&step), 401);
    assert_eq!(host.metric("tokengate.jwks.fetch_failure"), 1);
}

#[test]
fn introspections_are_coalesced_bounded_and_fail_closed() {
    let mut host = FakeHost::new();
    let mut worker = worker(&mut host, &introspect_config());
    let token = token("k1");
    assert_eq!(
        worker.on_request(&mut host, request(1, &token), NOW),
        Step::Wait
    );
    assert_eq!(
        worker.on_request(&mut host, request(2, &token), NOW),
        Step::Wait
    );
    assert_eq!(host.metric("tokengate.introspection.coalesced"), 1);
    worker.on_wake(&mut host, NOW);
    let calls = host.take_calls();
    assert_eq!(calls.len(), 1, "one call for both requests");
    assert_eq!(host.metric("tokengate.introspection.calls"), 1);
    let body = json!({"active": true, "sub": "alice"})
        .to_string()
        .into_bytes();
    let resumed = worker.on_call_response(&mut host, calls[0].0, &ok(body), later(NOW, 3));
    assert_eq!(resumed.len(), 2);
    assert!(resumed.iter().all(|r| status_of(&r.step) == 200));
    assert_eq!(host.metric("tokengate.allowed"), 2);
    assert_eq!(host.metric("tokengate.introspection.latency_ms"), 1);

    // Two distinct tokens open (max_in_flight 2); a third is refused as overloaded.
    for (context, n) in [(3, "a"), (4, "b")] {
        let step = worker.on_request(&mut host, request(context, &format!("opaque{n}")), NOW);
        assert_eq!(step, Step::Wait);
    }
    let full = worker.on_request(&mut host, request(5, "opaquec"), NOW);
    assert_eq!(status_of(&full), 503);
    assert_eq!(
        host.metric("tokengate.introspection.idp_error.overloaded"),
        1
    );

    // The queued calls cannot start: their waiters are answered 503, never left hanging.
    host.refuse_calls = true;
    let failed = worker.on_wake(&mut host, NOW);
    let statuses: Vec<u16> = failed.iter().map(|r| status_of(&r.step)).collect();
    assert_eq!(statuses, vec![503, 503]);
    let Step::Reply(response) = &failed[0].step else {
        panic!("a reply");
    };
    assert!(response.headers.iter().any(|(n, _)| *n == "retry-after"));
    assert_eq!(
        host.metric("tokengate.introspection.idp_error.unreachable"),
        2
    );
}

#[test]
fn a_junk_kid_costs_one_refetch_and_a_new_key_is_still_picked_up() {
    let mut host = FakeHost::new();
    let mut other_host = host.sharing();
    let mut other = worker(&mut other_host, &remote_config(json!({})));
    let mut worker = worker_with_keys(&mut host, &["k1"]);
    other.on_tick(&mut other_host, NOW);
    // A junk kid: one refetch, which does not find it.
    assert_eq!(
        worker.on_request(&mut host, request(1, &token("junk")), NOW),
        Step::Wait
    );
    worker.on_wake(&mut host, NOW);
    let (call, _) = host.take_calls().pop().unwrap();
    let resumed = worker.on_call_response(&mut host, call, &ok(key_set(&["k1"])), NOW);
    assert_eq!(status_of(&resumed[0].step), 401);
    // Repeated, on any worker, long after the floor: refused at once, no fetch, no wait.
    let later_on = later(NOW, 60_000);
    for (worker, host) in [(&mut worker, &mut host), (&mut other, &mut other_host)] {
        let step = worker.on_request(host, request(2, &token("junk")), later_on);
        assert_eq!(status_of(&step), 401);
        assert!(host.queued.len() <= 1 && host.take_calls().is_empty());
    }
    assert_eq!(host.metric("tokengate.jwks.kid_refetch"), 1);
    // The IdP adds a key: a kid never seen before refetches (the floor has passed) and is
    // admitted.
    let rotated = token("k2");
    assert_eq!(
        worker.on_request(&mut host, request(3, &rotated), later_on),
        Step::Wait
    );
    worker.on_wake(&mut host, later_on);
    let (call, _) = host.take_calls().pop().unwrap();
    let resumed = worker.on_call_response(&mut host, call, &ok(key_set(&["k1", "k2"])), later_on);
    assert_eq!(status_of(&resumed[0].step), 200);
    assert_eq!(host.metric("tokengate.jwks.kid_refetch"), 2);
    // Within the floor after that, yet another new kid is refused without a fetch.
    let soon = later(later_on, 4_999);
    assert_eq!(
        status_of(&worker.on_request(&mut host, request(4, &token("k3")), soon)),
        401
    );
    let after_floor = later(later_on, 5_000);
    assert_eq!(
        worker.on_request(&mut host, request(5, &token("k3")), after_floor),
        Step::Wait
    );
}

fn discovery_config(extra: Value) -> Vec<u8> {
    let mut discovery = json!({"cluster": "idp"});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        discovery[k] = v;
    }
    remote_config(json!({
        "issuer": "https://idp.example:8443/realms/r",
        "jwks": {"discovery": discovery}
    }))
}

fn discovery_document(issuer: &str, jwks_uri: &str) -> Vec<u8> {
    json!({"issuer": issuer, "jwks_uri": jwks_uri, "token_endpoint": "https://idp/token"})
        .to_string()
        .into_bytes()
}

fn path_of(call: &crate::introspection::HttpCall) -> (String, String) {
    let header = |name: &str| {
        call.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    (header(":authority"), header(":path"))
}

#[test]
fn discovery_finds_the_jwks_and_refreshes_both() {
    const ISS: &str = "https://idp.example:8443/realms/r";
    let mut host = FakeHost::new();
    let mut worker = worker(&mut host, &discovery_config(json!({})));
    worker.on_tick(&mut host, NOW);
    let (call, spec) = host.take_calls().pop().unwrap();
    assert_eq!(
        path_of(&spec),
        (
            "idp.example:8443".into(),
            "/realms/r/.well-known/openid-configuration".into()
        )
    );
    let document = discovery_document(ISS, "https://idp.example:8443/realms/r/certs?v=2");
    assert!(
        worker
            .on_call_response(&mut host, call, &ok(document.clone()), NOW)
            .is_empty()
    );
    let (call, spec) = host.take_calls().pop().unwrap();
    assert_eq!(
        path_of(&spec),
        ("idp.example:8443".into(), "/realms/r/certs?v=2".into())
    );
    let token = TokenSpec::access_token(Algorithm::Rs256, "k1", ISS, "api", NOW.seconds)
        .sign(TestKey::rsa_a());
    worker.on_call_response(&mut host, call, &ok(key_set(&["k1"])), NOW);
    assert_eq!(
        status_of(&worker.on_request(&mut host, request(1, &token), NOW)),
        200
    );
    // A kid refetch goes straight to the known JWKS; the scheduled refresh reads both again.
    assert_eq!(
        worker.on_request(&mut host, request(2, &token_for(ISS, "k9")), NOW),
        Step::Wait
    );
    worker.on_wake(&mut host, NOW);
    let (call, spec) = host.take_calls().pop().unwrap();
    assert!(path_of(&spec).1.ends_with("/certs?v=2"));
    worker.on_call_response(&mut host, call, &ok(key_set(&["k1"])), NOW);
    let due = later(NOW, 300_000);
    worker.on_tick(&mut host, due);
    let (_, spec) = host.take_calls().pop().unwrap();
    assert!(path_of(&spec).1.ends_with("openid-configuration"));
}

fn token_for(issuer: &str, kid: &str) -> String {
    TokenSpec::access_token(Algorithm::Rs256, kid, issuer, "api", NOW.seconds)
        .sign(TestKey::rsa_a())
}

#[test]
fn a_discovery_document_may_not_send_the_gateway_elsewhere() {
    const ISS: &str = "https://idp.example:8443/realms/r";
    let cases = [
        (
            json!({}),
            discovery_document("https://evil.example", "https://idp.example:8443/c"),
            false,
        ),
        (
            json!({}),
            discovery_document(ISS, "https://evil.example/certs"),
            false,
        ),
        (
            json!({}),
            discovery_document(ISS, "http://idp.example:8443/certs"),
            false,
        ),
        (json!({}), b"not json".to_vec(), false),
        (
            json!({"allowed_jwks_origins": ["https://keys.example"]}),
            discovery_document(ISS, "https://keys.example/r/certs"),
            true,
        ),
    ];
    for (extra, document, follows) in cases {
        let mut host = FakeHost::new();
        let mut worker = worker(&mut host, &discovery_config(extra.clone()));
        worker.on_tick(&mut host, NOW);
        let (call, _) = host.take_calls().pop().unwrap();
        worker.on_call_response(&mut host, call, &ok(document.clone()), NOW);
        let next = host.take_calls();
        assert_eq!(
            !next.is_empty(),
            follows,
            "{extra} {}",
            String::from_utf8_lossy(&document)
        );
        if !follows {
            assert_eq!(host.metric("tokengate.jwks.fetch_failure"), 1);
        }
    }
}

#[test]
fn identity_is_published_and_the_route_asked_for_again() {
    let mut host = FakeHost::new();
    let inline = json!({"inline": jwks(&[TestKey::rsa_a().public_jwk("k1", Some("RS256"))])});
    let config = json!({
        "providers": {"internal": {
            "issuer": ISSUER, "audiences": ["api"], "jwks": inline,
            "forward": {
                "claims_to_headers": [{"claim": "iss", "header": "x-jwt-iss"}],
                "filter_state": {"provider": true, "claims": [
                    {"claim": "sub", "name": "sub"},
                    {"claim": "realm_access.roles", "name": "roles"},
                    {"claim": "missing", "name": "absent"}
                ]}
            }
        }},
        "rules": [
            {"name": "health", "match": {"path": {"exact": "/health"}}, "requires": "public"},
            {"name": "api", "requires": {"provider": "internal"}, "clear_route_cache": true}
        ]
    });
    let mut worker = worker(&mut host, config.to_string().as_bytes());
    let mut first = request(1, &token("k1"));
    first
        .request
        .headers
        .push((":path".to_owned(), b"/orders".to_vec()));
    let Step::Forward(admission) = worker.on_request(&mut host, first, NOW) else {
        panic!("admitted");
    };
    worker.apply_admission(&mut host, &admission);
    assert_eq!(
        host.take_effects(),
        vec![
            RequestEffect::Set("x-jwt-iss".into(), ISSUER.into()),
            RequestEffect::Property("tokengate.provider".into(), "internal".into()),
            RequestEffect::Property(
                "tokengate.sub".into(),
                "f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c".into()
            ),
            RequestEffect::Property("tokengate.roles".into(), "offline_access user".into()),
            RequestEffect::ClearRouteCache,
        ]
    );
    assert_eq!(host.metric("tokengate.rule.api.allowed"), 1);
    assert_eq!(host.metric("tokengate.provider.internal.allowed"), 1);
    // A public request publishes nothing and strips the identity header.
    let mut public = Waiter::new(
        2,
        crate::engine::Request::with_headers(vec![
            (":path".to_owned(), b"/health".to_vec()),
            ("x-jwt-iss".to_owned(), b"forged".to_vec()),
        ]),
    );
    public.in_hand.clear();
    let Step::Forward(admission) = worker.on_request(&mut host, public, NOW) else {
        panic!("public");
    };
    worker.apply_admission(&mut host, &admission);
    assert_eq!(
        host.take_effects(),
        vec![RequestEffect::Remove("x-jwt-iss".into())]
    );
    assert_eq!(host.metric("tokengate.rule.health.allowed"), 1);
    // Refusals are counted per rule and per provider too.
    let mut refused = request(3, &tamper_signature_of(&token("k1")));
    refused
        .request
        .headers
        .push((":path".to_owned(), b"/orders".to_vec()));
    assert_eq!(status_of(&worker.on_request(&mut host, refused, NOW)), 401);
    assert_eq!(host.metric("tokengate.rule.api.denied.bad_signature"), 1);
    assert_eq!(
        host.metric("tokengate.provider.internal.denied.bad_signature"),
        1
    );
    assert_eq!(host.metric("tokengate.denied.bad_signature"), 1);
}

fn tamper_signature_of(token: &str) -> String {
    crate::testkit::tamper_signature(token)
}

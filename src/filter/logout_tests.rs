//! Back-channel logout on a fake host: the shared log read by every worker (cache hits
//! included), sessions and subjects, bounds and the fail-closed choice, and the relay to peers;
//! what the endpoint refuses is in `logout_refusal_tests.rs`.

use serde_json::{Value, json};

use super::fake::FakeHost;
use super::test_support::{ISSUER, NOW};
use super::*;
use crate::algorithm::Algorithm;
use crate::engine::Request;
use crate::revocation::logout_token::LOGOUT_EVENT;
use crate::testkit::{TestKey, TokenSpec, jwks};

fn later(seconds: i64) -> Now {
    Now {
        seconds: NOW.seconds + seconds,
        millis: NOW.millis + u64::try_from(seconds).unwrap() * 1000,
    }
}

fn config(backchannel: Value) -> Vec<u8> {
    json!({
        "issuer": ISSUER,
        "audiences": ["api"],
        "algorithms": ["RS256", "EdDSA"],
        "jwks": {"inline": jwks(&[
            TestKey::rsa_a().public_jwk("k1", Some("RS256")),
            TestKey::ed25519().public_jwk("k2", Some("EdDSA")),
        ])},
        "backchannel_logout": backchannel,
    })
    .to_string()
    .into_bytes()
}

fn settings() -> Value {
    json!({"path": "/backchannel-logout", "audiences": ["app"]})
}

fn access_token(sid: &str, sub: &str, iat: i64) -> String {
    TokenSpec::access_token(Algorithm::Rs256, "k1", ISSUER, "api", iat)
        .claim("sid", sid)
        .claim("sub", sub)
        .sign(TestKey::rsa_a())
}

/// Keycloak's logout token, as NOTES.md §9 describes it.
fn logout_spec(sid: Option<&str>, sub: Option<&str>, jti: &str) -> TokenSpec {
    let mut spec = TokenSpec::access_token(Algorithm::Rs256, "k1", ISSUER, "app", NOW.seconds)
        .header("typ", "logout+jwt")
        .without_claim("scope")
        .without_claim("realm_access")
        .without_claim("azp")
        .claim("typ", "Logout")
        .claim("jti", jti)
        .claim("exp", NOW.seconds + 120)
        .claim("events", json!({LOGOUT_EVENT: {}}));
    spec = match sid {
        Some(sid) => spec.claim("sid", sid),
        None => spec.without_claim("sid"),
    };
    match sub {
        Some(sub) => spec.claim("sub", sub),
        None => spec.without_claim("sub"),
    }
}

/// The flood test posts thousands of logouts: Ed25519 signs them in microseconds where RSA
/// signing in the test would take most of a minute.
fn flood_logout(i: u32) -> String {
    logout_spec(Some(&format!("s{i}")), None, &format!("j{i}"))
        .header("alg", "EdDSA")
        .header("kid", "k2")
        .sign(TestKey::ed25519())
}

fn api_request(context_id: u32, token: &str) -> Waiter {
    Waiter::new(
        context_id,
        Request::with_headers(vec![
            (":path".to_owned(), b"/orders".to_vec()),
            (":method".to_owned(), b"GET".to_owned().to_vec()),
            (
                "authorization".to_owned(),
                format!("Bearer {token}").into_bytes(),
            ),
        ]),
    )
}

fn status(step: &Step) -> u16 {
    match step {
        Step::Forward(_) => 200,
        Step::Reply(response) => response.status,
        Step::Wait | Step::ReadBody => 0,
    }
}

/// Starts a POST to the logout path (its body to follow); the worker asks for the body.
fn start_logout(
    worker: &mut Worker,
    host: &mut FakeHost,
    context_id: u32,
    relayed: bool,
    now: Now,
) {
    let mut headers = vec![
        (":path".to_owned(), b"/backchannel-logout".to_vec()),
        (":method".to_owned(), b"POST".to_vec()),
        (
            "content-type".to_owned(),
            b"application/x-www-form-urlencoded".to_vec(),
        ),
    ];
    if relayed {
        headers.push(("x-tokengate-relayed".to_owned(), b"1".to_vec()));
    }
    let mut request = Request::with_headers(headers);
    request.body_follows = true;
    let step = worker.on_request(host, Waiter::new(context_id, request), now);
    assert_eq!(step, Step::ReadBody, "the body is read");
}

/// POSTs `body` to the logout path, in two body chunks; returns the reply.
fn post(
    worker: &mut Worker,
    host: &mut FakeHost,
    context_id: u32,
    body: &str,
    relayed: bool,
    now: Now,
) -> DenyResponse {
    start_logout(worker, host, context_id, relayed, now);
    let half = body.len() / 2;
    let first = worker.on_request_body(host, context_id, half, false, |_| panic!("not yet"), now);
    assert_eq!(first, BodyStep::Buffer);
    let bytes = body.as_bytes().to_vec();
    match worker.on_request_body(
        host,
        context_id,
        bytes.len(),
        true,
        |n| Some(bytes[..n].to_vec()),
        now,
    ) {
        BodyStep::Reply(reply) => reply,
        other => panic!("a reply, not {other:?}"),
    }
}

fn form(token: &str) -> String {
    format!("logout_token={token}")
}

fn error_of(reply: &DenyResponse) -> String {
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    body["error_description"].as_str().unwrap().to_owned()
}

#[test]
fn a_logout_ends_the_session_in_every_worker_cache_hits_included() {
    let mut host = FakeHost::new();
    let mut other_host = host.sharing();
    let mut worker = Worker::configure(&mut host, &config(settings()), None).unwrap();
    let mut other = Worker::configure(&mut other_host, &config(settings()), None).unwrap();
    let ended = access_token("s1", "alice", NOW.seconds);
    let kept = access_token("s2", "alice", NOW.seconds);
    for (w, h) in [(&mut worker, &mut host), (&mut other, &mut other_host)] {
        assert_eq!(status(&w.on_request(h, api_request(1, &ended), NOW)), 200);
        assert_eq!(status(&w.on_request(h, api_request(2, &kept), NOW)), 200);
    }
    let logout = logout_spec(Some("s1"), Some("alice"), "j1").sign(TestKey::rsa_a());
    let reply = post(&mut worker, &mut host, 9, &form(&logout), false, later(1));
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    assert!(
        reply
            .headers
            .contains(&("cache-control", "no-store".to_owned()))
    );
    assert_eq!(host.metric("tokengate.revocation.received"), 1);
    // Both workers: the cached token of the ended session is refused, the other session's
    // token stays admitted.
    for (w, h) in [(&mut worker, &mut host), (&mut other, &mut other_host)] {
        let refused = w.on_request(h, api_request(3, &ended), later(2));
        let Step::Reply(reply) = &refused else {
            panic!("refused: {refused:?}");
        };
        assert_eq!(reply.status, 401);
        let challenge = reply
            .headers
            .iter()
            .find(|(n, _)| *n == "www-authenticate")
            .unwrap();
        assert!(
            challenge.1.contains("The token's session has ended"),
            "{}",
            challenge.1
        );
        assert_eq!(h.metric("tokengate.denied.session_ended"), 1);
        assert_eq!(h.metric("tokengate.cache.hit"), 1, "it was a cache hit");
        assert_eq!(
            status(&w.on_request(h, api_request(4, &kept), later(2))),
            200
        );
        assert_eq!(h.metric("tokengate.revocation.entries"), 1);
    }
    // Its entry lasts as long as a token can (revoke_for_seconds, an hour by default).
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(5, &ended), later(3599))),
        401
    );
    // The same logout token again: a replay, refused on any worker.
    let replay = post(
        &mut other,
        &mut other_host,
        10,
        &form(&logout),
        false,
        later(5),
    );
    assert_eq!(
        (replay.status, error_of(&replay).as_str()),
        (400, "The logout token was received before")
    );
    assert_eq!(
        other_host.metric("tokengate.revocation.rejected.replayed"),
        1
    );
}

#[test]
fn a_subject_logout_ends_the_tokens_issued_until_then() {
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &config(settings()), None).unwrap();
    let before = access_token("s1", "bob", NOW.seconds - 10);
    let logout = logout_spec(None, Some("bob"), "j-sub").sign(TestKey::rsa_a());
    assert_eq!(
        post(&mut worker, &mut host, 1, &form(&logout), false, NOW).status,
        200
    );
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(2, &before), later(1))),
        401
    );
    // Logged in again afterwards: admitted.
    let after = access_token("s9", "bob", NOW.seconds + 30);
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(3, &after), later(31))),
        200
    );
    let carol = access_token("s3", "carol", NOW.seconds - 10);
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(4, &carol), later(1))),
        200
    );
}

#[test]
fn a_flood_of_logouts_stays_bounded_and_can_fail_closed() {
    let bounded = json!({"path": "/backchannel-logout", "audiences": ["app"], "max_entries": 600});
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &config(bounded.clone()), None).unwrap();
    // 600 entries round up to two chunks of 512: a new round of a slot forgets the 512 there.
    // After 3000 logouts, entries 2048..2999 are held and the four rounds from 1024 on each
    // dropped a full chunk.
    for i in 0..3000 {
        let logout = flood_logout(i);
        assert_eq!(
            post(&mut worker, &mut host, i, &form(&logout), true, NOW).status,
            200,
            "{i}"
        );
    }
    assert_eq!(host.metric("tokengate.revocation.entries"), 3000 - 2048);
    assert_eq!(host.metric("tokengate.revocation.dropped"), 2048);
    let newest = access_token("s2999", "u", NOW.seconds);
    let forgotten = access_token("s0", "u", NOW.seconds);
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(1, &newest), NOW)),
        401
    );
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(2, &forgotten), NOW)),
        200
    );

    // Fail closed: once the ring is full of live entries, the provider's tokens are refused
    // until they expire; nothing is forgotten.
    let mut closed = bounded;
    closed["when_full"] = json!("fail_closed");
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &config(closed), None).unwrap();
    for i in 0..1025 {
        let logout = flood_logout(i);
        assert_eq!(
            post(&mut worker, &mut host, i, &form(&logout), true, NOW).status,
            200
        );
    }
    assert_eq!(host.metric("tokengate.revocation.full"), 1);
    assert_eq!(host.metric("tokengate.revocation.dropped"), 0);
    let anyone = access_token("fresh", "u", NOW.seconds);
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(1, &anyone), later(1))),
        503
    );
    assert_eq!(host.metric("tokengate.denied.revocations_full"), 1);
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(2, &anyone), later(3601))),
        200,
        "expired"
    );
}

#[test]
fn accepted_logouts_are_relayed_to_peers_once() {
    let with_peers = json!({
        "path": "/backchannel-logout", "audiences": ["app"],
        "peers": [{"cluster": "replica-b", "authority": "b:10000"}, {"cluster": "replica-c", "authority": "c:10000", "path": "/bcl"}]
    });
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &config(with_peers), Some(3)).unwrap();
    let logout = logout_spec(Some("s1"), None, "j-relay").sign(TestKey::rsa_a());
    assert_eq!(
        post(&mut worker, &mut host, 1, &form(&logout), false, NOW).status,
        200
    );
    worker.on_wake(&mut host, NOW);
    let calls = host.take_calls();
    assert_eq!(calls.len(), 2, "one relay per peer");
    for ((token, call), (cluster, path)) in calls
        .iter()
        .zip([("replica-b", "/backchannel-logout"), ("replica-c", "/bcl")])
    {
        assert_eq!(call.cluster, cluster);
        let header = |name: &str| {
            call.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header(":path"), Some(path));
        assert_eq!(header("x-tokengate-relayed"), Some("1"));
        assert_eq!(call.body, form(&logout).into_bytes());
        worker.on_call_response(
            &mut host,
            *token,
            &CallResponse {
                status: Some(200),
                body: None,
            },
            NOW,
        );
    }
    assert_eq!(host.metric("tokengate.revocation.relayed"), 2);
    // A relayed logout is not relayed again.
    let relayed = logout_spec(Some("s2"), None, "j-relayed").sign(TestKey::rsa_a());
    assert_eq!(
        post(&mut worker, &mut host, 2, &form(&relayed), true, NOW).status,
        200
    );
    worker.on_wake(&mut host, NOW);
    assert!(host.take_calls().is_empty());
}

#[path = "logout_refusal_tests.rs"]
mod refusals;

#[path = "logout_key_wait_tests.rs"]
mod key_wait;

#[test]
fn a_relay_without_an_answer_or_with_a_5xx_is_sent_again_then_given_up() {
    let with_peer = json!({
        "path": "/backchannel-logout", "audiences": ["app"],
        "peers": [{"cluster": "replica-b", "authority": "b:10000"}]
    });
    let answer = |status: Option<u16>| CallResponse { status, body: None };
    // (answers of the peer to each attempt, relayed, retried, failed)
    let cases: [(&[Option<u16>], i64, i64, i64); 4] = [
        (&[Some(503), Some(200)], 1, 1, 0),
        (&[None, None, Some(200)], 1, 2, 0),
        (&[None, Some(502), None], 0, 2, 1),
        (&[Some(400)], 0, 0, 1),
    ];
    for (answers, relayed, retried, failed) in cases {
        let mut host = FakeHost::new();
        let mut worker = Worker::configure(&mut host, &config(with_peer.clone()), None).unwrap();
        assert!(worker.wants_ticks(), "peers need ticks for retries");
        let logout = logout_spec(Some("s1"), None, "j-relay").sign(TestKey::rsa_a());
        let reply = post(&mut worker, &mut host, 1, &form(&logout), false, NOW);
        assert_eq!(reply.status, 200);
        let mut at = NOW;
        for (attempt, status) in answers.iter().enumerate() {
            let calls = host.take_calls();
            assert_eq!(calls.len(), 1, "{answers:?}: attempt {}", attempt + 1);
            assert_eq!(calls[0].1.body, form(&logout).into_bytes());
            worker.on_call_response(&mut host, calls[0].0, &answer(*status), at);
            // Not before its delay (1 s, then 2 s); on the first tick after it.
            let delay = 1000 << attempt;
            worker.on_tick(
                &mut host,
                Now::from_nanos((at.millis + delay - 1) * 1_000_000),
            );
            assert!(host.take_calls().is_empty(), "{answers:?}: too early");
            at = Now::from_nanos((at.millis + delay) * 1_000_000);
            worker.on_tick(&mut host, at);
        }
        assert!(host.take_calls().is_empty(), "{answers:?}: nothing more");
        assert_eq!(
            (
                host.metric("tokengate.revocation.relayed"),
                host.metric("tokengate.revocation.relay_retried"),
                host.metric("tokengate.revocation.relay_failed"),
            ),
            (relayed, retried, failed),
            "{answers:?}"
        );
    }
}

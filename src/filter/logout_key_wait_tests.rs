//! A logout token this worker has no key for yet: it waits for a fetch of the provider's keys
//! (a replica that has just started, or a rotation it has not seen), is answered when the
//! fetch ends, and gets 503 — never a final 400 — when the keys still are not there.

use super::*;

fn remote_config() -> Vec<u8> {
    json!({
        "issuer": ISSUER,
        "audiences": ["api"],
        "algorithms": ["RS256"],
        "jwks": {"remote": {"cluster": "idp", "authority": "idp", "path": "/certs"}},
        "backchannel_logout": settings(),
    })
    .to_string()
    .into_bytes()
}

fn key_set(kids: &[&str]) -> CallResponse {
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| TestKey::rsa_a().public_jwk(kid, Some("RS256")))
        .collect();
    CallResponse {
        status: Some(200),
        body: Some(jwks(&keys).to_string().into_bytes()),
    }
}

/// POSTs a whole logout body; returns what the worker does with it.
fn post_whole(worker: &mut Worker, host: &mut FakeHost, context_id: u32, token: &str) -> BodyStep {
    start_logout(worker, host, context_id, false, NOW);
    let body = form(token).into_bytes();
    worker.on_request_body(host, context_id, body.len(), true, |_| Some(body), NOW)
}

fn replies(resumptions: &[Resumption]) -> Vec<(u32, u16)> {
    resumptions
        .iter()
        .map(|r| (r.context_id, status(&r.step)))
        .collect()
}

fn header<'r>(reply: &'r DenyResponse, name: &str) -> Option<&'r str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_logout_before_the_first_key_set_waits_for_it_and_is_accepted() {
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &remote_config(), None).unwrap();
    let logout = logout_spec(Some("s1"), Some("alice"), "j1").sign(TestKey::rsa_a());
    assert_eq!(
        post_whole(&mut worker, &mut host, 9, &logout),
        BodyStep::Wait,
        "no keys yet: the logout waits for them"
    );
    let calls = host.take_calls();
    assert_eq!(calls.len(), 1, "one fetch of the keys");
    assert_eq!(calls[0].1.headers[1].1, "/certs");
    assert_eq!(host.metric("tokengate.revocation.received"), 0);
    let resumed = worker.on_call_response(&mut host, calls[0].0, &key_set(&["k1"]), NOW);
    assert_eq!(replies(&resumed), vec![(9, 200)]);
    assert_eq!(host.metric("tokengate.revocation.received"), 1);
    let ended = access_token("s1", "alice", NOW.seconds);
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(1, &ended), later(1))),
        401
    );
    assert_eq!(host.metric("tokengate.denied.session_ended"), 1);
}

#[test]
fn a_logout_joins_the_fetch_already_on_its_way() {
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &remote_config(), None).unwrap();
    worker.on_tick(&mut host, NOW);
    let calls = host.take_calls();
    assert_eq!(calls.len(), 1, "the first scheduled fetch");
    let first = logout_spec(Some("s1"), None, "j1").sign(TestKey::rsa_a());
    let second = logout_spec(Some("s2"), None, "j2").sign(TestKey::rsa_a());
    assert_eq!(
        post_whole(&mut worker, &mut host, 9, &first),
        BodyStep::Wait
    );
    assert_eq!(
        post_whole(&mut worker, &mut host, 10, &second),
        BodyStep::Wait
    );
    assert!(host.take_calls().is_empty(), "no second fetch");
    let resumed = worker.on_call_response(&mut host, calls[0].0, &key_set(&["k1"]), NOW);
    assert_eq!(replies(&resumed), vec![(9, 200), (10, 200)]);
    assert_eq!(host.metric("tokengate.revocation.received"), 2);
}

#[test]
fn without_keys_after_the_fetch_a_logout_gets_503_and_retry_after() {
    for (case, answer) in [
        ("the IdP fails", CallResponse::default()),
        ("the set lacks the key", key_set(&["other"])),
    ] {
        let mut host = FakeHost::new();
        let mut worker = Worker::configure(&mut host, &remote_config(), None).unwrap();
        let logout = logout_spec(Some("s1"), None, "j1").sign(TestKey::rsa_a());
        assert_eq!(
            post_whole(&mut worker, &mut host, 9, &logout),
            BodyStep::Wait
        );
        let (call, _) = host.take_calls().pop().unwrap();
        let resumed = worker.on_call_response(&mut host, call, &answer, NOW);
        let [
            Resumption {
                context_id: 9,
                step: Step::Reply(reply),
            },
        ] = resumed.as_slice()
        else {
            panic!("{case}: one reply: {resumed:?}");
        };
        if answer.status.is_none() {
            assert_eq!(reply.status, 503, "{case}");
            assert_eq!(header(reply, "retry-after"), Some("5"), "{case}");
            let body: Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["error"], "temporarily_unavailable", "{case}");
            assert_eq!(
                host.metric("tokengate.revocation.rejected.keys_unavailable"),
                1,
                "{case}"
            );
            // Sent again once the keys are there, it is accepted.
            worker.on_tick(&mut host, later(60));
            let (call, _) = host.take_calls().pop().expect("the next scheduled fetch");
            worker.on_call_response(&mut host, call, &key_set(&["k1"]), later(60));
            let again = post_whole(&mut worker, &mut host, 11, &logout);
            let BodyStep::Reply(reply) = again else {
                panic!("{case}: answered at once: {again:?}");
            };
            assert_eq!(reply.status, 200, "{case}");
        } else {
            // Keys, but not this one: a final refusal, as for a request with that kid.
            assert_eq!(
                (reply.status, error_of(reply).as_str()),
                (400, "The logout token signing key is unknown"),
                "{case}"
            );
            assert_eq!(header(reply, "retry-after"), None, "{case}");
            assert_eq!(host.metric("tokengate.revocation.rejected.unknown_kid"), 1);
        }
        assert_eq!(
            host.metric("tokengate.revocation.received"),
            u64::from(answer.status.is_none()) as i64
        );
    }
}

#[test]
fn a_logout_signed_with_a_rotated_key_waits_for_one_refetch() {
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &remote_config(), None).unwrap();
    worker.on_tick(&mut host, NOW);
    let (call, _) = host.take_calls().pop().unwrap();
    worker.on_call_response(&mut host, call, &key_set(&["k0"]), NOW);
    let rotated = logout_spec(Some("s1"), None, "j1").sign(TestKey::rsa_a());
    assert_eq!(
        post_whole(&mut worker, &mut host, 9, &rotated),
        BodyStep::Wait
    );
    let calls = host.take_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(host.metric("tokengate.jwks.kid_refetch"), 1);
    let resumed = worker.on_call_response(&mut host, calls[0].0, &key_set(&["k0", "k1"]), NOW);
    assert_eq!(replies(&resumed), vec![(9, 200)]);

    // A forged kid right after is refused at once: the refetch floor holds, as for requests.
    let forged = logout_spec(Some("s2"), None, "j2")
        .header("kid", "forged")
        .sign(TestKey::rsa_a());
    let step = post_whole(&mut worker, &mut host, 10, &forged);
    let BodyStep::Reply(reply) = step else {
        panic!("refused at once: {step:?}");
    };
    assert_eq!(reply.status, 400);
    assert!(host.take_calls().is_empty());
    assert_eq!(host.metric("tokengate.jwks.kid_refetch"), 1);
}

#[test]
fn waiting_logouts_are_bounded() {
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &remote_config(), None).unwrap();
    let bound = u32::try_from(revocations::MAX_PENDING_LOGOUTS).unwrap();
    for i in 0..bound {
        let logout =
            logout_spec(Some(&format!("s{i}")), None, &format!("j{i}")).sign(TestKey::rsa_a());
        assert_eq!(
            post_whole(&mut worker, &mut host, 100 + i, &logout),
            BodyStep::Wait
        );
    }
    let one_more = logout_spec(Some("s-over"), None, "j-over").sign(TestKey::rsa_a());
    let step = post_whole(&mut worker, &mut host, 99, &one_more);
    let BodyStep::Reply(reply) = step else {
        panic!("answered at once: {step:?}");
    };
    assert_eq!(
        reply.status, 503,
        "retryable: nothing about the token was wrong"
    );
    let (call, _) = host.take_calls().pop().unwrap();
    let resumed = worker.on_call_response(&mut host, call, &key_set(&["k1"]), NOW);
    assert_eq!(resumed.len(), bound as usize);
    assert!(resumed.iter().all(|r| status(&r.step) == 200));
}

#[test]
fn a_logout_waits_on_another_workers_fetch_and_hears_on_a_tick() {
    for answered in [true, false] {
        let mut fetching_host = FakeHost::new();
        let mut host = fetching_host.sharing();
        let mut fetching = Worker::configure(&mut fetching_host, &remote_config(), None).unwrap();
        let mut worker = Worker::configure(&mut host, &remote_config(), None).unwrap();
        fetching.on_tick(&mut fetching_host, NOW);
        let (call, _) = fetching_host.take_calls().pop().unwrap();
        let logout = logout_spec(Some("s1"), None, "j1").sign(TestKey::rsa_a());
        assert_eq!(
            post_whole(&mut worker, &mut host, 9, &logout),
            BodyStep::Wait
        );
        assert!(
            host.take_calls().is_empty(),
            "the other worker's fetch serves"
        );
        assert!(
            worker.on_tick(&mut host, later(0)).is_empty(),
            "nothing yet"
        );
        let resumed = if answered {
            fetching.on_call_response(&mut fetching_host, call, &key_set(&["k1"]), NOW);
            worker.on_tick(&mut host, later(0))
        } else {
            // The other worker's fetch is lost: past a fetch's deadline the logout is answered.
            let resumed = worker.on_tick(&mut host, later(60));
            let _ = host.take_calls();
            resumed
        };
        let expected = if answered { 200 } else { 503 };
        assert_eq!(
            replies(&resumed),
            vec![(9, expected)],
            "answered: {answered}"
        );
    }
}

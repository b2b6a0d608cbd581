//! What the back-channel logout endpoint refuses: every forged or malformed logout token, bodies
//! and methods it does not take, a logout given up while waiting, and bad configuration of the
//! endpoint.

use super::*;

#[test]
fn forged_logout_tokens_get_400_and_revoke_nothing() {
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &config(settings()), None).unwrap();
    let valid = || logout_spec(Some("s1"), Some("alice"), "j");
    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "signed by another key",
            valid().sign(TestKey::rsa_b()),
            "The logout token signature is invalid",
        ),
        (
            "another audience",
            valid().claim("aud", "other-client").sign(TestKey::rsa_a()),
            "The logout token audience is not accepted",
        ),
        (
            "another issuer",
            valid().claim("iss", "http://evil").sign(TestKey::rsa_a()),
            "The logout token issuer is not accepted",
        ),
        (
            "no events",
            valid().without_claim("events").sign(TestKey::rsa_a()),
            "The logout token has no back-channel logout event",
        ),
        (
            "another event",
            valid()
                .claim("events", json!({"urn:other": {}}))
                .sign(TestKey::rsa_a()),
            "The logout token has no back-channel logout event",
        ),
        (
            "aud mixing strings and numbers",
            valid()
                .claim("aud", json!(["app", 7]))
                .sign(TestKey::rsa_a()),
            "The logout token is malformed",
        ),
        (
            "sid of the wrong type",
            valid().claim("sid", 7).sign(TestKey::rsa_a()),
            "The logout token is malformed",
        ),
        (
            "crit, even null (RFC 7515 §4.1.11: an array of names when present)",
            valid().header("crit", Value::Null).sign(TestKey::rsa_a()),
            "The logout token is malformed",
        ),
        (
            "crit naming an extension",
            valid()
                .header("crit", json!(["exp"]))
                .sign(TestKey::rsa_a()),
            "The logout token is malformed",
        ),
        (
            "b64 null",
            valid().header("b64", Value::Null).sign(TestKey::rsa_a()),
            "The logout token is malformed",
        ),
        (
            "a nonce",
            valid().claim("nonce", "n-0S6").sign(TestKey::rsa_a()),
            "The logout token carries a nonce",
        ),
        (
            "no jti",
            valid().without_claim("jti").sign(TestKey::rsa_a()),
            "The logout token has no jti",
        ),
        (
            "neither sid nor sub",
            valid()
                .without_claim("sid")
                .without_claim("sub")
                .sign(TestKey::rsa_a()),
            "The logout token names no session and no subject",
        ),
        (
            "too old",
            valid()
                .claim("iat", NOW.seconds - 600)
                .claim("exp", NOW.seconds + 60)
                .sign(TestKey::rsa_a()),
            "The logout token is too old or not yet valid",
        ),
        (
            "from the future",
            valid()
                .claim("iat", NOW.seconds + 600)
                .sign(TestKey::rsa_a()),
            "The logout token is too old or not yet valid",
        ),
        (
            "an access token posted as a logout token",
            access_token("s1", "alice", NOW.seconds),
            "The token is not a logout token",
        ),
        (
            "not a JWT",
            "garbage".to_owned(),
            "The logout token is malformed",
        ),
        (
            "alg none",
            valid().header("alg", "none").with_signature_segment(""),
            "The logout token signing algorithm is not allowed",
        ),
    ];
    cases.push((
        "no logout_token",
        String::new(),
        "The request carries no single logout_token",
    ));
    for (index, (case, token, description)) in cases.into_iter().enumerate() {
        let body = if token.is_empty() {
            "x=1".to_owned()
        } else {
            form(&token)
        };
        let reply = post(
            &mut worker,
            &mut host,
            100 + index as u32,
            &body,
            false,
            NOW,
        );
        assert_eq!(
            (reply.status, error_of(&reply)),
            (400, description.to_owned()),
            "{case}"
        );
        assert!(
            reply
                .headers
                .contains(&("cache-control", "no-store".to_owned())),
            "{case}"
        );
    }
    assert_eq!(host.metric("tokengate.revocation.received"), 0);
    assert_eq!(
        host.metric("tokengate.revocation.rejected.bad_signature"),
        1
    );
    let kept = access_token("s1", "alice", NOW.seconds);
    assert_eq!(
        status(&worker.on_request(&mut host, api_request(1, &kept), NOW)),
        200,
        "nothing revoked"
    );

    // An oversize body, a GET, and a POST without a body.
    let huge = "x".repeat(20_000);
    let mut request = Request::with_headers(vec![
        (":path".to_owned(), b"/backchannel-logout".to_vec()),
        (":method".to_owned(), b"POST".to_vec()),
    ]);
    request.body_follows = true;
    assert_eq!(
        worker.on_request(&mut host, Waiter::new(7, request.clone()), NOW),
        Step::ReadBody
    );
    let BodyStep::Reply(reply) =
        worker.on_request_body(&mut host, 7, huge.len(), false, |_| None, NOW)
    else {
        panic!("refused at once");
    };
    assert_eq!(
        (reply.status, error_of(&reply).as_str()),
        (400, "The request body is too large")
    );
    request.body_follows = false;
    assert_eq!(
        status(&worker.on_request(&mut host, Waiter::new(8, request.clone()), NOW)),
        400
    );
    request.headers[1].1 = b"GET".to_vec();
    let Step::Reply(reply) = worker.on_request(&mut host, Waiter::new(9, request), NOW) else {
        panic!("a reply");
    };
    assert_eq!(reply.status, 405);
    assert!(reply.headers.contains(&("allow", "POST".to_owned())));
    // Other requests' bodies pass through.
    assert_eq!(
        worker.on_request_body(&mut host, 12345, 10, true, |_| None, NOW),
        BodyStep::Continue
    );
}

#[test]
fn configuration_of_the_endpoint() {
    let cases = [
        (
            json!({"path": "bcl", "audiences": ["a"]}),
            "backchannel_logout.path",
        ),
        (json!({"path": "/bcl"}), "backchannel_logout.audiences"),
        (
            json!({"path": "/bcl", "audiences": [""]}),
            "backchannel_logout.audiences[0]",
        ),
        (
            json!({"path": "/bcl", "audiences": ["a"], "max_entries": 0}),
            "backchannel_logout.max_entries",
        ),
        (
            json!({"audiences": ["a"], "peers": [{"cluster": "c", "authority": "a"}]}),
            "backchannel_logout.peers[0].path",
        ),
        (
            json!({"path": "/bcl", "audiences": ["a"], "when_full": "panic"}),
            "backchannel_logout.when_full",
        ),
    ];
    for (settings, field) in cases {
        let err = crate::config::parse(&config(settings.clone())).unwrap_err();
        assert_eq!(err.field, field, "{settings}: {err}");
    }
}

#[test]
fn a_logout_given_up_while_waiting_is_refused_when_its_body_comes() {
    let mut host = FakeHost::new();
    let mut worker = Worker::configure(&mut host, &config(settings()), None).unwrap();
    // One more than the worker waits for: the first is given up.
    let waiting = u32::try_from(revocations::MAX_PENDING_LOGOUTS).unwrap();
    for context_id in 0..=waiting {
        start_logout(&mut worker, &mut host, 1000 + context_id, false, NOW);
    }
    let logout = logout_spec(Some("s-late"), None, "j-late").sign(TestKey::rsa_a());
    let body = form(&logout);
    let late = worker.on_request_body(
        &mut host,
        1000,
        body.len(),
        true,
        |_| Some(body.clone().into_bytes()),
        NOW,
    );
    let BodyStep::Reply(reply) = late else {
        panic!("a given-up logout's body must be answered, not passed on: {late:?}");
    };
    assert_eq!(reply.status, 400);
    assert_eq!(
        error_of(&reply),
        "Too many logout requests were waiting; send it again"
    );
    assert_eq!(host.metric("tokengate.revocation.rejected.busy"), 1);
    // Those still waiting are served.
    let body_step = worker.on_request_body(
        &mut host,
        1001,
        body.len(),
        true,
        |_| Some(body.clone().into_bytes()),
        NOW,
    );
    assert!(
        matches!(body_step, BodyStep::Reply(DenyResponse { status: 200, .. })),
        "{body_step:?}"
    );
}

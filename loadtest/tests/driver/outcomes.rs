//! What the driver records of each response and failure: sampled unexpected responses,
//! classifiers and sources, refused connections, silent targets.

use super::*;

#[test]
fn unexpected_responses_are_sampled_with_request_ids() {
    let _serial = serial();
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let server_seen = Arc::clone(&seen);
    let server = start_server(move |request| {
        let seen = Arc::clone(&server_seen);
        async move {
            if let Some(id) = request.headers().get("x-request-id")
                && let Ok(id) = id.to_str()
            {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.to_string());
            }
            // Odd requests are refused: the scenario expected 200s.
            match request_index(&request) {
                Some(i) if i % 2 == 1 => {
                    let mut response = ok_response(StatusCode::UNAUTHORIZED);
                    response.headers_mut().insert(
                        "www-authenticate",
                        "Bearer realm=\"api\", error=\"invalid_token\""
                            .parse()
                            .expect("header"),
                    );
                    response
                }
                _ => ok_response(StatusCode::OK),
            }
        }
    });
    let mut config = open(server.addr, 200.0, 200, 1_000);
    config.label = "gap".into();
    let result = driver::run(&config, get("/api"), expect_200()).expect("run");
    check_invariants(&result);

    assert!(result.completed >= 190, "{result:#?}");
    assert!(result.unexpected.abs_diff(result.expected) <= 1);
    assert_eq!(result.status_counts.get(&401), Some(&result.unexpected));
    let samples = &result.unexpected_samples;
    assert_eq!(samples.len(), driver::SAMPLE_LIMIT);
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    for pair in samples.windows(2) {
        assert!(pair[0].index < pair[1].index);
    }
    for sample in samples {
        assert_eq!(sample.status, 401);
        assert_eq!(sample.index % 2, 1);
        // Warm-up requests (indices < 40) are not part of the result.
        assert!(sample.index >= 40, "{sample:?}");
        assert_eq!(sample.request_id, format!("gap-{}", sample.index));
        assert!(
            seen.contains(&sample.request_id),
            "{} not seen by the server",
            sample.request_id
        );
        assert_eq!(
            sample.www_authenticate.as_deref(),
            Some("Bearer realm=\"api\", error=\"invalid_token\"")
        );
    }
    // Unexpected responses are not transport errors, and do not make the
    // measurement invalid: they are the finding.
    assert_eq!(result.errors.total(), 0);
}

#[test]
fn index_aware_classifier_and_round_robin_sources() {
    let _serial = serial();
    let (_backend, addr) = backend();

    /// Expects 200 for even indices and 401 for odd ones: against the
    /// backend (always 200) every odd request is a "gap".
    struct Alternating;
    impl driver::Classifier for Alternating {
        fn classify(&self, _status: u16, _headers: &HeaderMap) -> Outcome {
            Outcome::Expected
        }
        fn classify_request(&self, index: u64, status: u16, _headers: &HeaderMap) -> Outcome {
            let expected = if index.is_multiple_of(2) { 200 } else { 401 };
            if status == expected {
                Outcome::Expected
            } else {
                Outcome::Unexpected
            }
        }
    }

    let templates = RoundRobin::new(vec![
        RequestTemplate::get("/valid").expect("template"),
        RequestTemplate::get("/expired").expect("template"),
    ])
    .expect("round robin");
    let mut config = open(addr, 300.0, 0, 1_000);
    config.threads = 2;
    let result = driver::run(&config, Arc::new(templates), Arc::new(Alternating)).expect("run");
    check_invariants(&result);
    assert!((299..=301).contains(&result.scheduled), "{result:#?}");
    assert!(
        result.unexpected.abs_diff(result.expected) <= 1,
        "{result:#?}"
    );
    for sample in &result.unexpected_samples {
        assert_eq!(sample.index % 2, 1);
        assert_eq!(sample.status, 200);
        assert_eq!(sample.www_authenticate, None);
    }
}

#[test]
fn connection_refused_counts_connect_errors_and_ends_on_time() {
    let _serial = serial();
    // A port nothing listens on: bound, then released.
    let addr = {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let mut config = open(addr, 200.0, 200, 1_000);
    config.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    let elapsed = started.elapsed();
    check_invariants(&result);

    assert!(result.sent > 0);
    assert_eq!(result.errors.connect, result.sent, "{result:#?}");
    assert_eq!(result.completed, 0);
    assert_eq!(result.connections_opened, 0);
    assert!(elapsed < config.max_run_time() + Duration::from_millis(1_500));
    let reasons = reasons(&result.validity(&Thresholds::default()));
    assert!(
        reasons.iter().any(|r| r.contains("no request completed")),
        "{reasons:?}"
    );

    // Closed loop too: errors counted, no spinning past the end.
    let mut closed = DriverConfig::closed_loop(addr, 4);
    closed.warmup = Duration::from_millis(100);
    closed.duration = Duration::from_millis(500);
    closed.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let result = driver::run(&closed, get("/"), expect_200()).expect("run");
    check_invariants(&result);
    assert!(result.errors.connect > 0);
    // 10 ms back-off per failed connect and connection.
    assert!(result.errors.connect <= 4 * 60, "{:?}", result.errors);
    assert!(started.elapsed() < closed.max_run_time() + Duration::from_millis(1_500));
}

#[test]
fn runs_against_a_silent_target_end_within_warmup_duration_and_timeout() {
    let _serial = serial();
    let server = start_silent_server();

    let mut config = open(server.addr, 50.0, 300, 1_000);
    config.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    let elapsed = started.elapsed();
    check_invariants(&result);
    assert_eq!(result.completed, 0);
    assert!((49..=51).contains(&result.sent), "{result:#?}");
    assert_eq!(result.errors.timeout, result.sent, "{result:#?}");
    // Requests sent at the very end get their full timeout.
    assert!(elapsed >= config.warmup + config.duration + Duration::from_millis(900));
    assert!(elapsed < config.max_run_time() + Duration::from_millis(1_500));

    let mut closed = DriverConfig::closed_loop(server.addr, 3);
    closed.warmup = Duration::from_millis(200);
    closed.duration = Duration::from_millis(500);
    closed.timeout = Duration::from_millis(400);
    let started = Instant::now();
    let result = driver::run(&closed, get("/"), expect_200()).expect("run");
    let elapsed = started.elapsed();
    check_invariants(&result);
    assert_eq!(result.completed, 0);
    assert!(result.errors.timeout >= 3, "{result:#?}");
    assert!(elapsed < closed.max_run_time() + Duration::from_millis(1_500));
}

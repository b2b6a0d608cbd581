//! The open loop against the backend and against targets that stall: its rate, dropped
//! arrivals, queueing in the corrected latency.

use super::*;

#[test]
fn open_loop_at_500_rps_against_the_backend() {
    let _serial = serial();
    let (_backend, addr) = backend();
    let mut config = open(addr, 500.0, 500, 2_000);
    config.label = "t500".into();
    let source = Arc::new(
        RequestTemplate::get("/api/items?page=1")
            .and_then(|t| t.header("authorization", "Bearer not-a-real-token"))
            .expect("template"),
    );
    let result = driver::run(&config, source, expect_200()).expect("run");
    eprintln!("{}", serde_json::to_string_pretty(&result).expect("json"));
    check_invariants(&result);

    assert!((999..=1001).contains(&result.scheduled), "{result:#?}");
    assert_eq!(result.dropped, 0);
    assert_eq!(result.errors.total(), 0, "{:?}", result.errors);
    assert!(result.achieved_rate >= 475.0, "{}", result.achieved_rate);
    assert_eq!(result.unexpected, 0);
    assert_eq!(result.expected, result.completed);
    assert_eq!(result.status_counts.get(&200), Some(&result.completed));
    assert_eq!(result.schedule_lag.count, result.sent);

    // Smallest possible request: request line, host, x-request-id, and the
    // authorization header; the smallest response: a status line and the
    // blank line. Neither can be over a few hundred bytes here.
    let min_request = format!(
        "GET /api/items?page=1 HTTP/1.1\r\nauthorization: Bearer not-a-real-token\r\nhost: {addr}\r\nx-request-id: t500-250\r\n\r\n"
    )
    .len() as u64;
    let min_response = "HTTP/1.1 200 OK\r\n\r\n".len() as u64;
    assert!(result.bytes_sent >= result.completed * min_request);
    assert!(result.bytes_sent <= result.sent * 512);
    assert!(result.bytes_received >= result.completed * min_response);
    assert!(result.bytes_received <= result.sent * 2048);
    assert!(result.sent_kib_per_sec > 0.0 && result.received_kib_per_sec > 0.0);
    // A few connections suffice at 500 req/s with sub-ms answers.
    assert!(result.connections_opened >= 1 && result.connections_opened < 64);

    let json = serde_json::to_value(&result).expect("json");
    for key in [
        "target_rate",
        "scheduled",
        "sent",
        "completed",
        "dropped",
        "errors",
        "status_counts",
        "expected",
        "unexpected",
        "unexpected_samples",
        "latency_corrected",
        "latency_uncorrected",
        "schedule_lag",
        "bytes_sent",
        "bytes_received",
        "window_secs",
        "achieved_rate",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["status_counts"]["200"], result.completed);
    assert!(json["latency_corrected"]["p99_us"].as_u64().is_some());
}

#[test]
fn stalled_target_drops_arrivals_and_is_invalid() {
    let _serial = serial();
    let server = start_server(|_request| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ok_response(StatusCode::OK)
    });
    let mut config = open(server.addr, 100.0, 0, 2_000);
    config.timeout = Duration::from_secs(2);
    open_mut(&mut config).max_in_flight = 4;
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    check_invariants(&result);

    // 4 connections × ~3.3 answers/s cannot carry 100 req/s.
    assert!(result.dropped > 100, "{result:#?}");
    assert!(result.completed >= 4, "{result:#?}");
    assert!(result.latency_uncorrected.p50_us >= 300_000);
    assert!(result.latency_corrected.p99_us > 300_000);

    let validity = result.validity(&Thresholds::default());
    let reasons = reasons(&validity);
    assert!(!validity.is_valid());
    assert!(reasons.iter().any(|r| r.contains("dropped")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("achieved")),
        "{reasons:?}"
    );
}

#[test]
fn stalled_target_with_backlog_shows_queueing_in_corrected_latency() {
    let _serial = serial();
    let server = start_server(|_request| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ok_response(StatusCode::OK)
    });
    let mut config = open(server.addr, 50.0, 0, 2_000);
    config.timeout = Duration::from_secs(1);
    let load = open_mut(&mut config);
    load.max_in_flight = 2;
    load.backlog = 1_000;
    let started = Instant::now();
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    let elapsed = started.elapsed();
    check_invariants(&result);

    // Arrivals wait for one of two connections: each answer takes 300 ms,
    // but the corrected latency counts the wait since the due time too.
    let (c, u) = (&result.latency_corrected, &result.latency_uncorrected);
    assert!(u.p99_us >= 300_000 && u.p99_us < 700_000, "{u:?}");
    assert!(
        c.p99_us > 2 * u.p99_us,
        "corrected {c:?} vs uncorrected {u:?}"
    );
    assert!(result.schedule_lag.p99_us > 300_000);
    // What was still queued when the straggler allowance ran out.
    assert!(result.dropped > 0);
    let reasons = reasons(&result.validity(&Thresholds::default()));
    assert!(reasons.iter().any(|r| r.contains("lag")), "{reasons:?}");
    assert!(elapsed < config.max_run_time() + Duration::from_millis(1_500));
}

//! The closed loop, preconnected connections, merged results and refused configs.

use super::*;

#[test]
fn closed_loop_against_the_backend() {
    let _serial = serial();
    let (_backend, addr) = backend();
    let mut config = DriverConfig::closed_loop(addr, 4);
    config.warmup = Duration::from_millis(200);
    config.duration = Duration::from_millis(1_000);
    config.label = "closed".into();
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    check_invariants(&result);
    assert!(result.completed > 100, "{result:#?}");
    assert_eq!(result.errors.total(), 0);
    assert_eq!(result.scheduled, result.sent);
    assert_eq!(result.connections_opened, 4);
    assert!(result.target_rate.is_none());
    assert_eq!(result.latency(), &result.latency_uncorrected);
    assert!(result.validity(&Thresholds::default()).is_valid());
}

#[test]
fn preconnected_connections_take_turns() {
    let _serial = serial();
    let (_backend, addr) = backend();
    let mut config = open(addr, 100.0, 0, 500);
    open_mut(&mut config).preconnect = 3;
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    check_invariants(&result);
    assert_eq!(result.completed, 50, "{result:#?}");
    // 10 ms between arrivals, sub-ms answers: the three preconnected
    // connections are enough, and none needed opening on demand.
    assert_eq!(result.connections_opened, 3, "{result:#?}");
}

#[test]
fn results_merge_across_runs() {
    let _serial = serial();
    let (_backend, addr) = backend();
    let config = open(addr, 200.0, 0, 500);
    let first = driver::run(&config, get("/"), expect_200()).expect("run");
    let second = driver::run(&config, get("/"), expect_200()).expect("run");
    let mut merged = first.clone();
    merged.merge(&second).expect("merge");
    check_invariants(&merged);
    assert_eq!(merged.completed, first.completed + second.completed);
    assert_eq!(
        merged.histograms().corrected.len(),
        first.histograms().corrected.len() + second.histograms().corrected.len()
    );
    assert_eq!(merged.latency_corrected.count, merged.completed);
    assert!((merged.window_secs - 1.0).abs() < 1e-9);
    assert_eq!(merged.target_rate, Some(200.0));
    assert!(merged.latency_corrected.max_us >= first.latency_corrected.max_us);
}

#[test]
fn invalid_configs_are_refused() {
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let cases: Vec<DriverConfig> = vec![
        {
            let mut c = open(addr, 0.0, 0, 1_000);
            c.label = "x".into();
            c
        },
        {
            let mut c = open(addr, 10.0, 0, 1_000);
            c.label = "has space".into();
            c
        },
        open(addr, 10.0, 0, 0),
        {
            let mut c = open(addr, 10.0, 0, 1_000);
            c.threads = 4;
            open_mut(&mut c).max_in_flight = 2;
            c
        },
        {
            let mut c = open(addr, 10.0, 0, 1_000);
            c.timeout = Duration::ZERO;
            c
        },
        DriverConfig::closed_loop(addr, 0),
    ];
    for config in cases {
        assert!(
            driver::run(&config, get("/"), expect_200()).is_err(),
            "{config:?}"
        );
    }
    assert!(RequestTemplate::get("no-slash").is_err());
    assert!(RoundRobin::new(Vec::new()).is_err());
}

// ---- Measurements (ignored: they take minutes and print figures) ----

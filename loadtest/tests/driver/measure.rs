//! The ignored `measure_*` runs that print the driver's own figures on this machine.

use super::*;

fn summary_line(result: &RunResult) -> String {
    let lag = &result.schedule_lag;
    let c = &result.latency_corrected;
    let u = &result.latency_uncorrected;
    format!(
        "target {:>6} achieved {:>8.1} cpu {:>4.0}% dropped {:>5} err {:>4} | lag p50 {:>4} p99 {:>5} p99.9 {:>5} max {:>6} µs | corr p50 {:>5} p99 {:>6} | uncorr p50 {:>5} p99 {:>6} µs | conns {}",
        result.target_rate.unwrap_or(0.0),
        result.achieved_rate,
        100.0 * result.driver_cpu_secs / result.elapsed_secs,
        result.dropped,
        result.errors.total(),
        lag.p50_us,
        lag.p99_us,
        lag.p999_us,
        lag.max_us,
        c.p50_us,
        c.p99_us,
        u.p50_us,
        u.p99_us,
        result.connections_opened,
    )
}

fn rates_from_env(default: &[f64]) -> Vec<f64> {
    std::env::var("DRIVER_RATES")
        .ok()
        .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Lag and latency of one driver thread against the backend binary (one
/// worker thread) at increasing rates. `DRIVER_RATES=1000,5000` overrides
/// the rates, `DRIVER_SECS` the window (default 10 s), `DRIVER_SPIN_US` sets
/// `OpenLoop::spin`, `DRIVER_TARGET` an already running target.
#[test]
#[ignore]
fn measure_open_loop_lag() {
    let _serial = serial();
    let (_backend, addr) = target_from_env();
    let secs = env_number("DRIVER_SECS", 10) as u64;
    for rate in rates_from_env(&[1_000.0, 2_000.0, 3_000.0, 5_000.0, 8_000.0, 10_000.0]) {
        let mut config = open(addr, rate, 2_000, secs * 1_000);
        config.label = format!("lag{rate}");
        if let Ok(spin) = std::env::var("DRIVER_SPIN_US") {
            open_mut(&mut config).spin =
                Duration::from_micros(spin.parse().expect("DRIVER_SPIN_US is a number"));
        }
        let result = driver::run(&config, get("/"), expect_200()).expect("run");
        println!(
            "{} | {:?}",
            summary_line(&result),
            result.validity(&Thresholds::default())
        );
    }
}

/// Closed-loop maximum throughput with 16 connections (`DRIVER_CONNECTIONS`)
/// against the backend binary (one worker thread), to compare with
/// `wrk -t1 -c16` against the same backend (`DRIVER_TARGET=127.0.0.1:PORT`
/// to use one started by hand).
#[test]
#[ignore]
fn measure_closed_loop_max() {
    let _serial = serial();
    let (_backend, addr) = target_from_env();
    let connections = env_number("DRIVER_CONNECTIONS", 16);
    let threads = env_number("DRIVER_THREADS", 1);
    let mut config = DriverConfig::closed_loop(addr, connections);
    config.threads = threads;
    config.warmup = Duration::from_secs(2);
    config.duration = Duration::from_secs(env_number("DRIVER_SECS", 10) as u64);
    let result = driver::run(&config, get("/"), expect_200()).expect("run");
    let u = &result.latency_uncorrected;
    println!(
        "closed loop, {connections} connections, {threads} driver thread(s): {:.0} req/s, driver cpu {:.0} %, p50 {} µs, p99 {} µs, max {} µs, errors {}, {:.0} KiB/s received",
        result.achieved_rate,
        100.0 * result.driver_cpu_secs / result.elapsed_secs,
        u.p50_us,
        u.p99_us,
        u.max_us,
        result.errors.total(),
        result.received_kib_per_sec,
    );
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `DRIVER_TARGET` if set, else a fresh backend binary with one thread.
fn target_from_env() -> (Option<ManagedProcess>, SocketAddr) {
    match std::env::var("DRIVER_TARGET") {
        Ok(addr) => (None, addr.parse().expect("DRIVER_TARGET is host:port")),
        Err(_) => {
            let (process, addr) = backend();
            (Some(process), addr)
        }
    }
}

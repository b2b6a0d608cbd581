//! The table, the differences between scenarios, and the JSON file.

use super::*;

pub(crate) fn print_table(results: &[ScenarioResult]) {
    println!();
    println!(
        "{:<20} {:>9} {:>9} {:>13} {:>10} {:>11} {:>12} {:>10} {:>11} {:>11}  rounds µs/req",
        "scenario",
        "requests",
        "req/s",
        "envoy µs/req",
        "envoy cpu",
        "client cpu",
        "backend cpu",
        "other cpu",
        "unexpected",
        "cache hits"
    );
    for r in results {
        let m = &r.measurement;
        let cache = r.cache.map_or_else(
            || "-".to_owned(),
            |c| format!("{:.1}%", c.hit_share() * 100.0),
        );
        let rounds = r
            .rounds_us
            .iter()
            .map(|us| format!("{us:.1}"))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "{:<20} {:>9} {:>9.0} {:>13.1} {:>9.1}% {:>10.1}% {:>11.1}% {:>9.1}% {:>11} {:>11}  {}",
            r.name,
            r.requests(),
            r.requests_per_second(),
            r.envoy_us_per_request(),
            m.envoy.process_share() * 100.0,
            m.envoy.own_share() * 100.0,
            m.backend.process_share() * 100.0,
            r.other_share() * 100.0,
            r.bad(),
            cache,
            rounds
        );
    }
    println!();
    println!(
        "CPU % is of one core over the measured window ({} cores here); \"other cpu\" is machine \
         time charged to none of the three\n(softirq loopback networking, other processes: high \
         means a noisy machine); \"unexpected\" counts responses (warm-up\nand window) whose \
         status was not the expected one, plus transport errors; \"cache hits\" is the \
         verified-token\ncache's hit share over the whole scenario.",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    print_differences(results);
    for r in results.iter().filter(|r| r.bad() > 0) {
        let t = &r.measurement.tally;
        let mut statuses = t.warmup.unexpected.clone();
        for (status, count) in &t.measured.unexpected {
            *statuses.entry(*status).or_default() += count;
        }
        eprintln!(
            "WARNING {}: expected every status to be {}, got {:?} (status: count) and {} \
             transport errors",
            r.name,
            r.expected_status,
            statuses,
            t.warmup.transport_errors + t.measured.transport_errors
        );
    }
}

/// The comparisons the scenarios exist for, where both sides ran.
pub(crate) fn print_differences(results: &[ScenarioResult]) {
    const PAIRS: &[(&str, &str, &str)] = &[
        (
            "passthrough",
            "no-auth",
            "a wasm filter that reads the token header and the clock",
        ),
        (
            "passthrough-sdk",
            "passthrough",
            "the proxy-wasm Rust SDK's dispatcher, over the hand-bound ABI",
        ),
        (
            "jwt-repeated",
            "passthrough",
            "tokengate on a cached token, over the floor",
        ),
        (
            "jwt-repeated-bare",
            "passthrough",
            "the cached-token decision alone (no claim headers)",
        ),
        (
            "jwt-repeated",
            "jwt-repeated-bare",
            "forwarding four claims as headers",
        ),
        (
            "portable-repeated",
            "jwt-repeated",
            "the portable build (no SIMD) on a cached token",
        ),
        (
            "portable-unique",
            "jwt-unique",
            "the portable build (integer RSA kernel) on unique tokens",
        ),
        (
            "jwt-unique",
            "jwt-repeated",
            "a full RS256 validation, over a cache hit",
        ),
        (
            "jwt-unique",
            "native-jwt-unique",
            "tokengate vs jwt_authn, unique tokens",
        ),
        (
            "jwt-unique-sub",
            "native-jwt-unique",
            "tokengate vs jwt_authn, unique tokens, both forwarding only sub",
        ),
        (
            "jwt-repeated",
            "native-jwt-repeated",
            "tokengate vs jwt_authn, cached token",
        ),
        (
            "policy-repeated",
            "jwt-repeated",
            "a 3-provider policy, 10th rule of 10, on a cached token",
        ),
        (
            "jwt-bcl-repeated",
            "jwt-repeated",
            "back-channel logout with 1000 sessions ended, on a cached token",
        ),
        (
            "jwt-es256",
            "native-jwt-es256",
            "tokengate vs jwt_authn, unique ES256 tokens",
        ),
        (
            "jwt-eddsa",
            "native-jwt-eddsa",
            "tokengate vs jwt_authn, unique EdDSA tokens",
        ),
    ];
    let us = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .map(ScenarioResult::envoy_us_per_request)
            .filter(|us| us.is_finite())
    };
    let lines: Vec<String> = PAIRS
        .iter()
        .filter_map(|(a, b, what)| {
            let difference = us(a)? - us(b)?;
            Some(format!(
                "  {:<40} {difference:>+7.1} µs  {what}",
                format!("{a} - {b}")
            ))
        })
        .collect();
    if !lines.is_empty() {
        println!();
        println!("differences in Envoy CPU per request:");
        for line in lines {
            println!("{line}");
        }
    }
}

pub(crate) fn target_dir() -> PathBuf {
    let root = loadtest::paths::repo_root();
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

pub(crate) fn write_json(
    path: &Path,
    options: &Options,
    prerequisites: &Prerequisites,
    wasm: &WasmSnapshot,
    modules: &BTreeMap<Wasm, WasmSnapshot>,
    tokens: &TokenSets,
    results: &[ScenarioResult],
) -> Result<()> {
    let report = json!({
        "benchmark": "envoy_cpu",
        "unix_time": unix_now(),
        "envoy_workers": 1,
        "envoy_binary": prerequisites.envoy.display().to_string(),
        "wasm_path": prerequisites.wasm.display().to_string(),
        "wasm_bytes": wasm.bytes,
        "wasm_snapshot": wasm.path.display().to_string(),
        "other_wasm_bytes": modules
            .iter()
            .map(|(wasm, snapshot)| (wasm.file_name().to_owned(), json!(snapshot.bytes)))
            .collect::<serde_json::Map<String, Value>>(),
        "backend_binary": prerequisites.backend.display().to_string(),
        "backend_threads": BACKEND_THREADS,
        "clock_ticks_per_second": clock_ticks_per_second()?,
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "window_s": options.window.as_secs_f64(),
        "warmup_s": options.warmup.as_secs_f64(),
        "connections": options.connections,
        "rounds": options.rounds,
        "direct_response": options.direct_response,
        "token_mint_s": tokens.mint_time.map(|d| d.as_secs_f64()),
        "scenarios": results.iter().map(ScenarioResult::to_json).collect::<Vec<_>>(),
    });
    if let Some(parent) = path.parent() {
        loadtest::paths::ensure_dir(parent)?;
    }
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

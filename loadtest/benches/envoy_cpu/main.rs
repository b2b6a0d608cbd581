//! Envoy CPU time per request at one Envoy worker, for each gateway side by side.
//!
//! Every scenario starts its own Envoy (`--concurrency 1`) in front of one shared backend and a
//! local JWKS server, drives it closed-loop over keep-alive HTTP/1.1 connections until the worker
//! is busy (the load driver's closed-loop mode, `loadtest::driver`), and divides the Envoy
//! process's CPU time (utime + stime from `/proc/<pid>/stat`) over the driver's measured window
//! by the requests made in that window.
//!
//! ```text
//! scripts/build-filter both
//! cargo build --release --target wasm32-wasip1 -p passthrough -p passthrough-sdk
//! cargo build --release -p loadtest --bins
//! CARGO_PROFILE_RELEASE_PANIC=unwind cargo bench -p loadtest --bench envoy_cpu [-- --only jwt-unique,no-auth --window 10]
//! CARGO_PROFILE_RELEASE_PANIC=unwind cargo bench -p loadtest --bench envoy_cpu -- --help
//! ```
//!
//! `CARGO_PROFILE_RELEASE_PANIC=unwind`: the bench links the tokengate library (its test
//! keys), whose release profile aborts on panic; a bench build unwinds, and without the override
//! cargo builds the library twice into one file name and fails with E0460.
//!
//! Options (flags win over the environment):
//!
//! | flag | environment | default |
//! | --- | --- | --- |
//! | `--only LIST` (comma-separated scenarios; names after the flags add to it) | `ENVOY_CPU_ONLY` | all |
//! | `--window SECS` (measured window) | `ENVOY_CPU_WINDOW` | 5 |
//! | `--warmup SECS` | `ENVOY_CPU_WARMUP` | 1 |
//! | `--connections N` | `ENVOY_CPU_CONNECTIONS` | 16 |
//! | `--tokens N` (distinct tokens for the unique scenarios) | `ENVOY_CPU_TOKENS` | 12000 |
//! | `--rounds N` (the scenario list N times, interleaved; each scenario reports its median round and the spread) | `ENVOY_CPU_ROUNDS` | 1 |
//! | `--direct-response` (Envoy answers 200 itself, no backend: only the filters' and Envoy's own work per request) | `ENVOY_CPU_DIRECT_RESPONSE` (any value but `0`) | off |
//!
//! The load comes from this process: the load driver's closed loop (`loadtest::driver`) on one
//! driver thread, each connection a keep-alive `hyper::client::conn::http1` one with one request
//! in flight, every request carrying the driver's `x-request-id`. Requests belong to the window
//! by their start; a sampler thread takes the CPU times over the same window (`load.rs`). Each
//! scenario waits until its gateway has keys and answers a valid request, warms up, measures,
//! and counts every response whose status is not the expected one (200; 401 for the tampered
//! tokens). The unique-token scenarios cycle through more distinct tokens than tokengate's cache
//! (4096) and jwt_authn's (10000) hold, so every request is a full RS256 verification; the
//! `cache hits` column shows that it was.
//!
//! The `passthrough` scenario is the floor of any wasm token filter: the `jwt` gateway rendered
//! from the same template (same V8 runtime, `vm_config`, plugin configuration and request, the
//! repeated token included) with the filter's code swapped for `filters/passthrough`, which reads
//! the `authorization` header and the clock and returns `Continue`. `jwt-repeated` minus
//! `passthrough` is what tokengate itself costs on a cached token; `passthrough` minus `no-auth`
//! is the wasm machinery plus those two reads.
//! `passthrough-sdk` is the same filter on the proxy-wasm Rust SDK (`filters/passthrough-sdk`):
//! `passthrough-sdk` minus `passthrough` is what the SDK's dispatcher costs per request (it
//! exports every callback, so the host calls into the VM several times more), the measured
//! reason tokengate binds the ABI itself (`src/host/abi.rs`).
//! The `portable-*` scenarios run the portable build (no SIMD; `scripts/build-filter`) in the
//! same V8, to show what a host without SIMD pays: the integer RSA kernel instead of the
//! fused multiply-add one.
//! `policy-repeated` is the `jwt` gateway turned into a three-provider, ten-rule policy whose
//! tenth rule covers the request (the policy `benches/engine.rs` measures), and
//! `jwt-bcl-repeated` the `jwt-bcl` gateway after 1000 sessions were ended through its logout
//! listener: against `jwt-repeated`, what rule matching and the revocation check add to a
//! cached token.
//! `jwt-repeated-bare` is `jwt-repeated` with claim forwarding off (four claims copied into
//! headers cost host calls that are work asked for, not the cache's cost), so `jwt-repeated-bare`
//! minus `passthrough` is the cached-token decision itself: read the token header, look it up,
//! admit.
//! `jwt-unique-sub` forwards only `sub`, as the `native-jwt` gateway does: against
//! `native-jwt-unique`, the same work on the same tokens (the `jwt` gateway's three more
//! claim headers are host calls `jwt_authn` is not asked to make).
//!
//! Columns: requests made in the window (started in it and answered), req/s, Envoy CPU µs per
//! request (Envoy's CPU rate over the request rate, so a sampler woken late on a busy machine
//! does not skew it), Envoy / client / backend CPU as a share of one core, `other cpu` (machine
//! CPU time charged to none of those: softirq loopback networking, plus any other process, so a
//! large value flags a noisy machine), unexpected statuses, and the verified-token cache hit
//! share. The filter is copied into the run directory first, so every scenario runs the same
//! build even if it is rebuilt meanwhile.
//!
//! Prints a table and writes the same data, with the wasm file size, to
//! `target/bench/envoy_cpu.json`; logs, rendered configs and each Envoy's final stats are kept in
//! `target/tokengate-runs/bench-envoy-cpu-*`.

// A bench that cannot set up its stack stops with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::Full;
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HeaderValue};
use loadtest::cpu::{CpuSampler, CpuWindow, clock_ticks_per_second};
use loadtest::envoy::{Envoy, EnvoyOptions};
use loadtest::jwks_server::JwksServer;
use loadtest::ports::free_port;
use loadtest::render::{self, Topology};
use loadtest::stack::{GatewaySpec, RunningGateway, start_gateway};
use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::testkit::{TestKey, TokenSpec, jwks, tamper_signature};

const CERTS_PATH: &str = "/realms/tokengate/protocol/openid-connect/certs";
const AUDIENCE: &str = "tokengate-api";
const KID: &str = "k1";
const REQUEST_PATH: &str = "/orders/42";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// A request taking longer counts as a transport error (and its connection is replaced), so a
/// stuck Envoy cannot hang the benchmark.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const BACKEND_THREADS: usize = 2;

mod gateway;
mod load;
mod options;
mod output;
mod scenarios;
mod tokens;

use gateway::*;
use load::*;
use options::*;
use output::*;
use scenarios::*;
use tokens::*;

// ---------------------------------------------------------------------------------------------

/// Copies the filter into the run directory and points every gateway at the copy, so all
/// scenarios measure the same build even if tokengate.wasm is rebuilt during the run.
///
/// Must run before this process starts any thread: it sets an environment variable.
fn snapshot_wasm(wasm: &Path, dir: &Path) -> Result<WasmSnapshot> {
    loadtest::paths::ensure_dir(dir)?;
    let copy = dir.join("tokengate.wasm");
    let bytes = std::fs::copy(wasm, &copy)
        .with_context(|| format!("copying {} to {}", wasm.display(), copy.display()))?;
    // SAFETY: called from main before any other thread exists, so nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var("TOKENGATE_WASM", &copy) };
    Ok(WasmSnapshot { path: copy, bytes })
}

/// Another module's copy in the run directory, for the same reason.
fn copy_module(module: Wasm, wasm: &Path, dir: &Path) -> Result<WasmSnapshot> {
    let copy = dir.join(module.file_name());
    let bytes = std::fs::copy(wasm, &copy)
        .with_context(|| format!("copying {} to {}", wasm.display(), copy.display()))?;
    Ok(WasmSnapshot { path: copy, bytes })
}

struct WasmSnapshot {
    path: PathBuf,
    bytes: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain without a backtrace: these errors say what to do.
            eprintln!("envoy_cpu: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let options = parse_options()?;
    let prerequisites = check_prerequisites(&options)?;
    if prerequisites
        .backend
        .components()
        .any(|c| c.as_os_str() == "debug")
    {
        eprintln!(
            "WARNING: using the debug backend {}; build the release one with \
             `cargo build --release -p loadtest --bins`",
            prerequisites.backend.display()
        );
    }
    let dir = loadtest::paths::run_dir("bench-envoy-cpu");
    let wasm = snapshot_wasm(&prerequisites.wasm, &dir)?;
    let mut modules = BTreeMap::new();
    for (module, path) in &prerequisites.modules {
        modules.insert(*module, copy_module(*module, path, &dir)?);
    }
    eprintln!(
        "envoy_cpu: {} scenario(s), {} connections, warm-up {:.1} s, window {:.1} s{};\n  \
         wasm {} ({} bytes, run from a copy in the run directory)\n  backend {}",
        options.scenarios.len(),
        options.connections,
        options.warmup.as_secs_f64(),
        options.window.as_secs_f64(),
        if options.direct_response {
            ", Envoy answering directly"
        } else {
            ""
        },
        prerequisites.wasm.display(),
        wasm.bytes,
        prerequisites.backend.display()
    );
    let (backend, backend_addr) = loadtest::backend::spawn(&dir, "backend", BACKEND_THREADS)?;
    let mut idp = JwksServer::reserve()?;
    idp.set_response(
        CERTS_PATH,
        200,
        jwks(&[
            TestKey::rsa_a().public_jwk(KID, Some("RS256")),
            TestKey::p256().public_jwk("ec1", Some("ES256")),
            TestKey::ed25519().public_jwk("ed1", Some("EdDSA")),
        ])
        .to_string(),
    );
    idp.start()?;
    let issuer = format!("http://127.0.0.1:{}/realms/tokengate", idp.port());
    let tokens = TokenSets::prepare(&options, &issuer)?;
    let stack = Stack {
        dir,
        modules: modules
            .iter()
            .map(|(module, snapshot)| (*module, snapshot.path.clone()))
            .collect(),
        backend,
        backend_port: backend_addr.port(),
        idp,
    };

    // For readiness probes and logout posts; the load runs on the driver's own thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the client runtime")?;

    // Rounds interleave the scenarios, so a slow minute of a shared machine lands on every
    // scenario alike rather than on whichever ran then.
    let mut rounds = Vec::new();
    for round in 1..=options.rounds {
        let mut results = Vec::new();
        for scenario in &options.scenarios {
            eprintln!(
                "running {} (round {round} of {}) ...",
                scenario.name, options.rounds
            );
            let result = run_scenario(&runtime, &stack, &tokens, &options, scenario)?;
            eprintln!(
                "  {} requests, {:.0} req/s, {:.1} µs Envoy CPU per request",
                result.requests(),
                result.requests_per_second(),
                result.envoy_us_per_request()
            );
            results.push(result);
        }
        rounds.push(results);
    }
    let results = median_rounds(rounds);

    print_table(&results);
    let json_path = target_dir().join("bench/envoy_cpu.json");
    write_json(
        &json_path,
        &options,
        &prerequisites,
        &wasm,
        &modules,
        &tokens,
        &results,
    )?;
    println!(
        "wasm {} bytes; results in {}",
        wasm.bytes,
        json_path.display()
    );
    println!("logs and rendered configs in {}", stack.dir.display());
    Ok(())
}

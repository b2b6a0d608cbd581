//! Envoy CPU time per request at one Envoy worker, for each gateway side by side.
//!
//! Every scenario starts its own Envoy (`--concurrency 1`) in front of one shared backend and a
//! local JWKS server, drives it closed-loop over keep-alive HTTP/1.1 connections until the worker
//! is busy, and divides the Envoy process's CPU time (utime + stime from `/proc/<pid>/stat`) over a
//! fixed window by the requests completed in that window.
//!
//! ```text
//! scripts/build-filter both
//! cargo build --release --target wasm32-wasip1 -p passthrough -p passthrough-sdk
//! cargo build --release -p loadtest --bins
//! cargo bench -p loadtest --bench envoy_cpu [-- --only jwt-unique,no-auth --window 10]
//! ```
//!
//! Options (flags win over the environment):
//!
//! | flag | environment | default |
//! | --- | --- | --- |
//! | `--only LIST` (comma-separated scenarios) | `ENVOY_CPU_ONLY` | all |
//! | `--window SECS` (measured window) | `ENVOY_CPU_WINDOW` | 5 |
//! | `--warmup SECS` | `ENVOY_CPU_WARMUP` | 1 |
//! | `--connections N` | `ENVOY_CPU_CONNECTIONS` | 16 |
//! | `--tokens N` (distinct tokens for the unique scenarios) | `ENVOY_CPU_TOKENS` | 12000 |
//! | `--direct-response` (Envoy answers 200 itself, no backend: only the filters' and Envoy's own work per request) | `ENVOY_CPU_DIRECT_RESPONSE=1` | off |
//!
//! The load comes from this process: one tokio thread, one task per connection, each with a
//! plain `hyper::client::conn::http1` connection. Each scenario waits until its gateway has keys
//! and answers a valid request, warms up, measures, and counts every response whose status is not
//! the expected one (200; 401 for the tampered tokens). The unique-token scenarios cycle through
//! more distinct tokens than tokengate's cache (4096) and jwt_authn's (10000) hold, so every
//! request is a full RS256 verification; the `cache hits` column shows that it was.
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
//! `jwt-repeated-bare` is `jwt-repeated` with claim forwarding off (four claims copied into
//! headers cost host calls that are work asked for, not the cache's cost), so `jwt-repeated-bare`
//! minus `passthrough` is the cached-token decision itself: read the token header, look it up,
//! admit.
//!
//! Columns: requests completed in the window, req/s, Envoy CPU µs per request, Envoy / client /
//! backend CPU as a share of one core, `other cpu` (machine CPU time charged to none of those:
//! softirq loopback networking, plus any other process, so a large value flags a noisy machine),
//! unexpected statuses, and the verified-token cache hit share. The filter is copied into the run
//! directory first, so every scenario runs the same build even if it is rebuilt meanwhile.
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
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
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

const USAGE: &str = "usage: cargo bench -p loadtest --bench envoy_cpu -- \
    [--only SCENARIO,...] [--window SECS] [--warmup SECS] [--connections N] [--tokens N] [--direct-response]";

/// Which tokens a scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tokens {
    None,
    /// One valid token on every request: the verified-token cache hit path.
    Repeated,
    /// Distinct valid tokens, cycled, more of them than any cache holds.
    Unique,
    /// The unique tokens with one signature bit flipped.
    Tampered,
    /// Distinct valid tokens signed with another algorithm's test key (ES256, EdDSA).
    UniqueWith(Algorithm),
}

impl Tokens {
    fn label(self) -> &'static str {
        match self {
            Tokens::None => "none",
            Tokens::Repeated => "repeated",
            Tokens::Unique => "unique",
            Tokens::Tampered => "unique, bad signature",
            Tokens::UniqueWith(Algorithm::Es256) => "unique, ES256",
            Tokens::UniqueWith(_) => "unique, EdDSA",
        }
    }
}

/// The code loaded into the gateway's wasm filter (gateways without one ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wasm {
    /// The fast build (`TOKENGATE_WASM` or the release build).
    Tokengate,
    /// The portable build: no SIMD.
    TokengatePortable,
    /// `filters/passthrough`: does nothing, the floor of a Rust proxy-wasm filter.
    Passthrough,
    /// `filters/passthrough-sdk`: the same on the proxy-wasm Rust SDK.
    PassthroughSdk,
}

impl Wasm {
    /// Where the build puts the module (the fast build: see `loadtest::paths::wasm_path`).
    fn built_path(self) -> Result<PathBuf> {
        let (path, build) = match self {
            Wasm::Tokengate => return loadtest::paths::wasm_path(),
            Wasm::TokengatePortable => (
                "portable/wasm32-wasip1/release/tokengate.wasm",
                "scripts/build-filter portable",
            ),
            Wasm::Passthrough => (
                "wasm32-wasip1/release/passthrough.wasm",
                "cargo build --release --target wasm32-wasip1 -p passthrough",
            ),
            Wasm::PassthroughSdk => (
                "wasm32-wasip1/release/passthrough_sdk.wasm",
                "cargo build --release --target wasm32-wasip1 -p passthrough-sdk",
            ),
        };
        let path = target_dir().join(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("{} not found; build it with `{build}`", path.display())
    }

    fn file_name(self) -> &'static str {
        match self {
            Wasm::Tokengate => "tokengate.wasm",
            Wasm::TokengatePortable => "tokengate-portable.wasm",
            Wasm::Passthrough => "passthrough.wasm",
            Wasm::PassthroughSdk => "passthrough-sdk.wasm",
        }
    }
}

struct Scenario {
    name: &'static str,
    gateway: &'static str,
    wasm: Wasm,
    /// RFC 7386 merge patch for the gateway's plugin configuration.
    plugin_patch: Option<&'static str>,
    tokens: Tokens,
    expected_status: u16,
}

/// The `jwt` gateway allowing the curve algorithms of the ES256 and EdDSA scenarios.
const CURVE_ALGORITHMS: &str = r#"{"algorithms": ["RS256", "ES256", "EdDSA"]}"#;

/// The kid and test key of each algorithm's tokens (the JWKS server serves all three).
fn signing_key(alg: Algorithm) -> (&'static str, &'static TestKey) {
    match alg {
        Algorithm::Es256 => ("ec1", TestKey::p256()),
        Algorithm::EdDsa => ("ed1", TestKey::ed25519()),
        _ => (KID, TestKey::rsa_a()),
    }
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "no-auth",
        gateway: "no-auth",
        wasm: Wasm::Tokengate,
        plugin_patch: None,
        tokens: Tokens::None,
        expected_status: 200,
    },
    Scenario {
        name: "passthrough",
        gateway: "jwt",
        wasm: Wasm::Passthrough,
        plugin_patch: None,
        tokens: Tokens::Repeated,
        expected_status: 200,
    },
    Scenario {
        name: "passthrough-sdk",
        gateway: "jwt",
        wasm: Wasm::PassthroughSdk,
        plugin_patch: None,
        tokens: Tokens::Repeated,
        expected_status: 200,
    },
    Scenario {
        name: "native-jwt-repeated",
        gateway: "native-jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: None,
        tokens: Tokens::Repeated,
        expected_status: 200,
    },
    Scenario {
        name: "native-jwt-unique",
        gateway: "native-jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: None,
        tokens: Tokens::Unique,
        expected_status: 200,
    },
    Scenario {
        name: "jwt-repeated",
        gateway: "jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: None,
        tokens: Tokens::Repeated,
        expected_status: 200,
    },
    Scenario {
        name: "jwt-repeated-bare",
        gateway: "jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: Some(r#"{"forward": {"claims_to_headers": []}}"#),
        tokens: Tokens::Repeated,
        expected_status: 200,
    },
    Scenario {
        name: "jwt-unique",
        gateway: "jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: None,
        tokens: Tokens::Unique,
        expected_status: 200,
    },
    Scenario {
        name: "jwt-tampered",
        gateway: "jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: None,
        tokens: Tokens::Tampered,
        expected_status: 401,
    },
    Scenario {
        name: "native-jwt-es256",
        gateway: "native-jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: None,
        tokens: Tokens::UniqueWith(Algorithm::Es256),
        expected_status: 200,
    },
    Scenario {
        name: "jwt-es256",
        gateway: "jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: Some(CURVE_ALGORITHMS),
        tokens: Tokens::UniqueWith(Algorithm::Es256),
        expected_status: 200,
    },
    Scenario {
        name: "native-jwt-eddsa",
        gateway: "native-jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: None,
        tokens: Tokens::UniqueWith(Algorithm::EdDsa),
        expected_status: 200,
    },
    Scenario {
        name: "jwt-eddsa",
        gateway: "jwt",
        wasm: Wasm::Tokengate,
        plugin_patch: Some(CURVE_ALGORITHMS),
        tokens: Tokens::UniqueWith(Algorithm::EdDsa),
        expected_status: 200,
    },
    Scenario {
        name: "portable-repeated",
        gateway: "jwt",
        wasm: Wasm::TokengatePortable,
        plugin_patch: None,
        tokens: Tokens::Repeated,
        expected_status: 200,
    },
    Scenario {
        name: "portable-unique",
        gateway: "jwt",
        wasm: Wasm::TokengatePortable,
        plugin_patch: None,
        tokens: Tokens::Unique,
        expected_status: 200,
    },
];

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
    scenarios: Vec<&'static Scenario>,
    window: Duration,
    warmup: Duration,
    connections: usize,
    unique_tokens: usize,
    /// Answer from Envoy's route (`direct_response`) instead of proxying to the backend.
    direct_response: bool,
}

fn parse_options() -> Result<Options> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut only = env("ENVOY_CPU_ONLY");
    let mut window = env("ENVOY_CPU_WINDOW");
    let mut warmup = env("ENVOY_CPU_WARMUP");
    let mut connections = env("ENVOY_CPU_CONNECTIONS");
    let mut tokens = env("ENVOY_CPU_TOKENS");
    let mut direct_response = env("ENVOY_CPU_DIRECT_RESPONSE").is_some_and(|v| v != "0");

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--only" => only = Some(value()?),
            "--window" => window = Some(value()?),
            "--warmup" => warmup = Some(value()?),
            "--connections" => connections = Some(value()?),
            "--tokens" => tokens = Some(value()?),
            "--direct-response" => direct_response = true,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                println!(
                    "scenarios: {}",
                    SCENARIOS
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }

    let scenarios = match only {
        None => SCENARIOS.iter().collect(),
        Some(list) => select_scenarios(&list)?,
    };
    let connections = parse_number(connections.as_deref(), "connections", 16)?;
    if connections == 0 {
        bail!("--connections must be at least 1");
    }
    let unique_tokens = parse_number(tokens.as_deref(), "tokens", 12_000)?;
    if unique_tokens == 0 {
        bail!("--tokens must be at least 1");
    }
    Ok(Options {
        scenarios,
        window: parse_seconds(window.as_deref(), "window", 5.0)?,
        warmup: parse_seconds(warmup.as_deref(), "warmup", 1.0)?,
        connections,
        unique_tokens,
        direct_response,
    })
}

fn select_scenarios(list: &str) -> Result<Vec<&'static Scenario>> {
    let mut selected: Vec<&'static Scenario> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let scenario = SCENARIOS.iter().find(|s| s.name == name).with_context(|| {
            format!(
                "unknown scenario {name:?}; choose from {}",
                SCENARIOS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if !selected.iter().any(|s| s.name == scenario.name) {
            selected.push(scenario);
        }
    }
    if selected.is_empty() {
        bail!("--only selects no scenario");
    }
    // Always in the canonical order, so tables from different runs line up.
    selected.sort_by_key(|s| SCENARIOS.iter().position(|c| c.name == s.name));
    Ok(selected)
}

fn parse_number(text: Option<&str>, what: &str, default: usize) -> Result<usize> {
    match text {
        None => Ok(default),
        Some(text) => text
            .parse()
            .with_context(|| format!("{what} {text:?} is not a whole number")),
    }
}

fn parse_seconds(text: Option<&str>, what: &str, default: f64) -> Result<Duration> {
    let seconds = match text {
        None => default,
        Some(text) => text
            .parse::<f64>()
            .with_context(|| format!("{what} {text:?} is not a number of seconds"))?,
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero() || what == "warmup")
        .with_context(|| format!("{what} must be a positive number of seconds, got {seconds}"))
}

// ---------------------------------------------------------------------------------------------
// Prerequisites and tokens

struct Prerequisites {
    envoy: PathBuf,
    wasm: PathBuf,
    /// The other modules the selected scenarios run.
    modules: BTreeMap<Wasm, PathBuf>,
    backend: PathBuf,
}

fn check_prerequisites(options: &Options) -> Result<Prerequisites> {
    let envoy = loadtest::paths::envoy_binary();
    let wasm = loadtest::paths::wasm_path();
    let backend = loadtest::paths::sibling_binary("backend");
    let mut problems = Vec::new();
    let mut modules = BTreeMap::new();
    for scenario in &options.scenarios {
        if scenario.wasm != Wasm::Tokengate && !modules.contains_key(&scenario.wasm) {
            match scenario.wasm.built_path() {
                Ok(path) => {
                    modules.insert(scenario.wasm, path);
                }
                Err(e) => problems.push(e),
            }
        }
    }
    match (envoy, wasm, backend) {
        (Ok(envoy), Ok(wasm), Ok(backend)) if problems.is_empty() => Ok(Prerequisites {
            envoy,
            wasm,
            modules,
            backend,
        }),
        (envoy, wasm, backend) => {
            problems.extend(
                [envoy.err(), wasm.err(), backend.err()]
                    .into_iter()
                    .flatten(),
            );
            let problems: Vec<String> = problems.iter().map(|e| format!("  - {e}")).collect();
            bail!(
                "cannot run:\n{}\n\nBuild what it needs first:\n  \
                 scripts/build-filter both\n  \
                 cargo build --release --target wasm32-wasip1 -p passthrough -p passthrough-sdk\n  \
                 cargo build --release -p loadtest --bins\nthen run \
                 `cargo bench -p loadtest --bench envoy_cpu`.",
                problems.join("\n")
            )
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn token_spec(issuer: &str, now: i64, jti: String) -> TokenSpec {
    TokenSpec::access_token(Algorithm::Rs256, KID, issuer, AUDIENCE, now).claim("jti", jti)
}

/// `count` valid tokens with distinct `jti`, signed with `alg` on every core.
fn mint_unique(issuer: &str, now: i64, count: usize, alg: Algorithm) -> Result<Vec<String>> {
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, count.max(1));
    let per_thread = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per_thread)..((t + 1) * per_thread).min(count);
                scope.spawn(move || {
                    let (kid, key) = signing_key(alg);
                    range
                        .map(|i| {
                            TokenSpec::access_token(alg, kid, issuer, AUDIENCE, now)
                                .claim("jti", format!("bench-{now}-{}-{i}", alg.jws_name()))
                                .sign(key)
                        })
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        let mut tokens = Vec::with_capacity(count);
        for worker in workers {
            let minted = worker
                .join()
                .map_err(|_| anyhow!("a token-minting thread panicked"))?;
            tokens.extend(minted);
        }
        Ok(tokens)
    })
}

fn bearer_values(tokens: &[String]) -> Result<Vec<HeaderValue>> {
    tokens
        .iter()
        .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).context("token is not a header"))
        .collect()
}

struct TokenSets {
    repeated: Vec<HeaderValue>,
    /// Per curve algorithm a scenario asks for.
    curves: Vec<(Algorithm, Vec<HeaderValue>)>,
    unique: Vec<HeaderValue>,
    tampered: Vec<HeaderValue>,
    mint_time: Option<Duration>,
}

impl TokenSets {
    fn prepare(options: &Options, issuer: &str) -> Result<TokenSets> {
        let now = unix_now();
        let key = TestKey::rsa_a();
        let repeated = vec![token_spec(issuer, now, format!("bench-{now}-repeated")).sign(key)];
        let wants = |kind: Tokens| options.scenarios.iter().any(|s| s.tokens == kind);
        let (unique, mint_time) = if wants(Tokens::Unique) || wants(Tokens::Tampered) {
            let started = Instant::now();
            let unique = mint_unique(issuer, now, options.unique_tokens, Algorithm::Rs256)?;
            let took = started.elapsed();
            eprintln!(
                "minted {} distinct RS256 tokens in {:.2} s ({:.0} µs each per thread)",
                unique.len(),
                took.as_secs_f64(),
                took.as_secs_f64() * 1e6 / unique.len().max(1) as f64
                    * std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
            );
            (unique, Some(took))
        } else {
            (Vec::new(), None)
        };
        let tampered: Vec<String> = if wants(Tokens::Tampered) {
            unique.iter().map(|t| tamper_signature(t)).collect()
        } else {
            Vec::new()
        };
        let mut curves = Vec::new();
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            if wants(Tokens::UniqueWith(alg)) {
                curves.push((
                    alg,
                    bearer_values(&mint_unique(issuer, now, options.unique_tokens, alg)?)?,
                ));
            }
        }
        Ok(TokenSets {
            curves,
            repeated: bearer_values(&repeated)?,
            unique: if wants(Tokens::Unique) {
                bearer_values(&unique)?
            } else {
                Vec::new()
            },
            tampered: bearer_values(&tampered)?,
            mint_time,
        })
    }

    fn for_kind(&self, kind: Tokens) -> Vec<HeaderValue> {
        match kind {
            Tokens::None => Vec::new(),
            Tokens::Repeated => self.repeated.clone(),
            Tokens::Unique => self.unique.clone(),
            Tokens::Tampered => self.tampered.clone(),
            Tokens::UniqueWith(alg) => self
                .curves
                .iter()
                .find(|(a, _)| *a == alg)
                .map(|(_, tokens)| tokens.clone())
                .unwrap_or_default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load generation

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Shared by all connection tasks; read-only but for the phase and the token cursor.
struct Load {
    addr: SocketAddr,
    host: HeaderValue,
    uri: Uri,
    authorization: Vec<HeaderValue>,
    cursor: AtomicUsize,
    phase: AtomicU8,
    expected_status: u16,
}

impl Load {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    fn request(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        let auth = match self.authorization.len() {
            0 => None,
            1 => self.authorization.first(),
            n => self
                .authorization
                .get(self.cursor.fetch_add(1, Ordering::Relaxed) % n),
        };
        if let Some(value) = auth {
            headers.insert(AUTHORIZATION, value.clone());
        }
        request
    }
}

/// What one connection saw in one phase.
#[derive(Debug, Default, Clone)]
struct PhaseTally {
    responses: u64,
    unexpected: BTreeMap<u16, u64>,
    transport_errors: u64,
}

impl PhaseTally {
    fn add(&mut self, other: &PhaseTally) {
        self.responses += other.responses;
        self.transport_errors += other.transport_errors;
        for (status, count) in &other.unexpected {
            *self.unexpected.entry(*status).or_default() += count;
        }
    }

    fn bad(&self) -> u64 {
        self.unexpected.values().sum::<u64>() + self.transport_errors
    }
}

#[derive(Debug, Default, Clone)]
struct Tally {
    warmup: PhaseTally,
    measured: PhaseTally,
    /// Connections opened after the first (Envoy closed one, or it failed).
    reconnects: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.warmup.add(&other.warmup);
        self.measured.add(&other.measured);
        self.reconnects += other.reconnects;
    }

    fn phase_mut(&mut self, phase: u8) -> &mut PhaseTally {
        if phase == MEASURE {
            &mut self.measured
        } else {
            &mut self.warmup
        }
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or Envoy closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn exchange(sender: &mut SendRequest<Empty<Bytes>>, load: &Load) -> Result<u16> {
    sender.ready().await?;
    let response = sender.send_request(load.request()).await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(status)
}

/// One keep-alive connection, one request at a time, until the phase is STOP.
async fn drive_connection(load: Arc<Load>) -> Tally {
    let mut tally = Tally::default();
    let mut first = true;
    while load.phase() != STOP {
        if !first {
            tally.reconnects += 1;
        }
        first = false;
        let mut sender = match connect(load.addr).await {
            Ok(sender) => sender,
            Err(_) => {
                tally.phase_mut(load.phase()).transport_errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while load.phase() != STOP {
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut sender, &load))
                .await
                .unwrap_or_else(|_| Err(anyhow!("no response within {REQUEST_TIMEOUT:?}")));
            // Counted in the phase it completed in.
            let phase = load.phase();
            if phase == STOP {
                break;
            }
            let counts = tally.phase_mut(phase);
            match outcome {
                Ok(status) => {
                    counts.responses += 1;
                    if status != load.expected_status {
                        *counts.unexpected.entry(status).or_default() += 1;
                    }
                }
                Err(_) => {
                    counts.transport_errors += 1;
                    break;
                }
            }
            if sender.is_closed() {
                break;
            }
        }
    }
    tally
}

struct Measurement {
    tally: Tally,
    envoy: CpuWindow,
    backend: CpuWindow,
}

async fn run_load(
    load: Load,
    connections: usize,
    warmup: Duration,
    window: Duration,
    envoy_pid: u32,
    backend_pid: u32,
) -> Result<Measurement> {
    let load = Arc::new(load);
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(drive_connection(Arc::clone(&load))))
        .collect();
    tokio::time::sleep(warmup).await;
    let sampled = sample_window(&load, window, envoy_pid, backend_pid).await;
    // Stop the load whatever happened, so the tasks end.
    load.phase.store(STOP, Ordering::Relaxed);
    let mut tally = Tally::default();
    for task in tasks {
        let connection = task.await.context("a connection task failed")?;
        tally.add(&connection);
    }
    let (envoy, backend) = sampled?;
    Ok(Measurement {
        tally,
        envoy,
        backend,
    })
}

async fn sample_window(
    load: &Load,
    window: Duration,
    envoy_pid: u32,
    backend_pid: u32,
) -> Result<(CpuWindow, CpuWindow)> {
    let envoy = CpuSampler::start(envoy_pid).context("sampling Envoy's CPU time")?;
    let backend = CpuSampler::start(backend_pid).context("sampling the backend's CPU time")?;
    load.phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(window).await;
    load.phase.store(STOP, Ordering::Relaxed);
    Ok((envoy.stop()?, backend.stop()?))
}

// ---------------------------------------------------------------------------------------------
// Scenarios

struct Stack {
    dir: PathBuf,
    /// Snapshots of the other modules the scenarios run.
    modules: BTreeMap<Wasm, PathBuf>,
    backend: loadtest::process::ManagedProcess,
    backend_port: u16,
    idp: JwksServer,
}

/// Verified-token cache lookups over the whole scenario, from Envoy's stats.
#[derive(Debug, Clone, Copy)]
struct CacheCounts {
    hits: u64,
    misses: u64,
}

impl CacheCounts {
    /// tokengate's `cache.hit`/`cache.miss`, or jwt_authn's `jwt_cache_hit`/`jwt_cache_miss`.
    fn from_stats(gateway: &str, stats: &BTreeMap<String, u64>) -> Option<CacheCounts> {
        let sum = |suffix: &str| -> Option<u64> {
            let mut found = stats
                .iter()
                .filter(|(name, _)| name.ends_with(suffix))
                .peekable();
            found.peek()?;
            Some(found.map(|(_, v)| *v).sum())
        };
        let (hit, miss) = match gateway {
            "jwt" => (
                "wasmcustom.tokengate.cache.hit",
                "wasmcustom.tokengate.cache.miss",
            ),
            "native-jwt" => (".jwt_cache_hit", ".jwt_cache_miss"),
            _ => return None,
        };
        Some(CacheCounts {
            hits: sum(hit)?,
            misses: sum(miss)?,
        })
    }

    fn hit_share(&self) -> f64 {
        self.hits as f64 / (self.hits + self.misses).max(1) as f64
    }
}

struct ScenarioResult {
    name: &'static str,
    gateway: &'static str,
    tokens: Tokens,
    distinct_tokens: usize,
    expected_status: u16,
    measurement: Measurement,
    cache: Option<CacheCounts>,
}

impl ScenarioResult {
    fn requests(&self) -> u64 {
        self.measurement.tally.measured.responses
    }

    fn seconds(&self) -> f64 {
        self.measurement.envoy.wall.as_secs_f64()
    }

    fn requests_per_second(&self) -> f64 {
        self.requests() as f64 / self.seconds().max(f64::MIN_POSITIVE)
    }

    /// Envoy CPU µs per completed request; NaN if none completed.
    fn envoy_us_per_request(&self) -> f64 {
        let cpu = self.measurement.envoy.process.total().as_secs_f64() * 1e6;
        match self.requests() {
            0 => f64::NAN,
            n => cpu / n as f64,
        }
    }

    fn bad(&self) -> u64 {
        self.measurement.tally.warmup.bad() + self.measurement.tally.measured.bad()
    }

    /// Machine CPU time in the window that was neither Envoy's, the client's nor the
    /// backend's (softirq networking, other processes), as a share of one core.
    fn other_share(&self) -> f64 {
        let m = &self.measurement;
        let accounted = m.envoy.process.total() + m.envoy.own.total() + m.backend.process.total();
        let other = m.envoy.machine.busy.saturating_sub(accounted);
        other.as_secs_f64() / m.envoy.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn to_json(&self) -> Value {
        let m = &self.measurement;
        let phase = |p: &PhaseTally| {
            json!({
                "responses": p.responses,
                "unexpected_statuses": p.unexpected.iter()
                    .map(|(s, n)| (s.to_string(), json!(n)))
                    .collect::<serde_json::Map<String, Value>>(),
                "transport_errors": p.transport_errors,
            })
        };
        let us_per_request = self.envoy_us_per_request();
        json!({
            "scenario": self.name,
            "gateway": self.gateway,
            "tokens": self.tokens.label(),
            "distinct_tokens": self.distinct_tokens,
            "expected_status": self.expected_status,
            "requests": self.requests(),
            "seconds": self.seconds(),
            "requests_per_second": self.requests_per_second(),
            "envoy_cpu_us_per_request": if us_per_request.is_finite() { json!(us_per_request) } else { Value::Null },
            "envoy_cpu_user_s": m.envoy.process.user.as_secs_f64(),
            "envoy_cpu_system_s": m.envoy.process.system.as_secs_f64(),
            "envoy_cpu_percent": m.envoy.process_share() * 100.0,
            "client_cpu_percent": m.envoy.own_share() * 100.0,
            "backend_cpu_percent": m.backend.process_share() * 100.0,
            "other_cpu_percent": self.other_share() * 100.0,
            "machine_busy_percent": m.envoy.machine_busy_share() * 100.0,
            "unexpected": self.bad(),
            "warmup": phase(&m.tally.warmup),
            "measured": phase(&m.tally.measured),
            "reconnects": m.tally.reconnects,
            "cache_hits": self.cache.map(|c| c.hits),
            "cache_misses": self.cache.map(|c| c.misses),
        })
    }
}

fn verify_envoy_process(gateway: &RunningGateway) -> Result<u32> {
    let pid = gateway.envoy.process().pid();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .with_context(|| format!("reading /proc/{pid}/exe"))?;
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.starts_with("envoy") {
        bail!(
            "pid {pid} runs {}, not Envoy: the CPU time would not be Envoy's",
            exe.display()
        );
    }
    eprintln!("  Envoy is pid {pid}, {}", exe.display());
    Ok(pid)
}

async fn wait_until_serving(
    gateway: &RunningGateway,
    scenario: &Scenario,
    probe_token: &HeaderValue,
) -> Result<()> {
    if scenario.gateway == "jwt" && scenario.wasm == Wasm::Tokengate {
        gateway
            .envoy
            .wait_for_stat("wasmcustom.tokengate.jwks.keys_loaded", 1, READY_TIMEOUT)
            .await?;
    }
    let probe = probe_token.to_str().context("probe token")?;
    let headers: Vec<(&str, &str)> = if scenario.tokens == Tokens::None {
        Vec::new()
    } else {
        vec![("authorization", probe)]
    };
    let url = gateway.url(REQUEST_PATH);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last = match loadtest::http::get(&url, &headers).await {
            Ok(response) if response.status == 200 => return Ok(()),
            Ok(response) => format!("status {}: {}", response.status, response.text()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "{}: a valid request still fails after {READY_TIMEOUT:?} ({last}); Envoy log {}:\n{}",
                scenario.name,
                gateway.envoy.log_path().display(),
                gateway.envoy.process().log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Renders `spec`'s template, exactly as `start_gateway` does, but with `wasm` as the filter's
/// code, and starts Envoy on it.
fn start_with_wasm(
    dir: &Path,
    spec: &GatewaySpec,
    stack: &Stack,
    wasm: &Path,
    direct_response: bool,
) -> Result<RunningGateway> {
    let mut topology = Topology::native(
        free_port()?,
        free_port()?,
        stack.backend_port,
        stack.idp.port(),
        wasm.display().to_string(),
    );
    topology.wasm_runtime = loadtest::paths::wasm_runtime();
    let envoy_dir = loadtest::paths::repo_root().join("envoy");
    let mut text = render::render_gateway(
        &envoy_dir,
        &spec.gateway,
        &topology,
        spec.plugin_patch.as_ref(),
    )?;
    if direct_response {
        text = answer_directly(&text)?;
    }
    let config_path = render::write_rendered(dir, &spec.gateway, &text)?;
    let mut options = EnvoyOptions::from_paths()?;
    options.concurrency = spec.concurrency;
    let envoy = Envoy::start(
        &config_path,
        topology.admin_port,
        topology.listen_port,
        &options,
        dir,
    )?;
    Ok(RunningGateway {
        envoy,
        config_path,
        topology,
    })
}

/// The rendered gateway with its one route answering 200 from Envoy instead of proxying to the
/// backend (both forms the renderer writes: the template's flow mapping and the re-emitted
/// block mapping).
fn answer_directly(config: &str) -> Result<String> {
    const FLOW: &str = "route: { cluster: backend }";
    const ANSWER: &str = r#"{ status: 200, body: { inline_string: "{\"ok\":true}" } }"#;
    if config.matches(FLOW).count() == 1 {
        return Ok(config.replacen(FLOW, &format!("direct_response: {ANSWER}"), 1));
    }
    let lines: Vec<&str> = config.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut replaced = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let next = lines.get(i + 1).map(|l| l.trim());
        if line.trim() == "route:" && next == Some("cluster: backend") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push(format!("{indent}direct_response: {ANSWER}"));
            replaced += 1;
            i += 2;
            continue;
        }
        out.push(line.to_owned());
        i += 1;
    }
    if replaced != 1 {
        bail!("expected one route to the backend in the rendered config, found {replaced}");
    }
    Ok(out.join("\n") + "\n")
}

fn run_scenario(
    runtime: &tokio::runtime::Runtime,
    stack: &Stack,
    tokens: &TokenSets,
    options: &Options,
    scenario: &'static Scenario,
) -> Result<ScenarioResult> {
    let dir = stack.dir.join(scenario.name);
    loadtest::paths::ensure_dir(&dir)?;
    let mut spec = GatewaySpec::new(scenario.gateway).concurrency(1);
    if let Some(patch) = scenario.plugin_patch {
        spec = spec.patch(serde_json::from_str(patch)?);
    }
    let direct = options.direct_response;
    let started = match scenario.wasm {
        Wasm::Tokengate if direct => loadtest::paths::wasm_path()
            .and_then(|wasm| start_with_wasm(&dir, &spec, stack, &wasm, true)),
        Wasm::Tokengate => start_gateway(&dir, &spec, stack.backend_port, stack.idp.port()),
        other => match stack.modules.get(&other) {
            Some(wasm) => start_with_wasm(&dir, &spec, stack, wasm, direct),
            None => Err(anyhow!("{} was not prepared", other.file_name())),
        },
    };
    let gateway = started.with_context(|| {
        format!(
            "starting gateway {} for {}",
            scenario.gateway, scenario.name
        )
    })?;
    let envoy_pid = verify_envoy_process(&gateway)?;
    let probe = tokens
        .repeated
        .first()
        .context("no repeated token was minted")?;
    let authorization = tokens.for_kind(scenario.tokens);
    let distinct_tokens = authorization.len();
    let addr = SocketAddr::from(([127, 0, 0, 1], gateway.envoy.listen_port()));
    let load = Load {
        addr,
        host: HeaderValue::from_str(&addr.to_string()).context("host header")?,
        uri: Uri::from_static(REQUEST_PATH),
        authorization,
        cursor: AtomicUsize::new(0),
        phase: AtomicU8::new(WARMUP),
        expected_status: scenario.expected_status,
    };
    let measurement = runtime.block_on(async {
        wait_until_serving(&gateway, scenario, probe).await?;
        run_load(
            load,
            options.connections,
            options.warmup,
            options.window,
            envoy_pid,
            stack.backend.pid(),
        )
        .await
    })?;
    // After the load, so reading the admin page costs nothing inside the window.
    let stats = runtime
        .block_on(gateway.envoy.stats())
        .context("reading Envoy's stats")?;
    let stats_text: String = stats.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    let stats_path = dir.join("stats.txt");
    std::fs::write(&stats_path, stats_text)
        .with_context(|| format!("writing {}", stats_path.display()))?;
    let cache = CacheCounts::from_stats(scenario.gateway, &stats);
    if let Err(e) = gateway.envoy.stop() {
        eprintln!("{}: stopping Envoy: {e:#}", scenario.name);
    }
    Ok(ScenarioResult {
        name: scenario.name,
        gateway: scenario.gateway,
        tokens: scenario.tokens,
        distinct_tokens,
        expected_status: scenario.expected_status,
        measurement,
        cache,
    })
}

// ---------------------------------------------------------------------------------------------
// Output

fn print_table(results: &[ScenarioResult]) {
    println!();
    println!(
        "{:<20} {:>9} {:>9} {:>13} {:>10} {:>11} {:>12} {:>10} {:>11} {:>11}",
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
        println!(
            "{:<20} {:>9} {:>9.0} {:>13.1} {:>9.1}% {:>10.1}% {:>11.1}% {:>9.1}% {:>11} {:>11}",
            r.name,
            r.requests(),
            r.requests_per_second(),
            r.envoy_us_per_request(),
            m.envoy.process_share() * 100.0,
            m.envoy.own_share() * 100.0,
            m.backend.process_share() * 100.0,
            r.other_share() * 100.0,
            r.bad(),
            cache
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
fn print_differences(results: &[ScenarioResult]) {
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
            "jwt-repeated",
            "native-jwt-repeated",
            "tokengate vs jwt_authn, cached token",
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

fn target_dir() -> PathBuf {
    let root = loadtest::paths::repo_root();
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn write_json(
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
        "envoy_cpu: {} scenario(s), {} connections, warm-up {:.1} s, window {:.1} s;\n  \
         wasm {} ({} bytes, run from a copy in the run directory)\n  backend {}",
        options.scenarios.len(),
        options.connections,
        options.warmup.as_secs_f64(),
        options.window.as_secs_f64(),
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

    // The client: one thread, so it stays off Envoy's core as much as two cores allow.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the client runtime")?;

    let mut results = Vec::new();
    for scenario in &options.scenarios {
        eprintln!("running {} ...", scenario.name);
        let result = run_scenario(&runtime, &stack, &tokens, &options, scenario)?;
        eprintln!(
            "  {} requests, {:.0} req/s, {:.1} µs Envoy CPU per request",
            result.requests(),
            result.requests_per_second(),
            result.envoy_us_per_request()
        );
        results.push(result);
    }

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

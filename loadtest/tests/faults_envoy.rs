//! The IdP fails in the middle of a steady open-loop run, and the gateways in real Envoy must
//! stay bounded, honest and self-healing: for `introspect` and `hybrid`, no request waits
//! longer than the call's timeout plus a margin, every refusal of a good token is 503 with
//! `Retry-After`, no revoked or forged token is ever admitted, and good tokens pass again within
//! one timeout (plus the margin) after the IdP is back; for `jwt` with a remote JWKS, requests
//! whose keys are loaded never notice a failing JWKS endpoint at all.
//!
//! The IdP is `fake_idp` (src/bin/fake_idp.rs), a process of its own, also for the hang
//! (SIGSTOP … SIGCONT) and the death (SIGKILL, then a new process on the same port). That is
//! equivalent to doing it to Keycloak: the gateway sees only TCP — a stopped process's listen
//! backlog still completes handshakes and buffers requests with nobody answering, a killed one's
//! connections are reset and its port refuses — and none of that depends on which program
//! stopped. What a real Keycloak adds is its start-up time (a minute or more under load) before
//! the port listens again, which only lengthens the "refused" phase this test already has, at a
//! cost CI cannot pay; the fake also produces the faults Keycloak cannot be made to (slow,
//! garbage, oversize, cut mid-body).
//!
//! The figures (fault × gateway → worst latency, statuses, recovery) are printed and written to
//! `target/faults.json`; the README's Reliability table is filled from them.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use common::fake_idp::FakeIdp;
use common::timeline::{FaultFigures, Kind, Record, Timeline, Tracked, table};
use common::{AUDIENCE, CERTS, published_keys, unix_now};
use loadtest::driver::{self, DriverConfig, RequestTemplate};
use loadtest::stack::{GatewaySpec, RunningGateway, start_gateway};
use serde_json::json;
use tokengate::algorithm::Algorithm;
use tokengate::testkit::{TestKey, TokenSpec, tamper_signature};

const INTROSPECT: &str = "/realms/tokengate/protocol/openid-connect/token/introspect";
/// Arrivals per second, per gateway (three gateways run at once).
const RATE: f64 = 200.0;
/// The introspection call's timeout in the gateways under test.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// The JWKS fetch's timeout: long, so that a request that waited for a fetch would show.
const JWKS_TIMEOUT: Duration = Duration::from_millis(8000);
/// Allowance on top of a configured timeout for a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(4000);
const FAULT: Duration = Duration::from_millis(2000);
const RECOVERY: Duration = Duration::from_millis(6500);
/// Requests sent this close to the next fault may meet it: they count for neither window.
const SETTLE: Duration = Duration::from_millis(1000);
/// JWKS faults last longer than the unknown-`kid` refetch floor, so a fetch meets each.
const JWKS_FAULT: Duration = Duration::from_millis(5500);
const JWKS_RECOVERY: Duration = Duration::from_millis(1000);
const STEADY: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Hang,
    Die,
    Slow,
    Garbage,
    Oversize,
    MidBody,
}

const FAULTS: [Fault; 6] = [
    Fault::Hang,
    Fault::Die,
    Fault::Slow,
    Fault::Garbage,
    Fault::Oversize,
    Fault::MidBody,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Hang => "hang (SIGSTOP/SIGCONT)",
            Fault::Die => "die (SIGKILL, restart)",
            Fault::Slow => "slow (beyond the timeout)",
            Fault::Garbage => "garbage body",
            Fault::Oversize => "oversize document",
            Fault::MidBody => "closed mid-body",
        }
    }
}

/// A gateway under test with its own backend and IdP.
struct Rig {
    name: &'static str,
    dir: std::path::PathBuf,
    _backend: loadtest::process::ManagedProcess,
    idp: FakeIdp,
    gateway: RunningGateway,
    inactive: Vec<String>,
}

impl Rig {
    fn start(name: &'static str, spec: GatewaySpec) -> Result<Rig> {
        // One start at a time: four Envoys compiling the filter at once on a loaded 2-core
        // machine can outlast Envoy's readiness wait. The runs themselves overlap.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = loadtest::paths::run_dir(&format!("faults-{name}"));
        let (backend, backend_addr) = loadtest::backend::spawn(&dir, "backend", 1)?;
        let idp = FakeIdp::start(&dir)?;
        let mut rig = Rig {
            name,
            gateway: start_gateway(&dir, &spec, backend_addr.port(), idp.port())?,
            dir,
            _backend: backend,
            idp,
            inactive: Vec::new(),
        };
        rig.configure_idp()?;
        Ok(rig)
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}/realms/tokengate", self.idp.port())
    }

    fn token(&self) -> TokenSpec {
        TokenSpec::access_token(Algorithm::Rs256, "k1", &self.issuer(), AUDIENCE, unix_now())
    }

    /// The documents a (re)started IdP serves: the revocations first (a fresh IdP that said
    /// "active" before it knew them would be the fixture admitting a revoked token), then the
    /// keys and the active answer.
    fn configure_idp(&mut self) -> Result<()> {
        for token in &self.inactive {
            self.idp.set_inactive(token)?;
        }
        self.idp.set_document(CERTS, &published_keys(&[]))?;
        let active = json!({
            "active": true, "iss": self.issuer(), "aud": [AUDIENCE], "typ": "Bearer",
            "sub": "introspected-subject", "exp": unix_now() + 600,
        });
        self.idp.set_document(INTROSPECT, &active.to_string())?;
        self.idp.set_mode("ok")
    }

    fn revoke(&mut self, token: &str) -> Result<()> {
        self.inactive.push(token.to_owned());
        self.idp.set_inactive(token)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.gateway.envoy.listen_port()))
    }

    fn inject(&mut self, fault: Fault, slow: Duration, oversize: usize) -> Result<()> {
        match fault {
            Fault::Hang => self.idp.hang(),
            Fault::Die => self.idp.kill(),
            Fault::Slow => self.idp.set_mode(&format!("slow {}", slow.as_millis())),
            Fault::Garbage => self.idp.set_mode("garbage"),
            Fault::Oversize => self.idp.set_mode(&format!("oversize {oversize}")),
            Fault::MidBody => self.idp.set_mode("midbody"),
        }
    }

    fn heal(&mut self, fault: Fault) -> Result<()> {
        match fault {
            Fault::Hang => self.idp.resume(),
            Fault::Die => {
                self.idp.restart()?;
                self.configure_idp()
            }
            _ => self.idp.set_mode("ok"),
        }
    }
}

fn bearer(token: &str) -> RequestTemplate {
    RequestTemplate::get("/orders/42")
        .and_then(|t| t.header("authorization", &format!("Bearer {token}")))
        .expect("a request template")
}

/// The rules one gateway is held to.
struct Rules {
    /// No request may take longer than this.
    worst: Duration,
    /// No request with a good token may take longer than this.
    worst_valid: Duration,
    /// Good tokens must pass again this soon after the IdP is back.
    recovery: Duration,
    /// Good tokens may be refused (503) during the fault (introspection) or never (local keys).
    valid_may_fail: bool,
    /// `on_idp_error: allow`: while the IdP cannot answer, a revoked token is admitted too
    /// (degraded, as documented); a good one must then never be refused.
    fail_open: bool,
}

/// One gateway through every fault, under load; figures per fault.
fn run(
    rig: &mut Rig,
    templates: Vec<(Kind, RequestTemplate)>,
    rules: &Rules,
    jwks: bool,
) -> Result<Vec<FaultFigures>> {
    let (fault_len, recovery_len, slow, oversize) = if jwks {
        (JWKS_FAULT, JWKS_RECOVERY, JWKS_TIMEOUT + MARGIN, 300_000)
    } else {
        (FAULT, RECOVERY, CALL_TIMEOUT * 3, 2_000_000)
    };
    let total = STEADY + (fault_len + recovery_len) * FAULTS.len() as u32;
    let warmup = Duration::from_secs(1);
    let capacity = (RATE * (warmup + total + Duration::from_secs(12)).as_secs_f64()) as usize;
    let timeline = Timeline::new(templates, capacity);
    let mut config = DriverConfig::open_loop(rig.addr(), RATE);
    config.label = format!("faults-{}", rig.name);
    config.warmup = warmup;
    config.duration = total + Duration::from_millis(500);
    // Far beyond every bound asserted: a request the gateway holds too long is measured, not cut.
    config.timeout = Duration::from_secs(20);
    let tracked = Arc::new(Tracked(Arc::clone(&timeline)));
    let driver = std::thread::spawn({
        let tracked = Arc::clone(&tracked);
        move || driver::run(&config, tracked.clone(), tracked)
    });

    std::thread::sleep(warmup + STEADY);
    let mut marks = Vec::new();
    for fault in FAULTS {
        let before = rig
            .idp
            .count(if jwks { CERTS } else { INTROSPECT })
            .unwrap_or(0);
        let start = timeline.now();
        rig.inject(fault, slow, oversize)?;
        std::thread::sleep(fault_len);
        rig.heal(fault)?;
        let healed = timeline.now();
        std::thread::sleep(recovery_len);
        let after = rig.idp.count(if jwks { CERTS } else { INTROSPECT })?;
        // A dead IdP counts nothing; a restarted one counts from zero. Whether the gateway
        // tried to reach it is then seen in the refusals (introspection) or not at all (keys).
        let reached = fault == Fault::Die || after > before;
        marks.push((fault, start, healed, timeline.now(), reached));
    }
    let result = driver.join().expect("the driver thread")?;

    // Requests sent just before the first fault may still be waiting for the IdP when it hits.
    let steady = timeline.between(warmup, warmup + STEADY / 2);
    let mut figures = vec![figures_of(
        rig.name,
        "none (steady)",
        &steady,
        warmup + STEADY,
        rules,
        false,
    )];
    // An arrival finding every connection busy is dropped, never sent, and so in no window:
    // only the driver's count shows that the gateway held requests that long.
    if result.dropped > 0 || result.errors.total() > 0 {
        figures[0].violations.push(format!(
            "the driver dropped {} arrivals, {:?} errors",
            result.dropped, result.errors
        ));
    }
    for (fault, start, healed, end, reached) in marks {
        let records = timeline.between(start, end.saturating_sub(SETTLE));
        let mut figure = figures_of(rig.name, fault.name(), &records, healed, rules, true);
        if !reached {
            figure
                .violations
                .push("the gateway never called the IdP during the fault".into());
        }
        if rules.valid_may_fail
            && !records
                .iter()
                .any(|r| r.kind == Kind::Valid && r.status == 503)
        {
            figure
                .violations
                .push("the fault refused nothing: it did not reach the gateway".into());
        }
        figures.push(figure);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stats = runtime.block_on(rig.gateway.envoy.stats())?;
    let counters: Vec<String> = stats
        .iter()
        .filter(|(name, value)| name.starts_with("wasmcustom.tokengate") && **value > 0)
        .map(|(name, value)| format!("{}={value}", &name["wasmcustom.tokengate.".len()..]))
        .collect();
    println!("{}: {}", rig.name, counters.join(" "));
    Ok(figures)
}

fn figures_of(
    gateway: &str,
    fault: &str,
    records: &[Record],
    healed: Duration,
    rules: &Rules,
    faulty: bool,
) -> FaultFigures {
    let mut statuses = BTreeMap::new();
    let mut violations = Vec::new();
    let mut worst = Duration::ZERO;
    let mut worst_valid = Duration::ZERO;
    let mut refused_after: Vec<String> = Vec::new();
    let mut last_refused_valid = None;
    for record in records {
        let status = if record.latency.is_some() {
            record.status.to_string()
        } else {
            "none".into()
        };
        *statuses.entry(status).or_insert(0) += 1;
        let Some(latency) = record.latency else {
            violations.push(format!(
                "a request sent at {:?} was never answered",
                record.sent
            ));
            continue;
        };
        worst = worst.max(latency);
        if record.kind == Kind::Valid {
            worst_valid = worst_valid.max(latency);
        }
        let allowed: &[u16] = match record.kind {
            Kind::Valid if faulty && rules.valid_may_fail => &[200, 503],
            Kind::Valid => &[200],
            Kind::Refused if faulty && rules.fail_open => &[200, 401],
            Kind::Refused => &[401, 503],
            Kind::Forged => &[401],
        };
        if !allowed.contains(&record.status) {
            violations.push(format!(
                "{:?} token answered {} at {:?}",
                record.kind, record.status, record.sent
            ));
        }
        if record.status == 503 && !record.retry_after {
            violations.push(format!("503 without Retry-After at {:?}", record.sent));
        }
        if record.kind == Kind::Valid && record.status != 200 && record.sent >= healed {
            last_refused_valid = Some(record.sent);
            refused_after.push(format!(
                "+{}ms:{}({}ms)",
                (record.sent - healed).as_millis(),
                record.status,
                latency.as_millis()
            ));
        }
    }
    if worst > rules.worst {
        violations.push(format!(
            "a request waited {worst:?}, beyond {:?}",
            rules.worst
        ));
    }
    let recovery = last_refused_valid.map_or(Duration::ZERO, |at| at.saturating_sub(healed));
    let passed_after = records.iter().any(|r| {
        r.kind == Kind::Valid && r.status == 200 && last_refused_valid.is_none_or(|at| r.sent > at)
    });
    if !passed_after {
        violations.push("no good token passed after the IdP was back".into());
    }
    if faulty && recovery > rules.recovery {
        let last: Vec<&String> = refused_after.iter().rev().take(6).collect();
        violations.push(format!(
            "good tokens still refused {recovery:?} after the IdP was back ({} of them, last {last:?})",
            refused_after.len()
        ));
    }
    if worst_valid > rules.worst_valid {
        violations.push(format!(
            "a good token waited {worst_valid:?}, beyond {:?}",
            rules.worst_valid
        ));
    }
    violations.dedup();
    violations.truncate(8);
    FaultFigures {
        gateway: gateway.to_owned(),
        fault: fault.to_owned(),
        requests: records.len(),
        worst_latency_ms: worst.as_millis() as u64,
        worst_valid_latency_ms: worst_valid.as_millis() as u64,
        statuses,
        recovery_ms: recovery.as_millis() as u64,
        violations,
    }
}

/// `introspect`: every token is the IdP's to judge; one in ten is revoked.
fn introspect() -> Result<Vec<FaultFigures>> {
    let patch = json!({"introspection": {"timeout_ms": CALL_TIMEOUT.as_millis() as u64}});
    let mut rig = Rig::start("introspect", GatewaySpec::new("introspect").patch(patch))?;
    let revoked = rig.token().claim("jti", "revoked").sign(TestKey::rsa_a());
    rig.revoke(&revoked)?;
    let mut templates: Vec<_> = (0..9)
        .map(|i| {
            (
                Kind::Valid,
                bearer(
                    &rig.token()
                        .claim("jti", format!("good-{i}"))
                        .sign(TestKey::rsa_a()),
                ),
            )
        })
        .collect();
    templates.push((Kind::Refused, bearer(&revoked)));
    let rules = Rules {
        worst: CALL_TIMEOUT + MARGIN,
        worst_valid: CALL_TIMEOUT + MARGIN,
        recovery: CALL_TIMEOUT + MARGIN,
        valid_may_fail: true,
        fail_open: false,
    };
    run(&mut rig, templates, &rules, false)
}

/// `hybrid`, its answers not cached (a cached answer would hide the fault): local checks first,
/// so a forged token is 401 whatever the IdP does; a revoked one is never admitted unless
/// `fail_open` (`on_idp_error: allow`) and the IdP cannot answer.
fn hybrid(name: &'static str, fail_open: bool) -> Result<Vec<FaultFigures>> {
    let mut patch = json!({"introspection": {
        "timeout_ms": CALL_TIMEOUT.as_millis() as u64,
        "cache_ttl_seconds": 0, "negative_cache_ttl_seconds": 0,
    }});
    if fail_open {
        patch["on_idp_error"] = "allow".into();
    }
    let mut rig = Rig::start(name, GatewaySpec::new("hybrid").patch(patch))?;
    wait_for_keys(&rig)?;
    let revoked = rig.token().claim("jti", "revoked").sign(TestKey::rsa_a());
    rig.revoke(&revoked)?;
    let good = |i| {
        rig.token()
            .claim("jti", format!("good-{i}"))
            .sign(TestKey::rsa_a())
    };
    let mut templates: Vec<_> = (0..8).map(|i| (Kind::Valid, bearer(&good(i)))).collect();
    templates.push((Kind::Refused, bearer(&revoked)));
    let forged = tamper_signature(&rig.token().sign(TestKey::rsa_a()));
    templates.push((Kind::Forged, bearer(&forged)));
    let rules = Rules {
        worst: CALL_TIMEOUT + MARGIN,
        worst_valid: CALL_TIMEOUT + MARGIN,
        recovery: CALL_TIMEOUT + MARGIN,
        valid_may_fail: !fail_open,
        fail_open,
    };
    let mut figures = run(&mut rig, templates, &rules, false)?;
    if fail_open {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let degraded = runtime.block_on(
            rig.gateway
                .envoy
                .stat("wasmcustom.tokengate.allowed_degraded"),
        )?;
        if degraded == 0
            && let Some(first) = figures.get_mut(1)
        {
            first
                .violations
                .push("nothing was admitted degraded: the faults never reached it".into());
        }
    }
    Ok(figures)
}

/// `jwt` with a remote JWKS: one request in ten carries a `kid` the IdP never published (a
/// hundred distinct ones, more than the filter remembers as missing), so refetches keep coming
/// and meet every fault; the others have their key and must pass, unhindered, throughout.
fn jwt() -> Result<Vec<FaultFigures>> {
    let patch = json!({"jwks": {"remote": {
        "refresh_seconds": 10, "timeout_ms": JWKS_TIMEOUT.as_millis() as u64,
    }}});
    let rig_spec = GatewaySpec::new("jwt").patch(patch);
    let mut rig = Rig::start("jwt", rig_spec)?;
    wait_for_keys(&rig)?;
    let good: Vec<String> = (0..9)
        .map(|i| {
            rig.token()
                .claim("jti", format!("good-{i}"))
                .sign(TestKey::rsa_a())
        })
        .collect();
    let mut templates = Vec::new();
    for k in 0..100 {
        for token in &good {
            templates.push((Kind::Valid, bearer(token)));
        }
        let unknown = TokenSpec::access_token(
            Algorithm::Rs256,
            &format!("rotated-{k}"),
            &rig.issuer(),
            AUDIENCE,
            unix_now(),
        )
        .sign(TestKey::rsa_b());
        templates.push((Kind::Refused, bearer(&unknown)));
    }
    // A request that waited for a fetch would take up to the fetch's timeout.
    let rules = Rules {
        // An unknown `kid` may wait for its refetch, within the fetch's timeout.
        worst: JWKS_TIMEOUT + MARGIN,
        worst_valid: JWKS_TIMEOUT / 2,
        recovery: Duration::ZERO,
        valid_may_fail: false,
        fail_open: false,
    };
    run(&mut rig, templates, &rules, true)
}

fn wait_for_keys(rig: &Rig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(rig.gateway.envoy.wait_for_stat(
            "wasmcustom.tokengate.jwks.keys_loaded",
            1,
            Duration::from_secs(20),
        ))
        .with_context(|| {
            format!(
                "{}: keys never loaded (logs in {})",
                rig.name,
                rig.dir.display()
            )
        })?;
    Ok(())
}

#[test]
fn idp_faults_under_load() -> Result<()> {
    let runs: Vec<std::thread::JoinHandle<Result<Vec<FaultFigures>>>> = vec![
        std::thread::spawn(introspect),
        std::thread::spawn(|| hybrid("hybrid", false)),
        std::thread::spawn(|| hybrid("hybrid-fail-open", true)),
        std::thread::spawn(jwt),
    ];
    let mut figures = Vec::new();
    for run in runs {
        figures.extend(run.join().expect("a gateway's run")?);
    }
    let table = table(&figures);
    println!("{table}");
    let path = loadtest::paths::repo_root()
        .join("target")
        .join("faults.json");
    std::fs::write(&path, serde_json::to_string_pretty(&figures)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let failed: Vec<&FaultFigures> = figures
        .iter()
        .filter(|f| !f.violations.is_empty())
        .collect();
    anyhow::ensure!(failed.is_empty(), "faults not survived:\n{table}");
    Ok(())
}

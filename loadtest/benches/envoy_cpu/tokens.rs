//! Prerequisites (built files) and the token sets the scenarios send.

use super::*;

pub(crate) struct Prerequisites {
    pub(crate) envoy: PathBuf,
    pub(crate) wasm: PathBuf,
    /// The other modules the selected scenarios run.
    pub(crate) modules: BTreeMap<Wasm, PathBuf>,
    pub(crate) backend: PathBuf,
}

pub(crate) fn check_prerequisites(options: &Options) -> Result<Prerequisites> {
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

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

pub(crate) fn token_spec(issuer: &str, now: i64, jti: String) -> TokenSpec {
    TokenSpec::access_token(Algorithm::Rs256, KID, issuer, AUDIENCE, now).claim("jti", jti)
}

/// `count` valid tokens with distinct `jti`, signed with `alg` on every core.
pub(crate) fn mint_unique(
    issuer: &str,
    now: i64,
    count: usize,
    alg: Algorithm,
) -> Result<Vec<String>> {
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

pub(crate) fn bearer_values(tokens: &[String]) -> Result<Vec<HeaderValue>> {
    tokens
        .iter()
        .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).context("token is not a header"))
        .collect()
}

pub(crate) struct TokenSets {
    pub(crate) repeated: Vec<HeaderValue>,
    /// Per curve algorithm a scenario asks for.
    pub(crate) curves: Vec<(Algorithm, Vec<HeaderValue>)>,
    pub(crate) unique: Vec<HeaderValue>,
    pub(crate) tampered: Vec<HeaderValue>,
    pub(crate) mint_time: Option<Duration>,
}

impl TokenSets {
    pub(crate) fn prepare(options: &Options, issuer: &str) -> Result<TokenSets> {
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

    pub(crate) fn for_kind(&self, kind: Tokens) -> Vec<HeaderValue> {
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

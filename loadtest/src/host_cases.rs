//! The host-independent table of cases (`hosts/cases.json`) and its concrete form.
//!
//! The table holds token *specs* and placeholders; [`generate`] mints the tokens with the
//! test keys (`tokengate::testkit`), resolves configuration bases, times relative to now and
//! JWKS documents, checks every configuration against the filter's own parser, and returns
//! [`Concrete`]: plain requests and expected answers that every host tier reads the same way
//! (the Envoy tier here, the wasmtime and Chicory tiers under `hosts/`). The format is described
//! in `hosts/README.md`; its types live in `hosts/cases` (re-exported here), so the writer and
//! every Rust reader share one definition.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::testkit::{TestKey, TokenSpec, jwks, sign_raw, tamper_signature};
pub use tokengate_host_cases::{
    BadConfig, CallCount, Case, Concrete, Expect, Forward, IdpAnswer, Need, Reply, Request, Step,
    Totals, Until, check, is_outcome_counter,
};

use crate::render::merge_patch;

// ---------------------------------------------------------------------------------------------
// The table as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    issuer: String,
    audience: String,
    keysets: BTreeMap<String, Vec<KeyRef>>,
    tokens: BTreeMap<String, TokenDef>,
    configs: BTreeMap<String, Value>,
    bad_configs: Vec<BadConfigDef>,
    cases: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    key: String,
    kid: String,
    alg: String,
    #[serde(rename = "use", default = "sig")]
    key_use: String,
}

fn sig() -> String {
    "sig".to_owned()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenDef {
    /// Another token this one is derived from (only with `tamper`).
    base: Option<String>,
    #[serde(default = "rsa_a")]
    key: String,
    kid: Option<String>,
    #[serde(default)]
    header: Map<String, Value>,
    #[serde(default)]
    claims: Map<String, Value>,
    /// The token text as is.
    raw: Option<String>,
    /// Signs this payload text instead of the claims.
    payload_raw: Option<String>,
    /// Leaves the token unsigned with this signature segment.
    signature_segment: Option<String>,
    #[serde(default)]
    tamper: bool,
}

fn rsa_a() -> String {
    "rsa-a".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BadConfigDef {
    name: String,
    base: String,
    patch: Value,
    field: String,
}

fn test_key(name: &str) -> Result<&'static TestKey> {
    Ok(match name {
        "rsa-a" => TestKey::rsa_a(),
        "rsa-b" => TestKey::rsa_b(),
        "rsa-3072" => TestKey::rsa_3072(),
        "rsa-weak" => TestKey::rsa_weak(),
        "p256" => TestKey::p256(),
        "ed25519" => TestKey::ed25519(),
        other => {
            bail!("unknown test key `{other}` (rsa-a, rsa-b, rsa-3072, rsa-weak, p256, ed25519)")
        }
    })
}

fn key_algorithm(key: &str) -> Algorithm {
    match key {
        "p256" => Algorithm::Es256,
        "ed25519" => Algorithm::EdDsa,
        _ => Algorithm::Rs256,
    }
}

fn default_kid(key: &str) -> Option<&'static str> {
    match key {
        "rsa-a" => Some("k1"),
        "p256" => Some("ec1"),
        _ => None,
    }
}

/// Placeholders resolved in every string and object of the table.
struct Placeholders<'a> {
    now: i64,
    issuer: &'a str,
    jwks: &'a BTreeMap<String, Value>,
    tokens: &'a BTreeMap<String, String>,
}

impl Placeholders<'_> {
    fn expand(&self, value: &Value) -> Result<Value> {
        Ok(match value {
            Value::String(text) => self.expand_string(text)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.expand(item))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(object) => {
                if let Some(name) = object.get("$jwks") {
                    let name = name.as_str().ok_or_else(|| anyhow!("$jwks takes a name"))?;
                    return self
                        .jwks
                        .get(name)
                        .cloned()
                        .ok_or_else(|| anyhow!("unknown keyset `{name}`"));
                }
                if let Some(unit) = object.get("$repeat") {
                    let unit = unit
                        .as_str()
                        .ok_or_else(|| anyhow!("$repeat takes a string"))?;
                    let times = object
                        .get("times")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| anyhow!("$repeat needs `times`"))?;
                    return Ok(Value::String(unit.repeat(usize::try_from(times)?)));
                }
                let mut out = Map::new();
                for (key, item) in object {
                    out.insert(key.clone(), self.expand(item)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn expand_string(&self, text: &str) -> Result<Value> {
        if text == "$issuer" {
            return Ok(Value::String(self.issuer.to_owned()));
        }
        if let Some(rest) = text.strip_prefix("$now") {
            let offset: i64 = match rest.strip_prefix('+') {
                Some(n) => n.parse()?,
                None if rest.is_empty() => 0,
                None => -rest
                    .strip_prefix('-')
                    .ok_or_else(|| anyhow!("bad time `{text}`"))?
                    .parse::<i64>()?,
            };
            return Ok(json!(self.now + offset));
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{token:") {
            out.push_str(&rest[..start]);
            let after = &rest[start + "{{token:".len()..];
            let end = after
                .find("}}")
                .ok_or_else(|| anyhow!("unclosed token placeholder in `{text}`"))?;
            let name = &after[..end];
            let token = self
                .tokens
                .get(name)
                .ok_or_else(|| anyhow!("unknown token `{name}`"))?;
            out.push_str(token);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }
}

fn mint(
    name: &str,
    def: &TokenDef,
    minted: &BTreeMap<String, String>,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<String> {
    if let Some(base) = &def.base {
        ensure!(def.tamper, "a token with `base` must say `tamper`");
        let token = minted
            .get(base)
            .ok_or_else(|| anyhow!("base `{base}` must be defined (and minted) first"))?;
        return Ok(tamper_signature(token));
    }
    if let Some(raw) = &def.raw {
        return Ok(raw.clone());
    }
    let key = test_key(&def.key)?;
    let alg = key_algorithm(&def.key);
    let kid = def
        .kid
        .as_deref()
        .or(default_kid(&def.key))
        .ok_or_else(|| anyhow!("key `{}` has no default kid: give `kid`", def.key))?;
    let mut spec = TokenSpec::access_token(alg, kid, issuer, audience, now)
        .claim("jti", format!("jti-{name}-{now}"));
    let context = Placeholders {
        now,
        issuer,
        jwks: &BTreeMap::new(),
        tokens: &BTreeMap::new(),
    };
    for (field, value) in &def.header {
        spec = match value {
            Value::Null => spec.without_header(field),
            value => spec.header(field, context.expand(value)?),
        };
    }
    for (claim, value) in &def.claims {
        spec = match value {
            Value::Null => spec.without_claim(claim),
            value => spec.claim(claim, context.expand(value)?),
        };
    }
    let token = if let Some(segment) = &def.signature_segment {
        spec.with_signature_segment(segment)
    } else if let Some(payload) = &def.payload_raw {
        sign_raw(
            &Value::Object(spec.header.clone()).to_string(),
            payload,
            key,
            alg,
        )
    } else {
        spec.sign(key)
    };
    Ok(if def.tamper {
        tamper_signature(&token)
    } else {
        token
    })
}

fn keyset(keys: &[KeyRef]) -> Result<Value> {
    let mut published = Vec::new();
    for entry in keys {
        let key = test_key(&entry.key)?;
        let mut jwk = key.public_jwk(&entry.kid, Some(&entry.alg));
        jwk["use"] = entry.key_use.clone().into();
        published.push(jwk);
    }
    Ok(jwks(&published))
}

/// Resolves `$base` (a merge patch over another configuration), recursively.
fn resolve_config(name: &str, configs: &BTreeMap<String, Value>, depth: usize) -> Result<Value> {
    ensure!(depth < 8, "configuration `{name}`: `$base` chain too long");
    let config = configs
        .get(name)
        .ok_or_else(|| anyhow!("unknown configuration `{name}`"))?;
    let Some(base) = config.get("$base") else {
        return Ok(config.clone());
    };
    let base = base
        .as_str()
        .ok_or_else(|| anyhow!("configuration `{name}`: `$base` takes a name"))?;
    let mut resolved = resolve_config(base, configs, depth + 1)?;
    let mut patch = config.clone();
    if let Some(patch) = patch.as_object_mut() {
        patch.remove("$base");
    }
    merge_patch(&mut resolved, &patch);
    Ok(resolved)
}

/// Reads the table at `path` and generates its concrete form at time `now`.
pub fn generate_file(path: &Path, now: i64) -> Result<Concrete> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    generate(&text, now).with_context(|| format!("generating cases from {}", path.display()))
}

/// Generates the concrete cases from the table's text at time `now` (Unix seconds).
pub fn generate(table: &str, now: i64) -> Result<Concrete> {
    let table: Table = serde_json::from_str(table).context("the table does not parse")?;
    let mut keysets = BTreeMap::new();
    for (name, keys) in &table.keysets {
        keysets.insert(
            name.clone(),
            keyset(keys).with_context(|| format!("keyset `{name}`"))?,
        );
    }
    let mut tokens = BTreeMap::new();
    // Tokens derived from another (`base`) are minted after every plain one.
    let (derived, plain): (Vec<_>, Vec<_>) =
        table.tokens.iter().partition(|(_, def)| def.base.is_some());
    for (name, def) in plain.into_iter().chain(derived) {
        let token = mint(name, def, &tokens, &table.issuer, &table.audience, now)
            .with_context(|| format!("token `{name}`"))?;
        tokens.insert(name.clone(), token);
    }
    let context = Placeholders {
        now,
        issuer: &table.issuer,
        jwks: &keysets,
        tokens: &tokens,
    };

    let mut configs = BTreeMap::new();
    for name in table.configs.keys() {
        let config = context.expand(&resolve_config(name, &table.configs, 0)?)?;
        if let Err(err) = tokengate::config::parse(config.to_string().as_bytes()) {
            bail!("configuration `{name}` is refused by the filter: {err}");
        }
        configs.insert(name.clone(), config);
    }

    let mut bad_configs = Vec::new();
    for bad in &table.bad_configs {
        let mut config = configs
            .get(&bad.base)
            .cloned()
            .ok_or_else(|| anyhow!("bad config `{}`: unknown base `{}`", bad.name, bad.base))?;
        merge_patch(&mut config, &context.expand(&bad.patch)?);
        let log = format!("tokengate: invalid configuration: field `{}`", bad.field);
        match tokengate::config::parse(config.to_string().as_bytes()) {
            Ok(_) => bail!("bad config `{}` is accepted by the filter", bad.name),
            Err(err) if err.field != bad.field => bail!(
                "bad config `{}`: the filter names field `{}`, the table `{}` ({err})",
                bad.name,
                err.field,
                bad.field
            ),
            Err(_) => {}
        }
        bad_configs.push(BadConfig {
            name: bad.name.clone(),
            config,
            field: bad.field.clone(),
            log,
        });
    }

    let mut cases = Vec::new();
    for raw in &table.cases {
        let name = raw["name"].as_str().unwrap_or("(unnamed)").to_owned();
        let case = expand_case(&context, raw).with_context(|| format!("case `{name}`"))?;
        check_case(&case, &configs).with_context(|| format!("case `{name}`"))?;
        cases.push(case);
    }
    Ok(Concrete {
        generated_at: now,
        issuer: table.issuer,
        configs,
        bad_configs,
        cases,
        tokens,
    })
}

/// IdP answers carry their body as text: a JSON body in the table becomes its serialization.
fn stringify_bodies(answers: &mut Value) {
    let Some(answers) = answers.as_object_mut() else {
        return;
    };
    for answer in answers.values_mut() {
        if let Some(body) = answer.get_mut("body")
            && !body.is_string()
        {
            *body = Value::String(body.to_string());
        }
    }
}

/// Expands a case and turns JSON bodies of IdP answers into their text.
fn expand_case(context: &Placeholders<'_>, raw: &Value) -> Result<Case> {
    let mut expanded = context.expand(raw)?;
    if let Some(idp) = expanded.get_mut("idp") {
        stringify_bodies(idp);
    }
    if let Some(steps) = expanded.get_mut("steps").and_then(Value::as_array_mut) {
        for step in steps {
            if let Some(idp) = step.get_mut("idp") {
                stringify_bodies(idp);
            }
        }
    }
    serde_json::from_value(expanded).map_err(|err| anyhow!("{err}"))
}

fn check_case(case: &Case, configs: &BTreeMap<String, Value>) -> Result<()> {
    for config in std::iter::once(&case.config).chain(&case.roots) {
        ensure!(
            configs.contains_key(config),
            "unknown configuration `{config}`"
        );
    }
    ensure!((1..=2).contains(&case.vms), "`vms` is 1 or 2");
    ensure!(!case.steps.is_empty(), "no steps");
    for (index, step) in case.steps.iter().enumerate() {
        let kinds = [
            step.request.is_some(),
            step.idp.is_some(),
            step.until.is_some(),
            step.ticks.is_some(),
        ];
        ensure!(
            kinds.iter().filter(|set| **set).count() == 1,
            "step {index}: exactly one of request, idp, until, ticks"
        );
        if let Some(request) = &step.request {
            ensure!(request.vm < case.vms, "step {index}: no VM {}", request.vm);
            ensure!(
                request.root < case.roots.len().max(1),
                "step {index}: no root {}",
                request.root
            );
            ensure!(request.path.starts_with('/'), "step {index}: path");
            let expect = step
                .expect
                .as_ref()
                .ok_or_else(|| anyhow!("step {index}: a request needs `expect`"))?;
            ensure!(
                expect.forward.is_some() != expect.reply.is_some(),
                "step {index}: expect exactly one of continue, reply"
            );
        }
        if let Some(until) = &step.until {
            ensure!(
                until.gauge.is_some() != until.counter.is_some(),
                "step {index}: until names one gauge or one counter"
            );
            ensure!(
                step.max_seconds.is_some(),
                "step {index}: until needs max_seconds"
            );
        }
        if let Some(expect) = &step.expect {
            for name in expect.metrics.keys().chain(expect.gauges.keys()) {
                ensure!(
                    name.starts_with("tokengate."),
                    "step {index}: metric {name}"
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_table_generates() {
        let path = crate::paths::repo_root().join("hosts/cases.json");
        let concrete = generate_file(&path, 1_800_000_000).unwrap();
        assert!(concrete.cases.len() > 20);
        assert!(concrete.cases.iter().any(|case| case.short));
        // Round trip: what the tiers read is what was written.
        let text = serde_json::to_string(&concrete).unwrap();
        let back: Concrete = serde_json::from_str(&text).unwrap();
        assert_eq!(back.cases.len(), concrete.cases.len());
    }

    #[test]
    fn placeholders_expand() {
        let tokens = BTreeMap::from([("t".to_owned(), "abc".to_owned())]);
        let context = Placeholders {
            now: 100,
            issuer: "iss",
            jwks: &BTreeMap::new(),
            tokens: &tokens,
        };
        let value = json!({
            "a": "$now+5", "b": "$now-5", "c": "$now", "d": "$issuer",
            "e": "Bearer {{token:t}}!", "f": {"$repeat": "xy", "times": 3}
        });
        assert_eq!(
            context.expand(&value).unwrap(),
            json!({"a": 105, "b": 95, "c": 100, "d": "iss", "e": "Bearer abc!", "f": "xyxyxy"})
        );
        assert!(context.expand(&json!("{{token:nope}}")).is_err());
    }

    #[test]
    fn a_wrong_field_in_a_bad_config_is_caught() {
        let table = json!({
            "issuer": "https://i", "audience": "a", "keysets": {"k": [{"key": "rsa-a", "kid": "k1", "alg": "RS256"}]},
            "tokens": {}, "configs": {"c": {"issuer": "$issuer", "audiences": ["a"], "jwks": {"inline": {"$jwks": "k"}}}},
            "bad_configs": [{"name": "x", "base": "c", "patch": {"audiences": 5}, "field": "mode"}],
            "cases": []
        });
        let err = generate(&table.to_string(), 1).unwrap_err();
        assert!(
            format!("{err:#}").contains("names field `audiences`"),
            "{err:#}"
        );
    }

    #[test]
    fn call_counts() {
        assert!(CallCount::Exact(1).admits(1));
        assert!(!CallCount::Exact(1).admits(2));
        assert!(CallCount::Range { min: 1, max: 2 }.admits(2));
        let parsed: CallCount = serde_json::from_value(json!({"min": 0, "max": 3})).unwrap();
        assert_eq!(parsed, CallCount::Range { min: 0, max: 3 });
    }
}

//! The `policy` gateway (envoy/policy.yaml) in real Envoy with the built filter: two issuers
//! (one with a fixed JWKS, one found through OpenID Connect Discovery) served by a local IdP,
//! every rule, requirement, match and condition kind, the identity tokengate publishes for
//! Envoy's RBAC filter and access log, and the route chosen again after its header changes.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod identity;
mod introspection;
mod kinds;
mod rules;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use common::{AUDIENCE, SUB, unix_now};
use loadtest::http::{self, Response};
use loadtest::jwks_server::JwksServer;
use loadtest::process::ManagedProcess;
use loadtest::stack::{GatewaySpec, RunningGateway, start_gateway_edited};
use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::testkit::{TestKey, TokenSpec, jwks, tamper_signature};

const INTERNAL_CERTS: &str = "/realms/tokengate/protocol/openid-connect/certs";
const PARTNER_DISCOVERY: &str = "/realms/tokengate-partner/.well-known/openid-configuration";
const PARTNER_CERTS: &str = "/realms/tokengate-partner/protocol/openid-connect/certs";

struct PolicyGateway {
    _dir: PathBuf,
    _backend: ManagedProcess,
    idp: JwksServer,
    gateway: RunningGateway,
}

impl PolicyGateway {
    fn start(spec: GatewaySpec) -> Result<PolicyGateway> {
        Self::start_edited(spec, |text| Ok(text.to_owned()))
    }

    fn start_edited(
        spec: GatewaySpec,
        edit: impl FnOnce(&str) -> Result<String>,
    ) -> Result<PolicyGateway> {
        let dir = loadtest::paths::run_dir("e2e-policy");
        let (backend, backend_addr) = loadtest::backend::spawn(&dir, "backend", 1)?;
        let mut idp = JwksServer::reserve()?;
        let base = format!("http://127.0.0.1:{}", idp.port());
        idp.set_response(
            INTERNAL_CERTS,
            200,
            jwks(&[TestKey::rsa_a().public_jwk("k1", Some("RS256"))]).to_string(),
        );
        idp.set_response(
            PARTNER_DISCOVERY,
            200,
            json!({
                "issuer": format!("{base}/realms/tokengate-partner"),
                "jwks_uri": format!("{base}{PARTNER_CERTS}"),
            })
            .to_string(),
        );
        idp.set_response(
            PARTNER_CERTS,
            200,
            jwks(&[TestKey::p256().public_jwk("ec-b", Some("ES256"))]).to_string(),
        );
        idp.start()?;
        let gateway = start_gateway_edited(&dir, &spec, backend_addr.port(), idp.port(), edit)?;
        Ok(PolicyGateway {
            _dir: dir,
            _backend: backend,
            idp,
            gateway,
        })
    }

    fn issuer(&self, realm: &str) -> String {
        format!("http://127.0.0.1:{}/realms/{realm}", self.idp.port())
    }

    fn internal(&self) -> TokenSpec {
        TokenSpec::access_token(
            Algorithm::Rs256,
            "k1",
            &self.issuer("tokengate"),
            AUDIENCE,
            unix_now(),
        )
    }

    fn partner(&self) -> TokenSpec {
        TokenSpec::access_token(
            Algorithm::Es256,
            "ec-b",
            &self.issuer("tokengate-partner"),
            AUDIENCE,
            unix_now(),
        )
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
        http::get(&self.gateway.url(path), headers).await
    }

    async fn stat(&self, name: &str) -> Result<u64> {
        self.gateway.envoy.stat(&format!("wasmcustom.{name}")).await
    }

    async fn wait_for_keys(&self, provider: &str) -> Result<()> {
        let name = format!("wasmcustom.tokengate.provider.{provider}.jwks.keys_loaded");
        self.gateway
            .envoy
            .wait_for_stat(&name, 1, Duration::from_secs(20))
            .await
            .map(|_| ())
    }
}

/// One request: its status, its challenge, and the metrics it must have moved by one.
async fn expect(
    policy: &PolicyGateway,
    case: &str,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
    challenge: Option<&str>,
    metrics: &[&str],
) -> Result<Response> {
    let mut before = Vec::new();
    for metric in metrics {
        before.push(policy.stat(metric).await?);
    }
    let response = policy.get(path, headers).await?;
    if response.status != status {
        bail!(
            "{case}: status {} (expected {status}): {}",
            response.status,
            response.text()
        );
    }
    if let Some(expected) = challenge
        && response.header("www-authenticate") != Some(expected)
    {
        bail!(
            "{case}: WWW-Authenticate {:?} (expected {expected:?})",
            response.header("www-authenticate")
        );
    }
    for (metric, before) in metrics.iter().zip(before) {
        let after = policy.stat(metric).await?;
        if after != before + 1 {
            bail!("{case}: {metric} went from {before} to {after}");
        }
    }
    println!("ok: {case} -> {status}");
    Ok(response)
}

fn identity(response: &Response) -> Value {
    response
        .json()
        .map(|body| body["identity"].clone())
        .unwrap_or_default()
}

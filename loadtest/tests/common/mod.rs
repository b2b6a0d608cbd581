//! A gateway under test: the backend and a local JWKS server as child processes, Envoy with
//! a rendered gateway template, all on free ports.

#![allow(dead_code)]

pub mod fake_idp;
pub mod timeline;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use loadtest::backend;
use loadtest::http::{self, Response};
use loadtest::jwks_server::JwksServer;
use loadtest::process::ManagedProcess;
use loadtest::stack::{GatewaySpec, RunningGateway, start_gateway};
use serde_json::Value;
use tokengate::algorithm::Algorithm;
use tokengate::testkit::{TestKey, TokenSpec, jwks};

pub const CERTS: &str = "/realms/tokengate/protocol/openid-connect/certs";
pub const AUDIENCE: &str = "tokengate-api";
pub const SUB: &str = "f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c";

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The IdP's published key set: the signing keys plus, like Keycloak, an encryption key that
/// must be ignored, and a weak key that must be refused.
pub fn published_keys(extra: &[Value]) -> String {
    let mut enc = TestKey::rsa_b().public_jwk("enc-key", Some("RSA-OAEP"));
    enc["use"] = "enc".into();
    let mut keys = vec![
        TestKey::rsa_a().public_jwk("k1", Some("RS256")),
        TestKey::p256().public_jwk("ec1", Some("ES256")),
        enc,
        TestKey::rsa_weak().public_jwk("weak", Some("RS256")),
    ];
    keys.extend_from_slice(extra);
    jwks(&keys).to_string()
}

pub struct Fixture {
    _dir: PathBuf,
    _backend: ManagedProcess,
    pub idp: JwksServer,
    pub gateway: RunningGateway,
}

impl Fixture {
    pub fn start(spec: GatewaySpec) -> Result<Fixture> {
        Self::start_with(spec, true)
    }

    /// `idp_up = false` starts Envoy while the JWKS server does not listen yet.
    pub fn start_with(spec: GatewaySpec, idp_up: bool) -> Result<Fixture> {
        let dir = loadtest::paths::run_dir(&format!("e2e-{}", spec.gateway));
        let (backend, backend_addr) = backend::spawn(&dir, "backend", 1)?;
        let mut idp = JwksServer::reserve()?;
        idp.set_response(CERTS, 200, published_keys(&[]));
        if idp_up {
            idp.start()?;
        }
        let gateway = start_gateway(&dir, &spec, backend_addr.port(), idp.port())?;
        Ok(Fixture {
            _dir: dir,
            _backend: backend,
            idp,
            gateway,
        })
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}/realms/tokengate", self.idp.port())
    }

    pub fn token(&self) -> TokenSpec {
        TokenSpec::access_token(Algorithm::Rs256, "k1", &self.issuer(), AUDIENCE, unix_now())
    }

    pub fn valid_token(&self) -> String {
        self.token().sign(TestKey::rsa_a())
    }

    pub async fn get(&self, headers: &[(&str, &str)]) -> Result<Response> {
        http::get(&self.gateway.url("/orders/42?page=1"), headers).await
    }

    pub async fn get_bearer(&self, token: &str) -> Result<Response> {
        let value = format!("Bearer {token}");
        self.get(&[("authorization", &value)]).await
    }

    pub async fn stat(&self, name: &str) -> Result<u64> {
        self.gateway.envoy.stat(&format!("wasmcustom.{name}")).await
    }

    pub async fn wait_for_keys(&self) -> Result<()> {
        self.gateway
            .envoy
            .wait_for_stat(
                "wasmcustom.tokengate.jwks.keys_loaded",
                1,
                Duration::from_secs(20),
            )
            .await
            .map(|_| ())
    }
}

//! One Envoy with two listeners that differ only in their authentication filter: `ingress`
//! runs tokengate (the `jwt` gateway), `reference` runs `envoy.filters.http.jwt_authn` (the
//! `native-jwt` gateway). Both read the same key set from one local JWKS server, with the same
//! issuer, audience and clock skew, and route to the same backend.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use tokengate::testkit::{TestKey, jwks};

use crate::envoy::{Envoy, EnvoyOptions};
use crate::jwks_server::JwksServer;
use crate::process::ManagedProcess;
use crate::stack::{GatewaySpec, render_native};

/// Where the gateways' JWKS lives on the IdP (the realm is always `tokengate`).
pub const CERTS: &str = "/realms/tokengate/protocol/openid-connect/certs";
pub const AUDIENCE: &str = "tokengate-api";
/// The leeway both filters are given (the templates' value).
pub const CLOCK_SKEW: i64 = 5;

/// The key set both filters trust: one key per family with its `alg`, an RSA key without
/// `alg` (any RSA algorithm), an encryption key that must be ignored and an RSA 1024 key that
/// tokengate refuses to load.
pub fn published_keys() -> String {
    let mut enc = TestKey::rsa_b().public_jwk("enc-key", Some("RSA-OAEP"));
    enc["use"] = "enc".into();
    jwks(&[
        TestKey::rsa_a().public_jwk("k1", Some("RS256")),
        TestKey::rsa_3072().public_jwk("k3", None),
        TestKey::p256().public_jwk("ec1", Some("ES256")),
        TestKey::ed25519().public_jwk("ed1", Some("EdDSA")),
        enc,
        TestKey::rsa_weak().public_jwk("weak", Some("RS256")),
    ])
    .to_string()
}

/// tokengate's settings on top of the `jwt` template: every algorithm jwt_authn verifies with
/// these keys, so an algorithm list is not counted as a difference.
pub fn tokengate_patch() -> Value {
    json!({
        "algorithms": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA"],
        "clock_skew_seconds": CLOCK_SKEW,
    })
}

pub struct DiffStack {
    _backend: ManagedProcess,
    pub idp: JwksServer,
    pub envoy: Envoy,
    pub reference_port: u16,
    pub dir: PathBuf,
}

impl DiffStack {
    /// Starts the backend, the JWKS server and Envoy; `extra_patch` is merged into tokengate's
    /// configuration after [`tokengate_patch`] (a test widens the skew with it to show that
    /// the comparison catches a filter admitting too much).
    pub fn start(extra_patch: Option<Value>) -> Result<DiffStack> {
        let dir = crate::paths::run_dir("differential");
        let (backend, backend_addr) = crate::backend::spawn(&dir, "backend", 1)?;
        let mut idp = JwksServer::reserve()?;
        idp.set_response(CERTS, 200, published_keys());
        idp.start()?;
        let mut patch = tokengate_patch();
        if let (Some(extra), Some(object)) = (extra_patch, patch.as_object_mut()) {
            for (key, value) in extra.as_object().cloned().unwrap_or_default() {
                object.insert(key, value);
            }
        }
        let tokengate = render_native(
            &dir,
            &GatewaySpec::new("jwt").patch(patch),
            backend_addr.port(),
            idp.port(),
        )?;
        let reference_dir = dir.join("reference");
        crate::paths::ensure_dir(&reference_dir)?;
        let reference = render_native(
            &reference_dir,
            &GatewaySpec::new("native-jwt"),
            backend_addr.port(),
            idp.port(),
        )?;
        let reference_port = crate::ports::free_port().context("a port for the reference")?;
        let config_path = dir.join("differential.yaml");
        let combined = combine(
            &tokengate.config_path,
            &reference.config_path,
            reference_port,
        )?;
        std::fs::write(&config_path, combined)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let envoy = Envoy::start(
            &config_path,
            tokengate.topology.admin_port,
            tokengate.topology.listen_port,
            &EnvoyOptions::from_paths()?,
            &dir,
        )?;
        Ok(DiffStack {
            _backend: backend,
            idp,
            envoy,
            reference_port,
            dir,
        })
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}/realms/tokengate", self.idp.port())
    }

    pub fn tokengate_url(&self) -> String {
        self.envoy.listen_url("/orders/42")
    }

    pub fn reference_url(&self) -> String {
        format!("http://127.0.0.1:{}/orders/42", self.reference_port)
    }
}

/// The tokengate bootstrap with the reference's listener added as `reference` on its own port
/// and stat prefix. The clusters are the same in both templates (a test in render.rs holds the
/// gateways to differing only in their HTTP filters), so the tokengate file's serve both.
fn combine(tokengate: &Path, reference: &Path, reference_port: u16) -> Result<String> {
    let read = |path: &Path| -> Result<Value> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_norway::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let mut config = read(tokengate)?;
    let mut listener = read(reference)?
        .pointer("/static_resources/listeners/0")
        .cloned()
        .ok_or_else(|| anyhow!("{} has no listener", reference.display()))?;
    listener["name"] = "reference".into();
    let port = listener
        .pointer_mut("/address/socket_address/port_value")
        .ok_or_else(|| anyhow!("the reference listener has no port"))?;
    *port = reference_port.into();
    let prefix = listener
        .pointer_mut("/filter_chains/0/filters/0/typed_config/stat_prefix")
        .ok_or_else(|| anyhow!("the reference listener has no stat_prefix"))?;
    *prefix = "reference".into();
    config
        .pointer_mut("/static_resources/listeners")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| anyhow!("{} has no listeners", tokengate.display()))?
        .push(listener);
    serde_norway::to_string(&config).context("writing the combined configuration")
}

//! Every gateway of `envoy/` starts from its template and behaves as its scenario says, with
//! locally minted tokens (the Keycloak suite repeats this with real Keycloak tokens).

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anyhow::{Result, ensure};
use common::{Fixture, unix_now};
use loadtest::stack::GatewaySpec;
use tokengate::testkit::{TestKey, tamper_signature};

struct Expected {
    gateway: &'static str,
    valid: u16,
    expired: u16,
    tampered: u16,
    missing: u16,
}

const MATRIX: [Expected; 4] = [
    Expected {
        gateway: "no-auth",
        valid: 200,
        expired: 200,
        tampered: 200,
        missing: 200,
    },
    Expected {
        gateway: "native-jwt",
        valid: 200,
        expired: 401,
        tampered: 401,
        missing: 401,
    },
    Expected {
        gateway: "jwt",
        valid: 200,
        expired: 401,
        tampered: 401,
        missing: 401,
    },
    Expected {
        gateway: "jwt-no-exp",
        valid: 200,
        expired: 200,
        tampered: 401,
        missing: 401,
    },
];

#[tokio::test]
async fn each_gateway_behaves_as_its_scenario_says() -> Result<()> {
    let templates = loadtest::render::gateways(&loadtest::paths::repo_root().join("envoy"))?;
    for expected in &MATRIX {
        ensure!(
            templates.iter().any(|t| t == expected.gateway),
            "envoy/{}.yaml is missing",
            expected.gateway
        );
        let fixture = Fixture::start(GatewaySpec::new(expected.gateway))?;
        let valid = fixture.valid_token();
        let expired = fixture
            .token()
            .claim("exp", unix_now() - 600)
            .sign(TestKey::rsa_a());
        // Envoy's jwt_authn fetches keys asynchronously too: wait for the first 200.
        let mut status = 0;
        for _ in 0..100 {
            status = fixture.get_bearer(&valid).await?.status;
            if status == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let cases = [
            ("valid", status, expected.valid),
            (
                "expired",
                fixture.get_bearer(&expired).await?.status,
                expected.expired,
            ),
            (
                "tampered",
                fixture.get_bearer(&tamper_signature(&valid)).await?.status,
                expected.tampered,
            ),
            ("missing", fixture.get(&[]).await?.status, expected.missing),
        ];
        for (kind, actual, wanted) in cases {
            ensure!(
                actual == wanted,
                "{}: {kind} token got {actual}, expected {wanted}",
                expected.gateway
            );
        }
    }
    Ok(())
}

/// `envoy --mode validate` loads the module and runs the filter's `on_configure`: with the
/// real filter this checks each gateway's plugin configuration too, for native and compose.
#[test]
fn every_rendered_gateway_validates_with_the_real_filter() -> Result<()> {
    use loadtest::render::{Topology, gateways, render_gateway, write_rendered};
    let root = loadtest::paths::repo_root();
    let envoy = loadtest::paths::envoy_binary()?;
    let wasm = loadtest::paths::wasm_path()?;
    let dir = loadtest::paths::run_dir("validate-real");
    let native = Topology::native(10000, 9901, 8081, 8080, wasm.display().to_string());
    let mut compose = Topology::compose();
    compose.wasm_path = wasm.display().to_string();
    for gateway in gateways(&root.join("envoy"))? {
        for (label, topology) in [("native", &native), ("compose", &compose)] {
            let text = render_gateway(&root.join("envoy"), &gateway, topology, None)?;
            let path = write_rendered(&dir.join(label), &gateway, &text)?;
            loadtest::envoy::Envoy::validate(&envoy, &path)?;
        }
    }
    Ok(())
}

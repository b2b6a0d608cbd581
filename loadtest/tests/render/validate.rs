//! Every gateway, rendered natively, for compose and patched, passes `envoy --mode validate`,
//! which loads the wasm module for real.

use super::*;

#[test]
fn lists_the_gateways() {
    assert_eq!(
        gateways(&envoy_dir()).unwrap(),
        [
            "hybrid",
            "introspect",
            "jwt",
            "jwt-bcl",
            "jwt-no-exp",
            "native-jwt",
            "no-auth",
            "policy"
        ]
    );
}

#[test]
fn every_gateway_validates_natively_and_in_compose() {
    let dir = scratch("validate");
    let wasm = write_stub_module(&dir);
    for (label, topology) in [("native", native(&wasm)), ("compose", compose(&wasm))] {
        let out = dir.join(label);
        let written = render_all(&envoy_dir(), &topology, &out).unwrap();
        assert_eq!(written.len(), gateways(&envoy_dir()).unwrap().len());
        for path in written {
            envoy_validate(&path);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn patched_gateways_validate() {
    let dir = scratch("patched");
    let wasm = write_stub_module(&dir);
    let inline = json!({"jwks": {"remote": null, "inline": {"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "x": "AAAA", "y": "BBBB"}
    ]}}});
    let scopes = json!({"required_scopes": ["admin"]});
    for (gateway, patch) in [("jwt", &inline), ("jwt-no-exp", &scopes)] {
        let text = render_gateway(&envoy_dir(), gateway, &native(&wasm), Some(patch)).unwrap();
        envoy_validate(&write_rendered(&dir, gateway, &text).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Validate loads the module for real: a missing file, a module that is not a
/// proxy-wasm plugin, or an unknown runtime all fail; so the tests above
/// really check the wasm part of the configs.
#[test]
fn validate_loads_the_wasm_module() {
    let dir = scratch("wasm");
    let empty_module = dir.join("empty.wasm");
    std::fs::write(&empty_module, b"\0asm\x01\0\0\0").unwrap();
    let stub = write_stub_module(&dir);
    let cases = [
        (
            "missing",
            native(dir.join("missing.wasm").to_str().unwrap()),
            "Invalid path",
        ),
        (
            "empty-module",
            native(empty_module.to_str().unwrap()),
            "Unable to create Wasm plugin",
        ),
        (
            "bad-runtime",
            Topology {
                wasm_runtime: "envoy.wasm.runtime.nonexistent".to_string(),
                ..native(&stub)
            },
            "Unable to create Wasm plugin",
        ),
    ];
    for (label, topology, needle) in cases {
        let text = render_gateway(&envoy_dir(), "jwt", &topology, None).unwrap();
        let path = write_rendered(&dir.join(label), "jwt", &text).unwrap();
        let err = try_envoy_validate(&path).expect_err(label);
        assert!(err.contains(needle), "{label}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

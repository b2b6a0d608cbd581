//! The Envoy config templates in `envoy/` and their renderer.
//!
//! Every rendered config is checked with the real Envoy (`envoy --mode
//! validate`); these tests fail, not skip, when Envoy is missing.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use loadtest::render::{
    Topology, gateways, merge_patch, plugin_config, render_all, render_gateway, write_rendered,
};
use serde_json::{Value, json};

mod patches;
mod templates;
mod topology;
mod validate;

fn envoy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy")
}

/// A fresh, empty scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tokengate-render-{}-{test}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The smallest module Envoy's `--mode validate` accepts as a proxy-wasm
/// plugin. Validate really loads the module: it needs a Proxy-Wasm ABI
/// version export, and it runs `proxy_on_vm_start` and `proxy_on_configure`
/// (both must return true). So the 8-byte empty module is not enough.
fn stub_plugin_module() -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn vector(items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        leb(items.len(), &mut out);
        items.iter().for_each(|item| out.extend(item));
        out
    }
    fn section(id: u8, payload: Vec<u8>, module: &mut Vec<u8>) {
        module.push(id);
        leb(payload.len(), module);
        module.extend(payload);
    }
    const I32: u8 = 0x7f;
    const FUNC: u8 = 0x60;
    let types = [
        vec![FUNC, 1, I32, 1, I32],      // 0: (i32) -> i32
        vec![FUNC, 2, I32, I32, 1, I32], // 1: (i32, i32) -> i32
        vec![FUNC, 0, 0],                // 2: () -> ()
        vec![FUNC, 2, I32, I32, 0],      // 3: (i32, i32) -> ()
        vec![FUNC, 1, I32, 0],           // 4: (i32) -> ()
    ];
    const RETURN_TRUE: &[u8] = &[0x41, 0x01]; // i32.const 1
    const ALLOC_AT_1K: &[u8] = &[0x41, 0x80, 0x08]; // i32.const 1024
    let functions: [(&str, u8, &[u8]); 7] = [
        ("proxy_abi_version_0_2_1", 2, &[]),
        ("proxy_on_memory_allocate", 0, ALLOC_AT_1K),
        ("proxy_on_context_create", 3, &[]),
        ("proxy_on_vm_start", 1, RETURN_TRUE),
        ("proxy_on_configure", 1, RETURN_TRUE),
        ("proxy_on_done", 0, RETURN_TRUE),
        ("proxy_on_delete", 4, &[]),
    ];
    let name = |s: &str| {
        let mut out = Vec::new();
        leb(s.len(), &mut out);
        out.extend(s.as_bytes());
        out
    };

    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, vector(&types), &mut module);
    let signatures: Vec<Vec<u8>> = functions.iter().map(|f| vec![f.1]).collect();
    section(3, vector(&signatures), &mut module);
    // One memory of 4 pages (256 KiB): room for any plugin configuration.
    section(5, vector(&[vec![0x00, 4]]), &mut module);
    let mut exports = vec![[name("memory"), vec![0x02, 0]].concat()];
    for (index, (export, _, _)) in functions.iter().enumerate() {
        exports.push([name(export), vec![0x00, index as u8]].concat());
    }
    section(7, vector(&exports), &mut module);
    let bodies: Vec<Vec<u8>> = functions
        .iter()
        .map(|(_, _, code)| {
            let body = [&[0u8][..], code, &[0x0b]].concat(); // no locals, code, end
            let mut out = Vec::new();
            leb(body.len(), &mut out);
            out.extend(body);
            out
        })
        .collect();
    section(10, vector(&bodies), &mut module);
    module
}

fn write_stub_module(dir: &Path) -> String {
    let path = dir.join("stub-plugin.wasm");
    std::fs::write(&path, stub_plugin_module()).unwrap();
    path.to_str().unwrap().to_string()
}

fn native(wasm_path: &str) -> Topology {
    Topology::native(18000, 18001, 18081, 18080, wasm_path)
}

/// Compose topology, except that the wasm file is one that exists here.
fn compose(wasm_path: &str) -> Topology {
    Topology {
        wasm_path: wasm_path.to_string(),
        ..Topology::compose()
    }
}

/// Runs `envoy --mode validate` on `config`: Ok, or Err with Envoy's output.
/// Panics if Envoy is missing.
fn try_envoy_validate(config: &Path) -> Result<(), String> {
    let envoy = loadtest::paths::envoy_binary()
        .unwrap_or_else(|e| panic!("Envoy is required for these tests: {e:#}"));
    let output = Command::new(&envoy)
        .args(["--mode", "validate", "--log-level", "warning", "-c"])
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", envoy.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() && stdout.contains("OK") {
        Ok(())
    } else {
        Err(format!("{stdout}\n{stderr}"))
    }
}

/// Panics, with Envoy's output and the config, if Envoy rejects `config`.
fn envoy_validate(config: &Path) {
    if let Err(output) = try_envoy_validate(config) {
        panic!(
            "envoy rejected {}:\n{output}\n--- config ---\n{}",
            config.display(),
            std::fs::read_to_string(config).unwrap_or_default()
        );
    }
}

fn parse(rendered: &str) -> Value {
    serde_norway::from_str(rendered).unwrap()
}

/// The plugin configuration jwt.yaml must carry, for `idp` = host:port.
fn expected_jwt_plugin(idp: &str) -> Value {
    json!({
        "mode": "jwt",
        "issuer": format!("http://{idp}/realms/tokengate"),
        "audiences": ["tokengate-api"],
        "algorithms": ["RS256", "ES256"],
        "clock_skew_seconds": 5,
        "realm": "tokengate",
        "jwks": {"remote": {
            "cluster": "idp",
            "authority": idp,
            "path": "/realms/tokengate/protocol/openid-connect/certs",
            "refresh_seconds": 300,
            "timeout_ms": 2000
        }},
        "forward": {
            "strip_authorization": false,
            "claims_to_headers": [
                {"claim": "sub", "header": "x-jwt-sub"},
                {"claim": "azp", "header": "x-jwt-client"},
                {"claim": "scope", "header": "x-jwt-scope"},
                {"claim": "realm_access.roles", "header": "x-jwt-roles"}
            ]
        }
    })
}

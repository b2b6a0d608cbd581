//! Each build of the filter uses only the WebAssembly features its hosts have: a module is
//! validated whole before it runs, so one stray instruction makes a host refuse the file, and
//! no fallback inside the code can help. The builds (`scripts/build-filter`):
//!
//! - fast, `target/wasm32-wasip1/release/tokengate.wasm`: WebAssembly 2.0 (SIMD included) plus
//!   relaxed SIMD — V8 (Envoy) and wasmtime;
//! - portable, `target/portable/wasm32-wasip1/release/tokengate.wasm`: WebAssembly 2.0 without
//!   any SIMD — what Chicory, wazero, wasmer and WAMR's interpreter accept.
//!
//! Both must exist (the suite fails, not skips, when one is missing).

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use wasmparser::{Validator, WasmFeatures};

/// WebAssembly 2.0 without its SIMD proposal: what every common engine runs.
const PORTABLE: WasmFeatures = WasmFeatures::WASM2.difference(WasmFeatures::SIMD);
/// What V8 and wasmtime run on top: SIMD and relaxed SIMD.
const FAST: WasmFeatures = WasmFeatures::WASM2.union(WasmFeatures::RELAXED_SIMD);

fn build(path: &str) -> Vec<u8> {
    let path = loadtest::paths::repo_root().join(path);
    std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; build both variants with scripts/build-filter",
            path.display()
        )
    })
}

fn fast() -> Vec<u8> {
    std::env::var("TOKENGATE_WASM")
        .ok()
        .filter(|p| !p.is_empty())
        .map(|p| std::fs::read(PathBuf::from(p)).unwrap())
        .unwrap_or_else(|| build("target/wasm32-wasip1/release/tokengate.wasm"))
}

fn portable() -> Vec<u8> {
    build("target/portable/wasm32-wasip1/release/tokengate.wasm")
}

fn validate(module: &[u8], features: WasmFeatures) -> Result<(), String> {
    Validator::new_with_features(features)
        .validate_all(module)
        .map(|_| ())
        .map_err(|err| err.to_string())
}

#[test]
fn the_portable_build_has_no_simd_at_all() {
    let module = portable();
    validate(&module, PORTABLE).unwrap_or_else(|err| panic!("portable build: {err}"));
}

#[test]
fn the_fast_build_needs_exactly_simd_and_relaxed_simd() {
    let module = fast();
    validate(&module, FAST).unwrap_or_else(|err| panic!("fast build: {err}"));
    // It really uses both: without either, validation fails (so the portable check above is
    // a check that can fail, and the fast build has not lost its kernels).
    let without_relaxed = validate(&module, FAST.difference(WasmFeatures::RELAXED_SIMD));
    assert!(
        without_relaxed.is_err_and(|err| err.contains("relaxed SIMD")),
        "the fast build uses relaxed SIMD"
    );
    let without_simd = validate(&module, PORTABLE);
    assert!(
        without_simd.is_err_and(|err| err.contains("SIMD")),
        "the fast build uses SIMD"
    );
}

#[test]
fn both_builds_export_the_same_proxy_wasm_interface() {
    let exports = |module: &[u8]| {
        let mut names: Vec<String> = wasmparser::Parser::new(0)
            .parse_all(module)
            .filter_map(|payload| match payload.ok()? {
                wasmparser::Payload::ExportSection(reader) => Some(
                    reader
                        .into_iter()
                        .filter_map(|export| Some(export.ok()?.name.to_owned()))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        names.sort();
        names
    };
    let fast = exports(&fast());
    assert!(fast.iter().any(|name| name == "proxy_abi_version_0_2_1"));
    assert!(fast.iter().any(|name| name == "proxy_on_request_headers"));
    assert_eq!(fast, exports(&portable()));
}

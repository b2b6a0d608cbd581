//! tokengate: OAuth2 bearer-token authentication for Envoy, as a proxy-wasm filter.
//!
//! The crate is a pure core plus a thin host layer. Everything that decides — configuration,
//! token extraction, JWKS handling, JWT validation, caching, the response for each rejection —
//! is plain Rust without proxy-wasm, tested natively. [`engine::Engine`] takes request headers
//! and the time and returns a decision as data; [`filter::Worker`] drives it through a worker's
//! life (calls, waiting requests, the key set shared by all workers), reaching the host only
//! through the [`filter::Host`] trait; `host` (compiled only for wasm32) implements that trait
//! on the proxy-wasm ABI and carries out the steps the worker returns.

#![warn(missing_docs)]

/// Which build of the filter this is. `fast`: wasm simd128 and relaxed SIMD (the RSA kernels'
/// vector and fused multiply-add paths), for engines that have them (V8, wasmtime).
/// `portable`: no vector instruction at all, for every engine (Chicory, wazero, wasmer, WAMR).
/// Both come from one source; `scripts/build-filter` builds both, and a test checks each
/// file's instruction set (`loadtest/tests/wasm_features.rs`).
pub const BUILD: &str = if cfg!(not(target_arch = "wasm32")) {
    "native"
} else if cfg!(target_feature = "simd128") {
    "fast"
} else {
    "portable"
};

pub mod algorithm;
pub mod cache;
pub mod config;
pub mod ec;
pub mod engine;
pub mod filter;
pub mod introspection;
pub mod jwks;
pub mod jwks_refresh;
pub mod jwt;
mod limbs;
pub mod metrics;
pub mod policy;
pub mod rejection;
pub mod revocation;
pub mod rsa_verify;
pub mod signature;
pub mod token_source;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

#[cfg(target_arch = "wasm32")]
mod host;

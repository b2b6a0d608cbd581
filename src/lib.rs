//! tokengate: OAuth2 bearer-token authentication for Envoy, as a proxy-wasm filter.
//!
//! The crate is a pure core plus a thin host layer. Everything that decides — configuration,
//! token extraction, JWKS handling, JWT validation, caching, the response for each rejection —
//! is plain Rust without proxy-wasm, tested natively. [`engine::Engine`] takes request headers
//! and the time and returns a decision as data; `host` (compiled only for wasm32) reads the
//! request from Envoy, performs the calls the decision asks for, and writes the answer back.

pub mod algorithm;
pub mod cache;
pub mod claims;
pub mod coalesce;
pub mod config;
pub mod engine;
pub mod introspection;
pub mod jwks;
pub mod jwks_refresh;
pub mod metrics;
pub mod rejection;
pub mod rsa_verify;
pub mod signature;
pub mod token_source;
pub mod validate;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

#[cfg(target_arch = "wasm32")]
mod host;

//! The harness behind the fuzz targets in `fuzz_targets/`: each target is one `run(data)` of
//! a module here, so seeds and regressions replay without libFuzzer
//! (`cargo test --manifest-path fuzz/Cargo.toml`).
//!
//! A target asserts invariants, not only the absence of a crash: a failed assertion is a
//! finding, as a panic inside tokengate is.

pub mod config;
pub mod engine;
pub mod input;
pub mod introspection;
pub mod jwks;
pub mod keys;
pub mod logout;
pub mod oracle;
pub mod policy;
pub mod token;
pub mod token_source;
pub mod worker;

/// A fuzz target: runs one input (panics on a finding).
pub type Target = fn(&[u8]);

/// Every target by name, for replaying seeds and artifacts.
pub const TARGETS: [(&str, Target); 8] = [
    ("config", config::run),
    ("token_source", token_source::run),
    ("engine", engine::run),
    ("jwks", jwks::run),
    ("introspection", introspection::run),
    ("policy", policy::run),
    ("worker", worker::run),
    ("logout", logout::run),
];

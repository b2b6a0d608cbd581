//! The built tokengate.wasm inside real Envoy, with the backend and a local JWKS server as
//! child processes on free ports. Every outcome is checked on the wire (status,
//! `WWW-Authenticate`, forwarded headers) and in Envoy's `/stats`.
//!
//! Needs `target/wasm32-wasip1/release/tokengate.wasm` and Envoy (see `scripts/setup`); the
//! suite fails, not skips, when they are missing.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admission;
#[path = "../common/mod.rs"]
mod common;
mod configuration;
mod keys;
mod outcomes;
mod sources;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::{AUDIENCE, CERTS, Fixture, SUB, published_keys, unix_now};
use loadtest::http::{self, Response};
use loadtest::stack::{GatewaySpec, start_gateway_expecting_refusal};
use serde_json::json;
use tokengate::algorithm::Algorithm;
use tokengate::testkit::{TestKey, TokenSpec, sign_raw, tamper_signature};

fn challenge(response: &Response) -> Option<&str> {
    response.header("www-authenticate")
}

fn invalid_token_challenge(description: &str) -> String {
    format!(
        "Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"{description}\""
    )
}

/// Sends one request and checks status, challenge and that exactly one `denied.<reason>`
/// (or `allowed`) increment happened.
async fn expect(
    fixture: &Fixture,
    case: &str,
    headers: &[(&str, &str)],
    status: u16,
    www_authenticate: Option<&str>,
    metric: &str,
) -> Result<Response> {
    let before = fixture.stat(metric).await?;
    let response = fixture.get(headers).await?;
    let after = fixture.stat(metric).await?;
    if response.status != status {
        bail!(
            "{case}: status {} (expected {status}): {}",
            response.status,
            response.text()
        );
    }
    if challenge(&response) != www_authenticate {
        bail!(
            "{case}: WWW-Authenticate {:?} (expected {www_authenticate:?})",
            challenge(&response)
        );
    }
    if after != before + 1 {
        bail!("{case}: {metric} went from {before} to {after}");
    }
    if status != 200 {
        let body = response.json()?;
        if !body["error"].is_string() || !body["error_description"].is_string() {
            bail!("{case}: body {body}");
        }
    }
    Ok(response)
}

//! The cells at Keycloak itself (token generation, introspection): the IdP's cost, not a
//! gateway's.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Result, bail};
use hyper::Method;

use crate::driver::{self, ExpectStatus, RequestSource, RequestTemplate, RoundRobin, Thresholds};
use crate::keycloak;
use crate::matrix::report::Cell;
use crate::matrix::scenario::{self, Scenario, TokenKind};
use crate::matrix::tokens::TokenPools;
use crate::matrix::{MatrixConfig, cell_label, driver_config};

pub(crate) fn run_keycloak_cell(
    config: &MatrixConfig,
    rate: f64,
    scenario: Scenario,
    addr: SocketAddr,
    host: &str,
    pools: &TokenPools,
    runtime: &tokio::runtime::Runtime,
) -> Result<Cell> {
    const TOKEN_PATH: &str = "/realms/tokengate/protocol/openid-connect/token";
    const INTROSPECT_PATH: &str = "/realms/tokengate/protocol/openid-connect/token/introspect";
    let form = "application/x-www-form-urlencoded";
    let (templates, probe_kind) = match scenario {
        Scenario::GenerateToken => (
            vec![
                RequestTemplate::new(Method::POST, TOKEN_PATH)?
                    .header("content-type", form)?
                    .header(
                        "authorization",
                        &keycloak::basic_auth(keycloak::LOADTEST.id, keycloak::LOADTEST.secret),
                    )?
                    .body("grant_type=client_credentials"),
            ],
            None,
        ),
        Scenario::IntrospectValid | Scenario::IntrospectExpired | Scenario::IntrospectInvalid => {
            let kind = match scenario {
                Scenario::IntrospectValid => TokenKind::Valid,
                Scenario::IntrospectExpired => TokenKind::Expired,
                _ => TokenKind::InvalidSignature,
            };
            let auth = keycloak::basic_auth(keycloak::GATEWAY.id, keycloak::GATEWAY.secret);
            let templates = pools
                .tokens(kind)
                .into_iter()
                .map(|token| -> Result<RequestTemplate> {
                    let body = format!(
                        "token={}&token_type_hint=access_token",
                        form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
                    );
                    Ok(RequestTemplate::new(Method::POST, INTROSPECT_PATH)?
                        .header("content-type", form)?
                        .header("authorization", &auth)?
                        .body(body))
                })
                .collect::<Result<Vec<_>>>()?;
            (templates, Some(kind))
        }
        Scenario::Api(_) | Scenario::Policy(_) => {
            bail!("{} goes through a gateway", scenario.name())
        }
    };
    // The driver judges statuses; what introspection answered is checked on a sample.
    let note = match probe_kind {
        Some(kind) => Some(runtime.block_on(probe_introspection(pools, kind))?),
        None => None,
    };
    let expectation = scenario::Expectation::status(200);
    let label = cell_label("keycloak", scenario, rate);
    let driver = driver_config(config, rate, addr, host, label);
    let source: Arc<dyn RequestSource> = Arc::new(RoundRobin::new(templates)?);
    let result = driver::run(&driver, source, Arc::new(ExpectStatus::new([200])))?;
    Ok(Cell::new(
        rate,
        scenario,
        None,
        expectation,
        result,
        &Thresholds::default(),
        note,
    ))
}

/// Introspects a few tokens of `kind` and says what Keycloak answered.
async fn probe_introspection(pools: &TokenPools, kind: TokenKind) -> Result<String> {
    let mut active = 0;
    let mut inactive = 0;
    for token in pools.tokens(kind).iter().take(3) {
        let answer = pools
            .client()
            .introspect(token, keycloak::GATEWAY.id, keycloak::GATEWAY.secret)
            .await?;
        match answer["active"].as_bool() {
            Some(true) => active += 1,
            _ => inactive += 1,
        }
    }
    Ok(match (active, inactive) {
        (0, n) => format!("active:false ({n}/{n} sampled)"),
        (n, 0) => format!("active:true ({n}/{n} sampled)"),
        (a, i) => format!("mixed: {a} active, {i} inactive of {} sampled", a + i),
    })
}

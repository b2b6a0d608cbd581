//! Requests the matrix sends besides its cells: waiting until every gateway admits a valid
//! token, and one recognisable request per GAP.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use crate::driver;
use crate::matrix::report::Report;
use crate::matrix::scenario::{self, Scenario, TokenKind};
use crate::matrix::tokens::TokenPools;
use crate::matrix::{GatewayTarget, request_headers};

/// Gateways fetch keys at start: wait until each admits a valid token, and a gateway with the
/// policy routes a realm B token too (its keys come through discovery, fetched apart).
pub(crate) async fn wait_until_admitted(
    gateways: &[GatewayTarget],
    pools: &TokenPools,
) -> Result<()> {
    for gateway in gateways {
        let mut kinds = vec![TokenKind::Valid];
        if gateway.profile.policy_routes && pools.has_policy() {
            kinds.push(TokenKind::Partner);
        }
        for kind in kinds {
            let tokens = pools.tokens(kind);
            let token = tokens
                .first()
                .ok_or_else(|| anyhow!("no {} token minted", kind.name()))?;
            let bearer = format!("Bearer {token}");
            let url = format!("http://{}/api/ready", gateway.host);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let status = crate::http::get(&url, &[("authorization", &bearer)])
                    .await
                    .map(|r| r.status)
                    .unwrap_or(0);
                if status == 200 {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "gateway {} never admitted a {} token (last status {status})",
                        gateway.name,
                        kind.name()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

/// For every GAP, one more request with a recognisable id, to point at in the gateway's log;
/// what it showed becomes the row's sample.
pub(crate) async fn probe_gaps(
    report: &mut Report,
    gateways: &[GatewayTarget],
    pools: &mut TokenPools,
) -> Result<()> {
    let gaps: Vec<(String, String)> = report
        .verdicts
        .iter()
        .filter(|row| row.verdict == scenario::Verdict::Gap)
        .map(|row| (row.gateway.clone(), row.scenario.clone()))
        .collect();
    for (gateway_name, scenario_name) in gaps {
        let (Some(gateway), Some(request)) = (
            gateways.iter().find(|g| g.name == gateway_name),
            Scenario::parse(&scenario_name).and_then(Scenario::request),
        ) else {
            continue;
        };
        // A long run outlives the pools it started with: a revoked token that has expired
        // since would be refused as expired, and the probe would not show the gap.
        pools
            .ready_for(Some(request.token), Duration::from_secs(1))
            .await?;
        let tokens = pools.tokens(request.token);
        let token = tokens.first();
        if token.is_none() && request.token != TokenKind::Missing {
            continue;
        }
        let request_id = format!("{gateway_name}.{scenario_name}.gap-probe");
        let headers = request_headers(&request, token.map(String::as_str));
        let mut headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        headers.push((driver::REQUEST_ID_HEADER, &request_id));
        let url = format!("http://{}{}", gateway.host, request.path);
        let response = crate::http::get(&url, &headers).await?;
        let mut sample = format!("{request_id} → {}", response.status);
        if let Some((name, _)) = request.forged_header {
            let received = response.header_all(crate::backend::IDENTITY_HEADERS_RECEIVED);
            if scenario::lists_header(received, name) {
                sample.push_str(&format!(", {name} reached the backend"));
            }
        }
        report.set_sample(&gateway_name, &scenario_name, sample);
    }
    Ok(())
}

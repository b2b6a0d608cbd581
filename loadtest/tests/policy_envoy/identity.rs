//! The identity tokengate publishes, as Envoy's RBAC filter and access log read it.

use super::*;

/// The rendered policy gateway with an access log that prints what tokengate published.
fn with_access_log(text: &str) -> Result<String> {
    let mut doc: Value = serde_norway::from_str(text)?;
    let hcm = doc
        .pointer_mut("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow::anyhow!("no connection manager in the policy gateway"))?;
    hcm.insert(
        "access_log".to_owned(),
        json!([{
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                "log_format": {"text_format_source": {"inline_string":
                    "[access] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% route=%ROUTE_NAME% \
                     provider=%FILTER_STATE(wasm.tokengate.provider:PLAIN)% \
                     sub=%FILTER_STATE(wasm.tokengate.sub:PLAIN)%\n"}}
            }
        }]),
    );
    Ok(serde_norway::to_string(&doc)?)
}

#[tokio::test]
async fn identity_reaches_rbac_and_the_access_log() -> Result<()> {
    let policy = PolicyGateway::start_edited(GatewaySpec::new("policy"), with_access_log)?;
    policy.wait_for_keys("internal").await?;
    policy.wait_for_keys("partner").await?;
    let bearer = |token: &str| format!("Bearer {token}");
    let user = policy.internal().sign(TestKey::rsa_a());
    let partner = policy.partner().sign(TestKey::p256());
    // tokengate admits both; Envoy's RBAC filter, reading the provider tokengate published as
    // filter state, admits only the partner realm.
    expect(
        &policy,
        "tools, realm B",
        "/tools/run",
        &[("authorization", &bearer(&partner))],
        200,
        None,
        &["tokengate.rule.tools.allowed"],
    )
    .await?;
    let response = expect(
        &policy,
        "tools, realm A (RBAC refuses)",
        "/tools/run",
        &[("authorization", &bearer(&user))],
        403,
        None,
        &["tokengate.rule.tools.allowed"],
    )
    .await?;
    assert!(response.text().contains("RBAC"), "{}", response.text());
    let rbac_denied = policy
        .gateway
        .envoy
        .stat("http.ingress.rbac.denied")
        .await?;
    assert_eq!(rbac_denied, 1);
    // The access log line of each, with the published identity.
    let log = &policy.gateway.envoy;
    let wanted = [
        format!("[access] GET /tools/run 200 route=default provider=partner sub={SUB}"),
        format!("[access] GET /tools/run 403 route=default provider=internal sub={SUB}"),
    ];
    for line in &wanted {
        let mut found = false;
        for _ in 0..50 {
            if log.log_contents().contains(line.as_str()) {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            found,
            "access log line {line:?} in:\n{}",
            log.log_contents()
        );
        println!("ok: access log: {line}");
    }
    Ok(())
}

//! Policies Envoy must refuse (the field named), and every match, condition and requirement
//! kind beyond envoy/policy.yaml.

use super::*;

#[tokio::test]
async fn bad_policies_stop_envoy_with_the_field_named() -> Result<()> {
    let cases = [
        (
            json!({"rules": [{"name": "api", "requires": {"any": [{"provider": "internal"}, {"provider": "partnr"}]}}]}),
            "rules[0].requires.any[1].provider",
        ),
        (
            json!({"rules": [
                {"name": "all", "requires": {"provider": "internal"}},
                {"name": "api", "match": {"path": {"prefix": "/api/"}}, "requires": {"provider": "internal"}}
            ]}),
            "rules[1].match",
        ),
        (
            json!({"rules": [{"name": "api", "match": {"path": {"pattern": "/a/**/b"}}, "requires": "public"}]}),
            "rules[0].match.path.pattern",
        ),
        (
            json!({"rules": [{"name": "api", "requires": {"provider": "internal"},
                              "claims": [{"claim": "email_verified", "equals": [true]}]}]}),
            "rules[0].claims[0].equals",
        ),
    ];
    for (patch, field) in cases {
        let dir = loadtest::paths::run_dir("e2e-policy-refused");
        let spec = GatewaySpec::new("policy").patch(patch.clone());
        let log = loadtest::stack::start_gateway_expecting_refusal(&dir, &spec, 1, 1)?;
        assert!(
            log.contains(&format!("field `{field}`")),
            "Envoy should name {field}: {log}"
        );
        println!("ok: refused, naming {field}");
    }
    Ok(())
}

#[tokio::test]
async fn every_match_condition_and_requirement_kind() -> Result<()> {
    // The policy gateway with rules covering what envoy/policy.yaml does not: segment
    // patterns, methods, hosts, boolean / one-of conditions, `all` and
    // `allow_missing_or_failed`.
    let patch = json!({
        "providers": {"device": {
            "issuer": "https://devices.example", "audiences": ["tokengate-api"],
            "algorithms": ["EdDSA"], "token_source": {"header": "x-device-token"},
            "jwks": {"inline": jwks(&[TestKey::ed25519().public_jwk("ed", Some("EdDSA"))])},
            "forward": {"claims_to_headers": [{"claim": "sub", "header": "x-jwt-device"}]}
        }},
        "rules": [
            {"name": "items", "match": {"path": {"pattern": "/shops/*/items"}, "methods": ["GET"]},
             "requires": {"provider": "internal"}},
            {"name": "tenant-host", "match": {"hosts": ["*.tenants.example"]},
             "requires": {"provider": "internal"},
             "claims": [{"claim": "email_verified", "equals": true},
                        {"claim": "tenant", "one_of": ["acme", "globex"]}]},
            {"name": "paired", "match": {"path": {"prefix": "/paired"}},
             "requires": {"all": [{"provider": "internal"}, {"provider": "device"}]}},
            {"name": "feed", "match": {"path": {"prefix": "/feed"}},
             "requires": {"any": [{"provider": "internal"}, "allow_missing_or_failed"]}}
        ]
    });
    let policy = PolicyGateway::start(GatewaySpec::new("policy").patch(patch))?;
    policy.wait_for_keys("internal").await?;
    let bearer = |token: &str| format!("Bearer {token}");
    let user = policy.internal().sign(TestKey::rsa_a());
    let auth = bearer(&user);

    // pattern + method
    expect(
        &policy,
        "pattern, GET",
        "/shops/7/items",
        &[("authorization", &auth)],
        200,
        None,
        &["tokengate.rule.items.allowed"],
    )
    .await?;
    let response = http::send(
        "POST",
        &policy.gateway.url("/shops/7/items"),
        &[("authorization", &auth)],
        None,
    )
    .await?;
    assert_eq!(response.status, 403, "POST is not covered: no rule");
    expect(
        &policy,
        "pattern, one segment too many",
        "/shops/7/x/items",
        &[("authorization", &auth)],
        403,
        None,
        &["tokengate.denied.no_rule"],
    )
    .await?;

    // host, boolean and one-of conditions
    let verified = policy
        .internal()
        .claim("email_verified", true)
        .claim("tenant", "acme")
        .sign(TestKey::rsa_a());
    let unverified_string = policy
        .internal()
        .claim("email_verified", "true")
        .claim("tenant", "acme")
        .sign(TestKey::rsa_a());
    let other_tenant = policy
        .internal()
        .claim("email_verified", true)
        .claim("tenant", "initech")
        .sign(TestKey::rsa_a());
    let (verified, unverified_string, other_tenant) = (
        bearer(&verified),
        bearer(&unverified_string),
        bearer(&other_tenant),
    );
    const HOST: (&str, &str) = ("host", "shop.tenants.example");
    expect(
        &policy,
        "host, conditions met",
        "/anything",
        &[HOST, ("authorization", &verified)],
        200,
        None,
        &["tokengate.rule.tenant-host.allowed"],
    )
    .await?;
    expect(
        &policy,
        "host, email_verified is the string \"true\"",
        "/anything",
        &[HOST, ("authorization", &unverified_string)],
        403,
        None,
        &["tokengate.rule.tenant-host.denied.claims"],
    )
    .await?;
    expect(
        &policy,
        "host, tenant not one of the list",
        "/anything",
        &[HOST, ("authorization", &other_tenant)],
        403,
        None,
        &["tokengate.rule.tenant-host.denied.claims"],
    )
    .await?;

    // all: a user token and a device token, from two sources
    let device = TokenSpec::access_token(
        Algorithm::EdDsa,
        "ed",
        "https://devices.example",
        AUDIENCE,
        unix_now(),
    )
    .claim("sub", "device-42")
    .sign(TestKey::ed25519());
    let response = expect(
        &policy,
        "all: both tokens",
        "/paired",
        &[("authorization", &auth), ("x-device-token", &device)],
        200,
        None,
        &["tokengate.rule.paired.allowed"],
    )
    .await?;
    assert_eq!(identity(&response)["x-jwt-device"], "device-42");
    assert_eq!(identity(&response)["x-jwt-sub"], SUB);
    expect(
        &policy,
        "all: the device token missing",
        "/paired",
        &[("authorization", &auth)],
        401,
        None,
        &["tokengate.rule.paired.denied.missing"],
    )
    .await?;

    // allow_missing_or_failed: always forwarded, identity only when valid
    let response = expect(
        &policy,
        "allow_missing_or_failed, forged token",
        "/feed",
        &[
            ("authorization", &bearer(&tamper_signature(&user))),
            ("x-jwt-sub", "forged"),
        ],
        200,
        None,
        &["tokengate.rule.feed.allowed"],
    )
    .await?;
    assert_eq!(identity(&response)["x-jwt-sub"], Value::Null);
    let response = expect(
        &policy,
        "allow_missing_or_failed, valid token",
        "/feed",
        &[("authorization", &auth)],
        200,
        None,
        &["tokengate.rule.feed.allowed"],
    )
    .await?;
    assert_eq!(identity(&response)["x-jwt-sub"], SUB);
    Ok(())
}

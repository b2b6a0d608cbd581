//! Opaque tokens, introspected by the one provider that takes them.

use super::*;

#[tokio::test]
async fn opaque_tokens_are_introspected_by_the_provider_that_takes_them() -> Result<()> {
    // The policy gateway with a third provider: machine clients whose opaque tokens only the
    // IdP can judge (the controllable IdP plays it: Keycloak issues JWTs only).
    let patch = json!({
        "providers": {"machines": {
            "mode": "introspect", "opaque": true, "issuer": "https://machines.example",
            "audiences": [],
            "introspection": {
                "cluster": "idp", "authority": "idp", "path": "/machines/introspect",
                "client_id": "gateway", "client_secret": "secret",
                "cache_ttl_seconds": 30, "negative_cache_ttl_seconds": 0
            },
            "forward": {"claims_to_headers": [{"claim": "client_id", "header": "x-jwt-machine"}]}
        }},
        "rules": [
            {"name": "health", "match": {"path": {"exact": "/health"}}, "requires": "public"},
            {"name": "api", "match": {"path": {"prefix": "/api/"}},
             "requires": {"any": [{"provider": "internal"}, {"provider": "partner"}, {"provider": "machines"}]}},
            {"name": "admin", "match": {"path": {"prefix": "/admin/"}}, "requires": {"provider": "internal"}}
        ]
    });
    let policy = PolicyGateway::start(GatewaySpec::new("policy").patch(patch))?;
    policy.wait_for_keys("internal").await?;
    const PATH: &str = "/machines/introspect";
    policy.idp.set_response(
        PATH,
        200,
        json!({"active": true, "client_id": "robot-7", "scope": "orders"}).to_string(),
    );
    let opaque = "mF_9.B5f-4.1JqM"; // RFC 6750's example: not three segments of JSON
    let opaque = opaque.replace('.', "");
    let bearer = format!("Bearer {opaque}");
    let response = expect(
        &policy,
        "opaque token on the API",
        "/api/orders",
        &[("authorization", &bearer)],
        200,
        None,
        &[
            "tokengate.provider.machines.allowed",
            "tokengate.introspection.calls",
        ],
    )
    .await?;
    assert_eq!(identity(&response)["x-jwt-machine"], "robot-7");
    assert_eq!(policy.idp.request_count(PATH), 1);
    // Cached for the machines provider only: a rule that does not take opaque tokens refuses
    // it without a call.
    expect(
        &policy,
        "opaque token, cached",
        "/api/orders",
        &[("authorization", &bearer)],
        200,
        None,
        &["tokengate.introspection.cache_hit_positive"],
    )
    .await?;
    expect(
        &policy,
        "opaque token where no provider takes one",
        "/admin/users",
        &[("authorization", &bearer)],
        401,
        None,
        &["tokengate.rule.admin.denied.malformed"],
    )
    .await?;
    assert_eq!(policy.idp.request_count(PATH), 1, "no further call");
    // The IdP says inactive: refused, 401.
    let other = "another0opaque0token".to_owned();
    policy
        .idp
        .set_response(PATH, 200, json!({"active": false}).to_string());
    expect(
        &policy,
        "inactive opaque token",
        "/api/orders",
        &[("authorization", &format!("Bearer {other}"))],
        401,
        None,
        &["tokengate.provider.machines.denied.inactive"],
    )
    .await?;
    Ok(())
}

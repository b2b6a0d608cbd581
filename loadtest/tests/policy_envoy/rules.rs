//! Every rule of envoy/policy.yaml, its requirements and conditions, for tokens of both issuers.

use super::*;

#[tokio::test]
async fn rules_requirements_and_conditions() -> Result<()> {
    let policy = PolicyGateway::start(GatewaySpec::new("policy"))?;
    policy.wait_for_keys("internal").await?;
    policy.wait_for_keys("partner").await?;
    let bearer = |token: &str| format!("Bearer {token}");
    let user = policy.internal().sign(TestKey::rsa_a());
    let admin = policy
        .internal()
        .claim("realm_access", json!({"roles": ["user", "admin"]}))
        .sign(TestKey::rsa_a());
    let partner = policy.partner().sign(TestKey::p256());
    // `iss` says internal; signed with the partner realm's key.
    let impostor = TokenSpec::access_token(
        Algorithm::Es256,
        "ec-b",
        &policy.issuer("tokengate"),
        AUDIENCE,
        unix_now(),
    )
    .sign(TestKey::p256());
    let bare = "Bearer realm=\"tokengate\"";
    let invalid = |description: &str| {
        format!(
            "Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"{description}\""
        )
    };

    // public: no token read, forged identity headers stripped.
    let response = expect(
        &policy,
        "public path, no token, forged identity header",
        "/health",
        &[("x-jwt-sub", "admin"), ("x-jwt-iss", "forged")],
        200,
        None,
        &["tokengate.rule.health.allowed", "tokengate.allowed"],
    )
    .await?;
    assert_eq!(identity(&response)["x-jwt-sub"], Value::Null);
    assert_eq!(identity(&response)["x-jwt-iss"], Value::Null);

    // provider alternatives: the issuer chooses, the route follows the identity.
    expect(
        &policy,
        "API, no token",
        "/api/orders",
        &[],
        401,
        Some(bare),
        &["tokengate.rule.api.denied.missing"],
    )
    .await?;
    let response = expect(
        &policy,
        "API, realm A token",
        "/api/orders",
        &[("authorization", &bearer(&user))],
        200,
        None,
        &[
            "tokengate.rule.api.allowed",
            "tokengate.provider.internal.allowed",
        ],
    )
    .await?;
    assert_eq!(identity(&response)["x-jwt-sub"], SUB);
    assert_eq!(identity(&response)["x-tokengate-route"], "default");
    let response = expect(
        &policy,
        "API, realm B token (keys found through discovery)",
        "/api/orders",
        &[("authorization", &bearer(&partner))],
        200,
        None,
        &[
            "tokengate.rule.api.allowed",
            "tokengate.provider.partner.allowed",
        ],
    )
    .await?;
    assert_eq!(
        identity(&response)["x-tokengate-route"],
        "api-partner",
        "the route was chosen again on the verified x-jwt-iss"
    );
    let response = expect(
        &policy,
        "API, realm A token with a forged x-jwt-iss",
        "/api/orders",
        &[
            ("authorization", &bearer(&user)),
            ("x-jwt-iss", "http://evil/realms/tokengate-partner"),
        ],
        200,
        None,
        &["tokengate.rule.api.allowed"],
    )
    .await?;
    assert_eq!(
        identity(&response)["x-tokengate-route"],
        "default",
        "a forged header does not pick the route"
    );
    expect(
        &policy,
        "API, iss of realm A signed with realm B's key",
        "/api/orders",
        &[("authorization", &bearer(&impostor))],
        401,
        Some(&invalid("The token signing key is unknown")),
        &[
            "tokengate.rule.api.denied.unknown_kid",
            "tokengate.provider.internal.denied.unknown_kid",
        ],
    )
    .await?;
    let stranger =
        TokenSpec::access_token(Algorithm::Rs256, "k1", "http://evil", AUDIENCE, unix_now())
            .sign(TestKey::rsa_a());
    expect(
        &policy,
        "API, unknown issuer",
        "/api/orders",
        &[("authorization", &bearer(&stranger))],
        401,
        Some(&invalid("The token issuer is not accepted")),
        &["tokengate.rule.api.denied.issuer"],
    )
    .await?;

    // a claim condition: realm role admin.
    expect(
        &policy,
        "admin path, realm A token without the role",
        "/admin/users",
        &[("authorization", &bearer(&user))],
        403,
        Some(
            "Bearer realm=\"tokengate\", error=\"insufficient_scope\", \
             error_description=\"The token's claims do not grant access to this resource\"",
        ),
        &[
            "tokengate.rule.admin.denied.claims",
            "tokengate.denied.claims",
        ],
    )
    .await?;
    expect(
        &policy,
        "admin path, realm A token with the role",
        "/admin/users",
        &[("authorization", &bearer(&admin))],
        200,
        None,
        &["tokengate.rule.admin.allowed"],
    )
    .await?;
    expect(
        &policy,
        "admin path, realm B token",
        "/admin/users",
        &[("authorization", &bearer(&partner))],
        401,
        Some(&invalid("The token issuer is not accepted")),
        &["tokengate.rule.admin.denied.issuer"],
    )
    .await?;

    // a rule bound to an Envoy route by name.
    expect(
        &policy,
        "reports route, realm B",
        "/reports/7",
        &[("authorization", &bearer(&partner))],
        200,
        None,
        &["tokengate.rule.reports.allowed"],
    )
    .await?;
    expect(
        &policy,
        "reports route, realm A",
        "/reports/7",
        &[("authorization", &bearer(&user))],
        401,
        None,
        &["tokengate.rule.reports.denied.algorithm"],
    )
    .await?;

    // allow_missing: no token is fine; a present token must be valid.
    expect(
        &policy,
        "docs, no token",
        "/docs/intro",
        &[],
        200,
        None,
        &["tokengate.rule.docs.allowed"],
    )
    .await?;
    expect(
        &policy,
        "docs, forged token",
        "/docs/intro",
        &[("authorization", &bearer(&tamper_signature(&user)))],
        401,
        Some(&invalid("The token signature is invalid")),
        &["tokengate.rule.docs.denied.bad_signature"],
    )
    .await?;
    expect(
        &policy,
        "docs, token of an unknown issuer (not taken for a missing one)",
        "/docs/intro",
        &[("authorization", &bearer(&stranger))],
        401,
        None,
        &["tokengate.rule.docs.denied.issuer"],
    )
    .await?;

    // no rule covers it.
    let response = expect(
        &policy,
        "no rule",
        "/elsewhere",
        &[("authorization", &bearer(&user))],
        403,
        None,
        &["tokengate.denied.no_rule"],
    )
    .await?;
    assert_eq!(response.header("www-authenticate"), None);
    assert_eq!(response.json()?["error"], "access_denied");
    Ok(())
}

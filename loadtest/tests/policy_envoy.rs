//! The `policy` gateway (envoy/policy.yaml) in real Envoy with the built filter: two issuers
//! (one with a fixed JWKS, one found through OpenID Connect Discovery) served by a local IdP,
//! every rule, requirement, match and condition kind, the identity tokengate publishes for
//! Envoy's RBAC filter and access log, and the route chosen again after its header changes.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use common::{AUDIENCE, SUB, unix_now};
use loadtest::http::{self, Response};
use loadtest::jwks_server::JwksServer;
use loadtest::process::ManagedProcess;
use loadtest::stack::{GatewaySpec, RunningGateway, start_gateway_edited};
use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::testkit::{TestKey, TokenSpec, jwks, tamper_signature};

const INTERNAL_CERTS: &str = "/realms/tokengate/protocol/openid-connect/certs";
const PARTNER_DISCOVERY: &str = "/realms/tokengate-partner/.well-known/openid-configuration";
const PARTNER_CERTS: &str = "/realms/tokengate-partner/protocol/openid-connect/certs";

struct PolicyGateway {
    _dir: PathBuf,
    _backend: ManagedProcess,
    idp: JwksServer,
    gateway: RunningGateway,
}

impl PolicyGateway {
    fn start(spec: GatewaySpec) -> Result<PolicyGateway> {
        Self::start_edited(spec, |text| Ok(text.to_owned()))
    }

    fn start_edited(
        spec: GatewaySpec,
        edit: impl FnOnce(&str) -> Result<String>,
    ) -> Result<PolicyGateway> {
        let dir = loadtest::paths::run_dir("e2e-policy");
        let (backend, backend_addr) = loadtest::backend::spawn(&dir, "backend", 1)?;
        let mut idp = JwksServer::reserve()?;
        let base = format!("http://127.0.0.1:{}", idp.port());
        idp.set_response(
            INTERNAL_CERTS,
            200,
            jwks(&[TestKey::rsa_a().public_jwk("k1", Some("RS256"))]).to_string(),
        );
        idp.set_response(
            PARTNER_DISCOVERY,
            200,
            json!({
                "issuer": format!("{base}/realms/tokengate-partner"),
                "jwks_uri": format!("{base}{PARTNER_CERTS}"),
            })
            .to_string(),
        );
        idp.set_response(
            PARTNER_CERTS,
            200,
            jwks(&[TestKey::p256().public_jwk("ec-b", Some("ES256"))]).to_string(),
        );
        idp.start()?;
        let gateway = start_gateway_edited(&dir, &spec, backend_addr.port(), idp.port(), edit)?;
        Ok(PolicyGateway {
            _dir: dir,
            _backend: backend,
            idp,
            gateway,
        })
    }

    fn issuer(&self, realm: &str) -> String {
        format!("http://127.0.0.1:{}/realms/{realm}", self.idp.port())
    }

    fn internal(&self) -> TokenSpec {
        TokenSpec::access_token(
            Algorithm::Rs256,
            "k1",
            &self.issuer("tokengate"),
            AUDIENCE,
            unix_now(),
        )
    }

    fn partner(&self) -> TokenSpec {
        TokenSpec::access_token(
            Algorithm::Es256,
            "ec-b",
            &self.issuer("tokengate-partner"),
            AUDIENCE,
            unix_now(),
        )
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
        http::get(&self.gateway.url(path), headers).await
    }

    async fn stat(&self, name: &str) -> Result<u64> {
        self.gateway.envoy.stat(&format!("wasmcustom.{name}")).await
    }

    async fn wait_for_keys(&self, provider: &str) -> Result<()> {
        let name = format!("wasmcustom.tokengate.provider.{provider}.jwks.keys_loaded");
        self.gateway
            .envoy
            .wait_for_stat(&name, 1, Duration::from_secs(20))
            .await
            .map(|_| ())
    }
}

/// One request: its status, its challenge, and the metrics it must have moved by one.
async fn expect(
    policy: &PolicyGateway,
    case: &str,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
    challenge: Option<&str>,
    metrics: &[&str],
) -> Result<Response> {
    let mut before = Vec::new();
    for metric in metrics {
        before.push(policy.stat(metric).await?);
    }
    let response = policy.get(path, headers).await?;
    if response.status != status {
        bail!(
            "{case}: status {} (expected {status}): {}",
            response.status,
            response.text()
        );
    }
    if let Some(expected) = challenge
        && response.header("www-authenticate") != Some(expected)
    {
        bail!(
            "{case}: WWW-Authenticate {:?} (expected {expected:?})",
            response.header("www-authenticate")
        );
    }
    for (metric, before) in metrics.iter().zip(before) {
        let after = policy.stat(metric).await?;
        if after != before + 1 {
            bail!("{case}: {metric} went from {before} to {after}");
        }
    }
    println!("ok: {case} -> {status}");
    Ok(response)
}

fn identity(response: &Response) -> Value {
    response
        .json()
        .map(|body| body["identity"].clone())
        .unwrap_or_default()
}

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

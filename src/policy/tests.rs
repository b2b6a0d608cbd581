//! Whole policies through `config::parse`: a worked example, and every kind of bad policy
//! refused with the field named.

use serde_json::{Value, json};

use crate::config::{self, Mode};
use crate::testkit::{TestKey, jwks};

fn providers() -> Value {
    json!({
        "internal": {
            "issuer": "https://idp/realms/internal", "audiences": ["api"],
            "jwks": {"remote": {"cluster": "idp", "authority": "idp", "path": "/certs"}}
        },
        "partner": {
            "issuer": "https://partner/realms/p", "audiences": ["api"], "algorithms": ["ES256"],
            "jwks": {"inline": jwks(&[TestKey::p256().public_jwk("ec", Some("ES256"))])}
        },
        "machines": {
            "mode": "introspect", "opaque": true, "issuer": "https://machines", "audiences": [],
            "introspection": {"cluster": "idp", "authority": "idp", "path": "/i",
                              "client_id": "gw", "client_secret": "s"}
        }
    })
}

fn example() -> Value {
    json!({
        "providers": providers(),
        "rules": [
            {"name": "health", "match": {"path": {"exact": "/health"}}, "requires": "public"},
            {"name": "admin", "match": {"path": {"prefix": "/admin/"}, "methods": ["GET", "POST"]},
             "requires": {"provider": "internal"},
             "claims": [{"claim": "realm_access.roles", "contains": "admin"},
                        {"claim": "email_verified", "equals": true}]},
            {"name": "api", "match": {"path": {"pattern": "/api/*/orders"}},
             "requires": {"any": [{"provider": "internal"}, {"provider": "partner"}, {"provider": "machines"}]},
             "scopes": ["orders:read"]},
            {"name": "reports", "match": {"route": "reports", "hosts": ["*.example.com"]},
             "requires": {"provider": "partner"}, "clear_route_cache": true}
        ]
    })
}

fn parse(value: &Value) -> Result<config::Config, config::ConfigError> {
    config::parse(value.to_string().as_bytes())
}

#[test]
fn the_worked_example() {
    let config = parse(&example()).unwrap();
    let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 3);
    for expected in ["internal", "partner", "machines"] {
        assert!(names.contains(&expected));
    }
    let machines = config
        .providers
        .iter()
        .position(|p| p.name.as_str() == "machines")
        .unwrap();
    assert_eq!(config.providers[machines].mode, Mode::Introspect);
    assert!(config.providers[machines].opaque);
    let rules: Vec<&str> = config
        .policy
        .rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(rules, ["health", "admin", "api", "reports"]);
    assert!(config.policy.rules[3].clear_route_cache);
    let needs = config.policy.needs();
    assert!(needs.path && needs.method && needs.authority && needs.route);
    // Warnings name their provider.
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("provider `machines`: `audiences` is empty"));
    // Without rules: one rule requiring any of the providers.
    let any = parse(&json!({"providers": providers()})).unwrap();
    assert_eq!(any.policy.rules.len(), 1);
    assert_eq!(any.policy.rules[0].requires.providers().len(), 3);
}

#[test]
fn bad_policies_name_their_field() {
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change, &str, &str)> = vec![
        (
            "unknown provider",
            Box::new(|c| c["rules"][2]["requires"]["any"][1] = json!({"provider": "partnr"})),
            "rules[2].requires.any[1].provider",
            "no provider named \"partnr\"",
        ),
        (
            "unreachable rule",
            Box::new(|c| {
                c["rules"][1]["match"] = json!({});
                c["rules"][2]["match"] = json!({"path": {"prefix": "/"}});
            }),
            "rules[2].match",
            "never match",
        ),
        (
            "bad pattern",
            Box::new(|c| c["rules"][2]["match"]["path"]["pattern"] = json!("/api/**/orders")),
            "rules[2].match.path.pattern",
            "last segment",
        ),
        (
            "condition of the wrong type",
            Box::new(|c| c["rules"][1]["claims"][1]["equals"] = json!(["true"])),
            "rules[1].claims[1].equals",
            "string, a boolean or a number",
        ),
        (
            "mixed one_of",
            Box::new(|c| c["rules"][1]["claims"][1] = json!({"claim": "x", "one_of": [1, "1"]})),
            "rules[1].claims[1].one_of[1]",
            "type",
        ),
        (
            "provider fields beside providers",
            Box::new(|c| c["issuer"] = json!("https://idp")),
            "issuer",
            "inside a provider",
        ),
        (
            "required_scopes beside rules",
            Box::new(|c| c["required_scopes"] = json!(["a"])),
            "required_scopes",
            "rules[].scopes",
        ),
        (
            "bad provider name",
            Box::new(|c| c["providers"]["Partner!"] = c["providers"]["partner"].clone()),
            "providers.Partner!",
            "not a valid name",
        ),
        (
            "provider error",
            Box::new(|c| c["providers"]["partner"]["algorithms"] = json!(["HS256"])),
            "providers.partner.algorithms[0]",
            "shared secret",
        ),
        (
            "provider missing issuer",
            Box::new(|c| {
                c["providers"]["partner"]
                    .as_object_mut()
                    .unwrap()
                    .remove("issuer");
            }),
            "providers.partner.issuer",
            "required",
        ),
        (
            "opaque outside introspect",
            Box::new(|c| c["providers"]["partner"]["opaque"] = json!(true)),
            "providers.partner.opaque",
            "introspect",
        ),
        (
            "two rules of one name",
            Box::new(|c| c["rules"][3]["name"] = json!("api")),
            "rules[3].name",
            "two rules",
        ),
        (
            "allow_missing alone",
            Box::new(|c| c["rules"][2]["requires"] = json!("allow_missing")),
            "rules[2].requires",
            "belongs in an `any`",
        ),
        (
            "allow_missing with scopes",
            Box::new(|c| {
                c["rules"][2]["requires"] =
                    json!({"any": [{"provider": "internal"}, "allow_missing"]})
            }),
            "rules[2].requires",
            "cannot satisfy",
        ),
        (
            "public inside any",
            Box::new(|c| c["rules"][3]["requires"] = json!({"any": ["public"]})),
            "rules[3].requires.any[0]",
            "whole requirement",
        ),
        (
            "empty any",
            Box::new(|c| c["rules"][3]["requires"] = json!({"any": []})),
            "rules[3].requires.any",
            "empty",
        ),
        (
            "two keys in a requirement",
            Box::new(|c| c["rules"][3]["requires"] = json!({"provider": "partner", "any": []})),
            "rules[3].requires",
            "exactly one",
        ),
        (
            "same issuer twice in an any",
            Box::new(|c| {
                c["providers"]["partner"]["issuer"] = json!("https://idp/realms/internal");
            }),
            "rules[2].requires.any",
            "same issuer",
        ),
        (
            "two opaque providers in an any",
            Box::new(|c| {
                let mut other = c["providers"]["machines"].clone();
                other["issuer"] = json!("https://robots");
                c["providers"]["robots"] = other;
                c["rules"][2]["requires"]["any"][0] = json!({"provider": "robots"});
            }),
            "rules[2].requires.any",
            "opaque",
        ),
        (
            "bad scope",
            Box::new(|c| c["rules"][2]["scopes"] = json!(["a b"])),
            "rules[2].scopes[0]",
            "scope token",
        ),
        (
            "unknown rule field",
            Box::new(|c| c["rules"][0]["path"] = json!("/health")),
            "rules[0].path",
            "unknown field",
        ),
        (
            "no rules",
            Box::new(|c| c["rules"] = json!([])),
            "rules",
            "at least one rule",
        ),
        (
            "no providers",
            Box::new(|c| c["providers"] = json!({})),
            "providers",
            "at least one provider",
        ),
        (
            "unmatched value",
            Box::new(|c| c["unmatched"] = json!("allow")),
            "unmatched",
            "unknown variant",
        ),
    ];
    for (name, change, field, problem) in cases {
        let mut config = example();
        change(&mut config);
        let err = parse(&config).expect_err(name);
        assert_eq!(err.field, field, "case {name}: {err}");
        assert!(err.problem.contains(problem), "case {name}: {err}");
    }
    // `unmatched` needs rules to apply to.
    let single = json!({
        "issuer": "https://idp", "audiences": [], "unmatched": "public",
        "jwks": {"remote": {"cluster": "idp", "authority": "idp", "path": "/certs"}}
    });
    assert_eq!(parse(&single).unwrap_err().field, "unmatched");
}

#[test]
fn a_top_level_provider_with_rules_is_provider_default() {
    let config = parse(&json!({
        "issuer": "https://idp", "audiences": ["api"],
        "jwks": {"remote": {"cluster": "idp", "authority": "idp", "path": "/certs"}},
        "rules": [
            {"name": "health", "match": {"path": {"exact": "/health"}}, "requires": "public"},
            {"name": "api", "requires": {"provider": "default"}}
        ]
    }))
    .unwrap();
    assert_eq!(config.providers[0].name.as_str(), "default");
    assert_eq!(config.policy.rules.len(), 2);
}

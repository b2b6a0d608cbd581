//! Every configuration error names its field; good configurations get the documented defaults.

use serde_json::{Value, json};

use super::*;
use crate::algorithm::Algorithm;
use crate::testkit::{TestKey, jwks};

fn minimal() -> Value {
    json!({
        "issuer": "https://idp.example/realms/r",
        "audiences": ["api"],
        "jwks": {"remote": {"cluster": "idp", "authority": "idp:8080", "path": "/certs"}},
    })
}

fn introspection() -> Value {
    json!({
        "cluster": "idp", "authority": "idp:8080",
        "path": "/realms/r/protocol/openid-connect/token/introspect",
        "client_id": "gateway", "client_secret": "very-secret"
    })
}

#[test]
fn introspection_modes() {
    let introspect = single(&with(|c| {
        c["mode"] = json!("introspect");
        c.as_object_mut().unwrap().remove("jwks");
        c["introspection"] = introspection();
        c["on_idp_error"] = json!("allow");
    }));
    assert_eq!(introspect.mode, Mode::Introspect);
    assert!(introspect.jwks.is_none());
    let settings = introspect.introspection.as_ref().unwrap();
    assert_eq!(settings.timeout_ms, 2000);
    assert_eq!(settings.cache_ttl_seconds, 30);
    assert_eq!(settings.negative_cache_ttl_seconds, 10);
    assert_eq!(settings.max_in_flight, 1024);
    assert_eq!(settings.client_secret.expose(), "very-secret");
    assert!(
        !format!("{introspect:?}").contains("very-secret"),
        "the secret leaks via Debug"
    );
    assert_eq!(introspect.on_idp_error, OnIdpError::Allow);
    assert!(
        introspect
            .warnings()
            .iter()
            .any(|w| w.contains("on_idp_error"))
    );

    let hybrid = single(&with(|c| {
        c["mode"] = json!("hybrid");
        c["introspection"] = introspection();
    }));
    assert_eq!(hybrid.mode, Mode::Hybrid);
    assert!(hybrid.jwks.is_some() && hybrid.introspection.is_some());
    assert_eq!(hybrid.on_idp_error, OnIdpError::Deny);
}

fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut config = minimal();
    change(&mut config);
    config
}

fn parse_value(value: &Value) -> Result<Config, ConfigError> {
    parse(value.to_string().as_bytes())
}

/// The one provider of a single-issuer configuration.
fn single(value: &Value) -> Provider {
    let mut config = parse_value(value).unwrap();
    assert_eq!(config.providers.len(), 1);
    config.providers.remove(0)
}

#[test]
fn defaults() {
    let whole = parse_value(&minimal()).unwrap();
    assert_eq!(whole.realm, "tokengate");
    assert_eq!(whole.retry_after_seconds, 5);
    assert!(whole.warnings().is_empty());
    let rule = &whole.policy.rules[0];
    assert_eq!(whole.policy.rules.len(), 1);
    assert_eq!(rule.name.as_str(), "default");
    assert!(rule.matcher.is_catch_all() && rule.scopes.is_empty());
    let config = single(&minimal());
    assert_eq!(config.name.as_str(), "default");
    assert_eq!(config.mode, Mode::Jwt);
    assert_eq!(
        config.algorithms.iter().collect::<Vec<_>>(),
        vec![Algorithm::Rs256]
    );
    assert_eq!(config.clock_skew_seconds, 30);
    assert_eq!(config.max_token_bytes, 8192);
    assert!(config.verify_exp && config.verify_nbf);
    assert_eq!(config.token_types, vec!["Bearer"]);
    assert!(!config.opaque);
    assert_eq!(config.token_source, TokenSource::default());
    assert_eq!(config.forward, Forwarding::default());
    assert_eq!(config.cache_max_entries, DEFAULT_CACHE_ENTRIES as usize);
    let Some(JwksSource::Remote(remote)) = &config.jwks else {
        panic!("remote expected");
    };
    assert_eq!((remote.refresh_seconds, remote.timeout_ms), (300, 2000));
    assert!(config.warnings().is_empty());
}

#[test]
fn full_configuration() {
    let value = json!({
        "mode": "jwt",
        "issuer": "https://idp.example/realms/r",
        "audiences": "api",
        "algorithms": ["RS256", "ES256"],
        "clock_skew_seconds": 0,
        "max_token_bytes": 4096,
        "realm": "orders",
        "claims_to_verify": ["nbf"],
        "token_types": [],
        "required_scopes": ["orders:read"],
        "jwks": {"inline": jwks(&[TestKey::rsa_a().public_jwk("a", Some("RS256"))])},
        "token_source": {"header": "X-Access-Token", "prefix": "Token "},
        "forward": {"strip_authorization": true, "claims_to_headers": [
            {"claim": "realm_access.roles", "header": "X-Roles"}
        ]},
        "cache": {"max_entries": 0},
        "retry_after_seconds": 30
    });
    let whole = parse_value(&value).unwrap();
    assert_eq!(
        (whole.realm.as_str(), whole.retry_after_seconds),
        ("orders", 30)
    );
    assert_eq!(whole.policy.rules[0].scopes, vec!["orders:read"]);
    assert_eq!(whole.policy.rules[0].scope_string, "orders:read");
    let config = single(&value);
    assert_eq!(config.audiences, vec!["api"]);
    assert!(!config.verify_exp);
    assert_eq!(
        config.token_source,
        TokenSource::Header {
            name: "x-access-token".into(),
            prefix: "Token ".into()
        }
    );
    assert_eq!(config.forward.claims_to_headers[0].header, "x-roles");
    assert_eq!(
        config.forward.claims_to_headers[0].claim.segments(),
        ["realm_access", "roles"]
    );
    assert!(matches!(&config.jwks, Some(JwksSource::Inline(keys)) if keys.len() == 1));
    assert_eq!(config.warnings().len(), 1);
    assert!(config.warnings()[0].contains("expired tokens will be accepted"));
    let any_audience = parse_value(&with(|c| c["audiences"] = json!([]))).unwrap();
    assert!(any_audience.warnings()[0].contains("any audience"));
}

#[test]
fn every_error_names_its_field() {
    type Change = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        ("not an object", Box::new(|c| *c = json!([])), ""),
        (
            "unknown top-level field",
            Box::new(|c| c["claims_to_verfy"] = json!(["exp"])),
            "claims_to_verfy",
        ),
        (
            "unknown mode",
            Box::new(|c| c["mode"] = json!("magic")),
            "mode",
        ),
        (
            "introspect with jwks",
            Box::new(|c| c["mode"] = json!("introspect")),
            "jwks",
        ),
        (
            "hybrid without introspection",
            Box::new(|c| c["mode"] = json!("hybrid")),
            "introspection",
        ),
        (
            "introspection in jwt mode",
            Box::new(|c| c["introspection"] = introspection()),
            "introspection",
        ),
        (
            "unknown on_idp_error",
            Box::new(|c| c["on_idp_error"] = json!("maybe")),
            "on_idp_error",
        ),
        (
            "fail-open without introspection",
            Box::new(|c| c["on_idp_error"] = json!("allow")),
            "on_idp_error",
        ),
        (
            "introspection without secret",
            Box::new(|c| {
                c["mode"] = json!("hybrid");
                c["introspection"] = introspection();
                c["introspection"]
                    .as_object_mut()
                    .unwrap()
                    .remove("client_secret");
            }),
            "introspection",
        ),
        (
            "introspection empty client",
            Box::new(|c| {
                c["mode"] = json!("hybrid");
                c["introspection"] = introspection();
                c["introspection"]["client_id"] = json!("");
            }),
            "introspection.client_id",
        ),
        (
            "introspection relative path",
            Box::new(|c| {
                c["mode"] = json!("hybrid");
                c["introspection"] = introspection();
                c["introspection"]["path"] = json!("introspect");
            }),
            "introspection.path",
        ),
        (
            "introspection long ttl",
            Box::new(|c| {
                c["mode"] = json!("hybrid");
                c["introspection"] = introspection();
                c["introspection"]["cache_ttl_seconds"] = json!(86_400);
            }),
            "introspection.cache_ttl_seconds",
        ),
        (
            "introspection no in-flight",
            Box::new(|c| {
                c["mode"] = json!("hybrid");
                c["introspection"] = introspection();
                c["introspection"]["max_in_flight"] = json!(0);
            }),
            "introspection.max_in_flight",
        ),
        (
            "introspection unknown field",
            Box::new(|c| {
                c["mode"] = json!("hybrid");
                c["introspection"] = introspection();
                c["introspection"]["secret"] = json!("x");
            }),
            "introspection.secret",
        ),
        (
            "missing issuer",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("issuer");
            }),
            "issuer",
        ),
        (
            "empty issuer",
            Box::new(|c| c["issuer"] = json!(" ")),
            "issuer",
        ),
        (
            "issuer wrong type",
            Box::new(|c| c["issuer"] = json!(5)),
            "issuer",
        ),
        (
            "missing audiences",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("audiences");
            }),
            "audiences",
        ),
        (
            "audiences wrong type",
            Box::new(|c| c["audiences"] = json!(5)),
            "audiences",
        ),
        (
            "empty audience",
            Box::new(|c| c["audiences"] = json!(["api", ""])),
            "audiences[1]",
        ),
        (
            "no algorithms",
            Box::new(|c| c["algorithms"] = json!([])),
            "algorithms",
        ),
        (
            "alg none",
            Box::new(|c| c["algorithms"] = json!(["RS256", "none"])),
            "algorithms[1]",
        ),
        (
            "HS256",
            Box::new(|c| c["algorithms"] = json!(["HS256"])),
            "algorithms[0]",
        ),
        (
            "ES512",
            Box::new(|c| c["algorithms"] = json!(["ES512"])),
            "algorithms[0]",
        ),
        (
            "lower-case alg",
            Box::new(|c| c["algorithms"] = json!(["rs256"])),
            "algorithms[0]",
        ),
        (
            "negative skew",
            Box::new(|c| c["clock_skew_seconds"] = json!(-1)),
            "clock_skew_seconds",
        ),
        (
            "huge skew",
            Box::new(|c| c["clock_skew_seconds"] = json!(3600)),
            "clock_skew_seconds",
        ),
        (
            "tiny token limit",
            Box::new(|c| c["max_token_bytes"] = json!(10)),
            "max_token_bytes",
        ),
        (
            "huge token limit",
            Box::new(|c| c["max_token_bytes"] = json!(1_000_000)),
            "max_token_bytes",
        ),
        (
            "realm with quote",
            Box::new(|c| c["realm"] = json!("a\"b")),
            "realm",
        ),
        (
            "unknown claim to verify",
            Box::new(|c| c["claims_to_verify"] = json!(["exp", "iat"])),
            "claims_to_verify[1]",
        ),
        (
            "empty token type",
            Box::new(|c| c["token_types"] = json!([""])),
            "token_types[0]",
        ),
        (
            "scope with space",
            Box::new(|c| c["required_scopes"] = json!(["a b"])),
            "required_scopes[0]",
        ),
        (
            "scope with quote",
            Box::new(|c| c["required_scopes"] = json!(["a\"b"])),
            "required_scopes[0]",
        ),
        (
            "missing jwks",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("jwks");
            }),
            "jwks",
        ),
        (
            "both jwks sources",
            Box::new(|c| c["jwks"]["inline"] = json!({"keys": []})),
            "jwks",
        ),
        (
            "neither jwks source",
            Box::new(|c| c["jwks"] = json!({})),
            "jwks",
        ),
        (
            "unknown jwks field",
            Box::new(|c| c["jwks"]["file"] = json!("/x")),
            "jwks.file",
        ),
        (
            "inline jwks without usable keys",
            Box::new(|c| {
                c["jwks"] = json!({"inline": {"keys": [
                    TestKey::rsa_weak().public_jwk("weak", Some("RS256"))
                ]}})
            }),
            "jwks.inline",
        ),
        (
            "inline jwks not a jwks",
            Box::new(|c| c["jwks"] = json!({"inline": [1]})),
            "jwks.inline",
        ),
        (
            "remote without cluster",
            Box::new(|c| {
                c["jwks"]["remote"]
                    .as_object_mut()
                    .unwrap()
                    .remove("cluster");
            }),
            "jwks.remote",
        ),
        (
            "remote empty cluster",
            Box::new(|c| c["jwks"]["remote"]["cluster"] = json!("")),
            "jwks.remote.cluster",
        ),
        (
            "remote empty authority",
            Box::new(|c| c["jwks"]["remote"]["authority"] = json!("")),
            "jwks.remote.authority",
        ),
        (
            "remote relative path",
            Box::new(|c| c["jwks"]["remote"]["path"] = json!("certs")),
            "jwks.remote.path",
        ),
        (
            "remote refresh too short",
            Box::new(|c| c["jwks"]["remote"]["refresh_seconds"] = json!(1)),
            "jwks.remote.refresh_seconds",
        ),
        (
            "remote timeout too long",
            Box::new(|c| c["jwks"]["remote"]["timeout_ms"] = json!(120_000)),
            "jwks.remote.timeout_ms",
        ),
        (
            "remote unknown field",
            Box::new(|c| c["jwks"]["remote"]["url"] = json!("http://x")),
            "jwks.remote.url",
        ),
        (
            "two token sources",
            Box::new(|c| c["token_source"] = json!({"header": "x", "query": "y"})),
            "token_source",
        ),
        (
            "no token source",
            Box::new(|c| c["token_source"] = json!({})),
            "token_source",
        ),
        (
            "bad header name",
            Box::new(|c| c["token_source"] = json!({"header": "x token"})),
            "token_source.header",
        ),
        (
            "prefix without header",
            Box::new(|c| c["token_source"] = json!({"query": "t", "prefix": "B "})),
            "token_source.prefix",
        ),
        (
            "bad query name",
            Box::new(|c| c["token_source"] = json!({"query": "a&b"})),
            "token_source.query",
        ),
        (
            "bad cookie name",
            Box::new(|c| c["token_source"] = json!({"cookie": "a;b"})),
            "token_source.cookie",
        ),
        (
            "forward unknown field",
            Box::new(|c| c["forward"] = json!({"claims": []})),
            "forward.claims",
        ),
        (
            "forward empty path segment",
            Box::new(|c| {
                c["forward"] = json!({"claims_to_headers": [{"claim": "a..b", "header": "x-a"}]})
            }),
            "forward.claims_to_headers[0].claim",
        ),
        (
            "forward bad header",
            Box::new(|c| {
                c["forward"] = json!({"claims_to_headers": [{"claim": "sub", "header": "x sub"}]})
            }),
            "forward.claims_to_headers[0].header",
        ),
        (
            "forward pseudo header",
            Box::new(|c| {
                c["forward"] = json!({"claims_to_headers": [{"claim": "sub", "header": ":path"}]})
            }),
            "forward.claims_to_headers[0].header",
        ),
        (
            "forward into authorization",
            Box::new(|c| {
                c["forward"] =
                    json!({"claims_to_headers": [{"claim": "sub", "header": "Authorization"}]})
            }),
            "forward.claims_to_headers[0].header",
        ),
        (
            "forward into host",
            Box::new(|c| {
                c["forward"] = json!({"claims_to_headers": [{"claim": "sub", "header": "host"}]})
            }),
            "forward.claims_to_headers[0].header",
        ),
        (
            "forward same header twice",
            Box::new(|c| {
                c["forward"] = json!({"claims_to_headers": [
                    {"claim": "sub", "header": "x-a"}, {"claim": "azp", "header": "X-A"}
                ]})
            }),
            "forward.claims_to_headers[1].header",
        ),
        (
            "forward missing header",
            Box::new(|c| c["forward"] = json!({"claims_to_headers": [{"claim": "sub"}]})),
            "forward.claims_to_headers[0]",
        ),
        (
            "cache too large",
            Box::new(|c| c["cache"] = json!({"max_entries": 100_000_000})),
            "cache.max_entries",
        ),
        (
            "cache unknown field",
            Box::new(|c| c["cache"] = json!({"ttl": 5})),
            "cache.ttl",
        ),
        (
            "retry-after zero",
            Box::new(|c| c["retry_after_seconds"] = json!(0)),
            "retry_after_seconds",
        ),
    ];
    for (name, change, field) in cases {
        let config = with(change);
        let err = parse_value(&config).expect_err(name);
        assert_eq!(err.field, field, "case {name}: {err}");
        assert!(!err.problem.is_empty());
        let line = err.to_string();
        assert!(line.starts_with("invalid configuration: "), "{line}");
        if !field.is_empty() {
            assert!(line.contains(&format!("`{field}`")), "{line}");
        }
    }
}

#[test]
fn not_json_at_all() {
    for text in ["", "{", "nonsense", "{\"issuer\": }"] {
        let err = parse(text.as_bytes()).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid configuration"),
            "{err}"
        );
    }
}

#[test]
fn unknown_field_message_lists_the_known_ones() {
    let err = parse_value(&with(|c| c["claims_to_verfy"] = json!(["exp"]))).unwrap_err();
    assert!(err.problem.contains("claims_to_verify"), "{}", err.problem);
}

/// Found by fuzzing: an error quoting the configuration's own text (here a provider's name)
/// carried its newline into the log.
#[test]
fn errors_stay_one_line() {
    let config = json!({"providers": {"a\nb\u{1b}": minimal()}});
    let err = match parse(config.to_string().as_bytes()) {
        Err(err) => err.to_string(),
        Ok(_) => String::from("accepted"),
    };
    assert!(!err.chars().any(char::is_control), "{err:?}");
    assert!(err.contains("a\\nb\\u{1b}"), "{err:?}");
}

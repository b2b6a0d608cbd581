//! Table-driven tests of every validation rule: the shared fixtures, and the rules' settings
//! (size limit, configuration, scopes, forwarded values, keys); the rejection table and the
//! strict types are in files of their own (`validate_rejection_tests.rs`,
//! `validate_types_tests.rs`).

use serde_json::{Value, json};

use super::*;
use crate::config::{self, Config};
use crate::rejection::{MalformedToken as M, Rejection as R};
use crate::testkit::{TestKey, TokenSpec, jwks, sign_raw, tamper_signature};

const NOW: i64 = 1_750_000_000;
const ISSUER: &str = "http://127.0.0.1:8080/realms/tokengate";
const AUDIENCE: &str = "tokengate-api";

fn test_jwks() -> Value {
    jwks(&[
        TestKey::rsa_a().public_jwk("rsa", Some("RS256")),
        TestKey::rsa_b().public_jwk("pss", Some("PS256")),
        TestKey::p256().public_jwk("ec", Some("ES256")),
        TestKey::ed25519().public_jwk("ed", Some("EdDSA")),
    ])
}

fn config_with(overrides: Value) -> Config {
    let mut base = json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "algorithms": ["RS256", "PS256", "ES256", "EdDSA"],
        "jwks": {"inline": test_jwks()},
        "forward": {"claims_to_headers": [
            {"claim": "sub", "header": "x-jwt-sub"},
            {"claim": "realm_access.roles", "header": "x-jwt-roles"},
        ]},
    });
    if let (Some(base), Some(overrides)) = (base.as_object_mut(), overrides.as_object()) {
        for (k, v) in overrides {
            base.insert(k.clone(), v.clone());
        }
    }
    config::parse(base.to_string().as_bytes()).unwrap()
}

fn keys_of(config: &Config) -> KeySet {
    match &config.providers[0].jwks {
        Some(crate::config::JwksSource::Inline(keys)) => keys.clone(),
        _ => KeySet::default(),
    }
}

fn rs256() -> TokenSpec {
    TokenSpec::access_token(Algorithm::Rs256, "rsa", ISSUER, AUDIENCE, NOW)
}

fn check(config: &Config, token: &str) -> Result<Verified, Rejection> {
    let catalog = &config.policy.catalogs[0];
    validate(&config.providers[0], &keys_of(config), catalog, token, NOW)
}

/// Validation, then the single-issuer rule's scopes.
fn check_rule(config: &Config, token: &str) -> Result<Verified, Rejection> {
    let verified = check(config, token)?;
    config.policy.rules[0].demands[0].check(verified.facts)?;
    Ok(verified)
}

fn without_keys(config: &Config, token: &str) -> Result<(), Rejection> {
    let catalog = &config.policy.catalogs[0];
    validate(
        &config.providers[0],
        &KeySet::default(),
        catalog,
        token,
        NOW,
    )
    .map(|_| ())
}

/// Header and payload as raw JSON text, signed correctly with the RSA key.
fn raw(header: &str, payload: &str) -> String {
    sign_raw(header, payload, TestKey::rsa_a(), Algorithm::Rs256)
}

fn payload_json(spec: &TokenSpec) -> String {
    Value::Object(spec.claims.clone()).to_string()
}

#[test]
fn oversize_tokens_are_refused_before_parsing() {
    let config = config_with(json!({"max_token_bytes": 1024}));
    let big = rs256()
        .claim("padding", "x".repeat(2000))
        .sign(TestKey::rsa_a());
    assert_eq!(
        check(&config, &big),
        Err(R::TokenTooLarge {
            length: big.len(),
            limit: 1024
        })
    );
    assert_eq!(
        check(&config, &"x".repeat(5000)).map(|_| ()),
        Err(R::TokenTooLarge {
            length: 5000,
            limit: 1024
        })
    );
}

#[test]
fn configuration_changes_the_rules() {
    let expired = rs256().claim("exp", NOW - 3600).sign(TestKey::rsa_a());
    let no_exp = rs256().without_claim("exp").sign(TestKey::rsa_a());
    let future = rs256().claim("nbf", NOW + 3600).sign(TestKey::rsa_a());
    let id_token = rs256().claim("typ", "ID").sign(TestKey::rsa_a());
    let other_aud = rs256().claim("aud", "account").sign(TestKey::rsa_a());

    let no_exp_check = config_with(json!({"claims_to_verify": ["nbf"]}));
    assert!(
        check(&no_exp_check, &expired).is_ok(),
        "the misconfigured gateway lets it through"
    );
    assert!(check(&no_exp_check, &no_exp).is_ok());
    assert_eq!(
        check(&no_exp_check, &future).map(|_| ()),
        Err(R::NotYetValid)
    );

    let nothing_checked = config_with(json!({"claims_to_verify": []}));
    assert!(check(&nothing_checked, &future).is_ok());

    let any_audience = config_with(json!({"audiences": []}));
    assert!(check(&any_audience, &other_aud).is_ok());
    let single_audience = config_with(json!({"audiences": "account"}));
    assert!(check(&single_audience, &other_aud).is_ok());

    let any_type = config_with(json!({"token_types": []}));
    assert!(check(&any_type, &id_token).is_ok());

    let rs256_only = config_with(json!({"algorithms": ["RS256"]}));
    let es = TokenSpec::access_token(Algorithm::Es256, "ec", ISSUER, AUDIENCE, NOW)
        .sign(TestKey::p256());
    assert_eq!(
        check(&rs256_only, &es).map(|_| ()),
        Err(R::DisallowedAlgorithm)
    );
}

#[test]
fn scopes_from_scope_and_scp() {
    let config = config_with(json!({"required_scopes": ["email", "orders:read"]}));
    let cases: Vec<(Value, Option<Value>, Result<(), Rejection>)> = vec![
        (json!("openid email orders:read"), None, Ok(())),
        (json!("email  orders:read"), None, Ok(())),
        (json!("email"), None, Err(R::InsufficientScope)),
        (json!("email"), Some(json!(["orders:read"])), Ok(())),
        (json!(""), Some(json!("email orders:read")), Ok(())),
        (json!("emailorders:read"), None, Err(R::InsufficientScope)),
        (json!(42), None, Err(R::Malformed(M::ClaimType))),
        (
            json!("email"),
            Some(json!([1])),
            Err(R::Malformed(M::ClaimType)),
        ),
    ];
    for (scope, scp, expected) in cases {
        let mut spec = rs256().claim("scope", scope.clone());
        if let Some(scp) = scp.clone() {
            spec = spec.claim("scp", scp);
        }
        let actual = check_rule(&config, &spec.sign(TestKey::rsa_a())).map(|_| ());
        assert_eq!(actual, expected, "scope={scope} scp={scp:?}");
    }
    // A forged token never earns a 403: the signature is checked first.
    let forged = tamper_signature(&rs256().claim("scope", "none").sign(TestKey::rsa_a()));
    assert_eq!(
        check_rule(&config, &forged).map(|_| ()),
        Err(R::BadSignature)
    );
}

#[test]
fn forwarded_values() {
    let config = config_with(json!({"forward": {"claims_to_headers": [
        {"claim": "sub", "header": "x-sub"},
        {"claim": "realm_access.roles", "header": "x-roles"},
        {"claim": "exp", "header": "x-exp"},
        {"claim": "missing", "header": "x-missing"},
        {"claim": "realm_access", "header": "x-realm-access"},
        {"claim": "realm_access.roles.deeper", "header": "x-deeper"},
        {"claim": "email_verified", "header": "x-verified"},
    ]}}));
    let token = rs256().claim("email_verified", true).sign(TestKey::rsa_a());
    let verified = check(&config, &token).unwrap();
    assert_eq!(verified.expires_at, Some(NOW + 3600));
    assert_eq!(
        verified.forwarded,
        vec![
            Some("f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c".to_owned()),
            Some("offline_access user".to_owned()),
            Some((NOW + 3600).to_string()),
            None,
            Some(r#"{"roles":["offline_access","user"]}"#.to_owned()),
            None,
            Some("true".to_owned()),
        ]
    );
}

#[test]
fn no_keys_yet_means_unavailable_but_garbage_is_still_rejected() {
    let config = config_with(json!({"jwks": {"remote": {
        "cluster": "idp", "authority": "idp", "path": "/certs"
    }}}));
    let valid = rs256().sign(TestKey::rsa_a());
    assert_eq!(without_keys(&config, &valid), Err(R::KeysUnavailable));
    assert_eq!(
        without_keys(&config, "garbage"),
        Err(R::Malformed(M::Structure))
    );
    let expired = rs256().claim("exp", NOW - 3600).sign(TestKey::rsa_a());
    assert_eq!(without_keys(&config, &expired), Err(R::Expired));
}

#[test]
fn larger_rsa_keys_verify() {
    let keys = jwks(&[TestKey::rsa_3072().public_jwk("big", Some("RS256"))]);
    let config = config_with(json!({"jwks": {"inline": keys}}));
    let token = rs256().header("kid", "big").sign(TestKey::rsa_3072());
    assert!(check(&config, &token).is_ok());
}

#[path = "validate_rejection_tests.rs"]
mod rejection;
#[path = "validate_types_tests.rs"]
mod types;

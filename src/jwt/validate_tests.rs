//! Table-driven tests of every validation rule.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Value, json};

use super::*;
use crate::config::{self, Config};
use crate::rejection::{MalformedToken as M, Rejection as R};
use crate::testkit::{TestKey, TokenSpec, b64url, jwks, sign_raw, tamper_signature};

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
fn rejection_table() {
    let config = config_with(json!({}));
    let valid = rs256().sign(TestKey::rsa_a());
    let (valid_header, rest) = valid.split_once('.').unwrap();
    let header_json = r#"{"alg":"RS256","typ":"JWT","kid":"rsa"}"#;
    let payload = payload_json(&rs256());

    let cases: Vec<(&str, String, Result<(), Rejection>)> = vec![
        ("valid RS256", valid.clone(), Ok(())),
        (
            "valid PS256",
            TokenSpec::access_token(Algorithm::Ps256, "pss", ISSUER, AUDIENCE, NOW)
                .sign(TestKey::rsa_b()),
            Ok(()),
        ),
        (
            "valid ES256",
            TokenSpec::access_token(Algorithm::Es256, "ec", ISSUER, AUDIENCE, NOW)
                .sign(TestKey::p256()),
            Ok(()),
        ),
        (
            "valid EdDSA",
            TokenSpec::access_token(Algorithm::EdDsa, "ed", ISSUER, AUDIENCE, NOW)
                .sign(TestKey::ed25519()),
            Ok(()),
        ),
        (
            "no kid, single RS256 key",
            rs256().without_header("kid").sign(TestKey::rsa_a()),
            Ok(()),
        ),
        // structure and encoding
        (
            "two segments",
            "abc.def".into(),
            Err(R::Malformed(M::Structure)),
        ),
        (
            "four segments",
            format!("{valid}.x"),
            Err(R::Malformed(M::Structure)),
        ),
        (
            "JWE (five segments)",
            "a.b.c.d.e".into(),
            Err(R::Malformed(M::Encrypted)),
        ),
        ("empty segments", "..".into(), Err(R::Malformed(M::Header))),
        (
            "padded base64",
            format!("{valid_header}=.{rest}"),
            Err(R::Malformed(M::Base64)),
        ),
        (
            "non-canonical base64 (trailing bits set)",
            {
                // 16 bytes encode to 22 characters whose last one carries 4 unused bits; setting
                // one of them decodes to the same bytes in a lenient decoder.
                let header = b64url(r#"{"alg":"RS256" }"#);
                const ALPHABET: &str =
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let last = header.chars().last().unwrap();
                let index = ALPHABET.find(last).unwrap();
                assert_eq!(index & 0x0f, 0);
                let replacement = ALPHABET.chars().nth(index | 1).unwrap();
                let header = format!("{}{replacement}", &header[..header.len() - 1]);
                format!("{header}.{rest}")
            },
            Err(R::Malformed(M::Base64)),
        ),
        (
            "standard base64 alphabet",
            format!("{valid_header}+.{rest}"),
            Err(R::Malformed(M::Base64)),
        ),
        (
            "header not JSON",
            format!("{}.{rest}", b64url("alg")),
            Err(R::Malformed(M::Header)),
        ),
        (
            "header is an array",
            raw("[1]", &payload),
            Err(R::Malformed(M::Header)),
        ),
        (
            "header without alg",
            raw(r#"{"kid":"rsa"}"#, &payload),
            Err(R::Malformed(M::Header)),
        ),
        (
            "duplicate alg in header",
            raw(r#"{"alg":"RS256","alg":"none"}"#, &payload),
            Err(R::Malformed(M::Header)),
        ),
        // algorithms
        (
            "alg none",
            rs256().header("alg", "none").with_signature_segment(""),
            Err(R::DisallowedAlgorithm),
        ),
        (
            "alg None",
            rs256().header("alg", "None").with_signature_segment(""),
            Err(R::DisallowedAlgorithm),
        ),
        (
            "alg NONE",
            rs256().header("alg", "NONE").with_signature_segment(""),
            Err(R::DisallowedAlgorithm),
        ),
        (
            "alg HS256",
            rs256()
                .header("alg", "HS256")
                .with_signature_segment("c2ln"),
            Err(R::DisallowedAlgorithm),
        ),
        (
            "alg rs256 (case)",
            rs256()
                .header("alg", "rs256")
                .with_signature_segment("c2ln"),
            Err(R::DisallowedAlgorithm),
        ),
        (
            "alg not in allowlist",
            rs256().header("alg", "RS384").sign(TestKey::rsa_a()),
            Err(R::DisallowedAlgorithm),
        ),
        (
            "PS256 against an RS256-only key",
            rs256().header("alg", "PS256").sign(TestKey::rsa_a()),
            Err(R::DisallowedAlgorithm),
        ),
        (
            "ES256 against an RSA key",
            rs256().header("alg", "ES256").sign(TestKey::p256()),
            Err(R::DisallowedAlgorithm),
        ),
        // header extensions and typing
        (
            "crit",
            rs256()
                .header("crit", json!(["exp"]))
                .sign(TestKey::rsa_a()),
            Err(R::Malformed(M::CriticalHeader)),
        ),
        (
            "b64 false",
            rs256().header("b64", false).sign(TestKey::rsa_a()),
            Err(R::Malformed(M::UnencodedPayload)),
        ),
        (
            "b64 true",
            rs256().header("b64", true).sign(TestKey::rsa_a()),
            Ok(()),
        ),
        (
            "nested JWT (cty)",
            rs256().header("cty", "JWT").sign(TestKey::rsa_a()),
            Err(R::Malformed(M::ContentType)),
        ),
        (
            "header typ at+jwt",
            rs256().header("typ", "at+jwt").sign(TestKey::rsa_a()),
            Ok(()),
        ),
        (
            "header typ absent",
            rs256().without_header("typ").sign(TestKey::rsa_a()),
            Ok(()),
        ),
        (
            "header typ dpop+jwt",
            rs256().header("typ", "dpop+jwt").sign(TestKey::rsa_a()),
            Err(R::WrongTokenType),
        ),
        (
            "jku is never fetched",
            rs256()
                .header("jku", "http://evil.example/jwks")
                .sign(TestKey::rsa_a()),
            Ok(()),
        ),
        // payload shape
        (
            "payload is an array",
            raw(header_json, "[1,2]"),
            Err(R::Malformed(M::Claims)),
        ),
        (
            "payload is a string",
            raw(header_json, "\"x\""),
            Err(R::Malformed(M::Claims)),
        ),
        (
            "payload is null",
            raw(header_json, "null"),
            Err(R::Malformed(M::Claims)),
        ),
        (
            "payload not JSON",
            raw(header_json, "{"),
            Err(R::Malformed(M::Claims)),
        ),
        (
            "duplicate claim",
            raw(header_json, &payload.replacen('{', r#"{"sub":"admin","#, 1)),
            Err(R::Malformed(M::Claims)),
        ),
        (
            "duplicate exp",
            raw(
                header_json,
                &payload.replacen('{', &format!(r#"{{"exp":{},"#, NOW + 10), 1),
            ),
            Err(R::Malformed(M::Claims)),
        ),
        (
            "exp as string",
            rs256()
                .claim("exp", (NOW + 100).to_string())
                .sign(TestKey::rsa_a()),
            Err(R::Malformed(M::Claims)),
        ),
        (
            "nbf as string",
            rs256().claim("nbf", "0").sign(TestKey::rsa_a()),
            Err(R::Malformed(M::Claims)),
        ),
        (
            "iat as bool",
            rs256().claim("iat", true).sign(TestKey::rsa_a()),
            Err(R::Malformed(M::Claims)),
        ),
        // time
        (
            "missing exp",
            rs256().without_claim("exp").sign(TestKey::rsa_a()),
            Err(R::MissingExpiration),
        ),
        (
            "expired beyond skew",
            rs256().claim("exp", NOW - 31).sign(TestKey::rsa_a()),
            Err(R::Expired),
        ),
        (
            "expired within skew",
            rs256().claim("exp", NOW - 29).sign(TestKey::rsa_a()),
            Ok(()),
        ),
        (
            "nbf beyond skew",
            rs256().claim("nbf", NOW + 31).sign(TestKey::rsa_a()),
            Err(R::NotYetValid),
        ),
        (
            "nbf within skew",
            rs256().claim("nbf", NOW + 29).sign(TestKey::rsa_a()),
            Ok(()),
        ),
        // issuer, audience, type
        (
            "wrong issuer",
            rs256()
                .claim("iss", "http://evil/realms/tokengate")
                .sign(TestKey::rsa_a()),
            Err(R::WrongIssuer),
        ),
        (
            "issuer with trailing slash",
            rs256()
                .claim("iss", format!("{ISSUER}/"))
                .sign(TestKey::rsa_a()),
            Err(R::WrongIssuer),
        ),
        (
            "missing issuer",
            rs256().without_claim("iss").sign(TestKey::rsa_a()),
            Err(R::WrongIssuer),
        ),
        (
            "issuer not a string",
            rs256().claim("iss", 7).sign(TestKey::rsa_a()),
            Err(R::Malformed(M::ClaimType)),
        ),
        (
            "wrong audience",
            rs256().claim("aud", "account").sign(TestKey::rsa_a()),
            Err(R::WrongAudience),
        ),
        (
            "audience in array",
            rs256()
                .claim("aud", json!(["account", AUDIENCE]))
                .sign(TestKey::rsa_a()),
            Ok(()),
        ),
        (
            "empty audience array",
            rs256().claim("aud", json!([])).sign(TestKey::rsa_a()),
            Err(R::WrongAudience),
        ),
        (
            "missing audience",
            rs256().without_claim("aud").sign(TestKey::rsa_a()),
            Err(R::WrongAudience),
        ),
        (
            "audience not strings",
            rs256()
                .claim("aud", json!([AUDIENCE, 1]))
                .sign(TestKey::rsa_a()),
            Err(R::Malformed(M::ClaimType)),
        ),
        (
            "ID token",
            rs256().claim("typ", "ID").sign(TestKey::rsa_a()),
            Err(R::WrongTokenType),
        ),
        (
            "refresh token",
            rs256().claim("typ", "Refresh").sign(TestKey::rsa_a()),
            Err(R::WrongTokenType),
        ),
        (
            "typ bearer (case)",
            rs256().claim("typ", "bearer").sign(TestKey::rsa_a()),
            Ok(()),
        ),
        (
            "no payload typ, header JWT",
            rs256().without_claim("typ").sign(TestKey::rsa_a()),
            Err(R::WrongTokenType),
        ),
        (
            "no payload typ, header at+jwt",
            rs256()
                .without_claim("typ")
                .header("typ", "at+jwt")
                .sign(TestKey::rsa_a()),
            Ok(()),
        ),
        // keys and signatures
        (
            "unknown kid",
            rs256().header("kid", "rotated").sign(TestKey::rsa_a()),
            Err(R::UnknownKey),
        ),
        (
            "tampered signature",
            tamper_signature(&valid),
            Err(R::BadSignature),
        ),
        (
            "signed by another key",
            rs256().sign(TestKey::rsa_b()),
            Err(R::BadSignature),
        ),
        (
            "truncated signature",
            {
                let (signed, signature) = valid.rsplit_once('.').unwrap();
                let bytes = Base64UrlUnpadded::decode_vec(signature).unwrap();
                format!("{signed}.{}", b64url(&bytes[..bytes.len() - 3]))
            },
            Err(R::BadSignature),
        ),
        (
            "empty signature",
            rs256().with_signature_segment(""),
            Err(R::BadSignature),
        ),
        (
            "payload swapped after signing",
            {
                let other = rs256().claim("sub", "admin").with_signature_segment("x");
                let other_payload = other.split('.').nth(1).unwrap().to_owned();
                let signature = valid.rsplit('.').next().unwrap();
                format!("{valid_header}.{other_payload}.{signature}")
            },
            Err(R::BadSignature),
        ),
        // claim forwarding
        (
            "control character in a forwarded claim",
            rs256()
                .claim("sub", "a\r\nx-admin: 1")
                .sign(TestKey::rsa_a()),
            Err(R::UnforwardableClaim),
        ),
        (
            "control character in an ignored claim",
            rs256().claim("name", "a\nb").sign(TestKey::rsa_a()),
            Ok(()),
        ),
    ];
    for (name, token, expected) in cases {
        let actual = check(&config, &token).map(|_| ());
        assert_eq!(actual, expected, "case: {name}");
    }
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

#[path = "validate_types_tests.rs"]
mod types;

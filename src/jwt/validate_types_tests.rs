//! Strict types: the registered header parameters and claims, each of each wrong JSON type.

use serde_json::json;

use super::*;

/// Registered header parameters and claims of the wrong JSON type are refused, never read as
/// absent or coerced: `"kid": null` is not "no kid". The same table under a configuration that
/// checks no audience and no token type: a claim's type is checked whatever is asked of it.
#[test]
fn registered_parameters_and_claims_have_their_types() {
    let strict = config_with(json!({}));
    let lenient = config_with(json!({"audiences": [], "token_types": []}));
    let payload = payload_json(&rs256());
    let header_type = Err(R::Malformed(M::Header));
    let claim_type = Err(R::Malformed(M::ClaimType));
    let time_type = Err(R::Malformed(M::Claims));
    // Not a string (nor, for `aud`, an array of strings).
    let wrong = [json!(null), json!(7), json!(true), json!({}), json!([7])];

    let mut cases: Vec<(String, String, Result<(), Rejection>)> = Vec::new();
    for value in &wrong {
        // `alg` is read before anything else: a raw header, signed.
        cases.push((
            format!("header alg {value}"),
            raw(&format!(r#"{{"alg":{value},"kid":"rsa"}}"#), &payload),
            header_type.clone(),
        ));
        for name in ["kid", "typ", "cty", "jku", "x5u", "x5t", "x5t#S256"] {
            cases.push((
                format!("header {name} {value}"),
                rs256().header(name, value.clone()).sign(TestKey::rsa_a()),
                header_type.clone(),
            ));
        }
        for name in ["iss", "sub", "jti"] {
            cases.push((
                format!("claim {name} {value}"),
                rs256().claim(name, value.clone()).sign(TestKey::rsa_a()),
                claim_type.clone(),
            ));
        }
        cases.push((
            format!("claim aud {value}"),
            rs256().claim("aud", value.clone()).sign(TestKey::rsa_a()),
            claim_type.clone(),
        ));
    }
    for value in [json!(null), json!("7"), json!(true), json!({}), json!([7])] {
        for name in ["exp", "nbf", "iat"] {
            cases.push((
                format!("claim {name} {value}"),
                rs256().claim(name, value.clone()).sign(TestKey::rsa_a()),
                time_type.clone(),
            ));
        }
    }
    let more: Vec<(&str, String, Result<(), Rejection>)> = vec![
        (
            "header kid null, a set with one key for the algorithm",
            rs256().header("kid", Value::Null).sign(TestKey::rsa_a()),
            header_type.clone(),
        ),
        (
            "header kid escaped and null",
            raw(r#"{"alg":"RS256","k\u0069d":null}"#, &payload),
            header_type.clone(),
        ),
        (
            "header jwk not an object",
            rs256().header("jwk", "key").sign(TestKey::rsa_a()),
            header_type.clone(),
        ),
        (
            "header x5c not strings",
            rs256().header("x5c", json!([1])).sign(TestKey::rsa_a()),
            header_type.clone(),
        ),
        (
            "header b64 null",
            rs256().header("b64", Value::Null).sign(TestKey::rsa_a()),
            header_type.clone(),
        ),
        (
            "header b64 a string",
            rs256().header("b64", "true").sign(TestKey::rsa_a()),
            header_type.clone(),
        ),
        (
            "header crit null is still crit",
            rs256().header("crit", Value::Null).sign(TestKey::rsa_a()),
            Err(R::Malformed(M::CriticalHeader)),
        ),
        (
            "duplicate kid",
            raw(r#"{"alg":"RS256","kid":"rsa","kid":"rsa"}"#, &payload),
            header_type.clone(),
        ),
        (
            "duplicate unregistered header parameter",
            raw(r#"{"alg":"RS256","kid":"rsa","x":1,"x":1}"#, &payload),
            header_type.clone(),
        ),
        (
            "header of registered types",
            rs256()
                .header("cty", "json")
                .header("jku", "https://idp.example/certs")
                .header("x5c", json!(["MIIB"]))
                .header("jwk", json!({"kty": "RSA"}))
                .sign(TestKey::rsa_a()),
            Ok(()),
        ),
        (
            "aud an array with null",
            rs256()
                .claim("aud", json!([AUDIENCE, null]))
                .sign(TestKey::rsa_a()),
            claim_type.clone(),
        ),
        (
            "aud an array of arrays",
            rs256()
                .claim("aud", json!([[AUDIENCE]]))
                .sign(TestKey::rsa_a()),
            claim_type.clone(),
        ),
        (
            "aud an array of strings",
            rs256()
                .claim("aud", json!([AUDIENCE, "account"]))
                .sign(TestKey::rsa_a()),
            Ok(()),
        ),
        (
            "exp a string of digits",
            rs256()
                .claim("exp", (NOW + 60).to_string())
                .sign(TestKey::rsa_a()),
            time_type.clone(),
        ),
        (
            "exp a fraction",
            rs256()
                .claim("exp", NOW as f64 + 60.5)
                .sign(TestKey::rsa_a()),
            Ok(()),
        ),
    ];
    cases.extend(more.into_iter().map(|(n, t, e)| (n.to_owned(), t, e)));
    for (name, token, expected) in &cases {
        for (which, config) in [("strict", &strict), ("lenient", &lenient)] {
            let actual = check(config, token).map(|_| ());
            assert_eq!(&actual, expected, "{which}: {name}");
        }
    }
    assert!(cases.len() > 80, "{} cases", cases.len());
}

//! [`RawClaims`] against what it replaced: jwt-compact's `Claims` with the claims as a
//! `serde_json::Map` (without duplicate names), kept here as the reference.

use jwt_compact::Claims;

use super::*;

/// The claims object; duplicate names are refused (RFC 7515 §5.2 lets parsers reject them,
/// and "last one wins" would let two parties read different claims from one token).
#[derive(Debug, Default, Clone)]
struct ClaimSet(Map<String, Value>);

impl<'de> Deserialize<'de> for ClaimSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimSetVisitor;
        impl<'de> Visitor<'de> for ClaimSetVisitor {
            type Value = ClaimSet;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<ClaimSet, A::Error> {
                let mut map = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&name) {
                        return Err(de::Error::custom("duplicate claim"));
                    }
                    map.insert(name, value);
                }
                Ok(ClaimSet(map))
            }
        }
        deserializer.deserialize_map(ClaimSetVisitor)
    }
}

/// What a reading yields, comparable: every claim, and the time claims.
type Outcome = Option<(Map<String, Value>, [Option<i64>; 3])>;

fn reference(payload: &str) -> Outcome {
    let claims: Claims<ClaimSet> = serde_json::from_str(payload).ok()?;
    let seconds = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp());
    Some((
        claims.custom.0,
        [
            seconds(claims.expiration),
            seconds(claims.not_before),
            seconds(claims.issued_at),
        ],
    ))
}

fn read(payload: &[u8]) -> Outcome {
    let claims = RawClaims::read(payload, &|_| true).ok()?;
    // Skipped claims are refused for what built ones would be.
    assert!(RawClaims::read(payload, &|_| false).is_ok());
    Some((claims.claims, [claims.exp, claims.nbf, claims.iat]))
}

fn reference_bytes(payload: &[u8]) -> Outcome {
    reference(std::str::from_utf8(payload).ok()?)
}

#[test]
fn same_claims_as_jwt_compact() {
    let values = [
        "null",
        "true",
        "0",
        "-1",
        "1.5",
        "1.691203462e+9",
        "1e20",
        "-1e20",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "18446744073709551616",
        "8210298326400",
        "8210298412800",
        "-8334632851200",
        "\"1\"",
        "\"\\u00e9\"",
        "[]",
        "[1,\"a\"]",
        "{}",
        "{\"roles\":[\"a\"]}",
        "{\"a\":1,\"a\":2}",
    ];
    let names = [
        "exp",
        "nbf",
        "iat",
        "iss",
        "sub",
        "e\\u0078p",
        "\\u0069ss",
        "x",
    ];
    let mut payloads = Vec::new();
    for name in names {
        for value in values {
            payloads.push(format!(r#"{{"{name}":{value}}}"#));
            payloads.push(format!(r#"{{"iss":"i","{name}":{value},"aud":["a"]}}"#));
            payloads.push(format!(r#"{{"{name}":{value},"{name}":{value}}}"#));
            payloads.push(format!(r#"{{"{name}":{value},"exp":1,"iss":"x"}}"#));
        }
    }
    payloads.extend(
        [
            "",
            "{",
            "[]",
            "null",
            "1",
            "{} ",
            " {}",
            "{}x",
            "{}{}",
            r#"{"a":1,}"#,
            r#"{"iss":"a","\u0069ss":"b"}"#,
            r#"{"exp":1,"e\u0078p":2}"#,
            r#"{"a":{"b":{"c":[1,2,{"d":null}]}}}"#,
            "{\"a\":\"\\ud800\"}",
            "{\"a\":{\"\\ud800\":1}}",
            "{\"a\":[\"\\udc00x\"]}",
            "{\"a\":1e400}",
            "{\"a\":{\"b\":1,\"b\":2}}",
            "{\"a\":\"\\ud83d\\ude00\"}",
            "{\"a\":\"\\x\"}",
            "{\"\u{e9}\":\"\u{e9}\"}",
        ]
        .map(str::to_owned),
    );
    payloads.push(format!("{}{}", "[".repeat(200), "]".repeat(200)));
    payloads.push(format!(
        r#"{{"a":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    ));
    for payload in &payloads {
        assert_eq!(read(payload.as_bytes()), reference(payload), "{payload}");
        if reference(payload).is_none() {
            assert!(
                RawClaims::read(payload.as_bytes(), &|_| false).is_err(),
                "{payload}"
            );
        }
    }
    for bytes in [
        &b"{\"a\":\"\xff\"}"[..],
        b"{\"a\":[\"\xc3\"]}",
        b"{\"\xff\":1}",
    ] {
        assert_eq!(read(bytes), reference_bytes(bytes));
        assert!(RawClaims::read(bytes, &|_| false).is_err(), "{bytes:?}");
    }
    assert!(payloads.iter().filter(|p| reference(p).is_some()).count() > 100);
}

#[test]
fn only_what_is_read_is_built() {
    let payload =
        br#"{"iss":"i","exp":5,"realm_access":{"roles":["r"]},"name":"n","s\u0075b":"s"}"#;
    let claims = RawClaims::read(payload, &|name| ["sub", "realm_access"].contains(&name)).unwrap();
    assert_eq!(
        Value::Object(claims.claims),
        serde_json::json!({"sub": "s", "realm_access": {"roles": ["r"]}})
    );
    assert_eq!(claims.exp, Some(5));
    let duplicate = br#"{"iss":"i","name":1,"n\u0061me":2}"#;
    assert!(
        RawClaims::read(duplicate, &|_| false).is_err(),
        "unbuilt names still count"
    );
}

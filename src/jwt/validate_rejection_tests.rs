//! The rejection table: one token per rule (structure and encoding, algorithms, header
//! extensions and typing, payload shape, time, issuer, audience and type, keys and signatures,
//! claim forwarding), each with the verdict it must get.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::json;

use super::*;
use crate::testkit::b64url;

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

//! The fixed cases: each registered claim and header parameter at its edges and with values
//! of the wrong type, the time claims around the clock skew, signature and base64 edge cases.
//! Every case is minted when it is sent, from the clock of that moment, so a time edge is the
//! same edge for both listeners.

use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;

use super::mint::{self, Draft, b64, sign_parts};
use super::stack::{AUDIENCE, CLOCK_SKEW, published_keys};

/// Makes the `Authorization` value from the issuer and the current Unix time.
pub type Make = Box<dyn Fn(&str, i64) -> String + Send + Sync>;

/// A time claim's value from the current time (`None`: absent).
type Time = fn(i64) -> Option<Value>;
/// A claim's value from the issuer.
type FromIssuer = fn(&str) -> Option<Value>;
/// A payload's bytes from the issuer and the current time.
/// A claim's fixed value.
type Fixed = fn() -> Option<Value>;
type Payload = fn(&str, i64) -> Vec<u8>;

pub struct Template {
    pub category: &'static str,
    pub label: String,
    pub make: Make,
}

pub(super) fn case(
    category: &'static str,
    label: impl Into<String>,
    make: impl Fn(&str, i64) -> String + Send + Sync + 'static,
) -> Template {
    Template {
        category,
        label: label.into(),
        make: Box::new(make),
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub(super) fn draft(iss: &str, now: i64, label: &str) -> Draft {
    Draft::new(Algorithm::Rs256, iss, now, label)
}

/// A signed token whose claim `name` is `value(now)` (`None`: absent).
fn claim_case(
    category: &'static str,
    label: &str,
    name: &'static str,
    value: impl Fn(&str, i64) -> Option<Value> + Send + Sync + 'static,
) -> Template {
    let jti = label.to_owned();
    case(category, label, move |iss, now| {
        bearer(&draft(iss, now, &jti).claim(name, value(iss, now)).sign())
    })
}

/// A token signed as its header says, with header parameter `name` set to `value`.
fn header_case(label: &str, alg: Algorithm, name: &'static str, value: Option<Value>) -> Template {
    let jti = label.to_owned();
    case("header", label, move |iss, now| {
        bearer(
            &Draft::new(alg, iss, now, &jti)
                .header(name, value.clone())
                .sign(),
        )
    })
}

pub fn fixed() -> Vec<Template> {
    let mut cases = Vec::new();
    valid(&mut cases);
    time(&mut cases);
    audience_and_issuer(&mut cases);
    claim_types(&mut cases);
    headers(&mut cases);
    signatures(&mut cases);
    super::encodings::add(&mut cases);
    cases
}

/// The algorithms and keys both should admit.
pub const VALID: [(Algorithm, &str); 9] = [
    (Algorithm::Rs256, "k1"),
    (Algorithm::Rs256, "k3"),
    (Algorithm::Rs384, "k3"),
    (Algorithm::Rs512, "k3"),
    (Algorithm::Ps256, "k3"),
    (Algorithm::Ps384, "k3"),
    (Algorithm::Ps512, "k3"),
    (Algorithm::Es256, "ec1"),
    (Algorithm::EdDsa, "ed1"),
];

fn valid(cases: &mut Vec<Template>) {
    for (alg, kid) in VALID {
        let label = format!("{} {kid}", alg.jws_name());
        let jti = label.clone();
        cases.push(case("valid", label, move |iss, now| {
            bearer(
                &Draft::new(alg, iss, now, &jti)
                    .header("kid", Some(kid.into()))
                    .sign_as(alg, kid),
            )
        }));
    }
}

fn time(cases: &mut Vec<Template>) {
    // Three seconds either side of each edge: the exact second is a race between the two
    // listeners' clocks, never a difference of policy.
    const S: i64 = CLOCK_SKEW;
    let exp: [(&str, Time); 17] = [
        ("exp an hour ago", |n| Some(json!(n - 3600))),
        ("exp beyond the skew", |n| Some(json!(n - S - 3))),
        ("exp within the skew", |n| Some(json!(n - S + 3))),
        ("exp in 3 s", |n| Some(json!(n + 3))),
        ("exp absent", |_| None),
        ("exp 0", |_| Some(json!(0))),
        ("exp -1", |_| Some(json!(-1))),
        ("exp fractional future", |n| Some(json!(n as f64 + 100.5))),
        ("exp fractional past", |n| Some(json!(n as f64 - 100.5))),
        ("exp as a string", |n| Some(json!((n + 600).to_string()))),
        ("exp null", |_| Some(Value::Null)),
        ("exp true", |_| Some(json!(true))),
        ("exp 1e300", |_| Some(json!(1e300))),
        ("exp i64 max", |_| Some(json!(i64::MAX))),
        ("exp u64 max", |_| Some(json!(u64::MAX))),
        ("exp in an array", |n| Some(json!([n + 600]))),
        ("exp exponent notation", |n| {
            Some(json!(((n + 600) as f64) * 1.0e0))
        }),
    ];
    for (label, value) in exp {
        cases.push(claim_case("time", label, "exp", move |_, n| value(n)));
    }
    let nbf: [(&str, Time); 7] = [
        ("nbf beyond the skew", |n| Some(json!(n + S + 3))),
        ("nbf within the skew", |n| Some(json!(n + S - 3))),
        ("nbf a minute ago", |n| Some(json!(n - 60))),
        ("nbf as a string", |n| Some(json!((n - 60).to_string()))),
        ("nbf null", |_| Some(Value::Null)),
        ("nbf far future", |n| Some(json!(n + 86_400))),
        ("nbf fractional", |n| Some(json!(n as f64 - 0.5))),
    ];
    for (label, value) in nbf {
        cases.push(claim_case("time", label, "nbf", move |_, n| value(n)));
    }
    let iat: [(&str, Time); 6] = [
        ("iat in an hour", |n| Some(json!(n + 3600))),
        ("iat beyond the skew", |n| Some(json!(n + S + 3))),
        ("iat absent", |_| None),
        ("iat as a string", |n| Some(json!(n.to_string()))),
        ("iat null", |_| Some(Value::Null)),
        ("iat negative", |_| Some(json!(-5))),
    ];
    for (label, value) in iat {
        cases.push(claim_case("time", label, "iat", move |_, n| value(n)));
    }
    // exp before nbf, both within their skews of now.
    cases.push(case("time", "exp before nbf", |iss, n| {
        bearer(
            &draft(iss, n, "exp before nbf")
                .claim("nbf", Some(json!(n + 2)))
                .claim("exp", Some(json!(n + 1)))
                .sign(),
        )
    }));
}

fn audience_and_issuer(cases: &mut Vec<Template>) {
    let aud: [(&str, Fixed); 14] = [
        ("aud in an array", || Some(json!([AUDIENCE]))),
        ("aud second in an array", || {
            Some(json!(["other", AUDIENCE]))
        }),
        ("aud array without ours", || Some(json!(["other", "more"]))),
        ("aud absent", || None),
        ("aud wrong", || Some(json!("other-api"))),
        ("aud empty array", || Some(json!([]))),
        ("aud empty string", || Some(json!(""))),
        ("aud number", || Some(json!(42))),
        ("aud null", || Some(Value::Null)),
        ("aud nested array", || Some(json!([[AUDIENCE]]))),
        ("aud ours and a number", || Some(json!([AUDIENCE, 42]))),
        ("aud upper case", || Some(json!(AUDIENCE.to_uppercase()))),
        ("aud trailing space", || Some(json!(format!("{AUDIENCE} ")))),
        ("aud object", || Some(json!({ "aud": AUDIENCE }))),
    ];
    for (label, value) in aud {
        cases.push(claim_case("aud", label, "aud", move |_, _| value()));
    }
    let iss: [(&str, FromIssuer); 10] = [
        ("iss absent", |_| None),
        ("iss other host", |_| {
            Some(json!("http://idp.example/realms/tokengate"))
        }),
        ("iss trailing slash", |i| Some(json!(format!("{i}/")))),
        ("iss upper case", |i| Some(json!(i.to_uppercase()))),
        ("iss other realm", |i| {
            Some(json!(i.replace("tokengate", "other")))
        }),
        ("iss number", |_| Some(json!(42))),
        ("iss null", |_| Some(Value::Null)),
        ("iss in an array", |i| Some(json!([i]))),
        ("iss trailing space", |i| Some(json!(format!("{i} ")))),
        ("iss empty", |_| Some(json!(""))),
    ];
    for (label, value) in iss {
        cases.push(claim_case("iss", label, "iss", move |i, _| value(i)));
    }
}

fn claim_types(cases: &mut Vec<Template>) {
    let typed: [(&str, &'static str, Value); 9] = [
        ("sub number", "sub", json!(42)),
        ("sub null", "sub", Value::Null),
        ("sub object", "sub", json!({"id": 1})),
        ("jti number", "jti", json!(7)),
        ("jti null", "jti", Value::Null),
        ("azp number", "azp", json!(1)),
        ("scope array", "scope", json!(["openid"])),
        ("scope null", "scope", Value::Null),
        (
            "unknown claim object",
            "x-extra",
            json!({"deep": [1, {"a": null}]}),
        ),
    ];
    for (label, name, value) in typed {
        cases.push(claim_case("claim types", label, name, move |_, _| {
            Some(value.clone())
        }));
    }
    // Validly signed tokens whose header or payload is not one plain JSON object: the
    // payloads under the usual header, then headers repeating a parameter (the first value a
    // weak one) over a valid payload.
    const HEADER: &[u8] = br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#;
    let raw: [(&str, &[u8], Payload); 13] = [
        ("payload an array", HEADER, |_, _| b"[1,2]".to_vec()),
        ("payload null", HEADER, |_, _| b"null".to_vec()),
        ("payload not JSON", HEADER, |_, _| b"not json".to_vec()),
        ("payload empty", HEADER, |_, _| Vec::new()),
        ("payload with a BOM", HEADER, |i, n| {
            [&b"\xef\xbb\xbf"[..], &body(i, n)].concat()
        }),
        ("payload with trailing bytes", HEADER, |i, n| {
            [&body(i, n)[..], b"x"].concat()
        }),
        ("payload with trailing whitespace", HEADER, |i, n| {
            [&body(i, n)[..], b" \n"].concat()
        }),
        ("duplicate exp, the later one expired", HEADER, |i, n| {
            dup(i, n, &format!("\"exp\":{},\"exp\":{}", n + 600, n - 3600))
        }),
        ("duplicate exp, the earlier one expired", HEADER, |i, n| {
            dup(i, n, &format!("\"exp\":{},\"exp\":{}", n - 3600, n + 600))
        }),
        ("duplicate iss, the later one wrong", HEADER, |i, n| {
            dup(i, n, &format!("\"iss\":\"{i}\",\"iss\":\"http://evil\""))
        }),
        ("string not UTF-8", HEADER, |i, n| {
            let text = body(i, n);
            let at = text.windows(6).position(|w| w == b"openid").unwrap_or(0);
            [&text[..at], b"\xff\xfe", &text[at..]].concat()
        }),
        (
            "header duplicate alg",
            br#"{"alg":"none","alg":"RS256","kid":"k1"}"#,
            body,
        ),
        (
            "header duplicate kid",
            br#"{"alg":"RS256","kid":"weak","kid":"k1"}"#,
            body,
        ),
    ];
    for (label, header, payload) in raw {
        cases.push(case("json", label, move |iss, now| {
            bearer(&sign_parts(
                header,
                &payload(iss, now),
                mint::key_for("k1"),
                Algorithm::Rs256,
            ))
        }));
    }
}

/// A valid payload's JSON text.
fn body(iss: &str, now: i64) -> Vec<u8> {
    draft(iss, now, "raw").claims_bytes()
}

/// A valid payload with `extra` inserted after its opening brace, keys not deduplicated.
fn dup(iss: &str, now: i64, extra: &str) -> Vec<u8> {
    let without = draft(iss, now, "dup").claim("exp", None).claim("iss", None);
    let text = String::from_utf8_lossy(&without.claims_bytes()).into_owned();
    let rest = text.strip_prefix('{').unwrap_or(&text);
    let iss_kept = if extra.contains("\"iss\"") {
        String::new()
    } else {
        format!("\"iss\":\"{iss}\",")
    };
    let exp_kept = if extra.contains("\"exp\"") {
        String::new()
    } else {
        format!("\"exp\":{},", now + 600)
    };
    format!("{{{iss_kept}{exp_kept}{extra},{rest}").into_bytes()
}

fn headers(cases: &mut Vec<Template>) {
    use Algorithm::{EdDsa, Es256, Rs256};
    let params: [(&str, Algorithm, &'static str, Option<Value>); 27] = [
        ("kid absent RS256", Rs256, "kid", None),
        ("kid absent ES256", Es256, "kid", None),
        ("kid absent EdDSA", EdDsa, "kid", None),
        ("kid unknown", Rs256, "kid", Some(json!("nobody"))),
        ("kid number", Rs256, "kid", Some(json!(1))),
        ("kid null", Rs256, "kid", Some(Value::Null)),
        ("kid empty", Rs256, "kid", Some(json!(""))),
        ("typ at+jwt", Rs256, "typ", Some(json!("at+jwt"))),
        ("typ absent", Rs256, "typ", None),
        ("typ number", Rs256, "typ", Some(json!(1))),
        ("typ null", Rs256, "typ", Some(Value::Null)),
        ("typ JWE", Rs256, "typ", Some(json!("JWE"))),
        ("cty JWT", Rs256, "cty", Some(json!("JWT"))),
        ("cty number", Rs256, "cty", Some(json!(1))),
        ("crit exp", Rs256, "crit", Some(json!(["exp"]))),
        ("crit empty", Rs256, "crit", Some(json!([]))),
        ("crit unknown", Rs256, "crit", Some(json!(["x-unknown"]))),
        ("crit a string", Rs256, "crit", Some(json!("x-unknown"))),
        ("b64 false", Rs256, "b64", Some(json!(false))),
        ("unknown parameter", Rs256, "x-custom", Some(json!("value"))),
        (
            "jku elsewhere",
            Rs256,
            "jku",
            Some(json!("http://evil.example/jwks")),
        ),
        (
            "x5u elsewhere",
            Rs256,
            "x5u",
            Some(json!("http://evil.example/cert")),
        ),
        ("x5c garbage", Rs256, "x5c", Some(json!(["AAAA"]))),
        ("zip DEF", Rs256, "zip", Some(json!("DEF"))),
        ("enc A128GCM", Rs256, "enc", Some(json!("A128GCM"))),
        ("alg lower case", Rs256, "alg", Some(json!("rs256"))),
        (
            "alg ES384 (no such key)",
            Es256,
            "alg",
            Some(json!("ES384")),
        ),
    ];
    for (label, alg, name, value) in params {
        cases.push(header_case(label, alg, name, value));
    }
    for (label, alg) in [
        ("alg absent", None),
        ("alg number", Some(json!(256))),
        ("alg null", Some(Value::Null)),
    ] {
        let jti = label.to_owned();
        cases.push(case("header", label, move |iss, now| {
            bearer(
                &draft(iss, now, &jti)
                    .header("alg", alg.clone())
                    .sign_as(Rs256, "k1"),
            )
        }));
    }
    for alg in ["none", "None", "NONE"] {
        let label = format!("alg {alg}, no signature");
        let jti = label.clone();
        let none = alg.to_owned();
        cases.push(case("alg none", label, move |iss, now| {
            let d = draft(iss, now, &jti)
                .header("alg", Some(json!(none)))
                .header("kid", None);
            bearer(&format!(
                "{}.{}.",
                b64(d.header_bytes()),
                b64(d.claims_bytes())
            ))
        }));
    }
    cases.push(case(
        "alg none",
        "alg none, with a valid RS256 signature",
        |iss, now| {
            let d = draft(iss, now, "none signed").header("alg", Some(json!("none")));
            bearer(&d.sign_as(Rs256, "k1"))
        },
    ));
    // The key-confusion attack: the published RSA key as an HMAC secret.
    for (label, secret) in [
        ("HS256 keyed with the JWKS", published_keys().into_bytes()),
        (
            "HS256 keyed with k1's modulus",
            mint::key_for("k1").public_jwk("k1", None)["n"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
        ),
    ] {
        cases.push(case("wrong alg for the key", label, move |iss, now| {
            let d = draft(iss, now, label).header("alg", Some(json!("HS256")));
            bearer(&mint::hs256(&d.header_bytes(), &d.claims_bytes(), &secret))
        }));
    }
    let mismatched: [(&str, Algorithm, &str, Algorithm, &str); 6] = [
        (
            "RS256 header, kid ec1, signed by the RSA key",
            Rs256,
            "ec1",
            Rs256,
            "k1",
        ),
        (
            "ES256 header, kid k1, signed by the EC key",
            Es256,
            "k1",
            Es256,
            "ec1",
        ),
        (
            "PS256 with k1 (published for RS256)",
            Algorithm::Ps256,
            "k1",
            Algorithm::Ps256,
            "k1",
        ),
        (
            "RS384 with k1 (published for RS256)",
            Algorithm::Rs384,
            "k1",
            Algorithm::Rs384,
            "k1",
        ),
        ("EdDSA header, kid ec1", EdDsa, "ec1", EdDsa, "ed1"),
        (
            "RS256 with the encryption key",
            Rs256,
            "enc-key",
            Rs256,
            "enc-key",
        ),
    ];
    for (label, header_alg, kid, sign_alg, sign_kid) in mismatched {
        cases.push(case("wrong alg for the key", label, move |iss, now| {
            let d = Draft::new(header_alg, iss, now, label).header("kid", Some(kid.into()));
            bearer(&d.sign_as(sign_alg, sign_kid))
        }));
    }
    cases.push(case(
        "wrong alg for the key",
        "RS256 with the 1024-bit key",
        |iss, now| {
            let d = draft(iss, now, "weak").header("kid", Some("weak".into()));
            bearer(&d.sign_as(Rs256, "weak"))
        },
    ));
    cases.push(case(
        "header",
        "embedded jwk of the signer's own key",
        |iss, now| {
            let jwk = mint::key_for("other").public_jwk("mine", Some("RS256"));
            let d = draft(iss, now, "embedded")
                .header("jwk", Some(jwk))
                .header("kid", None);
            bearer(&d.sign_as(Rs256, "other"))
        },
    ));
}

fn signatures(cases: &mut Vec<Template>) {
    use Algorithm::{EdDsa, Es256, Rs256};
    type Edit = fn(&str) -> String;
    let edits: [(&str, Algorithm, Edit); 11] = [
        ("ES256 high S", Es256, mint::es256_high_s),
        ("ES256 in DER", Es256, mint::es256_der),
        ("ES256 r and s swapped", Es256, mint::es256_swapped),
        ("EdDSA S + L", EdDsa, mint::ed25519_s_plus_l),
        ("RS256 leading zero byte", Rs256, mint::leading_zero),
        ("RS256 one byte short", Rs256, mint::truncated_signature),
        ("ES256 one byte short", Es256, mint::truncated_signature),
        ("EdDSA one byte short", EdDsa, mint::truncated_signature),
        ("RS256 signature removed", Rs256, |t| {
            format!("{}.", t.rsplit_once('.').map_or(t, |p| p.0))
        }),
        ("ES256 signature zero", Es256, |t| {
            format!(
                "{}.{}",
                t.rsplit_once('.').map_or(t, |p| p.0),
                b64([0u8; 64])
            )
        }),
        ("RS256 signed by another key", Rs256, |t| t.to_owned()),
    ];
    for (label, alg, edit) in edits {
        cases.push(case("signature", label, move |iss, now| {
            let d = Draft::new(alg, iss, now, label);
            let token = if label.contains("another key") {
                d.sign_as(alg, "other")
            } else {
                d.sign()
            };
            bearer(&edit(&token))
        }));
    }
}

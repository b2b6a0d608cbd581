//! [`Parsed::new`] against what it replaced: jwt-compact's `UntrustedToken` followed by the
//! strict reading of the header (kept here as the reference), on a corpus of headers and
//! segments. Both must accept the same tokens with the same `alg`, `kid` and `typ`, and refuse
//! the others with the same [`MalformedToken`].

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::{ParseError, UntrustedToken};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::*;

/// What a parse yields, comparable.
type Outcome = Result<(String, Option<String>, Option<String>), Rejection>;

/// Registered header parameters (RFC 7515 §4.1, RFC 7797 §3) and the JSON type each must
/// have when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderParameter {
    String,
    Object,
    StringArray,
    Boolean,
    /// `crit`: whatever it holds, it names extensions the gateway does not understand.
    Critical,
}

/// The registered parameters, in the order of their bit in the set of names seen.
const REGISTERED_HEADER: [(&str, HeaderParameter); 12] = [
    ("alg", HeaderParameter::String),
    ("kid", HeaderParameter::String),
    ("typ", HeaderParameter::String),
    ("cty", HeaderParameter::String),
    ("jku", HeaderParameter::String),
    ("x5u", HeaderParameter::String),
    ("x5t", HeaderParameter::String),
    ("x5t#S256", HeaderParameter::String),
    ("jwk", HeaderParameter::Object),
    ("x5c", HeaderParameter::StringArray),
    ("b64", HeaderParameter::Boolean),
    ("crit", HeaderParameter::Critical),
];

/// What the strict reading of a header found that the caller must act on.
#[derive(Debug, Default)]
struct HeaderFacts {
    critical: bool,
    b64: Option<bool>,
}

/// The JOSE header read strictly: a JSON object without duplicate names whose registered
/// parameters have their registered types. jwt-compact reads `"kid": null` (and `typ`, `cty`,
/// `crit`, `b64` as null) as absent and keeps the last of two equal unknown names; a value
/// of the wrong type must be refused, not mistaken for no value (a null `kid` would select
/// the single key of a set without one, a null `typ` pass as an access token).
struct StrictHeader(HeaderFacts);

impl<'de> Deserialize<'de> for StrictHeader {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = StrictHeader;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictHeader, A::Error> {
                let mut facts = HeaderFacts::default();
                let mut registered_seen = 0u16;
                let mut others: Vec<String> = Vec::new();
                while let Some(name) = access.next_key::<String>()? {
                    let Some(index) = REGISTERED_HEADER.iter().position(|(n, _)| *n == name) else {
                        if others.contains(&name) {
                            return Err(de::Error::custom("duplicate header parameter"));
                        }
                        others.push(name);
                        access.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    if registered_seen & (1 << index) != 0 {
                        return Err(de::Error::custom("duplicate header parameter"));
                    }
                    registered_seen |= 1 << index;
                    match REGISTERED_HEADER[index].1 {
                        HeaderParameter::String => {
                            access.next_value::<JsonString>()?;
                        }
                        HeaderParameter::Object => {
                            access.next_value::<Map<String, Value>>()?;
                        }
                        HeaderParameter::StringArray => {
                            access.next_value::<Vec<JsonString>>()?;
                        }
                        HeaderParameter::Boolean => facts.b64 = Some(access.next_value::<bool>()?),
                        HeaderParameter::Critical => {
                            access.next_value::<IgnoredAny>()?;
                            facts.critical = true;
                        }
                    }
                }
                Ok(StrictHeader(facts))
            }
        }
        deserializer.deserialize_map(HeaderVisitor)
    }
}

/// A JSON string, and nothing else (not null): read and dropped.
struct JsonString;

impl<'de> Deserialize<'de> for JsonString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringVisitor;
        impl Visitor<'_> for StringVisitor {
            type Value = JsonString;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<JsonString, E> {
                Ok(JsonString)
            }
        }
        deserializer.deserialize_str(StringVisitor)
    }
}

/// Reads the header segment (known to be canonical base64url: jwt-compact decoded it) strictly.
fn strict_header(segment: &str) -> Result<HeaderFacts, Rejection> {
    let json = Base64UrlUnpadded::decode_vec(segment)
        .map_err(|_| Rejection::Malformed(MalformedToken::Base64))?;
    serde_json::from_slice::<StrictHeader>(&json)
        .map(|header| header.0)
        .map_err(|_| Rejection::Malformed(MalformedToken::Header))
}

/// The previous structural checks, verbatim but for the names.
fn reference(token: &str) -> Outcome {
    match token.bytes().filter(|b| *b == b'.').count() {
        2 => {}
        4 => return Err(Rejection::Malformed(MalformedToken::Encrypted)),
        _ => return Err(Rejection::Malformed(MalformedToken::Structure)),
    }
    let untrusted = UntrustedToken::<jwt_compact::Empty>::try_from(token).map_err(|err| {
        Rejection::Malformed(match err {
            ParseError::InvalidTokenStructure => MalformedToken::Structure,
            ParseError::InvalidBase64Encoding => MalformedToken::Base64,
            ParseError::UnsupportedContentType(_) => MalformedToken::ContentType,
            _ => MalformedToken::Header,
        })
    })?;
    let header = strict_header(token.split('.').next().unwrap_or_default())?;
    if header.critical {
        return Err(Rejection::Malformed(MalformedToken::CriticalHeader));
    }
    if header.b64 == Some(false) {
        return Err(Rejection::Malformed(MalformedToken::UnencodedPayload));
    }
    Ok((
        untrusted.algorithm().to_owned(),
        untrusted.header().key_id.clone(),
        untrusted.header().token_type.clone(),
    ))
}

fn parse(token: &str) -> Outcome {
    Parsed::new(token, 1 << 20).map(|parsed| {
        let Header { alg, kid, typ } = parsed.header;
        (alg, kid, typ)
    })
}

fn b64(text: &str) -> String {
    Base64UrlUnpadded::encode_string(text.as_bytes())
}

/// Headers: each registered parameter with values of every JSON type, duplicates, escapes,
/// thumbprints of every length, and the combinations whose classification depends on order.
fn headers() -> Vec<String> {
    let values = [
        "null",
        "true",
        "false",
        "0",
        "1.5",
        "\"x\"",
        "\"json\"",
        "\"JSON\"",
        "\"txt\"",
        "[]",
        "[\"a\"]",
        "[1]",
        "{}",
        "{\"kty\":\"RSA\"}",
        "\"k\\u0031\"",
    ];
    let names = [
        "alg",
        "kid",
        "typ",
        "cty",
        "jku",
        "x5u",
        "x5t",
        "x5t#S256",
        "jwk",
        "x5c",
        "b64",
        "crit",
        "other",
        "k\\u0069d",
        "a\\u006cg",
    ];
    let mut headers = Vec::new();
    for name in names {
        for value in values {
            headers.push(format!(r#"{{"alg":"RS256","{name}":{value}}}"#));
            headers.push(format!(r#"{{"{name}":{value}}}"#));
            headers.push(format!(r#"{{"alg":"RS256","{name}":{value},"cty":"txt"}}"#));
            headers.push(format!(
                r#"{{"alg":"RS256","{name}":{value},"crit":["x"]}}"#
            ));
            headers.push(format!(
                r#"{{"alg":"RS256","{name}":{value},"{name}":{value}}}"#
            ));
            headers.push(format!(
                r#"{{"alg":"RS256","cty":"txt","{name}":{value},"{name}":{value}}}"#
            ));
        }
    }
    for len in 0..60 {
        let thumb = "A".repeat(len);
        for name in ["x5t", "x5t#S256"] {
            for pad in ["", "=", "==", "==="] {
                headers.push(format!(r#"{{"alg":"RS256","{name}":"{thumb}{pad}"}}"#));
            }
        }
    }
    let hex = "0123456789abcdef".repeat(5);
    headers.push(format!(r#"{{"alg":"RS256","x5t":"{}"}}"#, b64(&hex[..40])));
    headers.push(format!(
        r#"{{"alg":"RS256","x5t#S256":"{}"}}"#,
        b64(&hex[..64])
    ));
    headers.push(format!(
        r#"{{"alg":"RS256","x5t":"{}"}}"#,
        b64("\u{e9}").repeat(12)
    ));
    headers.extend(
        [
            "",
            "{",
            "[]",
            "null",
            "\"alg\"",
            r#"{"alg":"RS256"} "#,
            r#"{"alg":"RS256"}x"#,
            r#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#,
            r#"{"alg":"RS256","b64":true}"#,
            r#"{"alg":"RS256","b64":false,"crit":["b64"]}"#,
            r#"{"alg":"RS256","b64":false}"#,
            r#"{"alg":"RS256","cty":"txt","crit":["x"]}"#,
            r#"{"alg":"RS256","cty":"txt","kid":null}"#,
            r#"{"alg":"RS256","kid":null,"cty":"txt"}"#,
            r#"{"alg":"RS256","cty":null}"#,
            r#"{"alg":"RS256","cty":"txt","jwk":1}"#,
            r#"{"alg":"RS256","x5c":["a",1],"cty":"txt"}"#,
            r#"{"alg":"RS256","other":1,"other":2,"cty":"txt"}"#,
            r#"{"alg":"RS256","alg":"RS256"}"#,
            r#"{"alg":"RS256","cty":"json","cty":"json"}"#,
            r#"{"alg":"RS256","kid":"a","kid":"b"}"#,
            "{\"alg\":\"RS256\",\"kid\":\"\u{e9}\"}",
            r#"{"alg":"\ud800"}"#,
        ]
        .map(str::to_owned),
    );
    headers
}

#[test]
fn same_verdicts_as_jwt_compact_and_the_strict_reading() {
    let payload = b64(r#"{"iss":"x"}"#);
    let mut checked = 0;
    for header in headers() {
        for (payload, signature) in [
            (payload.as_str(), "c2ln"),
            (payload.as_str(), ""),
            ("", "c2ln"),
            (payload.as_str(), "c2l"),
            (payload.as_str(), "c2lnA"),
            ("e30=", "c2ln"),
        ] {
            for encoded in [b64(&header), format!("{}=", b64(&header))] {
                let token = format!("{encoded}.{payload}.{signature}");
                assert_eq!(parse(&token), reference(&token), "{header} / {token}");
                checked += 1;
            }
        }
        let invalid_utf8 = Base64UrlUnpadded::encode_string(&[0x7b, 0xff, 0x7d]);
        let token = format!("{invalid_utf8}.{payload}.c2ln");
        assert_eq!(parse(&token), reference(&token));
    }
    for token in [
        "",
        ".",
        "..",
        "...",
        "....",
        ".....",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        "a.b.c.d.e.f",
    ] {
        assert_eq!(parse(token), reference(token), "{token}");
    }
    assert!(checked > 10_000);
}

#[test]
fn size_limit_first() {
    let token = format!("{}.{}.c2ln", b64(r#"{"alg":"RS256"}"#), b64("{}"));
    assert!(Parsed::new(&token, token.len()).is_ok());
    assert_eq!(
        Parsed::new(&token, token.len() - 1).err(),
        Some(Rejection::TokenTooLarge {
            length: token.len(),
            limit: token.len() - 1
        })
    );
    let parsed = Parsed::new(&token, token.len()).unwrap();
    assert_eq!(parsed.signature, b"sig");
    assert_eq!(parsed.signed, token.rsplit_once('.').unwrap().0);
}

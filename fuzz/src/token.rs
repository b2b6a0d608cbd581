//! Structure-aware tokens: a valid token of one of the harness's keys, then mutations of its
//! header, claims, text, signature and encoding, each chosen by the fuzzer's bytes. The
//! empty input mints the first base token unchanged (and validly signed).

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Map, Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::testkit::TokenSpec;

use crate::input::Choices;
use crate::keys::Key;

/// A valid token to start from.
#[derive(Debug, Clone, Copy)]
pub struct Base {
    /// The key that signs it.
    pub key: Key,
    /// Its algorithm.
    pub alg: Algorithm,
    /// Its `kid` (`None`: no `kid` header).
    pub kid: Option<&'static str>,
    /// Its `iss`.
    pub issuer: &'static str,
    /// Its `aud`.
    pub audience: &'static str,
}

/// What came out.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The token text.
    pub token: String,
    /// The harness signed exactly these bytes with this key (no mutation after signing).
    pub signed_by: Option<(Key, Algorithm)>,
    /// The base token exactly as it was minted: no mutation at all.
    pub pristine: bool,
}

const HEADER_NAMES: &[&str] = &[
    "alg", "kid", "typ", "cty", "crit", "b64", "jku", "jwk", "x5c", "x5u", "x5t", "zip", "enc", "x",
];

const CLAIM_NAMES: &[&str] = &[
    "iss",
    "aud",
    "sub",
    "exp",
    "nbf",
    "iat",
    "jti",
    "typ",
    "scope",
    "scp",
    "realm_access",
    "azp",
    "sid",
    "email_verified",
    "x",
];

/// Strings worth trying as values, beside the target's own (issuers, audiences, kids).
pub const COMMON_WORDS: &[&str] = &[
    "",
    "RS256",
    "PS256",
    "ES256",
    "EdDSA",
    "ES384",
    "HS256",
    "none",
    "RS384",
    "JWT",
    "at+jwt",
    "application/at+jwt",
    "dpop+jwt",
    "logout+jwt",
    "Bearer",
    "bearer",
    "ID",
    "Refresh",
    "json",
    "openid email orders:write",
    "orders:write",
    "admin",
    "user",
    "account",
    "api",
];

/// A JSON value: literals, numbers near `now`, the words, arbitrary text, nesting.
pub fn json_value(c: &mut Choices<'_>, words: &[&str], now: i64, depth: u8) -> Value {
    match c.index(13) {
        0 => Value::Null,
        1 => Value::Bool(true),
        2 => Value::Bool(false),
        3 => json!(c.offset(300)),
        4 => {
            let around = c.pick(&[
                -100_000, -3600, -31, -30, -29, -1, 0, 1, 29, 30, 31, 3600, 7200,
            ]);
            json!(now + around + c.offset(2))
        }
        5 => c.pick(&[
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1e300),
            json!(-1e300),
            json!(0.5),
            json!(now as f64 + 0.5),
            json!(-0.0),
            json!(253_402_300_800_i64),
        ]),
        6 | 7 => Value::String(word(c, words).to_owned()),
        8 => Value::String(c.text(24)),
        9 if depth > 0 => {
            let n = c.upto(3);
            Value::Array(
                (0..n)
                    .map(|_| json_value(c, words, now, depth - 1))
                    .collect(),
            )
        }
        10 if depth > 0 => {
            let mut object = Map::new();
            for _ in 0..c.upto(2) {
                let name = if c.flag() {
                    word(c, words).to_owned()
                } else {
                    c.pick(&["roles", "admin", "x"]).to_owned()
                };
                object.insert(name, json_value(c, words, now, depth - 1));
            }
            Value::Object(object)
        }
        11 => Value::String(format!(
            "{}{}",
            word(c, words),
            c.pick(&[" ", "\r\n", "\0", "é", "/"])
        )),
        _ => Value::String(
            c.pick(&["a\r\nx-admin: 1", "\u{7f}", "\u{2028}", "🦀"])
                .to_owned(),
        ),
    }
}

fn word<'w>(c: &mut Choices<'_>, words: &[&'w str]) -> &'w str {
    let total = words.len() + COMMON_WORDS.len();
    let at = c.index(total);
    match words.get(at) {
        Some(word) => word,
        None => COMMON_WORDS[at - words.len()],
    }
}

fn edit(
    c: &mut Choices<'_>,
    object: &mut Map<String, Value>,
    names: &[&str],
    words: &[&str],
    now: i64,
) {
    for _ in 0..c.upto(3) {
        let name = match c.index(8) {
            7 => c.text(8),
            _ => c.pick(names).to_owned(),
        };
        if c.index(4) == 0 {
            object.remove(&name);
        } else {
            let value = json_value(c, words, now, 2);
            object.insert(name, value);
        }
    }
}

/// The JSON text of an object, with one of a few textual mutations.
fn text_of(c: &mut Choices<'_>, object: &Map<String, Value>, words: &[&str], now: i64) -> String {
    let plain = Value::Object(object.clone()).to_string();
    match c.index(10) {
        // A duplicate member in front.
        1 => {
            let name = c.pick(&["alg", "kid", "iss", "exp", "sub", "aud", "typ"]);
            let value = json_value(c, words, now, 1);
            plain.replacen('{', &format!("{{{}:{value},", Value::from(name)), 1)
        }
        // A member name written with an escape (`"k\u0069d"`).
        2 => {
            let name = c.pick(&["kid", "alg", "typ", "iss", "exp", "aud", "crit"]);
            let escaped = format!(
                "\"{}\\u{:04x}{}\"",
                &name[..1],
                name.as_bytes()[1],
                &name[2..]
            );
            plain.replacen(&format!("\"{name}\""), &escaped, 1)
        }
        // Whitespace and a byte-order mark, or pretty-printed.
        3 => format!(" \n{plain}\t"),
        4 => serde_json::to_string_pretty(object).unwrap_or(plain),
        5 => format!("\u{feff}{plain}"),
        // Not an object, or not JSON.
        6 => c
            .pick(&["[]", "null", "\"x\"", "1", "{", "{}", "{\"a\":1}}", ""])
            .to_owned(),
        // Arbitrary text.
        7 => c.text(80),
        // Truncated.
        8 => {
            let cut = c.upto(plain.len());
            plain.get(..cut).unwrap_or(&plain).to_owned()
        }
        _ => plain,
    }
}

/// Mints a token from `bases` (one of them, mutated as the bytes say); `words` are strings
/// the target wants tried (its issuers, audiences, kids).
pub fn mint(c: &mut Choices<'_>, bases: &[Base], words: &[&str], now: i64) -> Minted {
    let base = c.pick(bases);
    let mut spec = TokenSpec::access_token(
        base.alg,
        base.kid.unwrap_or(""),
        base.issuer,
        base.audience,
        now,
    );
    if base.kid.is_none() {
        spec = spec.without_header("kid");
    }
    let original = spec.clone();
    edit(c, &mut spec.header, HEADER_NAMES, words, now);
    edit(c, &mut spec.claims, CLAIM_NAMES, words, now);
    let mut pristine = spec.header == original.header && spec.claims == original.claims;
    let (header, payload) = if c.index(3) == 0 {
        pristine = false;
        (
            text_of(c, &spec.header, words, now),
            text_of(c, &spec.claims, words, now),
        )
    } else {
        (
            Value::Object(spec.header.clone()).to_string(),
            Value::Object(spec.claims.clone()).to_string(),
        )
    };
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));

    // Which key signs, with which algorithm: the header's own when the base key can.
    let header_alg = spec
        .header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Algorithm::from_jws_name)
        .filter(|alg| base.key.algorithms().contains(alg))
        .unwrap_or(base.alg);
    let mut signed_by = None;
    let signing = c.index(10);
    pristine &= matches!(signing, 0 | 8 | 9);
    let signature = match signing {
        1 => {
            let key = c.pick(&Key::ALL);
            let alg = c.pick(key.algorithms());
            signed_by = Some((key, alg));
            key.sign(alg, signing_input.as_bytes())
        }
        // The base token's signature on the mutated content.
        2 => {
            let original_input = format!(
                "{}.{}",
                b64(Value::Object(original.header.clone())
                    .to_string()
                    .as_bytes()),
                b64(Value::Object(original.claims.clone())
                    .to_string()
                    .as_bytes())
            );
            base.key.sign(base.alg, original_input.as_bytes())
        }
        3 => {
            let mut signature = base.key.sign(header_alg, signing_input.as_bytes());
            let bit = c.upto(signature.len() * 8 - 1);
            signature[bit / 8] ^= 1 << (bit % 8);
            signature
        }
        4 => {
            let mut signature = base.key.sign(header_alg, signing_input.as_bytes());
            let keep = signature.len().saturating_sub(c.upto(8) + 1);
            signature.truncate(keep);
            signature
        }
        5 => Vec::new(),
        6 => c.bytes(300),
        7 => {
            let mut signature = base.key.sign(header_alg, signing_input.as_bytes());
            signature.extend(c.bytes(4));
            signature.push(0);
            signature
        }
        _ => {
            signed_by = Some((base.key, header_alg));
            base.key.sign(header_alg, signing_input.as_bytes())
        }
    };
    let mut token = format!("{signing_input}.{}", b64(&signature));

    // Edits of the encoded text.
    for _ in 0..c.upto(2) {
        signed_by = None;
        pristine = false;
        let at = if token.is_empty() {
            0
        } else {
            c.upto(usize::from(u16::MAX)) % token.len()
        };
        let mut bytes = token.into_bytes();
        let char = c.pick(&[b'A', b'_', b'-', b'+', b'/', b'=', b'.', b' ', b',', 0x80]);
        match c.index(6) {
            0 => {
                let last = bytes.len().saturating_sub(1);
                if let Some(byte) = bytes.get_mut(at.min(last)) {
                    *byte = char;
                }
            }
            1 => bytes.insert(at, char),
            2 => {
                if !bytes.is_empty() {
                    bytes.remove(at.min(bytes.len() - 1));
                }
            }
            3 => bytes.extend_from_slice(b"=="),
            4 => bytes.extend_from_slice(b".x"),
            _ => bytes.truncate(at),
        }
        token = String::from_utf8_lossy(&bytes).into_owned();
    }
    Minted {
        token,
        signed_by,
        pristine,
    }
}

/// Unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

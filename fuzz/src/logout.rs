//! Back-channel logout: the form parser of the IdP's POST body and the logout-token
//! validation (OpenID Connect Back-Channel Logout 1.0 §2.6), on logout tokens minted from the
//! harness's keys and mutated, or on arbitrary bodies.
//!
//! Input: one byte choosing the path (even: a structured logout token, wrapped in a form body
//! as the IdP sends it; odd: the rest of the input is the body as it is).
//!
//! Invariants: no panic; the form parser returns a token only when the body has exactly one
//! `logout_token` parameter, and that token is the parameter's value as an independent
//! decoder reads it; a token is accepted only if it verifies under a configured key with an
//! allowed algorithm (by the reference implementations), carries the provider's issuer, a
//! configured audience, a fresh `iat`, a `jti`, the back-channel logout event, a `sid` or
//! `sub`, no `nonce`, and a header `typ` that is absent or `logout+jwt`; the event returned is
//! the token's own; the same token validated again gives the same answer; the unmutated token
//! is accepted.

use std::sync::OnceLock;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Map, Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::config::{self, Config};
use tokengate::jwks::KeySet;
use tokengate::revocation::logout_token::{LOGOUT_EVENT, validate};
use tokengate::revocation::{LogoutError, LogoutEvent, logout_token_of};

use crate::input::Choices;
use crate::keys::{Jws, Key};
use crate::token::json_value;

/// The provider's issuer.
pub const ISSUER: &str = "https://idp.example/realms/r";
/// The client id logout tokens are for.
pub const CLIENT: &str = "gateway";
/// The time of every validation unless the input moves it.
pub const NOW: i64 = 1_750_000_000;
const SKEW: i64 = 30;
const MAX_AGE: i64 = 120;
/// The configured keys (the other RSA key is not one).
const KEYS: [Key; 3] = [Key::RsaA, Key::P256, Key::Ed25519];
const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::Rs256,
    Algorithm::Ps256,
    Algorithm::Es256,
    Algorithm::EdDsa,
];
const WORDS: &[&str] = &[
    ISSUER,
    CLIENT,
    LOGOUT_EVENT,
    "logout+jwt",
    "application/logout+jwt",
    "rsa",
    "ec",
    "ed",
    "s1",
];

struct Fixture {
    config: Config,
    keys: KeySet,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys = json!({"keys": [
            Key::RsaA.public_jwk("rsa", None),
            Key::P256.public_jwk("ec", Some("ES256")),
            Key::Ed25519.public_jwk("ed", None),
        ]});
        let document = json!({
            "issuer": ISSUER, "audiences": ["api"],
            "algorithms": ["RS256", "PS256", "ES256", "EdDSA"],
            "clock_skew_seconds": SKEW,
            "jwks": {"inline": keys},
            "backchannel_logout": {
                "path": "/logout", "audiences": [CLIENT, "other-client"],
                "max_token_age_seconds": MAX_AGE
            }
        });
        let config = config::parse(document.to_string().as_bytes())
            .expect("the harness's configuration is valid");
        let allowed = config.providers[0].algorithms;
        let (keys, _) = KeySet::parse(keys.to_string().as_bytes(), allowed)
            .expect("the harness's keys are valid");
        Fixture { config, keys }
    })
}

const BASES: [(Key, Algorithm, &str); 4] = [
    (Key::RsaA, Algorithm::Rs256, "rsa"),
    (Key::P256, Algorithm::Es256, "ec"),
    (Key::Ed25519, Algorithm::EdDsa, "ed"),
    (Key::RsaA, Algorithm::Ps256, "rsa"),
];

const HEADER_NAMES: &[&str] = &["alg", "kid", "typ", "cty", "crit", "b64", "x"];
const CLAIM_NAMES: &[&str] = &[
    "iss", "aud", "iat", "exp", "jti", "events", "sid", "sub", "nonce", "x",
];

/// A logout token, and whether the harness signed exactly its bytes with a configured key.
struct Minted {
    token: String,
    signed_by: Option<(Key, Algorithm)>,
    pristine: bool,
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

fn mint(c: &mut Choices<'_>) -> Minted {
    let (key, alg, kid) = c.pick(&BASES);
    let mut header = Map::new();
    header.insert("alg".into(), json!(alg.jws_name()));
    header.insert("kid".into(), json!(kid));
    header.insert("typ".into(), json!("logout+jwt"));
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(ISSUER));
    claims.insert("aud".into(), json!(CLIENT));
    claims.insert("iat".into(), json!(NOW - 5));
    claims.insert("exp".into(), json!(NOW + 115));
    claims.insert("jti".into(), json!("jti-1"));
    claims.insert("sid".into(), json!("s1"));
    claims.insert("events".into(), json!({ LOGOUT_EVENT: {} }));
    let (original_header, original_claims) = (header.clone(), claims.clone());
    for (object, names) in [(&mut header, HEADER_NAMES), (&mut claims, CLAIM_NAMES)] {
        for _ in 0..c.upto(3) {
            let name = if c.index(8) == 7 {
                c.text(8)
            } else {
                c.pick(names).to_owned()
            };
            if c.index(4) == 0 {
                object.remove(&name);
            } else {
                object.insert(name, json_value(c, WORDS, NOW, 2));
            }
        }
    }
    let mut pristine = header == original_header && claims == original_claims;
    let signing_input = format!(
        "{}.{}",
        b64(Value::Object(header.clone()).to_string().as_bytes()),
        b64(Value::Object(claims.clone()).to_string().as_bytes())
    );
    let header_alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Algorithm::from_jws_name)
        .filter(|a| key.algorithms().contains(a))
        .unwrap_or(alg);
    let mut signed_by = None;
    let signing = c.index(6);
    pristine &= signing == 0;
    let signature = match signing {
        // Another key, maybe not a configured one.
        1 => {
            let other = c.pick(&Key::ALL);
            let other_alg = c.pick(other.algorithms());
            signed_by = Some((other, other_alg));
            other.sign(other_alg, signing_input.as_bytes())
        }
        2 => {
            let mut signature = key.sign(header_alg, signing_input.as_bytes());
            let bit = c.upto(signature.len() * 8 - 1);
            signature[bit / 8] ^= 1 << (bit % 8);
            signature
        }
        3 => Vec::new(),
        4 => c.bytes(300),
        _ => {
            signed_by = Some((key, header_alg));
            key.sign(header_alg, signing_input.as_bytes())
        }
    };
    let mut token = format!("{signing_input}.{}", b64(&signature));
    if c.index(8) == 0 {
        signed_by = None;
        pristine = false;
        let extra = c.pick(&["=", ".", ".x", " ", "+"]);
        if c.flag() {
            token.push_str(extra);
        } else {
            token.insert_str(0, extra);
        }
    }
    Minted {
        token,
        signed_by,
        pristine,
    }
}

/// The form body carrying `token`, encoded as the bytes say.
fn form(c: &mut Choices<'_>, token: &str) -> String {
    let mut encoded = String::new();
    let escape_all = c.flag();
    for byte in token.bytes() {
        if escape_all || !(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)) {
            encoded.push_str(&format!("%{byte:02X}"));
        } else {
            encoded.push(char::from(byte));
        }
    }
    match c.index(6) {
        1 => format!("state=x&logout_token={encoded}"),
        2 => format!("logout_token={encoded}&logout_token={encoded}"),
        3 => format!("logout%5Ftoken={encoded}&"),
        4 => format!("logout_token={encoded}&{}", c.text(16)),
        _ => format!("logout_token={encoded}"),
    }
}

/// Form decoding, written independently: `+` is a space, `%` and two hex digits a byte.
fn reference_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = char::from(*bytes.get(at + 1)?).to_digit(16)?;
                let low = char::from(*bytes.get(at + 2)?).to_digit(16)?;
                out.push(u8::try_from(high * 16 + low).ok()?);
                at += 2;
            }
            other => out.push(other),
        }
        at += 1;
    }
    String::from_utf8(out).ok()
}

/// The form parser against the reference: a token only for exactly one decodable, non-empty
/// `logout_token` parameter, and then that one's value.
fn check_form(body: &[u8]) -> Option<String> {
    let parsed = logout_token_of(body);
    let expected = std::str::from_utf8(body).ok().and_then(|text| {
        let values: Vec<Option<String>> = text
            .split('&')
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (reference_decode(name).as_deref() == Some("logout_token"))
                    .then(|| reference_decode(value))
            })
            .collect();
        match values.as_slice() {
            [Some(value)] if !value.is_empty() => Some(value.clone()),
            _ => None,
        }
    });
    match (&parsed, &expected) {
        (Ok(token), Some(value)) => assert_eq!(token, value, "form body {body:?}"),
        (Err(err), None) => assert_eq!(*err, LogoutError::MissingToken),
        _ => panic!(
            "form body {:?}: the parser says {parsed:?}, the reference {expected:?}",
            String::from_utf8_lossy(body)
        ),
    }
    parsed.ok()
}

fn check_accepted(token: &str, signed_by: Option<(Key, Algorithm)>, event: &LogoutEvent, now: i64) {
    let jws = Jws::parse(token)
        .unwrap_or_else(|| panic!("accepted a logout token that is not a JWS: {token:?}"));
    let harness_signed =
        signed_by.is_some_and(|(key, alg)| KEYS.contains(&key) && ALGORITHMS.contains(&alg));
    assert!(
        jws.verifies_under(&KEYS, &ALGORITHMS) || harness_signed,
        "accepted a logout token whose signature does not verify under a configured key: {token}"
    );
    assert!(
        jws.verifies_under(&KEYS, &ALGORITHMS),
        "the reference refuses an accepted token: {token}"
    );
    assert_eq!(jws.claim("iss").and_then(Value::as_str), Some(ISSUER));
    let for_us = |aud: &Value| {
        aud.as_str()
            .is_some_and(|aud| aud == CLIENT || aud == "other-client")
    };
    let audience = match jws.claim("aud") {
        Some(Value::Array(items)) => items.iter().any(for_us),
        Some(aud) => for_us(aud),
        None => false,
    };
    assert!(audience, "accepted with aud {:?}", jws.claim("aud"));
    let iat = jws
        .claim("iat")
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("accepted without a numeric iat: {:?}", jws.payload));
    let iat = iat.trunc();
    assert!(iat <= (now + SKEW) as f64, "accepted an iat in the future");
    assert!(
        (now as f64) - iat <= (MAX_AGE + SKEW) as f64,
        "accepted a stale iat"
    );
    assert_eq!(event.iat as f64, iat);
    if let Some(exp) = jws.claim("exp") {
        let exp = exp.as_f64().expect("accepted with a non-numeric exp");
        assert!(
            now as f64 <= exp.trunc() + SKEW as f64,
            "accepted an expired logout token"
        );
    }
    assert_eq!(
        jws.claim("jti").and_then(Value::as_str),
        Some(event.jti.as_str())
    );
    assert!(!event.jti.is_empty());
    assert!(
        jws.claim("events")
            .and_then(|events| events.get(LOGOUT_EVENT))
            .is_some_and(Value::is_object),
        "accepted without the logout event"
    );
    assert!(jws.claim("nonce").is_none(), "accepted with a nonce");
    let text = |name: &str| jws.claim(name).and_then(Value::as_str).map(str::to_owned);
    assert_eq!(event.sid, text("sid"));
    assert_eq!(event.sub, text("sub"));
    assert!(
        event.sid.as_deref().is_some_and(|s| !s.is_empty())
            || event.sub.as_deref().is_some_and(|s| !s.is_empty()),
        "accepted without a sid or sub"
    );
    if let Some(typ) = jws.header.get("typ") {
        let typ = typ.as_str().expect("accepted with a non-string typ");
        assert!(
            typ.eq_ignore_ascii_case("logout+jwt")
                || typ.eq_ignore_ascii_case("application/logout+jwt"),
            "accepted with typ {typ:?}"
        );
    }
    assert!(jws.header.get("crit").is_none(), "accepted with crit");
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let fixture = fixture();
    let provider = &fixture.config.providers[0];
    let settings = provider
        .backchannel
        .as_ref()
        .expect("the harness configures back-channel logout");
    let mut c = Choices::new(data);
    let (body, minted, now) = if c.byte() & 1 == 1 {
        (c.rest(), None, NOW)
    } else {
        let minted = mint(&mut c);
        let body = form(&mut c, &minted.token).into_bytes();
        let now = NOW + c.pick(&[0, 0, 0, 1, -40, 100, 200, 3600]);
        (body, Some(minted), now)
    };
    let Some(token) = check_form(&body) else {
        return;
    };
    let first = validate(provider, settings, &fixture.keys, &token, now);
    let second = validate(provider, settings, &fixture.keys, &token, now);
    assert_eq!(
        first, second,
        "the same logout token validated twice decides otherwise"
    );
    let signed_by = minted
        .as_ref()
        .filter(|minted| minted.token == token)
        .and_then(|minted| minted.signed_by);
    match &first {
        Ok(event) => check_accepted(&token, signed_by, event, now),
        Err(_) => assert!(
            !(minted
                .as_ref()
                .is_some_and(|m| m.pristine && m.token == token)
                && now == NOW),
            "the unmutated logout token was refused: {first:?}"
        ),
    }
}

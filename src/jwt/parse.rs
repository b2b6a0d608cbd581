//! A compact JWS taken apart once: three segments decoded, the JOSE header read once and
//! strictly, the claims parsed on first use.
//!
//! jwt-compact's `UntrustedToken` did this before, and the header was then read a second time
//! for the strict checks below: in V8 that was 4.2 µs for a Keycloak-sized token (base64ct,
//! see [`super::base64url`], and two JSON parses of the header) where this takes about a
//! third (`benches/engine.rs`: "Parsed::new" against "jwt-compact UntrustedToken::try_from").
//! What it accepts, and how it classifies what it refuses, is what `UntrustedToken` followed
//! by the strict reading did (`parse_tests.rs` compares the two on a corpus of headers);
//! jwt-compact still owns the claims (`Claims`, its time checks) and the algorithms.

use std::cell::OnceCell;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::rejection::{MalformedToken, Rejection};

use super::base64url;
use super::raw_claims::RawClaims;

/// The header parameters the gateway acts on.
#[derive(Debug, Default)]
pub(crate) struct Header {
    /// `alg`.
    pub alg: String,
    /// `kid`.
    pub kid: Option<String>,
    /// `typ`.
    pub typ: Option<String>,
}

/// What one reading of the header found. Faults jwt-compact refused a header for end the
/// reading (a serde error, [`MalformedToken::Header`]); the stricter faults (a `null` where a
/// registered parameter must have a value, a duplicate name, `jwk`, `x5c` or `b64` of the
/// wrong type) are noted and judged after the content type, as they were when jwt-compact read
/// the header first.
#[derive(Default)]
struct HeaderReading {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    /// `cty`, if a string.
    cty: Option<String>,
    strict_fault: bool,
    critical: bool,
    b64: Option<bool>,
}

/// The registered parameters (RFC 7515 §4.1, RFC 7797 §3), in the order of their bit in the
/// set of names seen.
const REGISTERED: [&str; 12] = [
    "alg", "kid", "typ", "cty", "jku", "x5u", "x5t", "x5t#S256", "jwk", "x5c", "b64", "crit",
];

/// The first this many of [`REGISTERED`] are the ones jwt-compact's `Header` reads.
const JWT_COMPACT_READS: usize = 8;

/// A member name of a JSON object (a header parameter, a claim), borrowed from the decoded
/// segment when it has no escapes.
pub(super) struct Name<'de>(pub(super) std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Borrowed(name)))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// A JSON string, and nothing else: read and dropped.
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

/// An X.509 thumbprint of `N` bytes as jwt-compact reads one (`Thumbprint<N>`): base64url
/// with up to two `=` tolerated, decoding to exactly `N` bytes, or to longer UTF-8 (a hex
/// form); anything else refuses the header.
struct Thumbprint<const N: usize>;

impl<'de, const N: usize> Deserialize<'de> for Thumbprint<N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ThumbprintVisitor<const L: usize>;
        impl<const L: usize> Visitor<'_> for ThumbprintVisitor<L> {
            type Value = Thumbprint<L>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64url thumbprint")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Thumbprint<L>, E> {
                let mut value = value.as_bytes();
                for _ in 0..2 {
                    if let Some(rest) = value.strip_suffix(b"=") {
                        value = rest;
                    }
                }
                let fault = || E::custom("not a thumbprint");
                let decoded = base64url::decode(value).map_err(|_| fault())?;
                match (value.len() * 3 / 4).cmp(&L) {
                    std::cmp::Ordering::Less => Err(fault()),
                    std::cmp::Ordering::Equal if decoded.len() == L => Ok(Thumbprint),
                    std::cmp::Ordering::Equal => Err(fault()),
                    std::cmp::Ordering::Greater => match std::str::from_utf8(&decoded) {
                        Ok(_) => Ok(Thumbprint),
                        Err(_) => Err(fault()),
                    },
                }
            }
        }
        deserializer.deserialize_str(ThumbprintVisitor)
    }
}

impl<'de> Deserialize<'de> for HeaderReading {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = HeaderReading;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<HeaderReading, A::Error> {
                let mut reading = HeaderReading::default();
                let mut registered_seen = 0u16;
                let mut others: Vec<String> = Vec::new();
                while let Some(Name(name)) = access.next_key::<Name<'de>>()? {
                    let Some(index) = REGISTERED.iter().position(|n| *n == name) else {
                        if others.iter().any(|other| *other == name) {
                            reading.strict_fault = true;
                        } else {
                            others.push(name.into_owned());
                        }
                        access.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    if registered_seen & (1 << index) != 0 {
                        // jwt-compact refuses a second of the parameters it reads itself.
                        if index < JWT_COMPACT_READS {
                            return Err(de::Error::custom("duplicate header parameter"));
                        }
                        reading.strict_fault = true;
                    }
                    registered_seen |= 1 << index;
                    // `Option` reads `null` as `None`: jwt-compact's reading of every
                    // parameter but `alg`, a fault only to the strict reading.
                    let present = match index {
                        0 => access.next_value::<String>().map(|alg| {
                            reading.alg = Some(alg);
                            true
                        })?,
                        1 => access.next_value::<Option<String>>().map(|kid| {
                            let present = kid.is_some();
                            reading.kid = kid;
                            present
                        })?,
                        2 => access.next_value::<Option<String>>().map(|typ| {
                            let present = typ.is_some();
                            reading.typ = typ;
                            present
                        })?,
                        3 => access.next_value::<Option<String>>().map(|cty| {
                            let present = cty.is_some();
                            reading.cty = cty;
                            present
                        })?,
                        4 | 5 => access.next_value::<Option<JsonString>>()?.is_some(),
                        6 => access.next_value::<Option<Thumbprint<20>>>()?.is_some(),
                        7 => access.next_value::<Option<Thumbprint<32>>>()?.is_some(),
                        8 => access.next_value::<Value>()?.is_object(),
                        9 => access
                            .next_value::<Value>()?
                            .as_array()
                            .is_some_and(|items| items.iter().all(Value::is_string)),
                        10 => match access.next_value::<Value>()? {
                            Value::Bool(b64) => {
                                reading.b64 = Some(b64);
                                true
                            }
                            _ => false,
                        },
                        _ => {
                            access.next_value::<IgnoredAny>()?;
                            reading.critical = true;
                            true
                        }
                    };
                    reading.strict_fault |= !present;
                }
                Ok(reading)
            }
        }
        deserializer.deserialize_map(HeaderVisitor)
    }
}

/// Reads the decoded header: a JSON object without duplicate names whose registered
/// parameters have their registered types (`"kid": null` is not "no kid": it would select
/// the single key of a set without one; a null `typ` would pass as an access token), a JSON
/// payload, and neither `crit` nor `b64: false`.
fn read_header(json: &[u8]) -> Result<Header, Rejection> {
    let malformed = |kind| Rejection::Malformed(kind);
    let reading = serde_json::from_slice::<HeaderReading>(json)
        .map_err(|_| malformed(MalformedToken::Header))?;
    let alg = reading.alg.ok_or(malformed(MalformedToken::Header))?;
    if reading
        .cty
        .as_deref()
        .is_some_and(|cty| !cty.eq_ignore_ascii_case("json"))
    {
        return Err(malformed(MalformedToken::ContentType));
    }
    if reading.strict_fault {
        return Err(malformed(MalformedToken::Header));
    }
    if reading.critical {
        return Err(malformed(MalformedToken::CriticalHeader));
    }
    if reading.b64 == Some(false) {
        return Err(malformed(MalformedToken::UnencodedPayload));
    }
    Ok(Header {
        alg,
        kid: reading.kid,
        typ: reading.typ,
    })
}

/// A token that passed the structural checks: size, three canonical base64url segments, a
/// JOSE header read strictly (see [`read_header`]). Its claims are parsed on first use and
/// kept, so choosing a provider by the unverified `iss` and validating with it parse once.
pub struct Parsed<'t> {
    pub(crate) token: &'t str,
    pub(crate) header: Header,
    /// The first two segments: what the signature signs.
    pub(crate) signed: &'t str,
    payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
    claims: OnceCell<Result<RawClaims, Rejection>>,
}

impl<'t> Parsed<'t> {
    /// The structural checks, with `max_token_bytes` as the size limit.
    pub fn new(token: &'t str, max_token_bytes: usize) -> Result<Parsed<'t>, Rejection> {
        if token.len() > max_token_bytes {
            return Err(Rejection::TokenTooLarge {
                length: token.len(),
                limit: max_token_bytes,
            });
        }
        let mut dots = token.bytes().enumerate().filter(|(_, b)| *b == b'.');
        let (first, second) = match (dots.next(), dots.next(), dots.next(), dots.next()) {
            (Some((first, _)), Some((second, _)), None, _) => (first, second),
            (Some(_), Some(_), Some(_), Some(_)) if dots.next().is_none() => {
                return Err(Rejection::Malformed(MalformedToken::Encrypted));
            }
            _ => return Err(Rejection::Malformed(MalformedToken::Structure)),
        };
        let bytes = token.as_bytes();
        let segment = |range: std::ops::Range<usize>| {
            bytes
                .get(range)
                .ok_or(Rejection::Malformed(MalformedToken::Structure))
        };
        let decode = |text: &[u8]| {
            base64url::decode(text).map_err(|_| Rejection::Malformed(MalformedToken::Base64))
        };
        let header_json = decode(segment(0..first)?)?;
        let payload = decode(segment(first + 1..second)?)?;
        let signature = decode(segment(second + 1..bytes.len())?)?;
        let header = read_header(&header_json)?;
        Ok(Parsed {
            token,
            header,
            signed: token.get(..second).unwrap_or_default(),
            payload,
            signature,
            claims: OnceCell::new(),
        })
    }

    /// The claims, read once: a JSON object without duplicate names and numeric time claims,
    /// with (at least) the claims `wanted` names built: the first reading decides.
    pub(crate) fn claims(&self, wanted: &dyn Fn(&str) -> bool) -> Result<&RawClaims, Rejection> {
        self.claims
            .get_or_init(|| RawClaims::read(&self.payload, wanted))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The header's `kid`, if a string.
    pub fn key_id(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// The unverified `iss`, only to choose the provider that judges the token.
    /// Every claim is built: the provider that will read them is not chosen yet.
    pub fn unverified_issuer(&self) -> Result<Option<&str>, Rejection> {
        match self.claims(&|_| true)?.claims.get("iss") {
            None => Ok(None),
            Some(Value::String(iss)) => Ok(Some(iss)),
            Some(_) => Err(Rejection::Malformed(MalformedToken::ClaimType)),
        }
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

//! A token's claims read in one pass, building only the claims something reads: the checks,
//! a rule or a forwarded header ([`RawClaims::read`] is told which); the others are skipped
//! unbuilt, their names kept only to refuse duplicates.
//!
//! Why not jwt-compact's `Claims<T>` with a `serde_json::Map` as `T`, as before: that builds
//! every claim as an owned JSON value (through serde's buffering of a flattened struct), and a
//! Keycloak access token has about twenty, with nested objects for roles and clients, of which
//! the gateway reads a handful (`benches/engine.rs`: "RawClaims::read" against "jwt-compact
//! Claims<serde_json Map>", on the bench's token and on a full Keycloak-shaped one). What it
//! accepts is what that reading accepted (`raw_claims_tests.rs` compares them): a JSON object
//! without duplicate names, `exp`, `nbf` and `iat` numbers read as jwt-compact reads them;
//! jwt-compact's `Claims` still judges the times.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::rejection::{MalformedToken, Rejection};

use super::parse::Name;

/// The claims of one payload (see the module documentation).
#[derive(Default)]
pub struct RawClaims {
    /// The claims read, time claims aside.
    pub claims: Map<String, Value>,
    /// `exp`, Unix seconds.
    pub exp: Option<i64>,
    /// `nbf`, Unix seconds.
    pub nbf: Option<i64>,
    /// `iat`, Unix seconds.
    pub iat: Option<i64>,
}

fn malformed() -> Rejection {
    Rejection::Malformed(MalformedToken::Claims)
}

impl RawClaims {
    /// Reads `payload`, building the claims `wanted` names.
    pub fn read(payload: &[u8], wanted: &dyn Fn(&str) -> bool) -> Result<RawClaims, Rejection> {
        // Whole-payload UTF-8 first: serde_json checks it only in the strings it builds, and
        // a skipped claim must be refused for what a built one would be.
        let payload = std::str::from_utf8(payload).map_err(|_| malformed())?;
        let mut deserializer = serde_json::Deserializer::from_str(payload);
        let claims = de::Deserializer::deserialize_map(&mut deserializer, ClaimsVisitor { wanted })
            .map_err(|_| malformed())?;
        deserializer.end().map_err(|_| malformed())?;
        Ok(claims)
    }
}

struct ClaimsVisitor<'w> {
    wanted: &'w dyn Fn(&str) -> bool,
}

/// A JSON value read as building it would read it, and dropped. Not `IgnoredAny`: serde_json
/// skips that without decoding strings, and would let a lone surrogate (`"\ud800"`) through
/// that building a `Value` refuses. Strings without escapes are borrowed, not copied.
struct Unbuilt;

impl<'de> Deserialize<'de> for Unbuilt {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UnbuiltVisitor;
        impl<'de> Visitor<'de> for UnbuiltVisitor {
            type Value = Unbuilt;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Unbuilt, E> {
                Ok(Unbuilt)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Unbuilt, E> {
                Ok(Unbuilt)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Unbuilt, E> {
                Ok(Unbuilt)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Unbuilt, E> {
                Ok(Unbuilt)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Unbuilt, E> {
                Ok(Unbuilt)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Unbuilt, E> {
                Ok(Unbuilt)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Unbuilt, A::Error> {
                while items.next_element::<Unbuilt>()?.is_some() {}
                Ok(Unbuilt)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Unbuilt, A::Error> {
                while entries.next_entry::<Unbuilt, Unbuilt>()?.is_some() {}
                Ok(Unbuilt)
            }
        }
        deserializer.deserialize_any(UnbuiltVisitor)
    }
}

/// A time claim as jwt-compact reads one: an integer, or a number cast to one (saturating),
/// within chrono's range.
struct Timestamp(i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        fn in_range<E: de::Error>(seconds: i64) -> Result<Timestamp, E> {
            chrono::DateTime::from_timestamp(seconds, 0)
                .map(|_| Timestamp(seconds))
                .ok_or_else(|| E::custom("UTC timestamp overflow"))
        }
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("UTC timestamp")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Timestamp, E> {
                in_range(value)
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Timestamp, E> {
                in_range(i64::try_from(value).map_err(E::custom)?)
            }
            #[allow(clippy::cast_possible_truncation)]
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Timestamp, E> {
                in_range(value as i64)
            }
        }
        deserializer.deserialize_i64(TimestampVisitor)
    }
}

impl<'de> Visitor<'de> for ClaimsVisitor<'_> {
    type Value = RawClaims;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object of claims")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<RawClaims, A::Error> {
        let mut claims = RawClaims::default();
        let mut names: Vec<Cow<'de, str>> = Vec::new();
        let duplicate = || de::Error::custom("duplicate claim");
        while let Some(Name(name)) = access.next_key::<Name<'de>>()? {
            let time = match name.as_ref() {
                "exp" => Some(&mut claims.exp),
                "nbf" => Some(&mut claims.nbf),
                "iat" => Some(&mut claims.iat),
                _ => None,
            };
            if let Some(slot) = time {
                if slot.is_some() {
                    return Err(duplicate());
                }
                *slot = Some(access.next_value::<Timestamp>()?.0);
                continue;
            }
            if names.contains(&name) {
                return Err(duplicate());
            }
            if (self.wanted)(&name) {
                let value = access.next_value::<Value>()?;
                claims.claims.insert(name.clone().into_owned(), value);
            } else {
                access.next_value::<Unbuilt>()?;
            }
            names.push(name);
        }
        Ok(claims)
    }
}

#[cfg(test)]
#[path = "raw_claims_tests.rs"]
mod tests;

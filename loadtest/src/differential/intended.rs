//! The intended differences: tokens tokengate admits although Envoy's `jwt_authn` refuses
//! them, each with the reason it is right to. The differential test fails on any other such
//! token. Keep this list short; every entry is a decision, not a workaround, and each is
//! recognised from the request itself (not from a case's label), so random cases that land
//! on the same difference are covered too.

use serde_json::Value;

use super::decoded_payload;

pub struct Intended {
    pub name: &'static str,
    pub reason: &'static str,
    /// Whether this difference explains tokengate admitting the request with this
    /// `Authorization` value.
    pub applies: fn(&str) -> bool,
}

pub const INTENDED: &[Intended] = &[
    Intended {
        name: "negative iat or nbf",
        reason: "RFC 7519 makes iat and nbf NumericDates, any JSON number; a negative one is a \
                 moment before 1970, in the past, so nbf restricts nothing and iat is not \
                 checked. jwt_authn reads time claims as unsigned integers and refuses the token \
                 as malformed. exp below zero is expired for both.",
        applies: negative_iat_or_nbf,
    },
    Intended {
        name: "auth-scheme case",
        reason: "RFC 9110 §11.1: the authentication scheme is case-insensitive, so `bearer` and \
                 `BEARER` name the Bearer scheme of RFC 6750. jwt_authn matches the prefix \
                 `Bearer ` byte for byte.",
        applies: scheme_not_exactly_bearer,
    },
];

/// The difference explaining an admission by tokengate that jwt_authn refused, if listed.
pub fn explain(authorization: &str) -> Option<&'static Intended> {
    INTENDED
        .iter()
        .find(|intended| (intended.applies)(authorization))
}

fn negative_iat_or_nbf(authorization: &str) -> bool {
    let Some(payload) = decoded_payload(authorization) else {
        return false;
    };
    let Ok(Value::Object(claims)) = serde_json::from_str::<Value>(&payload) else {
        return false;
    };
    ["iat", "nbf"].iter().any(|name| {
        claims
            .get(*name)
            .and_then(Value::as_f64)
            .is_some_and(|t| t < 0.0)
    })
}

fn scheme_not_exactly_bearer(authorization: &str) -> bool {
    let scheme = authorization.split(' ').next().unwrap_or_default();
    scheme.eq_ignore_ascii_case("bearer") && scheme != "Bearer"
}

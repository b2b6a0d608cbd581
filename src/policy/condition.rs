//! Claim conditions a rule puts on an authenticated token: typed comparisons on a claim found
//! by its path. `email_verified: true` compares with the JSON boolean (the string `"true"`
//! does not match), numbers compare as numbers, and an absent claim or one of another type
//! makes the condition false — never an error that lets the request through.

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::config::ConfigError;
use crate::jwt::ClaimPath;

/// A value a condition compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A JSON string.
    String(String),
    /// A JSON boolean.
    Bool(bool),
    /// A JSON number.
    Number(Number),
}

impl Scalar {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Scalar::String(expected), Value::String(actual)) => expected == actual,
            (Scalar::Bool(expected), Value::Bool(actual)) => expected == actual,
            (Scalar::Number(expected), Value::Number(actual)) => number_eq(expected, actual),
            _ => false,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Scalar::String(_) => "string",
            Scalar::Bool(_) => "boolean",
            Scalar::Number(_) => "number",
        }
    }

    fn from_json(value: Value) -> Result<Scalar, &'static str> {
        match value {
            Value::String(s) => Ok(Scalar::String(s)),
            Value::Bool(b) => Ok(Scalar::Bool(b)),
            Value::Number(n) => Ok(Scalar::Number(n)),
            Value::Null => Err("`null` is not a value to compare with"),
            Value::Array(_) | Value::Object(_) => {
                Err("compares with a string, a boolean or a number")
            }
        }
    }
}

/// Integers exactly (i64 or u64), otherwise as floating point.
fn number_eq(a: &Number, b: &Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => a.as_f64().zip(b.as_f64()).is_some_and(|(x, y)| x == y),
    }
}

/// How a claim is tested.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The claim is this value.
    Equals(Scalar),
    /// The claim is one of these values (all of one type).
    OneOf(Vec<Scalar>),
    /// The claim is an array with this value among its items.
    Contains(Scalar),
}

/// One condition: a claim and its test.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Where the claim is.
    pub claim: ClaimPath,
    /// What it must satisfy.
    pub test: Test,
}

impl Condition {
    /// Whether the claims satisfy the condition.
    pub fn holds(&self, claims: &Map<String, Value>) -> bool {
        let Some(value) = self.claim.lookup(claims) else {
            return false;
        };
        match &self.test {
            Test::Equals(expected) => expected.matches(value),
            Test::OneOf(options) => options.iter().any(|option| option.matches(value)),
            Test::Contains(expected) => value
                .as_array()
                .is_some_and(|items| items.iter().any(|item| expected.matches(item))),
        }
    }
}

/// A condition as written: `{"claim": PATH, "equals" | "one_of" | "contains": VALUE}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    claim: ClaimPath,
    #[serde(default, deserialize_with = "present")]
    equals: Option<Value>,
    one_of: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "present")]
    contains: Option<Value>,
}

/// A field that is present, `null` included (plain `Option` would read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Validates a condition; `field` is its path in the configuration.
pub fn parse(raw: RawCondition, field: &str) -> Result<Condition, ConfigError> {
    let error = |name: &str, problem: &str| ConfigError::new(format!("{field}.{name}"), problem);
    let test = match (raw.equals, raw.one_of, raw.contains) {
        (Some(value), None, None) => {
            Test::Equals(Scalar::from_json(value).map_err(|p| error("equals", p))?)
        }
        (None, Some(values), None) => {
            if values.is_empty() {
                return Err(error("one_of", "must list at least one value"));
            }
            let mut options = Vec::with_capacity(values.len());
            for (index, value) in values.into_iter().enumerate() {
                let option =
                    Scalar::from_json(value).map_err(|p| error(&format!("one_of[{index}]"), p))?;
                if let Some(first) = options.first()
                    && Scalar::kind(first) != option.kind()
                {
                    return Err(error(
                        &format!("one_of[{index}]"),
                        "every value must have the type of the first",
                    ));
                }
                options.push(option);
            }
            Test::OneOf(options)
        }
        (None, None, Some(value)) => {
            Test::Contains(Scalar::from_json(value).map_err(|p| error("contains", p))?)
        }
        _ => {
            return Err(ConfigError::new(
                field,
                "set exactly one of `equals`, `one_of` or `contains`",
            ));
        }
    };
    Ok(Condition {
        claim: raw.claim,
        test,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn condition(json: Value) -> Condition {
        parse(serde_json::from_value(json).unwrap(), "rules[0].claims[0]").unwrap()
    }

    #[test]
    fn typed_comparisons() {
        let claims = json!({
            "email_verified": true,
            "verified_as_string": "true",
            "level": 3,
            "ratio": 0.5,
            "big": 18_446_744_073_709_551_615u64,
            "tenant": "acme",
            "realm_access": {"roles": ["offline_access", "admin"]},
            "kubernetes.io": {"namespace": "orders"},
            "groups": [["nested"]],
            "empty": null,
        });
        let claims = claims.as_object().unwrap();
        let cases = [
            (json!({"claim": "email_verified", "equals": true}), true),
            (json!({"claim": "email_verified", "equals": "true"}), false),
            (
                json!({"claim": "verified_as_string", "equals": true}),
                false,
            ),
            (json!({"claim": "level", "equals": 3}), true),
            (json!({"claim": "level", "equals": 3.0}), true),
            (json!({"claim": "level", "equals": "3"}), false),
            (json!({"claim": "ratio", "equals": 0.5}), true),
            (
                json!({"claim": "big", "equals": 18_446_744_073_709_551_615u64}),
                true,
            ),
            (
                json!({"claim": "big", "equals": 18_446_744_073_709_551_614u64}),
                false,
            ),
            (
                json!({"claim": "tenant", "one_of": ["other", "acme"]}),
                true,
            ),
            (json!({"claim": "tenant", "one_of": ["other"]}), false),
            (
                json!({"claim": "realm_access.roles", "contains": "admin"}),
                true,
            ),
            (
                json!({"claim": "realm_access.roles", "contains": "root"}),
                false,
            ),
            (json!({"claim": "tenant", "contains": "acme"}), false),
            (json!({"claim": "realm_access", "equals": "x"}), false),
            (json!({"claim": "missing", "equals": true}), false),
            (json!({"claim": "empty", "equals": "x"}), false),
            (
                json!({"claim": "kubernetes\\.io.namespace", "equals": "orders"}),
                true,
            ),
            (
                json!({"claim": ["kubernetes.io", "namespace"], "equals": "orders"}),
                true,
            ),
            (
                json!({"claim": "kubernetes.io.namespace", "equals": "orders"}),
                false,
            ),
            (json!({"claim": "groups", "contains": "nested"}), false),
        ];
        for (json, expected) in cases {
            assert_eq!(condition(json.clone()).holds(claims), expected, "{json}");
        }
    }

    #[test]
    fn bad_conditions_name_their_field() {
        let cases = [
            (
                json!({"claim": "a", "equals": null}),
                "rules[0].claims[0].equals",
            ),
            (
                json!({"claim": "a", "equals": {"x": 1}}),
                "rules[0].claims[0].equals",
            ),
            (
                json!({"claim": "a", "contains": ["x"]}),
                "rules[0].claims[0].contains",
            ),
            (
                json!({"claim": "a", "one_of": []}),
                "rules[0].claims[0].one_of",
            ),
            (
                json!({"claim": "a", "one_of": ["x", 1]}),
                "rules[0].claims[0].one_of[1]",
            ),
            (json!({"claim": "a"}), "rules[0].claims[0]"),
            (
                json!({"claim": "a", "equals": 1, "contains": 1}),
                "rules[0].claims[0]",
            ),
        ];
        for (json, field) in cases {
            let err = parse(
                serde_json::from_value(json.clone()).unwrap(),
                "rules[0].claims[0]",
            )
            .unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }
}

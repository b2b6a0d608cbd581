//! What a rule requires of a request's tokens: a tree of providers, `any` and `all`, with
//! `allow_missing` / `allow_missing_or_failed` inside an `any`, or `public`.
//!
//! Written as JSON:
//!
//! - `"public"` (the whole requirement): the token is not read at all;
//! - `{"provider": NAME}`: a valid token of that provider;
//! - `{"any": [R, ...]}`: one of them; may contain `"allow_missing"` (no token at all is fine,
//!   but a token that is present must be valid: a token of an issuer the rule does not know is
//!   refused, unlike Envoy #15194) or `"allow_missing_or_failed"` (always forwarded; identity
//!   only when a token is valid);
//! - `{"all": [R, ...]}`: every one of them (tokens from different sources).
//!
//! Within one `any`, the providers that read the same token source must have distinct
//! issuers, and at most one of them may take opaque tokens: a token's unverified `iss` then
//! names the single provider that judges it, and no token is ever tried against several.

use serde_json::Value;

use crate::config::{ConfigError, Provider};

/// What to do in an `any` when no alternative holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Refuse.
    Refuse,
    /// Forward without identity when no token is present at all.
    AllowMissing,
    /// Forward without identity when no token is present or none is valid.
    AllowMissingOrFailed,
}

/// A requirement tree; providers by index into the configuration's providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// No token is read.
    Public,
    /// A valid token of this provider.
    Provider(usize),
    /// One of the alternatives, else the fallback.
    Any(Vec<Requirement>, Fallback),
    /// Every one of them.
    All(Vec<Requirement>),
}

impl Requirement {
    /// Every provider the tree names, in order, repeats included.
    pub fn providers(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.collect_providers(&mut out);
        out
    }

    fn collect_providers(&self, out: &mut Vec<usize>) {
        match self {
            Requirement::Public => {}
            Requirement::Provider(index) => out.push(*index),
            Requirement::Any(members, _) | Requirement::All(members) => {
                for member in members {
                    member.collect_providers(out);
                }
            }
        }
    }

    /// Whether a request may pass without any identity (public, or an `allow_missing*`).
    pub fn admits_anonymous(&self) -> bool {
        match self {
            Requirement::Public => true,
            Requirement::Provider(_) => false,
            Requirement::Any(members, fallback) => {
                *fallback != Fallback::Refuse || members.iter().any(Requirement::admits_anonymous)
            }
            Requirement::All(members) => members.iter().all(Requirement::admits_anonymous),
        }
    }
}

/// Validates a `requires` value; `field` is its path in the configuration.
pub fn parse(
    value: &Value,
    providers: &[Provider],
    field: &str,
) -> Result<Requirement, ConfigError> {
    match value {
        Value::String(keyword) if keyword == "public" => Ok(Requirement::Public),
        other => parse_node(other, providers, field),
    }
}

fn parse_node(
    value: &Value,
    providers: &[Provider],
    field: &str,
) -> Result<Requirement, ConfigError> {
    match value {
        Value::String(keyword) => Err(ConfigError::new(
            field,
            match keyword.as_str() {
                "public" => "`public` is a whole requirement, not part of one".to_owned(),
                "allow_missing" | "allow_missing_or_failed" => format!(
                    "`{keyword}` belongs in an `any` next to the providers that judge a present \
                     token: {{\"any\": [{{\"provider\": \"...\"}}, \"{keyword}\"]}}"
                ),
                other => format!(
                    "unknown requirement `{other}`; expected `public`, `{{\"provider\": ...}}`, \
                     `{{\"any\": [...]}}` or `{{\"all\": [...]}}`"
                ),
            },
        )),
        Value::Object(object) => {
            let mut keys = object.keys();
            let (Some(key), None) = (keys.next(), keys.next()) else {
                return Err(ConfigError::new(
                    field,
                    "must have exactly one of `provider`, `any` or `all`",
                ));
            };
            let inner = &object[key];
            let inner_field = format!("{field}.{key}");
            match key.as_str() {
                "provider" => {
                    let Value::String(name) = inner else {
                        return Err(ConfigError::new(inner_field, "must be a provider's name"));
                    };
                    providers
                        .iter()
                        .position(|p| p.name.as_str() == name)
                        .map(Requirement::Provider)
                        .ok_or_else(|| {
                            ConfigError::new(inner_field, format!("no provider named \"{name}\""))
                        })
                }
                "any" => parse_any(inner, providers, &inner_field),
                "all" => {
                    let members = list(inner, &inner_field)?;
                    let mut parsed = Vec::with_capacity(members.len());
                    for (index, member) in members.iter().enumerate() {
                        parsed.push(parse_node(
                            member,
                            providers,
                            &format!("{inner_field}[{index}]"),
                        )?);
                    }
                    Ok(Requirement::All(parsed))
                }
                other => Err(ConfigError::new(
                    format!("{field}.{other}"),
                    "unknown field; expected `provider`, `any` or `all`",
                )),
            }
        }
        _ => Err(ConfigError::new(
            field,
            "must be `public` or an object with `provider`, `any` or `all`",
        )),
    }
}

fn list<'a>(value: &'a Value, field: &str) -> Result<&'a Vec<Value>, ConfigError> {
    match value {
        Value::Array(items) if !items.is_empty() => Ok(items),
        Value::Array(_) => Err(ConfigError::new(field, "must not be empty")),
        _ => Err(ConfigError::new(field, "must be a list")),
    }
}

fn parse_any(
    value: &Value,
    providers: &[Provider],
    field: &str,
) -> Result<Requirement, ConfigError> {
    let items = list(value, field)?;
    let mut members = Vec::with_capacity(items.len());
    let mut fallback = Fallback::Refuse;
    for (index, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{index}]");
        let allowance = match item {
            Value::String(k) if k == "allow_missing" => Some(Fallback::AllowMissing),
            Value::String(k) if k == "allow_missing_or_failed" => {
                Some(Fallback::AllowMissingOrFailed)
            }
            _ => None,
        };
        match allowance {
            Some(_) if fallback != Fallback::Refuse => {
                return Err(ConfigError::new(
                    item_field,
                    "only one `allow_missing*` per `any`",
                ));
            }
            Some(allowance) => fallback = allowance,
            None => members.push(parse_node(item, providers, &item_field)?),
        }
    }
    if members.is_empty() {
        return Err(ConfigError::new(
            field,
            "needs at least one provider to judge a token that is present",
        ));
    }
    check_distinguishable(&members, providers, field)?;
    Ok(Requirement::Any(members, fallback))
}

/// The direct provider alternatives of an `any` that share a token source must be told apart
/// by the token alone: distinct issuers, at most one taking opaque tokens.
fn check_distinguishable(
    members: &[Requirement],
    providers: &[Provider],
    field: &str,
) -> Result<(), ConfigError> {
    let direct: Vec<&Provider> = members
        .iter()
        .filter_map(|member| match member {
            Requirement::Provider(index) => providers.get(*index),
            _ => None,
        })
        .collect();
    for (i, a) in direct.iter().enumerate() {
        for b in &direct[i + 1..] {
            if a.token_source != b.token_source {
                continue;
            }
            if a.name == b.name {
                return Err(ConfigError::new(
                    field,
                    format!("names provider `{}` twice", a.name),
                ));
            }
            if a.issuer == b.issuer {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "providers `{}` and `{}` read the same token source and have the same \
                         issuer: a token could not name the one that judges it",
                        a.name, b.name
                    ),
                ));
            }
            if a.opaque && b.opaque {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "providers `{}` and `{}` both take opaque tokens from the same source: \
                         an opaque token could not name the one that judges it",
                        a.name, b.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

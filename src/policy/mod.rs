//! The policy: an ordered list of rules, first match wins. A rule matches requests
//! ([`matcher`]), requires tokens of providers ([`requirement`]), and authorizes what it
//! admitted with scopes and claim conditions ([`condition`], compiled to [`facts`]).
//!
//! A single-issuer configuration is one rule, `default`, that covers every request and
//! requires the one provider, with the top-level `required_scopes` as its scopes.

pub mod condition;
pub mod facts;
pub mod matcher;
pub mod requirement;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{ConfigError, Name, Provider, values::is_scope_token};

use condition::{Condition, RawCondition};
use facts::{Demand, FactCatalog};
use matcher::{MatchNeeds, RawMatch, RequestAttributes, RequestMatch};
use requirement::Requirement;

/// What happens to a request no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// 403, counted as `tokengate.denied.no_rule`: the default.
    #[default]
    Deny,
    /// Forwarded like a `public` rule (identity headers stripped): an explicit choice.
    Public,
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name (metrics: `tokengate.rule.<name>.*`).
    pub name: Name,
    /// The requests it covers.
    pub matcher: RequestMatch,
    /// What it requires.
    pub requires: Requirement,
    /// Scopes every admitted token must grant.
    pub scopes: Vec<String>,
    /// The scopes space-separated, for `scope="..."` of a 403.
    pub scope_string: String,
    /// Claim conditions every admitted token must satisfy.
    pub conditions: Vec<Condition>,
    /// After changing headers, ask the host to recompute the route.
    pub clear_route_cache: bool,
    /// Per provider (by index): what the rule demands of that provider's tokens.
    pub demands: Vec<Demand>,
}

/// The validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// What happens to a request no rule matches.
    pub unmatched: Unmatched,
    /// Per provider (by index): every scope and condition its rules ask for.
    pub catalogs: Vec<FactCatalog>,
}

impl Policy {
    /// The first rule that matches the request; `None`: no rule does.
    pub fn find(&self, request: &RequestAttributes<'_>) -> Option<usize> {
        self.rules
            .iter()
            .position(|rule| rule.matcher.matches(request))
    }

    /// What the host must read from a request for the rules to match it.
    pub fn needs(&self) -> MatchNeeds {
        self.rules
            .iter()
            .fold(MatchNeeds::default(), |needs, rule| {
                needs.union(rule.matcher.needs())
            })
    }

    /// The rule of a single-issuer configuration: every request, provider 0, `scopes`.
    pub fn single(providers: &[Provider], scopes: Vec<String>) -> Result<Policy, ConfigError> {
        let rule = RawRule {
            name: Name::fixed("default"),
            r#match: None,
            requires: serde_json::json!({"provider": providers.first().map_or("", |p| p.name.as_str())}),
            scopes: Some(scopes),
            claims: None,
            clear_route_cache: None,
        };
        parse(vec![rule], Unmatched::Deny, providers, "required_scopes")
    }
}

/// A rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    name: Name,
    r#match: Option<RawMatch>,
    requires: Value,
    scopes: Option<Vec<String>>,
    claims: Option<Vec<RawCondition>>,
    clear_route_cache: Option<bool>,
}

/// Validates the rules. `scope_field` names the field scopes are reported under when the
/// rules come from a single-issuer configuration (`required_scopes`).
pub fn parse(
    raw: Vec<RawRule>,
    unmatched: Unmatched,
    providers: &[Provider],
    scope_field: &str,
) -> Result<Policy, ConfigError> {
    let mut rules: Vec<Rule> = Vec::with_capacity(raw.len());
    let mut catalogs = vec![FactCatalog::default(); providers.len()];
    let single = scope_field == "required_scopes";
    for (index, raw) in raw.into_iter().enumerate() {
        let field = format!("rules[{index}]");
        if rules.iter().any(|rule| rule.name == raw.name) {
            return Err(ConfigError::new(
                format!("{field}.name"),
                format!("`{}` names two rules", raw.name),
            ));
        }
        let matcher = matcher::parse(raw.r#match.unwrap_or_default(), &format!("{field}.match"))?;
        if let Some(earlier) = rules
            .iter()
            .find(|earlier| matcher.is_shadowed_by(&earlier.matcher))
        {
            return Err(ConfigError::new(
                format!("{field}.match"),
                format!(
                    "the rule can never match: every request it covers is covered by rule `{}` before it",
                    earlier.name
                ),
            ));
        }
        let requires = requirement::parse(&raw.requires, providers, &format!("{field}.requires"))?;
        let scopes = raw.scopes.unwrap_or_default();
        for (at, scope) in scopes.iter().enumerate() {
            if !is_scope_token(scope) {
                let name = if single {
                    format!("{scope_field}[{at}]")
                } else {
                    format!("{field}.scopes[{at}]")
                };
                return Err(ConfigError::new(
                    name,
                    "is not a valid scope token (RFC 6749 §3.3)",
                ));
            }
        }
        let mut conditions = Vec::new();
        for (at, raw_condition) in raw.claims.unwrap_or_default().into_iter().enumerate() {
            conditions.push(condition::parse(
                raw_condition,
                &format!("{field}.claims[{at}]"),
            )?);
        }
        if (!scopes.is_empty() || !conditions.is_empty()) && requires.admits_anonymous() {
            return Err(ConfigError::new(
                format!("{field}.requires"),
                "admits requests without a token, which cannot satisfy the rule's `scopes` or `claims`",
            ));
        }
        let mut demands = vec![Demand::default(); providers.len()];
        for provider in requires.providers() {
            let (Some(catalog), Some(slot)) =
                (catalogs.get_mut(provider), demands.get_mut(provider))
            else {
                continue;
            };
            *slot = catalog.demand(&scopes, &conditions).ok_or_else(|| {
                ConfigError::new(
                    format!("{field}.claims"),
                    format!(
                        "the rules ask provider `{}` for more than {} scopes and conditions",
                        providers[provider].name,
                        facts::MAX_FACTS
                    ),
                )
            })?;
        }
        rules.push(Rule {
            name: raw.name,
            matcher,
            requires,
            scope_string: scopes.join(" "),
            scopes,
            conditions,
            clear_route_cache: raw.clear_route_cache.unwrap_or(false),
            demands,
        });
    }
    if rules.is_empty() {
        return Err(ConfigError::new("rules", "must list at least one rule"));
    }
    Ok(Policy {
        rules,
        unmatched,
        catalogs,
    })
}

#[cfg(test)]
mod tests;

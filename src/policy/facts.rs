//! What a provider's verified token says about the rules, computed once at verification.
//!
//! Every scope and claim condition that any rule asks of a provider gets a bit in that
//! provider's [`FactCatalog`]; verifying a token computes which of them it satisfies
//! ([`Facts`]), and that word is what the verified-token and introspection caches keep. A rule
//! is then authorized by two mask comparisons, on a cache hit as on a first sighting, without
//! reading a claim again.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::rejection::{MalformedToken, Rejection};

use super::condition::Condition;

/// The facts a token satisfies, one bit per entry of its provider's catalog.
pub type Facts = u128;

/// Most scopes and conditions one provider's rules may ask for together.
pub const MAX_FACTS: usize = Facts::BITS as usize;

/// The scopes and conditions the rules ask of one provider. Bit `i` is scope `i`; the
/// conditions follow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FactCatalog {
    scopes: Vec<String>,
    conditions: Vec<Condition>,
}

/// What one rule asks of one provider's token, as masks over that provider's catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Demand {
    /// The rule's scopes.
    pub scopes: Facts,
    /// The rule's claim conditions.
    pub conditions: Facts,
}

impl FactCatalog {
    /// Adds what a rule asks and returns its masks; `None` when the catalog would exceed
    /// [`MAX_FACTS`].
    pub fn demand(&mut self, scopes: &[String], conditions: &[Condition]) -> Option<Demand> {
        let mut demand = Demand::default();
        for scope in scopes {
            let at = match self.scopes.iter().position(|s| s == scope) {
                Some(at) => at,
                None => {
                    self.scopes.push(scope.clone());
                    self.scopes.len() - 1
                }
            };
            demand.scopes |= bit(at)?;
        }
        for condition in conditions {
            let at = match self.conditions.iter().position(|c| c == condition) {
                Some(at) => at,
                None => {
                    self.conditions.push(condition.clone());
                    self.conditions.len() - 1
                }
            };
            demand.conditions |= bit(MAX_FACTS.checked_sub(1 + at)?)?;
        }
        if self.scopes.len() + self.conditions.len() > MAX_FACTS {
            return None;
        }
        Some(demand)
    }

    /// The top-level claims the conditions read.
    pub fn condition_claims(&self) -> impl Iterator<Item = &str> {
        self.conditions
            .iter()
            .filter_map(|condition| condition.claim.segments().first().map(String::as_str))
    }

    /// Whether no rule asks anything of this provider.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty() && self.conditions.is_empty()
    }

    /// The facts `claims` satisfy. Scopes come from `scope` (space-separated) and `scp` (an
    /// array or a string); a scope claim of another type is a malformed token.
    pub fn evaluate(&self, claims: &Map<String, Value>) -> Result<Facts, Rejection> {
        let mut facts: Facts = 0;
        if !self.scopes.is_empty() {
            let granted = granted_scopes(claims)?;
            for (at, scope) in self.scopes.iter().enumerate() {
                if granted.contains(scope.as_str()) {
                    facts |= 1 << at;
                }
            }
        }
        for (at, condition) in self.conditions.iter().enumerate() {
            if condition.holds(claims) {
                facts |= 1 << (MAX_FACTS - 1 - at);
            }
        }
        Ok(facts)
    }
}

fn bit(at: usize) -> Option<Facts> {
    (at < MAX_FACTS).then(|| 1 << at)
}

/// `scope` (RFC 8693 / RFC 9068, space-separated) and `scp` (an array or a string).
fn granted_scopes(claims: &Map<String, Value>) -> Result<BTreeSet<&str>, Rejection> {
    let mut granted = BTreeSet::new();
    let malformed = || Rejection::Malformed(MalformedToken::ClaimType);
    for name in ["scope", "scp"] {
        match claims.get(name) {
            None => {}
            Some(Value::String(list)) => granted.extend(list.split(' ').filter(|s| !s.is_empty())),
            Some(Value::Array(items)) if name == "scp" => {
                for item in items {
                    granted.insert(item.as_str().ok_or_else(malformed)?);
                }
            }
            Some(_) => return Err(malformed()),
        }
    }
    Ok(granted)
}

impl Demand {
    /// Whether `facts` meet the demand: `Err` names what is missing.
    pub fn check(&self, facts: Facts) -> Result<(), Rejection> {
        if facts & self.scopes != self.scopes {
            return Err(Rejection::InsufficientScope);
        }
        if facts & self.conditions != self.conditions {
            return Err(Rejection::ClaimConditions);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::condition;

    #[test]
    fn demands_share_bits_and_check_by_mask() {
        let roles = condition::parse(
            serde_json::from_value(json!({"claim": "realm_access.roles", "contains": "admin"}))
                .unwrap(),
            "c",
        )
        .unwrap();
        let mut catalog = FactCatalog::default();
        let read = catalog.demand(&["orders:read".into()], &[]).unwrap();
        let admin = catalog
            .demand(
                &["orders:read".into(), "orders:write".into()],
                std::slice::from_ref(&roles),
            )
            .unwrap();
        assert_eq!(read.scopes, 1);
        assert_eq!(admin.scopes, 0b11);
        assert_eq!(
            catalog.demand(&[], &[roles]).unwrap(),
            Demand {
                scopes: 0,
                conditions: admin.conditions
            }
        );
        let claims = json!({"scope": "openid orders:read", "realm_access": {"roles": ["admin"]}});
        let facts = catalog.evaluate(claims.as_object().unwrap()).unwrap();
        assert_eq!(read.check(facts), Ok(()));
        assert_eq!(admin.check(facts), Err(Rejection::InsufficientScope));
        let claims = json!({"scp": ["orders:read", "orders:write"]});
        let facts = catalog.evaluate(claims.as_object().unwrap()).unwrap();
        assert_eq!(admin.check(facts), Err(Rejection::ClaimConditions));
        let bad = json!({"scope": 42});
        assert!(catalog.evaluate(bad.as_object().unwrap()).is_err());
    }

    #[test]
    fn the_catalog_is_bounded() {
        let mut catalog = FactCatalog::default();
        let scopes: Vec<String> = (0..MAX_FACTS).map(|i| format!("s{i}")).collect();
        assert!(catalog.demand(&scopes, &[]).is_some());
        assert!(catalog.demand(&["one-more".into()], &[]).is_none());
    }
}

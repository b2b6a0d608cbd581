//! Plugin configuration: parsed and validated once, when the host loads the plugin.
//!
//! Every problem is reported as a [`ConfigError`] naming the field (a path such as
//! `jwks.remote.cluster` or `rules[2].requires.any[1].provider`), so that `on_configure` can
//! log one clear line and refuse to start. Unknown fields are errors: a misspelt
//! `claims_to_verfy` must not silently fall back to the default.
//!
//! Two shapes are accepted. A single-issuer configuration has the provider's fields at the top
//! level (`issuer`, `jwks`, ...): it is one provider named `default` and one rule, `default`,
//! requiring it for every request with the top-level `required_scopes`. A policy names its
//! `providers` and lists `rules` ([`crate::policy`]); without `rules`, one rule requires any of
//! the providers for every request. A top-level provider with `rules` is provider `default`.

pub mod backchannel;
mod error;
pub mod forward;
pub mod introspection;
pub mod jwks;
pub mod provider;
pub mod values;

pub use backchannel::{BackchannelLogout, Peer, RELAYED_HEADER, WhenFull};
pub use error::ConfigError;
pub use forward::{
    ClaimHeader, DEGRADED_HEADER, Forwarding, PROVIDER_PROPERTY, PublishedClaim, TokenSource,
};
pub use introspection::Introspection;
pub use jwks::{DiscoveryJwks, JwksSource, Origin, RemoteJwks};
pub use provider::{DEFAULT_CACHE_ENTRIES, Mode, OnIdpError, Provider};
pub use values::{Name, Secret};

use crate::policy::{self, Policy, RawRule, Unmatched};

use provider::{RawProvider, take_provider_fields, with_provider_fields};
use values::{Bounded, NamedMap};

/// `realm` when absent.
pub const DEFAULT_REALM: &str = "tokengate";
/// `retry_after_seconds` when absent.
pub const DEFAULT_RETRY_AFTER_SECONDS: u32 = 5;
/// Most providers one configuration may name.
pub const MAX_PROVIDERS: usize = 32;
/// Most rules one configuration may list.
pub const MAX_RULES: usize = 256;

/// The validated configuration of one plugin instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// The providers, in configuration order (a rule names them by index).
    pub providers: Vec<Provider>,
    /// The rules.
    pub policy: Policy,
    /// `realm` of `WWW-Authenticate`.
    pub realm: String,
    /// `Retry-After` of 503 answers.
    pub retry_after_seconds: u32,
}

impl Config {
    /// Start-up warnings worth a log line (configuration that is allowed but unsafe), each
    /// naming its provider when there are several.
    pub fn warnings(&self) -> Vec<String> {
        let several = self.providers.len() > 1;
        let mut warnings: Vec<String> = self
            .providers
            .iter()
            .flat_map(|provider| {
                provider.warnings().into_iter().map(move |warning| {
                    if several {
                        format!("provider `{}`: {warning}", provider.name)
                    } else {
                        warning
                    }
                })
            })
            .collect();
        if self.policy.unmatched == Unmatched::Public {
            warnings.push(
                "`unmatched` is `public`: requests no rule covers are forwarded without a token check"
                    .to_owned(),
            );
        }
        warnings
    }
}

with_provider_fields! {
    /// The top level as written: a provider's fields (single-issuer form) and the rest.
    struct RawConfig {
        providers: Option<NamedMap<RawProvider>>,
        rules: Option<Vec<RawRule>>,
        unmatched: Option<Unmatched>,
        realm: Option<String>,
        retry_after_seconds: Option<Bounded<1, 3600>>,
        required_scopes: Option<Vec<String>>,
    }
}

/// Parses and validates the plugin configuration (the JSON in the host's `configuration`).
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let raw: RawConfig = error::from_json(bytes)?;
    validate(raw)
}

fn validate(mut raw: RawConfig) -> Result<Config, ConfigError> {
    let realm = raw.realm.take().unwrap_or_else(|| DEFAULT_REALM.to_owned());
    provider::check_realm(&realm)?;
    let retry_after_seconds = u32::try_from(Bounded::or(
        raw.retry_after_seconds,
        u64::from(DEFAULT_RETRY_AFTER_SECONDS),
    ))
    .unwrap_or(DEFAULT_RETRY_AFTER_SECONDS);
    let top_level = take_provider_fields!(raw);
    let unmatched = raw.unmatched.unwrap_or_default();

    let (providers, policy) = match (raw.providers, raw.rules) {
        // A single-issuer configuration.
        (None, None) => {
            if raw.unmatched.is_some() {
                return Err(ConfigError::new(
                    "unmatched",
                    "applies to `rules`; a configuration without rules covers every request",
                ));
            }
            let providers = vec![provider::validate(Name::fixed("default"), top_level)?];
            let policy = Policy::single(&providers, raw.required_scopes.unwrap_or_default())?;
            (providers, policy)
        }
        (named, rules) => {
            if raw.required_scopes.is_some() {
                return Err(ConfigError::new(
                    "required_scopes",
                    "with `providers` or `rules`, scopes belong to a rule: `rules[].scopes`",
                ));
            }
            let providers = match named {
                None => vec![provider::validate(Name::fixed("default"), top_level)?],
                Some(named) => {
                    if let Some(field) = top_level.first_set_field() {
                        return Err(ConfigError::new(
                            field,
                            "with `providers`, provider settings go inside a provider",
                        ));
                    }
                    validate_providers(named)?
                }
            };
            let rules = match rules {
                Some(rules) => rules,
                None => vec![any_provider_rule(&providers)?],
            };
            if rules.len() > MAX_RULES {
                return Err(ConfigError::new(
                    "rules",
                    format!("lists more than {MAX_RULES} rules"),
                ));
            }
            let policy = policy::parse(rules, unmatched, &providers, "rules")?;
            (providers, policy)
        }
    };
    check_logout_paths(&providers)?;
    Ok(Config {
        providers,
        policy,
        realm,
        retry_after_seconds,
    })
}

/// Two providers cannot receive logout tokens on one path: the path names the issuer.
fn check_logout_paths(providers: &[Provider]) -> Result<(), ConfigError> {
    for (index, provider) in providers.iter().enumerate() {
        let Some(path) = provider.backchannel.as_ref().and_then(|b| b.path.as_ref()) else {
            continue;
        };
        let clash = providers[..index]
            .iter()
            .find(|other| other.backchannel.as_ref().and_then(|b| b.path.as_ref()) == Some(path));
        if let Some(other) = clash {
            let field = if providers.len() > 1 {
                format!("providers.{}.backchannel_logout.path", provider.name)
            } else {
                "backchannel_logout.path".to_owned()
            };
            return Err(ConfigError::new(
                field,
                format!(
                    "`{path}` is provider `{}`'s logout path already",
                    other.name
                ),
            ));
        }
    }
    Ok(())
}

fn validate_providers(named: NamedMap<RawProvider>) -> Result<Vec<Provider>, ConfigError> {
    if named.0.is_empty() {
        return Err(ConfigError::new(
            "providers",
            "must name at least one provider",
        ));
    }
    if named.0.len() > MAX_PROVIDERS {
        return Err(ConfigError::new(
            "providers",
            format!("names more than {MAX_PROVIDERS} providers"),
        ));
    }
    named
        .0
        .into_iter()
        .map(|(name, raw)| {
            let prefix = format!("providers.{name}");
            provider::validate(name, raw).map_err(|err| err.within(&prefix))
        })
        .collect()
}

/// Without `rules`: every request needs a token of any of the providers.
fn any_provider_rule(providers: &[Provider]) -> Result<RawRule, ConfigError> {
    let alternatives: Vec<serde_json::Value> = providers
        .iter()
        .map(|p| serde_json::json!({"provider": p.name.as_str()}))
        .collect();
    let rule = serde_json::json!({"name": "default", "requires": {"any": alternatives}});
    serde_json::from_value(rule).map_err(|err| ConfigError::new("providers", err.to_string()))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

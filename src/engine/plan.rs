//! A rule's requirement, compiled for evaluation: each `any` knows, per token source, which
//! providers read it, so a request extracts each token once and hands it to the one provider
//! its issuer names.

use crate::config::{Provider, TokenSource};
use crate::policy::requirement::{Fallback, Requirement};

/// Providers of one `any` that read the same token source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Group {
    /// Index into the engine's distinct token sources.
    pub source: usize,
    /// The providers, in requirement order.
    pub providers: Vec<usize>,
    /// The largest `max_token_bytes` among them: the limit before a provider is chosen.
    pub max_token_bytes: usize,
    /// The one provider taking opaque tokens from this source, if any.
    pub opaque: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    Public,
    Any {
        groups: Vec<Group>,
        nested: Vec<Plan>,
        fallback: Fallback,
    },
    All(Vec<Plan>),
}

/// The distinct token sources of the providers, and each provider's index among them.
pub(super) fn token_sources(providers: &[Provider]) -> (Vec<TokenSource>, Vec<usize>) {
    let mut sources: Vec<TokenSource> = Vec::new();
    let mut of_provider = Vec::with_capacity(providers.len());
    for provider in providers {
        let index = match sources.iter().position(|s| *s == provider.token_source) {
            Some(index) => index,
            None => {
                sources.push(provider.token_source.clone());
                sources.len() - 1
            }
        };
        of_provider.push(index);
    }
    (sources, of_provider)
}

pub(super) fn compile(
    requirement: &Requirement,
    providers: &[Provider],
    source_of: &[usize],
) -> Plan {
    match requirement {
        Requirement::Public => Plan::Public,
        Requirement::Provider(_) => compile_any(
            std::slice::from_ref(requirement),
            Fallback::Refuse,
            providers,
            source_of,
        ),
        Requirement::Any(members, fallback) => {
            compile_any(members, *fallback, providers, source_of)
        }
        Requirement::All(members) => Plan::All(
            members
                .iter()
                .map(|member| compile(member, providers, source_of))
                .collect(),
        ),
    }
}

fn compile_any(
    members: &[Requirement],
    fallback: Fallback,
    providers: &[Provider],
    source_of: &[usize],
) -> Plan {
    let mut groups: Vec<Group> = Vec::new();
    let mut nested = Vec::new();
    for member in members {
        let Requirement::Provider(index) = member else {
            nested.push(compile(member, providers, source_of));
            continue;
        };
        let (Some(provider), Some(&source)) = (providers.get(*index), source_of.get(*index)) else {
            continue;
        };
        let group = match groups.iter_mut().position(|g| g.source == source) {
            Some(at) => &mut groups[at],
            None => {
                groups.push(Group {
                    source,
                    providers: Vec::new(),
                    max_token_bytes: 0,
                    opaque: None,
                });
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        group.providers.push(*index);
        group.max_token_bytes = group.max_token_bytes.max(provider.max_token_bytes);
        if provider.opaque {
            group.opaque = Some(*index);
        }
    }
    Plan::Any {
        groups,
        nested,
        fallback,
    }
}

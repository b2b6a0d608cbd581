//! An admitted request: who it was admitted as, and what to change in it before forwarding.

use std::rc::Rc;

use crate::config::{DEGRADED_HEADER, PROVIDER_PROPERTY, Provider};
use crate::jwt::Verified;
use crate::token_source::HeaderUpdate;

/// One verified identity of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider that verified it (index into the configuration's providers).
    pub provider: usize,
    /// What its verification left behind.
    pub verified: Rc<Verified>,
    /// Admitted without the IdP's verdict (`on_idp_error: allow`).
    pub degraded: bool,
}

/// The identities of a request: usually none (public) or one. The first is held inline so
/// the common case allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identities {
    first: Option<Identity>,
    more: Vec<Identity>,
}

impl Identities {
    /// One identity.
    pub fn one(identity: Identity) -> Identities {
        Identities {
            first: Some(identity),
            more: Vec::new(),
        }
    }

    /// Adds the other's identities after these.
    pub fn extend(&mut self, other: Identities) {
        for identity in other.iter().cloned() {
            if self.first.is_none() {
                self.first = Some(identity);
            } else {
                self.more.push(identity);
            }
        }
    }

    /// In requirement order.
    pub fn iter(&self) -> impl Iterator<Item = &Identity> {
        self.first.iter().chain(self.more.iter())
    }

    /// Whether the request was admitted without any identity.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

/// A header carrying an identity: which provider fills it, from which of its forwarded claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    /// Lower-case header name.
    pub name: String,
    /// (provider, index into its `forward.claims_to_headers`).
    pub sources: Vec<(usize, usize)>,
}

/// Every header that carries an identity, over all providers: a request gets its verified
/// values and never a client-supplied copy of any of them, whichever rule admitted it.
pub fn identity_headers(providers: &[Provider]) -> Vec<IdentityHeader> {
    let mut headers: Vec<IdentityHeader> = Vec::new();
    for (provider, config) in providers.iter().enumerate() {
        for (index, rule) in config.forward.claims_to_headers.iter().enumerate() {
            match headers.iter_mut().find(|h| h.name == rule.header) {
                Some(header) => header.sources.push((provider, index)),
                None => headers.push(IdentityHeader {
                    name: rule.header.clone(),
                    sources: vec![(provider, index)],
                }),
            }
        }
    }
    headers
}

/// An admitted request and what to change in it before forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The rule that admitted it (`None`: no rule matched and `unmatched` is `public`).
    pub rule: Option<usize>,
    /// Who it was admitted as.
    pub identities: Identities,
    /// Token removals asked for by the identities' providers.
    pub strips: Vec<HeaderUpdate>,
}

impl Admission {
    /// Calls `apply` with each header change, in order: for every identity header its value
    /// (from the first identity whose provider forwards it) or `None` (remove a
    /// client-supplied copy), the degraded marker when fail-open is configured anywhere, then
    /// the token removals.
    pub fn for_each_update(
        &self,
        headers: &[IdentityHeader],
        degraded_marker: bool,
        mut apply: impl FnMut(&str, Option<&str>),
    ) {
        for header in headers {
            let value = self.identities.iter().find_map(|identity| {
                header
                    .sources
                    .iter()
                    .find(|(provider, _)| *provider == identity.provider)
                    .map(|(_, index)| {
                        identity
                            .verified
                            .forwarded
                            .get(*index)
                            .and_then(Option::as_deref)
                    })
            });
            apply(&header.name, value.flatten());
        }
        if degraded_marker {
            let degraded = self.identities.iter().any(|identity| identity.degraded);
            apply(DEGRADED_HEADER, degraded.then_some("idp-unavailable"));
        }
        for strip in &self.strips {
            match strip {
                HeaderUpdate::Set(name, value) => apply(name, Some(value)),
                HeaderUpdate::Remove(name) => apply(name, None),
            }
        }
    }

    /// Calls `apply` with each property to publish: for each identity whose provider asks,
    /// its name as `tokengate.provider` and its published claims (the first identity's value
    /// of a property wins).
    pub fn for_each_published(&self, providers: &[Provider], mut apply: impl FnMut(&str, &str)) {
        let mut done: Vec<&str> = Vec::new();
        for identity in self.identities.iter() {
            let Some(provider) = providers.get(identity.provider) else {
                continue;
            };
            let forward = &provider.forward;
            if forward.publish_provider && !done.contains(&PROVIDER_PROPERTY) {
                apply(PROVIDER_PROPERTY, provider.name.as_str());
                done.push(PROVIDER_PROPERTY);
            }
            for (published, value) in forward
                .published_claims
                .iter()
                .zip(&identity.verified.published)
            {
                if let (Some(value), false) = (value, done.contains(&published.property.as_str())) {
                    apply(&published.property, value);
                    done.push(&published.property);
                }
            }
        }
    }

    /// Whether any identity was admitted without the IdP's verdict.
    pub fn is_degraded(&self) -> bool {
        self.identities.iter().any(|identity| identity.degraded)
    }

    /// The first identity's verification, if any.
    pub fn verified(&self) -> Option<&Verified> {
        self.identities
            .iter()
            .next()
            .map(|identity| &*identity.verified)
    }
}

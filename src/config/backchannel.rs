//! OpenID Connect Back-Channel Logout 1.0 for a provider: the endpoint the IdP posts logout
//! tokens to, and how long and how many ended sessions are remembered.

use serde::Deserialize;

use super::error::ConfigError;
use super::values::{Bounded, absolute_path, non_empty};

/// `max_token_age_seconds` when absent: Keycloak's logout tokens live 120 s.
pub const DEFAULT_LOGOUT_TOKEN_AGE_SECONDS: u64 = 120;
/// `max_body_bytes` when absent.
pub const DEFAULT_LOGOUT_BODY_BYTES: u64 = 16 * 1024;
/// `revoke_for_seconds` when absent: an hour, longer than most IdPs' access tokens live.
pub const DEFAULT_REVOKE_FOR_SECONDS: u64 = 3600;
/// `max_entries` when absent.
pub const DEFAULT_MAX_REVOKED: u64 = 100_000;
/// `peers[].timeout_ms` when absent.
pub const DEFAULT_RELAY_TIMEOUT_MS: u64 = 2000;
/// The header a relayed logout token carries, so a peer does not relay it again.
pub const RELAYED_HEADER: &str = "x-tokengate-relayed";

/// What happens when the set of ended sessions is full and another logout arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The oldest entry is forgotten (counted in `tokengate.revocation.dropped`): its
    /// session's tokens, if any still live, are admitted again.
    #[default]
    DropOldest,
    /// Nothing is forgotten: until entries expire, the provider's tokens are refused (503,
    /// `tokengate.denied.revocations_full`), so no ended session can be admitted.
    FailClosed,
}

/// Another gateway replica that must learn of every logout this one receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The Envoy cluster that reaches it.
    pub cluster: String,
    /// The call's `:authority`.
    pub authority: String,
    /// Its logout path.
    pub path: String,
    /// The relay call's timeout.
    pub timeout_ms: u64,
}

/// A provider's back-channel logout settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelLogout {
    /// Where this plugin configuration answers the IdP's POSTs; `None`: another listener's
    /// configuration receives them, this one only refuses ended sessions.
    pub path: Option<String>,
    /// Client ids a logout token's `aud` must contain one of.
    pub audiences: Vec<String>,
    /// A logout token older than this (`iat`) is refused.
    pub max_token_age_seconds: u64,
    /// Larger bodies are refused before parsing.
    pub max_body_bytes: usize,
    /// How long an ended session is remembered: the provider's longest access-token lifetime.
    pub revoke_for_seconds: u64,
    /// Most ended sessions remembered at once.
    pub max_entries: usize,
    /// What a full set does.
    pub when_full: WhenFull,
    /// Replicas every received logout token is relayed to.
    pub peers: Vec<Peer>,
}

/// The wire form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackchannelLogout {
    path: Option<String>,
    audiences: Option<Vec<String>>,
    max_token_age_seconds: Option<Bounded<10, 3600>>,
    max_body_bytes: Option<Bounded<1024, 65536>>,
    revoke_for_seconds: Option<Bounded<60, 604_800>>,
    max_entries: Option<Bounded<1, 1_000_000>>,
    when_full: Option<WhenFull>,
    peers: Option<Vec<RawPeer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    cluster: String,
    authority: String,
    path: Option<String>,
    timeout_ms: Option<Bounded<50, 60_000>>,
}

pub(crate) fn parse_backchannel(
    raw: RawBackchannelLogout,
) -> Result<BackchannelLogout, ConfigError> {
    const FIELD: &str = "backchannel_logout";
    let field = |name: &str| format!("{FIELD}.{name}");
    if let Some(path) = &raw.path {
        absolute_path(&field("path"), path)?;
        if path.contains(['?', '#']) {
            return Err(ConfigError::new(field("path"), "is a path: no `?` or `#`"));
        }
    }
    let audiences = raw.audiences.unwrap_or_default();
    if audiences.is_empty() {
        return Err(ConfigError::new(
            field("audiences"),
            "must name the client ids the IdP sends logout tokens for",
        ));
    }
    for (index, audience) in audiences.iter().enumerate() {
        non_empty(&field(&format!("audiences[{index}]")), audience)?;
    }
    let mut peers = Vec::new();
    for (index, peer) in raw.peers.unwrap_or_default().into_iter().enumerate() {
        let peer_field = |name: &str| field(&format!("peers[{index}].{name}"));
        non_empty(&peer_field("cluster"), &peer.cluster)?;
        non_empty(&peer_field("authority"), &peer.authority)?;
        let path = match (peer.path, &raw.path) {
            (Some(path), _) => path,
            (None, Some(own)) => own.clone(),
            (None, None) => {
                return Err(ConfigError::new(
                    peer_field("path"),
                    "is required when this configuration has no `path` of its own",
                ));
            }
        };
        absolute_path(&peer_field("path"), &path)?;
        peers.push(Peer {
            cluster: peer.cluster,
            authority: peer.authority,
            path,
            timeout_ms: Bounded::or(peer.timeout_ms, DEFAULT_RELAY_TIMEOUT_MS),
        });
    }
    if !peers.is_empty() && raw.path.is_none() {
        return Err(ConfigError::new(
            field("peers"),
            "relays what this configuration receives: it needs a `path`",
        ));
    }
    Ok(BackchannelLogout {
        path: raw.path,
        audiences,
        max_token_age_seconds: Bounded::or(
            raw.max_token_age_seconds,
            DEFAULT_LOGOUT_TOKEN_AGE_SECONDS,
        ),
        max_body_bytes: Bounded::or_usize(raw.max_body_bytes, DEFAULT_LOGOUT_BODY_BYTES),
        revoke_for_seconds: Bounded::or(raw.revoke_for_seconds, DEFAULT_REVOKE_FOR_SECONDS),
        max_entries: Bounded::or_usize(raw.max_entries, DEFAULT_MAX_REVOKED),
        when_full: raw.when_full.unwrap_or_default(),
        peers,
    })
}

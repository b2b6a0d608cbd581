//! Where a provider's keys come from: inline, a fixed remote JWKS, or the issuer's OpenID
//! Connect Discovery document.

use serde::Deserialize;

use crate::algorithm::AlgorithmSet;
use crate::jwks::{JwksError, KeySet};

use super::error::ConfigError;
use super::values::{Bounded, absolute_path, non_empty};

/// `jwks.*.refresh_seconds` when absent.
pub const DEFAULT_JWKS_REFRESH_SECONDS: u64 = 300;
/// `jwks.*.timeout_ms` when absent.
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 2000;
/// Where OpenID Connect Discovery 1.0 §4 puts the provider metadata, under the issuer.
pub const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";

/// A JWKS fetched from a fixed place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// The Envoy cluster to call.
    pub cluster: String,
    /// The call's `:authority`.
    pub authority: String,
    /// The JWKS path.
    pub path: String,
    /// Time between refreshes.
    pub refresh_seconds: u64,
    /// Every fetch's timeout.
    pub timeout_ms: u64,
}

/// A JWKS found through the issuer's OpenID Connect Discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryJwks {
    /// The cluster both documents are fetched through.
    pub cluster: String,
    /// The discovery document's `:authority` (the issuer's host and port by default).
    pub authority: String,
    /// The discovery document's path (the issuer's path + `/.well-known/openid-configuration`).
    pub path: String,
    /// Origins (`scheme://host[:port]`) `jwks_uri` may point to besides the issuer's own.
    pub allowed_jwks_origins: Vec<String>,
    /// Time between refreshes of both documents.
    pub refresh_seconds: u64,
    /// Every fetch's timeout.
    pub timeout_ms: u64,
}

/// Where a provider's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// In the configuration.
    Inline(KeySet),
    /// Fetched from a fixed place.
    Remote(RemoteJwks),
    /// Found through OpenID Connect Discovery.
    Discovery(DiscoveryJwks),
}

impl JwksSource {
    /// The refresh schedule's parameters, for the fetched kinds.
    pub fn refresh(&self) -> Option<(u64, u64)> {
        match self {
            JwksSource::Inline(_) => None,
            JwksSource::Remote(remote) => Some((remote.refresh_seconds, remote.timeout_ms)),
            JwksSource::Discovery(discovery) => {
                Some((discovery.refresh_seconds, discovery.timeout_ms))
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwks {
    inline: Option<serde_json::Value>,
    remote: Option<RawRemoteJwks>,
    discovery: Option<RawDiscovery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteJwks {
    cluster: String,
    authority: String,
    path: String,
    refresh_seconds: Option<Bounded<10, 86_400>>,
    timeout_ms: Option<Bounded<50, 60_000>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    cluster: String,
    authority: Option<String>,
    path: Option<String>,
    allowed_jwks_origins: Option<Vec<String>>,
    refresh_seconds: Option<Bounded<10, 86_400>>,
    timeout_ms: Option<Bounded<50, 60_000>>,
}

pub(crate) fn parse_jwks(
    raw: Option<RawJwks>,
    algorithms: AlgorithmSet,
    issuer: &str,
) -> Result<JwksSource, ConfigError> {
    let Some(raw) = raw else {
        return Err(ConfigError::new(
            "jwks",
            "is required: {\"inline\": {...}}, {\"remote\": {...}} or {\"discovery\": {...}}",
        ));
    };
    match (raw.inline, raw.remote, raw.discovery) {
        (Some(inline), None, None) => {
            let bytes = serde_json::to_vec(&inline)
                .map_err(|err| ConfigError::new("jwks.inline", err.to_string()))?;
            let (keys, skipped) = KeySet::parse(&bytes, algorithms).map_err(|err| match err {
                JwksError::NoUsableKeys { skipped } => ConfigError::new(
                    "jwks.inline",
                    format!("no usable key for the allowed algorithms ({skipped})"),
                ),
                other => ConfigError::new("jwks.inline", other.to_string()),
            })?;
            // A skipped key is a configuration the operator wrote and the filter will not
            // use: warn, with its kid (if any) and the reason, nothing of the key itself.
            for skip in skipped {
                log::warn!("tokengate: inline JWKS: skipped {skip}");
            }
            Ok(JwksSource::Inline(keys))
        }
        (None, Some(remote), None) => {
            non_empty("jwks.remote.cluster", &remote.cluster)?;
            non_empty("jwks.remote.authority", &remote.authority)?;
            absolute_path("jwks.remote.path", &remote.path)?;
            Ok(JwksSource::Remote(RemoteJwks {
                cluster: remote.cluster,
                authority: remote.authority,
                path: remote.path,
                refresh_seconds: Bounded::or(remote.refresh_seconds, DEFAULT_JWKS_REFRESH_SECONDS),
                timeout_ms: Bounded::or(remote.timeout_ms, DEFAULT_JWKS_TIMEOUT_MS),
            }))
        }
        (None, None, Some(discovery)) => parse_discovery(discovery, issuer),
        (None, None, None) => Err(ConfigError::new(
            "jwks",
            "set one of `inline`, `remote` or `discovery`",
        )),
        _ => Err(ConfigError::new(
            "jwks",
            "set only one of `inline`, `remote` or `discovery`",
        )),
    }
}

fn parse_discovery(raw: RawDiscovery, issuer: &str) -> Result<JwksSource, ConfigError> {
    non_empty("jwks.discovery.cluster", &raw.cluster)?;
    let origin = Origin::parse(issuer).ok_or_else(|| {
        ConfigError::new(
            "jwks.discovery",
            "needs an issuer that is an http(s) URL (its discovery document lives under it)",
        )
    })?;
    let authority = match raw.authority {
        Some(authority) => {
            non_empty("jwks.discovery.authority", &authority)?;
            authority
        }
        None => origin.authority.clone(),
    };
    let path = match raw.path {
        Some(path) => {
            absolute_path("jwks.discovery.path", &path)?;
            path
        }
        None => format!("{}{DISCOVERY_SUFFIX}", origin.path.trim_end_matches('/')),
    };
    let mut allowed_jwks_origins = vec![origin.origin()];
    for (index, extra) in raw
        .allowed_jwks_origins
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match Origin::parse(extra) {
            Some(parsed) if parsed.path.is_empty() || parsed.path == "/" => {
                allowed_jwks_origins.push(parsed.origin());
            }
            _ => {
                return Err(ConfigError::new(
                    format!("jwks.discovery.allowed_jwks_origins[{index}]"),
                    "must be an origin: scheme://host[:port]",
                ));
            }
        }
    }
    Ok(JwksSource::Discovery(DiscoveryJwks {
        cluster: raw.cluster,
        authority,
        path,
        allowed_jwks_origins,
        refresh_seconds: Bounded::or(raw.refresh_seconds, DEFAULT_JWKS_REFRESH_SECONDS),
        timeout_ms: Bounded::or(raw.timeout_ms, DEFAULT_JWKS_TIMEOUT_MS),
    }))
}

/// The parts of an `http(s)` URL a discovery check needs: scheme, `host[:port]` and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`, lower case.
    pub scheme: String,
    /// `host[:port]`, the host lower case.
    pub authority: String,
    /// The path (may be empty), without query or fragment.
    pub path: String,
}

impl Origin {
    /// Parses an absolute `http` or `https` URL; `None` for anything else (userinfo included).
    pub fn parse(url: &str) -> Option<Origin> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        let valid = |b: u8| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b);
        if authority.is_empty() || !authority.bytes().all(valid) {
            return None;
        }
        let path = rest.split(['?', '#']).next().unwrap_or("");
        Some(Origin {
            scheme,
            authority: authority.to_ascii_lowercase(),
            path: path.to_owned(),
        })
    }

    /// `scheme://authority`, with the scheme's default port left out.
    pub fn origin(&self) -> String {
        let default_port = if self.scheme == "https" {
            ":443"
        } else {
            ":80"
        };
        let authority = self
            .authority
            .strip_suffix(default_port)
            .unwrap_or(&self.authority);
        format!("{}://{authority}", self.scheme)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::algorithm::Algorithm;
    use crate::testkit::{TestKey, jwks};

    /// Records every log line (the crate's native tests install no other logger).
    struct Capture(Mutex<Vec<(log::Level, String)>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            if let Ok(mut lines) = self.0.lock() {
                lines.push((record.level(), record.args().to_string()));
            }
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

    #[test]
    fn each_skipped_inline_key_is_logged_as_a_warning_with_its_kid_and_reason() {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(log::LevelFilter::Trace);
        let mut encryption = TestKey::rsa_b().public_jwk("enc-key", Some("RS256"));
        encryption["use"] = json!("enc");
        let mut without_kid = TestKey::rsa_b().public_jwk("x", Some("ES256"));
        without_kid.as_object_mut().map(|key| key.remove("kid"));
        let keys = [
            TestKey::rsa_a().public_jwk("a", Some("RS256")),
            encryption,
            without_kid,
        ];
        let raw: RawJwks = serde_json::from_value(json!({"inline": jwks(&keys)})).unwrap();
        let mut algorithms = AlgorithmSet::EMPTY;
        algorithms.insert(Algorithm::Rs256);
        parse_jwks(Some(raw), algorithms, "https://idp.example").unwrap();

        let lines = CAPTURE.0.lock().unwrap().clone();
        let skipped: Vec<_> = lines
            .iter()
            .filter(|(_, line)| line.starts_with("tokengate: inline JWKS: skipped"))
            .collect();
        assert_eq!(skipped.len(), 2, "{lines:?}");
        assert!(skipped.iter().all(|(level, _)| *level == log::Level::Warn));
        assert_eq!(
            skipped[0].1,
            "tokengate: inline JWKS: skipped kid \"enc-key\": use \"enc\" is not for signatures"
        );
        assert!(
            skipped[1]
                .1
                .starts_with("tokengate: inline JWKS: skipped key without kid: "),
            "{skipped:?}"
        );
        // Nothing of the key material.
        let modulus = keys[0]["n"].as_str().unwrap();
        assert!(
            !skipped
                .iter()
                .any(|(_, line)| line.contains(&modulus[..16]))
        );
    }
}

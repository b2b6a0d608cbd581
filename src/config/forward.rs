//! Where a provider's token is read from, and what an admitted request carries upstream.

use serde::Deserialize;

use crate::jwt::ClaimPath;

use super::error::{ConfigError, join};
use super::values::{is_header_name, is_unreserved_url_byte};

/// Header marking a request admitted without verification (`on_idp_error: allow`).
pub const DEGRADED_HEADER: &str = "x-tokengate-degraded";

/// Where the bearer token is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// A request header. `prefix` is matched ASCII-case-insensitively; when it ends in a space,
    /// any number of further spaces may follow (RFC 6750: `Bearer` is a case-insensitive scheme
    /// followed by one or more spaces). An empty prefix means the whole value is the token.
    Header {
        /// Lower-case header name.
        name: String,
        /// What precedes the token.
        prefix: String,
    },
    /// A query parameter (`access_token` in RFC 6750 §2.3).
    Query {
        /// The parameter's name.
        name: String,
    },
    /// A cookie.
    Cookie {
        /// The cookie's name.
        name: String,
    },
}

impl Default for TokenSource {
    fn default() -> Self {
        TokenSource::Header {
            name: "authorization".to_owned(),
            prefix: "Bearer ".to_owned(),
        }
    }
}

/// One claim forwarded as a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    /// Path of the claim: `sub`, or `realm_access.roles` for nested objects.
    pub claim: ClaimPath,
    /// Lower-case header name.
    pub header: String,
}

/// One claim published for the host's other filters and its access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedClaim {
    /// Where the claim is.
    pub claim: ClaimPath,
    /// The property it is published as: `tokengate.<name>` (in Envoy, filter state
    /// `wasm.tokengate.<name>`).
    pub property: String,
}

/// What an admitted request carries upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forwarding {
    /// Remove the token before forwarding.
    pub strip_token: bool,
    /// Claims copied into headers.
    pub claims_to_headers: Vec<ClaimHeader>,
    /// Publish the provider's name as property `tokengate.provider`.
    pub publish_provider: bool,
    /// Claims published as properties.
    pub published_claims: Vec<PublishedClaim>,
}

/// The property the verifying provider's name is published as.
pub const PROVIDER_PROPERTY: &str = "tokengate.provider";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTokenSource {
    header: Option<String>,
    prefix: Option<String>,
    query: Option<String>,
    cookie: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForward {
    strip_authorization: Option<bool>,
    claims_to_headers: Option<Vec<RawClaimHeader>>,
    filter_state: Option<RawFilterState>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilterState {
    provider: Option<bool>,
    claims: Option<Vec<RawPublishedClaim>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublishedClaim {
    claim: ClaimPath,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimHeader {
    claim: ClaimPath,
    header: String,
}

pub(crate) fn parse_token_source(raw: Option<RawTokenSource>) -> Result<TokenSource, ConfigError> {
    let Some(raw) = raw else {
        return Ok(TokenSource::default());
    };
    let chosen = [
        raw.header.is_some(),
        raw.query.is_some(),
        raw.cookie.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if chosen != 1 {
        return Err(ConfigError::new(
            "token_source",
            "set exactly one of `header`, `query` or `cookie`",
        ));
    }
    if raw.prefix.is_some() && raw.header.is_none() {
        return Err(ConfigError::new(
            "token_source.prefix",
            "applies only to a `header` source",
        ));
    }
    if let Some(header) = raw.header {
        if !is_header_name(&header) {
            return Err(ConfigError::new(
                "token_source.header",
                "is not a valid HTTP header name",
            ));
        }
        let name = header.to_ascii_lowercase();
        let prefix = match raw.prefix {
            Some(prefix) => prefix,
            None if name == "authorization" => "Bearer ".to_owned(),
            None => String::new(),
        };
        if prefix.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            return Err(ConfigError::new(
                "token_source.prefix",
                "must be printable ASCII",
            ));
        }
        return Ok(TokenSource::Header { name, prefix });
    }
    if let Some(name) = raw.query {
        if name.is_empty() || !name.bytes().all(is_unreserved_url_byte) {
            return Err(ConfigError::new(
                "token_source.query",
                "must be a non-empty parameter name of unreserved URL characters",
            ));
        }
        return Ok(TokenSource::Query { name });
    }
    let name = raw.cookie.unwrap_or_default();
    if !is_header_name(&name) {
        return Err(ConfigError::new(
            "token_source.cookie",
            "is not a valid cookie name",
        ));
    }
    Ok(TokenSource::Cookie { name })
}

pub(crate) fn parse_forward(
    raw: Option<RawForward>,
    token_source: &TokenSource,
) -> Result<Forwarding, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Forwarding::default());
    };
    let mut claims_to_headers: Vec<ClaimHeader> = Vec::new();
    for (index, rule) in raw
        .claims_to_headers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let field = |name: &str| join(&format!("forward.claims_to_headers[{index}]"), name);
        let header = rule.header.to_ascii_lowercase();
        if !is_header_name(&header) || header.starts_with(':') {
            return Err(ConfigError::new(
                field("header"),
                "is not a valid HTTP header name",
            ));
        }
        if is_protected_header(&header, token_source) {
            return Err(ConfigError::new(
                field("header"),
                format!("`{header}` cannot carry a claim"),
            ));
        }
        if claims_to_headers
            .iter()
            .any(|existing| existing.header == header)
        {
            return Err(ConfigError::new(
                field("header"),
                format!("`{header}` is used twice"),
            ));
        }
        claims_to_headers.push(ClaimHeader {
            claim: rule.claim,
            header,
        });
    }
    let filter_state = raw.filter_state;
    let publish_provider = filter_state
        .as_ref()
        .and_then(|state| state.provider)
        .unwrap_or(false);
    let mut published_claims: Vec<PublishedClaim> = Vec::new();
    let claims = filter_state
        .and_then(|state| state.claims)
        .unwrap_or_default();
    for (index, published) in claims.into_iter().enumerate() {
        let field = format!("forward.filter_state.claims[{index}].name");
        let valid = !published.name.is_empty()
            && published.name.len() <= 64
            && published
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
        if !valid || published.name == "provider" {
            return Err(ConfigError::new(
                field,
                "must be 1-64 characters of a-z, 0-9, `_`, `-`, `.`, and not `provider`",
            ));
        }
        let property = format!("tokengate.{}", published.name);
        if published_claims.iter().any(|p| p.property == property) {
            return Err(ConfigError::new(
                field,
                format!("`{}` is used twice", published.name),
            ));
        }
        published_claims.push(PublishedClaim {
            claim: published.claim,
            property,
        });
    }
    Ok(Forwarding {
        strip_token: raw.strip_authorization.unwrap_or(false),
        claims_to_headers,
        publish_provider,
        published_claims,
    })
}

fn is_protected_header(header: &str, token_source: &TokenSource) -> bool {
    const PROTECTED: [&str; 7] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "cookie",
        "te",
        "upgrade",
    ];
    let token_header = match token_source {
        TokenSource::Header { name, .. } => name == header,
        _ => false,
    };
    token_header
        || header == "authorization"
        || header == DEGRADED_HEADER
        || PROTECTED.contains(&header)
}

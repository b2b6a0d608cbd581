//! Why a request is refused, and the one mapping from that to an HTTP response (RFC 6750).
//!
//! Descriptions are fixed strings: nothing from the token or the request is echoed into a
//! header, a body or a log line.

use std::fmt;

/// A problem with how the request carries its credentials (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestProblem {
    /// More than one token: repeated header, parameter or cookie.
    MultipleTokens,
    /// The scheme is present but no token follows it.
    EmptyToken,
    /// The token contains characters outside RFC 6750's `b64token`.
    InvalidCharacters,
}

/// Why a token is not a well-formed, acceptable JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedToken {
    /// Not three dot-separated segments.
    Structure,
    /// Five segments: an encrypted token (JWE), which the gateway cannot read.
    Encrypted,
    /// A segment is not canonical unpadded base64url.
    Base64,
    /// The header is not a JSON object of the expected shape.
    Header,
    /// `cty` names a nested or non-JSON payload.
    ContentType,
    /// `crit` lists extensions; none are understood, so the token must be refused.
    CriticalHeader,
    /// `b64: false` (RFC 7797 unencoded payload).
    UnencodedPayload,
    /// The payload is not a JSON object, has a duplicate claim, or a non-numeric time claim.
    Claims,
    /// A claim the gateway checks (`iss`, `aud`, `typ`, `scope`) has the wrong JSON type.
    ClaimType,
}

/// The reasons a request is refused. Each maps to one metric and one response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No credentials at all: 401 with a bare challenge.
    MissingToken,
    /// The request carries its credentials wrongly (400).
    InvalidRequest(RequestProblem),
    /// The token is longer than `max_token_bytes`.
    TokenTooLarge {
        /// The token's length in bytes.
        length: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The token is not a well-formed, acceptable JWS.
    Malformed(MalformedToken),
    /// `alg` outside the allowlist (including `none`), or not allowed for the selected key.
    DisallowedAlgorithm,
    /// No key with the token's `kid`.
    UnknownKey,
    /// The signature does not verify with the selected key.
    BadSignature,
    /// `exp` is verified and absent.
    MissingExpiration,
    /// `exp` is past (beyond the clock skew).
    Expired,
    /// `nbf` is in the future (beyond the clock skew).
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` holds no accepted audience.
    WrongAudience,
    /// Not an access token (header or payload `typ`).
    WrongTokenType,
    /// A required scope is not granted (403).
    InsufficientScope,
    /// The token's claims do not meet the rule's claim conditions (403).
    ClaimConditions,
    /// No rule of the policy covers the request (403).
    NoRule,
    /// A claim to forward holds a value that cannot be a header value (control characters).
    UnforwardableClaim,
    /// No signing keys have been loaded yet: the gateway cannot judge any token.
    KeysUnavailable,
    /// The host's clock reads a time before this filter existed (a host bug seen in the
    /// wild): no token's lifetime can be judged, so none is admitted.
    ClockUnavailable,
    /// The IdP's introspection answered `active: false` (expired, revoked, unknown, ...).
    Inactive,
    /// The token's session ended: the IdP said so through back-channel logout.
    SessionEnded,
    /// The provider's set of ended sessions is full and fails closed: none of its tokens can
    /// be judged until entries expire.
    RevocationsFull,
    /// The IdP could not answer an introspection: the gateway cannot judge the token.
    IdpUnavailable(IdpFailure),
}

/// Why an introspection call produced no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdpFailure {
    /// No answer within the call's timeout.
    Timeout,
    /// Connection refused or reset, or no healthy upstream.
    Unreachable,
    /// The IdP answered with a 5xx status.
    ServerError,
    /// The IdP refused the gateway's client credentials (401/403): a configuration problem.
    ClientAuth,
    /// An answer that is not an RFC 7662 response (not JSON, no boolean `active`, other status).
    BadResponse,
    /// Too many introspection calls already open on this worker.
    Overloaded,
}

impl IdpFailure {
    /// Every failure kind, in metric order.
    pub const ALL: [IdpFailure; 6] = [
        IdpFailure::Timeout,
        IdpFailure::Unreachable,
        IdpFailure::ServerError,
        IdpFailure::ClientAuth,
        IdpFailure::BadResponse,
        IdpFailure::Overloaded,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            IdpFailure::Timeout => "timeout",
            IdpFailure::Unreachable => "unreachable",
            IdpFailure::ServerError => "server_error",
            IdpFailure::ClientAuth => "client_auth",
            IdpFailure::BadResponse => "bad_response",
            IdpFailure::Overloaded => "overloaded",
        }
    }

    /// Position in [`IdpFailure::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Metric label of a rejection: `tokengate.denied.<reason>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// No credentials.
    Missing,
    /// 400 `invalid_request`.
    InvalidRequest,
    /// Token over the size limit.
    TooLarge,
    /// Not a well-formed JWS.
    Malformed,
    /// Algorithm not allowed.
    Algorithm,
    /// Unknown `kid`.
    UnknownKid,
    /// Signature does not verify.
    BadSignature,
    /// `exp` missing.
    MissingExp,
    /// `exp` past.
    Expired,
    /// `nbf` future.
    NotYetValid,
    /// Wrong issuer.
    Issuer,
    /// Wrong audience.
    Audience,
    /// Not an access token.
    TokenType,
    /// Scope missing.
    Scope,
    /// Claim conditions not met.
    Claims,
    /// No rule covers the request.
    NoRule,
    /// A claim that cannot be forwarded.
    ClaimValue,
    /// No keys loaded yet.
    KeysUnavailable,
    /// The host's clock is implausible.
    ClockUnavailable,
    /// Introspection said inactive.
    Inactive,
    /// The session ended (back-channel logout).
    SessionEnded,
    /// The ended-session set is full (fail closed).
    RevocationsFull,
    /// The IdP could not answer.
    IdpUnavailable,
}

impl DenyReason {
    /// Every reason, in metric order.
    pub const ALL: [DenyReason; 23] = [
        DenyReason::Missing,
        DenyReason::InvalidRequest,
        DenyReason::TooLarge,
        DenyReason::Malformed,
        DenyReason::Algorithm,
        DenyReason::UnknownKid,
        DenyReason::BadSignature,
        DenyReason::MissingExp,
        DenyReason::Expired,
        DenyReason::NotYetValid,
        DenyReason::Issuer,
        DenyReason::Audience,
        DenyReason::TokenType,
        DenyReason::Scope,
        DenyReason::Claims,
        DenyReason::NoRule,
        DenyReason::ClaimValue,
        DenyReason::KeysUnavailable,
        DenyReason::ClockUnavailable,
        DenyReason::Inactive,
        DenyReason::SessionEnded,
        DenyReason::RevocationsFull,
        DenyReason::IdpUnavailable,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Missing => "missing",
            DenyReason::InvalidRequest => "invalid_request",
            DenyReason::TooLarge => "too_large",
            DenyReason::Malformed => "malformed",
            DenyReason::Algorithm => "algorithm",
            DenyReason::UnknownKid => "unknown_kid",
            DenyReason::BadSignature => "bad_signature",
            DenyReason::MissingExp => "missing_exp",
            DenyReason::Expired => "expired",
            DenyReason::NotYetValid => "not_yet_valid",
            DenyReason::Issuer => "issuer",
            DenyReason::Audience => "audience",
            DenyReason::TokenType => "token_type",
            DenyReason::Scope => "scope",
            DenyReason::Claims => "claims",
            DenyReason::NoRule => "no_rule",
            DenyReason::ClaimValue => "claim_value",
            DenyReason::KeysUnavailable => "keys_unavailable",
            DenyReason::ClockUnavailable => "clock_unavailable",
            DenyReason::Inactive => "inactive",
            DenyReason::SessionEnded => "session_ended",
            DenyReason::RevocationsFull => "revocations_full",
            DenyReason::IdpUnavailable => "idp_unavailable",
        }
    }

    /// Position in [`DenyReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// RFC 6750 §3.1 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400.
    InvalidRequest,
    /// 401.
    InvalidToken,
    /// 403.
    InsufficientScope,
}

impl ErrorCode {
    /// The RFC 6750 error code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
        }
    }
}

impl Rejection {
    /// The metric label of this rejection.
    pub fn reason(&self) -> DenyReason {
        match self {
            Rejection::MissingToken => DenyReason::Missing,
            Rejection::InvalidRequest(_) => DenyReason::InvalidRequest,
            Rejection::TokenTooLarge { .. } => DenyReason::TooLarge,
            Rejection::Malformed(_) => DenyReason::Malformed,
            Rejection::DisallowedAlgorithm => DenyReason::Algorithm,
            Rejection::UnknownKey => DenyReason::UnknownKid,
            Rejection::BadSignature => DenyReason::BadSignature,
            Rejection::MissingExpiration => DenyReason::MissingExp,
            Rejection::Expired => DenyReason::Expired,
            Rejection::NotYetValid => DenyReason::NotYetValid,
            Rejection::WrongIssuer => DenyReason::Issuer,
            Rejection::WrongAudience => DenyReason::Audience,
            Rejection::WrongTokenType => DenyReason::TokenType,
            Rejection::InsufficientScope => DenyReason::Scope,
            Rejection::ClaimConditions => DenyReason::Claims,
            Rejection::NoRule => DenyReason::NoRule,
            Rejection::UnforwardableClaim => DenyReason::ClaimValue,
            Rejection::KeysUnavailable => DenyReason::KeysUnavailable,
            Rejection::ClockUnavailable => DenyReason::ClockUnavailable,
            Rejection::Inactive => DenyReason::Inactive,
            Rejection::SessionEnded => DenyReason::SessionEnded,
            Rejection::RevocationsFull => DenyReason::RevocationsFull,
            Rejection::IdpUnavailable(_) => DenyReason::IdpUnavailable,
        }
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> u16 {
        match self.error_code() {
            Some(ErrorCode::InvalidRequest) => 400,
            Some(ErrorCode::InsufficientScope) => 403,
            Some(ErrorCode::InvalidToken) | None => match self {
                Rejection::KeysUnavailable
                | Rejection::ClockUnavailable
                | Rejection::RevocationsFull
                | Rejection::IdpUnavailable(_) => 503,
                Rejection::NoRule => 403,
                _ => 401,
            },
        }
    }

    /// The RFC 6750 `error` code, if the response has one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Rejection::MissingToken
            | Rejection::KeysUnavailable
            | Rejection::ClockUnavailable
            | Rejection::RevocationsFull
            | Rejection::IdpUnavailable(_)
            | Rejection::NoRule => None,
            Rejection::InvalidRequest(_) => Some(ErrorCode::InvalidRequest),
            Rejection::InsufficientScope | Rejection::ClaimConditions => {
                Some(ErrorCode::InsufficientScope)
            }
            _ => Some(ErrorCode::InvalidToken),
        }
    }

    /// A fixed, human-readable description (RFC 6750 `error_description`).
    pub fn description(&self) -> &'static str {
        match self {
            Rejection::MissingToken => "The request carries no bearer token",
            Rejection::InvalidRequest(RequestProblem::MultipleTokens) => {
                "The request carries more than one token"
            }
            Rejection::InvalidRequest(RequestProblem::EmptyToken) => {
                "The authorization scheme is not followed by a token"
            }
            Rejection::InvalidRequest(RequestProblem::InvalidCharacters) => {
                "The token contains characters that are not allowed"
            }
            Rejection::TokenTooLarge { .. } => "The token is too large",
            Rejection::Malformed(MalformedToken::Encrypted) => {
                "Encrypted tokens (JWE) are not accepted"
            }
            Rejection::Malformed(MalformedToken::CriticalHeader) => {
                "The token requires unsupported header extensions"
            }
            Rejection::Malformed(MalformedToken::UnencodedPayload) => {
                "Unencoded payloads are not accepted"
            }
            Rejection::Malformed(MalformedToken::ContentType) => {
                "The token content type is not supported"
            }
            Rejection::Malformed(MalformedToken::Claims | MalformedToken::ClaimType) => {
                "The token claims are malformed"
            }
            Rejection::Malformed(_) => "The token is malformed",
            Rejection::DisallowedAlgorithm => "The token signing algorithm is not allowed",
            Rejection::UnknownKey => "The token signing key is unknown",
            Rejection::BadSignature => "The token signature is invalid",
            Rejection::MissingExpiration => "The token has no expiration time",
            Rejection::Expired => "The token expired",
            Rejection::NotYetValid => "The token is not valid yet",
            Rejection::WrongIssuer => "The token issuer is not accepted",
            Rejection::WrongAudience => "The token audience is not accepted",
            Rejection::WrongTokenType => "The token is not an access token",
            Rejection::InsufficientScope => "The token lacks a required scope",
            Rejection::ClaimConditions => "The token's claims do not grant access to this resource",
            Rejection::NoRule => "No rule of the gateway's policy covers this request",
            Rejection::UnforwardableClaim => "A token claim cannot be forwarded",
            Rejection::KeysUnavailable => "Token signing keys are not available yet",
            Rejection::ClockUnavailable => "The gateway's clock cannot judge token lifetimes",
            Rejection::Inactive => "The token is not active",
            Rejection::SessionEnded => "The token's session has ended",
            Rejection::RevocationsFull => "The gateway cannot record more ended sessions",
            Rejection::IdpUnavailable(_) => "The identity provider cannot be reached",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason().as_str(), self.description())
    }
}

/// A complete response to send instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: String,
}

/// Context a response needs beyond the rejection itself.
#[derive(Debug, Clone, Copy)]
pub struct ResponseContext<'a> {
    /// `realm` of `WWW-Authenticate`.
    pub realm: &'a str,
    /// Sent as `scope="..."` on 403 `insufficient_scope`.
    pub required_scope: &'a str,
    /// `Retry-After` of 503 responses, in seconds.
    pub retry_after_seconds: u32,
}

/// The one mapping from a rejection to status, `WWW-Authenticate` and body.
///
/// `realm` and `required_scope` are validated at configuration time to be safe inside a
/// quoted-string; descriptions are constants without quotes.
pub fn deny_response(rejection: &Rejection, context: &ResponseContext<'_>) -> DenyResponse {
    let status = rejection.status();
    let mut headers: Vec<(&'static str, String)> =
        vec![("content-type", "application/json".to_owned())];
    let body = match rejection.error_code() {
        Some(code) => {
            let mut challenge = format!(
                "Bearer realm=\"{}\", error=\"{}\", error_description=\"{}\"",
                context.realm,
                code.as_str(),
                rejection.description()
            );
            if *rejection == Rejection::InsufficientScope && !context.required_scope.is_empty() {
                challenge.push_str(&format!(", scope=\"{}\"", context.required_scope));
            }
            headers.push(("www-authenticate", challenge));
            json_body(code.as_str(), rejection.description())
        }
        None if status == 503 => {
            headers.push(("retry-after", context.retry_after_seconds.to_string()));
            json_body("temporarily_unavailable", rejection.description())
        }
        // Not about the token: no challenge (RFC 6750 describes the token's problems only).
        None if status == 403 => json_body("access_denied", rejection.description()),
        None => {
            headers.push((
                "www-authenticate",
                format!("Bearer realm=\"{}\"", context.realm),
            ));
            json_body("unauthorized", rejection.description())
        }
    };
    headers.push(("cache-control", "no-store".to_owned()));
    DenyResponse {
        status,
        headers,
        body,
    }
}

fn json_body(error: &str, description: &str) -> String {
    serde_json::json!({ "error": error, "error_description": description }).to_string()
}

#[cfg(test)]
mod tests;

//! The scenarios of the matrix and what each gateway is expected to answer to each.
//!
//! Two notions of "expected" are kept apart:
//! - the **expected outcome** of a cell: what this gateway, as configured, answers (jwt-no-exp
//!   answers 200 to an expired token — that is its known behaviour). Anything else is an
//!   *unexpected outcome* (a bug, an outage), counted in the performance table;
//! - the **secure outcome** of a token kind: every token but a valid one must be refused. A
//!   gateway that admits one has a security **GAP**; a GAP is *known* when the gateway is
//!   documented to have it (jwt-no-exp and expiry; local validation and revocation).

use hyper::header::HeaderMap;
use serde::Serialize;

use crate::driver::{Classifier, Outcome};

/// What a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenKind {
    Valid,
    Expired,
    InvalidSignature,
    Malformed,
    Missing,
    Revoked,
    AlgNone,
    WrongAudience,
}

impl TokenKind {
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Valid => "valid",
            TokenKind::Expired => "expired",
            TokenKind::InvalidSignature => "invalid-signature",
            TokenKind::Malformed => "malformed",
            TokenKind::Missing => "missing",
            TokenKind::Revoked => "revoked",
            TokenKind::AlgNone => "alg-none",
            TokenKind::WrongAudience => "wrong-audience",
        }
    }
}

/// One scenario: a kind of request at Keycloak or through a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    GenerateToken,
    IntrospectValid,
    IntrospectExpired,
    IntrospectInvalid,
    Api(TokenKind),
}

pub const KEYCLOAK_SCENARIOS: [Scenario; 4] = [
    Scenario::GenerateToken,
    Scenario::IntrospectValid,
    Scenario::IntrospectExpired,
    Scenario::IntrospectInvalid,
];

pub const API_SCENARIOS: [Scenario; 8] = [
    Scenario::Api(TokenKind::Valid),
    Scenario::Api(TokenKind::Expired),
    Scenario::Api(TokenKind::InvalidSignature),
    Scenario::Api(TokenKind::Malformed),
    Scenario::Api(TokenKind::Missing),
    Scenario::Api(TokenKind::Revoked),
    Scenario::Api(TokenKind::AlgNone),
    Scenario::Api(TokenKind::WrongAudience),
];

impl Scenario {
    pub fn name(self) -> String {
        match self {
            Scenario::GenerateToken => "generate-token".to_owned(),
            Scenario::IntrospectValid => "introspect-valid".to_owned(),
            Scenario::IntrospectExpired => "introspect-expired".to_owned(),
            Scenario::IntrospectInvalid => "introspect-invalid".to_owned(),
            Scenario::Api(kind) => format!("api-{}", kind.name()),
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        KEYCLOAK_SCENARIOS
            .iter()
            .chain(API_SCENARIOS.iter())
            .copied()
            .find(|scenario| scenario.name() == name)
    }

    /// Whether the scenario goes through a gateway (else straight at Keycloak).
    pub fn through_gateway(self) -> bool {
        matches!(self, Scenario::Api(_))
    }
}

/// How a gateway treats tokens: what decides its expected outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GatewayProfile {
    pub name: &'static str,
    /// Checks credentials at all (no-auth does not: it is the baseline).
    pub authenticates: bool,
    pub checks_expiry: bool,
    /// Asks the IdP, so it sees revocation.
    pub sees_revocation: bool,
    /// Status for a token issued for another audience (Envoy's jwt_authn answers 403).
    pub wrong_audience_status: u16,
    /// Misconfigured on purpose: its GAPs are expected and do not fail a run.
    pub known_insecure: bool,
}

pub const GATEWAYS: [GatewayProfile; 7] = [
    GatewayProfile {
        name: "no-auth",
        authenticates: false,
        checks_expiry: false,
        sees_revocation: false,
        wrong_audience_status: 200,
        known_insecure: false,
    },
    GatewayProfile {
        name: "native-jwt",
        authenticates: true,
        checks_expiry: true,
        sees_revocation: false,
        wrong_audience_status: 403,
        known_insecure: false,
    },
    GatewayProfile {
        name: "jwt",
        authenticates: true,
        checks_expiry: true,
        sees_revocation: false,
        wrong_audience_status: 401,
        known_insecure: false,
    },
    GatewayProfile {
        name: "jwt-no-exp",
        authenticates: true,
        checks_expiry: false,
        sees_revocation: false,
        wrong_audience_status: 401,
        known_insecure: true,
    },
    GatewayProfile {
        name: "introspect",
        authenticates: true,
        checks_expiry: true,
        sees_revocation: true,
        wrong_audience_status: 401,
        known_insecure: false,
    },
    GatewayProfile {
        name: "hybrid",
        authenticates: true,
        checks_expiry: true,
        sees_revocation: true,
        wrong_audience_status: 401,
        known_insecure: false,
    },
    // Two providers and per-route rules (envoy/policy.yaml); the API scenarios' /api/orders
    // takes either provider's token, validated locally, as `jwt` does.
    GatewayProfile {
        name: "policy",
        authenticates: true,
        checks_expiry: true,
        sees_revocation: false,
        wrong_audience_status: 401,
        known_insecure: false,
    },
];

pub fn profile(gateway: &str) -> Option<&'static GatewayProfile> {
    GATEWAYS.iter().find(|profile| profile.name == gateway)
}

/// RFC 6750 error expected in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Challenge {
    /// No challenge to check (2xx, or a status without RFC 6750 semantics).
    None,
    /// `Bearer` without an error code (no credentials).
    Bare,
    /// `error="invalid_token"`.
    InvalidToken,
}

/// What one cell must answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expectation {
    pub status: u16,
    pub challenge: Challenge,
    /// Why this gateway admits a token that must be refused, when it is documented to.
    pub known_gap: Option<&'static str>,
}

impl Expectation {
    fn status(status: u16) -> Expectation {
        Expectation {
            status,
            challenge: Challenge::None,
            known_gap: None,
        }
    }
}

/// What `gateway` answers to requests carrying `kind`.
pub fn expectation(gateway: &GatewayProfile, kind: TokenKind) -> Expectation {
    if !gateway.authenticates {
        return Expectation::status(200);
    }
    let refused = Expectation {
        status: 401,
        challenge: Challenge::InvalidToken,
        known_gap: None,
    };
    match kind {
        TokenKind::Valid => Expectation::status(200),
        TokenKind::Missing => Expectation {
            status: 401,
            challenge: Challenge::Bare,
            known_gap: None,
        },
        TokenKind::Expired if !gateway.checks_expiry => Expectation {
            known_gap: Some("exp is not verified (misconfigured on purpose)"),
            ..Expectation::status(200)
        },
        TokenKind::Revoked if !gateway.sees_revocation => Expectation {
            known_gap: Some("local validation cannot see revocation"),
            ..Expectation::status(200)
        },
        TokenKind::WrongAudience if gateway.wrong_audience_status != 401 => {
            Expectation::status(gateway.wrong_audience_status)
        }
        _ => refused,
    }
}

/// The verdict a gateway must earn for `kind`: a GAP exactly where it is documented to have one
/// (jwt-no-exp and expiry, local validation and revocation), a PASS everywhere else.
pub fn expected_verdict(gateway: &GatewayProfile, kind: TokenKind) -> Verdict {
    if !gateway.authenticates {
        Verdict::NotApplicable
    } else if expectation(gateway, kind).known_gap.is_some() {
        Verdict::Gap
    } else {
        Verdict::Pass
    }
}

/// Judges gateway responses against an expectation: the status, and for 401 the RFC 6750
/// challenge.
#[derive(Debug, Clone)]
pub struct ExpectationClassifier {
    pub expectation: Expectation,
}

impl Classifier for ExpectationClassifier {
    fn classify(&self, status: u16, headers: &HeaderMap) -> Outcome {
        if status != self.expectation.status {
            return Outcome::Unexpected;
        }
        let challenge = headers
            .get(hyper::header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok());
        let matches = match self.expectation.challenge {
            Challenge::None => true,
            Challenge::Bare => {
                challenge.is_some_and(|c| c.starts_with("Bearer") && !c.contains("error="))
            }
            Challenge::InvalidToken => {
                challenge.is_some_and(|c| c.contains("error=\"invalid_token\""))
            }
        };
        if matches {
            Outcome::Expected
        } else {
            Outcome::Unexpected
        }
    }
}

/// The security verdict of a (gateway, token kind) cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Valid tokens admitted, every other kind refused.
    Pass,
    /// A token that must be refused was admitted.
    Gap,
    /// A valid token was refused (availability, not security).
    Fail,
    /// The gateway does not authenticate (the no-auth baseline).
    NotApplicable,
}

/// The verdict from the status counts of a cell.
pub fn verdict(gateway: &GatewayProfile, kind: TokenKind, admitted: u64, refused: u64) -> Verdict {
    if !gateway.authenticates {
        return Verdict::NotApplicable;
    }
    match kind {
        TokenKind::Valid if refused > 0 || admitted == 0 => Verdict::Fail,
        TokenKind::Valid => Verdict::Pass,
        _ if admitted > 0 => Verdict::Gap,
        _ => Verdict::Pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for scenario in KEYCLOAK_SCENARIOS.iter().chain(API_SCENARIOS.iter()) {
            assert_eq!(Scenario::parse(&scenario.name()), Some(*scenario));
        }
        assert_eq!(Scenario::parse("api-nonsense"), None);
    }

    #[test]
    fn expectations_by_gateway() {
        let at = |gateway: &str, kind| expectation(profile(gateway).unwrap(), kind);
        assert_eq!(at("no-auth", TokenKind::Expired).status, 200);
        assert_eq!(at("jwt", TokenKind::Expired).status, 401);
        let gap = at("jwt-no-exp", TokenKind::Expired);
        assert_eq!((gap.status, gap.known_gap.is_some()), (200, true));
        assert_eq!(
            at("jwt", TokenKind::Revoked).known_gap,
            Some("local validation cannot see revocation")
        );
        assert_eq!(at("native-jwt", TokenKind::Revoked).status, 200);
        assert_eq!(at("introspect", TokenKind::Revoked).status, 401);
        assert_eq!(at("hybrid", TokenKind::Revoked).status, 401);
        assert_eq!(at("native-jwt", TokenKind::WrongAudience).status, 403);
        assert_eq!(at("jwt", TokenKind::Missing).challenge, Challenge::Bare);
        assert_eq!(
            at("jwt", TokenKind::AlgNone).challenge,
            Challenge::InvalidToken
        );
    }

    #[test]
    fn classifier_checks_the_challenge() {
        let classifier = ExpectationClassifier {
            expectation: expectation(profile("jwt").unwrap(), TokenKind::Expired),
        };
        let mut headers = HeaderMap::new();
        assert_eq!(classifier.classify(401, &headers), Outcome::Unexpected);
        headers.insert(
            hyper::header::WWW_AUTHENTICATE,
            "Bearer realm=\"x\", error=\"invalid_token\""
                .parse()
                .unwrap(),
        );
        assert_eq!(classifier.classify(401, &headers), Outcome::Expected);
        assert_eq!(classifier.classify(200, &headers), Outcome::Unexpected);
    }

    #[test]
    fn expected_verdicts() {
        let at = |gateway: &str, kind| expected_verdict(profile(gateway).unwrap(), kind);
        assert_eq!(at("jwt-no-exp", TokenKind::Expired), Verdict::Gap);
        assert_eq!(at("jwt-no-exp", TokenKind::Revoked), Verdict::Gap);
        assert_eq!(at("jwt-no-exp", TokenKind::InvalidSignature), Verdict::Pass);
        assert_eq!(at("jwt", TokenKind::Expired), Verdict::Pass);
        assert_eq!(at("hybrid", TokenKind::Revoked), Verdict::Pass);
        assert_eq!(at("hybrid", TokenKind::Valid), Verdict::Pass);
        assert_eq!(at("policy", TokenKind::Expired), Verdict::Pass);
        assert_eq!(at("policy", TokenKind::Revoked), Verdict::Gap);
        assert_eq!(at("no-auth", TokenKind::Expired), Verdict::NotApplicable);
    }

    #[test]
    fn verdicts() {
        let jwt = profile("jwt").unwrap();
        assert_eq!(verdict(jwt, TokenKind::Expired, 0, 10), Verdict::Pass);
        assert_eq!(verdict(jwt, TokenKind::Expired, 1, 9), Verdict::Gap);
        assert_eq!(verdict(jwt, TokenKind::Valid, 10, 0), Verdict::Pass);
        assert_eq!(verdict(jwt, TokenKind::Valid, 9, 1), Verdict::Fail);
        assert_eq!(
            verdict(profile("no-auth").unwrap(), TokenKind::Expired, 10, 0),
            Verdict::NotApplicable
        );
    }
}

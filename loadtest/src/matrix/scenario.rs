//! The scenarios of the matrix and what each gateway is expected to answer to each.
//!
//! Two notions of "expected" are kept apart:
//! - the **expected outcome** of a cell: what this gateway, as configured, answers (jwt-no-exp
//!   answers 200 to an expired token — that is its known behaviour). Anything else is an
//!   *unexpected outcome* (a bug, an outage), counted in the performance table;
//! - the **secure outcome** of a scenario: what a secure gateway must do with it, admit or
//!   refuse. A gateway that admits what it must refuse (or lets a forged identity header reach
//!   the backend) has a security **GAP**; one that refuses what it must admit a **FAIL**. A GAP
//!   is *known* when the gateway is documented to have it (jwt-no-exp and expiry; local
//!   validation and revocation).
//!
//! The API scenarios (`api-<token kind>`) send one kind of token to `/api/orders`, which every
//! gateway routes to the backend. The policy scenarios ([`POLICY_SCENARIOS`], one table) need
//! the routes of the policy gateway (envoy/policy.yaml: a public `/health`, an `/admin/` area
//! for realm A's users with the realm role `admin`, an `/api/` for both realms); each row
//! names its path, its token, its expected answer and whether a secure gateway admits it.
//! They run only against gateways with those routes and are not applicable to the others.

use hyper::header::HeaderMap;
use serde::Serialize;

use crate::backend::IDENTITY_HEADERS_RECEIVED;
use crate::driver::{Classifier, Outcome};
pub use crate::matrix::policy_scenarios::{POLICY_SCENARIOS, PolicyScenario};

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
    /// Realm B (`tokengate-partner`): client credentials of `partner-loadtest`, ES256.
    Partner,
    /// Realm A, user `alice` (password grant): valid, without the realm role `admin`.
    WithoutAdminRole,
    /// Realm A, user `carol`: valid, with the realm role `admin`.
    WithAdminRole,
    /// A realm B token whose payload's `iss` was replaced by realm A's issuer: it claims realm
    /// A and is signed by realm B's key.
    CrossRealm,
    /// Realm A, user `alice` (password grant): a session ended through Keycloak's admin API
    /// before the tokens are sent (see `matrix/logout.rs`).
    LoggedOut,
}

impl TokenKind {
    pub const ALL: [TokenKind; 13] = [
        TokenKind::Valid,
        TokenKind::Expired,
        TokenKind::InvalidSignature,
        TokenKind::Malformed,
        TokenKind::Missing,
        TokenKind::Revoked,
        TokenKind::AlgNone,
        TokenKind::WrongAudience,
        TokenKind::Partner,
        TokenKind::WithoutAdminRole,
        TokenKind::WithAdminRole,
        TokenKind::CrossRealm,
        TokenKind::LoggedOut,
    ];

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
            TokenKind::Partner => "partner",
            TokenKind::WithoutAdminRole => "without-admin-role",
            TokenKind::WithAdminRole => "with-admin-role",
            TokenKind::CrossRealm => "cross-realm",
            TokenKind::LoggedOut => "logged-out",
        }
    }

    /// The token in words, for the verdict table.
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::Valid => "valid token (realm A)",
            TokenKind::Expired => "expired token",
            TokenKind::InvalidSignature => "token with a flipped signature bit",
            TokenKind::Malformed => "malformed token",
            TokenKind::Missing => "no token",
            TokenKind::Revoked => "revoked token",
            TokenKind::AlgNone => "alg:none forgery",
            TokenKind::WrongAudience => "token for another audience",
            TokenKind::Partner => "realm B token (ES256)",
            TokenKind::WithoutAdminRole => "realm A user without role admin",
            TokenKind::WithAdminRole => "realm A user with role admin",
            TokenKind::CrossRealm => "iss of realm A, signed by realm B",
            TokenKind::LoggedOut => "token of a session ended at Keycloak",
        }
    }
}

/// The path the API scenarios send to: every gateway routes it to the backend.
pub const API_PATH: &str = "/api/orders";

/// What a secure gateway does with a scenario's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Secure {
    Admit,
    Refuse,
}

/// RFC 6750 error expected in `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Challenge {
    /// No challenge to check (2xx, or a status without RFC 6750 semantics).
    None,
    /// `Bearer` without an error code (no credentials).
    Bare,
    /// `error="invalid_token"`.
    InvalidToken,
    /// `error="insufficient_scope"` (403: a scope or claim condition not met).
    InsufficientScope,
}

/// One scenario: a kind of request at Keycloak or through a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    GenerateToken,
    IntrospectValid,
    IntrospectExpired,
    IntrospectInvalid,
    Api(TokenKind),
    Policy(&'static PolicyScenario),
}

pub const KEYCLOAK_SCENARIOS: [Scenario; 4] = [
    Scenario::GenerateToken,
    Scenario::IntrospectValid,
    Scenario::IntrospectExpired,
    Scenario::IntrospectInvalid,
];

pub const API_SCENARIOS: [Scenario; 9] = [
    Scenario::Api(TokenKind::Valid),
    Scenario::Api(TokenKind::Expired),
    Scenario::Api(TokenKind::InvalidSignature),
    Scenario::Api(TokenKind::Malformed),
    Scenario::Api(TokenKind::Missing),
    Scenario::Api(TokenKind::Revoked),
    Scenario::Api(TokenKind::AlgNone),
    Scenario::Api(TokenKind::WrongAudience),
    Scenario::Api(TokenKind::LoggedOut),
];

/// What a gateway scenario sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayRequest {
    pub path: &'static str,
    pub token: TokenKind,
    pub forged_header: Option<(&'static str, &'static str)>,
}

impl GatewayRequest {
    /// The request in words, for the verdict table.
    pub fn describe(&self) -> String {
        let mut text = format!("{}, {}", self.path, self.token.describe());
        if let Some((name, value)) = self.forged_header {
            text.push_str(&format!(", forged {name}: {value}"));
        }
        text
    }
}

impl Scenario {
    /// Every scenario: at Keycloak, the API ones, the policy ones.
    pub fn all() -> impl Iterator<Item = Scenario> {
        KEYCLOAK_SCENARIOS
            .into_iter()
            .chain(API_SCENARIOS)
            .chain(POLICY_SCENARIOS.iter().map(Scenario::Policy))
    }

    pub fn name(self) -> String {
        match self {
            Scenario::GenerateToken => "generate-token".to_owned(),
            Scenario::IntrospectValid => "introspect-valid".to_owned(),
            Scenario::IntrospectExpired => "introspect-expired".to_owned(),
            Scenario::IntrospectInvalid => "introspect-invalid".to_owned(),
            Scenario::Api(kind) => format!("api-{}", kind.name()),
            Scenario::Policy(policy) => format!("policy-{}", policy.name),
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::all().find(|scenario| scenario.name() == name)
    }

    /// Whether the scenario goes through a gateway (else straight at Keycloak).
    pub fn through_gateway(self) -> bool {
        self.request().is_some()
    }

    /// What a gateway scenario sends; `None` for the scenarios at Keycloak.
    pub fn request(self) -> Option<GatewayRequest> {
        match self {
            Scenario::Api(token) => Some(GatewayRequest {
                path: API_PATH,
                token,
                forged_header: None,
            }),
            Scenario::Policy(policy) => Some(GatewayRequest {
                path: policy.path,
                token: policy.token,
                forged_header: policy.forged_header,
            }),
            _ => None,
        }
    }

    /// The token a gateway scenario carries.
    pub fn token_kind(self) -> Option<TokenKind> {
        self.request().map(|request| request.token)
    }

    /// What a secure gateway does with it; `None` for the scenarios at Keycloak.
    pub fn secure(self) -> Option<Secure> {
        match self {
            Scenario::Api(TokenKind::Valid) => Some(Secure::Admit),
            Scenario::Api(_) => Some(Secure::Refuse),
            Scenario::Policy(policy) => Some(policy.secure),
            _ => None,
        }
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
    /// Runs with the back-channel logout listener (`matrix/logout.rs` wires it and registers
    /// it at Keycloak), so it is told when a session ends.
    pub receives_logouts: bool,
    /// Status for a token issued for another audience (Envoy's jwt_authn answers 403).
    pub wrong_audience_status: u16,
    /// Misconfigured on purpose: its GAPs are expected and do not fail a run.
    pub known_insecure: bool,
    /// Serves the policy gateway's routes (envoy/policy.yaml): the policy scenarios run
    /// against it, and are not applicable to gateways without them.
    pub policy_routes: bool,
}

pub const GATEWAYS: [GatewayProfile; 7] = [
    GatewayProfile {
        name: "no-auth",
        authenticates: false,
        checks_expiry: false,
        receives_logouts: false,
        sees_revocation: false,
        wrong_audience_status: 200,
        known_insecure: false,
        policy_routes: false,
    },
    GatewayProfile {
        name: "native-jwt",
        authenticates: true,
        checks_expiry: true,
        receives_logouts: false,
        sees_revocation: false,
        wrong_audience_status: 403,
        known_insecure: false,
        policy_routes: false,
    },
    GatewayProfile {
        name: "jwt",
        authenticates: true,
        checks_expiry: true,
        receives_logouts: true,
        sees_revocation: false,
        wrong_audience_status: 401,
        known_insecure: false,
        policy_routes: false,
    },
    GatewayProfile {
        name: "jwt-no-exp",
        authenticates: true,
        checks_expiry: false,
        receives_logouts: false,
        sees_revocation: false,
        wrong_audience_status: 401,
        known_insecure: true,
        policy_routes: false,
    },
    GatewayProfile {
        name: "introspect",
        authenticates: true,
        checks_expiry: true,
        receives_logouts: false,
        sees_revocation: true,
        wrong_audience_status: 401,
        known_insecure: false,
        policy_routes: false,
    },
    GatewayProfile {
        name: "hybrid",
        authenticates: true,
        checks_expiry: true,
        receives_logouts: true,
        sees_revocation: true,
        wrong_audience_status: 401,
        known_insecure: false,
        policy_routes: false,
    },
    // Two providers and per-route rules; on /api/ it validates locally, as `jwt` does.
    GatewayProfile {
        name: "policy",
        authenticates: true,
        checks_expiry: true,
        receives_logouts: false,
        sees_revocation: false,
        wrong_audience_status: 401,
        known_insecure: false,
        policy_routes: true,
    },
];

pub fn profile(gateway: &str) -> Option<&'static GatewayProfile> {
    GATEWAYS.iter().find(|profile| profile.name == gateway)
}

/// Whether the matrix sends `scenario` to `gateway`: every gateway scenario goes to every
/// gateway (no-auth is the baseline), except that the policy scenarios need the policy routes.
pub fn runs_on(gateway: &GatewayProfile, scenario: Scenario) -> bool {
    match scenario {
        Scenario::Policy(_) => gateway.policy_routes,
        _ => scenario.through_gateway(),
    }
}

/// Why no security verdict applies to `scenario` on `gateway`, if none does.
pub fn not_applicable(gateway: &GatewayProfile, scenario: Scenario) -> Option<&'static str> {
    match scenario {
        Scenario::Policy(_) if !gateway.policy_routes => Some("not a policy gateway"),
        _ if !gateway.authenticates => Some("no authentication"),
        _ => None,
    }
}

/// What one cell must answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expectation {
    pub status: u16,
    pub challenge: Challenge,
    /// Why this gateway admits a token that must be refused, when it is documented to.
    pub known_gap: Option<&'static str>,
    /// A request header the gateway must strip: an answer that says the backend received it
    /// is unexpected, and a security GAP.
    pub must_strip: Option<&'static str>,
}

impl Expectation {
    pub fn status(status: u16) -> Expectation {
        Expectation {
            status,
            challenge: Challenge::None,
            known_gap: None,
            must_strip: None,
        }
    }

    fn refused(status: u16, challenge: Challenge) -> Expectation {
        Expectation {
            challenge,
            ..Expectation::status(status)
        }
    }
}

/// What `gateway` answers to `scenario` (Keycloak's own scenarios: 200).
pub fn expectation(gateway: &GatewayProfile, scenario: Scenario) -> Expectation {
    match scenario {
        Scenario::Api(kind) => api_expectation(gateway, kind),
        Scenario::Policy(policy) => Expectation {
            status: policy.status,
            challenge: policy.challenge,
            known_gap: None,
            must_strip: policy.forged_header.map(|(name, _)| name),
        },
        _ => Expectation::status(200),
    }
}

/// What `gateway` answers to requests to [`API_PATH`] carrying `kind`.
fn api_expectation(gateway: &GatewayProfile, kind: TokenKind) -> Expectation {
    if !gateway.authenticates {
        return Expectation::status(200);
    }
    match kind {
        TokenKind::Valid => Expectation::status(200),
        TokenKind::Missing => Expectation::refused(401, Challenge::Bare),
        TokenKind::Expired if !gateway.checks_expiry => Expectation {
            known_gap: Some("exp is not verified (misconfigured on purpose)"),
            ..Expectation::status(200)
        },
        TokenKind::Revoked if !gateway.sees_revocation => Expectation {
            known_gap: Some("local validation cannot see revocation"),
            ..Expectation::status(200)
        },
        TokenKind::LoggedOut if !gateway.sees_revocation && !gateway.receives_logouts => {
            Expectation {
                known_gap: Some(logout_gap(gateway)),
                ..Expectation::status(200)
            }
        }
        TokenKind::WrongAudience if gateway.wrong_audience_status != 401 => {
            Expectation::status(gateway.wrong_audience_status)
        }
        _ => Expectation::refused(401, Challenge::InvalidToken),
    }
}

/// Why a gateway that validates locally and gets no logout tokens admits an ended session's.
fn logout_gap(gateway: &GatewayProfile) -> &'static str {
    match gateway.name {
        "native-jwt" => {
            "Envoy's jwt_authn validates locally and has no endpoint an IdP could tell of a logout"
        }
        _ => "local validation without back-channel logout cannot see a logout",
    }
}

/// Judges gateway responses against an expectation: the status, for 401 and 403 the RFC 6750
/// challenge, and for a header that must be stripped what the backend says it received.
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
        let error =
            |code: &str| challenge.is_some_and(|c| c.starts_with("Bearer") && c.contains(code));
        let challenge_matches = match self.expectation.challenge {
            Challenge::None => true,
            Challenge::Bare => {
                challenge.is_some_and(|c| c.starts_with("Bearer") && !c.contains("error="))
            }
            Challenge::InvalidToken => error("error=\"invalid_token\""),
            Challenge::InsufficientScope => error("error=\"insufficient_scope\""),
        };
        let leaked = self
            .expectation
            .must_strip
            .is_some_and(|name| backend_received(headers, name));
        if challenge_matches && !leaked {
            Outcome::Expected
        } else {
            Outcome::Unexpected
        }
    }
}

/// Whether the backend's answer says it received request header `name`
/// ([`IDENTITY_HEADERS_RECEIVED`] lists the identity headers that reached it).
pub fn backend_received(headers: &HeaderMap, name: &str) -> bool {
    lists_header(
        headers
            .get_all(IDENTITY_HEADERS_RECEIVED)
            .iter()
            .filter_map(|value| value.to_str().ok()),
        name,
    )
}

/// Whether one of the comma-separated lists `values` (of [`IDENTITY_HEADERS_RECEIVED`]) names
/// header `name`.
pub fn lists_header<'a>(values: impl IntoIterator<Item = &'a str>, name: &str) -> bool {
    values
        .into_iter()
        .flat_map(|list| list.split(','))
        .any(|received| received.trim().eq_ignore_ascii_case(name))
}

/// The security verdict of a (gateway, scenario) cell, or of its cells over every rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Admitted what must be admitted, refused what must be refused, stripped what must be
    /// stripped.
    Pass,
    /// A request that must be refused was admitted, or a forged header reached the backend.
    Gap,
    /// A request that must be admitted was refused (availability, not security).
    Fail,
    /// Not a question for this gateway (no authentication, or no policy routes).
    NotApplicable,
}

/// What the verdict is judged on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// 2xx answers.
    pub admitted: u64,
    /// 4xx answers.
    pub refused: u64,
    /// Answers whose backend received a header the gateway must strip.
    pub leaked: u64,
}

/// The verdict a gateway must earn for `scenario`: a GAP exactly where it is documented to
/// have one (jwt-no-exp and expiry, local validation and revocation), not applicable where the
/// matrix does not ask, a PASS everywhere else.
pub fn expected_verdict(gateway: &GatewayProfile, scenario: Scenario) -> Verdict {
    if not_applicable(gateway, scenario).is_some() {
        Verdict::NotApplicable
    } else if expectation(gateway, scenario).known_gap.is_some() {
        Verdict::Gap
    } else {
        Verdict::Pass
    }
}

/// The verdict from the counts of a cell (or of its cells over every rate).
pub fn verdict(gateway: &GatewayProfile, scenario: Scenario, counts: Counts) -> Verdict {
    if not_applicable(gateway, scenario).is_some() {
        return Verdict::NotApplicable;
    }
    if counts.leaked > 0 {
        return Verdict::Gap;
    }
    match scenario.secure() {
        Some(Secure::Admit) if counts.refused > 0 || counts.admitted == 0 => Verdict::Fail,
        Some(Secure::Refuse) if counts.admitted > 0 => Verdict::Gap,
        _ => Verdict::Pass,
    }
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;

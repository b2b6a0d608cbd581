//! The policy scenarios as one table: each row a request to one of the policy gateway's routes
//! (envoy/policy.yaml), its token, its expected answer and whether a secure gateway admits it.
//! [`Scenario::Policy`](crate::matrix::scenario::Scenario::Policy) refers to a row.

use crate::matrix::scenario::{API_PATH, Challenge, Secure, TokenKind};

/// One policy scenario: a request to one of the policy gateway's routes and what it must
/// answer. The matrix calls it `policy-<name>`.
#[derive(Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyScenario {
    pub name: &'static str,
    pub path: &'static str,
    pub token: TokenKind,
    /// A client-supplied identity header sent along: the gateway must strip it, so the
    /// backend never sees it.
    pub forged_header: Option<(&'static str, &'static str)>,
    pub secure: Secure,
    pub status: u16,
    pub challenge: Challenge,
}

/// Every policy scenario, as envoy/policy.yaml's rules decide them against Keycloak's two
/// realms (`tokengate` = realm A, `tokengate-partner` = realm B).
pub static POLICY_SCENARIOS: [PolicyScenario; 8] = [
    PolicyScenario {
        name: "public-no-token",
        path: "/health",
        token: TokenKind::Missing,
        forged_header: None,
        secure: Secure::Admit,
        status: 200,
        challenge: Challenge::None,
    },
    PolicyScenario {
        name: "api-no-token",
        path: API_PATH,
        token: TokenKind::Missing,
        forged_header: None,
        secure: Secure::Refuse,
        status: 401,
        challenge: Challenge::Bare,
    },
    PolicyScenario {
        name: "api-partner",
        path: API_PATH,
        token: TokenKind::Partner,
        forged_header: None,
        secure: Secure::Admit,
        status: 200,
        challenge: Challenge::None,
    },
    // The admin rule knows realm A's provider only: realm B's issuer is not one of its.
    PolicyScenario {
        name: "admin-partner",
        path: "/admin/users",
        token: TokenKind::Partner,
        forged_header: None,
        secure: Secure::Refuse,
        status: 401,
        challenge: Challenge::InvalidToken,
    },
    // Authenticated, but the claim condition (realm_access.roles contains admin) fails.
    PolicyScenario {
        name: "admin-without-role",
        path: "/admin/users",
        token: TokenKind::WithoutAdminRole,
        forged_header: None,
        secure: Secure::Refuse,
        status: 403,
        challenge: Challenge::InsufficientScope,
    },
    PolicyScenario {
        name: "admin-with-role",
        path: "/admin/users",
        token: TokenKind::WithAdminRole,
        forged_header: None,
        secure: Secure::Admit,
        status: 200,
        challenge: Challenge::None,
    },
    // The issuer only chooses the provider: realm A's keys do not verify realm B's signature.
    PolicyScenario {
        name: "api-cross-realm",
        path: API_PATH,
        token: TokenKind::CrossRealm,
        forged_header: None,
        secure: Secure::Refuse,
        status: 401,
        challenge: Challenge::InvalidToken,
    },
    // The public rule reads no token and still strips client-supplied identity headers.
    PolicyScenario {
        name: "public-forged-identity",
        path: "/health",
        token: TokenKind::Missing,
        forged_header: Some(("x-jwt-sub", "admin")),
        secure: Secure::Admit,
        status: 200,
        challenge: Challenge::None,
    },
];

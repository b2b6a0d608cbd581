//! Unit tests of `scenario.rs`.

use super::*;

fn policy(name: &str) -> Scenario {
    Scenario::parse(&format!("policy-{name}")).unwrap()
}

fn counts(admitted: u64, refused: u64, leaked: u64) -> Counts {
    Counts {
        admitted,
        refused,
        leaked,
    }
}

#[test]
fn names_round_trip_and_are_unique() {
    let names: Vec<String> = Scenario::all().map(Scenario::name).collect();
    for scenario in Scenario::all() {
        assert_eq!(Scenario::parse(&scenario.name()), Some(scenario));
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    assert_eq!(Scenario::parse("api-nonsense"), None);
    assert_eq!(names.len(), 4 + 9 + 8);
}

#[test]
fn expectations_by_gateway() {
    let at = |gateway: &str, kind| expectation(profile(gateway).unwrap(), Scenario::Api(kind));
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

/// On /api/orders the policy gateway validates locally: it answers every API scenario as
/// `jwt` does, but for an ended session (it has no back-channel logout listener).
#[test]
fn the_policy_gateway_answers_the_api_scenarios_as_jwt_does() {
    let (jwt, policy) = (profile("jwt").unwrap(), profile("policy").unwrap());
    let logged_out = Scenario::Api(TokenKind::LoggedOut);
    assert_ne!(
        expectation(policy, logged_out),
        expectation(jwt, logged_out)
    );
    for scenario in API_SCENARIOS.into_iter().filter(|s| *s != logged_out) {
        assert_eq!(
            expectation(policy, scenario),
            expectation(jwt, scenario),
            "{}",
            scenario.name()
        );
        assert!(runs_on(policy, scenario) && not_applicable(policy, scenario).is_none());
    }
}

#[test]
fn policy_expectations() {
    let gateway = profile("policy").unwrap();
    let cases = [
        (
            "public-no-token",
            "/health",
            200,
            Challenge::None,
            Secure::Admit,
        ),
        (
            "api-no-token",
            API_PATH,
            401,
            Challenge::Bare,
            Secure::Refuse,
        ),
        ("api-partner", API_PATH, 200, Challenge::None, Secure::Admit),
        (
            "admin-partner",
            "/admin/users",
            401,
            Challenge::InvalidToken,
            Secure::Refuse,
        ),
        (
            "admin-without-role",
            "/admin/users",
            403,
            Challenge::InsufficientScope,
            Secure::Refuse,
        ),
        (
            "admin-with-role",
            "/admin/users",
            200,
            Challenge::None,
            Secure::Admit,
        ),
        (
            "api-cross-realm",
            API_PATH,
            401,
            Challenge::InvalidToken,
            Secure::Refuse,
        ),
        (
            "public-forged-identity",
            "/health",
            200,
            Challenge::None,
            Secure::Admit,
        ),
    ];
    assert_eq!(cases.len(), POLICY_SCENARIOS.len());
    for (name, path, status, challenge, secure) in cases {
        let scenario = policy(name);
        let expected = expectation(gateway, scenario);
        assert_eq!(scenario.request().unwrap().path, path, "{name}");
        assert_eq!((expected.status, expected.challenge), (status, challenge));
        assert_eq!(scenario.secure(), Some(secure), "{name}");
        assert_eq!(expected.known_gap, None, "{name}");
    }
    let forged = expectation(gateway, policy("public-forged-identity"));
    assert_eq!(forged.must_strip, Some("x-jwt-sub"));
    assert_eq!(
        policy("public-forged-identity")
            .request()
            .unwrap()
            .forged_header,
        Some(("x-jwt-sub", "admin"))
    );
    assert_eq!(
        policy("api-cross-realm").token_kind(),
        Some(TokenKind::CrossRealm)
    );
}

#[test]
fn policy_scenarios_run_on_the_policy_gateway_only() {
    for gateway in &GATEWAYS {
        for scenario in POLICY_SCENARIOS.iter().map(Scenario::Policy) {
            assert_eq!(runs_on(gateway, scenario), gateway.name == "policy");
            let reason = not_applicable(gateway, scenario);
            if gateway.name == "policy" {
                assert_eq!(reason, None);
            } else {
                assert_eq!(reason, Some("not a policy gateway"), "{}", gateway.name);
                assert_eq!(
                    verdict(gateway, scenario, counts(10, 0, 10)),
                    Verdict::NotApplicable
                );
            }
        }
        assert!(!runs_on(gateway, Scenario::GenerateToken));
    }
    let no_auth = profile("no-auth").unwrap();
    assert!(runs_on(no_auth, Scenario::Api(TokenKind::Expired)));
    assert_eq!(
        not_applicable(no_auth, Scenario::Api(TokenKind::Expired)),
        Some("no authentication")
    );
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

#[test]
fn classifier_checks_the_challenge() {
    let jwt = profile("jwt").unwrap();
    let classifier = ExpectationClassifier {
        expectation: expectation(jwt, Scenario::Api(TokenKind::Expired)),
    };
    assert_eq!(classifier.classify(401, &headers(&[])), Outcome::Unexpected);
    let invalid = headers(&[(
        "www-authenticate",
        "Bearer realm=\"x\", error=\"invalid_token\"",
    )]);
    assert_eq!(classifier.classify(401, &invalid), Outcome::Expected);
    assert_eq!(classifier.classify(200, &invalid), Outcome::Unexpected);

    let without_role = ExpectationClassifier {
        expectation: expectation(profile("policy").unwrap(), policy("admin-without-role")),
    };
    let scope = headers(&[(
        "www-authenticate",
        "Bearer realm=\"tokengate\", error=\"insufficient_scope\", error_description=\"x\"",
    )]);
    assert_eq!(without_role.classify(403, &scope), Outcome::Expected);
    assert_eq!(without_role.classify(403, &invalid), Outcome::Unexpected);
    assert_eq!(
        without_role.classify(403, &headers(&[])),
        Outcome::Unexpected
    );
    assert_eq!(without_role.classify(401, &scope), Outcome::Unexpected);
}

/// A status, the response headers, and how the classifier must judge them.
type ClassifierCase<'a> = (u16, &'a [(&'a str, &'a str)], Outcome);

/// The forged header is judged on what the backend says it received.
#[test]
fn classifier_catches_a_forged_header_that_reached_the_backend() {
    let classifier = ExpectationClassifier {
        expectation: expectation(profile("policy").unwrap(), policy("public-forged-identity")),
    };
    let cases: [ClassifierCase; 7] = [
        (200, &[], Outcome::Expected),
        (
            200,
            &[(IDENTITY_HEADERS_RECEIVED, "x-tokengate-route")],
            Outcome::Expected,
        ),
        (
            200,
            &[(IDENTITY_HEADERS_RECEIVED, "x-jwt-subject,x-jwt-sub2")],
            Outcome::Expected,
        ),
        (
            200,
            &[(IDENTITY_HEADERS_RECEIVED, "x-jwt-sub")],
            Outcome::Unexpected,
        ),
        (
            200,
            &[(IDENTITY_HEADERS_RECEIVED, "x-tokengate-route, X-JWT-SUB")],
            Outcome::Unexpected,
        ),
        (
            200,
            &[
                (IDENTITY_HEADERS_RECEIVED, "x-tokengate-route"),
                (IDENTITY_HEADERS_RECEIVED, "x-jwt-sub"),
            ],
            Outcome::Unexpected,
        ),
        (403, &[], Outcome::Unexpected),
    ];
    for (status, pairs, outcome) in cases {
        assert_eq!(
            classifier.classify(status, &headers(pairs)),
            outcome,
            "{status} {pairs:?}"
        );
    }
}

#[test]
fn expected_verdicts() {
    let at = |gateway: &str, kind| expected_verdict(profile(gateway).unwrap(), Scenario::Api(kind));
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

/// An ended session: refused through back-channel logout (jwt, hybrid) or introspection
/// (introspect, hybrid); a known GAP where validation is local and no logout arrives.
#[test]
fn logged_out_expectations_and_verdicts() {
    let kind = TokenKind::LoggedOut;
    let at = |gateway: &str| expectation(profile(gateway).unwrap(), Scenario::Api(kind));
    let verdict_at =
        |gateway: &str| expected_verdict(profile(gateway).unwrap(), Scenario::Api(kind));
    for gateway in ["jwt", "hybrid", "introspect"] {
        let refused = at(gateway);
        assert_eq!(
            (refused.status, refused.challenge, refused.known_gap),
            (401, Challenge::InvalidToken, None),
            "{gateway}"
        );
        assert_eq!(verdict_at(gateway), Verdict::Pass, "{gateway}");
    }
    for gateway in ["native-jwt", "policy", "jwt-no-exp"] {
        let admitted = at(gateway);
        assert_eq!(admitted.status, 200, "{gateway}");
        assert!(admitted.known_gap.is_some(), "{gateway}");
        assert_eq!(verdict_at(gateway), Verdict::Gap, "{gateway}");
    }
    assert!(at("native-jwt").known_gap.unwrap().contains("jwt_authn"));
    assert_eq!(verdict_at("no-auth"), Verdict::NotApplicable);
    assert_eq!(Scenario::parse("api-logged-out"), Some(Scenario::Api(kind)));
    assert_eq!(Scenario::Api(kind).secure(), Some(Secure::Refuse));
}

#[test]
fn verdicts() {
    let jwt = profile("jwt").unwrap();
    let expired = Scenario::Api(TokenKind::Expired);
    let valid = Scenario::Api(TokenKind::Valid);
    assert_eq!(verdict(jwt, expired, counts(0, 10, 0)), Verdict::Pass);
    assert_eq!(verdict(jwt, expired, counts(1, 9, 0)), Verdict::Gap);
    assert_eq!(verdict(jwt, valid, counts(10, 0, 0)), Verdict::Pass);
    assert_eq!(verdict(jwt, valid, counts(9, 1, 0)), Verdict::Fail);
    assert_eq!(verdict(jwt, valid, counts(0, 0, 0)), Verdict::Fail);
    assert_eq!(
        verdict(profile("no-auth").unwrap(), expired, counts(10, 0, 0)),
        Verdict::NotApplicable
    );
}

/// Admitting what must be refused (or letting the forged header through) is a GAP;
/// refusing what must be admitted is a FAIL.
#[test]
fn policy_verdicts() {
    let gateway = profile("policy").unwrap();
    let cases = [
        ("public-no-token", counts(10, 0, 0), Verdict::Pass),
        ("public-no-token", counts(9, 1, 0), Verdict::Fail),
        ("api-no-token", counts(0, 10, 0), Verdict::Pass),
        ("api-no-token", counts(1, 9, 0), Verdict::Gap),
        ("api-partner", counts(10, 0, 0), Verdict::Pass),
        ("api-partner", counts(0, 10, 0), Verdict::Fail),
        ("admin-partner", counts(0, 10, 0), Verdict::Pass),
        ("admin-partner", counts(10, 0, 0), Verdict::Gap),
        ("admin-without-role", counts(0, 10, 0), Verdict::Pass),
        ("admin-without-role", counts(3, 7, 0), Verdict::Gap),
        ("admin-with-role", counts(10, 0, 0), Verdict::Pass),
        ("admin-with-role", counts(0, 10, 0), Verdict::Fail),
        ("api-cross-realm", counts(0, 10, 0), Verdict::Pass),
        ("api-cross-realm", counts(1, 9, 0), Verdict::Gap),
        ("public-forged-identity", counts(10, 0, 0), Verdict::Pass),
        ("public-forged-identity", counts(10, 0, 1), Verdict::Gap),
        ("public-forged-identity", counts(5, 5, 5), Verdict::Gap),
        ("public-forged-identity", counts(5, 5, 0), Verdict::Fail),
    ];
    for (name, counts, expected) in cases {
        assert_eq!(
            verdict(gateway, policy(name), counts),
            expected,
            "{name} {counts:?}"
        );
    }
}

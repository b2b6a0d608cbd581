//! Every rejection against its response (status, challenge, metric), and descriptions that are
//! safe inside quoted strings.

use super::*;

const CONTEXT: ResponseContext<'static> = ResponseContext {
    realm: "api",
    required_scope: "read write",
    retry_after_seconds: 7,
};

fn header<'a>(response: &'a DenyResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn every_rejection_maps_to_status_challenge_and_metric() {
    use MalformedToken as M;
    use Rejection as R;
    let cases: Vec<(Rejection, u16, Option<&str>, &str)> = vec![
        (R::MissingToken, 401, None, "missing"),
        (
            R::InvalidRequest(RequestProblem::MultipleTokens),
            400,
            Some("invalid_request"),
            "invalid_request",
        ),
        (
            R::InvalidRequest(RequestProblem::EmptyToken),
            400,
            Some("invalid_request"),
            "invalid_request",
        ),
        (
            R::InvalidRequest(RequestProblem::InvalidCharacters),
            400,
            Some("invalid_request"),
            "invalid_request",
        ),
        (
            R::TokenTooLarge {
                length: 9000,
                limit: 8192,
            },
            401,
            Some("invalid_token"),
            "too_large",
        ),
        (
            R::Malformed(M::Structure),
            401,
            Some("invalid_token"),
            "malformed",
        ),
        (
            R::Malformed(M::Encrypted),
            401,
            Some("invalid_token"),
            "malformed",
        ),
        (
            R::DisallowedAlgorithm,
            401,
            Some("invalid_token"),
            "algorithm",
        ),
        (R::UnknownKey, 401, Some("invalid_token"), "unknown_kid"),
        (R::BadSignature, 401, Some("invalid_token"), "bad_signature"),
        (
            R::MissingExpiration,
            401,
            Some("invalid_token"),
            "missing_exp",
        ),
        (R::Expired, 401, Some("invalid_token"), "expired"),
        (R::NotYetValid, 401, Some("invalid_token"), "not_yet_valid"),
        (R::WrongIssuer, 401, Some("invalid_token"), "issuer"),
        (R::WrongAudience, 401, Some("invalid_token"), "audience"),
        (R::WrongTokenType, 401, Some("invalid_token"), "token_type"),
        (
            R::InsufficientScope,
            403,
            Some("insufficient_scope"),
            "scope",
        ),
        (
            R::UnforwardableClaim,
            401,
            Some("invalid_token"),
            "claim_value",
        ),
        (
            R::ClaimConditions,
            403,
            Some("insufficient_scope"),
            "claims",
        ),
        (R::NoRule, 403, None, "no_rule"),
        (R::KeysUnavailable, 503, None, "keys_unavailable"),
        (R::ClockUnavailable, 503, None, "clock_unavailable"),
        (R::Inactive, 401, Some("invalid_token"), "inactive"),
        (R::SessionEnded, 401, Some("invalid_token"), "session_ended"),
        (R::RevocationsFull, 503, None, "revocations_full"),
        (
            R::IdpUnavailable(IdpFailure::Timeout),
            503,
            None,
            "idp_unavailable",
        ),
    ];
    for (rejection, status, code, metric) in cases {
        let response = deny_response(&rejection, &CONTEXT);
        assert_eq!(response.status, status, "{rejection:?}");
        assert_eq!(rejection.reason().as_str(), metric);
        let challenge = header(&response, "www-authenticate");
        match (code, status) {
            (Some(code), _) => {
                let challenge = challenge.unwrap();
                assert!(challenge.starts_with("Bearer realm=\"api\", error=\""));
                assert!(
                    challenge.contains(&format!("error=\"{code}\"")),
                    "{challenge}"
                );
                assert!(challenge.contains("error_description=\""));
            }
            (None, 401) => assert_eq!(challenge, Some("Bearer realm=\"api\"")),
            (None, 403) => {
                assert_eq!(challenge, None);
                assert_eq!(header(&response, "retry-after"), None);
            }
            (None, _) => {
                assert_eq!(challenge, None);
                assert_eq!(header(&response, "retry-after"), Some("7"));
            }
        }
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert!(body["error"].is_string() && body["error_description"].is_string());
    }
}

#[test]
fn insufficient_scope_names_the_scopes() {
    let response = deny_response(&Rejection::InsufficientScope, &CONTEXT);
    assert_eq!(
        header(&response, "www-authenticate"),
        Some(
            "Bearer realm=\"api\", error=\"insufficient_scope\", \
             error_description=\"The token lacks a required scope\", scope=\"read write\""
        )
    );
}

#[test]
fn descriptions_are_safe_in_quoted_strings() {
    for reason in DenyReason::ALL {
        assert_eq!(DenyReason::ALL[reason.index()], reason);
    }
    let samples = [
        Rejection::Malformed(MalformedToken::Header),
        Rejection::Malformed(MalformedToken::CriticalHeader),
        Rejection::Malformed(MalformedToken::ContentType),
        Rejection::Malformed(MalformedToken::UnencodedPayload),
        Rejection::Malformed(MalformedToken::Claims),
    ];
    for rejection in samples {
        let description = rejection.description();
        assert!(!description.contains('"') && !description.contains('\\'));
    }
}

//! Invariants shared by the targets: what a refusal may look like.

use tokengate::rejection::{DenyResponse, Rejection, ResponseContext, deny_response};

/// A refusal's status is 400, 401, 403 or 503, and 503 only when keys, the IdP or the clock
/// are unavailable; the response is well formed (headers without CR/LF, a JSON body).
pub fn check_rejection(rejection: &Rejection) {
    let status = rejection.status();
    let unavailable = matches!(
        rejection,
        Rejection::KeysUnavailable | Rejection::ClockUnavailable | Rejection::IdpUnavailable(_)
    );
    assert!(
        matches!(status, 400 | 401 | 403 | 503),
        "status {status} for {rejection:?}"
    );
    assert_eq!(
        status == 503,
        unavailable,
        "status {status} for {rejection:?}"
    );
    let response = deny_response(
        rejection,
        &ResponseContext {
            realm: "api",
            required_scope: "orders:write",
            retry_after_seconds: 5,
        },
    );
    assert_eq!(response.status, status);
    check_response(&response);
}

/// A local reply: an allowed status, 503 with `Retry-After` and `temporarily_unavailable`,
/// header values without control characters, a JSON body.
pub fn check_response(response: &DenyResponse) {
    assert!(
        matches!(response.status, 400 | 401 | 403 | 503),
        "local reply with status {}",
        response.status
    );
    for (name, value) in &response.headers {
        assert!(
            !value.chars().any(char::is_control),
            "control character in response header {name}: {value:?}"
        );
    }
    let body: serde_json::Value =
        serde_json::from_str(&response.body).expect("the reply's body is JSON");
    let error = body.get("error").and_then(serde_json::Value::as_str);
    if response.status == 503 {
        assert_eq!(error, Some("temporarily_unavailable"), "{response:?}");
        assert!(
            response
                .headers
                .iter()
                .any(|(name, _)| *name == "retry-after"),
            "503 without Retry-After: {response:?}"
        );
    } else {
        assert_ne!(error, Some("temporarily_unavailable"), "{response:?}");
    }
}

/// No control characters (CR/LF would split a header).
pub fn check_header_value(name: &str, value: &str) {
    assert!(
        !value.chars().any(char::is_control),
        "control character in forwarded header {name}: {value:?}"
    );
}

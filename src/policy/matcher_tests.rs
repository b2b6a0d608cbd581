//! Which requests each kind of match covers (a table), bad matches refused with their field
//! named, and which rules shadow which.

use super::*;

fn matcher(json: serde_json::Value) -> RequestMatch {
    parse(serde_json::from_value(json).unwrap(), "rules[0].match").unwrap()
}

fn request<'a>(path: &'a str, method: &'a str, authority: &'a str) -> RequestAttributes<'a> {
    RequestAttributes {
        path: Some(path.as_bytes()),
        method: Some(method.as_bytes()),
        authority: Some(authority.as_bytes()),
        route: Some(b"orders-route"),
    }
}

#[test]
fn matching_table() {
    use serde_json::json;
    let cases = [
        (json!({}), "/anything?x=1", "DELETE", "h", true),
        (
            json!({"path": {"exact": "/health"}}),
            "/health",
            "GET",
            "h",
            true,
        ),
        (
            json!({"path": {"exact": "/health"}}),
            "/health?full=1",
            "GET",
            "h",
            true,
        ),
        (
            json!({"path": {"exact": "/health"}}),
            "/health/",
            "GET",
            "h",
            false,
        ),
        (
            json!({"path": {"exact": "/health"}}),
            "/HEALTH",
            "GET",
            "h",
            false,
        ),
        (
            json!({"path": {"prefix": "/admin/"}}),
            "/admin/users",
            "GET",
            "h",
            true,
        ),
        (
            json!({"path": {"prefix": "/admin/"}}),
            "/admin",
            "GET",
            "h",
            false,
        ),
        (
            json!({"path": {"pattern": "/api/*/orders"}}),
            "/api/v1/orders",
            "GET",
            "h",
            true,
        ),
        (
            json!({"path": {"pattern": "/api/*/orders"}}),
            "/api/v1/orders/",
            "GET",
            "h",
            false,
        ),
        (
            json!({"path": {"pattern": "/api/*/orders"}}),
            "/api//orders",
            "GET",
            "h",
            false,
        ),
        (
            json!({"path": {"pattern": "/api/*/orders"}}),
            "/api/v1/v2/orders",
            "GET",
            "h",
            false,
        ),
        (
            json!({"path": {"pattern": "/api/*/orders"}}),
            "/api/v1/orders?a=/b",
            "GET",
            "h",
            true,
        ),
        (
            json!({"path": {"pattern": "/static/**"}}),
            "/static",
            "GET",
            "h",
            true,
        ),
        (
            json!({"path": {"pattern": "/static/**"}}),
            "/static/a/b.css",
            "GET",
            "h",
            true,
        ),
        (
            json!({"path": {"pattern": "/static/**"}}),
            "/staticx",
            "GET",
            "h",
            false,
        ),
        (json!({"methods": ["get", "POST"]}), "/", "GET", "h", true),
        (json!({"methods": ["GET"]}), "/", "get", "h", false),
        (json!({"methods": ["GET"]}), "/", "PUT", "h", false),
        (
            json!({"hosts": ["API.example.com"]}),
            "/",
            "GET",
            "api.example.com:8443",
            true,
        ),
        (
            json!({"hosts": ["api.example.com"]}),
            "/",
            "GET",
            "api.example.com.evil",
            false,
        ),
        (
            json!({"hosts": ["*.example.com"]}),
            "/",
            "GET",
            "a.b.Example.com",
            true,
        ),
        (
            json!({"hosts": ["*.example.com"]}),
            "/",
            "GET",
            "example.com",
            false,
        ),
        (
            json!({"hosts": ["*.example.com"]}),
            "/",
            "GET",
            "notexample.com",
            false,
        ),
        (json!({"route": "orders-route"}), "/", "GET", "h", true),
        (json!({"route": "other"}), "/", "GET", "h", false),
        (
            json!({"path": {"prefix": "/api"}, "methods": ["GET"], "hosts": ["h"]}),
            "/api/x",
            "GET",
            "h:80",
            true,
        ),
    ];
    for (json, path, method, authority, expected) in cases {
        let matched = matcher(json.clone()).matches(&request(path, method, authority));
        assert_eq!(matched, expected, "{json} vs {method} {authority} {path}");
    }
    // A part that must match and is not available does not match.
    let missing = RequestAttributes::default();
    assert!(!matcher(json!({"route": "orders-route"})).matches(&missing));
    assert!(matcher(json!({})).matches(&missing));
}

#[test]
fn bad_matches_name_their_field() {
    use serde_json::json;
    let cases = [
        (
            json!({"path": {"exact": "health"}}),
            "rules[0].match.path.exact",
        ),
        (
            json!({"path": {"prefix": "/a?b"}}),
            "rules[0].match.path.prefix",
        ),
        (
            json!({"path": {"pattern": "/a/**/b"}}),
            "rules[0].match.path.pattern",
        ),
        (
            json!({"path": {"pattern": "/a/b*"}}),
            "rules[0].match.path.pattern",
        ),
        (
            json!({"path": {"exact": "/a", "prefix": "/a"}}),
            "rules[0].match.path",
        ),
        (json!({"path": {}}), "rules[0].match.path"),
        (json!({"methods": ["GE T"]}), "rules[0].match.methods[0]"),
        (json!({"hosts": ["h:80"]}), "rules[0].match.hosts[0]"),
        (json!({"route": ""}), "rules[0].match.route"),
    ];
    for (json, field) in cases {
        let err = parse(
            serde_json::from_value(json.clone()).unwrap(),
            "rules[0].match",
        )
        .unwrap_err();
        assert_eq!(err.field, field, "{json}: {err}");
    }
}

#[test]
fn shadowing() {
    use serde_json::json;
    let cases = [
        (json!({}), json!({"path": {"exact": "/a"}}), true),
        (
            json!({"path": {"prefix": "/api/"}}),
            json!({"path": {"prefix": "/api/v1/"}}),
            true,
        ),
        (
            json!({"path": {"prefix": "/api/"}}),
            json!({"path": {"exact": "/api/x"}}),
            true,
        ),
        (
            json!({"path": {"prefix": "/api/v1/"}}),
            json!({"path": {"prefix": "/api/"}}),
            false,
        ),
        (
            json!({"path": {"prefix": "/a"}, "methods": ["GET"]}),
            json!({"path": {"prefix": "/a"}}),
            false,
        ),
        (
            json!({"methods": ["GET", "POST"]}),
            json!({"methods": ["GET"]}),
            true,
        ),
        (json!({"route": "r"}), json!({"route": "s"}), false),
        (
            json!({"path": {"pattern": "/a/*"}}),
            json!({"path": {"pattern": "/a/*"}}),
            true,
        ),
    ];
    for (earlier, later, expected) in cases {
        assert_eq!(
            matcher(later.clone()).is_shadowed_by(&matcher(earlier.clone())),
            expected,
            "{earlier} then {later}"
        );
    }
}

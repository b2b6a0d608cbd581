//! RFC 7662 token introspection: the call the gateway makes and how it judges the answer;
//! requests that wait for the same answer ([`coalesce`]).

pub mod coalesce;

use base64ct::{Base64, Encoding};
use serde_json::{Map, Value};

use crate::config::{Introspection, Provider};
use crate::jwt::Verified;
use crate::jwt::claims::{ClaimView, check_audience, check_issuer, check_token_type};
use crate::policy::facts::FactCatalog;
use crate::rejection::{IdpFailure, Rejection};

/// An HTTP call for the host to make (`dispatch_http_call`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// The Envoy cluster to call.
    pub cluster: String,
    /// Includes the pseudo-headers `:method`, `:path`, `:authority`.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
    /// How long the call may take.
    pub timeout_ms: u64,
}

/// What a call produced. `status` is `None` when the call ended without a response.
#[derive(Debug, Clone, Copy)]
pub struct CallAnswer<'a> {
    /// The response status, `None` without a response.
    pub status: Option<u16>,
    /// The response body.
    pub body: &'a [u8],
}

/// The IdP's verdict on a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// `active: true` and every check passed: the claims to forward.
    Active(Verified),
    /// `active: false`, or active but failing a check (issuer, audience, expiry, ...).
    Refused(Rejection),
}

/// The introspection request: `POST` form `token` + `token_type_hint=access_token`, with
/// HTTP Basic client authentication (RFC 6749 §2.3.1: id and secret form-encoded first).
pub fn request(introspection: &Introspection, token: &str) -> HttpCall {
    let credentials = format!(
        "{}:{}",
        form_encode(&introspection.client_id),
        form_encode(introspection.client_secret.expose())
    );
    let body = format!("token={}&token_type_hint=access_token", form_encode(token));
    HttpCall {
        cluster: introspection.cluster.clone(),
        headers: vec![
            (":method".to_owned(), "POST".to_owned()),
            (":path".to_owned(), introspection.path.clone()),
            (":authority".to_owned(), introspection.authority.clone()),
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("accept".to_owned(), "application/json".to_owned()),
            (
                "authorization".to_owned(),
                format!("Basic {}", Base64::encode_string(credentials.as_bytes())),
            ),
        ],
        body: body.into_bytes(),
        timeout_ms: introspection.timeout_ms,
    }
}

/// Judges an introspection answer for `provider` at time `now` (Unix seconds); `catalog`
/// says which scopes and conditions the rules ask of its tokens.
///
/// Only `active` is required by RFC 7662; `exp`, `nbf`, `iss`, `aud` and `typ` are checked as
/// for a JWT when the IdP includes them, and the rules' scopes and conditions read the answer's
/// claims.
pub fn judge(
    provider: &Provider,
    catalog: &FactCatalog,
    answer: CallAnswer<'_>,
    now: i64,
) -> Result<Judgement, IdpFailure> {
    match answer.status {
        Some(200) => {}
        // Envoy answers a call it could not complete itself: 504 on timeout, 503 when the
        // cluster has no healthy host or the connection failed.
        Some(504) => return Err(IdpFailure::Timeout),
        Some(503) | None => return Err(IdpFailure::Unreachable),
        Some(401 | 403) => return Err(IdpFailure::ClientAuth),
        Some(500..=599) => return Err(IdpFailure::ServerError),
        Some(_) => return Err(IdpFailure::BadResponse),
    }
    let claims: Map<String, Value> =
        serde_json::from_slice(answer.body).map_err(|_| IdpFailure::BadResponse)?;
    match claims.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Judgement::Refused(Rejection::Inactive)),
        _ => return Err(IdpFailure::BadResponse),
    }
    let time = |name: &str| match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or(IdpFailure::BadResponse),
    };
    let view = ClaimView {
        claims: &claims,
        exp: time("exp")?,
        nbf: time("nbf")?,
        iat: time("iat")?,
    };
    Ok(match check_active_claims(provider, catalog, &view, now) {
        Ok(verified) => Judgement::Active(verified),
        Err(rejection) => Judgement::Refused(rejection),
    })
}

fn check_active_claims(
    config: &Provider,
    catalog: &FactCatalog,
    view: &ClaimView<'_>,
    now: i64,
) -> Result<Verified, Rejection> {
    let claims = view.claims;
    if claims.contains_key("iss") {
        check_issuer(config, claims.get("iss"))?;
    }
    if claims.contains_key("aud") {
        check_audience(config, claims.get("aud"))?;
    }
    if let Some(Value::String(typ)) = claims.get("typ") {
        check_token_type(config, typ)?;
    }
    let skew = i64::try_from(config.clock_skew_seconds).unwrap_or(i64::MAX);
    if config.verify_exp && view.exp.is_some_and(|exp| now > exp.saturating_add(skew)) {
        return Err(Rejection::Expired);
    }
    if config.verify_nbf && view.nbf.is_some_and(|nbf| now < nbf.saturating_sub(skew)) {
        return Err(Rejection::NotYetValid);
    }
    Verified::from_claims(config, catalog, view)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{self, Config};

    const NOW: i64 = 1_750_000_000;

    fn config_with(extra: Value) -> Config {
        let mut value = json!({
            "mode": "introspect",
            "issuer": "http://idp/realms/r",
            "audiences": ["api"],
            "required_scopes": ["email"],
            "introspection": {
                "cluster": "idp", "authority": "idp:8080", "path": "/introspect",
                "client_id": "gate way", "client_secret": "s3cr&t:="
            },
            "forward": {"claims_to_headers": [
                {"claim": "sub", "header": "x-sub"},
                {"claim": "exp", "header": "x-exp"},
            ]},
        });
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            value[k] = v;
        }
        config::parse(value.to_string().as_bytes()).unwrap()
    }

    fn active() -> Value {
        json!({
            "active": true, "iss": "http://idp/realms/r", "aud": ["api", "gateway"],
            "typ": "Bearer", "scope": "openid email", "sub": "alice",
            "exp": NOW + 60, "iat": NOW - 10, "client_id": "loadtest"
        })
    }

    fn judge_json(
        config: &Config,
        status: Option<u16>,
        body: &Value,
    ) -> Result<Judgement, IdpFailure> {
        let body = body.to_string();
        judge(
            &config.providers[0],
            &config.policy.catalogs[0],
            CallAnswer {
                status,
                body: body.as_bytes(),
            },
            NOW,
        )
    }

    #[test]
    fn the_request_is_a_form_post_with_basic_auth() {
        let config = config_with(json!({}));
        let call = request(
            config.providers[0].introspection.as_ref().unwrap(),
            "a.b+c/d=",
        );
        assert_eq!(call.cluster, "idp");
        assert_eq!(
            call.body,
            b"token=a.b%2Bc%2Fd%3D&token_type_hint=access_token"
        );
        let header = |name: &str| {
            call.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header(":method"), Some("POST"));
        assert_eq!(header(":path"), Some("/introspect"));
        assert_eq!(header(":authority"), Some("idp:8080"));
        assert_eq!(
            header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let expected = Base64::encode_string(b"gate+way:s3cr%26t%3A%3D");
        assert_eq!(
            header("authorization"),
            Some(format!("Basic {expected}").as_str())
        );
        assert_eq!(call.timeout_ms, 2000);
        // The secret is not in the configuration's debug output.
        assert!(!format!("{config:?}").contains("s3cr"));
    }

    #[test]
    fn answers_table() {
        let config = config_with(json!({}));
        let with = |change: &dyn Fn(&mut Value)| {
            let mut value = active();
            change(&mut value);
            value
        };
        type Case = (
            &'static str,
            Option<u16>,
            Value,
            Result<Option<Rejection>, IdpFailure>,
        );
        let cases: Vec<Case> = vec![
            ("active", Some(200), active(), Ok(None)),
            (
                "inactive",
                Some(200),
                json!({"active": false}),
                Ok(Some(Rejection::Inactive)),
            ),
            (
                "active as string",
                Some(200),
                json!({"active": "true"}),
                Err(IdpFailure::BadResponse),
            ),
            (
                "no active",
                Some(200),
                json!({"sub": "x"}),
                Err(IdpFailure::BadResponse),
            ),
            (
                "not an object",
                Some(200),
                json!([true]),
                Err(IdpFailure::BadResponse),
            ),
            (
                "exp as string",
                Some(200),
                with(&|v| v["exp"] = json!("soon")),
                Err(IdpFailure::BadResponse),
            ),
            (
                "expired",
                Some(200),
                with(&|v| v["exp"] = json!(NOW - 31)),
                Ok(Some(Rejection::Expired)),
            ),
            (
                "within skew",
                Some(200),
                with(&|v| v["exp"] = json!(NOW - 29)),
                Ok(None),
            ),
            (
                "not yet valid",
                Some(200),
                with(&|v| v["nbf"] = json!(NOW + 31)),
                Ok(Some(Rejection::NotYetValid)),
            ),
            (
                "wrong issuer",
                Some(200),
                with(&|v| v["iss"] = json!("http://evil")),
                Ok(Some(Rejection::WrongIssuer)),
            ),
            (
                "wrong audience",
                Some(200),
                with(&|v| v["aud"] = json!("other")),
                Ok(Some(Rejection::WrongAudience)),
            ),
            (
                "ID token",
                Some(200),
                with(&|v| v["typ"] = json!("ID")),
                Ok(Some(Rejection::WrongTokenType)),
            ),
            // Scopes are the rule's to check (the answer's facts say which are granted).
            (
                "missing scope",
                Some(200),
                with(&|v| v["scope"] = json!("openid")),
                Ok(None),
            ),
            (
                "minimal active",
                Some(200),
                json!({"active": true, "scope": "email"}),
                Ok(None),
            ),
            ("timeout", Some(504), json!({}), Err(IdpFailure::Timeout)),
            (
                "unreachable",
                Some(503),
                json!({}),
                Err(IdpFailure::Unreachable),
            ),
            ("reset", None, json!({}), Err(IdpFailure::Unreachable)),
            (
                "bad client credentials",
                Some(401),
                json!({"error": "invalid_client"}),
                Err(IdpFailure::ClientAuth),
            ),
            (
                "public client",
                Some(403),
                json!({}),
                Err(IdpFailure::ClientAuth),
            ),
            (
                "server error",
                Some(500),
                json!({}),
                Err(IdpFailure::ServerError),
            ),
            (
                "redirect",
                Some(302),
                json!({}),
                Err(IdpFailure::BadResponse),
            ),
        ];
        for (name, status, body, expected) in cases {
            let actual = judge_json(&config, status, &body).map(|judgement| match judgement {
                Judgement::Active(_) => None,
                Judgement::Refused(rejection) => Some(rejection),
            });
            assert_eq!(actual, expected, "case {name}");
        }
        let body = b"not json";
        assert_eq!(
            judge(
                &config.providers[0],
                &config.policy.catalogs[0],
                CallAnswer {
                    status: Some(200),
                    body
                },
                NOW
            ),
            Err(IdpFailure::BadResponse)
        );
    }

    #[test]
    fn active_answers_carry_forwarded_claims() {
        let config = config_with(json!({}));
        let Ok(Judgement::Active(verified)) = judge_json(&config, Some(200), &active()) else {
            panic!("expected active");
        };
        assert_eq!(verified.expires_at, Some(NOW + 60));
        assert_eq!(
            verified.facts, 1,
            "the rule's one scope, `email`, is granted"
        );
        assert_eq!(verified.subject.as_deref(), Some("alice"));
        assert_eq!(
            verified.forwarded,
            vec![Some("alice".to_owned()), Some((NOW + 60).to_string())]
        );
    }
}

//! A realm's OAuth endpoints: minting tokens, refreshing them, introspection, revocation,
//! RP-initiated logout, JWKS and discovery.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Deserializer};

use super::realm::REALM;

/// A token endpoint response.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Seconds until the access token expires, as Keycloak counted when answering: 0 if it
    /// had expired by then (Keycloak sends a negative number when answering took longer than
    /// the token's life, as for the 2-second client on busy cores).
    #[serde(deserialize_with = "seconds_left")]
    pub expires_in: u64,
    pub token_type: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub refresh_expires_in: Option<u64>,
    #[serde(default)]
    pub id_token: Option<String>,
}

fn seconds_left<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let seconds = i64::deserialize(deserializer)?;
    Ok(u64::try_from(seconds).unwrap_or(0))
}

/// Calls one realm's OAuth endpoints. Each call opens its own
/// connection (see [`crate::http::send`]), so it works from any runtime.
#[derive(Debug, Clone)]
pub struct KeycloakClient {
    issuer: String,
}

impl KeycloakClient {
    /// For the tokengate realm of the Keycloak at `base_url` (`http://host:port`).
    pub fn new(base_url: &str) -> Self {
        Self::for_realm(base_url, REALM)
    }

    /// For `realm` of the Keycloak at `base_url`.
    pub fn for_realm(base_url: &str, realm: &str) -> Self {
        Self {
            issuer: format!("{}/realms/{realm}", base_url.trim_end_matches('/')),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/protocol/openid-connect/{path}", self.issuer)
    }

    /// Client credentials grant, client authenticated with HTTP Basic.
    pub async fn client_credentials(&self, client_id: &str, secret: &str) -> Result<TokenResponse> {
        self.token(client_id, secret, &[("grant_type", "client_credentials")])
            .await
    }

    /// Resource owner password grant for `username`, through `client_id`. The answer has a
    /// refresh token, and the grant opens a user session (which logouts end).
    pub async fn password_grant(
        &self,
        client_id: &str,
        secret: &str,
        username: &str,
        password: &str,
    ) -> Result<TokenResponse> {
        self.token(
            client_id,
            secret,
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Refresh grant: new tokens for the session of `refresh_token`. Fails (400
    /// `invalid_grant`) once the session has ended.
    pub async fn refresh(
        &self,
        client_id: &str,
        secret: &str,
        refresh_token: &str,
    ) -> Result<TokenResponse> {
        self.token(
            client_id,
            secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn token(
        &self,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse> {
        let url = self.endpoint("token");
        let response = post_form(&url, client_id, secret, form).await?;
        if response.status != 200 {
            bail!(
                "token request as {client_id} answered {}: {}",
                response.status,
                response.text()
            );
        }
        serde_json::from_slice(&response.body).with_context(|| {
            format!(
                "token response from {url} is not a token: {}",
                response.text()
            )
        })
    }

    /// RFC 7662 introspection of an access token, as `client_id`. Keycloak
    /// answers `{"active": false}` for expired, revoked and foreign tokens,
    /// and for tokens whose `aud` lacks `client_id`. Fails on any status but
    /// 200 (401: bad client credentials).
    pub async fn introspect(
        &self,
        token: &str,
        client_id: &str,
        secret: &str,
    ) -> Result<serde_json::Value> {
        let url = self.endpoint("token/introspect");
        let response = post_form(
            &url,
            client_id,
            secret,
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .await?;
        if response.status != 200 {
            bail!(
                "introspection as {client_id} answered {}: {}",
                response.status,
                response.text()
            );
        }
        response.json()
    }

    /// RFC 7009 revocation of an access token. `client_id` must be the
    /// client the token was issued to (its `azp`).
    pub async fn revoke(&self, token: &str, client_id: &str, secret: &str) -> Result<()> {
        let url = self.endpoint("revoke");
        let response = post_form(
            &url,
            client_id,
            secret,
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .await?;
        if response.status != 200 {
            bail!(
                "revocation as {client_id} answered {}: {}",
                response.status,
                response.text()
            );
        }
        Ok(())
    }

    /// RP-initiated logout without a browser: `POST …/logout` with the client's credentials
    /// in the form (`client_id`, `client_secret`) and the session's `refresh_token`. Keycloak
    /// answers 204, ends the session, and sends back-channel logout tokens to the clients
    /// that registered a `backchannel.logout.url`.
    pub async fn logout(&self, client_id: &str, secret: &str, refresh_token: &str) -> Result<()> {
        let url = self.endpoint("logout");
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", client_id),
                ("client_secret", secret),
                ("refresh_token", refresh_token),
            ])
            .finish();
        let response = crate::http::send(
            "POST",
            &url,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body.into_bytes()),
        )
        .await?;
        if response.status != 204 {
            bail!(
                "logout as {client_id} answered {}: {}",
                response.status,
                response.text()
            );
        }
        Ok(())
    }

    /// The realm's JWKS (signing keys and, in the first realm, the RSA-OAEP encryption key).
    pub async fn jwks(&self) -> Result<serde_json::Value> {
        get_json(&self.endpoint("certs")).await
    }

    /// The realm's OpenID Provider metadata.
    pub async fn discovery(&self) -> Result<serde_json::Value> {
        get_json(&format!("{}/.well-known/openid-configuration", self.issuer)).await
    }
}

async fn get_json(url: &str) -> Result<serde_json::Value> {
    let response = crate::http::get(url, &[]).await?;
    if response.status != 200 {
        bail!(
            "GET {url} answered {}: {}",
            response.status,
            response.text()
        );
    }
    response.json()
}

async fn post_form(
    url: &str,
    client_id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> Result<crate::http::Response> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let authorization = basic_auth(client_id, secret);
    crate::http::send(
        "POST",
        url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
            ("authorization", &authorization),
        ],
        Some(body.into_bytes()),
    )
    .await
}

/// `Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 §2.3.1
/// specifies for client credentials.
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// A JWT's header and payload, decoded without any verification.
#[derive(Debug, Clone)]
pub struct UnverifiedJwt {
    pub header: serde_json::Value,
    pub payload: serde_json::Value,
}

/// Decodes a compact JWS's header and payload. Checks nothing: for tests and
/// for the load driver's bookkeeping (e.g. reading `exp`), never for trust.
pub fn decode_unverified(token: &str) -> Result<UnverifiedJwt> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("not a compact JWS (three dot-separated parts)");
    };
    let decode = |part: &str, what: &str| -> Result<serde_json::Value> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .with_context(|| format!("JWT {what} is not base64url"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("JWT {what} is not JSON"))
    };
    Ok(UnverifiedJwt {
        header: decode(header, "header")?,
        payload: decode(payload, "payload")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_urlencodes_then_base64s() {
        assert_eq!(
            basic_auth("tokengate-gateway", "gateway-secret"),
            format!(
                "Basic {}",
                STANDARD.encode("tokengate-gateway:gateway-secret")
            )
        );
        // ':' and ' ' inside the parts must not confuse the server's split.
        assert_eq!(
            basic_auth("a:b", "c d"),
            format!("Basic {}", STANDARD.encode("a%3Ab:c+d"))
        );
    }

    #[test]
    fn decodes_jwt_parts_and_rejects_junk() -> Result<()> {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"iss":"x","exp":5}"#);
        let jwt = decode_unverified(&format!("{header}.{payload}.sig"))?;
        assert_eq!(jwt.header["kid"], "k1");
        assert_eq!(jwt.payload["exp"], 5);
        assert!(decode_unverified("a.b").is_err());
        assert!(decode_unverified("a.b.c.d.e").is_err());
        assert!(decode_unverified(&format!("{header}.!!!.sig")).is_err());
        Ok(())
    }

    #[test]
    fn an_expired_token_has_no_seconds_left() -> Result<()> {
        let parse = |expires_in: &str| -> Result<u64> {
            let text = format!(
                r#"{{"access_token":"t","expires_in":{expires_in},"token_type":"Bearer"}}"#
            );
            Ok(serde_json::from_str::<TokenResponse>(&text)?.expires_in)
        };
        assert_eq!(parse("300")?, 300);
        assert_eq!(parse("0")?, 0);
        assert_eq!(parse("-1")?, 0);
        assert!(parse("\"x\"").is_err());
        Ok(())
    }

    #[test]
    fn clients_name_their_realm() {
        let client = KeycloakClient::new("http://127.0.0.1:1/");
        assert_eq!(client.issuer(), "http://127.0.0.1:1/realms/tokengate");
        let partner = KeycloakClient::for_realm("http://127.0.0.1:1", "tokengate-partner");
        assert_eq!(
            partner.issuer(),
            "http://127.0.0.1:1/realms/tokengate-partner"
        );
        assert_eq!(
            partner.endpoint("logout"),
            "http://127.0.0.1:1/realms/tokengate-partner/protocol/openid-connect/logout"
        );
    }
}

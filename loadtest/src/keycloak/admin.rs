//! Keycloak's admin REST API (`/admin/realms/...`), as the master realm's bootstrap admin:
//! what tests need to change a running realm (client settings, sessions, signing keys).
//!
//! Changes are made to the Keycloak the client points at and persist in its database. The
//! shared test Keycloak is used by many tests at once: change only instances of your own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::realm::{ADMIN_PASSWORD, ADMIN_USERNAME};

/// The master realm's admin tokens live 60 s; take a new one when less than this is left.
const TOKEN_MARGIN: Duration = Duration::from_secs(15);
const KEY_PROVIDER_TYPE: &str = "org.keycloak.keys.KeyProvider";
/// Logins that time out are tried again this many times in all. The first password check
/// after a start can take longer than a request's 10 s on busy cores (cold JIT, Argon2).
const LOGIN_ATTEMPTS: u32 = 4;

/// An admin API client for the Keycloak at a base URL. It logs in (password grant through
/// the master realm's public `admin-cli` client) on first use and again when its token is
/// about to expire; concurrent calls share one login. [`super::Keycloak::admin`] keeps one
/// per Keycloak.
#[derive(Debug)]
pub struct AdminClient {
    base_url: String,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

/// One key of a realm, as `GET /admin/realms/{realm}/keys` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RealmKey {
    pub kid: String,
    /// `RS256`, `ES256`, `RSA-OAEP`, `HS512`, `AES`, ...
    #[serde(default)]
    pub algorithm: String,
    /// `RSA`, `EC`, `OCT`.
    #[serde(rename = "type", default)]
    pub key_type: String,
    /// `SIG` or `ENC`.
    #[serde(rename = "use", default)]
    pub key_use: String,
    /// The id of the key provider component that holds the key.
    #[serde(default)]
    pub provider_id: String,
    #[serde(default)]
    pub provider_priority: i64,
    /// `ACTIVE`, `PASSIVE` or `DISABLED`.
    #[serde(default)]
    pub status: String,
}

/// A realm's keys and, per algorithm, the kid new tokens are signed with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RealmKeys {
    #[serde(default)]
    pub active: BTreeMap<String, String>,
    #[serde(default)]
    pub keys: Vec<RealmKey>,
}

impl RealmKeys {
    /// Every kid, in the order Keycloak lists them.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }
}

impl AdminClient {
    /// For the Keycloak at `base_url` (`http://host:port`).
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// The id (UUID) of `username` in `realm`.
    pub async fn user_id(&self, realm: &str, username: &str) -> Result<String> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("username", username), ("exact", "true")])
            .finish();
        let users = self
            .get(&format!("/admin/realms/{realm}/users?{query}"))
            .await?;
        find_id(&users, "username", username)
            .with_context(|| format!("no user {username:?} in realm {realm}"))
    }

    /// The id (UUID) of the client whose `clientId` is `client_id` in `realm`.
    pub async fn client_uuid(&self, realm: &str, client_id: &str) -> Result<String> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("clientId", client_id)
            .finish();
        let clients = self
            .get(&format!("/admin/realms/{realm}/clients?{query}"))
            .await?;
        find_id(&clients, "clientId", client_id)
            .with_context(|| format!("no client {client_id:?} in realm {realm}"))
    }

    /// The client's representation (`GET /admin/realms/{realm}/clients/{uuid}`).
    pub async fn client(&self, realm: &str, client_id: &str) -> Result<Value> {
        let uuid = self.client_uuid(realm, client_id).await?;
        self.get(&format!("/admin/realms/{realm}/clients/{uuid}"))
            .await
    }

    /// Changes a client: the top-level fields of `changes` replace the client's, except
    /// `attributes`, whose entries are merged into the client's attributes. Returns the
    /// client as Keycloak has it afterwards.
    pub async fn update_client(
        &self,
        realm: &str,
        client_id: &str,
        changes: &Value,
    ) -> Result<Value> {
        let uuid = self.client_uuid(realm, client_id).await?;
        let path = format!("/admin/realms/{realm}/clients/{uuid}");
        let mut client = self.get(&path).await?;
        merge_client(&mut client, changes)?;
        self.send_expect("PUT", &path, Some(&client), 204).await?;
        self.get(&path).await
    }

    /// Registers `url` as the client's back-channel logout URL, with the session id in the
    /// logout token (`backchannel.logout.session.required`) and front-channel logout off, so
    /// Keycloak POSTs `logout_token=…` there when a session of the client ends.
    pub async fn set_backchannel_logout(
        &self,
        realm: &str,
        client_id: &str,
        url: &str,
    ) -> Result<Value> {
        let changes = json!({
            "frontchannelLogout": false,
            "attributes": {
                "backchannel.logout.url": url,
                "backchannel.logout.session.required": "true",
            },
        });
        self.update_client(realm, client_id, &changes).await
    }

    /// Ends one user session, the `sid` of its tokens
    /// (`DELETE /admin/realms/{realm}/sessions/{sid}`, 204). Clients of that session with a
    /// back-channel logout URL get a logout token before Keycloak answers.
    pub async fn end_session(&self, realm: &str, session_id: &str) -> Result<()> {
        self.send_expect(
            "DELETE",
            &format!("/admin/realms/{realm}/sessions/{session_id}"),
            None,
            204,
        )
        .await
        .map(|_| ())
    }

    /// Ends every session of the user with id `user_id` in `realm`
    /// (`POST /admin/realms/{realm}/users/{id}/logout`, 204). Clients with a back-channel
    /// logout URL get a logout token for each session.
    pub async fn logout_user(&self, realm: &str, user_id: &str) -> Result<()> {
        self.send_expect(
            "POST",
            &format!("/admin/realms/{realm}/users/{user_id}/logout"),
            None,
            204,
        )
        .await
        .map(|_| ())
    }

    /// The realm's keys (`GET /admin/realms/{realm}/keys`).
    pub async fn realm_keys(&self, realm: &str) -> Result<RealmKeys> {
        let keys = self.get(&format!("/admin/realms/{realm}/keys")).await?;
        serde_json::from_value(keys.clone())
            .with_context(|| format!("keys of realm {realm} are not a key list: {keys}"))
    }

    /// Adds a new RS256 signing key to `realm` (an `rsa-generated` key provider, 2048 bits)
    /// at `priority`. Keycloak signs new RS256 tokens with the active key of the highest
    /// priority, so above the realm's own (100) it takes over at once; older keys stay in
    /// the JWKS and keep verifying. Returns the new key's kid.
    pub async fn add_rsa_signing_key(&self, realm: &str, priority: u32) -> Result<String> {
        let realm_id = self.get(&format!("/admin/realms/{realm}")).await?["id"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("realm {realm} has no id"))?;
        let name = format!(
            "rsa-generated-{priority}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let component = json!({
            "name": name,
            "providerId": "rsa-generated",
            "providerType": KEY_PROVIDER_TYPE,
            "parentId": realm_id,
            "config": {
                "priority": [priority.to_string()],
                "keySize": ["2048"],
                "algorithm": ["RS256"],
                "active": ["true"],
                "enabled": ["true"],
            },
        });
        let response = self
            .send_expect(
                "POST",
                &format!("/admin/realms/{realm}/components"),
                Some(&component),
                201,
            )
            .await?;
        let location = response
            .header("location")
            .context("component created without a Location")?;
        let component_id = location
            .rsplit('/')
            .next()
            .filter(|id| !id.is_empty())
            .with_context(|| format!("no component id in Location {location}"))?
            .to_string();
        let keys = self.realm_keys(realm).await?;
        keys.keys
            .iter()
            .find(|k| k.provider_id == component_id)
            .map(|k| k.kid.clone())
            .with_context(|| {
                format!("realm {realm} lists no key of the new provider {component_id}: {keys:?}")
            })
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.send_expect("GET", path, None, 200).await?.json()
    }

    async fn send_expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        expected: u16,
    ) -> Result<crate::http::Response> {
        let url = format!("{}{path}", self.base_url);
        let token = self.token().await?;
        let authorization = format!("Bearer {token}");
        let mut headers = vec![
            ("authorization", authorization.as_str()),
            ("accept", "application/json"),
        ];
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body.map(|b| b.to_string().into_bytes());
        let response = crate::http::send(method, &url, &headers, body).await?;
        if response.status != expected {
            bail!(
                "{method} {url} answered {} (wanted {expected}): {}",
                response.status,
                response.text()
            );
        }
        Ok(response)
    }

    /// An admin access token, from the cache or a new login.
    async fn token(&self) -> Result<String> {
        // Held across the login, so concurrent callers wait for one login instead of each
        // making their own.
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() + TOKEN_MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let mut attempt = 1;
        let (token, expires) = loop {
            match self.login().await {
                Ok(login) => break login,
                Err(e)
                    if attempt < LOGIN_ATTEMPTS && e.downcast_ref::<LoginRefused>().is_none() =>
                {
                    eprintln!("keycloak admin login attempt {attempt} failed, trying again: {e:#}");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        *cached = Some((token.clone(), expires));
        Ok(token)
    }

    async fn login(&self) -> Result<(String, Instant)> {
        let url = format!(
            "{}/realms/master/protocol/openid-connect/token",
            self.base_url
        );
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", ADMIN_USERNAME),
                ("password", ADMIN_PASSWORD),
            ])
            .finish();
        let requested = Instant::now();
        let response = crate::http::send(
            "POST",
            &url,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body.into_bytes()),
        )
        .await?;
        if response.status != 200 {
            return Err(anyhow::Error::new(LoginRefused(format!(
                "admin login as {ADMIN_USERNAME} at {url} answered {}: {}",
                response.status,
                response.text()
            ))));
        }
        let answer = response.json()?;
        let token = answer["access_token"]
            .as_str()
            .with_context(|| format!("admin login answer has no access_token: {answer}"))?
            .to_string();
        let lifetime = Duration::from_secs(answer["expires_in"].as_u64().unwrap_or(60));
        Ok((token, requested + lifetime))
    }
}

/// Keycloak answered the login, and not with a token: trying again will not help.
#[derive(Debug)]
struct LoginRefused(String);

impl std::fmt::Display for LoginRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoginRefused {}

/// The `id` of the entry of `list` whose `field` is exactly `value` (Keycloak's searches may
/// match more loosely).
fn find_id(list: &Value, field: &str, value: &str) -> Option<String> {
    list.as_array()?
        .iter()
        .find(|entry| entry[field] == value)
        .and_then(|entry| entry["id"].as_str())
        .map(str::to_string)
}

/// Applies `changes` to a client representation: top-level fields replace, `attributes`
/// entries merge.
fn merge_client(client: &mut Value, changes: &Value) -> Result<()> {
    let (Some(client), Some(changes)) = (client.as_object_mut(), changes.as_object()) else {
        bail!("a client and its changes must be JSON objects");
    };
    for (key, value) in changes {
        if key == "attributes" {
            let Some(new) = value.as_object() else {
                bail!("client changes: \"attributes\" must be an object");
            };
            let attributes = client
                .entry("attributes")
                .or_insert_with(|| Value::Object(Default::default()));
            let Some(attributes) = attributes.as_object_mut() else {
                bail!("the client's \"attributes\" is not an object");
            };
            for (name, v) in new {
                attributes.insert(name.clone(), v.clone());
            }
        } else {
            client.insert(key.clone(), value.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_changes_replace_fields_and_merge_attributes() -> Result<()> {
        let mut client = json!({
            "clientId": "c",
            "frontchannelLogout": true,
            "attributes": {"a": "1", "b": "2"},
        });
        merge_client(
            &mut client,
            &json!({"frontchannelLogout": false, "attributes": {"b": "3", "c": "4"}}),
        )?;
        assert_eq!(
            client,
            json!({
                "clientId": "c",
                "frontchannelLogout": false,
                "attributes": {"a": "1", "b": "3", "c": "4"},
            })
        );
        let mut bare = json!({"clientId": "c"});
        merge_client(&mut bare, &json!({"attributes": {"x": "y"}}))?;
        assert_eq!(bare["attributes"]["x"], "y");
        assert!(merge_client(&mut bare, &json!({"attributes": "no"})).is_err());
        assert!(merge_client(&mut json!([]), &json!({})).is_err());
        Ok(())
    }

    #[test]
    fn finds_the_exact_match_only() {
        let list = json!([
            {"id": "1", "username": "bobby"},
            {"id": "2", "username": "bob"},
        ]);
        assert_eq!(find_id(&list, "username", "bob"), Some("2".to_string()));
        assert_eq!(find_id(&list, "username", "bo"), None);
        assert_eq!(find_id(&json!({}), "username", "bob"), None);
    }

    #[test]
    fn parses_the_key_list() -> Result<()> {
        let keys: RealmKeys = serde_json::from_value(json!({
            "active": {"RS256": "k2", "ES256": "e1"},
            "keys": [
                {"algorithm": "RS256", "type": "RSA", "kid": "k1", "use": "SIG",
                 "providerId": "p1", "providerPriority": 100, "status": "ACTIVE",
                 "publicKey": "MII..."},
                {"algorithm": "RS256", "type": "RSA", "kid": "k2", "use": "SIG",
                 "providerId": "p2", "providerPriority": 200, "status": "ACTIVE"},
            ],
        }))?;
        assert_eq!(keys.kids(), ["k1", "k2"]);
        assert_eq!(keys.active["RS256"], "k2");
        assert_eq!(keys.keys[1].provider_priority, 200);
        assert_eq!(keys.keys[0].key_use, "SIG");
        Ok(())
    }
}

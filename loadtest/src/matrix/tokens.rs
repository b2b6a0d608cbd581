//! Token pools minted from Keycloak before a run: every kind a scenario sends.
//!
//! Valid, revoked and wrong-audience tokens live as long as the realm says (300 s): pools are
//! re-minted before a cell whenever they would expire during it. Expired tokens come from the
//! 2-second client and are usable once past the gateways' leeway. The policy scenarios' pools
//! (realm B's client, realm A's users with and without the role `admin`) are minted only for
//! runs that have them, and re-minted with the others. The `logged-out` pool (one session of
//! `alice`, ended at Keycloak once minted: `matrix/logout.rs`) only once
//! [`TokenPools::enable_logged_out`] was called, after the gateways were told where logouts go.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::keycloak::{self, Client, KeycloakClient, TokenResponse, User};
use crate::matrix::scenario::TokenKind;

/// Minting calls in flight at once (Keycloak has two cores to share with everything else).
const MINT_CONCURRENCY: usize = 8;
/// Seconds an expired token must be past its `exp` before use: the gateways' clock leeway
/// (5 s) plus a margin.
const EXPIRED_MARGIN: Duration = Duration::from_secs(2 + 5 + 2);

/// Pre-minted tokens of every kind.
pub struct TokenPools {
    client: KeycloakClient,
    size: usize,
    valid: Vec<String>,
    revoked: Vec<String>,
    wrong_audience: Vec<String>,
    /// When the live pools (valid, revoked, wrong audience, policy) stop being valid.
    live_until: Instant,
    expired: Vec<String>,
    expired_usable_at: Instant,
    policy: Option<PolicyPools>,
    logged_out: Option<LoggedOutPool>,
}

/// Tokens of a session that Keycloak's admin API ended after they were minted.
struct LoggedOutPool {
    admin: Arc<keycloak::AdminClient>,
    tokens: Vec<String>,
}

/// The policy scenarios' tokens.
struct PolicyPools {
    /// Realm B (`tokengate-partner`).
    partner_client: KeycloakClient,
    partner: Vec<String>,
    without_admin_role: Vec<String>,
    with_admin_role: Vec<String>,
}

impl TokenPools {
    /// Mints pools of `size` tokens of each API kind. The expired pool comes first, so that it
    /// is past its leeway as soon as possible.
    pub async fn mint(client: KeycloakClient, size: usize) -> Result<TokenPools> {
        Self::mint_with_policy(client, None, size).await
    }

    /// [`TokenPools::mint`], plus the policy scenarios' kinds when `partner` is given (realm
    /// B's tokens come from it: the same Keycloak's `tokengate-partner` realm).
    pub async fn mint_with_policy(
        client: KeycloakClient,
        partner: Option<KeycloakClient>,
        size: usize,
    ) -> Result<TokenPools> {
        let size = size.max(1);
        let started = Instant::now();
        let expired = mint_clients(&client, keycloak::SHORT_LIVED, size).await?;
        let expired_usable_at = started + EXPIRED_MARGIN;
        let mut pools = TokenPools {
            client,
            size,
            valid: Vec::new(),
            revoked: Vec::new(),
            wrong_audience: Vec::new(),
            live_until: Instant::now(),
            expired: expired.tokens,
            expired_usable_at,
            policy: partner.map(|partner_client| PolicyPools {
                partner_client,
                partner: Vec::new(),
                without_admin_role: Vec::new(),
                with_admin_role: Vec::new(),
            }),
            logged_out: None,
        };
        pools.remint_live().await?;
        Ok(pools)
    }

    async fn remint_live(&mut self) -> Result<()> {
        let valid = mint_clients(&self.client, keycloak::LOADTEST, self.size).await?;
        let revoked = mint_clients(&self.client, keycloak::LOADTEST, self.size).await?;
        revoke_all(&self.client, &revoked.tokens).await?;
        let wrong_audience = mint_clients(&self.client, keycloak::OTHER_API, self.size).await?;
        let mut until = vec![
            valid.valid_until,
            revoked.valid_until,
            wrong_audience.valid_until,
        ];
        if let Some(policy) = &mut self.policy {
            let partner = mint_clients(
                &policy.partner_client,
                keycloak::PARTNER_LOADTEST,
                self.size,
            )
            .await?;
            let alice = mint_users(&self.client, keycloak::ALICE, self.size).await?;
            let carol = mint_users(&self.client, keycloak::CAROL, self.size).await?;
            until.extend([partner.valid_until, alice.valid_until, carol.valid_until]);
            policy.partner = partner.tokens;
            policy.without_admin_role = alice.tokens;
            policy.with_admin_role = carol.tokens;
        }
        if let Some(pool) = &mut self.logged_out {
            let (tokens, valid_until) =
                mint_logged_out(&self.client, &pool.admin, self.size).await?;
            pool.tokens = tokens;
            until.push(valid_until);
        }
        self.live_until = until.into_iter().min().unwrap_or_else(Instant::now);
        self.valid = valid.tokens;
        self.revoked = revoked.tokens;
        self.wrong_audience = wrong_audience.tokens;
        Ok(())
    }

    /// Makes sure every pool is usable for the next `needed`: re-mints live tokens that would
    /// expire, waits for the expired ones to be past the leeway.
    pub async fn ready_for(&mut self, kind: Option<TokenKind>, needed: Duration) -> Result<()> {
        let margin = Duration::from_secs(10);
        if Instant::now() + needed + margin >= self.live_until {
            self.remint_live().await?;
        }
        if kind == Some(TokenKind::Expired)
            && let Some(wait) = self
                .expired_usable_at
                .checked_duration_since(Instant::now())
        {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Mints the `logged-out` pool now and with every re-mint: call it once Keycloak posts
    /// logouts where the gateways receive them.
    pub async fn enable_logged_out(&mut self, admin: Arc<keycloak::AdminClient>) -> Result<()> {
        let (tokens, valid_until) = mint_logged_out(&self.client, &admin, self.size).await?;
        self.live_until = self.live_until.min(valid_until);
        self.logged_out = Some(LoggedOutPool { admin, tokens });
        Ok(())
    }

    /// Whether the policy scenarios' kinds were minted.
    pub fn has_policy(&self) -> bool {
        self.policy.is_some()
    }

    /// The tokens a request of `kind` carries; empty for [`TokenKind::Missing`], and for the
    /// policy kinds when they were not minted.
    pub fn tokens(&self, kind: TokenKind) -> Vec<String> {
        let policy = |pick: fn(&PolicyPools) -> &Vec<String>| {
            self.policy.as_ref().map(pick).cloned().unwrap_or_default()
        };
        match kind {
            TokenKind::Valid => self.valid.clone(),
            TokenKind::Expired => self.expired.clone(),
            TokenKind::Revoked => self.revoked.clone(),
            TokenKind::WrongAudience => self.wrong_audience.clone(),
            TokenKind::InvalidSignature => self.valid.iter().map(|t| tamper_signature(t)).collect(),
            TokenKind::AlgNone => self
                .valid
                .iter()
                .filter_map(|t| strip_to_alg_none(t))
                .collect(),
            TokenKind::Malformed => MALFORMED.iter().map(|t| (*t).to_owned()).collect(),
            TokenKind::Missing => Vec::new(),
            TokenKind::Partner => policy(|p| &p.partner),
            TokenKind::WithoutAdminRole => policy(|p| &p.without_admin_role),
            TokenKind::WithAdminRole => policy(|p| &p.with_admin_role),
            TokenKind::CrossRealm => policy(|p| &p.partner)
                .iter()
                .filter_map(|t| with_issuer(t, self.client.issuer()))
                .collect(),
            TokenKind::LoggedOut => self
                .logged_out
                .as_ref()
                .map(|pool| pool.tokens.clone())
                .unwrap_or_default(),
        }
    }

    pub fn client(&self) -> &KeycloakClient {
        &self.client
    }
}

/// Tokens that are not JWTs at all, or broken ones.
const MALFORMED: [&str; 5] = [
    "not-a-jwt",
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0",
    "a.b.c",
    "eyJhbGciOiJSUzI1NiJ9..",
    "e.y.J.h.b",
];

struct Minted {
    tokens: Vec<String>,
    valid_until: Instant,
}

/// `count` tokens from calls of `mint`, at most [`MINT_CONCURRENCY`] at once.
async fn mint_many<F, Fut>(count: usize, what: &str, mint: F) -> Result<Minted>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<TokenResponse>> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MINT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for _ in 0..count {
        let limit = Arc::clone(&limit);
        let call = mint();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            call.await
        });
    }
    let mut tokens = Vec::with_capacity(count);
    let mut lifetime = u64::MAX;
    while let Some(joined) = tasks.join_next().await {
        let response = joined
            .context("a minting task failed")?
            .with_context(|| format!("minting a token for {what}"))?;
        lifetime = lifetime.min(response.expires_in);
        tokens.push(response.access_token);
    }
    Ok(Minted {
        tokens,
        valid_until: started + Duration::from_secs(lifetime.min(86_400)),
    })
}

/// Client credentials grants of `who`.
async fn mint_clients(client: &KeycloakClient, who: Client, count: usize) -> Result<Minted> {
    mint_many(count, who.id, || {
        let client = client.clone();
        async move { client.client_credentials(who.id, who.secret).await }
    })
    .await
}

/// Access tokens of `user` (through [`keycloak::LOADTEST`]): one password grant, then refresh
/// grants on its session. A password grant costs Keycloak a password hash (about 250 ms of
/// its CPU here, against 30 ms for a refresh), so a pool of 50 would take it seconds.
async fn mint_users(client: &KeycloakClient, user: User, count: usize) -> Result<Minted> {
    let who = keycloak::LOADTEST;
    let started = Instant::now();
    let first = client
        .password_grant(who.id, who.secret, user.username, user.password)
        .await
        .with_context(|| format!("password grant for {}", user.username))?;
    let refresh_token = first.refresh_token.clone().ok_or_else(|| {
        anyhow!(
            "the password grant for {} had no refresh token",
            user.username
        )
    })?;
    let mut rest = mint_many(count.saturating_sub(1), user.username, || {
        let client = client.clone();
        let refresh_token = refresh_token.clone();
        async move { client.refresh(who.id, who.secret, &refresh_token).await }
    })
    .await?;
    rest.tokens.insert(0, first.access_token);
    let first_until = started + Duration::from_secs(first.expires_in.min(86_400));
    rest.valid_until = rest.valid_until.min(first_until);
    Ok(rest)
}

/// `count` tokens of one session of `alice`, then that session ended through the admin API
/// (Keycloak posts the logout token to the client's back-channel URL before it answers).
async fn mint_logged_out(
    client: &KeycloakClient,
    admin: &keycloak::AdminClient,
    count: usize,
) -> Result<(Vec<String>, Instant)> {
    let minted = mint_users(client, keycloak::ALICE, count).await?;
    let first = minted
        .tokens
        .first()
        .ok_or_else(|| anyhow!("no logged-out token minted"))?;
    let sid = super::logout::sid(first)?;
    admin
        .end_session(keycloak::REALM, &sid)
        .await
        .context("ending the logged-out pool's session")?;
    Ok((minted.tokens, minted.valid_until))
}

async fn revoke_all(client: &KeycloakClient, tokens: &[String]) -> Result<()> {
    for token in tokens {
        client
            .revoke(token, keycloak::LOADTEST.id, keycloak::LOADTEST.secret)
            .await
            .context("revoking a token")?;
    }
    Ok(())
}

/// The same token with one bit of its signature flipped: every cheap check passes, the
/// signature does not.
pub fn tamper_signature(token: &str) -> String {
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return token.to_owned();
    };
    match URL_SAFE_NO_PAD.decode(signature) {
        Ok(mut bytes) => {
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x01;
            }
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
        }
        Err(_) => token.to_owned(),
    }
}

/// The same token with its payload's `iss` replaced by `issuer`, header and signature kept:
/// it claims `issuer` and is signed by the key of the issuer that minted it.
pub fn with_issuer(token: &str, issuer: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    *claims.as_object_mut()?.get_mut("iss")? = serde_json::Value::String(issuer.to_owned());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    Some(format!("{header}.{payload}.{signature}"))
}

/// The token's claims under `{"alg":"none"}` and no signature: the classic forgery.
pub fn strip_to_alg_none(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    Some(format!("{header}.{payload}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgeries() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        let signature = URL_SAFE_NO_PAD.encode([1u8, 2, 3, 4]);
        let token = format!("{header}.{payload}.{signature}");
        let tampered = tamper_signature(&token);
        assert_ne!(tampered, token);
        assert!(tampered.starts_with(&format!("{header}.{payload}.")));
        let none = strip_to_alg_none(&token).unwrap();
        assert!(none.ends_with(&format!(".{payload}.")));
        let decoded = URL_SAFE_NO_PAD
            .decode(none.split('.').next().unwrap())
            .unwrap();
        assert_eq!(decoded, br#"{"alg":"none","typ":"JWT"}"#);
    }

    #[test]
    fn issuer_replaced_signature_kept() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","kid":"b"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"http://kc/realms/b","sub":"x"}"#);
        let token = format!("{header}.{payload}.c2ln");
        let forged = with_issuer(&token, "http://kc/realms/a").unwrap();
        let parts: Vec<&str> = forged.split('.').collect();
        assert_eq!((parts[0], parts[2]), (header.as_str(), "c2ln"));
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "http://kc/realms/a");
        assert_eq!(claims["sub"], "x");
        assert_eq!(with_issuer("not-a-jwt", "x"), None);
        let no_iss = format!(
            "{header}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#)
        );
        assert_eq!(with_issuer(&no_iss, "x"), None);
    }
}

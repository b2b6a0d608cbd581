//! Token pools minted from Keycloak before a run: every kind a scenario sends.
//!
//! Valid, revoked and wrong-audience tokens live as long as the realm says (300 s): pools are
//! re-minted before a cell whenever they would expire during it. Expired tokens come from the
//! 2-second client and are usable once past the gateways' leeway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::keycloak::{self, Client, KeycloakClient};
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
    /// When the live pools (valid, revoked, wrong audience) stop being valid.
    live_until: Instant,
    expired: Vec<String>,
    expired_usable_at: Instant,
}

impl TokenPools {
    /// Mints pools of `size` tokens of each kind. The expired pool comes first, so that it
    /// is past its leeway as soon as possible.
    pub async fn mint(client: KeycloakClient, size: usize) -> Result<TokenPools> {
        let size = size.max(1);
        let started = Instant::now();
        let expired = mint_many(&client, keycloak::SHORT_LIVED, size).await?;
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
        };
        pools.remint_live().await?;
        Ok(pools)
    }

    async fn remint_live(&mut self) -> Result<()> {
        let valid = mint_many(&self.client, keycloak::LOADTEST, self.size).await?;
        let revoked = mint_many(&self.client, keycloak::LOADTEST, self.size).await?;
        revoke_all(&self.client, &revoked.tokens).await?;
        let wrong_audience = mint_many(&self.client, keycloak::OTHER_API, self.size).await?;
        self.live_until = [
            valid.valid_until,
            revoked.valid_until,
            wrong_audience.valid_until,
        ]
        .into_iter()
        .min()
        .unwrap_or_else(Instant::now);
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

    /// The tokens a request of `kind` carries; empty for [`TokenKind::Missing`].
    pub fn tokens(&self, kind: TokenKind) -> Vec<String> {
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

async fn mint_many(client: &KeycloakClient, who: Client, count: usize) -> Result<Minted> {
    let limit = Arc::new(Semaphore::new(MINT_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let started = Instant::now();
    for _ in 0..count {
        let client = client.clone();
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            client.client_credentials(who.id, who.secret).await
        });
    }
    let mut tokens = Vec::with_capacity(count);
    let mut lifetime = u64::MAX;
    while let Some(joined) = tasks.join_next().await {
        let response = joined
            .context("a minting task failed")?
            .with_context(|| format!("minting a token for {}", who.id))?;
        lifetime = lifetime.min(response.expires_in);
        tokens.push(response.access_token);
    }
    Ok(Minted {
        tokens,
        valid_until: started + Duration::from_secs(lifetime.min(86_400)),
    })
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
}

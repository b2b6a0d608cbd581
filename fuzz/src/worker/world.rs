//! What the worker harness sends and answers: the configuration under test, the tokens a
//! request may carry, and the IdP's JWKS and introspection answers (right, wrong, garbage).

use std::sync::OnceLock;

use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::testkit::{TokenSpec, tamper_signature};

use crate::input::Choices;
use crate::keys::Key;

pub(super) const REMOTE_ISSUER: &str = "https://idp.example/realms/r";
pub(super) const INTROSPECT_ISSUER: &str = "https://idp.example/realms/opaque";
pub(super) const HYBRID_ISSUER: &str = "https://hybrid.example";
pub(super) const HYBRID_HEADER: &str = "x-hybrid-token";
pub(super) const NOW_MS: u64 = 1_750_000_000_000;
pub(super) const QUEUE: u32 = 3;
/// Token lifetime (exp = issue time + this).
pub(super) const LIFETIME: i64 = 3600;
pub(super) const SKEW: i64 = 30;

pub(super) fn configuration() -> Vec<u8> {
    json!({
        "providers": {
            "remote": {
                "issuer": REMOTE_ISSUER, "audiences": ["api"], "algorithms": ["RS256"],
                "jwks": {"remote": {"cluster": "idp", "authority": "idp", "path": "/certs"}},
                "forward": {"claims_to_headers": [{"claim": "sub", "header": "x-sub"}]}
            },
            "intro": {
                "mode": "introspect", "opaque": true,
                "issuer": INTROSPECT_ISSUER, "audiences": ["api"],
                "introspection": {
                    "cluster": "idp", "authority": "idp", "path": "/introspect",
                    "client_id": "gw", "client_secret": "s", "max_in_flight": 2,
                    "cache_ttl_seconds": 60
                },
                "forward": {"claims_to_headers": [{"claim": "sub", "header": "x-sub"}]}
            },
            "open": {
                "mode": "hybrid", "on_idp_error": "allow",
                "issuer": HYBRID_ISSUER, "audiences": [], "algorithms": ["EdDSA"],
                "token_source": {"header": HYBRID_HEADER},
                "jwks": {"inline": {"keys": [Key::Ed25519.public_jwk("ed", None)]}},
                "introspection": {
                    "cluster": "idp", "authority": "idp", "path": "/hybrid-introspect",
                    "client_id": "gw", "client_secret": "s"
                }
            }
        },
        "rules": [
            {"name": "mixed", "match": {"path": {"prefix": "/api"}},
             "requires": {"any": [{"provider": "remote"}, {"provider": "intro"}]}},
            {"name": "hybrid", "match": {"path": {"prefix": "/h"}},
             "requires": {"provider": "open"}}
        ]
    })
    .to_string()
    .into_bytes()
}

/// The tokens a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Sent {
    /// A valid RS256 token of the remote provider with this `kid`.
    Remote(&'static str),
    RemoteForged,
    RemoteExpired,
    Opaque(&'static str),
    Hybrid,
    HybridForged,
    Garbage,
    Nothing,
}

pub(super) struct Tokens {
    pub(super) remote: [(&'static str, String); 3],
    pub(super) remote_forged: String,
    pub(super) remote_expired: String,
    pub(super) hybrid: String,
    pub(super) hybrid_forged: String,
}

pub(super) fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let now = (NOW_MS / 1000) as i64;
        let remote = |kid: &str| {
            TokenSpec::access_token(Algorithm::Rs256, kid, REMOTE_ISSUER, "api", now)
                .sign(Key::RsaA.test_key())
        };
        let hybrid = TokenSpec::access_token(Algorithm::EdDsa, "ed", HYBRID_ISSUER, "any", now)
            .sign(Key::Ed25519.test_key());
        Tokens {
            remote: [
                ("k1", remote("k1")),
                ("k2", remote("k2")),
                ("k3", remote("k3")),
            ],
            remote_forged: tamper_signature(&remote("k1")),
            remote_expired: TokenSpec::access_token(
                Algorithm::Rs256,
                "k1",
                REMOTE_ISSUER,
                "api",
                now - 7200,
            )
            .sign(Key::RsaA.test_key()),
            hybrid_forged: tamper_signature(&hybrid),
            hybrid,
        }
    })
}

impl Sent {
    pub(super) fn text(self) -> Option<String> {
        let tokens = tokens();
        Some(match self {
            Sent::Remote(kid) => tokens.remote.iter().find(|(k, _)| *k == kid)?.1.clone(),
            Sent::RemoteForged => tokens.remote_forged.clone(),
            Sent::RemoteExpired => tokens.remote_expired.clone(),
            Sent::Opaque(name) => name.to_owned(),
            Sent::Hybrid => tokens.hybrid.clone(),
            Sent::HybridForged => tokens.hybrid_forged.clone(),
            Sent::Garbage => "not.a.jwt".to_owned(),
            Sent::Nothing => return None,
        })
    }
}

/// The JWKS documents the harness's IdP may answer: (kids served with the RSA key the
/// remote tokens are signed with, document).
pub(super) fn jwks_answer(c: &mut Choices<'_>) -> (Vec<&'static str>, Vec<u8>) {
    let set = |keys: Vec<Value>| json!({ "keys": keys }).to_string().into_bytes();
    let rsa = |kid: &str| Key::RsaA.public_jwk(kid, Some("RS256"));
    match c.index(7) {
        0 | 1 => (vec!["k1"], set(vec![rsa("k1")])),
        2 => (vec!["k1", "k2"], set(vec![rsa("k1"), rsa("k2")])),
        3 => (vec!["k2", "k3"], set(vec![rsa("k2"), rsa("k3")])),
        // The other RSA key under a known kid: tokens signed with the first must fail.
        4 => (vec![], set(vec![Key::RsaB.public_jwk("k1", Some("RS256"))])),
        5 => (vec![], set(vec![])),
        _ => (vec![], c.bytes(64)),
    }
}

/// An introspection answer; `true` when it vouches for the token (active, right issuer and
/// audience, live).
pub(super) fn introspection_answer(
    c: &mut Choices<'_>,
    issuer: &str,
    now_s: i64,
) -> (bool, Vec<u8>) {
    let body = |value: Value| value.to_string().into_bytes();
    match c.index(7) {
        0 | 1 => (
            true,
            body(
                json!({"active": true, "iss": issuer, "aud": "api", "sub": "alice", "exp": now_s + 300}),
            ),
        ),
        2 => (false, body(json!({"active": false}))),
        3 => (
            false,
            body(
                json!({"active": true, "iss": "https://evil.example", "aud": "api", "exp": now_s + 300}),
            ),
        ),
        4 => (
            false,
            body(json!({"active": true, "iss": issuer, "exp": now_s - 3600})),
        ),
        5 => (false, body(json!({"active": "yes"}))),
        _ => (false, c.bytes(48)),
    }
}

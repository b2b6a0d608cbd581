//! JSON Web Key Sets: parsing, filtering and key selection.
//!
//! A key is kept only if it can verify at least one allowed algorithm: `use` absent or `sig`,
//! its `alg` (when present) in the allowlist, a supported key type, no private material, and
//! RSA moduli of at least 2048 bits. Everything else is skipped with a reason, so that an IdP
//! publishing an encryption key (Keycloak's `RSA-OAEP` key) next to its signing keys just works.

use std::collections::HashMap;
use std::fmt;

use jwt_compact::jwk::JsonWebKey;
use serde::Deserialize;

use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};
use crate::signature::VerifyingKey;

/// JWKS documents larger than this are refused (a real key set is a few KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// At most this many keys are read from one set.
pub const MAX_KEYS: usize = 64;

/// Why a JWKS document was refused as a whole (the last good set stays in use).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksError {
    /// Larger than the limit, refused before parsing.
    TooLarge {
        /// The document's size.
        bytes: usize,
    },
    /// Not a JSON object with a `keys` array.
    NotJson {
        /// The parser's message (the document is public key material, not a secret).
        detail: String,
    },
    /// Every key was skipped.
    NoUsableKeys {
        /// Why each was skipped.
        skipped: String,
    },
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::TooLarge { bytes } => {
                write!(f, "key set of {bytes} bytes exceeds {MAX_JWKS_BYTES}")
            }
            JwksError::NotJson { detail } => write!(f, "key set is not a JWKS document: {detail}"),
            JwksError::NoUsableKeys { skipped } => {
                write!(f, "key set has no usable signing key ({skipped})")
            }
        }
    }
}

impl std::error::Error for JwksError {}

/// Why a key of the set was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Its `kid`, if it has one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "kid {kid:?}: {}", self.reason),
            None => write!(f, "key without kid: {}", self.reason),
        }
    }
}

/// A loaded key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// Its `kid`, if it has one.
    pub kid: Option<String>,
    /// The algorithms this key may verify: allowlist ∩ key family ∩ the key's own `alg`.
    pub algorithms: AlgorithmSet,
    /// The key, prepared for verification.
    pub key: VerifyingKey,
    /// The JWK it was built from, as published: a later set holding the same member is the
    /// same key (same `kid`, material, `use` and `alg`), reused as it is.
    source: serde_json::Value,
}

/// Result of looking a token's key up.
#[derive(Debug)]
pub enum KeyLookup<'a> {
    /// The key that verifies the token.
    Found(&'a KeyEntry),
    /// No key with this `kid` (or, without `kid`, no single candidate).
    Unknown,
    /// The key exists but may not verify the token's algorithm.
    AlgorithmNotAllowed,
}

/// A provider's usable keys, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    entries: Vec<KeyEntry>,
    by_kid: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct KeyMetadata {
    kid: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    alg: Option<String>,
    kty: Option<String>,
    crv: Option<String>,
    d: Option<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS document and keeps the keys usable with `allowed` algorithms.
    pub fn parse(
        json: &[u8],
        allowed: AlgorithmSet,
    ) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
        KeySet::parse_after(json, allowed, &KeySet::default())
    }

    /// As [`KeySet::parse`], for the set that replaces `previous` (of the same `allowed`):
    /// a member identical to one of `previous` takes that key as it was prepared. Preparing
    /// costs an RSA key its Montgomery constants and a curve key its tables (≈ 0.1 ms each in
    /// V8), and every worker prepares every key of each new set it installs; a rotation
    /// changes one key of the set.
    pub fn parse_after(
        json: &[u8],
        allowed: AlgorithmSet,
        previous: &KeySet,
    ) -> Result<(KeySet, Vec<SkippedKey>), JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge { bytes: json.len() });
        }
        let raw: RawJwks = serde_json::from_slice(json).map_err(|err| JwksError::NotJson {
            detail: err.to_string(),
        })?;
        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        for value in raw.keys.into_iter().take(MAX_KEYS) {
            let reused = previous.entries.iter().find(|e| e.source == value).cloned();
            match reused.map_or_else(|| parse_key(value, allowed), Ok) {
                Ok(entry) => {
                    if let Some(kid) = &entry.kid {
                        if set.by_kid.contains_key(kid) {
                            skipped.push(SkippedKey {
                                kid: Some(kid.clone()),
                                reason: "duplicate kid; the first key with it is used".to_owned(),
                            });
                            continue;
                        }
                        set.by_kid.insert(kid.clone(), set.entries.len());
                    }
                    set.entries.push(entry);
                }
                Err(skip) => skipped.push(skip),
            }
        }
        if set.entries.is_empty() {
            let summary = if skipped.is_empty() {
                "the set is empty".to_owned()
            } else {
                skipped
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(JwksError::NoUsableKeys { skipped: summary });
        }
        Ok((set, skipped))
    }

    /// Whether every token `previous` admitted is admitted by this set with the same key:
    /// each of its keys is here unchanged and, if some of those tokens had no `kid`
    /// (`kid_less`), every algorithm it had a single key for (the key such a token is looked
    /// up by) still has only that one. Verdicts cached under `previous` then stay true; a set
    /// that drops or changes a key, or makes a `kid`-less lookup ambiguous, invalidates them.
    pub fn keeps_verdicts_of(&self, previous: &KeySet, kid_less: bool) -> bool {
        let unchanged = previous
            .entries
            .iter()
            .all(|old| self.entries.iter().any(|new| new.source == old.source));
        unchanged
            && (!kid_less
                || Algorithm::ALL
                    .into_iter()
                    .filter(|alg| previous.candidates(*alg) == 1)
                    .all(|alg| self.candidates(alg) == 1))
    }

    fn candidates(&self, alg: Algorithm) -> usize {
        self.entries
            .iter()
            .filter(|entry| entry.algorithms.contains(alg))
            .count()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys, in document order.
    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// Selects the key for a token. `kid` is a plain map key; without one, the token is
    /// accepted only when exactly one key could verify `alg` (trying several keys would let a
    /// single forged token cost several signature verifications).
    pub fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup<'_> {
        match kid {
            Some(kid) => match self.by_kid.get(kid).and_then(|i| self.entries.get(*i)) {
                Some(entry) if entry.algorithms.contains(alg) => KeyLookup::Found(entry),
                Some(_) => KeyLookup::AlgorithmNotAllowed,
                None => KeyLookup::Unknown,
            },
            None => {
                let mut candidates = self
                    .entries
                    .iter()
                    .filter(|entry| entry.algorithms.contains(alg));
                match (candidates.next(), candidates.next()) {
                    (Some(entry), None) => KeyLookup::Found(entry),
                    _ => KeyLookup::Unknown,
                }
            }
        }
    }
}

fn parse_key(value: serde_json::Value, allowed: AlgorithmSet) -> Result<KeyEntry, SkippedKey> {
    let meta = KeyMetadata::deserialize(&value).map_err(|err| SkippedKey {
        kid: value
            .get("kid")
            .and_then(|kid| kid.as_str())
            .map(str::to_owned),
        reason: format!("malformed key: {err}"),
    })?;
    let kid = meta.kid.clone();
    let skip = |reason: String| SkippedKey {
        kid: kid.clone(),
        reason,
    };
    if let Some(key_use) = meta.key_use.as_deref()
        && key_use != "sig"
    {
        return Err(skip(format!("use {key_use:?} is not for signatures")));
    }
    if meta.d.is_some() {
        return Err(skip(
            "contains private key material; a published key set must not".to_owned(),
        ));
    }
    let family = match meta.kty.as_deref() {
        Some("RSA") => KeyFamily::Rsa,
        Some("EC") => match meta.crv.as_deref() {
            Some("P-256") => KeyFamily::P256,
            Some("P-384") => KeyFamily::P384,
            Some(other) => return Err(skip(format!("EC curve {other:?} is not supported"))),
            None => return Err(skip("EC key without crv".to_owned())),
        },
        Some("OKP") => KeyFamily::Ed25519,
        Some(other) => return Err(skip(format!("key type {other:?} is not supported"))),
        None => return Err(skip("no kty".to_owned())),
    };
    let mut algorithms = allowed.for_family(family);
    if let Some(alg_name) = meta.alg.as_deref() {
        match Algorithm::from_jws_name(alg_name) {
            Some(alg) if algorithms.contains(alg) => {
                algorithms = [alg].into_iter().collect();
            }
            _ => {
                return Err(skip(format!("alg {alg_name:?} is not allowed")));
            }
        }
    }
    if algorithms.is_empty() {
        return Err(skip(
            "no allowed algorithm can use this key type".to_owned(),
        ));
    }
    let jwk: JsonWebKey<'_> =
        JsonWebKey::deserialize(&value).map_err(|err| skip(format!("malformed key: {err}")))?;
    let key = VerifyingKey::from_jwk(&jwk, family).map_err(skip)?;
    drop(jwk);
    Ok(KeyEntry {
        kid,
        algorithms,
        key,
        source: value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestKey;

    fn allowed(names: &[&str]) -> AlgorithmSet {
        names
            .iter()
            .filter_map(|name| Algorithm::from_jws_name(name))
            .collect()
    }

    #[test]
    fn keeps_signing_keys_and_skips_the_rest_with_reasons() {
        let rsa = TestKey::rsa_a().public_jwk("rsa-sig", Some("RS256"));
        let mut enc = TestKey::rsa_b().public_jwk("rsa-enc", Some("RSA-OAEP"));
        enc["use"] = "enc".into();
        let weak = TestKey::rsa_weak().public_jwk("weak", Some("RS256"));
        let ec = TestKey::p256().public_jwk("ec", Some("ES256"));
        let private = TestKey::rsa_b().private_jwk("leaked");
        let oct = serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
        let ps = TestKey::rsa_b().public_jwk("ps", Some("PS256"));
        let jwks = serde_json::json!({"keys": [rsa, enc, weak, ec, private, oct, ps]});

        let (set, skipped) =
            KeySet::parse(jwks.to_string().as_bytes(), allowed(&["RS256", "ES256"])).unwrap();
        let kids: Vec<_> = set
            .entries()
            .iter()
            .map(|e| e.kid.clone().unwrap())
            .collect();
        assert_eq!(kids, ["rsa-sig", "ec"]);
        let reasons: Vec<_> = skipped.iter().map(ToString::to_string).collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert!(reasons[0].contains("rsa-enc") && reasons[0].contains("not for signatures"));
        assert!(
            reasons[1].contains("weak") && reasons[1].contains("2048"),
            "{}",
            reasons[1]
        );
        assert!(reasons[2].contains("private key material"));
        assert!(reasons[3].contains("\"oct\""));
        assert!(reasons[4].contains("PS256") && reasons[4].contains("not allowed"));
    }

    #[test]
    fn lookup_by_kid_and_algorithm() {
        let jwks = serde_json::json!({"keys": [
            TestKey::rsa_a().public_jwk("a", None),
            TestKey::rsa_b().public_jwk("b", Some("RS256")),
        ]});
        let (set, _) =
            KeySet::parse(jwks.to_string().as_bytes(), allowed(&["RS256", "PS256"])).unwrap();
        assert!(matches!(
            set.lookup(Some("a"), Algorithm::Ps256),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            set.lookup(Some("b"), Algorithm::Rs256),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            set.lookup(Some("b"), Algorithm::Ps256),
            KeyLookup::AlgorithmNotAllowed
        ));
        assert!(matches!(
            set.lookup(Some("c"), Algorithm::Rs256),
            KeyLookup::Unknown
        ));
        // Without kid: two RS256 candidates is ambiguous, one PS256 candidate is fine.
        assert!(matches!(
            set.lookup(None, Algorithm::Rs256),
            KeyLookup::Unknown
        ));
        assert!(matches!(
            set.lookup(None, Algorithm::Ps256),
            KeyLookup::Found(_)
        ));
        assert!(matches!(
            set.lookup(Some("__proto__"), Algorithm::Rs256),
            KeyLookup::Unknown
        ));
    }

    #[test]
    fn documents_that_are_not_key_sets() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "not a JWKS"),
            (b"[]", "not a JWKS"),
            (b"{\"keys\": {}}", "not a JWKS"),
            (b"{\"keys\": []}", "the set is empty"),
            (b"{\"keys\": [{\"kty\": \"RSA\"}]}", "malformed key"),
        ];
        for (doc, expected) in cases {
            let err = KeySet::parse(doc, allowed(&["RS256"])).unwrap_err();
            assert!(err.to_string().contains(expected), "{err} for {doc:?}");
        }
        let huge = vec![b' '; MAX_JWKS_BYTES + 1];
        assert!(matches!(
            KeySet::parse(&huge, allowed(&["RS256"])),
            Err(JwksError::TooLarge { .. })
        ));
    }

    #[test]
    fn duplicate_kid_keeps_the_first() {
        let jwks = serde_json::json!({"keys": [
            TestKey::rsa_a().public_jwk("same", Some("RS256")),
            TestKey::rsa_b().public_jwk("same", Some("RS256")),
        ]});
        let (set, skipped) =
            KeySet::parse(jwks.to_string().as_bytes(), allowed(&["RS256"])).unwrap();
        assert_eq!(set.len(), 1);
        assert!(skipped[0].reason.contains("duplicate kid"));
    }
}

//! The harness's keys (the testkit's fixtures) and the reference verification of a token.

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::alg::{Ed25519, Es256, Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm as JwsAlgorithm, AlgorithmSignature};
use serde_json::Value;
use tokengate::algorithm::Algorithm;
use tokengate::testkit::TestKey;

/// One of the test keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// RSA 2048 (`rsa-2048-a`).
    RsaA,
    /// Another RSA 2048 (`rsa-2048-b`).
    RsaB,
    /// P-256.
    P256,
    /// Ed25519.
    Ed25519,
}

impl Key {
    /// Every key.
    pub const ALL: [Key; 4] = [Key::RsaA, Key::RsaB, Key::P256, Key::Ed25519];

    /// The private fixture.
    pub fn test_key(self) -> &'static TestKey {
        match self {
            Key::RsaA => TestKey::rsa_a(),
            Key::RsaB => TestKey::rsa_b(),
            Key::P256 => TestKey::p256(),
            Key::Ed25519 => TestKey::ed25519(),
        }
    }

    /// The algorithms the key can sign with.
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Key::RsaA | Key::RsaB => &[
                Algorithm::Rs256,
                Algorithm::Ps256,
                Algorithm::Rs384,
                Algorithm::Rs512,
                Algorithm::Ps384,
                Algorithm::Ps512,
            ],
            Key::P256 => &[Algorithm::Es256],
            Key::Ed25519 => &[Algorithm::EdDsa],
        }
    }

    /// The public JWK with this `kid` and `alg`.
    pub fn public_jwk(self, kid: &str, alg: Option<&str>) -> Value {
        self.test_key().public_jwk(kid, alg)
    }

    /// Signs `data`.
    pub fn sign(self, alg: Algorithm, data: &[u8]) -> Vec<u8> {
        self.test_key().sign(alg, data)
    }

    /// Whether `signature` over `data` verifies under this key with `alg`, by the reference
    /// implementations.
    pub fn reference_verify(self, alg: Algorithm, data: &[u8], signature: &[u8]) -> bool {
        let jwk = self.public_jwk("reference", None);
        reference_verify_jwk(&jwk, alg, data, signature).unwrap_or(false)
    }
}

/// Whether `signature` over `data` verifies under the public key `jwk` with `alg`, by the
/// reference implementations (jwt-compact over the `rsa`, `p256` and `ed25519-compact`
/// crates); `None` when they cannot use the key for `alg`.
pub fn reference_verify_jwk(
    jwk: &Value,
    alg: Algorithm,
    data: &[u8],
    signature: &[u8],
) -> Option<bool> {
    let jwk = serde_json::from_value::<JsonWebKey<'_>>(jwk.clone()).ok()?;
    match alg {
        Algorithm::Rs256
        | Algorithm::Rs384
        | Algorithm::Rs512
        | Algorithm::Ps256
        | Algorithm::Ps384
        | Algorithm::Ps512 => {
            let rsa = match alg {
                Algorithm::Rs256 => Rsa::rs256(),
                Algorithm::Rs384 => Rsa::rs384(),
                Algorithm::Rs512 => Rsa::rs512(),
                Algorithm::Ps256 => Rsa::ps256(),
                Algorithm::Ps384 => Rsa::ps384(),
                _ => Rsa::ps512(),
            };
            let key = RsaPublicKey::try_from(&jwk).ok()?;
            Some(verify_with(&rsa, &key, data, signature))
        }
        Algorithm::Es256 => {
            let key = <Es256 as JwsAlgorithm>::VerifyingKey::try_from(&jwk).ok()?;
            Some(verify_with(&Es256, &key, data, signature))
        }
        Algorithm::EdDsa => {
            let key = <Ed25519 as JwsAlgorithm>::VerifyingKey::try_from(&jwk).ok()?;
            Some(verify_with(&Ed25519, &key, data, signature))
        }
        Algorithm::Es384 => None,
    }
}

fn verify_with<A: JwsAlgorithm>(
    alg: &A,
    key: &A::VerifyingKey,
    data: &[u8],
    signature: &[u8],
) -> bool {
    match A::Signature::try_from_slice(signature) {
        Ok(signature) => alg.verify_signature(&signature, key, data),
        Err(_) => false,
    }
}

/// A compact JWS split into its parts, read independently of tokengate (plain base64url and
/// serde_json, no jwt-compact).
#[derive(Debug)]
pub struct Jws {
    /// `header.payload`, the signing input.
    pub signing_input: Vec<u8>,
    /// The decoded header.
    pub header: Value,
    /// The decoded payload.
    pub payload: Value,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl Jws {
    /// Splits and decodes a token; `None` if it is not three base64url segments of JSON.
    pub fn parse(token: &str) -> Option<Jws> {
        let mut parts = token.split('.');
        let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let decode = |segment: &str| Base64UrlUnpadded::decode_vec(segment).ok();
        Some(Jws {
            signing_input: token.as_bytes()[..header.len() + 1 + payload.len()].to_vec(),
            header: serde_json::from_slice(&decode(header)?).ok()?,
            payload: serde_json::from_slice(&decode(payload)?).ok()?,
            signature: decode(signature)?,
        })
    }

    /// The header's `alg`, if a known algorithm name.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_jws_name)
    }

    /// Whether the signature verifies, by the reference implementations, under one of `keys`
    /// with the header's `alg`, which must be one of `allowed`.
    pub fn verifies_under(&self, keys: &[Key], allowed: &[Algorithm]) -> bool {
        let Some(alg) = self.algorithm() else {
            return false;
        };
        allowed.contains(&alg)
            && keys.iter().any(|key| {
                key.algorithms().contains(&alg)
                    && key.reference_verify(alg, &self.signing_input, &self.signature)
            })
    }

    /// A payload claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.payload.get(name)
    }
}

/// The message [`fixture_signature`] signs.
pub const FIXTURE_MESSAGE: &[u8] = b"header.payload";

/// `key`'s signature over [`FIXTURE_MESSAGE`] with `alg`, computed once per process (RSA
/// signing costs milliseconds).
pub fn fixture_signature(key: Key, alg: Algorithm) -> Vec<u8> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Signatures = HashMap<(Key, Algorithm), Vec<u8>>;
    static CACHE: OnceLock<Mutex<Signatures>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    cache
        .entry((key, alg))
        .or_insert_with(|| key.sign(alg, FIXTURE_MESSAGE))
        .clone()
}

//! Verifying keys and signature verification, through jwt-compact's `Algorithm` trait.
//!
//! RS*/PS* verify with [`crate::rsa_verify`] (plugged in as a jwt-compact algorithm, see its
//! docs for why); ES256 and EdDSA with jwt-compact's `p256` and `ed25519-compact` support.

use jwt_compact::alg::{Ed25519, Es256};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm as JwsAlgorithm, AlgorithmSignature};

use crate::algorithm::{Algorithm, KeyFamily};
use crate::rsa_verify::{PublicKey as RsaPublicKey, RsaVerify};

/// A public key ready to verify signatures. Built once per key when a key set is loaded
/// (for RSA, with its Montgomery constants precomputed).
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    Rsa(Box<RsaPublicKey>),
    P256(Box<p256::ecdsa::VerifyingKey>),
    Ed25519(Box<ed25519_compact::PublicKey>),
}

impl VerifyingKey {
    /// Converts a JWK of the given family. RSA moduli outside 2048–4096 bits are refused
    /// (RFC 7518 §3.3 sets the minimum), as are keys RFC 8017 §3.1 rules out (even n; e even,
    /// below 3 or wider than 64 bits).
    pub fn from_jwk(jwk: &JsonWebKey<'_>, family: KeyFamily) -> Result<VerifyingKey, String> {
        match family {
            KeyFamily::Rsa => {
                let JsonWebKey::Rsa {
                    modulus,
                    public_exponent,
                    ..
                } = jwk
                else {
                    return Err(format!(
                        "expected an RSA key, got key type {}",
                        jwk.key_type()
                    ));
                };
                RsaPublicKey::from_be_bytes(modulus, public_exponent)
                    .map(|key| VerifyingKey::Rsa(Box::new(key)))
                    .map_err(|err| err.to_string())
            }
            KeyFamily::P256 => p256::ecdsa::VerifyingKey::try_from(jwk)
                .map(|key| VerifyingKey::P256(Box::new(key)))
                .map_err(|err| err.to_string()),
            KeyFamily::Ed25519 => ed25519_compact::PublicKey::try_from(jwk)
                .map(|key| VerifyingKey::Ed25519(Box::new(key)))
                .map_err(|err| err.to_string()),
        }
    }

    /// Verifies `signature` over `signed_data` (the token's `header.payload` bytes).
    /// The algorithm is fixed by the caller from the allowlist; a key of another family
    /// never verifies.
    pub fn verify(&self, alg: Algorithm, signed_data: &[u8], signature: &[u8]) -> bool {
        match (self, alg) {
            (VerifyingKey::Rsa(key), Algorithm::Rs256) => {
                verify_with(&RsaVerify::RS256, key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Rs384) => {
                verify_with(&RsaVerify::RS384, key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Rs512) => {
                verify_with(&RsaVerify::RS512, key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Ps256) => {
                verify_with(&RsaVerify::PS256, key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Ps384) => {
                verify_with(&RsaVerify::PS384, key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Ps512) => {
                verify_with(&RsaVerify::PS512, key, signed_data, signature)
            }
            (VerifyingKey::P256(key), Algorithm::Es256) => {
                verify_with(&Es256, key, signed_data, signature)
            }
            (VerifyingKey::Ed25519(key), Algorithm::EdDsa) => {
                verify_with(&Ed25519, key, signed_data, signature)
            }
            _ => false,
        }
    }
}

fn verify_with<A: JwsAlgorithm>(
    alg: &A,
    key: &A::VerifyingKey,
    signed_data: &[u8],
    signature: &[u8],
) -> bool {
    if let Some(expected) = A::Signature::LENGTH
        && signature.len() != expected.get()
    {
        return false;
    }
    match A::Signature::try_from_slice(signature) {
        Ok(signature) => alg.verify_signature(&signature, key, signed_data),
        Err(_) => false,
    }
}

//! Verifying keys and signature verification, through jwt-compact's `Algorithm` trait.

use jwt_compact::alg::{Ed25519, Es256, Rsa, RsaPublicKey, StrongKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm as JwsAlgorithm, AlgorithmSignature};

use crate::algorithm::{Algorithm, KeyFamily};

/// A public key ready to verify signatures. Built once per key when a key set is loaded.
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    Rsa(Box<RsaPublicKey>),
    P256(Box<p256::ecdsa::VerifyingKey>),
    Ed25519(Box<ed25519_compact::PublicKey>),
}

impl VerifyingKey {
    /// Converts a JWK of the given family. RSA keys under 2048 bits are refused (RFC 7518 §3.3).
    pub fn from_jwk(jwk: &JsonWebKey<'_>, family: KeyFamily) -> Result<VerifyingKey, String> {
        match family {
            KeyFamily::Rsa => {
                let key = RsaPublicKey::try_from(jwk).map_err(|err| err.to_string())?;
                let strong = StrongKey::try_from(key).map_err(|_| {
                    format!(
                        "RSA modulus of {} bits is below the 2048-bit minimum",
                        jwk_modulus_bits(jwk)
                    )
                })?;
                Ok(VerifyingKey::Rsa(Box::new(strong.into_inner())))
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
                verify_with(&Rsa::rs256(), key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Rs384) => {
                verify_with(&Rsa::rs384(), key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Rs512) => {
                verify_with(&Rsa::rs512(), key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Ps256) => {
                verify_with(&Rsa::ps256(), key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Ps384) => {
                verify_with(&Rsa::ps384(), key, signed_data, signature)
            }
            (VerifyingKey::Rsa(key), Algorithm::Ps512) => {
                verify_with(&Rsa::ps512(), key, signed_data, signature)
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

fn jwk_modulus_bits(jwk: &JsonWebKey<'_>) -> usize {
    let JsonWebKey::Rsa { modulus, .. } = jwk else {
        return 0;
    };
    let significant = modulus.iter().skip_while(|byte| **byte == 0);
    let mut bytes = significant.clone();
    match bytes.next() {
        Some(first) => (significant.count() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
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

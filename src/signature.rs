//! Verifying keys and signature verification, through jwt-compact's `Algorithm` trait.
//!
//! RS*/PS* verify with [`crate::rsa_verify`], ES256, ES384 and EdDSA with [`crate::ec`]: both
//! plugged in as jwt-compact algorithms (see their docs for why the arithmetic is ours).

use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm as JwsAlgorithm, AlgorithmSignature};

use crate::algorithm::{Algorithm, KeyFamily};
use crate::ec::{Ed25519Key, EdDsaVerify, Es256Verify, Es384Verify, P256Key, P384Key};
use crate::rsa_verify::{PublicKey as RsaPublicKey, RsaVerify};

/// A public key ready to verify signatures. Built once per key when a key set is loaded
/// (for RSA with its Montgomery constants, for the curves with their tables of multiples).
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    /// RSA (RS* and PS*).
    Rsa(Box<RsaPublicKey>),
    /// ECDSA P-256 (ES256).
    P256(P256Key),
    /// ECDSA P-384 (ES384).
    P384(P384Key),
    /// Ed25519 (EdDSA).
    Ed25519(Ed25519Key),
}

impl VerifyingKey {
    /// Converts a JWK of the given family. RSA moduli outside 2048–4096 bits are refused
    /// (RFC 7518 §3.3 sets the minimum), as are keys RFC 8017 §3.1 rules out (even n; e even,
    /// below 3 or wider than 64 bits). EC keys must name their curve (`crv`), have
    /// coordinates of exactly its size below p, and be points of the curve; Ed25519 keys must
    /// be canonical encodings of points not of small order.
    pub fn from_jwk(jwk: &JsonWebKey<'_>, family: KeyFamily) -> Result<VerifyingKey, String> {
        match (family, jwk) {
            (
                KeyFamily::Rsa,
                JsonWebKey::Rsa {
                    modulus,
                    public_exponent,
                    ..
                },
            ) => RsaPublicKey::from_be_bytes(modulus, public_exponent)
                .map(|key| VerifyingKey::Rsa(Box::new(key)))
                .map_err(|err| err.to_string()),
            (KeyFamily::P256, JsonWebKey::EllipticCurve { curve, x, y, .. }) => {
                expect_curve(curve, "P-256")?;
                P256Key::from_coordinates(x, y)
                    .map(VerifyingKey::P256)
                    .map_err(|err| err.to_string())
            }
            (KeyFamily::P384, JsonWebKey::EllipticCurve { curve, x, y, .. }) => {
                expect_curve(curve, "P-384")?;
                P384Key::from_coordinates(x, y)
                    .map(VerifyingKey::P384)
                    .map_err(|err| err.to_string())
            }
            (KeyFamily::Ed25519, JsonWebKey::KeyPair { curve, x, .. }) => {
                expect_curve(curve, "Ed25519")?;
                Ed25519Key::from_bytes(x)
                    .map(VerifyingKey::Ed25519)
                    .map_err(|err| err.to_string())
            }
            (family, jwk) => Err(format!(
                "expected a key of type {}, got key type {}",
                match family {
                    KeyFamily::Rsa => "RSA",
                    KeyFamily::P256 | KeyFamily::P384 => "EC",
                    KeyFamily::Ed25519 => "OKP",
                },
                jwk.key_type()
            )),
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
                verify_with(&Es256Verify, key, signed_data, signature)
            }
            (VerifyingKey::P384(key), Algorithm::Es384) => {
                verify_with(&Es384Verify, key, signed_data, signature)
            }
            (VerifyingKey::Ed25519(key), Algorithm::EdDsa) => {
                verify_with(&EdDsaVerify, key, signed_data, signature)
            }
            _ => false,
        }
    }
}

fn expect_curve(curve: &str, expected: &str) -> Result<(), String> {
    if curve == expected {
        Ok(())
    } else {
        Err(format!("expected curve {expected}, got crv {curve:?}"))
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

//! RS256/384/512 and PS256/384/512 as a jwt-compact [`Algorithm`], verifying with
//! [`PublicKey`]: token handling stays in jwt-compact, the RSA arithmetic is this module's.

use std::borrow::Cow;

use jwt_compact::{Algorithm, AlgorithmSignature};

use super::{HashAlg, MAX_MODULUS_BITS, MIN_MODULUS_BITS, PublicKey};

/// Signature padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Padding {
    Pkcs1v15,
    Pss,
}

/// One of the six RSA JWS algorithms, verification only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RsaVerify {
    padding: Padding,
    hash: HashAlg,
}

impl RsaVerify {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    pub const RS256: RsaVerify = RsaVerify::new(Padding::Pkcs1v15, HashAlg::Sha256);
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    pub const RS384: RsaVerify = RsaVerify::new(Padding::Pkcs1v15, HashAlg::Sha384);
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    pub const RS512: RsaVerify = RsaVerify::new(Padding::Pkcs1v15, HashAlg::Sha512);
    /// RSASSA-PSS with SHA-256, MGF1 and a 32-byte salt.
    pub const PS256: RsaVerify = RsaVerify::new(Padding::Pss, HashAlg::Sha256);
    /// RSASSA-PSS with SHA-384, MGF1 and a 48-byte salt.
    pub const PS384: RsaVerify = RsaVerify::new(Padding::Pss, HashAlg::Sha384);
    /// RSASSA-PSS with SHA-512, MGF1 and a 64-byte salt.
    pub const PS512: RsaVerify = RsaVerify::new(Padding::Pss, HashAlg::Sha512);

    const fn new(padding: Padding, hash: HashAlg) -> RsaVerify {
        RsaVerify { padding, hash }
    }

    /// The hash this algorithm signs.
    pub fn hash(self) -> HashAlg {
        self.hash
    }
}

/// The signing key type of [`RsaVerify`]: an enum without variants, so no signing key can
/// exist and [`Algorithm::sign`] (or jwt-compact's `token`) can never run — tokengate never
/// signs, and there is no "unsupported" path that would have to panic or return a bogus
/// signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSigningKey {}

/// A signature as the token carries it: s as k big-endian bytes (checked by the verifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaSignatureBytes(Vec<u8>);

impl AlgorithmSignature for RsaSignatureBytes {
    /// Signatures are exactly as long as the modulus; lengths no accepted key can have are
    /// refused before copying.
    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        if (MIN_MODULUS_BITS / 8..=MAX_MODULUS_BITS / 8).contains(&slice.len()) {
            Ok(RsaSignatureBytes(slice.to_vec()))
        } else {
            Err(anyhow::Error::msg("RSA signature length out of range"))
        }
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
}

impl Algorithm for RsaVerify {
    type SigningKey = NoSigningKey;
    type VerifyingKey = PublicKey;
    type Signature = RsaSignatureBytes;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(match (self.padding, self.hash) {
            (Padding::Pkcs1v15, HashAlg::Sha256) => "RS256",
            (Padding::Pkcs1v15, HashAlg::Sha384) => "RS384",
            (Padding::Pkcs1v15, HashAlg::Sha512) => "RS512",
            (Padding::Pss, HashAlg::Sha256) => "PS256",
            (Padding::Pss, HashAlg::Sha384) => "PS384",
            (Padding::Pss, HashAlg::Sha512) => "PS512",
        })
    }

    fn sign(&self, signing_key: &NoSigningKey, _message: &[u8]) -> RsaSignatureBytes {
        match *signing_key {}
    }

    fn verify_signature(
        &self,
        signature: &RsaSignatureBytes,
        verifying_key: &PublicKey,
        message: &[u8],
    ) -> bool {
        let digest = super::emsa::hash(self.hash, &[message]);
        match self.padding {
            Padding::Pkcs1v15 => {
                verifying_key.verify_pkcs1v15(self.hash, digest.as_slice(), &signature.0)
            }
            Padding::Pss => verifying_key.verify_pss(self.hash, digest.as_slice(), &signature.0),
        }
    }
}

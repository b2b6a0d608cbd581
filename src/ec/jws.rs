//! ES256, ES384 and EdDSA as jwt-compact [`Algorithm`]s verifying with this module's keys:
//! token handling stays in jwt-compact, the curve arithmetic is ours.

use std::borrow::Cow;

use jwt_compact::{Algorithm, AlgorithmSignature};

use super::{Ed25519Key, P256Key, P384Key};
use crate::rsa_verify::NoSigningKey;

/// A signature as the token carries it (r ‖ s for ECDSA, R ‖ S for Ed25519); its exact
/// length is checked by the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcSignatureBytes(Vec<u8>);

impl AlgorithmSignature for EcSignatureBytes {
    /// 64 bytes (ES256, EdDSA) or 96 (ES384); other lengths are refused before copying.
    fn try_from_slice(slice: &[u8]) -> anyhow::Result<Self> {
        if matches!(slice.len(), 64 | 96) {
            Ok(EcSignatureBytes(slice.to_vec()))
        } else {
            Err(anyhow::Error::msg("EC signature length out of range"))
        }
    }

    fn as_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
}

macro_rules! ec_algorithm {
    ($(#[$doc:meta])* $alg:ident, $name:literal, $key:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $alg;

        impl Algorithm for $alg {
            type SigningKey = NoSigningKey;
            type VerifyingKey = $key;
            type Signature = EcSignatureBytes;

            fn name(&self) -> Cow<'static, str> {
                Cow::Borrowed($name)
            }

            fn sign(&self, signing_key: &NoSigningKey, _message: &[u8]) -> EcSignatureBytes {
                match *signing_key {}
            }

            fn verify_signature(
                &self,
                signature: &EcSignatureBytes,
                verifying_key: &$key,
                message: &[u8],
            ) -> bool {
                verifying_key.verify(message, &signature.0)
            }
        }
    };
}

ec_algorithm!(
    /// ES256: ECDSA on P-256 with SHA-256 (RFC 7518 §3.4), verification only.
    Es256Verify, "ES256", P256Key
);
ec_algorithm!(
    /// ES384: ECDSA on P-384 with SHA-384 (RFC 7518 §3.4), verification only.
    Es384Verify, "ES384", P384Key
);
ec_algorithm!(
    /// EdDSA with Ed25519 (RFC 8037), verification only.
    EdDsaVerify, "EdDSA", Ed25519Key
);

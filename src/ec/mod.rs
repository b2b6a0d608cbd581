//! Verification-only elliptic-curve signatures: ECDSA on P-256 and P-384 (ES256, ES384) and
//! Ed25519 (EdDSA).

mod ecdsa;
mod ed25519;
mod field;
mod fma;
mod jws;
mod p256;
mod p384;
mod scalar;
mod weierstrass;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

pub use ed25519::Ed25519Key;
pub use jws::{EcSignatureBytes, EdDsaVerify, Es256Verify, Es384Verify};
pub use p256::P256Key;
pub use p384::P384Key;

/// Why a public key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// A coordinate (or an Ed25519 key) is not exactly the curve's size.
    CoordinateLength { expected: usize, got: usize },
    /// A coordinate is not below the field prime p.
    CoordinateOutOfRange,
    /// The point does not satisfy the curve equation.
    NotOnCurve,
    /// The Ed25519 point is of small order (it would verify forged signatures).
    SmallOrder,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::CoordinateLength { expected, got } => {
                write!(
                    f,
                    "EC key coordinate of {got} bytes; the curve needs {expected}"
                )
            }
            KeyError::CoordinateOutOfRange => {
                f.write_str("EC key coordinate is not below the field prime")
            }
            KeyError::NotOnCurve => f.write_str("EC key is not a point on its curve"),
            KeyError::SmallOrder => f.write_str("Ed25519 key is a point of small order"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A key's tables, for the floating-point backend (52-bit limbs, fused multiply-add) or the
/// integer one (29-bit limbs). Shared between clones of a key.
/// (The portable build has no floating-point variant; `F` stays a parameter there.)
pub(crate) enum Backend<F, I> {
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
    Fma(Arc<F>),
    Int(Arc<I>, PhantomData<fn() -> F>),
}

impl<F, I> Clone for Backend<F, I> {
    fn clone(&self) -> Self {
        match self {
            #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
            Backend::Fma(t) => Backend::Fma(Arc::clone(t)),
            Backend::Int(t, _) => Backend::Int(Arc::clone(t), PhantomData),
        }
    }
}

impl<F, I> Backend<F, I> {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
            Backend::Fma(_) => "fma",
            Backend::Int(..) => "int",
        }
    }

    pub(crate) fn int(tables: I) -> Self {
        Backend::Int(Arc::new(tables), PhantomData)
    }
}

/// Hex digits as bytes, at compile time.
const fn hex<const N: usize>(text: &str) -> [u8; N] {
    let digits = text.as_bytes();
    assert!(digits.len() == 2 * N, "hex constant of the wrong length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nibble(digits[2 * i]) << 4) | nibble(digits[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => {
            assert!(
                digit.is_ascii_uppercase() && digit <= b'F',
                "not a hex digit"
            );
            digit - b'A' + 10
        }
    }
}

#[cfg(test)]
mod tests;

//! Verification-only elliptic-curve signatures: ECDSA on P-256 and P-384 (ES256, ES384,
//! FIPS 186-5 §6.4.2 with RFC 7518 §3.4's r ‖ s encoding) and Ed25519 (EdDSA, RFC 8032 §5.1.7,
//! RFC 8037), plugged into jwt-compact as algorithms (`jws`), as `crate::rsa_verify` is.
//!
//! # Why our own arithmetic
//!
//! µs per verification, one machine, each row's figures from one run (`benches/ec.rs`, and for
//! ed25519-dalek a scratch project with the same timing loop and Wycheproof inputs):
//!
//! | µs, median of 7 | native x86-64 | V8, fast build | V8, portable build |
//! |---|---|---|---|
//! | ES256 `p256` 0.13 (jwt-compact's, used before) | 974 | 6 236 | 30 620 |
//! | ES256 this module | **388** (int) | **330** (fma) | **2 928** (int) |
//! | ES384 `p384` 0.13 | 3 418 | 39 915 | 196 645 |
//! | ES384 this module | **1 221** | **1 405** | **14 482** |
//! | EdDSA `ed25519-compact` 2 (used before) | 209 | 1 333 | 6 249 |
//! | EdDSA this module | **259** | **291** | **1 442** |
//!
//! The machine (2 cores) was shared with several parallel builds while these ran, so the
//! absolute figures are inflated 4–30×; compare within a column. Scaled by the reference
//! crates' figures on a quiet machine (`p256` ≈ 990 µs in V8, 231 µs native;
//! `ed25519-compact` ≈ 257 µs in V8), ES256 is ≈ 50 µs in V8 and ≈ 90 µs natively, EdDSA
//! ≈ 55 µs in V8. The portable build's ratio to its reference (0.096 for ES256, 0.23 for
//! EdDSA) against the fast build's (0.053, 0.22), with the reference crates themselves ≈ 1.4×
//! slower without SIMD, puts it within 2× of the fast build. Natively `ed25519-compact`
//! (u128 products of 51-bit limbs) stays ahead: native code is not where the filter runs.
//!
//! Other candidates, measured in a scratch project with the same loop and inputs, in one V8
//! run (fast build, two runs): `p256` 0.14 13 197 / 11 420 µs against this module's
//! 2 111 / 2 701; `ed25519-dalek` 2 (32-bit serial backend, precomputed tables) 2 115 / 2 050
//! and 3.0 2 280 / 1 717 against this module's 1 563 / 712 and `ed25519-compact`'s
//! 6 464 / 7 279. Not measured: curve25519-dalek's `fiat` backend (fiat-crypto's field, the
//! one ed25519-compact's is derived from) and `ring` (C, needs a wasm C toolchain).
//!
//! The crates are built for 64-bit targets (u128 limb products, which wasm emulates with
//! several `i64.mul`) or constant time (every table entry read, every exponent bit squared):
//! none reaches the targets in V8 (ES256 ≤ 100 µs, Ed25519 ≤ 60 µs), and `p384` is the slowest
//! algorithm by far. What this module does instead:
//!
//! - **Limbs for wasm.** The fast build (simd128 + relaxed SIMD) multiplies 52-bit limbs
//!   exactly through `f64x2.relaxed_madd` (`fma`): 25 limb products for a P-256 element, two
//!   per instruction. The portable build uses 29-bit limbs and `i64.mul`, whose 58-bit
//!   products sum without carries. Every key checks once, when it loads, that the
//!   floating-point backend computes what the integer one does (relaxed_madd may be unfused
//!   on some engines): otherwise it stays on the integer one (`Backend`).
//! - **Montgomery form without products in the reduction** (`field`): the curve primes are
//!   short sums of powers of two, so m·p is added as shifted pieces of m; values stay below 2p
//!   (R ≥ 16p) and are reduced fully only to compare or encode.
//! - **Work moved to key load.** A scalar is split into 4 parts; for each part the key holds
//!   the odd multiples of Q·2^(chunk·i) (NAF width 6, affine), and G (or B) has the same with
//!   width 8, built once. u₁·G + u₂·Q then takes 65 doublings instead of 256 (97 for P-384),
//!   and ~65 mixed additions. A key costs a few verifications to load.
//! - **No inversion where it can be avoided**: ECDSA compares x(R) as X = r·Z² (and
//!   (r + n)·Z² when r + n < p); s⁻¹ mod n and Ed25519's 1/Z use a variable-time binary
//!   almost-inverse (`scalar`) instead of Fermat's 256 squarings.
//!
//! # Public data, no early accept
//!
//! Keys, signatures and messages are public, so nothing is constant-time. Verification only
//! ever returns `false` on bad input, never panics: r and s must be in [1, n − 1] (high S is
//! accepted, as FIPS 186-5 and BoringSSL's `ECDSA_do_verify`, which Envoy's `jwt_authn` calls
//! through jwt_verify_lib, accept it), the result must be a finite point whose x matches;
//! Ed25519 needs S < L and the computed point's encoding must equal R byte for byte (the
//! cofactorless check of BoringSSL's `ED25519_verify`). Keys must be canonical points of the
//! curve: coordinates of exactly the curve's size, below p, on the curve (ECDSA: cofactor 1,
//! so that is the group); Ed25519 keys also not of small order.

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
    CoordinateLength {
        /// The curve's size in bytes.
        expected: usize,
        /// What the key had.
        got: usize,
    },
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

//! P-256 (secp256r1): constants, fields and the ES256 key type.

use super::field::{Modulus, Prime, Term};
use super::hex;
use super::weierstrass::Curve;

pub(crate) const P_BE: [u8; 32] =
    hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
pub(crate) const N_BE: [u8; 32] =
    hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
const B_BE: [u8; 32] = hex("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b");
const GX_BE: [u8; 32] = hex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
const GY_BE: [u8; 32] = hex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");

/// p = 2²⁵⁶ − 2²²⁴ + 2¹⁹² + 2⁹⁶ − 1.
const SPARSE: &[Term] = &[
    Term { coeff: 1, exp: 256 },
    Term {
        coeff: -1,
        exp: 224,
    },
    Term { coeff: 1, exp: 192 },
    Term { coeff: 1, exp: 96 },
    Term { coeff: -1, exp: 0 },
];

/// The field with 5 limbs of 52 bits (fused multiply-add products).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldFma;
impl Modulus<5> for FieldFma {
    const PRIME: Prime<5> = Prime::new(&P_BE, 52, SPARSE);
    const FMA: bool = true;
}

/// The field with 9 limbs of 29 bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldInt;
impl Modulus<9> for FieldInt {
    const PRIME: Prime<9> = Prime::new(&P_BE, 29, SPARSE);
    const FMA: bool = false;
}

/// Scalars mod n, 9 limbs of 29 bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalar;
impl Modulus<9> for Scalar {
    const PRIME: Prime<9> = Prime::new(&N_BE, 29, &[]);
    const FMA: bool = false;
}

pub(crate) static CURVE: Curve = Curve {
    bytes: 32,
    p_be: &P_BE,
    n_be: &N_BE,
    b_be: &B_BE,
    gx_be: &GX_BE,
    gy_be: &GY_BE,
    parts: 4,
    chunk: 64,
    w_g: 8,
    w_q: 6,
};

super::ecdsa::ecdsa_key!(
    /// A P-256 public key for ES256, with its tables (see `crate::ec`).
    P256Key, CURVE, FieldFma, 5, FieldInt, 9, Scalar, 9, 4, sha2::Sha256
);

//! P-384 (secp384r1): constants, fields and the ES384 key type.

use super::field::{Modulus, Prime, Term};
use super::hex;
use super::weierstrass::Curve;

pub(crate) const P_BE: [u8; 48] = hex(
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
);
pub(crate) const N_BE: [u8; 48] = hex(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
);
const B_BE: [u8; 48] = hex(
    "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
);
const GX_BE: [u8; 48] = hex(
    "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
);
const GY_BE: [u8; 48] = hex(
    "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
);

/// p = 2³⁸⁴ − 2¹²⁸ − 2⁹⁶ + 2³² − 1.
const SPARSE: &[Term] = &[
    Term { coeff: 1, exp: 384 },
    Term {
        coeff: -1,
        exp: 128,
    },
    Term { coeff: -1, exp: 96 },
    Term { coeff: 1, exp: 32 },
    Term { coeff: -1, exp: 0 },
];

/// The field with 8 limbs of 52 bits (fused multiply-add products).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldFma;
impl Modulus<8> for FieldFma {
    const PRIME: Prime<8> = Prime::new(&P_BE, 52, SPARSE);
    const FMA: bool = true;
}

/// The field with 14 limbs of 29 bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldInt;
impl Modulus<14> for FieldInt {
    const PRIME: Prime<14> = Prime::new(&P_BE, 29, SPARSE);
    const FMA: bool = false;
}

/// Scalars mod n, 14 limbs of 29 bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalar;
impl Modulus<14> for Scalar {
    const PRIME: Prime<14> = Prime::new(&N_BE, 29, &[]);
    const FMA: bool = false;
}

pub(crate) static CURVE: Curve = Curve {
    bytes: 48,
    p_be: &P_BE,
    n_be: &N_BE,
    b_be: &B_BE,
    gx_be: &GX_BE,
    gy_be: &GY_BE,
    parts: 4,
    chunk: 96,
    w_g: 8,
    w_q: 6,
};

super::ecdsa::ecdsa_key!(
    /// A P-384 public key for ES384, with its tables (see `crate::ec`).
    P384Key, CURVE, FieldFma, 8, FieldInt, 14, Scalar, 14, 6, sha2::Sha384
);

//! Prime fields in Montgomery form, generic over the limb count and the way limb products are
//! taken: `i64` products of 29-bit limbs (every build), or exact 52×52-bit products through
//! `f64` fused multiply-add (`fma`, 52-bit limbs).
//!
//! # Representation
//!
//! An element is L limbs of B bits (B = 29 or 52), least significant first, each in
//! [0, 2ᴮ), holding a·R mod p for R = 2^(L·B) — but only reduced below 2p, not below p.
//! Every modulus here leaves R ≥ 16p, so a Montgomery product of two values below 2p is again
//! below 2p (a·b/R + p < 4p²/R + p) without a final subtraction; sums and differences are
//! brought back below 2p with one conditional subtraction or addition of 2p. Only
//! [`Fe::write_be`], [`Fe::is_zero`] and comparisons reduce fully. [`Fe`] and its arithmetic
//! are in `field/element.rs`; this file holds the primes and the limb-level helpers.
//!
//! # Reduction
//!
//! Montgomery reduction digit by digit (m = t₀·(−p⁻¹) mod 2ᴮ, t += m·p, t /= 2ᴮ). For the
//! curve primes, p is a short sum of signed powers of two (P-256: 2²⁵⁶ − 2²²⁴ + 2¹⁹² + 2⁹⁶ − 1)
//! and m·p is added as shifted pieces of m: no limb product at all. The scalar moduli (group
//! orders) are dense and take the usual m·pⱼ products (29-bit limbs only: 52-bit products do
//! not fit `i64`).

use std::cmp::Ordering;

mod element;

pub(crate) use element::Fe;

/// Columns of a double-width product, with room for the carries of the largest field.
pub(crate) const COLS: usize = 32;

/// One term c·2ᵉ of a prime written as a sum of signed powers of two.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Term {
    pub coeff: i64,
    pub exp: u32,
}

/// A prime modulus and its Montgomery constants for L limbs of `bits` bits.
#[derive(Debug)]
pub(crate) struct Prime<const L: usize> {
    pub bits: u32,
    pub p: [i64; L],
    pub two_p: [i64; L],
    /// −p⁻¹ mod 2ᴮ.
    pub n0_inv: i64,
    /// p as Σ coeff·2^exp (checked when the constant is built); empty for dense moduli.
    pub sparse: &'static [Term],
    /// R mod p: the Montgomery form of 1.
    pub one: [i64; L],
    /// R² mod p: converts into Montgomery form.
    pub r2: [i64; L],
    /// p, big-endian, as many bytes as an element's encoding.
    pub p_be: &'static [u8],
}

/// A field: its prime with constants for one limb layout, and how limb products are taken.
pub(crate) trait Modulus<const L: usize>: Copy + 'static {
    const PRIME: Prime<L>;
    /// Products through `f64` fused multiply-add (52-bit limbs, see `fma`); else `i64`
    /// products, which need B ≤ 29 (28 limb products of 58 bits and the reduction's fit
    /// a column).
    const FMA: bool;
}

const fn mask(bits: u32) -> i64 {
    (1i64 << bits) - 1
}

/// Big-endian bytes as L limbs of `bits` bits; `None` if the value does not fit.
pub(crate) const fn limbs_from_be<const L: usize>(bytes: &[u8], bits: u32) -> Option<[i64; L]> {
    let mut limbs = [0i64; L];
    let mut acc: u64 = 0;
    let mut acc_bits = 0u32;
    let mut limb = 0usize;
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        acc |= (bytes[i] as u64) << acc_bits;
        acc_bits += 8;
        if acc_bits >= bits {
            let value = acc & (mask(bits) as u64);
            if limb < L {
                limbs[limb] = value as i64;
            } else if value != 0 {
                return None;
            }
            limb += 1;
            acc >>= bits;
            acc_bits -= bits;
        }
    }
    if acc != 0 {
        if limb >= L {
            return None;
        }
        limbs[limb] = acc as i64;
    }
    Some(limbs)
}

/// Normalised limbs (each in [0, 2ᴮ)) written big-endian into all of `out`; `false` if the
/// value does not fit.
pub(crate) fn limbs_to_be<const L: usize>(limbs: &[i64; L], bits: u32, out: &mut [u8]) -> bool {
    crate::limbs::unpack_be(limbs.iter().map(|limb| limb.cast_unsigned()), bits, out)
}

/// Compares normalised limbs.
const fn cmp_limbs<const L: usize>(a: &[i64; L], b: &[i64; L]) -> Ordering {
    let mut i = L;
    while i > 0 {
        i -= 1;
        if a[i] != b[i] {
            return if a[i] < b[i] {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
    }
    Ordering::Equal
}

/// a − b for normalised a ≥ b.
const fn sub_limbs<const L: usize>(a: &[i64; L], b: &[i64; L], bits: u32) -> [i64; L] {
    let mut out = [0i64; L];
    let mut carry = 0i64;
    let mut i = 0;
    while i < L {
        let v = a[i] - b[i] + carry;
        out[i] = v & mask(bits);
        carry = v >> bits;
        i += 1;
    }
    out
}

/// 2x mod p for x < p.
const fn double_mod<const L: usize>(x: &[i64; L], p: &[i64; L], bits: u32) -> [i64; L] {
    let mut out = [0i64; L];
    let mut carry = 0i64;
    let mut i = 0;
    while i < L {
        let v = (x[i] << 1) + carry;
        out[i] = v & mask(bits);
        carry = v >> bits;
        i += 1;
    }
    assert!(carry == 0, "2p must fit the limbs");
    if !matches!(cmp_limbs(&out, p), Ordering::Less) {
        out = sub_limbs(&out, p, bits);
    }
    out
}

impl<const L: usize> Prime<L> {
    /// The constants for `p_be` (big-endian, odd) in limbs of `bits` bits; `sparse` must sum
    /// to p (checked), or be empty for a dense modulus. Evaluated at compile time.
    pub(crate) const fn new(p_be: &'static [u8], bits: u32, sparse: &'static [Term]) -> Prime<L> {
        let p = limbs_from_be::<L>(p_be, bits);
        assert!(p.is_some(), "modulus does not fit the limbs");
        let p = match p {
            Some(p) => p,
            None => [0; L],
        };
        assert!(p[0] & 1 == 1, "modulus must be odd");
        // R ≥ 16p: the top limb keeps four bits free.
        assert!(p[L - 1] < (1 << (bits - 4)), "R must be at least 16p");
        if sparse.is_empty() {
            assert!(
                2 * bits + 5 <= 63,
                "dense reduction needs i64 limb products"
            );
        } else {
            let mut sum = [0i64; L];
            let mut k = 0;
            while k < sparse.len() {
                let Term { coeff, exp } = sparse[k];
                let q = (exp / bits) as usize;
                let s = exp % bits;
                sum[q] += coeff << s;
                k += 1;
            }
            // Normalise (signed carries); the sum must be exactly p.
            let mut carry = 0i64;
            let mut i = 0;
            while i < L {
                let v = sum[i] + carry;
                sum[i] = v & mask(bits);
                carry = v >> bits;
                i += 1;
            }
            assert!(carry == 0, "sparse form overflows");
            assert!(
                matches!(cmp_limbs(&sum, &p), Ordering::Equal),
                "sparse form is not the modulus"
            );
        }
        let mut two_p = [0i64; L];
        let mut carry = 0i64;
        let mut i = 0;
        while i < L {
            let v = (p[i] << 1) + carry;
            two_p[i] = v & mask(bits);
            carry = v >> bits;
            i += 1;
        }
        // Newton's iteration for p⁻¹ mod 2⁶⁴: 3 correct bits for odd p₀, doubling each step.
        let p0 = p[0] as u64;
        let mut inv = p0;
        let mut step = 0;
        while step < 5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(p0.wrapping_mul(inv)));
            step += 1;
        }
        let n0_inv = (inv.wrapping_neg() & (mask(bits) as u64)) as i64;
        let mut one = [0i64; L];
        one[0] = 1;
        let mut doublings = 0;
        while doublings < L * bits as usize {
            one = double_mod(&one, &p, bits);
            doublings += 1;
        }
        let mut r2 = one;
        let mut doublings = 0;
        while doublings < L * bits as usize {
            r2 = double_mod(&r2, &p, bits);
            doublings += 1;
        }
        Prime {
            bits,
            p,
            two_p,
            n0_inv,
            sparse,
            one,
            r2,
            p_be,
        }
    }

    /// Bytes of an element's encoding.
    pub(crate) const fn byte_len(&self) -> usize {
        self.p_be.len()
    }
}

/// Montgomery reduction of the double-width columns `t` (signed, not normalised): t·R⁻¹ mod p,
/// normalised, for t < R·p·... within the bounds of the module docs.
#[inline(always)]
fn redc<const L: usize>(prime: &Prime<L>, t: &mut [i64; COLS]) -> [i64; L] {
    let bits = prime.bits;
    let limb_mask = mask(bits);
    for i in 0..L {
        let ti = t[i];
        let m = if prime.n0_inv == 1 {
            ti & limb_mask
        } else {
            ti.wrapping_mul(prime.n0_inv) & limb_mask
        };
        if prime.sparse.is_empty() {
            for j in 0..L {
                t[i + j] += m * prime.p[j];
            }
        } else {
            for term in prime.sparse {
                let q = (term.exp / bits) as usize;
                let s = term.exp % bits;
                if s == 0 {
                    t[i + q] += term.coeff * m;
                } else {
                    t[i + q] += term.coeff * ((m & mask(bits - s)) << s);
                    t[i + q + 1] += term.coeff * (m >> (bits - s));
                }
            }
        }
        // t[i] is now a multiple of 2ᴮ.
        t[i + 1] += t[i] >> bits;
    }
    let mut out = [0i64; L];
    let mut carry = 0i64;
    for j in 0..L {
        let v = t[L + j] + carry;
        out[j] = v & limb_mask;
        carry = v >> bits;
    }
    // The value is below 2p < R, so nothing is carried out.
    debug_assert_eq!(carry, 0);
    out
}

#[inline(always)]
fn int_product<const L: usize>(a: &[i64; L], b: &[i64; L]) -> [i64; COLS] {
    let mut t = [0i64; COLS];
    for i in 0..L {
        for j in 0..L {
            t[i + j] += a[i] * b[j];
        }
    }
    t
}

#[inline(always)]
fn int_square<const L: usize>(a: &[i64; L]) -> [i64; COLS] {
    let mut t = [0i64; COLS];
    for i in 0..L {
        t[2 * i] += a[i] * a[i];
        let twice = a[i] << 1;
        for j in i + 1..L {
            t[i + j] += twice * a[j];
        }
    }
    t
}

/// A big-endian number minus a small one (no underflow: used on primes).
pub(crate) fn be_minus_small(be: &[u8], small: u8) -> Vec<u8> {
    let mut out = be.to_vec();
    let mut borrow = u16::from(small);
    for byte in out.iter_mut().rev() {
        let v = u16::from(*byte);
        if v >= borrow {
            *byte = (v - borrow) as u8;
            break;
        }
        *byte = (v + 256 - borrow) as u8;
        borrow = 1;
    }
    out
}

//! [`Fe`], an element of a prime field, and its arithmetic; the representation and the
//! reduction are described in [`super`], whose limb helpers this uses.

use std::cmp::Ordering;
use std::marker::PhantomData;

use super::{
    COLS, Modulus, be_minus_small, cmp_limbs, int_product, int_square, limbs_from_be, limbs_to_be,
    mask, redc, sub_limbs,
};

/// A field element (see the `field` module docs for the representation).
pub(crate) struct Fe<M, const L: usize> {
    limbs: [i64; L],
    field: PhantomData<M>,
}

impl<M, const L: usize> Clone for Fe<M, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, const L: usize> Copy for Fe<M, L> {}

impl<M: Modulus<L>, const L: usize> std::fmt::Debug for Fe<M, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = [0u8; 64];
        let len = M::PRIME.byte_len();
        match bytes.get_mut(..len) {
            Some(out) => {
                self.write_be(out);
                for b in out.iter() {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            None => f.write_str("Fe(?)"),
        }
    }
}

impl<M: Modulus<L>, const L: usize> Fe<M, L> {
    const fn from_limbs(limbs: [i64; L]) -> Self {
        Fe {
            limbs,
            field: PhantomData,
        }
    }

    pub(crate) const fn zero() -> Self {
        Self::from_limbs([0; L])
    }

    pub(crate) const fn one() -> Self {
        Self::from_limbs(M::PRIME.one)
    }

    /// From canonical big-endian bytes (exactly the field's byte length, value below p).
    pub(crate) fn from_be(bytes: &[u8]) -> Option<Self> {
        let prime = &M::PRIME;
        if bytes.len() != prime.byte_len() || bytes >= prime.p_be {
            return None;
        }
        let plain = Self::from_limbs(limbs_from_be::<L>(bytes, prime.bits)?);
        Some(plain.mul(&Self::from_limbs(prime.r2)))
    }

    /// A value below 2^(L·B) as it is, without conversion: for reductions that apply their own
    /// Montgomery factors (scalars). `None` if it does not fit or is not below 2p.
    pub(crate) fn from_raw_be(bytes: &[u8]) -> Option<Self> {
        let limbs = limbs_from_be::<L>(bytes, M::PRIME.bits)?;
        matches!(cmp_limbs(&limbs, &M::PRIME.two_p), Ordering::Less)
            .then_some(Self::from_limbs(limbs))
    }

    /// The value (out of Montgomery form), fully reduced, as normalised limbs.
    pub(crate) fn canonical_limbs(&self) -> [i64; L] {
        let mut one = [0i64; L];
        one[0] = 1;
        self.mul(&Self::from_limbs(one)).reduced_raw()
    }

    /// The raw representative reduced below p (not converted out of Montgomery form).
    pub(crate) fn reduced_raw(&self) -> [i64; L] {
        let prime = &M::PRIME;
        if matches!(cmp_limbs(&self.limbs, &prime.p), Ordering::Less) {
            self.limbs
        } else {
            sub_limbs(&self.limbs, &prime.p, prime.bits)
        }
    }

    /// The value, big-endian, into `out` (the field's byte length).
    pub(crate) fn write_be(&self, out: &mut [u8]) {
        let ok = limbs_to_be(&self.canonical_limbs(), M::PRIME.bits, out);
        debug_assert!(ok);
    }

    /// Whether the value is even (for Ed25519's sign bit).
    pub(crate) fn is_odd(&self) -> bool {
        self.canonical_limbs()[0] & 1 == 1
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.limbs.iter().all(|&limb| limb == 0) || self.limbs == M::PRIME.p
    }

    pub(crate) fn equals(&self, other: &Self) -> bool {
        self.sub(other).is_zero()
    }

    #[inline]
    pub(crate) fn mul(&self, other: &Self) -> Self {
        let mut t = if M::FMA {
            crate::ec::fma::product(&self.limbs, &other.limbs)
        } else {
            int_product(&self.limbs, &other.limbs)
        };
        Self::from_limbs(redc(&M::PRIME, &mut t))
    }

    #[inline]
    pub(crate) fn square(&self) -> Self {
        let mut t = if M::FMA {
            crate::ec::fma::product(&self.limbs, &self.limbs)
        } else {
            int_square(&self.limbs)
        };
        Self::from_limbs(redc(&M::PRIME, &mut t))
    }

    #[inline]
    #[allow(clippy::needless_range_loop)] // one carry chain over three arrays
    pub(crate) fn add(&self, other: &Self) -> Self {
        let prime = &M::PRIME;
        let (bits, limb_mask) = (prime.bits, mask(prime.bits));
        let mut out = [0i64; L];
        let mut carry = 0i64;
        for j in 0..L {
            let v = self.limbs[j] + other.limbs[j] - prime.two_p[j] + carry;
            out[j] = v & limb_mask;
            carry = v >> bits;
        }
        if carry < 0 {
            // The sum was below 2p already.
            carry = 0;
            for j in 0..L {
                let v = self.limbs[j] + other.limbs[j] + carry;
                out[j] = v & limb_mask;
                carry = v >> bits;
            }
        }
        Self::from_limbs(out)
    }

    #[inline]
    #[allow(clippy::needless_range_loop)] // one carry chain over three arrays
    pub(crate) fn sub(&self, other: &Self) -> Self {
        let prime = &M::PRIME;
        let (bits, limb_mask) = (prime.bits, mask(prime.bits));
        let mut out = [0i64; L];
        let mut carry = 0i64;
        for j in 0..L {
            let v = self.limbs[j] - other.limbs[j] + carry;
            out[j] = v & limb_mask;
            carry = v >> bits;
        }
        if carry < 0 {
            // Negative: add 2p (the carry out of the top limb cancels the borrow).
            carry = 0;
            for j in 0..L {
                let v = out[j] + prime.two_p[j] + carry;
                out[j] = v & limb_mask;
                carry = v >> bits;
            }
        }
        Self::from_limbs(out)
    }

    #[inline]
    pub(crate) fn neg(&self) -> Self {
        Self::zero().sub(self)
    }

    #[inline]
    pub(crate) fn double(&self) -> Self {
        self.add(self)
    }

    /// self^exp for a big-endian exponent (public exponents only), with 4-bit windows.
    pub(crate) fn pow_vartime(&self, exp_be: &[u8]) -> Self {
        let mut powers = [Self::one(); 16];
        for i in 1..16 {
            powers[i] = powers[i - 1].mul(self);
        }
        let mut acc = Self::one();
        let mut started = false;
        for &byte in exp_be {
            for nibble in [byte >> 4, byte & 15] {
                if started {
                    acc = acc.square().square().square().square();
                }
                if nibble != 0 {
                    acc = if started {
                        acc.mul(&powers[usize::from(nibble)])
                    } else {
                        powers[usize::from(nibble)]
                    };
                    started = true;
                }
            }
        }
        acc
    }

    /// x·R⁻¹ mod p for a little-endian x below R·p (a 512-bit hash for Ed25519's scalar),
    /// times R² mod p: x mod p as a plain (not Montgomery) raw value.
    pub(crate) fn reduce_wide_le(bytes: &[u8]) -> Option<Self> {
        let prime = &M::PRIME;
        let mut be = bytes.to_vec();
        be.reverse();
        let mut t = [0i64; COLS];
        let limbs = limbs_from_be::<COLS>(&be, prime.bits)?;
        if limbs
            .get(2 * L..)
            .is_some_and(|high| high.iter().any(|&limb| limb != 0))
        {
            return None;
        }
        t.copy_from_slice(&limbs);
        let reduced = Self::from_limbs(redc(prime, &mut t));
        Some(reduced.mul(&Self::from_limbs(prime.r2)))
    }

    /// self⁻¹ (Fermat: self^(p−2)); zero for zero.
    pub(crate) fn invert(&self) -> Self {
        self.pow_vartime(&be_minus_small(M::PRIME.p_be, 2))
    }

    /// self⁻¹ through the binary almost-inverse of the canonical value (`scalar`; variable
    /// time, about a fifth of Fermat's cost here), `W` 64-bit words holding p; `None` for zero.
    pub(crate) fn invert_vartime<const W: usize>(&self) -> Option<Self> {
        let prime = &M::PRIME;
        let len = prime.byte_len();
        let mut buf = [0u8; 64];
        let be = buf.get_mut(..len)?;
        self.write_be(be);
        let a = crate::ec::scalar::words_from_be::<W>(be)?;
        let p = crate::ec::scalar::words_from_be::<W>(prime.p_be)?;
        // w·a ≡ 2ᵏ: a⁻¹·R = w·2^(RB−k), the Montgomery product of w and 2^(2RB−k).
        let (w, k) = crate::ec::scalar::almost_inverse(&a, &p)?;
        crate::ec::scalar::words_to_be(&w, be);
        let rb = L as u32 * prime.bits;
        Some(Self::from_raw_be(be)?.mul(&Self::pow2_raw((2 * rb).checked_sub(k)?)?))
    }

    /// 2ʲ mod p as a raw value (not converted): a power of two directly while it is below p,
    /// then doublings (which double what a raw value stands for too).
    pub(crate) fn pow2_raw(j: u32) -> Option<Self> {
        let prime = &M::PRIME;
        let p_be = prime.p_be;
        let p_bits = p_be.len() as u32 * 8 - p_be.first()?.leading_zeros();
        let direct = j.min(p_bits - 1);
        let mut limbs = [0i64; L];
        *limbs.get_mut((direct / prime.bits) as usize)? = 1 << (direct % prime.bits);
        let mut value = Self::from_limbs(limbs);
        for _ in direct..j {
            value = value.double();
        }
        Some(value)
    }

    /// Inverts every element of `values` with one inversion (Montgomery's trick); values must
    /// be non-zero.
    pub(crate) fn batch_invert(values: &mut [Self]) {
        let mut prefix = Vec::with_capacity(values.len());
        let mut acc = Self::one();
        for value in values.iter() {
            prefix.push(acc);
            acc = acc.mul(value);
        }
        let mut inv = acc.invert();
        for (value, before) in values.iter_mut().zip(prefix).rev() {
            let original = *value;
            *value = inv.mul(&before);
            inv = inv.mul(&original);
        }
    }
}

//! Montgomery arithmetic modulo a public RSA modulus, for verification only.
//!
//! Numbers are little-endian arrays of 28-bit limbs ("reduced radix"): a limb product is below
//! 2⁵⁶, so the products of a column (at most 2·147 for 4096 bits, summed in two halves) add up
//! in `u64`s and carries are propagated once per column instead of once per limb product.
//! Products are computed column by column with the reduction interleaved (Koç's "finely
//! integrated product scanning"): at column k < L the Montgomery digit mₖ is chosen so that
//! the column becomes divisible by 2²⁸, and the columns L..2L-1 form the result. The column
//! sums are the kernels' work (`kernel`): in wasm, simd128 vectors, four columns at a time.
//! With R = 2^(28·L) ≥ 4n, inputs below 2n give outputs below 2n, so no intermediate
//! subtraction is needed; the final result is reduced once.
//!
//! Nothing here is constant-time: all inputs are public (key, signature, message digest).

use super::kernel::{Kernel, Operands};

pub(crate) const LIMB_BITS: u32 = 28;
const LIMB_MASK: u32 = (1 << LIMB_BITS) - 1;
const MASK64: u64 = LIMB_MASK as u64;
/// ⌈(4096 + 2) / 28⌉: the limbs of R for the largest accepted modulus.
pub(crate) const MAX_LIMBS: usize = 147;
/// Buffer length: `MAX_LIMBS` plus zero padding the vector kernels read past a column's
/// range (up to 10 limbs).
pub(crate) const BUF: usize = 160;

/// A number below R (limbs beyond the modulus length are zero).
pub(crate) type Limbs = [u32; BUF];

/// Per-key constants, computed once when the key is loaded.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Modulus {
    /// L: limbs per number, ⌈(bits + 2) / 28⌉ so that R ≥ 4n.
    len: usize,
    n: Limbs,
    /// n's limbs in reverse order (`n_rev[L-1-i] = n[i]`): a column of m·n then reads both
    /// operands forward.
    n_rev: Limbs,
    /// n's four lowest limbs.
    n_low: [u32; 4],
    /// -n⁻¹ mod 2²⁸.
    n0_inv: u32,
    /// R² mod n: turns a number into Montgomery form with one product.
    r2: Limbs,
}

impl core::fmt::Debug for Modulus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Modulus")
            .field("limbs", &self.len)
            .finish_non_exhaustive()
    }
}

/// Limbs needed for a modulus of `bits` bits.
pub(crate) const fn limbs_for(bits: usize) -> usize {
    (bits + 2).div_ceil(LIMB_BITS as usize)
}

impl Modulus {
    /// `n_be`: big-endian, no leading zero byte, odd, at most 4096 bits, at least 2 bits
    /// (checked by the caller). Returns `None` if the checks did not hold after all.
    pub(crate) fn new<K: Kernel>(n_be: &[u8]) -> Option<Modulus> {
        let first = *n_be.first()?;
        let bits = n_be.len() * 8 - first.leading_zeros() as usize;
        let len = limbs_for(bits);
        if first == 0 || len > MAX_LIMBS || bits < 2 || n_be.last()? & 1 == 0 {
            return None;
        }
        let n = from_be_bytes(n_be, len)?;
        let mut n_rev = [0; BUF];
        reverse_into(&n, len, &mut n_rev);
        let n0 = n[0];
        // Newton's iteration for n0⁻¹ mod 2³²: correct to 3 bits at the start (odd n0),
        // doubling each step.
        let mut inv = n0;
        for _ in 0..4 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let mut modulus = Modulus {
            len,
            n_low: [n[0], n[1], n[2], n[3]],
            n,
            n_rev,
            n0_inv: inv.wrapping_neg() & LIMB_MASK,
            r2: [0; BUF],
        };
        modulus.r2 = modulus.compute_r2::<K>(bits);
        Some(modulus)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// R² mod n, as the Montgomery form of 2^(28·L): start from R mod n (the form of 1),
    /// then square-and-double along the bits of 28·L.
    fn compute_r2<K: Kernel>(&self, bits: usize) -> Limbs {
        // 2^(bits-1) < n (n is odd), doubled up to 2^(28·L) mod n.
        let mut x = [0u32; BUF];
        let top = bits - 1;
        if let Some(limb) = x.get_mut(top / LIMB_BITS as usize) {
            *limb = 1 << (top % LIMB_BITS as usize);
        }
        for _ in top..self.len * LIMB_BITS as usize {
            self.double_mod(&mut x);
        }
        let exponent = self.len * LIMB_BITS as usize;
        let high = (usize::BITS - 1).saturating_sub(exponent.leading_zeros());
        // x is the form of 2^0; make it the form of 2^1 (the exponent's top bit).
        self.double_mod(&mut x);
        for bit in (0..high).rev() {
            x = self.sqr::<K>(&x, K::DEDICATED_SQUARE);
            self.reduce_once(&mut x);
            if exponent >> bit & 1 == 1 {
                self.double_mod(&mut x);
            }
        }
        x
    }

    /// x ← 2x mod n, for x < n.
    fn double_mod(&self, x: &mut Limbs) {
        let mut carry = 0;
        for limb in x.iter_mut().take(self.len) {
            let doubled = (*limb << 1) | carry;
            carry = doubled >> LIMB_BITS;
            *limb = doubled & LIMB_MASK;
        }
        self.reduce_once(x);
    }

    /// x ← x - n if x ≥ n, for x < 2n.
    pub(crate) fn reduce_once(&self, x: &mut Limbs) {
        let mut diff = [0u32; BUF];
        let mut borrow = 0u32;
        for ((d, &a), &b) in diff.iter_mut().zip(x.iter()).zip(&self.n).take(self.len) {
            let t = a.wrapping_sub(b).wrapping_sub(borrow);
            borrow = t >> 31;
            *d = t & LIMB_MASK;
        }
        if borrow == 0 {
            *x = diff;
        }
    }

    /// a·b·R⁻¹ mod n (below 2n) for a, b below 2n; `b_rev` is b with its L limbs reversed.
    pub(crate) fn mul<K: Kernel>(&self, a: &Limbs, b_rev: &Limbs) -> Limbs {
        self.product::<K, false>(a, b_rev, a)
    }

    /// a²·R⁻¹ mod n (below 2n) for a below 2n. With `dedicated`, each cross product aᵢaⱼ
    /// (i < j) is taken once, with 2aᵢ, plus the squares: about 3/4 of the limb products of
    /// `mul`, but the cross sums must stop at the diagonal, which costs masked groups and a
    /// second loop per block. Which way is faster depends on the kernel
    /// ([`Kernel::DEDICATED_SQUARE`]).
    pub(crate) fn sqr<K: Kernel>(&self, a: &Limbs, dedicated: bool) -> Limbs {
        let mut a_rev = [0u32; BUF];
        reverse_into(a, self.len, &mut a_rev);
        if !dedicated {
            return self.product::<K, false>(a, &a_rev, a);
        }
        let mut a2 = [0u32; BUF];
        if let (Some(src), Some(dst)) = (a.get(..self.len), a2.get_mut(..self.len)) {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s << 1;
            }
        }
        self.product::<K, true>(&a2, &a_rev, a)
    }

    /// The product scan. Column k sums x1ᵢ·y1_{k-i} over i ≥ 0 (a product) or over
    /// i < k - i (the cross terms of a square, x1 = 2a, plus aₖ/₂² from `a`), and mᵢ·n_{k-i}
    /// over the Montgomery digits m. y1 and n are stored reversed: both sums run forward from
    /// `lo` = max(0, k - L + 1) in x1 and m, and from L - 1 + lo - k in y1 and n.
    ///
    /// Columns are taken four at a time (see `kernel`). Below L each column chooses a digit
    /// mₖ, which the next columns need at once: the vector sums only cover the digits of
    /// earlier blocks of four (the current block's group of m is still zero in memory), and
    /// the few terms of the block's own digits are added in scalar before choosing the next
    /// one; the block's digits are then stored as one group. Above L only the carry chains.
    #[inline(always)]
    fn product<K: Kernel, const SQUARE: bool>(&self, x1: &Limbs, y1: &Limbs, a: &Limbs) -> Limbs {
        let l = self.len;
        let mut m = [0u32; BUF];
        let mut out = [0u32; BUF];
        let square = |k: usize| -> u64 {
            match (SQUARE && k.is_multiple_of(2), a.get(k / 2)) {
                (true, Some(&x)) => u64::from(x) * u64::from(x),
                _ => 0,
            }
        };
        let mut carry = 0u64;
        for block in (0..l).step_by(4) {
            let ops = Operands {
                x1,
                y1,
                x2: &m,
                y2: &self.n_rev,
            };
            let j0 = l - 1 - block;
            // Column k has k + 1 terms of x1·y1 (⌈k/2⌉ cross terms for a square); the m·n sum
            // reads m up to group block/4, which is still zero.
            let sums = if SQUARE {
                let len1 = [0, 1, 2, 3].map(|c: usize| (block + c).div_ceil(2));
                K::square_columns4::<false>(ops, 0, j0, len1, block / 4 + 1)
            } else {
                K::columns4::<false>(ops, 0, j0, block / 4 + 1)
            };
            let mut digits = [0u32; 4];
            for (r, [s1, s2]) in sums.into_iter().enumerate() {
                let k = block + r;
                if k >= l {
                    break;
                }
                // s1, s2 < 2⁶³·⁴: add their low 28 bits and the rest separately.
                let mut low = (s1 & MASK64) + (s2 & MASK64) + (carry & MASK64) + square(k);
                let high = (s1 >> LIMB_BITS) + (s2 >> LIMB_BITS) + (carry >> LIMB_BITS);
                for (t, &digit) in digits.iter().enumerate().take(r) {
                    low += u64::from(digit) * u64::from(self.n_low[r - t]);
                }
                let digit = (low as u32).wrapping_mul(self.n0_inv) & LIMB_MASK;
                low += u64::from(digit) * u64::from(self.n_low[0]);
                if let Some(slot) = digits.get_mut(r) {
                    *slot = digit;
                }
                carry = high + (low >> LIMB_BITS);
            }
            K::store_group(&mut m, block, digits);
        }
        let ops = Operands {
            x1,
            y1,
            x2: &m,
            y2: &self.n_rev,
        };
        for block in (l..2 * l - 1).step_by(4) {
            let lo = block + 1 - l;
            // Column `block` has the most terms of the four: 2L - 1 - block.
            let groups = (2 * l - 1 - block).div_ceil(4);
            let sums = if SQUARE {
                let len1 = [0, 1, 2, 3].map(|c: usize| {
                    let k = block + c;
                    (k.div_ceil(2) + l).saturating_sub(k + 1)
                });
                K::square_columns4::<true>(ops, lo, 0, len1, groups)
            } else {
                K::columns4::<true>(ops, lo, 0, groups)
            };
            for (r, [s1, s2]) in sums.into_iter().enumerate() {
                let k = block + r;
                if k >= 2 * l - 1 {
                    break;
                }
                let low = (s1 & MASK64) + (s2 & MASK64) + (carry & MASK64) + square(k);
                let high = (s1 >> LIMB_BITS) + (s2 >> LIMB_BITS) + (carry >> LIMB_BITS);
                set(&mut out, k - l, low & MASK64);
                carry = high + (low >> LIMB_BITS);
            }
        }
        set(&mut out, l - 1, carry);
        out
    }

    /// aᵉ mod n for a < n, e odd and ≥ 3: Montgomery form, left-to-right square-and-multiply,
    /// and the last product taken with the plain a so that it leaves Montgomery form by
    /// itself (e = 65537: 1 + 16 + 1 products). Fully reduced.
    pub(crate) fn pow<K: Kernel>(&self, a: &Limbs, e: u64, dedicated_square: bool) -> Limbs {
        let l = self.len;
        let mut a_rev = [0u32; BUF];
        reverse_into(a, l, &mut a_rev);
        let x = self.mul::<K>(&self.r2, &a_rev);
        let mut x_rev = [0u32; BUF];
        reverse_into(&x, l, &mut x_rev);
        // The exponent's top bit (e ≥ 3: at least bit 1).
        let top = (u64::BITS - 1).saturating_sub(e.leading_zeros());
        let mut acc = x;
        for bit in (1..top).rev() {
            acc = self.sqr::<K>(&acc, dedicated_square);
            if e >> bit & 1 == 1 {
                acc = self.mul::<K>(&acc, &x_rev);
            }
        }
        if top > 0 {
            acc = self.sqr::<K>(&acc, dedicated_square);
        }
        let mut result = self.mul::<K>(&acc, &a_rev);
        self.reduce_once(&mut result);
        result
    }
}

#[inline(always)]
fn set(x: &mut Limbs, i: usize, value: u64) {
    if let Some(limb) = x.get_mut(i) {
        *limb = value as u32;
    }
}

fn reverse_into(x: &Limbs, len: usize, out: &mut Limbs) {
    if let (Some(src), Some(dst)) = (x.get(..len), out.get_mut(..len)) {
        for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
            *d = *s;
        }
    }
}

/// A big-endian byte string as `len` limbs; `None` if it does not fit.
pub(crate) fn from_be_bytes(bytes: &[u8], len: usize) -> Option<Limbs> {
    let mut limbs = [0u32; BUF];
    #[allow(clippy::cast_possible_truncation)] // pack_be's values are below 2^LIMB_BITS.
    crate::limbs::pack_be(bytes, LIMB_BITS, limbs.iter_mut().take(len), |v| v as u32)?;
    Some(limbs)
}

/// Writes x big-endian into all of `out`; `false` if x does not fit.
pub(crate) fn to_be_bytes(x: &Limbs, out: &mut [u8]) -> bool {
    crate::limbs::unpack_be(x.iter().map(|&limb| u64::from(limb)), LIMB_BITS, out)
}

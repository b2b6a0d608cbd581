//! The public operation with 52-bit limbs in `f64`, every limb product exact through a fused
//! multiply-add: the wasm kernel when the engine fuses `f64x2.relaxed_madd` (V8 on x86-64 with
//! FMA3, on aarch64 always).
//!
//! Why: in wasm the only wide multiplier the integer kernels can reach is
//! `i64x2.extmul_{low,high}_i32x4_u`, which V8 lowers to two shuffles and a `pmuludq` for two
//! 32×32-bit products; with 28-bit limbs a 2048-bit Montgomery product takes 2·74² of them.
//! A fused multiply-add on doubles gives a 52×52→104-bit product exactly in two operations,
//! and 52-bit limbs need 2·40² products. Measured in Envoy 1.40 (V8 14.6, one worker), one
//! RS256 verification went from 56 to 33 µs of Envoy CPU; under Node 20 from 46 to 29 µs.
//!
//! # Exact products
//!
//! For limbs a, b < 2⁵² (integers held exactly in `f64`), with C = 2¹⁰⁴:
//!
//! - `hi = fma(a, b, C)` rounds a·b + C, which lies in [2¹⁰⁴, 2¹⁰⁵) where doubles are spaced
//!   2⁵²: hi = C + h·2⁵² with h = a·b/2⁵² rounded to nearest, 0 ≤ h < 2⁵².
//! - `C - hi` = −h·2⁵² is exact (Sterbenz), and `fma(a, b, C - hi)` = a·b − h·2⁵² = l exactly,
//!   since |l| ≤ 2⁵¹ is representable: a·b = h·2⁵² + l.
//! - l + 3·2⁵¹ lies in [2⁵², 2⁵³] and is exact. Reinterpreted as integers, the bit patterns
//!   are linear there: bits(C + h·2⁵²) − bits(C) = h, bits(3·2⁵¹ + l) − bits(3·2⁵¹) = l (also at
//!   the binade edge 2⁵³). So a column's h and l are summed as `i64x2` additions of bit patterns,
//!   and the constants subtracted once per column (wrapping arithmetic; the true sums stay
//!   below 2⁶⁰ in magnitude).
//!
//! A column k of the Montgomery product (product scanning, reduction interleaved as in
//! `monty`) sums x_i·y_{k−i} and m_i·n_{k−i} two lanes at a time; its l parts belong to column
//! k, its h parts to column k+1. The digit m_k is chosen from column k's low 52 bits. The vector
//! sums of column k skip m_{k−1} (still zero in memory), whose two products with n₀ and n₁ are
//! taken in integer arithmetic, so a column's sums do not wait for the previous column's digit.
//!
//! # Why squarings are products here
//!
//! Sixteen of a verification's eighteen products are squarings (e = 65537), and a dedicated
//! squaring takes each cross product xᵢ·xⱼ once and doubles the column's sums: a quarter fewer
//! multiply-adds. In V8 it was slower every way it was written (`cargo bench --bench rsa
//! --target wasm32-wasip1`, RSA-2048, quiet machine): 28.3 µs against 26.2 µs with the
//! product (the cross products sharing the reduction's loop behind a per-pair branch), 31.6
//! against 26.6 µs (two loops), 32.1 against 25.8 µs (slices in place of clamped loads). The
//! half-range bounds, the odd pair, the doubling and the diagonal cost more per column than the
//! saved products, and this kernel is bound by its floating-point ports: unrolling the
//! product's loop to four lanes, whose extra lanes meet zero padding, made it slower too
//! (30.6 µs).
//!
//! # Fusion is checked, not assumed
//!
//! `relaxed_madd` may be fused or not, at the engine's choice (V8 uses FMA3 when the CPU has it).
//! Unfused, the products above are wrong. So a key only uses this kernel after a self-test
//! (`PublicKey::from_be_bytes`): a public operation on a value derived from the key, compared
//! with the integer kernel's result. Any difference, and the key stays with the integer kernel.
//!
//! The module then contains relaxed-SIMD instructions, which every engine that validates the
//! filter must know: Envoy 1.40's V8 does; Node 20 needs `--experimental-wasm-relaxed-simd`
//! for the wasm32 test and bench binaries (`scripts/wasi-run.mjs`), Node 22 and later do not.
//!
//! Natively (tests only) the same code runs with `f64::mul_add`, which is always fused. The
//! portable build (no simd128, for engines without SIMD: see `crate::BUILD`) never chooses
//! this kernel and contains no vector instruction; its tests run it on software `fma` too.

/// Limb size in bits.
const LIMB_BITS: u32 = 52;
const MASK: i64 = (1 << LIMB_BITS) - 1;
/// ⌈(4096 + 2) / 52⌉: the limbs of R for the largest accepted modulus.
const MAX_LIMBS: usize = 79;
/// Buffer length: the vector sums read two limbs at a time, up to index L.
const BUF: usize = 82;
/// C = 2¹⁰⁴.
const C_HI: f64 = 20_282_409_603_651_670_423_947_251_286_016.0;
/// 3·2⁵¹.
const C_LO: f64 = 6_755_399_441_055_744.0;

type Limbs = [f64; BUF];
/// Limbs as integers, for setup and the final reduction.
type IntLimbs = [i64; BUF];

/// Limbs needed for a modulus of `bits` bits, so that R = 2^(52·L) ≥ 4n.
const fn limbs_for(bits: usize) -> usize {
    (bits + 2).div_ceil(LIMB_BITS as usize)
}

/// Per-key constants of the 52-bit representation.
#[derive(Clone)]
pub(crate) struct Modulus52 {
    /// L.
    len: usize,
    n: IntLimbs,
    /// n's limbs reversed, as `f64`.
    n_rev: Limbs,
    /// −n⁻¹ mod 2⁵².
    n0_inv: i64,
    /// R² mod n (Montgomery form of R).
    r2: Limbs,
}

impl core::fmt::Debug for Modulus52 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Modulus52")
            .field("limbs", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use core::arch::wasm32::{
        f64x2_add, f64x2_relaxed_madd, f64x2_splat, f64x2_sub, i64x2_add, i64x2_extract_lane,
        i64x2_splat, v128, v128_load,
    };

    use super::{BUF, Limbs};

    pub(super) type V = v128;
    pub(super) type Acc = v128;

    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) fn splat(x: f64) -> V {
        f64x2_splat(x)
    }

    /// Limbs `at` and `at + 1`.
    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) fn load(x: &Limbs, at: usize) -> V {
        let at = at.min(BUF - 2);
        // SAFETY: at + 2 ≤ BUF, so 16 bytes from element `at` lie within `x`; wasm loads
        // have no alignment requirement.
        unsafe { v128_load(x.as_ptr().add(at).cast::<v128>()) }
    }

    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) fn madd(a: V, b: V, c: V) -> V {
        f64x2_relaxed_madd(a, b, c)
    }

    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) fn sub(a: V, b: V) -> V {
        f64x2_sub(a, b)
    }

    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) fn add(a: V, b: V) -> V {
        f64x2_add(a, b)
    }

    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) fn acc_zero() -> Acc {
        i64x2_splat(0)
    }

    /// acc + the bit patterns of v's lanes (as i64, wrapping).
    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) fn acc_add_bits(acc: Acc, v: V) -> Acc {
        i64x2_add(acc, v)
    }

    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) fn acc_sum(acc: Acc) -> i64 {
        i64x2_extract_lane::<0>(acc).wrapping_add(i64x2_extract_lane::<1>(acc))
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lanes {
    use super::Limbs;

    pub(super) type V = [f64; 2];
    pub(super) type Acc = [i64; 2];

    pub(super) fn splat(x: f64) -> V {
        [x, x]
    }

    pub(super) fn load(x: &Limbs, at: usize) -> V {
        [0, 1].map(|i| x.get(at + i).copied().unwrap_or(0.0))
    }

    pub(super) fn madd(a: V, b: V, c: V) -> V {
        [0, 1].map(|i| a[i].mul_add(b[i], c[i]))
    }

    pub(super) fn sub(a: V, b: V) -> V {
        [a[0] - b[0], a[1] - b[1]]
    }

    pub(super) fn add(a: V, b: V) -> V {
        [a[0] + b[0], a[1] + b[1]]
    }

    pub(super) fn acc_zero() -> Acc {
        [0, 0]
    }

    pub(super) fn acc_add_bits(acc: Acc, v: V) -> Acc {
        [0, 1].map(|i| acc[i].wrapping_add(v[i].to_bits().cast_signed()))
    }

    pub(super) fn acc_sum(acc: Acc) -> i64 {
        acc[0].wrapping_add(acc[1])
    }
}

/// floor(a·b / 2⁵²) and a·b mod 2⁵², for 0 ≤ a, b < 2⁵², with 64-bit integer products of
/// 26-bit halves.
#[inline(always)]
fn mul52(a: i64, b: i64) -> (i64, i64) {
    const HALF: i64 = (1 << 26) - 1;
    let (a1, a0, b1, b0) = (a >> 26, a & HALF, b >> 26, b & HALF);
    let middle = a1 * b0 + a0 * b1;
    let high = a1 * b1 + ((middle + ((a0 * b0) >> 26)) >> 26);
    (high, a.wrapping_mul(b) & MASK)
}

fn to_float(x: &IntLimbs) -> Limbs {
    // Limbs are below 2⁵², exact in f64.
    #[allow(clippy::cast_precision_loss)]
    x.map(|limb| limb as f64)
}

#[allow(clippy::cast_possible_truncation)]
fn to_int(x: &Limbs) -> IntLimbs {
    // Every value written to a `Limbs` is an integer below 2⁵² (or zero).
    x.map(|limb| limb as i64)
}

fn reversed(x: &Limbs, len: usize) -> Limbs {
    let mut out = [0.0; BUF];
    if let (Some(src), Some(dst)) = (x.get(..len), out.get_mut(..len)) {
        for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
            *d = *s;
        }
    }
    out
}

/// A big-endian byte string as `len` 52-bit limbs; `None` if it does not fit.
fn from_be_bytes(bytes: &[u8], len: usize) -> Option<IntLimbs> {
    let mut limbs = [0i64; BUF];
    crate::limbs::pack_be(
        bytes,
        LIMB_BITS,
        limbs.iter_mut().take(len),
        u64::cast_signed,
    )?;
    Some(limbs)
}

/// Writes x big-endian into all of `out`; `false` if x does not fit.
fn to_be_bytes(x: &IntLimbs, out: &mut [u8]) -> bool {
    crate::limbs::unpack_be(x.iter().map(|&limb| limb.cast_unsigned()), LIMB_BITS, out)
}

impl Modulus52 {
    /// `n_be`: big-endian, no leading zero byte, odd, 2048–4096 bits (checked by the caller).
    pub(crate) fn new(n_be: &[u8]) -> Option<Modulus52> {
        let first = *n_be.first()?;
        let bits = n_be.len() * 8 - first.leading_zeros() as usize;
        let len = limbs_for(bits);
        if first == 0 || !(2..=MAX_LIMBS).contains(&len) || n_be.last()? & 1 == 0 {
            return None;
        }
        let n = from_be_bytes(n_be, len)?;
        let n0 = n[0].cast_unsigned();
        // Newton's iteration for n0⁻¹ mod 2⁶⁴: 3 correct bits for odd n0, doubling each step.
        let mut inv = n0;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let mut modulus = Modulus52 {
            len,
            n,
            n_rev: reversed(&to_float(&n), len),
            n0_inv: (inv.wrapping_neg() & MASK.cast_unsigned()).cast_signed(),
            r2: [0.0; BUF],
        };
        modulus.r2 = modulus.compute_r2(bits);
        Some(modulus)
    }

    /// R² mod n: R mod n (the Montgomery form of 1) by doubling, then square-and-double along
    /// the bits of 52·L.
    fn compute_r2(&self, bits: usize) -> Limbs {
        let mut x = [0i64; BUF];
        let top = bits - 1;
        if let Some(limb) = x.get_mut(top / LIMB_BITS as usize) {
            *limb = 1 << (top % LIMB_BITS as usize);
        }
        for _ in top..self.len * LIMB_BITS as usize {
            self.double_mod(&mut x);
        }
        let exponent = self.len * LIMB_BITS as usize;
        let high = (usize::BITS - 1).saturating_sub(exponent.leading_zeros());
        self.double_mod(&mut x);
        for bit in (0..high).rev() {
            let xf = to_float(&x);
            x = to_int(&self.mul(&xf, &reversed(&xf, self.len)));
            self.reduce_once(&mut x);
            if exponent >> bit & 1 == 1 {
                self.double_mod(&mut x);
            }
        }
        to_float(&x)
    }

    /// x ← 2x mod n, for x < n.
    fn double_mod(&self, x: &mut IntLimbs) {
        let mut carry = 0;
        for limb in x.iter_mut().take(self.len) {
            let doubled = (*limb << 1) | carry;
            carry = doubled >> LIMB_BITS;
            *limb = doubled & MASK;
        }
        self.reduce_once(x);
    }

    /// x ← x − n if x ≥ n, for x < 2n.
    fn reduce_once(&self, x: &mut IntLimbs) {
        let mut diff = [0i64; BUF];
        let mut borrow = 0i64;
        for ((d, &a), &b) in diff.iter_mut().zip(x.iter()).zip(&self.n).take(self.len) {
            let t = a - b - borrow;
            borrow = i64::from(t < 0);
            *d = t & MASK;
        }
        if borrow == 0 {
            *x = diff;
        }
    }

    /// x·y·R⁻¹ mod n (below 2n) for x, y below 2n; `y_rev` is y with its L limbs reversed.
    /// The common key sizes get a copy compiled for their L (constant loop bounds).
    fn mul(&self, x: &Limbs, y_rev: &Limbs) -> Limbs {
        match self.len {
            40 => self.mul_l::<40>(x, y_rev),
            60 => self.mul_l::<60>(x, y_rev),
            79 => self.mul_l::<79>(x, y_rev),
            _ => self.mul_l::<0>(x, y_rev),
        }
    }

    /// [`Modulus52::mul`] for L = `FIXED`, or `self.len` when `FIXED` is 0.
    #[cfg_attr(
        all(target_arch = "wasm32", target_feature = "simd128"),
        target_feature(enable = "relaxed-simd")
    )]
    fn mul_l<const FIXED: usize>(&self, x: &Limbs, y_rev: &Limbs) -> Limbs {
        use lanes::{acc_add_bits, acc_sum, acc_zero, add, load, madd, splat, sub};
        let l = if FIXED == 0 { self.len } else { FIXED };
        let mut m = [0.0f64; BUF];
        let mut out = [0i64; BUF];
        let (c_hi, c_lo) = (splat(C_HI), splat(C_LO));
        let bits_hi = C_HI.to_bits().cast_signed();
        let bits_lo = C_LO.to_bits().cast_signed();
        let (n0, n1) = (self.n[0], self.n[1]);
        let mut carry = 0i64;
        // h parts owed to the next column.
        let mut high_next = 0i64;
        // The digit of the previous column, not yet in `m` (the vector sums skip it).
        let mut m_prev = 0i64;
        for k in 0..2 * l - 1 {
            let first = k.saturating_sub(l - 1);
            let last = k.min(l - 1);
            let mut acc_high = acc_zero();
            let mut acc_low = acc_zero();
            let mut terms = 0i64;
            let mut i = first;
            while i <= last {
                // Lanes past `last` meet zero padding: x[L], y_rev[L] or m (zero beyond
                // the digits published so far), contributing h = l = 0.
                let j = l - 1 + i - k;
                let (xv, yv) = (load(x, i), load(y_rev, j));
                let (mv, nv) = (load(&m, i), load(&self.n_rev, j));
                let high = madd(xv, yv, c_hi);
                let low = add(madd(xv, yv, sub(c_hi, high)), c_lo);
                acc_high = acc_add_bits(acc_high, high);
                acc_low = acc_add_bits(acc_low, low);
                let high = madd(mv, nv, c_hi);
                let low = add(madd(mv, nv, sub(c_hi, high)), c_lo);
                acc_high = acc_add_bits(acc_high, high);
                acc_low = acc_add_bits(acc_low, low);
                terms += 4;
                i += 2;
            }
            let high_sum = acc_sum(acc_high).wrapping_sub(terms.wrapping_mul(bits_hi));
            let low_sum = acc_sum(acc_low).wrapping_sub(terms.wrapping_mul(bits_lo));
            let mut t = low_sum + high_next + carry;
            high_next = high_sum;
            if (1..=l).contains(&k) {
                // m_{k−1}·n₁ belongs to this column; m_{k−1} joins the vector sums from the
                // next column on.
                let (h, lo) = mul52(m_prev, n1);
                t += lo;
                high_next += h;
                if let Some(slot) = m.get_mut(k - 1) {
                    #[allow(clippy::cast_precision_loss)]
                    let digit = m_prev as f64;
                    *slot = digit;
                }
            }
            if k < l {
                let digit = ((t & MASK).wrapping_mul(self.n0_inv)) & MASK;
                let (h, lo) = mul52(digit, n0);
                // t + lo ≡ 0 mod 2⁵².
                t += lo;
                high_next += h;
                carry = t >> LIMB_BITS;
                m_prev = digit;
            } else {
                if let Some(slot) = out.get_mut(k - l) {
                    *slot = t & MASK;
                }
                carry = t >> LIMB_BITS;
            }
        }
        if let Some(slot) = out.get_mut(l - 1) {
            *slot = high_next + carry;
        }
        to_float(&out)
    }

    /// aᵉ mod n for a < n given as k big-endian bytes, e odd and ≥ 3, written big-endian to
    /// all of `out` (k bytes); `false` if something does not fit.
    pub(crate) fn pow_be(&self, a_be: &[u8], e: u64, out: &mut [u8]) -> bool {
        let Some(a) = from_be_bytes(a_be, self.len) else {
            return false;
        };
        let a = to_float(&a);
        let a_rev = reversed(&a, self.len);
        let x = self.mul(&self.r2, &a_rev);
        let x_rev = reversed(&x, self.len);
        let top = (u64::BITS - 1).saturating_sub(e.leading_zeros());
        let mut acc = x;
        for bit in (1..top).rev() {
            acc = self.mul(&acc, &reversed(&acc, self.len));
            if e >> bit & 1 == 1 {
                acc = self.mul(&acc, &x_rev);
            }
        }
        if top > 0 {
            acc = self.mul(&acc, &reversed(&acc, self.len));
        }
        let mut result = to_int(&self.mul(&acc, &a_rev));
        self.reduce_once(&mut result);
        to_be_bytes(&result, out)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn limb_products_split_exactly() {
        let values = [
            0i64,
            1,
            2,
            3,
            MASK,
            MASK - 1,
            1 << 51,
            (1 << 51) + 1,
            0x000f_edcb_a987_6543,
        ];
        for &a in &values {
            for &b in &values {
                let product = i128::from(a) * i128::from(b);
                let (high, low) = mul52(a, b);
                assert_eq!(i128::from(high) * (1 << 52) + i128::from(low), product);
                // The same through the float path, one lane.
                #[allow(clippy::cast_precision_loss)]
                let (x, y) = (a as f64, b as f64);
                let hi = x.mul_add(y, C_HI);
                let lo = x.mul_add(y, C_HI - hi) + C_LO;
                let h = hi.to_bits().cast_signed() - C_HI.to_bits().cast_signed();
                let l = lo.to_bits().cast_signed() - C_LO.to_bits().cast_signed();
                assert_eq!(
                    i128::from(h) * (1 << 52) + i128::from(l),
                    product,
                    "{a} {b}"
                );
            }
        }
    }
}

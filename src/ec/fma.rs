//! Exact products of 52-bit limbs through `f64` fused multiply-add, for the field elements of
//! the fast build (see `crate::rsa_verify`'s `fma` for the arithmetic, which this shares).
//!
//! For limbs a, b < 2⁵² and C = 2¹⁰⁴: `hi = fma(a, b, C)` is C + h·2⁵² with h = a·b/2⁵²
//! rounded, `fma(a, b, C − hi) + 3·2⁵¹` is 3·2⁵¹ + l with a·b = h·2⁵² + l exactly, and the bit
//! patterns of both, read as integers, are h and l plus a constant. So a product's column sums
//! are sums of bit patterns minus a known multiple of the constants.
//!
//! Field elements have 5 (P-256, Ed25519) or 8 (P-384) limbs: too few for the column-wise
//! scheme of the RSA kernel. Here row i multiplies xᵢ (both lanes) by the limb pairs
//! (y₂ⱼ, y₂ⱼ₊₁); the low halves land in columns (i+2j, i+2j+1) and the high halves one
//! column up, so each result goes to one of two sets of pair accumulators: pairs starting at
//! an even column or at an odd one. With an odd limb count the last pair is (y_{L−1}, 0),
//! whose lane contributes h = l = 0.
//!
//! Unfused, `relaxed_madd` gives wrong products; the keys check fusion before they use this
//! (`super::KeyBackend`). Natively (tests) `f64::mul_add` is always fused.

use super::field::COLS;

/// C = 2¹⁰⁴.
const C_HI: f64 = 20_282_409_603_651_670_423_947_251_286_016.0;
/// 3·2⁵¹.
const C_LO: f64 = 6_755_399_441_055_744.0;

/// Pair accumulators, at most ⌈8/2⌉ + 1 of each parity.
const ACCS: usize = 9;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use core::arch::wasm32::{
        f64x2, f64x2_add, f64x2_relaxed_madd, f64x2_splat, f64x2_sub, i64x2_add,
        i64x2_extract_lane, i64x2_splat, v128,
    };

    pub(super) type V = v128;
    pub(super) type Acc = v128;

    #[inline(always)]
    pub(super) fn pair(a: f64, b: f64) -> V {
        f64x2(a, b)
    }

    #[inline(always)]
    pub(super) fn splat(x: f64) -> V {
        f64x2_splat(x)
    }

    #[inline]
    #[target_feature(enable = "relaxed-simd")]
    pub(super) fn madd(a: V, b: V, c: V) -> V {
        f64x2_relaxed_madd(a, b, c)
    }

    #[inline(always)]
    pub(super) fn sub(a: V, b: V) -> V {
        f64x2_sub(a, b)
    }

    #[inline(always)]
    pub(super) fn add(a: V, b: V) -> V {
        f64x2_add(a, b)
    }

    #[inline(always)]
    pub(super) fn acc_zero() -> Acc {
        i64x2_splat(0)
    }

    /// acc + the bit patterns of v's lanes (as i64, wrapping).
    #[inline(always)]
    pub(super) fn acc_add_bits(acc: Acc, v: V) -> Acc {
        i64x2_add(acc, v)
    }

    #[inline(always)]
    pub(super) fn lanes(acc: Acc) -> [i64; 2] {
        [i64x2_extract_lane::<0>(acc), i64x2_extract_lane::<1>(acc)]
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lanes {
    pub(super) type V = [f64; 2];
    pub(super) type Acc = [i64; 2];

    pub(super) fn pair(a: f64, b: f64) -> V {
        [a, b]
    }

    pub(super) fn splat(x: f64) -> V {
        [x, x]
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

    pub(super) fn lanes(acc: Acc) -> [i64; 2] {
        acc
    }
}

/// What the constants contribute to each column: `terms_lo` low halves carry 3·2⁵¹ each,
/// `terms_hi` high halves C each.
const fn column_offsets<const L: usize>() -> [i64; COLS] {
    let bits_hi = C_HI.to_bits() as i64;
    let bits_lo = C_LO.to_bits() as i64;
    let mut offsets = [0i64; COLS];
    let pairs = L.div_ceil(2);
    let mut i = 0;
    while i < L {
        let mut j = 0;
        while j < pairs {
            let c = i + 2 * j;
            offsets[c] = offsets[c].wrapping_add(bits_lo);
            offsets[c + 1] = offsets[c + 1].wrapping_add(bits_lo).wrapping_add(bits_hi);
            offsets[c + 2] = offsets[c + 2].wrapping_add(bits_hi);
            j += 1;
        }
        i += 1;
    }
    offsets
}

/// The columns of x·y (L ≤ 8 limbs of 52 bits, each in [0, 2⁵²)): column k holds
/// Σ_{i+j=k} low halves + Σ_{i+j=k−1} high halves, exactly, as signed sums.
#[inline(always)]
pub(crate) fn product<const L: usize>(x: &[i64; L], y: &[i64; L]) -> [i64; COLS] {
    // In wasm, calling a function with more target features is safe: the module is validated
    // whole, so the instructions are there or it never runs.
    product_inner(x, y)
}

#[inline]
#[cfg_attr(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_feature(enable = "relaxed-simd")
)]
#[allow(clippy::cast_precision_loss, clippy::needless_range_loop)]
fn product_inner<const L: usize>(x: &[i64; L], y: &[i64; L]) -> [i64; COLS] {
    use lanes::{acc_add_bits, acc_zero, add, madd, pair, splat, sub};
    let pairs = L.div_ceil(2);
    let (c_hi, c_lo) = (splat(C_HI), splat(C_LO));
    let mut y_pairs = [pair(0.0, 0.0); ACCS];
    for j in 0..pairs {
        let high = if 2 * j + 1 < L {
            y[2 * j + 1] as f64
        } else {
            0.0
        };
        y_pairs[j] = pair(y[2 * j] as f64, high);
    }
    // even[k]: columns (2k, 2k+1); odd[k]: columns (2k+1, 2k+2).
    let mut even = [acc_zero(); ACCS];
    let mut odd = [acc_zero(); ACCS];
    for i in 0..L {
        let xi = splat(x[i] as f64);
        for (j, &yv) in y_pairs.iter().enumerate().take(pairs) {
            let hi = madd(xi, yv, c_hi);
            let lo = add(madd(xi, yv, sub(c_hi, hi)), c_lo);
            let c = i + 2 * j;
            if c % 2 == 0 {
                even[c / 2] = acc_add_bits(even[c / 2], lo);
                odd[c / 2] = acc_add_bits(odd[c / 2], hi);
            } else {
                odd[c / 2] = acc_add_bits(odd[c / 2], lo);
                even[c / 2 + 1] = acc_add_bits(even[c / 2 + 1], hi);
            }
        }
    }
    let offsets = const { column_offsets::<L>() };
    let mut t = [0i64; COLS];
    for k in 0..=L {
        let [e0, e1] = lanes::lanes(even[k]);
        let [o0, o1] = lanes::lanes(odd[k]);
        t[2 * k] = t[2 * k].wrapping_add(e0);
        t[2 * k + 1] = t[2 * k + 1].wrapping_add(e1).wrapping_add(o0);
        t[2 * k + 2] = t[2 * k + 2].wrapping_add(o1);
    }
    for (column, offset) in t.iter_mut().zip(offsets) {
        *column = column.wrapping_sub(offset);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_exact() {
        let limbs5 = [(1i64 << 52) - 1, 0, 1 << 51, 0x000f_edcb_a987_6543, 12345];
        let other5 = [(1i64 << 52) - 1, (1 << 52) - 2, 3, 0x0001_2345_6789_abcd, 0];
        let t = product(&limbs5, &other5);
        let mut expected = [0i128; COLS];
        for i in 0..5 {
            for j in 0..5 {
                let product = i128::from(limbs5[i]) * i128::from(other5[j]);
                // Low half at i + j, high half at i + j + 1, with the rounding of `fma`.
                let h = (product + (1 << 51)) >> 52;
                let l = product - (h << 52);
                expected[i + j] += l;
                expected[i + j + 1] += h;
            }
        }
        let value = |cols: &[i128]| {
            cols.iter()
                .enumerate()
                .fold(num_bigint::BigInt::from(0), |acc, (k, &c)| {
                    acc + (num_bigint::BigInt::from(c) << (52 * k))
                })
        };
        let got: Vec<i128> = t.iter().map(|&c| i128::from(c)).collect();
        assert_eq!(value(&got), value(&expected));
    }
}

//! The inner loops of the Montgomery products: sums of limb products along columns.
//!
//! Column k of a product sums xᵢ·y_{k-i}; with y stored in reverse order both operands are
//! read forward, `x[i + t]` and `y_rev[j + t]`. The kernels compute four consecutive columns
//! at once, so that the operand they share is loaded once: below column L (the "lower" half)
//! the four columns start at the same i and at j, j-1, j-2, j-3; above it at i, i+1, i+2, i+3
//! and the same j. Each column sums two products, x1·y1 (the operands, or for a square twice
//! the operand with itself) and x2·y2 (the Montgomery digits with the modulus).
//!
//! Limbs have 28 bits (29 for the doubled operand of a squaring), so every limb product is
//! below 2⁵⁷ and 256 products below 2⁵⁶ add up in a `u64` without overflow: the loops
//! accumulate without carry handling, which makes them cheap and vectorisable. For the largest
//! modulus (147 limbs) each of a column's two partial sums stays below 160·2⁵⁶ < 2⁶³·⁴; the
//! caller adds them with the carry split at bit 28 (`monty`).

use super::monty::Limbs;

/// The four buffers of a product: x1·y1 + x2·y2, y1 and y2 reversed.
#[derive(Clone, Copy)]
pub(crate) struct Operands<'a> {
    pub(crate) x1: &'a Limbs,
    pub(crate) y1: &'a Limbs,
    pub(crate) x2: &'a Limbs,
    pub(crate) y2: &'a Limbs,
}

/// Where column c of four starts: in the lower half at (i0, j0 - c), in the upper half at
/// (i0 + c, j0). Columns past the last one (a partial block) may get clamped offsets: their
/// sums are meaningless and unused.
#[inline(always)]
pub(crate) fn column_start<const UPPER: bool>(i0: usize, j0: usize, c: usize) -> (usize, usize) {
    if UPPER {
        (i0 + c, j0)
    } else {
        (i0, j0.saturating_sub(c))
    }
}

pub(crate) trait Kernel {
    /// Whether squarings should take the cross products once (`Modulus::sqr`). Measured on
    /// RSA-2048: the portable kernel gains 6% natively and 13% in wasm under V8 from it; the
    /// simd128 kernel loses 2% (its time goes to loads, shuffles and loop control rather than
    /// to the multiplier, and the diagonal costs masked groups and a second loop).
    const DEDICATED_SQUARE: bool;

    /// For the four columns c (starts from [`column_start`]): the two partial sums of
    /// Σ_{t < 4·groups} x1[i+t]·y1[j+t] + x2[i+t]·y2[j+t]. Whole groups of 4 limbs are read:
    /// the caller makes sure limbs past a column's range contribute 0 (zero padding, or a
    /// factor meeting zero padding).
    fn columns4<const UPPER: bool>(
        ops: Operands<'_>,
        i0: usize,
        j0: usize,
        groups: usize,
    ) -> [[u64; 2]; 4];

    /// As [`Kernel::columns4`], but the x1·y1 sum of column c has exactly `len1[c]` terms
    /// (the cross terms of a square, which must stop at the diagonal). The four `len1` differ
    /// by at most 2, and `len1[c] ≤ 4·groups2`.
    fn square_columns4<const UPPER: bool>(
        ops: Operands<'_>,
        i0: usize,
        j0: usize,
        len1: [usize; 4],
        groups2: usize,
    ) -> [[u64; 2]; 4];

    /// Writes `group` to limbs `at..at + 4` (one 16-byte store for the vector kernel, so that
    /// the next loads of it are served by store forwarding).
    fn store_group(x: &mut Limbs, at: usize, group: [u32; 4]);
}

/// Plain Rust: the native build (where LLVM vectorises it for the host) and wasm without
/// `simd128`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

#[inline(always)]
fn dot(x: &Limbs, y: &Limbs, i: usize, j: usize, len: usize) -> u64 {
    let x = x.get(i..).unwrap_or(&[]);
    let y = y.get(j..).unwrap_or(&[]);
    x.iter()
        .zip(y)
        .take(len)
        .map(|(&a, &b)| u64::from(a) * u64::from(b))
        .fold(0, u64::wrapping_add)
}

impl Kernel for Portable {
    const DEDICATED_SQUARE: bool = true;

    #[inline(always)]
    fn columns4<const UPPER: bool>(
        ops: Operands<'_>,
        i0: usize,
        j0: usize,
        groups: usize,
    ) -> [[u64; 2]; 4] {
        Self::square_columns4::<UPPER>(ops, i0, j0, [4 * groups; 4], groups)
    }

    #[inline(always)]
    fn square_columns4<const UPPER: bool>(
        ops: Operands<'_>,
        i0: usize,
        j0: usize,
        len1: [usize; 4],
        groups2: usize,
    ) -> [[u64; 2]; 4] {
        let mut sums = [[0; 2]; 4];
        for (c, (sum, len1)) in sums.iter_mut().zip(len1).enumerate() {
            let (i, j) = column_start::<UPPER>(i0, j0, c);
            *sum = [
                dot(ops.x1, ops.y1, i, j, len1),
                dot(ops.x2, ops.y2, i, j, 4 * groups2),
            ];
        }
        sums
    }

    #[inline(always)]
    fn store_group(x: &mut Limbs, at: usize, group: [u32; 4]) {
        if let Some(dst) = x.get_mut(at..at + 4) {
            dst.copy_from_slice(&group);
        }
    }
}

/// wasm `simd128`: `i64x2.extmul_{low,high}_i32x4_u` form four 32×32→64 products per pair of
/// 128-bit loads, accumulated in the two 64-bit lanes of one accumulator per column (at most
/// 160 products per lane, counting a doubled one twice).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Simd128;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::{
        i64x2_add, u32x4, u64x2_extmul_high_u32x4, u64x2_extmul_low_u32x4, u64x2_extract_lane,
        u64x2_splat, v128, v128_and, v128_load, v128_store,
    };

    use super::{Limbs, Operands, column_start};
    use crate::rsa_verify::monty::BUF;

    /// Eight all-ones lanes, then eight zero lanes: 4 lanes read from 8 - r keep the first r
    /// (r clamped to 0..=8) of a group.
    static MASK_ROW: [u32; 16] = [!0, !0, !0, !0, !0, !0, !0, !0, 0, 0, 0, 0, 0, 0, 0, 0];

    /// The mask keeping the first `r` lanes of a group (all for r ≥ 4, none for r ≤ 0).
    #[inline(always)]
    fn first_lanes(r: isize) -> v128 {
        let offset = 8 - r.clamp(0, 8).unsigned_abs();
        // SAFETY: offset ≤ 8, so lanes offset..offset + 4 lie within the 16 of MASK_ROW.
        unsafe { v128_load(MASK_ROW.as_ptr().add(offset).cast::<v128>()) }
    }

    /// Loads limbs `at..at + 4` of `x`.
    ///
    /// # Safety
    /// `at + 4 ≤ BUF`.
    #[inline(always)]
    unsafe fn load(x: &Limbs, at: usize) -> v128 {
        // SAFETY: the caller guarantees `at + 4 ≤ BUF`, so 16 bytes from limb `at` lie in
        // `x`; wasm loads have no alignment requirement.
        unsafe { v128_load(x.as_ptr().add(at).cast::<v128>()) }
    }

    #[inline(always)]
    fn mul_add(acc: v128, a: v128, b: v128) -> v128 {
        let acc = i64x2_add(acc, u64x2_extmul_low_u32x4(a, b));
        i64x2_add(acc, u64x2_extmul_high_u32x4(a, b))
    }

    /// The largest start among the four columns: reads from `start + t` are in bounds for
    /// t + 4 ≤ BUF - start.
    #[inline(always)]
    fn max_start<const UPPER: bool>(i0: usize, j0: usize) -> usize {
        let (i, j) = column_start::<UPPER>(i0, j0, if UPPER { 3 } else { 0 });
        i.max(j)
    }

    /// acc[c] += Σ over group `at` of x[i_c + at..]·y[j_c + at..] for the four columns,
    /// loading the operand the columns share once. `mask` is applied to x.
    ///
    /// # Safety
    /// `max_start(i0, j0) + at + 4 ≤ BUF`.
    #[inline(always)]
    unsafe fn group4<const UPPER: bool>(
        acc: &mut [v128; 4],
        x: &Limbs,
        y: &Limbs,
        i0: usize,
        j0: usize,
        at: usize,
        masks: Option<[v128; 4]>,
    ) {
        // SAFETY: every load below starts at most max_start(i0, j0) + at, and the caller
        // guarantees max_start(i0, j0) + at + 4 ≤ BUF: all 16-byte loads lie within x and y.
        unsafe {
            if UPPER {
                let shared = load(y, j0 + at);
                for (c, acc) in acc.iter_mut().enumerate() {
                    let mut xv = load(x, i0 + c + at);
                    if let Some(masks) = masks {
                        xv = v128_and(xv, masks[c]);
                    }
                    *acc = mul_add(*acc, xv, shared);
                }
            } else {
                let shared = load(x, i0 + at);
                for (c, acc) in acc.iter_mut().enumerate() {
                    let xv = match masks {
                        Some(masks) => v128_and(shared, masks[c]),
                        None => shared,
                    };
                    *acc = mul_add(*acc, xv, load(y, j0.saturating_sub(c) + at));
                }
            }
        }
    }

    #[inline(always)]
    fn lanes(acc: [v128; 4]) -> [[u64; 2]; 4] {
        acc.map(|a| [u64x2_extract_lane::<0>(a), u64x2_extract_lane::<1>(a)])
    }

    impl super::Kernel for super::Simd128 {
        const DEDICATED_SQUARE: bool = false;

        #[inline(always)]
        fn columns4<const UPPER: bool>(
            ops: Operands<'_>,
            i0: usize,
            j0: usize,
            groups: usize,
        ) -> [[u64; 2]; 4] {
            let readable = BUF.saturating_sub(max_start::<UPPER>(i0, j0)) / 4;
            let groups = groups.min(readable);
            let mut acc = [u64x2_splat(0); 4];
            for g in 0..groups {
                // SAFETY: g < groups ≤ readable: max_start + 4g + 4 ≤ BUF.
                unsafe {
                    group4::<UPPER>(&mut acc, ops.x1, ops.y1, i0, j0, 4 * g, None);
                    group4::<UPPER>(&mut acc, ops.x2, ops.y2, i0, j0, 4 * g, None);
                }
            }
            lanes(acc)
        }

        #[inline(always)]
        fn square_columns4<const UPPER: bool>(
            ops: Operands<'_>,
            i0: usize,
            j0: usize,
            len1: [usize; 4],
            groups2: usize,
        ) -> [[u64; 2]; 4] {
            let readable = BUF.saturating_sub(max_start::<UPPER>(i0, j0)) / 4;
            let groups2 = groups2.min(readable);
            // Whole groups of x1·y1 common to the four columns, then two masked groups
            // holding each column's last 0 to 5 terms.
            let common = len1.iter().copied().min().unwrap_or(0) / 4;
            let common = common.min(groups2).min(readable.saturating_sub(2));
            let mut acc = [u64x2_splat(0); 4];
            for g in 0..common {
                // SAFETY: g < common ≤ readable.
                unsafe {
                    group4::<UPPER>(&mut acc, ops.x1, ops.y1, i0, j0, 4 * g, None);
                    group4::<UPPER>(&mut acc, ops.x2, ops.y2, i0, j0, 4 * g, None);
                }
            }
            for g in common..groups2 {
                // SAFETY: g < groups2 ≤ readable.
                unsafe { group4::<UPPER>(&mut acc, ops.x2, ops.y2, i0, j0, 4 * g, None) };
            }
            let done = 4 * common;
            let most = len1.iter().copied().max().unwrap_or(0);
            let mut extra = 0;
            while done + extra < most {
                let masks = len1.map(|len| first_lanes(len as isize - (done + extra) as isize));
                // SAFETY: extra ≤ 4 (the four lengths differ by at most 2, and the shortest
                // is below done + 4), so common + 2 ≤ readable covers the group.
                unsafe {
                    group4::<UPPER>(&mut acc, ops.x1, ops.y1, i0, j0, done + extra, Some(masks));
                }
                extra += 4;
                if extra > 4 {
                    break;
                }
            }
            lanes(acc)
        }

        #[inline(always)]
        fn store_group(x: &mut Limbs, at: usize, group: [u32; 4]) {
            if at + 4 <= BUF {
                let [a, b, c, d] = group;
                // SAFETY: at + 4 ≤ BUF: 16 writable bytes from limb `at` of `x`.
                unsafe { v128_store(x.as_mut_ptr().add(at).cast::<v128>(), u32x4(a, b, c, d)) }
            }
        }
    }
}

/// The kernel verification uses on this target.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) type Best = Simd128;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) type Best = Portable;

//! The inner loop of the Montgomery products: a dot product of two runs of 28-bit limbs.
//!
//! Every limb product is below 2⁵⁶, so up to 256 of them add up in a `u64` without overflow
//! (a column of a product of two 4096-bit numbers has at most 147): the sums need no carry
//! handling inside the loop, which is what makes them cheap and vectorisable.

/// Σ x[i]·y[i] for i < `len`.
///
/// Callers pass slices extending at least to `len` rounded up to a multiple of 4 (the vector
/// kernel reads whole groups of four limbs and masks what lies beyond `len`); a shorter slice
/// only drops terms, never panics.
pub(crate) trait Kernel {
    fn dot(x: &[u32], y: &[u32], len: usize) -> u64;
}

/// Plain Rust: the native build (where LLVM vectorises it for the host) and wasm without
/// `simd128`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Kernel for Portable {
    #[inline(always)]
    fn dot(x: &[u32], y: &[u32], len: usize) -> u64 {
        x.iter()
            .zip(y)
            .take(len)
            .map(|(&a, &b)| u64::from(a) * u64::from(b))
            .fold(0u64, u64::wrapping_add)
    }
}

/// wasm `simd128`: `u64x2.extmul_{low,high}_u32x4` forms four 32×32→64 products per pair of
/// 128-bit loads, accumulated in the two 64-bit lanes.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Simd128;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::{
        i64x2_add, u32x4, u64x2_extmul_high_u32x4, u64x2_extmul_low_u32x4, u64x2_extract_lane,
        u64x2_splat, v128, v128_and, v128_load,
    };

    /// Lanes kept from a last, partial group of `len % 4` limbs.
    const TAIL_MASKS: [v128; 4] = [
        u32x4(0, 0, 0, 0),
        u32x4(!0, 0, 0, 0),
        u32x4(!0, !0, 0, 0),
        u32x4(!0, !0, !0, 0),
    ];

    #[inline(always)]
    fn load(group: &[u32]) -> v128 {
        debug_assert_eq!(group.len(), 4);
        // SAFETY: `group` comes from `chunks_exact(4)`: four initialised u32, 16 readable
        // bytes; wasm loads have no alignment requirement.
        unsafe { v128_load(group.as_ptr().cast::<v128>()) }
    }

    impl super::Kernel for super::Simd128 {
        #[inline(always)]
        fn dot(x: &[u32], y: &[u32], len: usize) -> u64 {
            let mut acc = u64x2_splat(0);
            let mut xs = x.chunks_exact(4);
            let mut ys = y.chunks_exact(4);
            for (xg, yg) in (&mut xs).zip(&mut ys).take(len / 4) {
                let (a, b) = (load(xg), load(yg));
                acc = i64x2_add(acc, u64x2_extmul_low_u32x4(a, b));
                acc = i64x2_add(acc, u64x2_extmul_high_u32x4(a, b));
            }
            let rem = len % 4;
            if rem != 0
                && let (Some(xg), Some(yg), Some(mask)) = (xs.next(), ys.next(), TAIL_MASKS.get(rem))
            {
                let (a, b) = (v128_and(load(xg), *mask), load(yg));
                acc = i64x2_add(acc, u64x2_extmul_low_u32x4(a, b));
                acc = i64x2_add(acc, u64x2_extmul_high_u32x4(a, b));
            }
            u64x2_extract_lane::<0>(acc).wrapping_add(u64x2_extract_lane::<1>(acc))
        }
    }
}

/// The kernel verification uses on this target.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) type Best = Simd128;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) type Best = Portable;

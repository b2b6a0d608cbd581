//! Short Weierstrass curves y² = x³ − 3x + b of prime order (P-256, P-384): affine and Jacobian
//! points, tables of odd multiples, and ECDSA verification (FIPS 186-5 §6.4.2) as
//! u₁·G + u₂·Q over per-part tables.

use super::field::{Fe, Modulus};
use super::scalar::{self, Digits};

/// What a curve fixes besides its field: sizes, the order, b and G, and the table layout.
#[derive(Debug)]
pub(crate) struct Curve {
    /// Bytes of a coordinate and of a scalar.
    pub bytes: usize,
    pub p_be: &'static [u8],
    pub n_be: &'static [u8],
    pub b_be: &'static [u8],
    pub gx_be: &'static [u8],
    pub gy_be: &'static [u8],
    /// Scalars are split into `parts` parts of `chunk` bits; each part has its own table of
    /// the base times 2^(chunk·i), so the double-and-add loop runs `chunk` + 1 steps.
    pub parts: usize,
    pub chunk: u32,
    /// NAF widths: the tables hold 2^(w−2) odd multiples.
    pub w_g: u32,
    pub w_q: u32,
}

pub(crate) struct Affine<M, const L: usize> {
    pub x: Fe<M, L>,
    pub y: Fe<M, L>,
}

impl<M, const L: usize> Clone for Affine<M, L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, const L: usize> Copy for Affine<M, L> {}

struct Jacobian<M, const L: usize> {
    x: Fe<M, L>,
    y: Fe<M, L>,
    z: Fe<M, L>,
    infinity: bool,
}

impl<M, const L: usize> Clone for Jacobian<M, L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, const L: usize> Copy for Jacobian<M, L> {}

impl<M: Modulus<L>, const L: usize> Jacobian<M, L> {
    fn infinity() -> Self {
        Jacobian {
            x: Fe::one(),
            y: Fe::one(),
            z: Fe::zero(),
            infinity: true,
        }
    }

    fn from_affine(p: &Affine<M, L>) -> Self {
        Jacobian {
            x: p.x,
            y: p.y,
            z: Fe::one(),
            infinity: false,
        }
    }

    /// 2P for a = −3 (dbl-2001-b: 3M + 5S). No point of order 2 exists (odd order), so the
    /// result is never the point at infinity for a finite P.
    #[inline]
    fn double(&self) -> Self {
        if self.infinity {
            return *self;
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2 = gamma.square();
        let y3 = alpha
            .mul(&beta4.sub(&x3))
            .sub(&gamma2.double().double().double());
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
            infinity: false,
        }
    }

    /// P + (x₂, ±y₂) (madd-2007-bl: 7M + 4S), with the cases the formula does not cover:
    /// P at infinity, P = Q (doubling) and P = −Q (infinity).
    #[inline]
    fn add_affine(&self, q: &Affine<M, L>, negate: bool) -> Self {
        let y2 = if negate { q.y.neg() } else { q.y };
        if self.infinity {
            return Jacobian {
                x: q.x,
                y: y2,
                z: Fe::one(),
                infinity: false,
            };
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = y2.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y).double();
        if h.is_zero() {
            return if r.is_zero() {
                self.double()
            } else {
                Jacobian::infinity()
            };
        }
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        let z3 = self.z.add(&h).square().sub(&z1z1).sub(&hh);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
            infinity: false,
        }
    }
}

/// Affine points of finite Jacobian ones, with one inversion.
fn normalize<M: Modulus<L>, const L: usize>(points: &[Jacobian<M, L>]) -> Vec<Affine<M, L>> {
    let mut z: Vec<Fe<M, L>> = points.iter().map(|p| p.z).collect();
    Fe::batch_invert(&mut z);
    points
        .iter()
        .zip(z)
        .map(|(p, z_inv)| {
            let z_inv2 = z_inv.square();
            Affine {
                x: p.x.mul(&z_inv2),
                y: p.y.mul(&z_inv2).mul(&z_inv),
            }
        })
        .collect()
}

/// Whether (x, y) satisfies y² = x³ − 3x + b.
pub(crate) fn on_curve<M: Modulus<L>, const L: usize>(curve: &Curve, p: &Affine<M, L>) -> bool {
    let Some(b) = Fe::<M, L>::from_be(curve.b_be) else {
        return false;
    };
    let x3 = p.x.square().mul(&p.x);
    let three_x = p.x.double().add(&p.x);
    p.y.square().equals(&x3.sub(&three_x).add(&b))
}

/// A point from big-endian coordinates of exactly the curve's size, each below p, on the
/// curve. (The point at infinity has no affine coordinates; with cofactor 1 every point on
/// the curve is in the group.)
pub(crate) fn point_from_be<M: Modulus<L>, const L: usize>(
    curve: &Curve,
    x: &[u8],
    y: &[u8],
) -> Option<Affine<M, L>> {
    if x.len() != curve.bytes || y.len() != curve.bytes {
        return None;
    }
    let point = Affine {
        x: Fe::from_be(x)?,
        y: Fe::from_be(y)?,
    };
    on_curve(curve, &point).then_some(point)
}

/// For every part i, the odd multiples 1, 3, …, 2^(w−1) − 1 of base·2^(chunk·i), affine.
pub(crate) struct Table<M, const L: usize> {
    points: Vec<Affine<M, L>>,
    per_part: usize,
}

impl<M: Modulus<L>, const L: usize> Table<M, L> {
    pub(crate) fn new(curve: &Curve, base: &Affine<M, L>, w: u32) -> Table<M, L> {
        let per_part = 1usize << (w - 2);
        let mut points = Vec::with_capacity(per_part * curve.parts);
        let mut part_base = *base;
        for part in 0..curve.parts {
            if part > 0 {
                let mut p = Jacobian::from_affine(&part_base);
                for _ in 0..curve.chunk {
                    p = p.double();
                }
                part_base = normalize(&[p])[0];
            }
            let twice = normalize(&[Jacobian::from_affine(&part_base).double()])[0];
            let mut multiples = Vec::with_capacity(per_part);
            let mut acc = Jacobian::from_affine(&part_base);
            multiples.push(acc);
            for _ in 1..per_part {
                acc = acc.add_affine(&twice, false);
                multiples.push(acc);
            }
            points.extend(normalize(&multiples));
        }
        Table { points, per_part }
    }

    /// The table's entry for a non-zero NAF digit of a part.
    #[inline]
    pub(crate) fn entry(&self, part: usize, digit: i8) -> Option<&Affine<M, L>> {
        let index = usize::from(digit.unsigned_abs() >> 1);
        self.points.get(part * self.per_part + index)
    }
}

/// u₁·G + u₂·Q through the two tables (interleaved: one doubling per bit position of a part).
fn double_mul<M: Modulus<L>, const L: usize>(
    curve: &Curve,
    g: &Table<M, L>,
    u1: &[u8],
    q: &Table<M, L>,
    u2: &[u8],
) -> Option<Jacobian<M, L>> {
    let d1 = Digits::new(u1, curve.parts, curve.chunk, curve.w_g)?;
    let d2 = Digits::new(u2, curve.parts, curve.chunk, curve.w_q)?;
    let mut acc = Jacobian::infinity();
    for pos in (0..d1.len.max(d2.len)).rev() {
        acc = acc.double();
        for (table, digits) in [(g, &d1), (q, &d2)] {
            for (part, naf) in digits.digits.iter().enumerate() {
                let digit = naf[pos];
                if digit != 0 {
                    acc = acc.add_affine(table.entry(part, digit)?, digit < 0);
                }
            }
        }
    }
    Some(acc)
}

/// The last step of ECDSA verification: R = u₁·G + u₂·Q is finite and x(R) ≡ r (mod n),
/// checked as X = r·Z² or, when r + n < p, X = (r + n)·Z² (no inversion).
pub(crate) fn ecdsa_check<M: Modulus<L>, const L: usize>(
    curve: &Curve,
    g: &Table<M, L>,
    q: &Table<M, L>,
    u1: &[u8],
    u2: &[u8],
    r: &[u8],
) -> bool {
    let Some(point) = double_mul(curve, g, u1, q, u2) else {
        return false;
    };
    if point.infinity {
        return false;
    }
    let z2 = point.z.square();
    let matches = |candidate: &[u8]| {
        Fe::<M, L>::from_be(candidate).is_some_and(|x| x.mul(&z2).equals(&point.x))
    };
    if matches(r) {
        return true;
    }
    // r + n, when it is below p, is the other x that reduces to r.
    let mut sum = vec![0u8; curve.bytes];
    let mut carry = 0u16;
    for ((out, &a), &b) in sum.iter_mut().zip(r).zip(curve.n_be).rev() {
        let v = u16::from(a) + u16::from(b) + carry;
        *out = (v & 0xff) as u8;
        carry = v >> 8;
    }
    carry == 0 && sum.as_slice() < curve.p_be && matches(&sum)
}

/// x(P) and y(P), big-endian, for tests and the backends' self-test.
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
pub(crate) fn affine_be<M: Modulus<L>, const L: usize>(p: &Affine<M, L>, out: &mut [u8]) {
    let half = out.len() / 2;
    let (x, y) = out.split_at_mut(half);
    p.x.write_be(x);
    p.y.write_be(y);
}

/// 3P, affine: a value that exercises every field operation, for the backend self-test.
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
pub(crate) fn triple<M: Modulus<L>, const L: usize>(p: &Affine<M, L>) -> Affine<M, L> {
    let three = Jacobian::from_affine(p).double().add_affine(p, false);
    normalize(&[three])[0]
}

/// ECDSA's scalars from a signature (r ‖ s) and a digest: (u₁, u₂) = (e·s⁻¹, r·s⁻¹) mod n as
/// big-endian bytes. `None` unless 0 < r, s < n. The digest is as long as n (SHA-256 for
/// P-256, SHA-384 for P-384), so e < 2ᵇⁱᵗˢ < 2n needs no truncation, only a reduction.
/// `N` is the scalar field with `NL` 29-bit limbs (dense Montgomery), `W` 64-bit words.
pub(crate) fn ecdsa_scalars<N: Modulus<NL>, const NL: usize, const W: usize>(
    curve: &Curve,
    r: &[u8],
    s: &[u8],
    digest: &[u8],
) -> Option<(Vec<u8>, Vec<u8>)> {
    let len = curve.bytes;
    if r.len() != len || s.len() != len || digest.len() != len {
        return None;
    }
    let nonzero = |x: &[u8]| x.iter().any(|&b| b != 0);
    if !nonzero(r) || !nonzero(s) || r >= curve.n_be || s >= curve.n_be {
        return None;
    }
    let n_words = scalar::words_from_be::<W>(curve.n_be)?;
    let s_words = scalar::words_from_be::<W>(s)?;
    // x·s ≡ 2ᵏ: w = x·2^(RB−k) is s⁻¹ in Montgomery form (R = 2^RB), built as a Montgomery
    // product of x with 2^(2RB−k) mod n.
    let (x, k) = scalar::almost_inverse(&s_words, &n_words)?;
    let rb = NL as u32 * N::PRIME.bits;
    let mut x_be = vec![0u8; len];
    scalar::words_to_be(&x, &mut x_be);
    let x = Fe::<N, NL>::from_raw_be(&x_be)?;
    let w = x.mul(&Fe::<N, NL>::pow2_raw((2 * rb).checked_sub(k)?)?);
    // Montgomery products of plain values with w are plain: e·s⁻¹ and r·s⁻¹.
    let e = Fe::<N, NL>::from_raw_be(digest)?;
    let r_raw = Fe::<N, NL>::from_raw_be(r)?;
    let to_be = |v: Fe<N, NL>| {
        let mut out = vec![0u8; len];
        super::field::limbs_to_be(&v.reduced_raw(), N::PRIME.bits, &mut out).then_some(out)
    };
    Some((to_be(e.mul(&w))?, to_be(r_raw.mul(&w))?))
}

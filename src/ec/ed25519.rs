//! Ed25519 (RFC 8032 §5.1) verification: the twisted Edwards curve −x² + y² = 1 + d·x²·y²
//! over p = 2²⁵⁵ − 19, in extended coordinates, with per-part tables for B and −A.
//!
//! The check is the cofactorless one, as BoringSSL's `ED25519_verify` (Envoy's `jwt_authn`)
//! does it: S < L, then the encoding of [S]B − [k]A must equal R byte for byte (so a
//! non-canonical R never verifies). Keys are refused when the encoding is not canonical
//! (y ≥ p), is not a point, or is a point of small order: such an A would let
//! [S]B − [k]A hit a forged R with probability 1/8 per try.

use std::sync::OnceLock;

use super::field::{Fe, Modulus, Prime, Term, limbs_to_be};
use super::scalar::Digits;
use super::{Backend, KeyError, hex};

const P_BE: [u8; 32] = hex("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed");
/// The group order L = 2²⁵² + 27742317777372353535851937790883648493.
pub(crate) const L_BE: [u8; 32] =
    hex("1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed");
const D_BE: [u8; 32] = hex("52036cee2b6ffe738cc740797779e89800700a4d4141d8ab75eb4dca135978a3");
const SQRT_M1_BE: [u8; 32] =
    hex("2b8324804fc1df0b2b4d00993dfbd7a72f431806ad2fe478c4ee1b274a0ea0b0");
const BX_BE: [u8; 32] = hex("216936d3cd6e53fec0a4e231fdd6dc5c692cc7609525a7b2c9562d608f25d51a");
const BY_BE: [u8; 32] = hex("6666666666666666666666666666666666666666666666666666666666666658");

/// p = 2²⁵⁵ − 19.
const SPARSE: &[Term] = &[Term { coeff: 1, exp: 255 }, Term { coeff: -19, exp: 0 }];

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

/// Scalars mod L, 9 limbs of 29 bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalar;
impl Modulus<9> for Scalar {
    const PRIME: Prime<9> = Prime::new(&L_BE, 29, &[]);
    const FMA: bool = false;
}

/// Scalars are split into 4 parts of 64 bits, each with its table.
const PARTS: usize = 4;
const CHUNK: u32 = 64;
/// NAF widths for B (built once) and for keys.
const W_B: u32 = 8;
const W_A: u32 = 6;

type F<M, const L: usize> = Fe<M, L>;

/// (X : Y : Z : T) with x = X/Z, y = Y/Z, x·y = T/Z.
struct Extended<M, const L: usize> {
    x: F<M, L>,
    y: F<M, L>,
    z: F<M, L>,
    t: F<M, L>,
}

impl<M, const L: usize> Clone for Extended<M, L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, const L: usize> Copy for Extended<M, L> {}

/// An affine point as (y + x, y − x, 2d·x·y), for mixed additions.
pub(crate) struct Niels<M, const L: usize> {
    y_plus_x: F<M, L>,
    y_minus_x: F<M, L>,
    xy2d: F<M, L>,
}

impl<M, const L: usize> Clone for Niels<M, L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M, const L: usize> Copy for Niels<M, L> {}

struct Constants<M, const L: usize> {
    d2: F<M, L>,
}

impl<M: Modulus<L>, const L: usize> Constants<M, L> {
    fn get() -> Option<Constants<M, L>> {
        let d = F::<M, L>::from_be(&D_BE)?;
        Some(Constants { d2: d.double() })
    }
}

impl<M: Modulus<L>, const L: usize> Extended<M, L> {
    fn identity() -> Self {
        Extended {
            x: F::zero(),
            y: F::one(),
            z: F::one(),
            t: F::zero(),
        }
    }

    fn from_affine(x: F<M, L>, y: F<M, L>) -> Self {
        Extended {
            x,
            y,
            z: F::one(),
            t: x.mul(&y),
        }
    }

    /// 2P (dbl-2008-hwcd with a = −1, signs folded: 4M + 4S).
    #[inline]
    fn double(&self) -> Self {
        let a = self.x.square();
        let b = self.y.square();
        let c = self.z.square().double();
        let h = a.add(&b);
        let e = h.sub(&self.x.add(&self.y).square());
        let g = a.sub(&b);
        let f = c.add(&g);
        Extended {
            x: e.mul(&f),
            y: g.mul(&h),
            z: f.mul(&g),
            t: e.mul(&h),
        }
    }

    /// P ± Q for an affine Q (add-2008-hwcd-3 with Z₂ = 1: 7M). Complete: d is not a square,
    /// so no case needs special handling.
    #[inline]
    fn add_niels(&self, q: &Niels<M, L>, negate: bool) -> Self {
        let (plus, minus) = if negate {
            (&q.y_minus_x, &q.y_plus_x)
        } else {
            (&q.y_plus_x, &q.y_minus_x)
        };
        let a = self.y.sub(&self.x).mul(minus);
        let b = self.y.add(&self.x).mul(plus);
        let c = self.t.mul(&q.xy2d);
        let d = self.z.double();
        let e = b.sub(&a);
        let h = b.add(&a);
        let (f, g) = if negate {
            (d.add(&c), d.sub(&c))
        } else {
            (d.sub(&c), d.add(&c))
        };
        Extended {
            x: e.mul(&f),
            y: g.mul(&h),
            z: f.mul(&g),
            t: e.mul(&h),
        }
    }

    fn is_identity(&self) -> bool {
        self.x.is_zero() && self.y.equals(&self.z)
    }
}

/// Affine (x, y) of finite points, with one inversion.
fn normalize<M: Modulus<L>, const L: usize>(points: &[Extended<M, L>]) -> Vec<(F<M, L>, F<M, L>)> {
    let mut z: Vec<F<M, L>> = points.iter().map(|p| p.z).collect();
    F::batch_invert(&mut z);
    points
        .iter()
        .zip(z)
        .map(|(p, z_inv)| (p.x.mul(&z_inv), p.y.mul(&z_inv)))
        .collect()
}

fn niels<M: Modulus<L>, const L: usize>(
    c: &Constants<M, L>,
    x: F<M, L>,
    y: F<M, L>,
) -> Niels<M, L> {
    Niels {
        y_plus_x: y.add(&x),
        y_minus_x: y.sub(&x),
        xy2d: x.mul(&y).mul(&c.d2),
    }
}

/// For every part i, the odd multiples 1, 3, …, 2^(w−1) − 1 of base·2^(64i).
pub(crate) struct Table<M, const L: usize> {
    points: Vec<Niels<M, L>>,
    per_part: usize,
}

impl<M: Modulus<L>, const L: usize> Table<M, L> {
    fn new(x: F<M, L>, y: F<M, L>, w: u32) -> Option<Table<M, L>> {
        let c = Constants::<M, L>::get()?;
        let per_part = 1usize << (w - 2);
        let mut points = Vec::with_capacity(per_part * PARTS);
        let mut base = (x, y);
        for part in 0..PARTS {
            if part > 0 {
                let mut p = Extended::from_affine(base.0, base.1);
                for _ in 0..CHUNK {
                    p = p.double();
                }
                base = *normalize(&[p]).first()?;
            }
            let (tx, ty) = *normalize(&[Extended::from_affine(base.0, base.1).double()]).first()?;
            let twice = niels(&c, tx, ty);
            let mut acc = Extended::from_affine(base.0, base.1);
            let mut multiples = vec![acc];
            for _ in 1..per_part {
                acc = acc.add_niels(&twice, false);
                multiples.push(acc);
            }
            points.extend(
                normalize(&multiples)
                    .into_iter()
                    .map(|(x, y)| niels(&c, x, y)),
            );
        }
        Some(Table { points, per_part })
    }

    #[inline]
    fn entry(&self, part: usize, digit: i8) -> Option<&Niels<M, L>> {
        let index = usize::from(digit.unsigned_abs() >> 1);
        self.points.get(part * self.per_part + index)
    }
}

/// Decodes a point (RFC 8032 §5.1.3), refusing y ≥ p.
fn decode<M: Modulus<L>, const L: usize>(bytes: &[u8; 32]) -> Option<(F<M, L>, F<M, L>)> {
    let sign = bytes[31] >> 7;
    let mut be = *bytes;
    be.reverse();
    be[0] &= 0x7f;
    let y = F::<M, L>::from_be(&be)?;
    let d = F::<M, L>::from_be(&D_BE)?;
    let y2 = y.square();
    let u = y2.sub(&F::one());
    let v = d.mul(&y2).add(&F::one());
    // x = u·v³·(u·v⁷)^((p−5)/8).
    let v3 = v.square().mul(&v);
    let v7 = v3.square().mul(&v);
    let exponent = {
        // (p − 5) / 8 = 2²⁵² − 3.
        let mut e = [0xffu8; 32];
        e[0] = 0x0f;
        e[31] = 0xfd;
        e
    };
    let mut x = u.mul(&v3).mul(&u.mul(&v7).pow_vartime(&exponent));
    let vx2 = v.mul(&x.square());
    if !vx2.equals(&u) {
        if vx2.equals(&u.neg()) {
            x = x.mul(&F::from_be(&SQRT_M1_BE)?);
        } else {
            return None;
        }
    }
    if x.is_zero() && sign == 1 {
        return None;
    }
    if u8::from(x.is_odd()) != sign {
        x = x.neg();
    }
    Some((x, y))
}

/// The tables of −A for one backend, refusing small-order points.
fn key_table<M: Modulus<L>, const L: usize>(bytes: &[u8; 32]) -> Result<Table<M, L>, KeyError> {
    let (x, y) = decode::<M, L>(bytes).ok_or(KeyError::NotOnCurve)?;
    let mut p = Extended::from_affine(x, y);
    for _ in 0..3 {
        p = p.double();
    }
    if p.is_identity() {
        return Err(KeyError::SmallOrder);
    }
    Table::new(x.neg(), y, W_A).ok_or(KeyError::NotOnCurve)
}

fn base_table<M: Modulus<L>, const L: usize>() -> Option<Table<M, L>> {
    Table::new(F::from_be(&BX_BE)?, F::from_be(&BY_BE)?, W_B)
}

/// [s]B + [k](−A), encoded and compared with R.
fn check<M: Modulus<L>, const L: usize>(
    b: &Table<M, L>,
    minus_a: &Table<M, L>,
    s_be: &[u8],
    k_be: &[u8],
    r: &[u8],
) -> bool {
    let (Some(ds), Some(dk)) = (
        Digits::new(s_be, PARTS, CHUNK, W_B),
        Digits::new(k_be, PARTS, CHUNK, W_A),
    ) else {
        return false;
    };
    let mut acc = Extended::<M, L>::identity();
    for pos in (0..ds.len.max(dk.len)).rev() {
        acc = acc.double();
        for (table, digits) in [(b, &ds), (minus_a, &dk)] {
            for (part, naf) in digits.digits.iter().enumerate() {
                let digit = naf[pos];
                if digit != 0 {
                    let Some(entry) = table.entry(part, digit) else {
                        return false;
                    };
                    acc = acc.add_niels(entry, digit < 0);
                }
            }
        }
    }
    // y first (one product): most wrong signatures stop here, without an inversion.
    let mut r_be: [u8; 32] = match r.try_into() {
        Ok(r) => r,
        Err(_) => return false,
    };
    let sign = r_be[31] >> 7;
    r_be.reverse();
    r_be[0] &= 0x7f;
    let Some(y_r) = F::<M, L>::from_be(&r_be) else {
        return false;
    };
    if !y_r.mul(&acc.z).equals(&acc.y) {
        return false;
    }
    let Some(z_inv) = acc.z.invert_vartime::<4>() else {
        return false;
    };
    u8::from(acc.x.mul(&z_inv).is_odd()) == sign
}

/// An Ed25519 public key (RFC 8037 `OKP` with `crv: Ed25519`), with the tables of −A.
#[derive(Clone)]
pub struct Ed25519Key {
    bytes: [u8; 32],
    tables: Backend<Table<FieldFma, 5>, Table<FieldInt, 9>>,
}

impl PartialEq for Ed25519Key {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Ed25519Key {}

impl std::fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("backend", &self.tables.name())
            .finish_non_exhaustive()
    }
}

impl Ed25519Key {
    /// A key from its 32-byte encoding: canonical, a point, not of small order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Ed25519Key, KeyError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::CoordinateLength {
            expected: 32,
            got: bytes.len(),
        })?;
        let int = key_table::<FieldInt, 9>(&bytes)?;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if let Some(fast) = Self::fast_table(&bytes, &int) {
            return Ok(Ed25519Key {
                bytes,
                tables: Backend::Fma(std::sync::Arc::new(fast)),
            });
        }
        Ok(Ed25519Key {
            bytes,
            tables: Backend::int(int),
        })
    }

    /// The floating-point tables if they equal the integer ones (the self-test: they differ
    /// when `relaxed_madd` is not fused).
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn fast_table(bytes: &[u8; 32], int: &Table<FieldInt, 9>) -> Option<Table<FieldFma, 5>> {
        let fast = key_table::<FieldFma, 5>(bytes).ok()?;
        let same = |a: &F<FieldFma, 5>, b: &F<FieldInt, 9>| {
            let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
            a.write_be(&mut x);
            b.write_be(&mut y);
            x == y
        };
        let last = |t: usize| t.checked_sub(1);
        let i = last(fast.points.len())?;
        let (f, n) = (fast.points.get(i)?, int.points.get(i)?);
        (same(&f.y_plus_x, &n.y_plus_x) && same(&f.xy2d, &n.xy2d)).then_some(fast)
    }

    /// For tests and benches: the same key on the floating-point backend, unchecked.
    #[doc(hidden)]
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
    pub fn with_fma_backend(&self) -> Option<Ed25519Key> {
        Some(Ed25519Key {
            bytes: self.bytes,
            tables: Backend::Fma(std::sync::Arc::new(
                key_table::<FieldFma, 5>(&self.bytes).ok()?,
            )),
        })
    }

    /// For tests and benches: the same key on the integer backend.
    #[doc(hidden)]
    pub fn with_int_backend(&self) -> Option<Ed25519Key> {
        Some(Ed25519Key {
            bytes: self.bytes,
            tables: Backend::int(key_table::<FieldInt, 9>(&self.bytes).ok()?),
        })
    }

    /// Which backend verifies with this key: "fma" or "int".
    pub fn backend(&self) -> &'static str {
        self.tables.name()
    }

    /// The key's 32-byte encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Verifies a 64-byte signature R ‖ S over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use sha2::{Digest, Sha512};
        if signature.len() != 64 {
            return false;
        }
        let (r, s) = signature.split_at(32);
        // S < L, compared big-endian.
        let mut s_be = [0u8; 32];
        s_be.copy_from_slice(s);
        s_be.reverse();
        if s_be >= L_BE {
            return false;
        }
        let hash = Sha512::new()
            .chain_update(r)
            .chain_update(self.bytes)
            .chain_update(message)
            .finalize();
        let Some(k) = F::<Scalar, 9>::reduce_wide_le(&hash) else {
            return false;
        };
        let mut k_be = [0u8; 32];
        if !limbs_to_be(&k.reduced_raw(), Scalar::PRIME.bits, &mut k_be) {
            return false;
        }
        match &self.tables {
            #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
            Backend::Fma(a) => {
                static B: OnceLock<Option<Table<FieldFma, 5>>> = OnceLock::new();
                match B.get_or_init(base_table) {
                    Some(b) => check(b, a, &s_be, &k_be, r),
                    None => false,
                }
            }
            Backend::Int(a, _) => {
                static B: OnceLock<Option<Table<FieldInt, 9>>> = OnceLock::new();
                match B.get_or_init(base_table) {
                    Some(b) => check(b, a, &s_be, &k_be, r),
                    None => false,
                }
            }
        }
    }
}

//! Scalars: big-endian bytes as 64-bit words, a variable-time modular inverse, the split of a
//! scalar into parts for the per-part tables, and their width-w NAF.

/// Big-endian bytes (at most 8·W) as little-endian 64-bit words.
pub(crate) fn words_from_be<const W: usize>(be: &[u8]) -> Option<[u64; W]> {
    if be.len() > 8 * W {
        return None;
    }
    let mut words = [0u64; W];
    for (i, &byte) in be.iter().rev().enumerate() {
        words[i / 8] |= u64::from(byte) << (8 * (i % 8));
    }
    Some(words)
}

/// Little-endian words as big-endian bytes into all of `out` (which must hold the value).
pub(crate) fn words_to_be<const W: usize>(words: &[u64; W], out: &mut [u8]) {
    let len = out.len();
    for (i, byte) in out.iter_mut().enumerate() {
        let from_low = len - 1 - i;
        *byte = words
            .get(from_low / 8)
            .map_or(0, |word| (word >> (8 * (from_low % 8))) as u8);
    }
}

fn is_zero<const W: usize>(x: &[u64; W]) -> bool {
    x.iter().all(|&w| w == 0)
}

fn greater<const W: usize>(a: &[u64; W], b: &[u64; W]) -> bool {
    for i in (0..W).rev() {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    false
}

/// a −= b (no underflow: a ≥ b).
fn sub_assign<const W: usize>(a: &mut [u64; W], b: &[u64; W]) {
    let mut borrow = false;
    for i in 0..W {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        a[i] = d;
        borrow = b1 || b2;
    }
}

/// a += b (no overflow: bounded by the caller's invariant).
fn add_assign<const W: usize>(a: &mut [u64; W], b: &[u64; W]) {
    let mut carry = false;
    for i in 0..W {
        let (s, c1) = a[i].overflowing_add(b[i]);
        let (s, c2) = s.overflowing_add(u64::from(carry));
        a[i] = s;
        carry = c1 || c2;
    }
}

fn trailing_zeros<const W: usize>(x: &[u64; W]) -> u32 {
    let mut zeros = 0;
    for &word in x {
        if word != 0 {
            return zeros + word.trailing_zeros();
        }
        zeros += 64;
    }
    zeros
}

fn shift_right<const W: usize>(x: &mut [u64; W], by: u32) {
    let (words, bits) = ((by / 64) as usize, by % 64);
    for i in 0..W {
        let low = x.get(i + words).copied().unwrap_or(0);
        let high = x.get(i + words + 1).copied().unwrap_or(0);
        x[i] = if bits == 0 {
            low
        } else {
            (low >> bits) | (high << (64 - bits))
        };
    }
}

fn shift_left<const W: usize>(x: &mut [u64; W], by: u32) {
    let (words, bits) = ((by / 64) as usize, by % 64);
    for i in (0..W).rev() {
        let low = i.checked_sub(words).map_or(0, |j| x[j]);
        let lower = i
            .checked_sub(words + 1)
            .map_or(0, |j| x.get(j).copied().unwrap_or(0));
        x[i] = if bits == 0 {
            low
        } else {
            (low << bits) | (lower >> (64 - bits))
        };
    }
}

/// For 0 < a < n, n odd: (x, k) with x·a ≡ 2^k (mod n), x < n, and k at most the bit
/// lengths of a and n together (each halving halves u·v, which starts at a·n): a binary
/// extended Euclid that doubles the cofactors instead of halving them mod n, as Kaliski's
/// almost-inverse. `None` if gcd(a, n) ≠ 1.
///
/// Invariants: x₁·a ≡ u·2ᵏ, y₂·a ≡ −v·2ᵏ (mod n) and u·y₂ + v·x₁ = n, all non-negative, so
/// x₁ and y₂ never exceed n (no overflow) and x₁ < n at the end, when v = 0 and u = gcd.
pub(crate) fn almost_inverse<const W: usize>(
    a: &[u64; W],
    n: &[u64; W],
) -> Option<([u64; W], u32)> {
    if is_zero(a) || !greater(n, a) {
        return None;
    }
    let (mut u, mut v) = (*a, *n);
    let mut x1 = [0u64; W];
    x1[0] = 1;
    let mut y2 = [0u64; W];
    let mut k = 0u32;
    loop {
        let zeros = trailing_zeros(&u);
        if zeros > 0 {
            shift_right(&mut u, zeros);
            shift_left(&mut y2, zeros);
            k += zeros;
        }
        let zeros = trailing_zeros(&v);
        if zeros > 0 {
            shift_right(&mut v, zeros);
            shift_left(&mut x1, zeros);
            k += zeros;
        }
        // u and v odd.
        if greater(&u, &v) {
            sub_assign(&mut u, &v);
            add_assign(&mut x1, &y2);
        } else {
            sub_assign(&mut v, &u);
            add_assign(&mut y2, &x1);
            if is_zero(&v) {
                break;
            }
        }
    }
    let mut one = [0u64; W];
    one[0] = 1;
    (u == one).then_some((x1, k))
}

/// Bits [start, start + len) of little-endian words, len ≤ 128.
pub(crate) fn bits_of<const W: usize>(words: &[u64; W], start: u32, len: u32) -> u128 {
    let mut out = 0u128;
    let mut taken = 0u32;
    while taken < len {
        let at = start + taken;
        let Some(&word) = words.get((at / 64) as usize) else {
            break;
        };
        let offset = at % 64;
        let avail = (64 - offset).min(len - taken);
        let chunk = (word >> offset) & (u64::MAX >> (64 - avail));
        out |= u128::from(chunk) << taken;
        taken += avail;
    }
    out
}

/// Longest NAF of a part (its bits plus one).
pub(crate) const MAX_NAF: usize = 97;

/// The width-`w` NAF of `k` (k < 2⁹⁶): digits least significant first, each zero or odd with
/// |d| < 2^(w−1), at most one non-zero digit in any w consecutive ones. Returns the length.
pub(crate) fn wnaf(mut k: u128, w: u32, out: &mut [i8; MAX_NAF]) -> usize {
    let window = 1i32 << w;
    let half = window >> 1;
    let mut len = 0;
    while k != 0 {
        let mut digit = 0i32;
        if k & 1 == 1 {
            digit = (k & (window as u128 - 1)) as i32;
            if digit >= half {
                digit -= window;
            }
            if digit >= 0 {
                k -= digit as u128;
            } else {
                k += (-digit) as u128;
            }
        }
        if let Some(slot) = out.get_mut(len) {
            *slot = digit as i8;
        }
        len += 1;
        k >>= 1;
    }
    len.min(MAX_NAF)
}

/// The NAF digits of every part of a scalar (big-endian, at most 48 bytes).
pub(crate) struct Digits {
    pub digits: Vec<[i8; MAX_NAF]>,
    /// The longest part's NAF length.
    pub len: usize,
}

impl Digits {
    pub(crate) fn new(scalar_be: &[u8], parts: usize, chunk: u32, w: u32) -> Option<Digits> {
        let words = words_from_be::<6>(scalar_be)?;
        let mut digits = Vec::with_capacity(parts);
        let mut len = 0;
        for part in 0..parts {
            let mut naf = [0i8; MAX_NAF];
            let bits = bits_of(&words, chunk * part as u32, chunk);
            len = len.max(wnaf(bits, w, &mut naf));
            digits.push(naf);
        }
        Some(Digits { digits, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;

    #[test]
    fn almost_inverse_matches_bigint() {
        let n_be = crate::ec::p256::N_BE;
        let n = BigUint::from_bytes_be(&n_be);
        let n_words = words_from_be::<4>(&n_be).unwrap();
        let mut seed = 0x1234_5678_9abc_def0u64;
        for round in 0..200 {
            let mut a_be = [0u8; 32];
            for byte in a_be.iter_mut() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *byte = (seed >> 56) as u8;
            }
            if round == 0 {
                a_be = [0; 32];
                a_be[31] = 1;
            }
            if round == 1 {
                a_be = n_be;
                a_be[31] -= 1;
            }
            let a = BigUint::from_bytes_be(&a_be) % &n;
            let a_words = words_from_be::<4>(&a.to_bytes_be()).unwrap();
            let (x, k) = almost_inverse(&a_words, &n_words).unwrap();
            let mut x_be = [0u8; 32];
            words_to_be(&x, &mut x_be);
            let x = BigUint::from_bytes_be(&x_be);
            assert!(x < n);
            assert!(k <= 512, "{k}");
            assert_eq!((x * &a) % &n, BigUint::from(2u32).modpow(&k.into(), &n));
        }
        assert!(almost_inverse(&[0u64; 4], &n_words).is_none());
        assert!(almost_inverse(&n_words, &n_words).is_none());
    }

    #[test]
    fn wnaf_digits_rebuild_the_part() {
        for (k, w) in [
            (0u128, 5),
            (1, 5),
            (0xffff_ffff_ffff_ffff, 6),
            (u128::MAX >> 32, 8),
            (12345, 4),
        ] {
            let mut digits = [0i8; MAX_NAF];
            let len = wnaf(k, w, &mut digits);
            let mut value = 0i128;
            for &d in digits[..len].iter().rev() {
                value = value * 2 + i128::from(d);
                assert!(d == 0 || (d % 2 != 0 && i32::from(d).abs() < 1 << (w - 1)));
            }
            assert_eq!(value as u128, k);
        }
    }

    #[test]
    fn bits_and_words() {
        let words =
            words_from_be::<2>(&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09]).unwrap();
        assert_eq!(words, [0x0203_0405_0607_0809, 0x01]);
        assert_eq!(bits_of(&words, 60, 8), 0x10);
        let mut out = [0u8; 9];
        words_to_be(&words, &mut out);
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
}

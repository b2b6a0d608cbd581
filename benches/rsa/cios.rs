//! A plain variable-time CIOS Montgomery product (Koç et al.): 32-bit limbs, 64-bit
//! intermediate products, carry handled at every limb. The baseline `src/rsa_verify` was
//! measured against; benchmark only.

use num_bigint::BigUint;

pub struct Cios {
    n: Vec<u32>,
    n0_inv: u32,
    r2: Vec<u32>,
}

fn limbs(x: &BigUint, len: usize) -> Vec<u32> {
    let mut out = x.to_u32_digits();
    out.resize(len, 0);
    out
}

impl Cios {
    pub fn new(n: &[u8]) -> Cios {
        let n = BigUint::from_bytes_be(n);
        let len = n.bits().div_ceil(32) as usize;
        let r2 = (BigUint::from(1u8) << (64 * len)) % &n;
        let n_limbs = limbs(&n, len);
        let mut inv = n_limbs[0];
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n_limbs[0].wrapping_mul(inv)));
        }
        Cios {
            n0_inv: inv.wrapping_neg(),
            r2: limbs(&r2, len),
            n: n_limbs,
        }
    }

    /// a·b·R⁻¹ mod n, fully reduced.
    fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let s = self.n.len();
        let mut t = vec![0u32; s + 2];
        for &bi in b {
            let mut carry = 0u64;
            for (tj, &aj) in t.iter_mut().zip(a) {
                let x = u64::from(*tj) + u64::from(aj) * u64::from(bi) + carry;
                *tj = x as u32;
                carry = x >> 32;
            }
            let x = u64::from(t[s]) + carry;
            t[s] = x as u32;
            t[s + 1] = (x >> 32) as u32;
            let m = t[0].wrapping_mul(self.n0_inv);
            let mut carry = (u64::from(t[0]) + u64::from(m) * u64::from(self.n[0])) >> 32;
            for j in 1..s {
                let x = u64::from(t[j]) + u64::from(m) * u64::from(self.n[j]) + carry;
                t[j - 1] = x as u32;
                carry = x >> 32;
            }
            let x = u64::from(t[s]) + carry;
            t[s - 1] = x as u32;
            t[s] = t[s + 1] + (x >> 32) as u32;
        }
        // t < 2n: subtract n once if t ≥ n.
        let mut diff = vec![0u32; s];
        let mut borrow = 0i64;
        for j in 0..s {
            let x = i64::from(t[j]) - i64::from(self.n[j]) + borrow;
            diff[j] = x as u32;
            borrow = x >> 32;
        }
        if i64::from(t[s]) + borrow >= 0 {
            diff
        } else {
            t.truncate(s);
            t
        }
    }

    /// s^65537 mod n, big-endian, as long as n's byte length `k`.
    pub fn pow65537(&self, signature: &[u8], k: usize) -> Vec<u8> {
        let s = limbs(&BigUint::from_bytes_be(signature), self.n.len());
        let x = self.mul(&s, &self.r2);
        let mut acc = x;
        for _ in 0..16 {
            acc = self.mul(&acc, &acc);
        }
        let plain = self.mul(&acc, &s);
        let bytes = BigUint::from_slice(&plain).to_bytes_be();
        let mut out = vec![0; k - bytes.len()];
        out.extend(bytes);
        out
    }
}

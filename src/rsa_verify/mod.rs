//! Verification-only RSA: RSASSA-PKCS1-v1_5 and RSASSA-PSS (RFC 8017) for RS256/384/512 and
//! PS256/384/512 (RFC 7518), with SHA-2 from `sha2`.
//!
//! Why our own arithmetic (RSA-2048, e = 65537, µs per verification in wasm32 under V8 /
//! native x86-64, `benches/rsa`): jwt-compact 0.8 → `rsa` 0.9 605 / 307, `rsa` 0.10 342 / 62,
//! `crypto-bigint` 0.6 Montgomery form with precomputed parameters 115 / 35, `num-bigint` 0.4
//! 594 / 169, a plain 32-bit CIOS 125 / 94, and this module 46 / 50. It wins in wasm, where
//! the filter runs, because its 28-bit limbs let column sums go without carry handling, so
//! wasm simd128 (`i64x2.extmul`) sums four product columns at a time (108 µs without
//! simd128), and because everything per key (−n⁻¹ mod 2²⁸, R² mod n, reversed n) is computed
//! when the key set is loaded. Where the engine fuses `f64x2.relaxed_madd` (V8 on x86-64 with
//! FMA3), a 52-bit-limb floating-point kernel (`fma`) takes over after a per-key self-test:
//! 32 µs in V8. Inside Envoy 1.40 (V8, one worker) a unique-token RS256 request went from
//! 699–758 to 128 µs of Envoy CPU, as much as Envoy's native `jwt_authn` (126 µs) and 49 µs
//! of it Envoy proxying without any filter (`loadtest/benches/envoy_cpu.rs`). Dedicated squaring pays
//! for the portable kernel (−6% native, −13% wasm) but not for the simd128 one (+2%), so each
//! kernel chooses (`Kernel::DEDICATED_SQUARE`).
//!
//! Everything here works on public data — the IdP's key, the token's signature and digest —
//! so nothing is constant-time, and nothing needs to be. Keys are checked and precomputed once
//! ([`PublicKey::from_be_bytes`], when a key set is loaded); a verification computes sᵉ mod n
//! and compares it byte for byte with the encoding it expects, never parsing the padding it
//! finds. Attacker input (signatures of any length and value) only ever makes a verification
//! return `false`.

mod emsa;
mod fma;
mod jws;
mod kernel;
mod monty;

use std::fmt;

pub use jws::{NoSigningKey, RsaSignatureBytes, RsaVerify};

use kernel::{Best, Kernel};
use monty::{Modulus, limbs_for};

/// Whether keys try the floating-point kernel: in the fast wasm build only (it needs
/// `f64x2.relaxed_madd`; the portable build has no SIMD at all).
const FMA_KERNEL: bool = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));

/// Smallest accepted modulus (RFC 7518 §3.3, §3.5).
pub const MIN_MODULUS_BITS: usize = 2048;
/// Largest accepted modulus.
pub const MAX_MODULUS_BITS: usize = 4096;
const _: () = assert!(limbs_for(MAX_MODULUS_BITS) <= monty::MAX_LIMBS);

/// The hash of a signature scheme; MGF1 uses the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Digest length in bytes (also the PSS salt length for JWS, RFC 7518 §3.5).
    pub const fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// The digest of `data` (32, 48 or 64 bytes).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        emsa::hash(self, &[data]).as_slice().to_vec()
    }
}

/// Why a public key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The modulus is outside 2048–4096 bits.
    ModulusSize {
        /// The modulus size.
        bits: usize,
    },
    /// The modulus is even (RFC 8017 §3.1: a product of odd primes).
    EvenModulus,
    /// The exponent does not fit 64 bits (after leading zeros).
    ExponentTooLarge {
        /// The exponent's length without leading zeros.
        bytes: usize,
    },
    /// RFC 8017 §3.1: 3 ≤ e ≤ n − 1.
    ExponentOutOfRange,
    /// RFC 8017 §3.1: gcd(e, λ(n)) = 1 and λ(n) is even, so e is odd.
    EvenExponent,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::ModulusSize { bits } => write!(
                f,
                "RSA modulus of {bits} bits is outside {MIN_MODULUS_BITS}–{MAX_MODULUS_BITS} bits"
            ),
            KeyError::EvenModulus => f.write_str("RSA modulus is even"),
            KeyError::ExponentTooLarge { bytes } => {
                write!(f, "RSA public exponent of {bytes} bytes exceeds 64 bits")
            }
            KeyError::ExponentOutOfRange => {
                f.write_str("RSA public exponent is not between 3 and n - 1")
            }
            KeyError::EvenExponent => f.write_str("RSA public exponent is even"),
        }
    }
}

impl std::error::Error for KeyError {}

/// An RSA public key with its Montgomery constants (limbs of n, −n⁻¹ mod 2²⁸, R² mod n).
#[derive(Clone)]
pub struct PublicKey {
    modulus: Modulus,
    /// In wasm, the same for the floating-point kernel, when it passed its self-test with this
    /// key (see `fma`).
    fma: Option<Box<fma::Modulus52>>,
    /// n, big-endian, without leading zeros: k = its length.
    n: Box<[u8]>,
    bits: usize,
    e: u64,
}

/// Keys are their n and e; the rest is derived.
impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.n == other.n && self.e == other.e
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("bits", &self.bits)
            .field("e", &self.e)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// A key from big-endian n and e (a JWK's `n` and `e`; leading zero bytes are ignored).
    /// Refuses moduli outside 2048–4096 bits, even moduli, and exponents that are even,
    /// below 3, not below n, or wider than 64 bits.
    pub fn from_be_bytes(n: &[u8], e: &[u8]) -> Result<PublicKey, KeyError> {
        let n = strip_leading_zeros(n);
        let bits = match n.first() {
            Some(first) => n.len() * 8 - first.leading_zeros() as usize,
            None => 0,
        };
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return Err(KeyError::ModulusSize { bits });
        }
        if n.last().is_none_or(|last| last & 1 == 0) {
            return Err(KeyError::EvenModulus);
        }
        let e = strip_leading_zeros(e);
        if e.len() > 8 {
            return Err(KeyError::ExponentTooLarge { bytes: e.len() });
        }
        let e = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        // e ≤ n − 1 holds for every 64-bit e: n has at least 2048 bits (asserted below).
        const _: () = assert!(MIN_MODULUS_BITS > u64::BITS as usize);
        if e < 3 {
            return Err(KeyError::ExponentOutOfRange);
        }
        if e % 2 == 0 {
            return Err(KeyError::EvenExponent);
        }
        let modulus = Modulus::new::<Best>(n).ok_or(KeyError::ModulusSize { bits })?;
        let mut key = PublicKey {
            modulus,
            fma: None,
            n: n.into(),
            bits,
            e,
        };
        if FMA_KERNEL {
            key.fma = key.checked_fma_kernel().map(Box::new);
        }
        Ok(key)
    }

    /// The floating-point kernel for this key, if it computes what the integer kernel does:
    /// one public operation on a value derived from n, compared byte for byte. It fails when
    /// the engine does not fuse `relaxed_madd` (see `fma`).
    fn checked_fma_kernel(&self) -> Option<fma::Modulus52> {
        let fma = fma::Modulus52::new(&self.n)?;
        // Below n: a smaller first byte (n has no leading zero byte), the rest scrambled.
        let probe: Vec<u8> = self
            .n
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 0 { b >> 1 } else { b ^ 0x5a })
            .collect();
        let (mut integer, mut float) = ([0u8; emsa::MAX_EM], [0u8; emsa::MAX_EM]);
        let k = self.n.len();
        let expected =
            self.public_op_integer::<Best>(&probe, Best::DEDICATED_SQUARE, &mut integer)?;
        let got = self.public_op_fma(&fma, &probe, &mut float)?;
        (got.len() == k && got == expected).then_some(fma)
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// k: modulus length in bytes, the length every signature must have.
    pub fn size(&self) -> usize {
        self.n.len()
    }

    /// n, big-endian, without leading zeros.
    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    /// The public exponent e.
    pub fn exponent(&self) -> u64 {
        self.e
    }

    /// RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) of `signature` over a message whose
    /// `hash` digest is `digest`.
    pub fn verify_pkcs1v15(&self, hash: HashAlg, digest: &[u8], signature: &[u8]) -> bool {
        let mut m = [0u8; emsa::MAX_EM];
        match self.public_op(signature, &mut m) {
            Some(m) => emsa::pkcs1v15_matches(m, hash, digest),
            None => false,
        }
    }

    /// RSASSA-PSS verification (RFC 8017 §8.1.2) with MGF1 of the same hash and a salt as
    /// long as the digest (RFC 7518 §3.5: PS256/384/512).
    pub fn verify_pss(&self, hash: HashAlg, digest: &[u8], signature: &[u8]) -> bool {
        self.verify_pss_with_salt_len(hash, digest, signature, hash.output_len())
    }

    /// RSASSA-PSS verification with an explicit salt length.
    pub fn verify_pss_with_salt_len(
        &self,
        hash: HashAlg,
        digest: &[u8],
        signature: &[u8],
        salt_len: usize,
    ) -> bool {
        let mut m = [0u8; emsa::MAX_EM];
        match self.public_op(signature, &mut m) {
            Some(m) => emsa::pss_matches(m, self.bits, hash, digest, salt_len),
            None => false,
        }
    }

    /// RSAVP1 (RFC 8017 §5.2.2) on a signature of exactly k bytes: sᵉ mod n as k bytes in
    /// `out`; `None` if the length is wrong or s ≥ n. The floating-point kernel when this key
    /// has it, else the best integer kernel.
    fn public_op<'a>(&self, signature: &[u8], out: &'a mut [u8]) -> Option<&'a [u8]> {
        match &self.fma {
            Some(fma) => self.public_op_fma(fma, signature, out),
            None => self.public_op_integer::<Best>(signature, Best::DEDICATED_SQUARE, out),
        }
    }

    /// A signature of the right length, as a number below n.
    fn representative_ok(&self, signature: &[u8]) -> bool {
        // Same length, big-endian: byte order is numeric order.
        signature.len() == self.n.len() && signature < &*self.n
    }

    fn public_op_integer<'a, K: Kernel>(
        &self,
        signature: &[u8],
        dedicated_square: bool,
        out: &'a mut [u8],
    ) -> Option<&'a [u8]> {
        if !self.representative_ok(signature) {
            return None;
        }
        let s = monty::from_be_bytes(signature, self.modulus.len())?;
        let m = self.modulus.pow::<K>(&s, self.e, dedicated_square);
        let out = out.get_mut(..self.n.len())?;
        monty::to_be_bytes(&m, out).then_some(&*out)
    }

    fn public_op_fma<'a>(
        &self,
        fma: &fma::Modulus52,
        signature: &[u8],
        out: &'a mut [u8],
    ) -> Option<&'a [u8]> {
        if !self.representative_ok(signature) {
            return None;
        }
        let out = out.get_mut(..self.n.len())?;
        fma.pow_be(signature, self.e, out).then_some(&*out)
    }
}

/// For the benchmarks and tests: the raw public operation (sᵉ mod n as k bytes) with each
/// kernel and squaring method available on this target. Not part of the API.
#[doc(hidden)]
pub mod bench_support {
    use super::kernel::{Kernel, Portable};
    use super::{PublicKey, emsa};

    /// A way to compute sᵉ mod n: a kernel and a squaring method.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Variant {
        pub name: &'static str,
        /// The one verification uses on this target (for the floating-point kernel: once it
        /// passed its self-test with the key).
        pub chosen: bool,
        kernel: KernelChoice,
        dedicated_square: bool,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum KernelChoice {
        Portable,
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Simd128,
        Fma,
    }

    const FMA: bool = super::FMA_KERNEL;

    /// Every variant this target can run. Natively the floating-point kernel runs with
    /// software `fma` (slow; for its tests), in wasm with `relaxed_madd`.
    pub fn variants() -> Vec<Variant> {
        let mut all = Vec::new();
        all.extend([
            Variant {
                name: "portable kernel, dedicated squaring",
                chosen: !FMA && Portable::DEDICATED_SQUARE,
                kernel: KernelChoice::Portable,
                dedicated_square: true,
            },
            Variant {
                name: "portable kernel, squaring as a product",
                chosen: !FMA && !Portable::DEDICATED_SQUARE,
                kernel: KernelChoice::Portable,
                dedicated_square: false,
            },
        ]);
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        all.extend([
            Variant {
                name: "simd128 kernel, dedicated squaring",
                chosen: false,
                kernel: KernelChoice::Simd128,
                dedicated_square: true,
            },
            Variant {
                name: "simd128 kernel, squaring as a product",
                chosen: false,
                kernel: KernelChoice::Simd128,
                dedicated_square: false,
            },
        ]);
        all.push(Variant {
            name: "f64 FMA kernel, 52-bit limbs",
            chosen: FMA,
            kernel: KernelChoice::Fma,
            dedicated_square: false,
        });
        all
    }

    pub fn public_op(key: &PublicKey, signature: &[u8], variant: Variant) -> Option<Vec<u8>> {
        let mut out = [0u8; emsa::MAX_EM];
        let square = variant.dedicated_square;
        match variant.kernel {
            KernelChoice::Portable => {
                key.public_op_integer::<Portable>(signature, square, &mut out)
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            KernelChoice::Simd128 => {
                key.public_op_integer::<super::kernel::Simd128>(signature, square, &mut out)
            }
            KernelChoice::Fma => match &key.fma {
                Some(fma) => key.public_op_fma(fma, signature, &mut out),
                None => {
                    let fma = super::fma::Modulus52::new(&key.n)?;
                    key.public_op_fma(&fma, signature, &mut out)
                }
            },
        }
        .map(<[u8]>::to_vec)
    }

    /// Whether verification with this key uses the floating-point kernel.
    pub fn uses_fma(key: &PublicKey) -> bool {
        key.fma.is_some()
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    bytes.get(zeros..).unwrap_or(&[])
}

#[cfg(test)]
mod tests;

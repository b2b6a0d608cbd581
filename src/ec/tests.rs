//! The curve code against num-bigint (field arithmetic) and the reference crates (`p256`,
//! `p384`, `ed25519-compact`: random keys and messages, valid and mutated signatures), on both
//! backends; and the JWS-level edge cases: high S, r or s zero or ≥ n, wrong lengths, keys
//! off the curve or out of range.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use num_bigint::BigUint;

use super::field::{Fe, Modulus};
use super::{Ed25519Key, KeyError, P256Key, P384Key, ed25519, p256, p384};

/// The key on each backend this build has: the integer one, and the floating-point one
/// except in the portable build.
macro_rules! both_backends {
    ($key:expr) => {{
        #[allow(unused_mut)]
        let mut keys = vec![$key.with_int_backend().unwrap()];
        #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
        keys.push($key.with_fma_backend().unwrap());
        keys
    }};
}

/// A small deterministic generator (tests need variety, not secrecy).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = self.next() as u8;
        }
        out
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn be_fixed(x: &BigUint, len: usize) -> Vec<u8> {
    let bytes = x.to_bytes_be();
    [vec![0; len - bytes.len()], bytes].concat()
}

/// Field operations against num-bigint for random values below p.
fn field_matches_bigint<M: Modulus<L>, const L: usize>(rng: &mut Rng) {
    let p_be = M::PRIME.p_be;
    let len = p_be.len();
    let p = BigUint::from_bytes_be(p_be);
    let value = |rng: &mut Rng| -> BigUint {
        let mut bytes = vec![0u8; len];
        for b in bytes.iter_mut() {
            *b = rng.next() as u8;
        }
        // Edge values now and then.
        match rng.below(8) {
            0 => BigUint::from(0u32),
            1 => &p - 1u32,
            2 => BigUint::from(1u32),
            _ => BigUint::from_bytes_be(&bytes) % &p,
        }
    };
    let fe = |x: &BigUint| Fe::<M, L>::from_be(&be_fixed(x, len)).unwrap();
    let back = |x: &Fe<M, L>| {
        let mut out = vec![0u8; len];
        x.write_be(&mut out);
        BigUint::from_bytes_be(&out)
    };
    assert!(Fe::<M, L>::from_be(p_be).is_none(), "p itself is refused");
    for _ in 0..200 {
        let (a, b) = (value(rng), value(rng));
        let (fa, fb) = (fe(&a), fe(&b));
        assert_eq!(back(&fa.mul(&fb)), (&a * &b) % &p);
        assert_eq!(back(&fa.square()), (&a * &a) % &p);
        assert_eq!(back(&fa.add(&fb)), (&a + &b) % &p);
        assert_eq!(back(&fa.sub(&fb)), (&a + &p - &b) % &p);
        assert_eq!(fa.is_zero(), a == BigUint::from(0u32));
        // Chains keep the representation below 2p.
        let chained = fa.mul(&fb).add(&fa).sub(&fb).double().mul(&fa.neg());
        let expected = ((((&a * &b) + &a + &p - &b) * 2u32) % &p * ((&p - &a) % &p)) % &p;
        assert_eq!(back(&chained), expected);
    }
    let a = fe(&BigUint::from(0xdead_beefu32));
    assert_eq!(back(&a.invert().mul(&a)), BigUint::from(1u32));
    for _ in 0..20 {
        let x = value(rng);
        let fx = fe(&x);
        match fx.invert_vartime::<6>() {
            Some(inv) => assert_eq!(back(&inv.mul(&fx)), BigUint::from(1u32)),
            None => assert_eq!(x, BigUint::from(0u32)),
        }
    }
}

#[test]
fn fields_match_bigint() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    field_matches_bigint::<p256::FieldInt, 9>(&mut rng);
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
    field_matches_bigint::<p256::FieldFma, 5>(&mut rng);
    field_matches_bigint::<p256::Scalar, 9>(&mut rng);
    field_matches_bigint::<p384::FieldInt, 14>(&mut rng);
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
    field_matches_bigint::<p384::FieldFma, 8>(&mut rng);
    field_matches_bigint::<p384::Scalar, 14>(&mut rng);
    field_matches_bigint::<ed25519::FieldInt, 9>(&mut rng);
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
    field_matches_bigint::<ed25519::FieldFma, 5>(&mut rng);
    field_matches_bigint::<ed25519::Scalar, 9>(&mut rng);
}

/// A signature with one bit flipped, or a message with one byte changed.
fn mutate(rng: &mut Rng, message: &mut [u8], signature: &mut [u8]) {
    if rng.below(2) == 0 && !message.is_empty() {
        let i = rng.below(message.len());
        message[i] ^= 1 << rng.below(8);
    } else {
        let i = rng.below(signature.len());
        signature[i] ^= 1 << rng.below(8);
    }
}

fn p256_keys(rng: &mut Rng) -> (::p256::ecdsa::SigningKey, P256Key) {
    let sk = loop {
        if let Ok(sk) = ::p256::ecdsa::SigningKey::from_slice(&rng.bytes::<32>()) {
            break sk;
        }
    };
    let point = sk.verifying_key().to_encoded_point(false);
    let key = P256Key::from_coordinates(point.x().unwrap(), point.y().unwrap()).unwrap();
    (sk, key)
}

fn p384_keys(rng: &mut Rng) -> (::p384::ecdsa::SigningKey, P384Key) {
    let sk = loop {
        if let Ok(sk) = ::p384::ecdsa::SigningKey::from_slice(&rng.bytes::<48>()) {
            break sk;
        }
    };
    let point = sk.verifying_key().to_encoded_point(false);
    let key = P384Key::from_coordinates(point.x().unwrap(), point.y().unwrap()).unwrap();
    (sk, key)
}

#[test]
fn p256_agrees_with_the_p256_crate() {
    use ::p256::ecdsa::signature::{Signer, Verifier};
    let mut rng = Rng(0x1234_5678);
    for round in 0..12 {
        let (sk, key) = p256_keys(&mut rng);
        let keys = both_backends!(key);
        assert_eq!(keys[0].backend(), "int");
        for _ in 0..3 {
            let mut message = rng.bytes::<40>()[..rng.below(40)].to_vec();
            let signature: ::p256::ecdsa::Signature = sk.sign(&message);
            let mut bytes = signature.to_bytes().to_vec();
            for k in &keys {
                assert!(k.verify(&message, &bytes), "round {round}");
            }
            mutate(&mut rng, &mut message, &mut bytes);
            let reference = ::p256::ecdsa::Signature::from_slice(&bytes)
                .is_ok_and(|sig| sk.verifying_key().verify(&message, &sig).is_ok());
            for k in &keys {
                assert_eq!(k.verify(&message, &bytes), reference, "round {round}");
            }
        }
    }
}

#[test]
fn p384_agrees_with_the_p384_crate() {
    use ::p384::ecdsa::signature::{Signer, Verifier};
    let mut rng = Rng(0x8765_4321);
    for round in 0..6 {
        let (sk, key) = p384_keys(&mut rng);
        let keys = both_backends!(key);
        for _ in 0..3 {
            let mut message = rng.bytes::<40>()[..rng.below(40)].to_vec();
            let signature: ::p384::ecdsa::Signature = sk.sign(&message);
            let mut bytes = signature.to_bytes().to_vec();
            for k in &keys {
                assert!(k.verify(&message, &bytes), "round {round}");
            }
            mutate(&mut rng, &mut message, &mut bytes);
            let reference = ::p384::ecdsa::Signature::from_slice(&bytes)
                .is_ok_and(|sig| sk.verifying_key().verify(&message, &sig).is_ok());
            for k in &keys {
                assert_eq!(k.verify(&message, &bytes), reference, "round {round}");
            }
        }
    }
}

#[test]
fn ed25519_agrees_with_ed25519_compact() {
    let mut rng = Rng(0x5555_aaaa_1234);
    for round in 0..12 {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(rng.bytes()));
        let key = Ed25519Key::from_bytes(&pair.pk[..]).unwrap();
        let keys = both_backends!(key);
        for _ in 0..3 {
            let mut message = rng.bytes::<40>()[..rng.below(40)].to_vec();
            let mut bytes = pair.sk.sign(&message, None).to_vec();
            for k in &keys {
                assert!(k.verify(&message, &bytes), "round {round}");
            }
            mutate(&mut rng, &mut message, &mut bytes);
            let reference = ed25519_compact::Signature::from_slice(&bytes)
                .is_ok_and(|sig| pair.pk.verify(&message, &sig).is_ok());
            for k in &keys {
                assert_eq!(k.verify(&message, &bytes), reference, "round {round}");
            }
        }
    }
}

/// n − s for a big-endian s (the other valid s of an ECDSA signature).
fn negate_mod(s: &[u8], n_be: &[u8]) -> Vec<u8> {
    let n = BigUint::from_bytes_be(n_be);
    be_fixed(&(&n - BigUint::from_bytes_be(s)), n_be.len())
}

#[test]
fn ecdsa_edge_cases() {
    use ::p256::ecdsa::signature::Signer;
    let mut rng = Rng(42);
    let (sk, key) = p256_keys(&mut rng);
    let message = b"header.payload".to_vec();
    let signature: ::p256::ecdsa::Signature = sk.sign(&message);
    let sig = signature.to_bytes().to_vec();
    let (r, s) = sig.split_at(32);
    let n = p256::N_BE.to_vec();
    let zero = [0u8; 32];
    let high_s = [r, &negate_mod(s, &n)].concat();
    let n_plus_r = be_fixed(
        &(BigUint::from_bytes_be(&n) + BigUint::from_bytes_be(r)),
        33,
    );
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("as signed", sig.clone(), true),
        // FIPS 186-5 and BoringSSL's ECDSA_do_verify (Envoy's jwt_authn) accept either s.
        ("high S (n − s)", high_s, true),
        ("r = 0", [&zero[..], s].concat(), false),
        ("s = 0", [r, &zero[..]].concat(), false),
        ("r = n", [&n[..], s].concat(), false),
        ("s = n", [r, &n[..]].concat(), false),
        ("r = 2²⁵⁶ − 1", [&[0xff; 32][..], s].concat(), false),
        ("r + n, truncated", [&n_plus_r[1..], s].concat(), false),
        ("63 bytes", sig[..63].to_vec(), false),
        ("65 bytes", [&sig[..], &[0]].concat(), false),
        ("empty", Vec::new(), false),
        ("DER-sized 72 bytes", [&sig[..], &[0; 8]].concat(), false),
    ];
    for k in both_backends!(key) {
        for (name, bytes, expected) in &cases {
            assert_eq!(k.verify(&message, bytes), *expected, "{name}");
        }
    }
    // The same through the filter's path.
    let vk = crate::signature::VerifyingKey::P256(key);
    use crate::algorithm::Algorithm;
    for (name, bytes, expected) in &cases {
        assert_eq!(
            vk.verify(Algorithm::Es256, &message, bytes),
            *expected,
            "{name}"
        );
        assert!(
            !vk.verify(Algorithm::Es384, &message, bytes),
            "{name} as ES384"
        );
    }
}

#[test]
fn es384_high_s_and_lengths() {
    use ::p384::ecdsa::signature::Signer;
    let mut rng = Rng(7);
    let (sk, key) = p384_keys(&mut rng);
    let message = b"header.payload".to_vec();
    let signature: ::p384::ecdsa::Signature = sk.sign(&message);
    let sig = signature.to_bytes().to_vec();
    let (r, s) = sig.split_at(48);
    assert!(key.verify(&message, &sig));
    assert!(key.verify(&message, &[r, &negate_mod(s, &p384::N_BE)].concat()));
    assert!(!key.verify(&message, &[r, &p384::N_BE[..]].concat()));
    assert!(!key.verify(&message, &[&[0u8; 48][..], s].concat()));
    assert!(!key.verify(&message, &sig[..64]));
    assert!(!key.verify(&message, &[&sig[..], &[0]].concat()));
}

#[test]
fn keys_off_the_curve_are_refused() {
    let mut rng = Rng(99);
    let (_, key) = p256_keys(&mut rng);
    let point = key.to_uncompressed_coordinates().to_vec();
    let (x, y) = point.split_at(32);
    let mut y_plus_one = y.to_vec();
    y_plus_one[31] ^= 1;
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, KeyError)> = vec![
        ("y changed", x.to_vec(), y_plus_one, KeyError::NotOnCurve),
        ("(0, 0)", vec![0; 32], vec![0; 32], KeyError::NotOnCurve),
        (
            "x = p",
            p256::P_BE.to_vec(),
            y.to_vec(),
            KeyError::CoordinateOutOfRange,
        ),
        (
            "y = 2²⁵⁶ − 1",
            x.to_vec(),
            vec![0xff; 32],
            KeyError::CoordinateOutOfRange,
        ),
        (
            "x of 31 bytes",
            x[1..].to_vec(),
            y.to_vec(),
            KeyError::CoordinateLength {
                expected: 32,
                got: 31,
            },
        ),
        (
            "y of 33 bytes",
            x.to_vec(),
            [&[0][..], y].concat(),
            KeyError::CoordinateLength {
                expected: 32,
                got: 33,
            },
        ),
    ];
    for (name, x, y, expected) in cases {
        assert_eq!(
            P256Key::from_coordinates(&x, &y).unwrap_err(),
            expected,
            "{name}"
        );
    }
    // y + p (the same residue, not canonical).
    let y_big = BigUint::from_bytes_be(y) + BigUint::from_bytes_be(&p256::P_BE);
    if y_big.bits() <= 256 {
        assert!(P256Key::from_coordinates(x, &be_fixed(&y_big, 32)).is_err());
    }
    let (_, key384) = p384_keys(&mut rng);
    let point = key384.to_uncompressed_coordinates();
    let (x, y) = point.split_at(48);
    assert!(P384Key::from_coordinates(x, y).is_ok());
    assert_eq!(
        P384Key::from_coordinates(y, x).unwrap_err(),
        KeyError::NotOnCurve
    );
    assert_eq!(
        P384Key::from_coordinates(&p384::P_BE, y).unwrap_err(),
        KeyError::CoordinateOutOfRange
    );
    // A P-256 key is not a P-384 key.
    assert!(P384Key::from_coordinates(&point[..32], &point[32..64]).is_err());
}

#[test]
fn ed25519_keys_and_signatures_edge_cases() {
    // The identity (y = 1) and the point of order 2 (y = −1) are of small order; y = p is not
    // canonical.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    let mut p_le = ed25519_p_le();
    assert_eq!(
        Ed25519Key::from_bytes(&identity).unwrap_err(),
        KeyError::SmallOrder
    );
    assert_eq!(
        Ed25519Key::from_bytes(&minus_one).unwrap_err(),
        KeyError::SmallOrder
    );
    assert!(Ed25519Key::from_bytes(&p_le).is_err());
    p_le[0] += 1;
    assert!(
        Ed25519Key::from_bytes(&p_le).is_err(),
        "p + 1 is not canonical either"
    );
    assert!(Ed25519Key::from_bytes(&[0u8; 31]).is_err());

    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7; 32]));
    let key = Ed25519Key::from_bytes(&pair.pk[..]).unwrap();
    let message = b"header.payload";
    let sig = pair.sk.sign(message, None).to_vec();
    assert!(key.verify(message, &sig));
    // S + L: the same residue, not canonical.
    let s = BigUint::from_bytes_le(&sig[32..]) + BigUint::from_bytes_be(&ed25519::L_BE);
    let mut s_le = s.to_bytes_le();
    s_le.resize(32, 0);
    assert!(!key.verify(message, &[&sig[..32], &s_le[..]].concat()));
    assert!(!key.verify(message, &sig[..63]));
    assert!(!key.verify(message, &[&sig[..], &[0]].concat()));
    // R with y + p (not canonical) never matches the computed encoding.
    let y = BigUint::from_bytes_le(&sig[..32]) & ((BigUint::from(1u32) << 255u32) - 1u32);
    let y_p = &y + BigUint::from_bytes_le(&ed25519_p_le());
    if y_p.bits() <= 255 {
        let mut r = y_p.to_bytes_le();
        r.resize(32, 0);
        r[31] |= sig[31] & 0x80;
        assert!(!key.verify(message, &[&r[..], &sig[32..]].concat()));
    }
}

fn ed25519_p_le() -> [u8; 32] {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
}

#[test]
#[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
fn fma_self_test_passes_where_fma_is_fused() {
    // Natively `mul_add` is always fused, so the floating-point backend must agree.
    let mut rng = Rng(3);
    let (_, key) = p256_keys(&mut rng);
    let point = key.to_uncompressed_coordinates();
    let int = super::weierstrass::point_from_be::<p256::FieldInt, 9>(
        &p256::CURVE,
        &point[..32],
        &point[32..],
    )
    .unwrap();
    assert!(P256Key::fast_tables_checked(&point[..32], &point[32..], &int).is_some());
}

//! Signature verification cost: RS256 through each RSA implementation considered, and
//! RS256/PS256/ES256/EdDSA (plus RS256 on 3072/4096-bit keys) through the filter's own path,
//! `VerifyingKey::verify`. Inputs are Wycheproof's first valid case per file (compiled in), so
//! the bench runs the same natively and under WASI:
//!
//!     cargo bench -p tokengate --bench rsa [-- FILTER]
//!     cargo bench -p tokengate --bench rsa --target wasm32-wasip1 [-- FILTER]
//!
//! Each line: microseconds per verification, median and minimum of several timed runs after a
//! warm-up. "s^e mod n" rows time the public operation alone (no hashing, no padding check);
//! the others a whole verification. A wrong signature costs the same as a right one (the
//! "forged" row): the public operation always runs in full. `*` marks the variant
//! `src/rsa_verify` uses on the target; its "portable kernel" rows in a simd128 build are what
//! LLVM auto-vectorises. For wasm without simd128, override the flag from .cargo/config.toml:
//!
//!     CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=-simd128" \
//!         cargo bench -p tokengate --bench rsa --target wasm32-wasip1
//!
//! `rsa` 0.10 is not compared here: it would add crypto-bigint 0.7, digest 0.11 and more to the
//! lock file; it was measured in a scratch project (342 µs wasm, 62 µs native).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cios;

#[path = "../support/timing.rs"]
mod timing;

use std::hint::black_box;
use timing::{Bench, Evictor, RUNS};

use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Odd, U2048};
use jwt_compact::alg::{Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm as _, AlgorithmSignature};
use num_bigint::BigUint;
use serde::Deserialize;
use serde_json::Value;
use tokengate::algorithm::Algorithm;
use tokengate::rsa_verify::{PublicKey, bench_support};
use tokengate::signature::VerifyingKey;

struct Vector {
    jwk: Value,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The first `valid` case of a Wycheproof file, with its group's JWK.
fn first_valid(text: &str) -> Vector {
    let file: Value = serde_json::from_str(text).unwrap();
    for group in file["testGroups"].as_array().unwrap() {
        let jwk = group.get("keyJwk").or(group.get("publicKeyJwk"));
        for case in group["tests"].as_array().unwrap() {
            if let (Some(jwk), "valid") = (jwk, case["result"].as_str().unwrap()) {
                return Vector {
                    jwk: jwk.clone(),
                    msg: hex(case["msg"].as_str().unwrap()),
                    sig: hex(case["sig"].as_str().unwrap()),
                };
            }
        }
    }
    panic!("no valid case");
}

fn verifying_key(vector: &Vector, alg: Algorithm) -> VerifyingKey {
    let jwk = JsonWebKey::deserialize(&vector.jwk).unwrap();
    VerifyingKey::from_jwk(&jwk, alg.family()).unwrap()
}

fn rsa_parts(vector: &Vector) -> (Vec<u8>, Vec<u8>) {
    match JsonWebKey::deserialize(&vector.jwk).unwrap() {
        JsonWebKey::Rsa {
            modulus,
            public_exponent,
            ..
        } => (modulus.into_owned(), public_exponent.into_owned()),
        _ => panic!("not an RSA key"),
    }
}

fn main() {
    let mut bench = Bench::from_args();
    let target = timing::target_name();
    println!("signature verification, {target}, median of {RUNS} runs");

    let rs256 = first_valid(include_str!(
        "../../testdata/wycheproof/rsa_signature_2048_sha256_test.json"
    ));
    let (n, e) = rsa_parts(&rs256);
    let k = n.len();
    let digest = tokengate::rsa_verify::HashAlg::Sha256.digest(&rs256.msg);
    let expected_m = BigUint::from_bytes_be(&rs256.sig)
        .modpow(&BigUint::from_bytes_be(&e), &BigUint::from_bytes_be(&n))
        .to_bytes_be();
    let expected_m = [vec![0; k - expected_m.len()], expected_m].concat();

    println!("-- RS256, 2048-bit key, e = 65537: implementations");
    // (a) jwt-compact 0.8 -> rsa 0.9: what the filter used before.
    {
        let jwk = JsonWebKey::deserialize(&rs256.jwk).unwrap();
        let key = RsaPublicKey::try_from(&jwk).unwrap();
        let sig = <Rsa as jwt_compact::Algorithm>::Signature::try_from_slice(&rs256.sig).unwrap();
        let alg = Rsa::rs256();
        bench.run("(a) jwt-compact 0.8 -> rsa 0.9, whole verify", || {
            alg.verify_signature(&sig, &key, black_box(&rs256.msg))
        });
    }
    // (c) crypto-bigint 0.6 Montgomery form, parameters precomputed.
    {
        let params = MontyParams::new_vartime(Odd::new(U2048::from_be_slice(&n)).unwrap());
        let s = U2048::from_be_slice(&rs256.sig);
        bench.run("(c) crypto-bigint 0.6 MontyForm, s^e mod n", || {
            let x = MontyForm::new(&black_box(s), params);
            let mut acc = x;
            for _ in 0..16 {
                acc = acc.square();
            }
            (acc * x).retrieve().to_be_bytes()[..] == expected_m[..]
        });
    }
    // (d) num-bigint 0.4 modpow.
    {
        let (n, e) = (BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e));
        let s = BigUint::from_bytes_be(&rs256.sig);
        let expected = BigUint::from_bytes_be(&expected_m);
        bench.run("(d) num-bigint 0.4 modpow, s^e mod n", || {
            black_box(&s).modpow(&e, &n) == expected
        });
    }
    // (e1) plain CIOS, 32-bit limbs.
    {
        let cios = cios::Cios::new(&n);
        bench.run("(e1) plain CIOS, 32-bit limbs, s^e mod n", || {
            cios.pow65537(black_box(&rs256.sig), k) == expected_m
        });
    }
    // (e) src/rsa_verify: 28-bit limbs, product scanning, four columns at a time; each kernel
    // and squaring method available on this target, the chosen one marked.
    let key = PublicKey::from_be_bytes(&n, &e).unwrap();
    for variant in bench_support::variants() {
        let mark = if variant.chosen { "*" } else { " " };
        bench.run(
            &format!("(e){mark}rsa_verify, {}, s^e mod n", variant.name),
            || {
                bench_support::public_op(&key, black_box(&rs256.sig), variant).as_ref()
                    == Some(&expected_m)
            },
        );
    }
    bench.run("(e) rsa_verify, whole RS256 verify (digest given)", || {
        key.verify_pkcs1v15(
            tokengate::rsa_verify::HashAlg::Sha256,
            black_box(&digest),
            &rs256.sig,
        )
    });
    bench.run("rsa_verify: key setup (from_be_bytes, R^2 mod n)", || {
        PublicKey::from_be_bytes(black_box(&n), &e).is_ok()
    });

    println!("-- through VerifyingKey::verify (the filter's path: hash + verify)");
    let vk = verifying_key(&rs256, Algorithm::Rs256);
    bench.run("RS256 2048", || {
        vk.verify(Algorithm::Rs256, black_box(&rs256.msg), &rs256.sig)
    });
    // Inside a proxy the filter's code and data are cold at each request (see run_cold).
    let mut evictor = Evictor::new();
    bench.run_cold("RS256 2048, cold caches", &mut evictor, || {
        vk.verify(Algorithm::Rs256, black_box(&rs256.msg), &rs256.sig)
    });
    let mut forged = rs256.sig.clone();
    forged[100] ^= 1;
    bench.run("RS256 2048, forged signature (rejected)", || {
        !vk.verify(Algorithm::Rs256, black_box(&rs256.msg), &forged)
    });
    for (name, text, alg) in [
        (
            "RS256 3072",
            include_str!("../../testdata/wycheproof/rsa_signature_3072_sha256_test.json"),
            Algorithm::Rs256,
        ),
        (
            "RS256 4096",
            include_str!("../../testdata/wycheproof/rsa_signature_4096_sha256_test.json"),
            Algorithm::Rs256,
        ),
        (
            "PS256 2048",
            include_str!("../../testdata/wycheproof/rsa_pss_2048_sha256_mgf1_32_test.json"),
            Algorithm::Ps256,
        ),
        (
            "ES256",
            include_str!("../../testdata/wycheproof/ecdsa_secp256r1_sha256_p1363_test.json"),
            Algorithm::Es256,
        ),
        (
            "EdDSA (Ed25519)",
            include_str!("../../testdata/wycheproof/ed25519_test.json"),
            Algorithm::EdDsa,
        ),
    ] {
        let vector = first_valid(text);
        let key = verifying_key(&vector, alg);
        bench.run(name, || {
            key.verify(alg, black_box(&vector.msg), &vector.sig)
        });
    }

    let medians: Vec<String> = bench
        .rows
        .iter()
        .map(|(name, median, _)| format!("{name}={median:.1}"))
        .collect();
    println!("summary ({target}, median µs): {}", medians.join("; "));
}

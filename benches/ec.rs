//! Elliptic-curve signature verification cost: ES256, ES384 and EdDSA through `src/ec` (each
//! backend available on the target, `*` marking the one keys choose) next to the reference
//! crates (`p256`, `p384`, `ed25519-compact`), plus key loading (tables built). Inputs are
//! Wycheproof's first valid case per file (compiled in), so the bench runs the same natively
//! and under WASI:
//!
//!     cargo bench -p tokengate --bench ec [-- FILTER]
//!     cargo bench -p tokengate --bench ec --target wasm32-wasip1 [-- FILTER]
//!     RUSTFLAGS="-C target-feature=-simd128,-relaxed-simd" \
//!         cargo bench -p tokengate --bench ec --target wasm32-wasip1 --target-dir target/portable
//!
//! Natively the "fma" backend runs on software `fma` (a library call per product): its native
//! figure says nothing about wasm, where it is `f64x2.relaxed_madd`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/timing.rs"]
mod timing;

use std::hint::black_box;
use timing::{Bench, Evictor, RUNS};

use jwt_compact::jwk::JsonWebKey;
use serde::Deserialize;
use serde_json::Value;
use tokengate::algorithm::Algorithm;
use tokengate::ec::{Ed25519Key, P256Key, P384Key};
use tokengate::signature::VerifyingKey;

struct Vector {
    public_key: Vec<u8>,
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

/// The first `valid` case of a Wycheproof file, with its group's key.
fn first_valid(text: &str) -> Vector {
    let file: Value = serde_json::from_str(text).unwrap();
    for group in file["testGroups"].as_array().unwrap() {
        let key = &group["publicKey"];
        let public_key = key
            .get("uncompressed")
            .or(key.get("pk"))
            .and_then(Value::as_str)
            .map(hex);
        for case in group["tests"].as_array().unwrap() {
            if let (Some(public_key), "valid") = (&public_key, case["result"].as_str().unwrap()) {
                return Vector {
                    public_key: public_key.clone(),
                    jwk: group["publicKeyJwk"].clone(),
                    msg: hex(case["msg"].as_str().unwrap()),
                    sig: hex(case["sig"].as_str().unwrap()),
                };
            }
        }
    }
    panic!("no valid case");
}

/// The key on every backend this build has (the portable build has no floating-point one).
macro_rules! variants {
    ($key:expr) => {{
        #[allow(unused_mut)]
        let mut keys = vec![$key.with_int_backend()];
        #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
        keys.push($key.with_fma_backend());
        keys.into_iter().flatten()
    }};
}

fn forged(sig: &[u8]) -> Vec<u8> {
    let mut forged = sig.to_vec();
    forged[10] ^= 1;
    forged
}

fn mark(chosen: bool) -> &'static str {
    if chosen { "*" } else { " " }
}

fn main() {
    let mut bench = Bench::from_args();
    let target = timing::target_name();
    println!("EC signature verification, {target}, median of {RUNS} runs");

    let es256 = first_valid(include_str!(
        "../testdata/wycheproof/ecdsa_secp256r1_sha256_p1363_test.json"
    ));
    let es384 = first_valid(include_str!(
        "../testdata/wycheproof/ecdsa_secp384r1_sha384_p1363_test.json"
    ));
    let eddsa = first_valid(include_str!("../testdata/wycheproof/ed25519_test.json"));

    println!("-- ES256 (P-256, SHA-256)");
    {
        use p256::ecdsa::signature::Verifier;
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&es256.public_key).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&es256.sig).unwrap();
        bench.run("ES256 p256 0.13 (reference)", || {
            key.verify(black_box(&es256.msg), &sig).is_ok()
        });
    }
    let (x, y) = es256.public_key[1..].split_at(32);
    let key = P256Key::from_coordinates(x, y).unwrap();
    let chosen = key.backend();
    for variant in variants!(key) {
        let name = variant.backend();
        bench.run(
            &format!("ES256 src/ec{}{name}", mark(name == chosen)),
            || variant.verify(black_box(&es256.msg), &es256.sig),
        );
    }
    let bad = forged(&es256.sig);
    bench.run("ES256 src/ec, forged signature (rejected)", || {
        !key.verify(black_box(&es256.msg), &bad)
    });
    bench.run("ES256 src/ec key load (tables)", || {
        P256Key::from_coordinates(black_box(x), y).is_ok()
    });

    println!("-- ES384 (P-384, SHA-384)");
    {
        use p384::ecdsa::signature::Verifier;
        let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&es384.public_key).unwrap();
        let sig = p384::ecdsa::Signature::from_slice(&es384.sig).unwrap();
        bench.run("ES384 p384 0.13 (reference)", || {
            key.verify(black_box(&es384.msg), &sig).is_ok()
        });
    }
    let (x, y) = es384.public_key[1..].split_at(48);
    let key = P384Key::from_coordinates(x, y).unwrap();
    let chosen = key.backend();
    for variant in variants!(key) {
        let name = variant.backend();
        bench.run(
            &format!("ES384 src/ec{}{name}", mark(name == chosen)),
            || variant.verify(black_box(&es384.msg), &es384.sig),
        );
    }
    bench.run("ES384 src/ec key load (tables)", || {
        P384Key::from_coordinates(black_box(x), y).is_ok()
    });

    println!("-- EdDSA (Ed25519)");
    {
        let key = ed25519_compact::PublicKey::from_slice(&eddsa.public_key).unwrap();
        let sig = ed25519_compact::Signature::from_slice(&eddsa.sig).unwrap();
        bench.run("EdDSA ed25519-compact 2 (reference)", || {
            key.verify(black_box(&eddsa.msg), &sig).is_ok()
        });
    }
    let key = Ed25519Key::from_bytes(&eddsa.public_key).unwrap();
    let chosen = key.backend();
    for variant in variants!(key) {
        let name = variant.backend();
        bench.run(
            &format!("EdDSA src/ec{}{name}", mark(name == chosen)),
            || variant.verify(black_box(&eddsa.msg), &eddsa.sig),
        );
    }
    let bad = forged(&eddsa.sig);
    bench.run("EdDSA src/ec, forged signature (rejected)", || {
        !key.verify(black_box(&eddsa.msg), &bad)
    });
    bench.run("EdDSA src/ec key load (tables)", || {
        Ed25519Key::from_bytes(black_box(&eddsa.public_key)).is_ok()
    });

    println!("-- through VerifyingKey::verify (the filter's path)");
    let mut evictor = Evictor::new();
    for (name, vector, alg) in [
        ("ES256", &es256, Algorithm::Es256),
        ("ES384", &es384, Algorithm::Es384),
        ("EdDSA", &eddsa, Algorithm::EdDsa),
    ] {
        let jwk = JsonWebKey::deserialize(&vector.jwk).unwrap();
        let key = VerifyingKey::from_jwk(&jwk, alg.family()).unwrap();
        bench.run(&format!("{name} VerifyingKey::verify"), || {
            key.verify(alg, black_box(&vector.msg), &vector.sig)
        });
        // Inside a proxy the filter's code and data are cold at each request (see run_cold).
        bench.run_cold(
            &format!("{name} VerifyingKey::verify, cold caches"),
            &mut evictor,
            || key.verify(alg, black_box(&vector.msg), &vector.sig),
        );
    }

    let medians: Vec<String> = bench
        .rows
        .iter()
        .map(|(name, median, _)| format!("{name}={median:.1}"))
        .collect();
    println!("summary ({target}, median µs): {}", medians.join("; "));
}

//! Unit tests: the arithmetic against `num-bigint`, key checks, and both paddings against
//! signatures made by other implementations (jwt-compact's `rsa` through the testkit, and
//! OpenSSL for keys of unusual sizes).

use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Claims, Empty, UntrustedToken};
use num_bigint::BigUint;

use super::bench_support::{public_op, variants};
use super::{HashAlg, KeyError, PublicKey, RsaVerify};
use crate::algorithm::Algorithm;
use crate::testkit::TestKey;

const MESSAGE: &[u8] = b"tokengate rsa_verify test vector";

fn hex(text: &str) -> Vec<u8> {
    let text = if text.len() % 2 == 1 {
        format!("0{text}")
    } else {
        text.to_owned()
    };
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn to_k_bytes(x: &BigUint, k: usize) -> Vec<u8> {
    let bytes = x.to_bytes_be();
    let mut out = vec![0; k - bytes.len()];
    out.extend(bytes);
    out
}

fn jwk_key(key: &TestKey) -> PublicKey {
    let jwk: JsonWebKey<'_> = serde_json::from_value(key.public_jwk("k", None)).unwrap();
    let JsonWebKey::Rsa {
        modulus,
        public_exponent,
        ..
    } = &jwk
    else {
        panic!("not an RSA key");
    };
    PublicKey::from_be_bytes(modulus, public_exponent).unwrap()
}

fn hash_of(alg: Algorithm) -> HashAlg {
    match alg {
        Algorithm::Rs256 | Algorithm::Ps256 => HashAlg::Sha256,
        Algorithm::Rs384 | Algorithm::Ps384 => HashAlg::Sha384,
        _ => HashAlg::Sha512,
    }
}

fn verifies(key: &PublicKey, alg: &str, message: &[u8], signature: &[u8]) -> bool {
    let hash = match &alg[2..] {
        "256" => HashAlg::Sha256,
        "384" => HashAlg::Sha384,
        _ => HashAlg::Sha512,
    };
    let digest = hash.digest(message);
    if alg.starts_with("RS") {
        key.verify_pkcs1v15(hash, &digest, signature)
    } else {
        key.verify_pss(hash, &digest, signature)
    }
}

#[test]
fn public_operation_matches_num_bigint() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let sizes: [usize; 14] = [
        2048, 2049, 2050, 2055, 2056, 2070, 2072, 2073, 2098, 2100, 3000, 3072, 4095, 4096,
    ];
    for bits in sizes {
        let k = bits.div_ceil(8);
        let mut n_bytes = rng.bytes(k);
        let top_bits = bits - 8 * (k - 1);
        n_bytes[0] &= 0xff >> (8 - top_bits);
        n_bytes[0] |= 1 << (top_bits - 1);
        n_bytes[k - 1] |= 1;
        let n = BigUint::from_bytes_be(&n_bytes);
        assert_eq!(n.bits() as usize, bits);
        // Wide exponents (64 squarings and up to 63 products) on a few sizes only: debug-build
        // num-bigint is slow.
        let wide = [u64::MAX, rng.next() | 1 | (1 << 63)];
        let exponents = if [2048, 2049, 3000, 4096].contains(&bits) {
            [3, 65537].iter().chain(&wide)
        } else {
            [3, 65537].iter().chain(&[])
        };
        for &e in exponents {
            let key = PublicKey::from_be_bytes(&n_bytes, &e.to_be_bytes()).unwrap();
            assert_eq!((key.bits(), key.size(), key.exponent()), (bits, k, e));
            let random = BigUint::from_bytes_be(&rng.bytes(k)) % &n;
            let samples = [
                BigUint::from(0u8),
                BigUint::from(1u8),
                BigUint::from(2u8),
                &n - 1u8,
                &n - 2u8,
                random,
            ];
            for s in samples {
                let expected = to_k_bytes(&s.modpow(&BigUint::from(e), &n), k);
                let sig = to_k_bytes(&s, k);
                // Natively the floating-point kernel runs on software fma: slow in a debug
                // build, so it skips the wide exponents (e = 3 has a product step already).
                let fma_too = e <= 65537 || cfg!(target_arch = "wasm32");
                for variant in variants()
                    .into_iter()
                    .filter(|v| fma_too || !v.name.contains("FMA"))
                {
                    assert_eq!(
                        public_op(&key, &sig, variant).as_ref(),
                        Some(&expected),
                        "{bits} {e} {variant:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn signature_representative_must_be_k_bytes_and_below_n() {
    let key = jwk_key(TestKey::rsa_a());
    let k = key.size();
    let n = key.modulus().to_vec();
    let chosen = variants().into_iter().find(|v| v.chosen).unwrap();
    let public_op = |key: &PublicKey, sig: &[u8]| public_op(key, sig, chosen);
    assert_eq!(variants().iter().filter(|v| v.chosen).count(), 1);
    assert_eq!(public_op(&key, &n), None, "s = n");
    assert_eq!(public_op(&key, &[0xff; 256]), None, "s > n");
    let mut below = n.clone();
    below[k - 1] -= 1;
    assert!(public_op(&key, &below).is_some(), "s = n - 1");
    for len in [0, 1, k - 1, k + 1, 2 * k] {
        assert_eq!(public_op(&key, &vec![0; len]), None, "length {len}");
    }
    // A valid signature with a leading zero byte added or its leading zero removed.
    let digest = HashAlg::Sha256.digest(MESSAGE);
    let mut signature = TestKey::rsa_a().sign(Algorithm::Rs256, MESSAGE);
    assert!(key.verify_pkcs1v15(HashAlg::Sha256, &digest, &signature));
    signature.insert(0, 0);
    assert!(!key.verify_pkcs1v15(HashAlg::Sha256, &digest, &signature));
}

#[test]
fn keys_refused_as_rfc_8017_and_7518_require() {
    let mut n = vec![0xc5; 256];
    n[255] = 0x01;
    let e = [1, 0, 1];
    assert!(PublicKey::from_be_bytes(&n, &e).is_ok());
    let cases: [(Vec<u8>, Vec<u8>, KeyError); 9] = [
        (vec![], e.to_vec(), KeyError::ModulusSize { bits: 0 }),
        (vec![0; 256], e.to_vec(), KeyError::ModulusSize { bits: 0 }),
        (
            n[1..].to_vec(),
            e.to_vec(),
            KeyError::ModulusSize { bits: 2040 },
        ),
        (
            [&[0x7f], &n[1..]].concat(),
            e.to_vec(),
            KeyError::ModulusSize { bits: 2047 },
        ),
        (
            vec![0xc5; 513],
            e.to_vec(),
            KeyError::ModulusSize { bits: 4104 },
        ),
        (vec![0xc4; 256], e.to_vec(), KeyError::EvenModulus),
        (n.clone(), vec![1], KeyError::ExponentOutOfRange),
        (n.clone(), vec![0, 0, 2], KeyError::ExponentOutOfRange),
        (n.clone(), vec![1, 0, 0], KeyError::EvenExponent),
    ];
    for (n_case, e_case, expected) in cases {
        assert_eq!(
            PublicKey::from_be_bytes(&n_case, &e_case).unwrap_err(),
            expected
        );
    }
    assert_eq!(
        PublicKey::from_be_bytes(&n, &[1; 9]).unwrap_err(),
        KeyError::ExponentTooLarge { bytes: 9 }
    );
    assert_eq!(
        PublicKey::from_be_bytes(&n, &[]).unwrap_err(),
        KeyError::ExponentOutOfRange
    );
    // Leading zeros are ignored on both.
    let key = PublicKey::from_be_bytes(&[&[0, 0], &n[..]].concat(), &[0, 0, 0, 1, 0, 1]).unwrap();
    assert_eq!((key.bits(), key.size(), key.exponent()), (2048, 256, 65537));
    assert!(PublicKey::from_be_bytes(&n, &[0xff; 8]).is_ok());
    assert!(PublicKey::from_be_bytes(&vec![0xc5; 512], &e).is_ok());
    assert!(PublicKey::from_be_bytes(&[&[1], &n[..]].concat(), &e).is_ok());
    assert!(
        KeyError::ModulusSize { bits: 1024 }
            .to_string()
            .contains("2048")
    );
}

#[test]
fn verifies_the_testkit_signatures_of_all_six_algorithms() {
    let rsa_algs = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
    ];
    for fixture in [TestKey::rsa_a(), TestKey::rsa_3072()] {
        let key = jwk_key(fixture);
        let other = jwk_key(TestKey::rsa_b());
        for alg in rsa_algs {
            let signature = fixture.sign(alg, MESSAGE);
            let name = alg.jws_name();
            assert!(verifies(&key, name, MESSAGE, &signature), "{name}");
            assert!(
                !verifies(&other, name, MESSAGE, &signature),
                "{name} other key"
            );
            assert!(
                !verifies(&key, name, b"another message", &signature),
                "{name}"
            );
            for swapped in rsa_algs.into_iter().filter(|a| *a != alg) {
                assert!(
                    !verifies(&key, swapped.jws_name(), MESSAGE, &signature),
                    "{name} as {swapped}"
                );
            }
            for byte in [0, signature.len() / 2, signature.len() - 1] {
                let mut tampered = signature.clone();
                tampered[byte] ^= 0x01;
                assert!(
                    !verifies(&key, name, MESSAGE, &tampered),
                    "{name} byte {byte}"
                );
            }
            // A digest of the wrong length never verifies.
            let hash = hash_of(alg);
            let mut digest = hash.digest(MESSAGE);
            digest.push(0);
            assert!(!key.verify_pkcs1v15(hash, &digest, &signature));
            assert!(!key.verify_pss(hash, &digest, &signature));
        }
    }
}

#[test]
fn verifies_openssl_signatures_for_keys_of_unusual_sizes() {
    for (bits, n, e, alg, signature) in ODD_SIZE_VECTORS {
        let key = PublicKey::from_be_bytes(&hex(n), &e.to_be_bytes()).unwrap();
        assert_eq!(key.bits(), *bits);
        let signature = hex(signature);
        assert_eq!(signature.len(), key.size(), "{bits}");
        assert!(verifies(&key, alg, MESSAGE, &signature), "{bits} {alg}");
        assert!(
            !verifies(&key, alg, b"tokengate", &signature),
            "{bits} {alg}"
        );
        let mut tampered = signature.clone();
        tampered[key.size() / 3] ^= 0x80;
        assert!(!verifies(&key, alg, MESSAGE, &tampered), "{bits} {alg}");
        let other_padding = format!(
            "{}{}",
            if alg.starts_with('R') { "PS" } else { "RS" },
            &alg[2..]
        );
        assert!(!verifies(&key, &other_padding, MESSAGE, &signature));
    }
}

#[test]
fn pss_salt_length_is_checked() {
    let key = jwk_key(TestKey::rsa_a());
    let signature = TestKey::rsa_a().sign(Algorithm::Ps256, MESSAGE);
    let digest = HashAlg::Sha256.digest(MESSAGE);
    assert!(key.verify_pss_with_salt_len(HashAlg::Sha256, &digest, &signature, 32));
    for salt_len in [0, 20, 31, 33, 64, 1000] {
        assert!(!key.verify_pss_with_salt_len(HashAlg::Sha256, &digest, &signature, salt_len));
    }
}

#[test]
fn plugs_into_jwt_compact_token_validation() {
    let header = r#"{"alg":"RS256","typ":"JWT"}"#;
    let payload = r#"{"sub":"alice"}"#;
    let token = crate::testkit::sign_raw(header, payload, TestKey::rsa_a(), Algorithm::Rs256);
    let key = jwk_key(TestKey::rsa_a());
    let untrusted = UntrustedToken::new(&token).unwrap();
    let verified = RsaVerify::RS256
        .validator::<Empty>(&key)
        .validate(&untrusted)
        .unwrap();
    let _: &Claims<Empty> = verified.claims();
    // The token says RS256: PS256 and RS384 do not accept it, nor does another key.
    assert!(
        RsaVerify::PS256
            .validator::<Empty>(&key)
            .validate(&untrusted)
            .is_err()
    );
    assert!(
        RsaVerify::RS384
            .validator::<Empty>(&key)
            .validate(&untrusted)
            .is_err()
    );
    let other = jwk_key(TestKey::rsa_b());
    assert!(
        RsaVerify::RS256
            .validator::<Empty>(&other)
            .validate(&untrusted)
            .is_err()
    );
    let names: Vec<_> = [
        RsaVerify::RS256,
        RsaVerify::RS384,
        RsaVerify::RS512,
        RsaVerify::PS256,
        RsaVerify::PS384,
        RsaVerify::PS512,
    ]
    .iter()
    .map(|alg| jwt_compact::Algorithm::name(alg).into_owned())
    .collect();
    assert_eq!(
        names,
        ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    );
}

// Generated with Python `cryptography` 48 (OpenSSL 3): keys of unusual sizes, message
// `MESSAGE`, PSS salt = hash length. (bits, n, e, alg, signature).
const ODD_SIZE_VECTORS: &[(usize, &str, u64, &str, &str)] = &[
    (
        2049,
        "16bcc46a654a48e1a6ae68a8d85c3d0bab412027fd902e39da8f197dfaf76c1974e8670af0c533c541710c4ab3003ada66c994be33ed9f0276089c299fd6684f5f7dfb590ba951ed1e766920ce336ec60027a03360a031f6767dea58fd6ccc22eb64c1763121828112c3603d4a7db6c68a12c3cfed51baf5f764c15b069bb4356f6d248a81beef70e9ae8e904a80b92e30fd16b80b5334f4365626491d6bfb34e7968dc571f8d32980ec589cfb2fbc8370274644e517171f4e3c55620f1013a3cffacaf67a58d8f082b10f97fbd360a510828b014a90d6d00467657ede2ce8a666fe5826b96dd6bcab1eb7446731a81e0bc2507e3cb8e1592e67ca72e9a964b61",
        65537,
        "RS256",
        "00488dc4f13991f43c650075909f6aed563d30fc927a2cbdcc0f858601497cbe7d9d85833cbf2ede72ff1dac34726bf0f39a2ec1f26cbc31e5def8dd360270bbd992b455089b6e6da3333eaadeee527034666eb753c51d0d999337347e2e918bee1dd68ebd84e40a097a42ede88ad921a248af315eddb90cebf6d8da02b476dbf0464dd281c6fede26914a994db9657450d8dedac487d9d5bc8d40ff592b8d363e8078b6e9f8e22fd2429d76c1b78099d95ae66a8076f48a8c027593ad6f4a20bf9d00e4519d95edfb9c53ca1400f2dce9d7316e9b9cabfd95a951c19a36369f30481b34cde20f9695277e7783f10725c95268c71e10d34f66bf8044144125e087",
    ),
    (
        2049,
        "16bcc46a654a48e1a6ae68a8d85c3d0bab412027fd902e39da8f197dfaf76c1974e8670af0c533c541710c4ab3003ada66c994be33ed9f0276089c299fd6684f5f7dfb590ba951ed1e766920ce336ec60027a03360a031f6767dea58fd6ccc22eb64c1763121828112c3603d4a7db6c68a12c3cfed51baf5f764c15b069bb4356f6d248a81beef70e9ae8e904a80b92e30fd16b80b5334f4365626491d6bfb34e7968dc571f8d32980ec589cfb2fbc8370274644e517171f4e3c55620f1013a3cffacaf67a58d8f082b10f97fbd360a510828b014a90d6d00467657ede2ce8a666fe5826b96dd6bcab1eb7446731a81e0bc2507e3cb8e1592e67ca72e9a964b61",
        65537,
        "PS512",
        "016047b33222228c0b09c40685b31acebbbc3789afe2ea777d86c53014c8fe6212890189135ad979dd449feb54513b6c6e1083184ef7aaf8fe004a66b7b2b0ab5207cd5c3f13619a12f7e82d06a5c9d387d0eeca6fa7c91361df5ece27c46a79fe0d4ebaddfab33ca3c4f4b127e14292efc366382ec870f22342ff6c0c86ede3bffe20ca948b1b705fd4e01094fc5293b7b103624d0e440dbeb34988eb5d536d00668b0c2099e7fdb5848b7813f2df147a348b21cefaa4c3cc33ef1ddd1cc4150307a26c3bbad09228ad2ac1e6b6bfb62254614e45f7969655c3e6b7c0f8231a26077160d8a37d33a43234f70f8a43c7ffb97090344e3872613af1f0420be064c9",
    ),
    (
        2050,
        "3c5c05b0751783675816a510ffd7f0b7048f73e4b23ac64e0abf83fe4801c01fc53a65a72bed050c040c210492b30df6665a166c38eefeeb3dd6acdb1f7dc05246328dc52e993ff0c777a91556f9936b52e256caf3dfdbefc55b589b99f12b06155e276ed379048eb9428f6f1b85c8a9245ec69bae2c6b39e09d59a6e24a5fd7c2081b927f4895303a1c853d0ef6f842cee4f2d09113a44c65cb2b2d735c21b01b712b055bc023a33e90c85c350c1ec44a47003df27de2911b1754dc0e87ab469c5f7cf52b036c64c747760e51fac556e19571e52d3a36f792de636d2114fe15e0619f3c791b2ea5844a498e8ec86897fa10866163294d82fee8544ef34d06dab",
        3,
        "RS384",
        "0100714a339d447b1714f1453b9a7ac616d2c7ec4903c7298a29796fcf6f0d58942f4aa321e3a2c96041498aa5b9033ddab5ae6e79fdc527086971850219f1d337de14e7624e24acbabae16e45a811ffafca8da89c1e2ebec7de290d67a3203e2a05628ce86cf638c41b1880f2d775eaa9862788d36dc22de0ea164489bbbb90dc42c6ebe5d9bbedf81849c1fcc5f23e4c6e5bd1006bdaf1c4616a4ab468ed92196d37057e5027aaa4a80de22a2565a0ac19a4719784db92bf13ac44cdc1dedbf708b341c9b0a3651790fe761732fb51bebd70d65ed94ca13f9cbe359e1222f8e4d1347bc8a3a5be39366263c5a5f66f70781eb0d281445ea4a8a60f421baef5c2",
    ),
    (
        2050,
        "3c5c05b0751783675816a510ffd7f0b7048f73e4b23ac64e0abf83fe4801c01fc53a65a72bed050c040c210492b30df6665a166c38eefeeb3dd6acdb1f7dc05246328dc52e993ff0c777a91556f9936b52e256caf3dfdbefc55b589b99f12b06155e276ed379048eb9428f6f1b85c8a9245ec69bae2c6b39e09d59a6e24a5fd7c2081b927f4895303a1c853d0ef6f842cee4f2d09113a44c65cb2b2d735c21b01b712b055bc023a33e90c85c350c1ec44a47003df27de2911b1754dc0e87ab469c5f7cf52b036c64c747760e51fac556e19571e52d3a36f792de636d2114fe15e0619f3c791b2ea5844a498e8ec86897fa10866163294d82fee8544ef34d06dab",
        3,
        "PS256",
        "019cfb0392158e2089ae86d282d8962590f1e5672c272979c42ee3c72c4df99250ab9d13d5d20c82c0c5da38f2eaa62e5d4c135dfa6facd3effc0efe6f29cc3c506972af1adc24d4599db7c2960f9df436f47d19f5526010ef4c6fd4ed977c66571e83a8e515c3eb46f141734ed1986892df08f95a995f36402e65d2c3623dae508cd9d47710044972ff7fd9b6f18f61102fa06fb75afb22e4650d7350cdb75888c899aa10bff6366c7474cdae74fa9698787543ad3af454055e7b4232d2083e70a056d8853562b085e90eed4edb77823e320f7f16680db171f51ed7c9fa3aaeed3922b5bebe85dc9204f3e6705e09aeba4d98102dd2765a9a08b789a34aa49f02",
    ),
    (
        2056,
        "b7e4acb14efe592fcb428947711a0b938ee9b7808e07ec8e6631bbdb200e488d98dae5f4cbd94a75a94442839bd7dfa598dad2564275120f4277b1a20abd3a872267015af562047f9886149eb6399684b723fb2d44aab44d464d5bed08052b6cc4589650a5b26957edf455ff2fd7dccf0b105b365eb8abbce587a5ea89784c082417073b3f4daebcf325e032e5dd71bffce441c186077c29f83599075dc413470720206f2fa7e1259f275e001e022aa3785c4f844244ff587c7403b3790ba75caeeaa7d05dc951f3cfd83a613559d364f1df8fd26cf661a07be4476556d9492670587ca6fabff0639c09d3f359d60fb7e5cf59e61579d816c36832ab4c4b683945",
        65537,
        "RS512",
        "96f0629e7f9827b5ee181e81bb0e7a428b7d162e7a57d5d81f967cbbae227255d35ac1f5d90fa19470ca061463108fd19a4af0e50ffa5722a0c005079b4308fd0e9e97e560ad2bf7740ccfd204fa2503734e15631bda085834a4e58d1ff994e4680a84ee24110b033ae82874023d8ebc8f93f377f86b33d4e2ebee449e213365ca2dc9409e4eebfff53b09f4804649195fc9f035ee9b70f8e72ebfded2dee55fee8e4bafcb8125e3b0ace6298b317c015e9d09606f8d30177b21020fb1511d014c5d299acac4e9864daccee9e535b46feec0cc265d7ec928a3af97002a249a9699b8c0f0748f0fac5e97e4d18a5aed97ff0c852d9f8a11a34404d3b64708bed043",
    ),
    (
        2056,
        "b7e4acb14efe592fcb428947711a0b938ee9b7808e07ec8e6631bbdb200e488d98dae5f4cbd94a75a94442839bd7dfa598dad2564275120f4277b1a20abd3a872267015af562047f9886149eb6399684b723fb2d44aab44d464d5bed08052b6cc4589650a5b26957edf455ff2fd7dccf0b105b365eb8abbce587a5ea89784c082417073b3f4daebcf325e032e5dd71bffce441c186077c29f83599075dc413470720206f2fa7e1259f275e001e022aa3785c4f844244ff587c7403b3790ba75caeeaa7d05dc951f3cfd83a613559d364f1df8fd26cf661a07be4476556d9492670587ca6fabff0639c09d3f359d60fb7e5cf59e61579d816c36832ab4c4b683945",
        65537,
        "PS384",
        "32ac6bbd20d7fed047ea7b63c107a8bf93f583e7b299b6602dc066d2d7dc8e0577c5e1328854a8733607ca960609c320ee43cd8d640226f4fc09de5e7f7d3a9a615349626186951b6b9726e0133e56bca38234a4681fa382361f096d31f43ee75ba59507b05894d63289141136a0cc6b1fbcbd21ac7a6057067146bd5c37c088e50e24bd37f0634e77c08a30b31dc4b31c9a0d4fceb5c1fe2c3a31e4e28000bc0d146b999d1931555c310be680f2f910504d5fa100aa47ef0396abe005e8ba25c2fe95a98d8b7135471e10ea74e12eb29ca0eac0bff82282f6b7072054a06abfc0bc8514ba50b71dcf3a9e3da9c3deeab57113b2b8a17f35c3d4cbd5af9c57383f",
    ),
    (
        2057,
        "1a6f4f56fc84634c18c07ab9c85540b0fb735793e466da4699ab8204380855e217345c6b21bf11416a72a0fef3a7e7ca7c755b0346cf96000e43945c4c92228f397269589dd85246527d7c7c885be679c1fba46b8e0437404a83c2bde1c0c67b59bbcbb4a59f279e2555ab079746d063b32983b3c291a2dfe7eec58e1f69f02d24b70434e42090d028ff79a20200af9b86ecdeacb2bfce611e1cc1ff30c132760cad88c8708a930f375d68478393a925c32b8f2373cfc9aae75608b7e3fa53117918ef282a4bb0c107b50361915dd88de1ff1b247aa8c526cdb4e5cecf4b01fd7286d7cf79192b24021b96629999cf1e5399d24bb435bf621686b4b93cca529dd47",
        65537,
        "PS256",
        "007f4da91cab86b2b01807f179a41242df1c8c9b7e6a8a8947d6efec3ef85b7213ed91ae1af7cdb655b607868b686e0c32c54fffa06f0d38666b602dd8fceb1188b3bc7a6159f790b9e4076cdde38973a50383d7f414b0e4b8ff7fa5e060dae7e7099af268f4626991171e7a29acce92fa99be75a7b844c8fec0c6dc6e8dd92c49d9ecf1f9b6a713fd7ec7f37055ecd933930a63a1eb851f5427fbf821cf361e9b7f104afd31c905b11984d5cbc302a0d5ff9adb70a8a52e9b6b21d57fb89476329a5f373b581e2e44db31f45946c2cede20c2050b6eab4e139f65fcedfd8ad33e6a75d09c4c66c51622f59a897069d0b047b8387abbcd633e1b8d3c272d679bea28",
    ),
    (
        3000,
        "a609ac1009cafa14c41fe385fd80d06fb8bf3fa461493043d19e0f7c11d42ada026a152a677c229fb14190b334d0f74038c8c410fe443e492bac402b495fc1623154c7933b07da42af5ff370df5431280331bae1ac2be36252263598977b5d8ab10e60f14caa06d85433dea2e4986298cea842eae3e85007c59c9bdff6340a99388742b7490cb816ef2ea086c0e188596179a51bd42d7677135a5408aa148f314104c2a8e533a8dd48379c9b04ade3fb7524f1e43e71f73e6705f44b8ac3eb3aff7eb74ed46abd0666a571aadf4b0a3b0cc2b8d2ab6427144c3a384b3016b7b93f1be59531f23ce61f66bb6062ea379c0981d80b360ce1bc9517a4b6151d580c241bb2f5e80afde54302de7c4609d4c8a3f8664908186827061a5f29479f5946438fc50db098b3e2c8eb01802d803ab04ef196e47f138c75d53e06288fc7d53af458f67da6db2c162febb0c1efd53ad7e7862529a659b2ca0d4542adfdacd0befa4a982525d58ab8cbcac17e7b3a02c16ba9547da5050f",
        3,
        "RS256",
        "08a05f1eaf4b2b19b69ece6aa5b09f9d4d06c96dd80cde705531dc6101e347edc3b7c05dac61a1ac13a1a594fd447f505bf4615ea7b07bdeabda2acdbcab625ed2a6187a91af5130f1d11020265def2441d59d28ddd8d799fbcefa85149c455cbcff793c2b51cffeb10cf741c4dc93a57d8d686d6e6e7f54ec0f481786d7c77a4e847e07c7a62c13b564a621f6fa3d5d998d1ee8d142e6059edfe3c1747dd63eb72f66c334d5c8cf5a27157cc105a145cdef1247efe625e37f5fe7f1e7a18d8ad759b51b4337c8729fc6a171c62a81818085c58cc4abe8cef68e7f8a942506bca3d46b9dff0718a5fb418f6e068a47708047673c630213ff9468d0512f1dccc481d92c3d8d91ee4ecfcaf684c0146e76debe95a0a21e7cf8dba26a60dd307dc635a2a6a995dd651df76afd3f389687355cfc9b742da5f9ecfae95f9b4af3eab57d223d404f5f3654a9417aca38a72c9c20b7ebb490e85e937573574ad09ed0ebcba1ef2ee561b3afb462aada6625dfc05ce3d12b5d6539",
    ),
    (
        3000,
        "a609ac1009cafa14c41fe385fd80d06fb8bf3fa461493043d19e0f7c11d42ada026a152a677c229fb14190b334d0f74038c8c410fe443e492bac402b495fc1623154c7933b07da42af5ff370df5431280331bae1ac2be36252263598977b5d8ab10e60f14caa06d85433dea2e4986298cea842eae3e85007c59c9bdff6340a99388742b7490cb816ef2ea086c0e188596179a51bd42d7677135a5408aa148f314104c2a8e533a8dd48379c9b04ade3fb7524f1e43e71f73e6705f44b8ac3eb3aff7eb74ed46abd0666a571aadf4b0a3b0cc2b8d2ab6427144c3a384b3016b7b93f1be59531f23ce61f66bb6062ea379c0981d80b360ce1bc9517a4b6151d580c241bb2f5e80afde54302de7c4609d4c8a3f8664908186827061a5f29479f5946438fc50db098b3e2c8eb01802d803ab04ef196e47f138c75d53e06288fc7d53af458f67da6db2c162febb0c1efd53ad7e7862529a659b2ca0d4542adfdacd0befa4a982525d58ab8cbcac17e7b3a02c16ba9547da5050f",
        3,
        "PS512",
        "04e36b35b098eabfd0191aa979c8ffc5aa99e2edbab5d1859e727f35072a0e308fb37302d596b5906d76a8630a5751d4fe047d79469d221bbab3753e16eb2d16b9ddce86710adf1431d56e4864f0a4e8c56c5614b80792e672f18bb79f6a54a8bcfe3b6c8717846caf4fdb37b8c805432c84436efaf157f902db055ae4559c44d7080c1bc0386a6258cbf94ff8a8ca9806913a83546eabf90702d1c641a58520042d88a7dacbb7141d3a046936b1c67ef47a8ac0ed8ee78ac9feefcbebc862ae3d70906e6161fdf94dff41deb5b8fcd7e7528407f97061ac7be07bb16fb51af9a2b2a04485aade472cddd9f8608f16669be194872b94a603db99e3963bd39fcd84d85cf5c3469410ff4497a932b184a47c33de6f0929b2e470cd519436f67783d3c0ea5ed42ec8e84d7807732a20db0e011d6156f818ab268f11ec9b5c04171fad8221307b3a38d396adf0cf3379b3153426fc6eb050d88aac75785127d7d6424d4a248c4ab7aaf95b6dd1f39a9534326691e785e5f001",
    ),
    (
        4095,
        "66c4928659a313a4af3647c75a6ab3d76db29a358a6937cdb7386e9d6888320f5d5a62c05a0b81efec00f0988a6be97455068045a1275a86c1cade93f9804fca4895747875295a99b0d4536e2d6bd46f946926e57ff36c11021d1451e78404849a03e55d2d9e1b7f2ddd2fed21fffd6c57387483f68d51bff77184c1612aa62102ffe6d5c6067530317ac0756acd22b31e5ae905d6848f5874a33c685aa138c8d4a583bc6d7a31a17082548457a5c49deb2c12ea90e7532573ee965eadf8f904338ab3718acdd1bb602e838e4314c4205046fdc741a8c410d00c69ac2402e7603684ca4fbbbd79f237d6d66942eecc562c4d2031d2357134f2f4c7880f9478ef4ed20a94caa84177e480b34c07eab611de11c76544def2f7cc9428c3b75f7bdb493d2c08bd56f405cdea639cb597d72a6eaf7db688cf30423a9b8f5a65d737a8874e04824c89a2fd58054e3542537c1f12873822d712c6049a9ac92abae0960e641f33760f35501d53ae3f29fb3134ac6431b5c3a639b8628fc099674b85a2884a128bc05d5f97b222a80c67128e4ac7c3eb401eda5e8a2619f1bcef3810c8e381875f38dbca4db4962c55a0246f6a45410531ac49e75c75e3da882d63743114e2b1b21fdd086d09f07b65cabdee80643ecf6e9f8bba94f131d78f04bf626b09e61d06db325176d8b7cf4b8a5fb12adeb977e034992a3810e77e95544ea200f1",
        65537,
        "RS256",
        "6614b8beca0378405e7a1029a2b428a5fdce94cad38a6267c7956b96372e700b9a3a9183301416ebaef9c0aafe527e06501b7b22f609c96257aa6f58aa443ff0449f714e79b6b2459dba27d9ce743e87917a67d8717a03224814aa2002e875ac9494437c277037ebe8d8195c503a7a88f6f65901a7a464257d38299d4aadac6ebc2125e26997aa8e396f513f251761a1faaf1122640a7cae0764a1f1830733775b14c2c9bb0f64df511d155d9d52cb4ec64202b19523766cef60fdf9b086c7a6aab08b096604f864b29d45dd76377d1af7e14067a553359b35dafa5dae2d0b1cc2480dc7643feb8502a0fbe87a076af13336884d25d395373b5703f9b84691a0630139b3d5ea3d85cb27473d9b555f289b5d7ca862692399602b4aa61e2bd21c30cac89e1baecbfb90955927f4a912b85581cff94790d966cd75f68ba2bb380a1fdc552f6c17c56295e0a3385bee2f660c600c7606ccedc1b4a14c8a11debf429dadd06034e736da0749d42607f42c9d750106563fd1b310cb8bc1e938961267f65ba26db6fbe62299c0af891f18f83bf8cb740d16a9a15b47dd1d59b0d128cc2ea05b0e1819e5602fcc336fbfb2e97863297c26b4d47e4363298535e385ec481c1560896bfbeb655ccbaceb3b826e46afd8b808a4294649412eb15355b581428e028a8f469840e0e9057da97d405f5c3b3b8eda9e621208de479d3a68719658",
    ),
    (
        4095,
        "66c4928659a313a4af3647c75a6ab3d76db29a358a6937cdb7386e9d6888320f5d5a62c05a0b81efec00f0988a6be97455068045a1275a86c1cade93f9804fca4895747875295a99b0d4536e2d6bd46f946926e57ff36c11021d1451e78404849a03e55d2d9e1b7f2ddd2fed21fffd6c57387483f68d51bff77184c1612aa62102ffe6d5c6067530317ac0756acd22b31e5ae905d6848f5874a33c685aa138c8d4a583bc6d7a31a17082548457a5c49deb2c12ea90e7532573ee965eadf8f904338ab3718acdd1bb602e838e4314c4205046fdc741a8c410d00c69ac2402e7603684ca4fbbbd79f237d6d66942eecc562c4d2031d2357134f2f4c7880f9478ef4ed20a94caa84177e480b34c07eab611de11c76544def2f7cc9428c3b75f7bdb493d2c08bd56f405cdea639cb597d72a6eaf7db688cf30423a9b8f5a65d737a8874e04824c89a2fd58054e3542537c1f12873822d712c6049a9ac92abae0960e641f33760f35501d53ae3f29fb3134ac6431b5c3a639b8628fc099674b85a2884a128bc05d5f97b222a80c67128e4ac7c3eb401eda5e8a2619f1bcef3810c8e381875f38dbca4db4962c55a0246f6a45410531ac49e75c75e3da882d63743114e2b1b21fdd086d09f07b65cabdee80643ecf6e9f8bba94f131d78f04bf626b09e61d06db325176d8b7cf4b8a5fb12adeb977e034992a3810e77e95544ea200f1",
        65537,
        "PS384",
        "1f015f8ac253411db54290d18fecf69bb6a2c4f9e1942f0cd191c7c61a2be2995e7346daad4fa27625906bdebfa62e50a10346b3abe6807755834e18c81de63e63a0b428623b1fbbc0c08823175320a85784d7a86125f2668afe8ea0a79e611ad78e03c89d452c7e4cf53e1be715eea1b027003701493bf6aded59e6c2ff539ceed54a2fdbdcd3adbcf22a3a37c823f09425e48fc4bc7e1a1d79c53de9e7979343f7803f0e7933d51cdf9fb58def13c035a50dc9791b41cf94c77c94eb866a77424a9b38221d6583d9d3bf389dc405bd120e2f6acef9f0b152f4476cb2683a413dc609c4fc46f47a19807e73076aacc07630e64a6dd85d3661afc98b483aa78891014f7bb08d8935283a04dbbae8caba742f687a2daa6b6e3fd9cb2dbd4a403925f7362f18911f27536a446378d949b19bdef897e5ef39bcaaa28c76c918b547a52c858ed12d8b158786dabf66fca3d6fcf7e2b62b50d7074388afd25be3d2701c9abc18bc13f269fc9edc45158daa15fe4219e353c21882696f4a08beef90eeb8c2a056b2e32be8c8e13cee8f536181f0d2f26d2e5a8d40c69c20c4c4d6aebe63b27519baa1bc7815ec564857fee526a3da52354982f9a9a4608ce0f8b8c2f2b3f3caa9252d6c1c9cd10f05aeee5b2c849ea0ac344503221137dd0e5ab3b80dd91fdb584261f55ce63f4080f65d5382489049ee0038fc04f6b66b1519970dda",
    ),
    (
        4096,
        "a747c7df778ece10ce96d7df2fdd25893f1c32eb9f84ecf3507211e0bcfbf30143a25056e351940622d41e0d3463436077e2458d80efe4595d05fb65b3f0f215ff90238ee6f7e3f0b6cf3557254bf55a6105f6503ceb25e901424811a7094bbfbd074d057e3859e5c0bfcb2d3c379e6a0b01b81a109d386ce4368d9c4b4f483c0d98685b4ca334f85e6bae321662eb963a7d62792c173052886e36872d80e4da6174a657abf988ed7ad75f83cd966602ac06e157602e1811c26964aa6282f3187bab99b14dbbfcc57aae64196c17066e809c5d21fc6d53f1ebfe6a9b1a2cc419b442f0baeae5cae83dc0c6aa6fd7e41e562e17f309152642d6b02ac77b8054664b7995488582337ec0e88d2e00d482baf40f42b24eebd4a4a1b54f70b802c8326ccb18d5217d09d2d9627d8de9fd59d2940e4f5d8eee0ef86cfc4b6e5157380d3fb33abf9b421f6306a6d6ef6ff239147f375fd0c37335d8c284f9509264ca8a836e00b21a08d5bbbf6fb103627ccfc42041936aab38863a5722f967c5d407878339f4aee120c343938ace1282b3c5ff624a27091c5c6b193fc70ec9912f33d96c342d5ea85d59726b4afb3be6dab9944e0ec2e1ac746df93718aeab76868d030ab771106df884c7e2fd8bb85134731f1dd518cf22d5cf400791ba32c6426298c228564d635eee56e1dc80f15c9bbf762cec27328c9cd9b4aec3166f4eb6eaa7",
        65537,
        "PS512",
        "06779911fb81c1d07192bfd956b5b44f398d5722db99dd50b6e6ece1af946b47332a2f006c68b96539e069f5b9fd88b644aa431726f60bcf8cc39308a1aa157c75fe7471961862ae5c82a9010735c039c7858bb786565c2f7f67ed257fdfbdb029ba713154e4adeeb1a4e71c324f22c2301f6608a1de229969d00ff3e024eed0efc07d7b55f4f7a54fd050a437aad618816acd04886749d33293de028a7a7118698caa3331d704d24adf43409b66ac9ef8e16bded3957b30d65139626ce10d651b42a624c6f66ed04a18b408db6b65136e4679cc22ca8b1fbf56ff582be94f18ad9964b8f6951ee6508d1eba999720e37d94c9b0b40e07dab80121ec8dd862f3a43faa937607ff571b8de07eab277ae237fbbbc2e1d2e9d017c59a722d2e7098112d21fec956942400d1a87caf81d7be3aeb44236e8a166fa723393b6fe85e90a219b9cc646b0ced62599a05c712909291a17c73b08e62d2e5f44fd3cd673d745617ce90073069e045371b4ebe80dcdaee223fc4cf9a79a525ea2430c949e4af5ac468693c274c381e22b8a6edb84a326bc89cd08e56ea90a59606283096a46ed2f0569bd4dbcf355968fe523afc5e52b70e10a5199159072d52391ff6f40a13b2739409b1a91115c8d755b12e8b015fd4df69129d1bf3ece2082949463055ccaf96adcb4efadbc318c35977c286b2edb972d65987d416cbb3cf6cf16fe5a202",
    ),
    (
        4096,
        "a747c7df778ece10ce96d7df2fdd25893f1c32eb9f84ecf3507211e0bcfbf30143a25056e351940622d41e0d3463436077e2458d80efe4595d05fb65b3f0f215ff90238ee6f7e3f0b6cf3557254bf55a6105f6503ceb25e901424811a7094bbfbd074d057e3859e5c0bfcb2d3c379e6a0b01b81a109d386ce4368d9c4b4f483c0d98685b4ca334f85e6bae321662eb963a7d62792c173052886e36872d80e4da6174a657abf988ed7ad75f83cd966602ac06e157602e1811c26964aa6282f3187bab99b14dbbfcc57aae64196c17066e809c5d21fc6d53f1ebfe6a9b1a2cc419b442f0baeae5cae83dc0c6aa6fd7e41e562e17f309152642d6b02ac77b8054664b7995488582337ec0e88d2e00d482baf40f42b24eebd4a4a1b54f70b802c8326ccb18d5217d09d2d9627d8de9fd59d2940e4f5d8eee0ef86cfc4b6e5157380d3fb33abf9b421f6306a6d6ef6ff239147f375fd0c37335d8c284f9509264ca8a836e00b21a08d5bbbf6fb103627ccfc42041936aab38863a5722f967c5d407878339f4aee120c343938ace1282b3c5ff624a27091c5c6b193fc70ec9912f33d96c342d5ea85d59726b4afb3be6dab9944e0ec2e1ac746df93718aeab76868d030ab771106df884c7e2fd8bb85134731f1dd518cf22d5cf400791ba32c6426298c228564d635eee56e1dc80f15c9bbf762cec27328c9cd9b4aec3166f4eb6eaa7",
        65537,
        "RS512",
        "60645c56ac35b899457132799e12d5fd4d4375e21fd4a8cdb93a2389493cd3b281bdcc3b1c9d50a53ef6e9e3f8542cbe4f85e956f6e0eb5693566f34bc8362823a0b1e1b0a5612d8ad216e33af968beccfeea04ca1a09607e09edc7d07cf81073127f8ec6c35309aedeed8bc24a43d25b36208c624929eb6524eeba33135db0fc4adadada6502590c5031cd5a2efbb9f293144d66ece754acce3e7cf1aea09156b8aaf0f713b13e5592eda291e9206484ef5d057122e6c4281399a834a8a12531787342f17b287471161f23bfee8b7e2147dabdfd82dca7ee2b41413132a41ceaf398db140ef5d89238a4ef31fc7e7101dc28aa6cd5d29d21a90e5fbebd9b42c7ddbcd256385138238372270ee748a28a4aec3000ea0b9eaef670d623ae18e3e12bbba29c9df6e88cf2f8ac427f2e3fde8325adecc5f7712ba22bf38a38a9627d9a5f4ffa8b4b087dff617e815b14f1c5cd66b7d01dc3bbe5a36d00767c8dc3dbf4ddf42b9d6d172f75971eea9e67dc52cb20a2cea3b7c4639714bbf0df3d1d47f5e3c811e6e318d235233a182284a21a017fec3bbb1d0bab4616b16097cc3ca54e7f970894cd264d1f0e76e97c7a4098531120b98ebdf7f21b30527b39dcb0589109972073c890eacb2d97f3b9c49202fa7b1e5fc0372686df881d0049cee28c5882910d6827ea818adf073e188c87058ad82c3d7942e645d9da79fa92922b9",
    ),
];

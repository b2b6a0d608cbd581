//! Project Wycheproof signature vectors (testdata/wycheproof/) through the path the filter
//! uses: `VerifyingKey::from_jwk` on each group's JWK, then `VerifyingKey::verify` with the
//! file's algorithm. `valid` cases must verify, `invalid` ones must not, `acceptable` ones may
//! go either way (counted). A key the filter refuses passes only if none of its cases is
//! `valid`: its `invalid` cases count as rejected-by-key.
//!
//! The files are compiled in (`include_str!`), so the test needs no file system and runs the
//! same under WASI:
//!
//!     cargo test -p tokengate --test wycheproof -- --nocapture
//!     cargo test -p tokengate --test wycheproof --target wasm32-wasip1 -- --nocapture

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt;

use jwt_compact::jwk::JsonWebKey;
use serde::Deserialize;
use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;
use tokengate::signature::VerifyingKey;

#[derive(Debug, Default)]
struct Counts {
    groups: usize,
    /// Groups without a JWK in the file whose key was built from its coordinates (ECDSA).
    jwk_from_coordinates: usize,
    refused_keys: usize,
    valid_verified: usize,
    invalid_rejected: usize,
    /// `invalid` cases whose key the filter refuses.
    invalid_key_refused: usize,
    acceptable_verified: usize,
    acceptable_rejected: usize,
    failures: Vec<String>,
}

impl Counts {
    fn cases(&self) -> usize {
        self.valid_verified
            + self.invalid_rejected
            + self.invalid_key_refused
            + self.acceptable_verified
            + self.acceptable_rejected
            + self.failures.len()
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cases in {} groups: valid verified {}, invalid rejected {} (+{} by refused key), \
             acceptable verified {} / rejected {}; keys refused {}, JWKs built from coordinates \
             {}; failures {}",
            self.cases(),
            self.groups,
            self.valid_verified,
            self.invalid_rejected,
            self.invalid_key_refused,
            self.acceptable_verified,
            self.acceptable_rejected,
            self.refused_keys,
            self.jwk_from_coordinates,
            self.failures.len(),
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    number_of_tests: usize,
    test_groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Group {
    key_jwk: Option<Value>,
    public_key_jwk: Option<Value>,
    public_key: Option<Value>,
    sha: Option<String>,
    mgf_sha: Option<String>,
    s_len: Option<usize>,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    tc_id: u64,
    comment: String,
    msg: String,
    sig: String,
    result: String,
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn b64url(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}

/// The hash a JWS algorithm implies, as Wycheproof names it.
fn sha_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Rs256 | Algorithm::Ps256 | Algorithm::Es256 => "SHA-256",
        Algorithm::Rs384 | Algorithm::Ps384 | Algorithm::Es384 => "SHA-384",
        Algorithm::Rs512 | Algorithm::Ps512 => "SHA-512",
        Algorithm::EdDsa => "",
    }
}

/// A JWK from the group's uncompressed point, for the ECDSA groups the file gives without
/// one.
fn ec_jwk_from_coordinates(public_key: &Value, alg: Algorithm) -> Value {
    let (crv, size) = match alg {
        Algorithm::Es256 => ("P-256", 32),
        _ => ("P-384", 48),
    };
    let point = hex(public_key["uncompressed"].as_str().unwrap());
    assert_eq!(
        (point.len(), point[0]),
        (2 * size + 1, 0x04),
        "uncompressed {crv} point"
    );
    json!({"kty": "EC", "crv": crv, "x": b64url(&point[1..=size]), "y": b64url(&point[size + 1..])})
}

fn run(file_name: &str, text: &str, alg: Algorithm) -> Counts {
    let file: File = serde_json::from_str(text).unwrap();
    let mut counts = Counts::default();
    for group in &file.test_groups {
        counts.groups += 1;
        // The file's parameters must be the ones the JWS algorithm fixes.
        if let Some(sha) = &group.sha {
            assert_eq!(sha, sha_name(alg), "{file_name}: group hash");
        }
        if let Some(mgf_sha) = &group.mgf_sha {
            assert_eq!(mgf_sha, sha_name(alg), "{file_name}: MGF1 hash");
        }
        if let Some(s_len) = group.s_len {
            assert_eq!(s_len * 8, sha_name(alg)[4..].parse::<usize>().unwrap());
        }
        let jwk = match (&group.key_jwk, &group.public_key_jwk, &group.public_key) {
            (Some(jwk), _, _) | (None, Some(jwk), _) => jwk.clone(),
            (None, None, Some(public_key))
                if matches!(alg, Algorithm::Es256 | Algorithm::Es384) =>
            {
                counts.jwk_from_coordinates += 1;
                ec_jwk_from_coordinates(public_key, alg)
            }
            _ => panic!("{file_name}: a group without a key"),
        };
        let key = JsonWebKey::deserialize(&jwk)
            .map_err(|err| err.to_string())
            .and_then(|jwk| VerifyingKey::from_jwk(&jwk, alg.family()));
        let key = match key {
            Ok(key) => key,
            Err(reason) => {
                counts.refused_keys += 1;
                for case in &group.tests {
                    match case.result.as_str() {
                        "invalid" => counts.invalid_key_refused += 1,
                        "acceptable" => counts.acceptable_rejected += 1,
                        _ => counts.failures.push(format!(
                            "tcId {} ({}): valid, but the key was refused: {reason}",
                            case.tc_id, case.comment
                        )),
                    }
                }
                continue;
            }
        };
        for case in &group.tests {
            let verified = key.verify(alg, &hex(&case.msg), &hex(&case.sig));
            match (case.result.as_str(), verified) {
                ("valid", true) => counts.valid_verified += 1,
                ("invalid", false) => counts.invalid_rejected += 1,
                ("acceptable", true) => counts.acceptable_verified += 1,
                ("acceptable", false) => counts.acceptable_rejected += 1,
                (result, verified) => counts.failures.push(format!(
                    "tcId {} ({}): {result}, but verify returned {verified}",
                    case.tc_id, case.comment
                )),
            }
        }
    }
    assert_eq!(
        counts.cases(),
        file.number_of_tests,
        "{file_name}: every case ran"
    );
    println!("wycheproof {file_name} ({alg}): {counts}");
    assert!(
        counts.failures.is_empty(),
        "{file_name}: {} failures:\n{}",
        counts.failures.len(),
        counts.failures.join("\n")
    );
    counts
}

macro_rules! wycheproof {
    ($test:ident, $file:literal, $alg:expr) => {
        #[test]
        fn $test() {
            run(
                $file,
                include_str!(concat!("../testdata/wycheproof/", $file)),
                $alg,
            );
        }
    };
}

wycheproof!(
    rsa_2048_sha256,
    "rsa_signature_2048_sha256_test.json",
    Algorithm::Rs256
);
wycheproof!(
    rsa_3072_sha256,
    "rsa_signature_3072_sha256_test.json",
    Algorithm::Rs256
);
wycheproof!(
    rsa_4096_sha256,
    "rsa_signature_4096_sha256_test.json",
    Algorithm::Rs256
);
wycheproof!(
    rsa_2048_sha384,
    "rsa_signature_2048_sha384_test.json",
    Algorithm::Rs384
);
wycheproof!(
    rsa_2048_sha512,
    "rsa_signature_2048_sha512_test.json",
    Algorithm::Rs512
);
wycheproof!(
    rsa_pss_2048_sha256_mgf1_32,
    "rsa_pss_2048_sha256_mgf1_32_test.json",
    Algorithm::Ps256
);
wycheproof!(
    ecdsa_p256_sha256_p1363,
    "ecdsa_secp256r1_sha256_p1363_test.json",
    Algorithm::Es256
);
wycheproof!(
    ecdsa_p384_sha384_p1363,
    "ecdsa_secp384r1_sha384_p1363_test.json",
    Algorithm::Es384
);
wycheproof!(ed25519, "ed25519_test.json", Algorithm::EdDsa);

/// The RSA algorithms refuse each other's signatures: every valid RS256 signature fails as
/// PS256 and RS384, every valid PS256 one as RS256.
#[test]
fn rsa_padding_and_hash_are_not_interchangeable() {
    let cases = [
        (
            include_str!("../testdata/wycheproof/rsa_signature_2048_sha256_test.json"),
            [Algorithm::Ps256, Algorithm::Rs384, Algorithm::Rs512],
        ),
        (
            include_str!("../testdata/wycheproof/rsa_pss_2048_sha256_mgf1_32_test.json"),
            [Algorithm::Rs256, Algorithm::Ps384, Algorithm::Ps512],
        ),
    ];
    let mut checked = 0;
    for (text, others) in cases {
        let file: File = serde_json::from_str(text).unwrap();
        for group in &file.test_groups {
            let jwk = group
                .key_jwk
                .as_ref()
                .or(group.public_key_jwk.as_ref())
                .unwrap();
            let jwk = JsonWebKey::deserialize(jwk).unwrap();
            let key = VerifyingKey::from_jwk(&jwk, others[0].family()).unwrap();
            for case in group.tests.iter().filter(|case| case.result == "valid") {
                for alg in others {
                    assert!(!key.verify(alg, &hex(&case.msg), &hex(&case.sig)));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

//! The JWKS parser on arbitrary documents, under an arbitrary algorithm allowlist, then key
//! selection and verification with whatever keys it kept.
//!
//! Input: one byte choosing the allowlist (bit set = algorithm refused), one byte choosing
//! the lookup probe, then the document (seeds: the test keys' sets, with the weak, private
//! and encryption keys an IdP may publish).
//!
//! Invariants: no panic; an accepted set is non-empty, holds at most `MAX_KEYS` keys with
//! distinct `kid`s, each allowed only algorithms of the allowlist; a lookup finds only keys
//! that may verify the algorithm; verifying arbitrary bytes never panics; and each kept key
//! judges the fixtures' signatures (and a changed one) as the reference implementations do
//! with the document's JWK.

use serde_json::Value;
use tokengate::algorithm::{Algorithm, AlgorithmSet};
use tokengate::jwks::{KeyLookup, KeySet, MAX_KEYS};

use crate::input::Choices;
use crate::keys::{FIXTURE_MESSAGE, Key, fixture_signature, reference_verify_jwk};

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut c = Choices::new(data);
    let refused = c.byte();
    let probe = c.byte();
    let document = c.rest();
    let mut allowed = AlgorithmSet::EMPTY;
    for (bit, alg) in Algorithm::ALL.into_iter().enumerate() {
        if refused & (1 << (bit % 8)) == 0 {
            allowed.insert(alg);
        }
    }
    let Ok((set, _skipped)) = KeySet::parse(&document, allowed) else {
        return;
    };
    assert!(!set.is_empty() && set.len() <= MAX_KEYS);
    let mut kids: Vec<&str> = Vec::new();
    for entry in set.entries() {
        for alg in Algorithm::ALL {
            if entry.algorithms.contains(alg) {
                assert!(allowed.contains(alg), "{alg} kept but not allowed");
            }
        }
        if let Some(kid) = entry.kid.as_deref() {
            assert!(!kids.contains(&kid), "duplicate kid {kid:?} kept");
            kids.push(kid);
        }
    }
    let alg = Algorithm::ALL[usize::from(probe) % Algorithm::ALL.len()];
    let kid = match probe / 16 % 3 {
        0 => None,
        1 => set.entries().first().and_then(|entry| entry.kid.as_deref()),
        _ => Some("no-such-kid"),
    };
    let message = FIXTURE_MESSAGE;
    if let KeyLookup::Found(entry) = set.lookup(kid, alg) {
        assert!(
            entry.algorithms.contains(alg),
            "lookup found a key that may not verify {alg}"
        );
        let tail = &document[document.len().saturating_sub(512)..];
        for signature in [&[][..], &[0u8; 64][..], &[0xffu8; 256][..], tail] {
            let _ = entry.key.verify(alg, message, signature);
        }
    }

    // The differential: each kept key against the reference on the document's own JWK.
    let Ok(parsed) = serde_json::from_slice::<Value>(&document) else {
        return;
    };
    let Some(jwks) = parsed.get("keys").and_then(Value::as_array) else {
        return;
    };
    for entry in set.entries() {
        // The document's JWK for this entry: the only one with its kid (when several share a
        // kid, as RFC 7517 §4.5 permits for keys of different types, which one a set keeps is
        // not this check's concern).
        let jwk = match entry.kid.as_deref() {
            Some(kid) => {
                let mut same = jwks
                    .iter()
                    .filter(|jwk| jwk.get("kid").and_then(Value::as_str) == Some(kid));
                match (same.next(), same.next()) {
                    (Some(jwk), None) => Some(jwk),
                    _ => None,
                }
            }
            None if jwks.len() == 1 => jwks.first(),
            None => None,
        };
        let Some(jwk) = jwk else { continue };
        for key in Key::ALL {
            for &alg in key.algorithms() {
                if !entry.algorithms.contains(alg) {
                    continue;
                }
                let mut signature = fixture_signature(key, alg);
                for _ in 0..2 {
                    let ours = entry.key.verify(alg, message, &signature);
                    if let Some(reference) = reference_verify_jwk(jwk, alg, message, &signature) {
                        assert_eq!(
                            ours, reference,
                            "{alg} with {key:?}'s signature: tokengate says {ours}, the reference {reference} (key {jwk})"
                        );
                    } else {
                        assert!(
                            !ours,
                            "{alg}: verified under a key the reference cannot use: {jwk}"
                        );
                    }
                    if let Some(last) = signature.last_mut() {
                        *last ^= 1;
                    }
                }
            }
        }
    }
}

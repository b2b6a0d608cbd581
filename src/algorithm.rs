//! The signature algorithms tokengate accepts, as a closed set.
//!
//! The algorithm used to verify a token is always one of these variants, chosen from the
//! configured allowlist and the key's own `alg`; the token header's `alg` string only selects
//! among them and is never handed to a crypto library as a name (jwt-compact would build RS or
//! PS from any name, which re-opens algorithm swapping).

use std::fmt;

/// A JWS signature algorithm (RFC 7518 §3, RFC 8037 for EdDSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256 (MGF1 SHA-256, salt of the hash's length).
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519 (the only EdDSA curve accepted).
    EdDsa,
}

/// Key families: a key of one family can only verify algorithms of that family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// RSA keys (`kty: RSA`).
    Rsa,
    /// EC keys on P-256.
    P256,
    /// EC keys on P-384.
    P384,
    /// OKP keys on Ed25519.
    Ed25519,
}

impl Algorithm {
    /// Every algorithm, in discriminant order.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
    ];

    /// The JWS name (RFC 7518), compared exactly: `rs256` is not `RS256`.
    pub fn from_jws_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.jws_name() == name)
    }

    /// The JWS `alg` name.
    pub fn jws_name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// The family of keys that can verify it.
    pub fn family(self) -> KeyFamily {
        match self {
            Algorithm::Rs256
            | Algorithm::Rs384
            | Algorithm::Rs512
            | Algorithm::Ps256
            | Algorithm::Ps384
            | Algorithm::Ps512 => KeyFamily::Rsa,
            Algorithm::Es256 => KeyFamily::P256,
            Algorithm::Es384 => KeyFamily::P384,
            Algorithm::EdDsa => KeyFamily::Ed25519,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jws_name())
    }
}

/// A small set of algorithms (a bit set: checked on every uncached request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// No algorithm.
    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);

    /// Adds `alg`.
    pub fn insert(&mut self, alg: Algorithm) {
        self.0 |= alg.bit();
    }

    /// Whether `alg` is in the set.
    pub fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in both sets.
    pub fn intersection(self, other: AlgorithmSet) -> AlgorithmSet {
        AlgorithmSet(self.0 & other.0)
    }

    /// The algorithms in the set, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |alg| self.contains(*alg))
    }

    /// The allowed algorithms a key of `family` could verify.
    pub fn for_family(self, family: KeyFamily) -> AlgorithmSet {
        self.iter().filter(|alg| alg.family() == family).collect()
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        let mut set = AlgorithmSet::EMPTY;
        for alg in iter {
            set.insert(alg);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_jws_name(alg.jws_name()), Some(alg));
        }
        for name in [
            "rs256", "none", "None", "NONE", "HS256", "es384", "ES512", "", "RS256 ",
        ] {
            assert_eq!(Algorithm::from_jws_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn set_operations() {
        let set: AlgorithmSet = [Algorithm::Rs256, Algorithm::Es256, Algorithm::Ps256]
            .into_iter()
            .collect();
        assert!(set.contains(Algorithm::Rs256));
        assert!(!set.contains(Algorithm::Rs384));
        let rsa: Vec<_> = set.for_family(KeyFamily::Rsa).iter().collect();
        assert_eq!(rsa, vec![Algorithm::Rs256, Algorithm::Ps256]);
        assert!(set.for_family(KeyFamily::Ed25519).is_empty());
    }
}

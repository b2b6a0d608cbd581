//! Building tokens for the differential test: signing arbitrary header and payload bytes,
//! base64url by hand, and the signature tweaks (DER, high-S, non-canonical S) the generators
//! apply.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokengate::algorithm::Algorithm;
use tokengate::testkit::TestKey;

use super::stack::AUDIENCE;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// The private key behind each `kid` of the published set.
pub fn key_for(kid: &str) -> &'static TestKey {
    match kid {
        "k3" => TestKey::rsa_3072(),
        "ec1" => TestKey::p256(),
        "ed1" => TestKey::ed25519(),
        "weak" => TestKey::rsa_weak(),
        "enc-key" | "other" => TestKey::rsa_b(),
        _ => TestKey::rsa_a(),
    }
}

/// The `kid` whose key suits `alg` (k1 only carries RS256, so other RSA algorithms use k3).
pub fn kid_for(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Rs256 => "k1",
        Algorithm::Es256 | Algorithm::Es384 => "ec1",
        Algorithm::EdDsa => "ed1",
        _ => "k3",
    }
}

/// Header and claims of a token both filters should admit.
#[derive(Debug, Clone)]
pub struct Draft {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
}

impl Draft {
    pub fn new(alg: Algorithm, issuer: &str, now: i64, jti: &str) -> Draft {
        let header = json!({"alg": alg.jws_name(), "typ": "JWT", "kid": kid_for(alg)});
        let claims = json!({
            "iss": issuer,
            "aud": AUDIENCE,
            "sub": "f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c",
            "azp": "tokengate-loadtest",
            // Keycloak's access-token marker, which tokengate requires by default.
            "typ": "Bearer",
            "scope": "openid profile",
            "iat": now,
            "exp": now + 600,
            "jti": jti,
        });
        Draft {
            header: header.as_object().cloned().unwrap_or_default(),
            claims: claims.as_object().cloned().unwrap_or_default(),
        }
    }

    pub fn header(mut self, name: &str, value: Option<Value>) -> Draft {
        match value {
            Some(value) => self.header.insert(name.to_owned(), value),
            None => self.header.remove(name),
        };
        self
    }

    pub fn claim(mut self, name: &str, value: Option<Value>) -> Draft {
        match value {
            Some(value) => self.claims.insert(name.to_owned(), value),
            None => self.claims.remove(name),
        };
        self
    }

    pub fn header_bytes(&self) -> Vec<u8> {
        Value::Object(self.header.clone()).to_string().into_bytes()
    }

    pub fn claims_bytes(&self) -> Vec<u8> {
        Value::Object(self.claims.clone()).to_string().into_bytes()
    }

    /// Signed with the key of its `kid` (RSA 2048 when it has none) under `alg`.
    pub fn sign_as(&self, alg: Algorithm, kid: &str) -> String {
        sign_parts(
            &self.header_bytes(),
            &self.claims_bytes(),
            key_for(kid),
            alg,
        )
    }

    /// Signed as its header says (its `alg` and `kid`), or RS256 with k1 when the header does
    /// not name a usable pair.
    pub fn sign(&self) -> String {
        let alg = self
            .header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_jws_name)
            .unwrap_or(Algorithm::Rs256);
        // No P-384 key: an ES384 header gets an ES256 signature.
        let alg = if alg == Algorithm::Es384 {
            Algorithm::Es256
        } else {
            alg
        };
        let kid = self.header.get("kid").and_then(Value::as_str).unwrap_or("");
        let kid = if kid_suits(kid, alg) {
            kid
        } else {
            kid_for(alg)
        };
        self.sign_as(alg, kid)
    }
}

/// Whether the key behind `kid` can sign `alg`.
fn kid_suits(kid: &str, alg: Algorithm) -> bool {
    match alg {
        Algorithm::Es256 => kid == "ec1",
        Algorithm::EdDsa => kid == "ed1",
        Algorithm::Es384 => false,
        // PSS with SHA-512 does not fit in 1024 bits: the weak key signs RS256 only.
        Algorithm::Rs256 => matches!(kid, "k1" | "k3" | "weak" | "enc-key" | "other"),
        _ => matches!(kid, "k1" | "k3" | "enc-key" | "other"),
    }
}

/// `b64(header).b64(payload).b64(signature)` over arbitrary bytes.
pub fn sign_parts(header: &[u8], payload: &[u8], key: &TestKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = key.sign(alg, input.as_bytes());
    format!("{input}.{}", b64(signature))
}

/// HS256 over the token's first two segments with `secret` (the key-confusion attack: the
/// published RSA key used as an HMAC secret).
pub fn hs256(header: &[u8], payload: &[u8], secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let mut key = [0u8; 64];
    if secret.len() > 64 {
        key[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let pad = |byte: u8| key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(input.as_bytes())
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    format!("{input}.{}", b64(outer))
}

/// The token's segments, its signature decoded.
fn split(token: &str) -> Option<(&str, Vec<u8>)> {
    let (signed, signature) = token.rsplit_once('.')?;
    Some((signed, unb64(signature)?))
}

fn with_signature(token: &str, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) -> String {
    match split(token) {
        Some((signed, signature)) => format!("{signed}.{}", b64(edit(signature))),
        None => token.to_owned(),
    }
}

/// The order of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The order of the Ed25519 group, little-endian.
const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// ES256 `(r, s)` → `(r, n − s)`: the other valid signature of the same message (ECDSA
/// malleability).
pub fn es256_high_s(token: &str) -> String {
    with_signature(token, |mut signature| {
        if signature.len() == 64 {
            let mut borrow = 0i16;
            for i in (0..32).rev() {
                let d = i16::from(P256_N[i]) - i16::from(signature[32 + i]) - borrow;
                borrow = i16::from(d < 0);
                signature[32 + i] = (d + 256 * borrow) as u8;
            }
        }
        signature
    })
}

/// ES256 with its `(r, s)` in DER (as OpenSSL produces it) rather than JOSE's fixed width.
pub fn es256_der(token: &str) -> String {
    with_signature(token, |signature| {
        if signature.len() != 64 {
            return signature;
        }
        let integer = |half: &[u8]| {
            let trimmed: Vec<u8> = half.iter().copied().skip_while(|b| *b == 0).collect();
            let mut body = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
                vec![0]
            } else {
                Vec::new()
            };
            body.extend(trimmed);
            let mut out = vec![0x02, body.len() as u8];
            out.extend(body);
            out
        };
        let mut inner = integer(&signature[..32]);
        inner.extend(integer(&signature[32..]));
        let mut der = vec![0x30, inner.len() as u8];
        der.extend(inner);
        der
    })
}

/// EdDSA with `S + L` for `S`: the same point equation, a non-canonical scalar (RFC 8032
/// requires `S < L`).
pub fn ed25519_s_plus_l(token: &str) -> String {
    with_signature(token, |mut signature| {
        if signature.len() == 64 {
            let mut carry = 0u16;
            for (i, l) in ED25519_L.iter().enumerate() {
                let sum = u16::from(signature[32 + i]) + u16::from(*l) + carry;
                signature[32 + i] = sum as u8;
                carry = sum >> 8;
            }
        }
        signature
    })
}

/// ES256 `(r, s)` → `(s, r)`.
pub fn es256_swapped(token: &str) -> String {
    with_signature(token, |signature| {
        if signature.len() != 64 {
            return signature;
        }
        let mut out = signature[32..].to_vec();
        out.extend_from_slice(&signature[..32]);
        out
    })
}

/// The signature with a zero byte in front (an RSA signature one byte longer than the
/// modulus).
pub fn leading_zero(token: &str) -> String {
    with_signature(token, |signature| {
        let mut out = vec![0];
        out.extend(signature);
        out
    })
}

/// The signature one byte short.
pub fn truncated_signature(token: &str) -> String {
    with_signature(token, |mut signature| {
        signature.pop();
        signature
    })
}

/// Every segment's base64url turned into standard base64 (`+/`), unpadded.
pub fn standard_alphabet(token: &str) -> String {
    token.replace('-', "+").replace('_', "/")
}

/// Segment `index` with the `=` padding standard base64 would give it.
pub fn padded(token: &str, index: usize) -> String {
    map_segment(token, index, |segment| {
        let pad = (4 - segment.len() % 4) % 4;
        format!("{segment}{}", "=".repeat(pad))
    })
}

/// Segment `index` with its last character changed in the bits base64url leaves unused, so it
/// decodes (leniently) to the same bytes; unchanged when the segment has no unused bits.
pub fn non_canonical_tail(token: &str, index: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    map_segment(token, index, |segment| {
        if segment.len() % 4 == 0 || segment.is_empty() {
            return segment.to_owned();
        }
        let mut bytes = segment.as_bytes().to_vec();
        let last = bytes.len() - 1;
        if let Some(position) = ALPHABET.iter().position(|c| *c == bytes[last]) {
            bytes[last] = ALPHABET[position ^ 1];
        }
        String::from_utf8(bytes).unwrap_or_else(|_| segment.to_owned())
    })
}

pub fn map_segment(token: &str, index: usize, edit: impl FnOnce(&str) -> String) -> String {
    let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
    if let Some(segment) = segments.get_mut(index) {
        *segment = edit(segment);
    }
    segments.join(".")
}

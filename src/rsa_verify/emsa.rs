//! Encoded messages (RFC 8017 §9): the expected EMSA-PKCS1-v1_5 encoding, and the
//! EMSA-PSS consistency check with MGF1.

use sha2::{Sha256, Sha384, Sha512};

use super::HashAlg;

/// Longest encoded message: a 4096-bit modulus.
pub(super) const MAX_EM: usize = 512;

/// DigestInfo DER prefixes, RFC 8017 §9.2 note 1: SEQUENCE { SEQUENCE { OID, NULL },
/// OCTET STRING (the digest follows) }.
const SHA256_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
const SHA384_PREFIX: [u8; 19] = [
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0x04, 0x30,
];
const SHA512_PREFIX: [u8; 19] = [
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

/// A digest of one of the three hashes (its first `len` bytes are used).
pub(super) struct DigestBuf {
    bytes: [u8; 64],
    len: usize,
}

impl DigestBuf {
    pub(super) fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

/// Hash of the concatenation of `parts`.
pub(super) fn hash(alg: HashAlg, parts: &[&[u8]]) -> DigestBuf {
    fn run<D: sha2::digest::Digest>(parts: &[&[u8]]) -> DigestBuf {
        let mut hasher = D::new();
        for part in parts {
            hasher.update(part);
        }
        let digest = hasher.finalize();
        let mut buf = DigestBuf {
            bytes: [0; 64],
            len: digest.len(),
        };
        for (dst, src) in buf.bytes.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
        buf
    }
    match alg {
        HashAlg::Sha256 => run::<Sha256>(parts),
        HashAlg::Sha384 => run::<Sha384>(parts),
        HashAlg::Sha512 => run::<Sha512>(parts),
    }
}

/// Whether `em` (the k-byte value sᵉ mod n) equals EMSA-PKCS1-v1_5(digest):
/// `00 01 FF…FF 00 DigestInfo(digest)`, built here and compared byte for byte — the
/// signature's padding is never parsed.
pub(super) fn pkcs1v15_matches(em: &[u8], alg: HashAlg, digest: &[u8]) -> bool {
    let prefix: &[u8] = match alg {
        HashAlg::Sha256 => &SHA256_PREFIX,
        HashAlg::Sha384 => &SHA384_PREFIX,
        HashAlg::Sha512 => &SHA512_PREFIX,
    };
    let k = em.len();
    let t_len = prefix.len() + digest.len();
    // RFC 8017 §9.2 step 3: at least 8 bytes of FF.
    if digest.len() != alg.output_len() || k > MAX_EM || k < t_len + 11 {
        return false;
    }
    let mut expected = [0u8; MAX_EM];
    let Some(expected) = expected.get_mut(..k) else {
        return false;
    };
    let (head, t) = expected.split_at_mut(k - t_len);
    head.fill(0xff);
    if let [first, second, .., separator] = head {
        *first = 0x00;
        *second = 0x01;
        *separator = 0x00;
    }
    let (t_prefix, t_digest) = t.split_at_mut(prefix.len());
    t_prefix.copy_from_slice(prefix);
    t_digest.copy_from_slice(digest);
    em == expected
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 over the same hash. `m` is the k-byte
/// value sᵉ mod n of a modulus of `mod_bits` bits; emBits = mod_bits − 1.
pub(super) fn pss_matches(
    m: &[u8],
    mod_bits: usize,
    alg: HashAlg,
    digest: &[u8],
    salt_len: usize,
) -> bool {
    let h_len = alg.output_len();
    if digest.len() != h_len {
        return false;
    }
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    // §8.1.2 step 2c: I2OSP(m, emLen); when emLen = k - 1 the top byte must be zero.
    let em = match m.len().checked_sub(em_len) {
        Some(0) => m,
        Some(1) => match m.split_first() {
            Some((0, rest)) => rest,
            _ => return false,
        },
        _ => return false,
    };
    // Steps 3–5.
    if em_len < h_len + salt_len + 2 || em_len > MAX_EM || em.last() != Some(&0xbc) {
        return false;
    }
    let db_len = em_len - h_len - 1;
    let (masked_db, rest) = em.split_at(db_len);
    let Some(h) = rest.get(..h_len) else {
        return false;
    };
    // Step 6: the bits above emBits must be zero.
    let top_mask = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db.first().is_some_and(|&b| b & !top_mask != 0) {
        return false;
    }
    // Steps 7–9: DB = maskedDB ⊕ MGF1(H, dbLen), top bits cleared.
    let mut db_buf = [0u8; MAX_EM];
    let Some(db) = db_buf.get_mut(..db_len) else {
        return false;
    };
    db.copy_from_slice(masked_db);
    for (counter, chunk) in (0u32..).zip(db.chunks_mut(h_len)) {
        let mask = hash(alg, &[h, &counter.to_be_bytes()]);
        for (byte, m) in chunk.iter_mut().zip(mask.as_slice()) {
            *byte ^= m;
        }
    }
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // Step 10: PS zeros, then 0x01, then the salt.
    let (ps, rest) = db.split_at(db_len - salt_len - 1);
    let Some((&0x01, salt)) = rest.split_first() else {
        return false;
    };
    if ps.iter().any(|&b| b != 0) {
        return false;
    }
    // Steps 12–14.
    hash(alg, &[&[0u8; 8], digest, salt]).as_slice() == h
}

//! Strict base64url decoding (RFC 4648 §5 without padding, canonical only) for token segments.
//!
//! Why not base64ct, which jwt-compact decodes with: base64ct is constant-time, written for
//! secret keys, and pays for it in arithmetic on every character. A token's segments are not
//! secret from the party that sent them, and in V8 base64ct took 1.7 µs for a Keycloak-sized
//! payload (about 600 characters), most of the cost of parsing a token before its signature;
//! a table lookup takes a fraction of that (`benches/engine.rs`: "base64url decode of the
//! payload" against "base64ct decode of the payload"). What it accepts is exactly what
//! base64ct's `Base64UrlUnpadded` accepts (the tests compare them): no `=`, no length of the
//! form 4k+1, no set bits after the last whole byte.

/// Marks a byte outside the alphabet (any value with a bit above the sixth is invalid).
const INVALID: u8 = 0xff;

static DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Why a segment is not canonical unpadded base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidBase64;

/// The bytes `text` encodes.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, InvalidBase64> {
    let (quads, tail) = text.as_chunks::<4>();
    let tail_bytes = match tail.len() {
        0 => 0,
        2 => 1,
        3 => 2,
        _ => return Err(InvalidBase64),
    };
    let mut out = vec![0u8; quads.len() * 3 + tail_bytes];
    let (triples, out_tail) = out.as_chunks_mut::<3>();
    let mut invalid = 0u8;
    for (quad, triple) in quads.iter().zip(triples.iter_mut()) {
        let [a, b, c, d] = quad.map(|ch| DECODE[usize::from(ch)]);
        invalid |= a | b | c | d;
        let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        let [_, x, y, z] = n.to_be_bytes();
        *triple = [x, y, z];
    }
    let values = tail.iter().map(|ch| DECODE[usize::from(*ch)]);
    let mut n = 0u32;
    for value in values {
        invalid |= value;
        n = n << 6 | u32::from(value & 0x3f);
    }
    // Canonical: the bits after the last whole byte are zero.
    let unused_bits = match tail.len() {
        2 => n & 0x0f,
        3 => n & 0x03,
        _ => 0,
    };
    match out_tail {
        [x] => *x = (n >> 4) as u8,
        [x, y] => {
            let [_, _, hi, lo] = (n >> 2).to_be_bytes();
            *x = hi;
            *y = lo;
        }
        _ => {}
    }
    if invalid & 0xc0 != 0 || unused_bits != 0 {
        return Err(InvalidBase64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64ct::{Base64UrlUnpadded, Encoding};

    /// Every input base64ct accepts, this accepts with the same bytes, and the other way round:
    /// every length up to 12 over an alphabet with the edge characters, plus random inputs.
    #[test]
    fn same_as_base64ct() {
        let chars = b"AQgw_-9zE=+/.\x80 ";
        let mut cases: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=5 {
            let mut index = vec![0usize; len];
            loop {
                cases.push(index.iter().map(|i| chars[*i]).collect());
                let Some(at) = index.iter().rposition(|i| *i + 1 < chars.len()) else {
                    break;
                };
                index[at] += 1;
                index[at + 1..].fill(0);
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let mut case: Vec<u8> = (0..len).map(|_| alphabet[(next() % 64) as usize]).collect();
            if len > 0 && next() % 4 == 0 {
                let at = (next() as usize) % len;
                case[at] = (next() % 256) as u8;
            }
            cases.push(case);
        }
        for case in cases {
            let reference = std::str::from_utf8(&case)
                .ok()
                .and_then(|text| Base64UrlUnpadded::decode_vec(text).ok());
            assert_eq!(decode(&case).ok(), reference, "{case:?}");
        }
    }

    #[test]
    fn round_trips() {
        for len in 0..70 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = Base64UrlUnpadded::encode_string(&bytes);
            assert_eq!(decode(text.as_bytes()), Ok(bytes));
        }
        assert_eq!(
            decode(b"AB"),
            Err(InvalidBase64),
            "set bits after the last byte"
        );
        assert_eq!(decode(b"AA=="), Err(InvalidBase64), "padding");
        assert_eq!(decode(b"AAAAA"), Err(InvalidBase64), "4k+1 characters");
    }
}

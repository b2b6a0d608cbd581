//! Seeded random cases: valid tokens with their bytes mutated, and tokens re-signed after
//! random claims or header parameters were given values from a palette of edge cases. A case
//! depends only on the seed and its index, so a failure names a case that can be made again.

use serde_json::{Value, json};
use tokengate::algorithm::Algorithm;

use super::cases::{Template, VALID, bearer};
use super::mint::Draft;
use super::stack::AUDIENCE;

/// SplitMix64: small, seedable, good enough to pick test cases.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The random case number `index` of `seed`.
pub fn template(seed: u64, index: usize) -> Template {
    let case_seed = seed ^ (index as u64).wrapping_mul(0xd6e8_feb8_6659_fd93);
    let kind = Rng::new(case_seed).below(3);
    let (category, label) = match kind {
        0 => ("mutated bytes", format!("seed {seed} case {index}: bytes")),
        1 => ("random claims", format!("seed {seed} case {index}: claims")),
        _ => ("random header", format!("seed {seed} case {index}: header")),
    };
    Template {
        category,
        label: label.clone(),
        make: Box::new(move |iss, now| {
            let mut rng = Rng::new(case_seed);
            rng.next_u64();
            // Mostly the cheap keys to sign with (RSA 3072 costs milliseconds a token).
            let (alg, kid) = match rng.below(4) {
                0 => *rng.pick(&VALID),
                1 => (Algorithm::Rs256, "k1"),
                2 => (Algorithm::Es256, "ec1"),
                _ => (Algorithm::EdDsa, "ed1"),
            };
            let draft = Draft::new(alg, iss, now, &label).header("kid", Some(kid.into()));
            match kind {
                0 => bearer(&mutate_bytes(&mut rng, &draft.sign_as(alg, kid))),
                1 => bearer(&random_claims(&mut rng, draft, iss, now).sign_as(alg, kid)),
                _ => {
                    let draft = random_header(&mut rng, draft);
                    // Signed as the header now says where a key suits it, else as before.
                    let named = draft
                        .header
                        .get("alg")
                        .and_then(Value::as_str)
                        .and_then(Algorithm::from_jws_name);
                    match named {
                        Some(_) if rng.below(2) == 0 => bearer(&draft.sign()),
                        _ => bearer(&draft.sign_as(alg, kid)),
                    }
                }
            }
        }),
    }
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Characters a mutation may bring in: base64url, its standard cousins, the separator and
/// whitespace allowed in a header value.
const EXTRA: &[u8] = b"+/=. \t!~";

fn mutate_bytes(rng: &mut Rng, token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        let any = |rng: &mut Rng| {
            if rng.below(4) == 0 {
                *rng.pick(EXTRA)
            } else {
                *rng.pick(B64URL)
            }
        };
        match rng.below(7) {
            0 => bytes[at] = any(rng),
            1 => bytes.insert(at, any(rng)),
            2 => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            // Flip the bit of the last character of the signature that decoding may ignore.
            4 => {
                if let Some(last) = bytes.last_mut()
                    && let Some(i) = B64URL.iter().position(|c| c == last)
                {
                    *last = B64URL[i ^ (1 << rng.below(2))];
                }
            }
            5 => bytes[at] = bytes[at].to_ascii_uppercase(),
            _ => {
                // A segment swapped with another.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut segments: Vec<&str> = text.split('.').collect();
                let (a, b) = (rng.below(segments.len()), rng.below(segments.len()));
                segments.swap(a, b);
                bytes = segments.join(".").into_bytes();
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Values that sit at an edge for some claim or parameter.
fn palette(rng: &mut Rng, iss: &str, now: i64) -> Option<Value> {
    let values = [
        Value::Null,
        json!(0),
        json!(-1),
        json!(""),
        json!("x"),
        json!([]),
        json!({}),
        json!(true),
        json!(1e20),
        json!(now),
        json!(now - 3600),
        json!(now + 3600),
        json!(now as f64 + 0.5),
        json!(now.to_string()),
        json!(iss),
        json!(AUDIENCE),
        json!([AUDIENCE]),
        json!([iss]),
        json!(["RS256"]),
        json!("none"),
        json!("k1"),
        json!("JWT"),
    ];
    if rng.below(8) == 0 {
        None
    } else {
        Some(rng.pick(&values).clone())
    }
}

fn random_claims(rng: &mut Rng, mut draft: Draft, iss: &str, now: i64) -> Draft {
    const NAMES: [&str; 10] = [
        "iss", "aud", "exp", "nbf", "iat", "sub", "jti", "azp", "scope", "typ",
    ];
    for _ in 0..=rng.below(2) {
        let name = *rng.pick(&NAMES);
        let value = palette(rng, iss, now);
        draft = draft.claim(name, value);
    }
    draft
}

fn random_header(rng: &mut Rng, mut draft: Draft) -> Draft {
    const NAMES: [&str; 9] = [
        "alg", "kid", "typ", "cty", "crit", "jku", "x5u", "b64", "x-other",
    ];
    let algs = ["RS256", "PS256", "ES256", "EdDSA", "HS256", "none", "RS1"];
    let kids = ["k1", "k3", "ec1", "ed1", "weak", "enc-key", "nobody"];
    for _ in 0..=rng.below(2) {
        let name = *rng.pick(&NAMES);
        let value = match (name, rng.below(3)) {
            ("alg", 0 | 1) => Some(json!(rng.pick(&algs))),
            ("kid", 0 | 1) => Some(json!(rng.pick(&kids))),
            _ => palette(rng, "http://x", 0),
        };
        draft = draft.header(name, value);
    }
    draft
}

//! Revocation pushed by the IdP: OpenID Connect Back-Channel Logout 1.0.
//!
//! When a session ends at the IdP, it POSTs a signed logout token to a URL registered for the
//! client. A provider with `backchannel_logout` receives it on its path ([`logout_token`]
//! validates it), appends the ended session to a log in shared data that every worker reads
//! ([`set`]), and from then on every worker refuses that session's tokens — on a cache hit as
//! on a first sighting, in every mode — for as long as a token of it can live. Replays of a
//! logout token are refused through a shared record of the `jti`s seen ([`SeenIds`]).

pub mod logout_token;
pub mod set;

pub use logout_token::{LogoutError, LogoutEvent};
pub use set::Revoked;

/// `jti`s remembered at most per bucket (the oldest is forgotten first: a replay of a
/// forgotten one only records the same logout again, which ends nothing new).
pub const MAX_SEEN_IDS: usize = 256;

/// The seen `jti`s are spread over this many shared records, so one logout rewrites a
/// sixteenth of them: a flood of logouts costs each one a bounded, small write.
pub const SEEN_BUCKETS: u32 = 16;

/// The bucket of a `jti`: the same in every worker (FNV-1a, not a per-process random hash).
pub fn seen_bucket(jti: &str) -> u32 {
    let hash = jti.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    hash % SEEN_BUCKETS
}

/// The value of the single `logout_token` parameter of an
/// `application/x-www-form-urlencoded` body.
pub fn logout_token_of(body: &[u8]) -> Result<String, LogoutError> {
    let body = std::str::from_utf8(body).map_err(|_| LogoutError::MissingToken)?;
    let mut found = None;
    for pair in body.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(name).as_deref() != Some("logout_token") {
            continue;
        }
        if found.is_some() {
            return Err(LogoutError::MissingToken);
        }
        found = Some(percent_decode(value).ok_or(LogoutError::MissingToken)?);
    }
    found
        .filter(|token| !token.is_empty())
        .ok_or(LogoutError::MissingToken)
}

/// Form decoding: `+` is a space, `%XX` a byte; `None` for a bad escape or non-UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits exactly: `from_str_radix` alone would take a sign (`%+4`).
                let hex = bytes.get(at + 1..at + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                at += 2;
            }
            other => out.push(other),
        }
        at += 1;
    }
    String::from_utf8(out).ok()
}

/// Logout token ids seen, each with when it may be forgotten (its token is too old to be
/// accepted again by then).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenIds(Vec<(i64, String)>);

impl SeenIds {
    /// Records `jti` unless it is there and not yet forgettable: returns false for a replay.
    pub fn insert(&mut self, jti: &str, forget_at: i64, now: i64) -> bool {
        self.0.retain(|(until, _)| *until > now);
        if self.0.iter().any(|(_, seen)| seen == jti) {
            return false;
        }
        if self.0.len() >= MAX_SEEN_IDS {
            self.0.remove(0);
        }
        self.0.push((forget_at, jti.to_owned()));
        true
    }

    /// Count (u32), then per id: forget time (i64), length (u16), bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.0.len() * 48);
        out.extend_from_slice(&u32::try_from(self.0.len()).unwrap_or(0).to_le_bytes());
        for (until, jti) in &self.0 {
            out.extend_from_slice(&until.to_le_bytes());
            out.extend_from_slice(&u16::try_from(jti.len()).unwrap_or(0).to_le_bytes());
            out.extend_from_slice(jti.as_bytes());
        }
        out
    }

    /// `None` for anything that is not a record of this layout.
    pub fn decode(bytes: &[u8]) -> Option<SeenIds> {
        let (count, mut rest) = bytes.split_at_checked(4)?;
        let count = u32::from_le_bytes(count.try_into().ok()?);
        let mut ids = Vec::new();
        for _ in 0..count.min(u32::try_from(MAX_SEEN_IDS).unwrap_or(0)) {
            let (until, after) = rest.split_at_checked(8)?;
            let (len, after) = after.split_at_checked(2)?;
            let len = usize::from(u16::from_le_bytes(len.try_into().ok()?));
            let (jti, after) = after.split_at_checked(len)?;
            ids.push((
                i64::from_le_bytes(until.try_into().ok()?),
                String::from_utf8(jti.to_vec()).ok()?,
            ));
            rest = after;
        }
        Some(SeenIds(ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_holds_one_logout_token() {
        assert_eq!(
            logout_token_of(b"logout_token=a.b.c").as_deref(),
            Ok("a.b.c")
        );
        assert_eq!(
            logout_token_of(b"x=1&logout_token=a%2Eb+c&y").as_deref(),
            Ok("a.b c")
        );
        for bad in [
            &b""[..],
            b"logout_token=",
            b"token=a.b.c",
            b"logout_token=a&logout_token=b",
            b"logout_token=%zz",
            b"logout_token=%e9",
            // Found by fuzzing: a sign is no hex digit.
            b"logout_token=a%+41",
            b"\xff",
        ] {
            assert_eq!(
                logout_token_of(bad),
                Err(LogoutError::MissingToken),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn seen_ids_refuse_replays_and_stay_bounded() {
        let mut seen = SeenIds::default();
        assert!(seen.insert("a", 100, 0));
        assert!(!seen.insert("a", 100, 50), "a replay");
        assert!(seen.insert("a", 200, 100), "forgettable by then");
        for i in 0..MAX_SEEN_IDS + 10 {
            seen.insert(&format!("j{i}"), 1000, 150);
        }
        assert_eq!(seen.0.len(), MAX_SEEN_IDS);
        assert_eq!(SeenIds::decode(&seen.encode()), Some(seen));
        assert_eq!(SeenIds::decode(b"\x01\x00\x00\x00"), None);
        let mut counts = [0; SEEN_BUCKETS as usize];
        for i in 0..1600 {
            counts[seen_bucket(&format!("{i:08x}-jti")) as usize] += 1;
        }
        assert!(
            counts.iter().all(|n| (50..150).contains(n)),
            "spread: {counts:?}"
        );
    }
}

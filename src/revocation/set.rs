//! Ended sessions: the shared log every worker reads, and each worker's own index of it.
//!
//! # The shared log
//!
//! Proxy-wasm shared data (one store per host process, shared by every worker) holds, per
//! provider, a small **head** record — the sequence number of the next entry and a fail-closed
//! marker — and the entries in **chunks** of [`CHUNK`], a ring of as many chunks as the
//! configured maximum needs. A logout appends one entry: write it into its chunk with
//! compare-and-swap, then move the head on, also with compare-and-swap. A worker keeps the
//! sequence number it has read up to; on each request it reads the head (a few bytes) and,
//! only when it moved, the chunks with the new entries. So the per-request cost of a
//! revocation set of any size is one small host read and, on a cache hit, a hash lookup.
//!
//! # Bounds
//!
//! Entries expire `revoke_for_seconds` after the logout (by then every token of the session
//! has expired). The ring holds `max_entries` at most; a new chunk overwrites the oldest one.
//! When that chunk still holds live entries, [`crate::config::WhenFull`] decides: forget them
//! (drop oldest, counted), or keep them and refuse the provider's tokens until they expire
//! (fail closed).

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::jwt::Verified;

/// Entries per chunk: a chunk write stays small (tens of KiB) however large the set.
pub const CHUNK: u64 = 512;

/// What an entry revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every token of this IdP session (`sid`).
    Session,
    /// Every token of this user issued at or before the logout (`sub`).
    Subject,
}

/// One ended session (or user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its position in the log.
    pub seq: u64,
    /// Session or subject.
    pub kind: Kind,
    /// The `sid` or `sub`.
    pub value: String,
    /// The logout token's `iat`: tokens issued later are not affected (for a subject).
    pub revoked_at: i64,
    /// When the entry can be forgotten (Unix seconds).
    pub expires_at: i64,
}

/// The head record: where the log stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    /// The sequence number the next entry gets.
    pub next_seq: u64,
    /// Fail closed: the ring was full of live entries; the provider's tokens are refused until
    /// then (Unix seconds; 0: not full).
    pub full_until: i64,
}

const HEAD_LEN: usize = 16;

impl Head {
    /// A fixed little-endian layout.
    pub fn encode(&self) -> [u8; HEAD_LEN] {
        let mut out = [0u8; HEAD_LEN];
        out[..8].copy_from_slice(&self.next_seq.to_le_bytes());
        out[8..].copy_from_slice(&self.full_until.to_le_bytes());
        out
    }

    /// `None` for anything that is not a head record.
    pub fn decode(bytes: &[u8]) -> Option<Head> {
        let bytes: &[u8; HEAD_LEN] = bytes.try_into().ok()?;
        let (seq, full) = bytes.split_at(8);
        Some(Head {
            next_seq: u64::from_le_bytes(seq.try_into().ok()?),
            full_until: i64::from_le_bytes(full.try_into().ok()?),
        })
    }
}

/// Longest `sid` or `sub` recorded (longer ones are refused as logouts: no IdP issues them).
pub const MAX_VALUE_BYTES: usize = 255;

/// A chunk: its entries, oldest first. Per entry: seq (u64), kind (u8), revoked_at (i64),
/// expires_at (i64), length (u8), the value's bytes.
pub fn encode_chunk(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 64);
    for entry in entries {
        out.extend_from_slice(&entry.seq.to_le_bytes());
        out.push(match entry.kind {
            Kind::Session => 0,
            Kind::Subject => 1,
        });
        out.extend_from_slice(&entry.revoked_at.to_le_bytes());
        out.extend_from_slice(&entry.expires_at.to_le_bytes());
        out.push(u8::try_from(entry.value.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(entry.value.as_bytes());
    }
    out
}

/// The inverse of [`encode_chunk`]; `None` if the bytes are not a chunk.
pub fn decode_chunk(mut bytes: &[u8]) -> Option<Vec<Entry>> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let (seq, rest) = bytes.split_at_checked(8)?;
        let (kind, rest) = rest.split_first()?;
        let (revoked_at, rest) = rest.split_at_checked(8)?;
        let (expires_at, rest) = rest.split_at_checked(8)?;
        let (len, rest) = rest.split_first()?;
        let (value, rest) = rest.split_at_checked(usize::from(*len))?;
        entries.push(Entry {
            seq: u64::from_le_bytes(seq.try_into().ok()?),
            kind: match kind {
                0 => Kind::Session,
                1 => Kind::Subject,
                _ => return None,
            },
            revoked_at: i64::from_le_bytes(revoked_at.try_into().ok()?),
            expires_at: i64::from_le_bytes(expires_at.try_into().ok()?),
            value: String::from_utf8(value.to_vec()).ok()?,
        });
        bytes = rest;
    }
    Some(entries)
}

/// The number of chunks in the ring for `max_entries`.
pub fn chunk_count(max_entries: usize) -> u64 {
    u64::try_from(max_entries)
        .unwrap_or(u64::MAX)
        .div_ceil(CHUNK)
        .max(1)
}

/// The ring slot of the chunk holding entry `seq`.
pub fn slot(seq: u64, chunks: u64) -> u64 {
    (seq / CHUNK) % chunks
}

/// The first sequence number still in the ring when the log's head is at `next_seq`: the
/// ring holds whole chunks, so this is the start of the oldest round not yet overwritten.
/// Every worker computes the same bound, whether it read the log entry by entry or afresh.
pub fn oldest_held(next_seq: u64, chunks: u64) -> u64 {
    let Some(last) = next_seq.checked_sub(1) else {
        return 0;
    };
    (last / CHUNK + 1)
        .saturating_sub(chunks)
        .saturating_mul(CHUNK)
}

/// One worker's index of a provider's log.
#[derive(Debug, Default)]
pub struct Revoked {
    sessions: HashMap<Box<str>, (u64, i64), RandomState>,
    /// sub → (seq, revoked_at, expires_at).
    subjects: HashMap<Box<str>, (u64, i64, i64), RandomState>,
    /// Entries below this sequence number have been read.
    pub read_up_to: u64,
    /// See [`Head::full_until`].
    pub full_until: i64,
}

impl Revoked {
    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.subjects.is_empty()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.sessions.len() + self.subjects.len()
    }

    /// Whether the verified token belongs to an ended session at `now`: its `sid` is revoked,
    /// or its `sub` is, and it was issued at or before that logout (a token without `iat` is
    /// taken as issued before).
    pub fn ends(&self, verified: &Verified, now: i64) -> bool {
        if self.is_empty() {
            return false;
        }
        if let Some(sid) = verified.session.as_deref()
            && self
                .sessions
                .get(sid)
                .is_some_and(|(_, expires)| now < *expires)
        {
            return true;
        }
        if let Some(sub) = verified.subject.as_deref()
            && let Some((_, revoked_at, expires)) = self.subjects.get(sub)
        {
            return now < *expires && verified.issued_at.is_none_or(|iat| iat <= *revoked_at);
        }
        false
    }

    /// Applies entries read from the log (in any order); entries older than what is known for
    /// the same value are ignored.
    pub fn apply(&mut self, entries: impl IntoIterator<Item = Entry>, now: i64) {
        for entry in entries {
            if entry.expires_at <= now {
                continue;
            }
            match entry.kind {
                Kind::Session => {
                    let slot = self
                        .sessions
                        .entry(Box::from(entry.value.as_str()))
                        .or_insert((entry.seq, entry.expires_at));
                    if slot.0 <= entry.seq {
                        *slot = (entry.seq, entry.expires_at);
                    }
                }
                Kind::Subject => {
                    let slot = self
                        .subjects
                        .entry(Box::from(entry.value.as_str()))
                        .or_insert((entry.seq, entry.revoked_at, entry.expires_at));
                    if slot.0 <= entry.seq {
                        *slot = (entry.seq, entry.revoked_at.max(slot.1), entry.expires_at);
                    }
                }
            }
        }
    }

    /// Forgets entries below `seq` (their chunks were overwritten) and expired ones.
    pub fn forget_before(&mut self, seq: u64, now: i64) {
        self.sessions
            .retain(|_, (at, expires)| *at >= seq && *expires > now);
        self.subjects
            .retain(|_, (at, _, expires)| *at >= seq && *expires > now);
    }

    /// Forgets everything (a resynchronisation from scratch follows).
    pub fn clear(&mut self) {
        self.sessions.clear();
        self.subjects.clear();
        self.read_up_to = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, kind: Kind, value: &str, revoked_at: i64, expires_at: i64) -> Entry {
        Entry {
            seq,
            kind,
            value: value.to_owned(),
            revoked_at,
            expires_at,
        }
    }

    fn verified(sid: Option<&str>, sub: Option<&str>, iat: Option<i64>) -> Verified {
        Verified {
            session: sid.map(Box::from),
            subject: sub.map(Box::from),
            issued_at: iat,
            ..Verified::default()
        }
    }

    #[test]
    fn records_round_trip() {
        let head = Head {
            next_seq: 1 << 40,
            full_until: -3,
        };
        assert_eq!(Head::decode(&head.encode()), Some(head));
        assert_eq!(Head::decode(b"short"), None);
        let entries = vec![
            entry(7, Kind::Session, "s-1", 100, 200),
            entry(8, Kind::Subject, "", 101, 201),
            entry(9, Kind::Subject, "ü", 102, 202),
        ];
        assert_eq!(decode_chunk(&encode_chunk(&entries)), Some(entries));
        assert_eq!(decode_chunk(&[1, 2, 3]), None);
        assert_eq!(chunk_count(100_000), 196);
        assert_eq!(chunk_count(1), 1);
        assert_eq!(slot(1023, 2), 1);
        assert_eq!(slot(1024, 2), 0);
        for (next_seq, chunks, oldest) in [
            (0, 2, 0),
            (1024, 2, 0),
            (1025, 2, 512),
            (2048, 2, 1024),
            (3000, 2, 2048),
            (3000, 196, 0),
        ] {
            assert_eq!(
                oldest_held(next_seq, chunks),
                oldest,
                "{next_seq} in {chunks}"
            );
        }
    }

    #[test]
    fn sessions_and_subjects_end_their_tokens() {
        let mut revoked = Revoked::default();
        assert!(!revoked.ends(&verified(Some("s"), Some("u"), Some(10)), 50));
        revoked.apply(
            [
                entry(0, Kind::Session, "s", 100, 1000),
                entry(1, Kind::Subject, "u", 100, 1000),
            ],
            50,
        );
        let cases = [
            (verified(Some("s"), None, None), 500, true),
            (verified(Some("s"), None, None), 1000, false),
            (verified(Some("other"), None, None), 500, false),
            (verified(None, Some("u"), Some(99)), 500, true),
            (verified(None, Some("u"), Some(100)), 500, true),
            (verified(None, Some("u"), Some(101)), 500, false),
            (verified(None, Some("u"), None), 500, true),
            (verified(Some("fresh"), Some("u"), Some(200)), 500, false),
        ];
        for (token, now, ends) in cases {
            assert_eq!(revoked.ends(&token, now), ends, "{token:?} at {now}");
        }
        assert_eq!(revoked.len(), 2);
        revoked.forget_before(1, 50);
        assert_eq!(
            revoked.len(),
            1,
            "the session entry's chunk was overwritten"
        );
        revoked.forget_before(0, 1000);
        assert!(revoked.is_empty(), "everything expired");
    }
}

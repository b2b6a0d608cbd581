//! When to fetch a remote JWKS, shared by all workers.
//!
//! Every worker runs the same schedule against one [`FetchState`] kept in proxy-wasm shared
//! data; a worker claims a fetch by writing the state back with compare-and-swap, so one fetch
//! serves all workers. The records are fixed little-endian layouts: they are the only things
//! different VMs exchange besides the JWKS document itself.
//!
//! # Key rotation that nothing can block
//!
//! A token with an unknown `kid` may trigger a refetch, at most once per
//! [`KID_REFETCH_FLOOR_MS`] across all workers. A `kid` that a refetch did not find is
//! remembered as missing ([`MissingKids`], shared too) until the next scheduled refresh, so
//! repeating it — a client's typo, an attacker's junk — costs no fetch and no waiting, while a
//! `kid` never seen before (the IdP's new key) triggers its own refetch once the floor has
//! passed. IdP load stays bounded either way: one fetch per floor at most.

/// Unknown `kid`s trigger a refetch at most this often, across all workers.
pub const KID_REFETCH_FLOOR_MS: u64 = 5_000;
/// Missing `kid`s remembered at most (the oldest is forgotten first).
pub const MAX_MISSING_KIDS: usize = 64;
/// Longer `kid`s are not remembered (they still never refetch more than the floor allows).
pub const MAX_REMEMBERED_KID_BYTES: usize = 128;
/// Retry delay after the first failure; doubles per failure up to [`MAX_RETRY_MS`].
pub const FIRST_RETRY_MS: u64 = 1_000;
/// The longest retry delay after failures.
pub const MAX_RETRY_MS: u64 = 30_000;

/// The shared fetch record of one key source (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchState {
    /// When the last fetch was dispatched.
    pub last_attempt_ms: u64,
    /// When the last fetch ended, successfully or not.
    pub last_completed_ms: u64,
    /// When the last successful fetch ended.
    pub last_success_ms: u64,
    /// When a token with an unknown `kid` last triggered a fetch.
    pub last_kid_refetch_ms: u64,
    /// Failed fetches since the last success.
    pub consecutive_failures: u32,
}

const STATE_LEN: usize = 36;

impl FetchState {
    /// The record's fixed little-endian layout.
    pub fn encode(&self) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        let words = [
            self.last_attempt_ms,
            self.last_completed_ms,
            self.last_success_ms,
            self.last_kid_refetch_ms,
        ];
        for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out[32..36].copy_from_slice(&self.consecutive_failures.to_le_bytes());
        out
    }

    /// `None` for anything that is not a record of this layout.
    pub fn decode(bytes: &[u8]) -> Option<FetchState> {
        let bytes: &[u8; STATE_LEN] = bytes.try_into().ok()?;
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let mut failures = [0u8; 4];
        failures.copy_from_slice(&bytes[32..36]);
        Some(FetchState {
            last_attempt_ms: u64_at(0),
            last_completed_ms: u64_at(8),
            last_success_ms: u64_at(16),
            last_kid_refetch_ms: u64_at(24),
            consecutive_failures: u32::from_le_bytes(failures),
        })
    }

    /// A fetch succeeded at `now_ms`.
    pub fn record_success(&mut self, now_ms: u64) {
        self.last_completed_ms = now_ms;
        self.last_success_ms = now_ms;
        self.consecutive_failures = 0;
    }

    /// A fetch failed at `now_ms`.
    pub fn record_failure(&mut self, now_ms: u64) {
        self.last_completed_ms = now_ms;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
    }
}

/// The refresh schedule of one key source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between periodic fetches.
    pub refresh_ms: u64,
    /// A fetch's timeout.
    pub timeout_ms: u64,
}

impl Schedule {
    /// The schedule of a key source refreshed every `refresh_seconds`.
    pub fn new(refresh_seconds: u64, timeout_ms: u64) -> Schedule {
        Schedule {
            refresh_ms: refresh_seconds.saturating_mul(1000),
            timeout_ms,
        }
    }

    /// Delay after `failures` consecutive failures: exponential, capped.
    pub fn retry_delay_ms(&self, failures: u32) -> u64 {
        match failures {
            0 => 0,
            n => FIRST_RETRY_MS
                .saturating_mul(1u64 << (n - 1).min(16))
                .min(MAX_RETRY_MS)
                .min(self.refresh_ms),
        }
    }

    /// A fetch was dispatched and has not ended. A worker that dispatched and then lost its
    /// answer (the VM restarted) must not block fetching forever, hence the timeout bound.
    pub fn fetch_in_flight(&self, state: &FetchState, now_ms: u64) -> bool {
        state.last_attempt_ms > state.last_completed_ms
            && now_ms.saturating_sub(state.last_attempt_ms) < self.timeout_ms + 1_000
    }

    /// Whether a periodic fetch is due. `have_keys`: this worker holds a key set.
    pub fn periodic_fetch_due(&self, state: &FetchState, have_keys: bool, now_ms: u64) -> bool {
        if self.fetch_in_flight(state, now_ms) {
            return false;
        }
        if state.consecutive_failures > 0 {
            let since_completed = now_ms.saturating_sub(state.last_completed_ms);
            return since_completed >= self.retry_delay_ms(state.consecutive_failures);
        }
        !have_keys || now_ms.saturating_sub(state.last_success_ms) >= self.refresh_ms
    }

    /// Whether a token with an unknown `kid` may trigger a fetch now.
    pub fn kid_refetch_allowed(&self, state: &FetchState, now_ms: u64) -> bool {
        !self.fetch_in_flight(state, now_ms)
            && (state.last_kid_refetch_ms == 0
                || now_ms.saturating_sub(state.last_kid_refetch_ms) >= KID_REFETCH_FLOOR_MS)
    }
}

/// `kid`s a refetch did not find, and when: refused at once until the next scheduled refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MissingKids(Vec<(u64, String)>);

impl MissingKids {
    /// Whether `kid` was missing from a fetch less than `refresh_ms` ago.
    pub fn contains(&self, kid: &str, now_ms: u64, refresh_ms: u64) -> bool {
        self.0
            .iter()
            .any(|(at, missing)| missing == kid && now_ms.saturating_sub(*at) < refresh_ms)
    }

    /// Remembers `kid` as missing from a fetch at `now_ms`, forgetting entries older than
    /// `refresh_ms` and the oldest beyond [`MAX_MISSING_KIDS`]. Returns false when the kid is
    /// too long to remember.
    pub fn insert(&mut self, kid: &str, now_ms: u64, refresh_ms: u64) -> bool {
        if kid.len() > MAX_REMEMBERED_KID_BYTES {
            return false;
        }
        self.0
            .retain(|(at, missing)| missing != kid && now_ms.saturating_sub(*at) < refresh_ms);
        if self.0.len() >= MAX_MISSING_KIDS {
            self.0.remove(0);
        }
        self.0.push((now_ms, kid.to_owned()));
        true
    }

    /// Count, then per entry: time (u64 LE), length (u8), the kid's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.0.len() * 24);
        out.extend_from_slice(&u32::try_from(self.0.len()).unwrap_or(0).to_le_bytes());
        for (at, kid) in &self.0 {
            out.extend_from_slice(&at.to_le_bytes());
            out.push(u8::try_from(kid.len()).unwrap_or(0));
            out.extend_from_slice(kid.as_bytes());
        }
        out
    }

    /// `None` for anything that is not a record of this layout.
    pub fn decode(bytes: &[u8]) -> Option<MissingKids> {
        let (count, mut rest) = bytes.split_at_checked(4)?;
        let count = u32::from_le_bytes(count.try_into().ok()?);
        let mut entries = Vec::new();
        for _ in 0..count.min(u32::try_from(MAX_MISSING_KIDS).unwrap_or(0)) {
            let (at, after) = rest.split_at_checked(8)?;
            let (len, after) = after.split_first()?;
            let (kid, after) = after.split_at_checked(usize::from(*len))?;
            entries.push((
                u64::from_le_bytes(at.try_into().ok()?),
                String::from_utf8(kid.to_vec()).ok()?,
            ));
            rest = after;
        }
        Some(MissingKids(entries))
    }
}

/// The shared copy of the key set: when it was fetched, and the JWKS document.
pub fn encode_key_record(fetched_at_ms: u64, jwks: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + jwks.len());
    out.extend_from_slice(&fetched_at_ms.to_le_bytes());
    out.extend_from_slice(jwks);
    out
}

/// The fetch time and JWKS document of a record from [`encode_key_record`].
pub fn decode_key_record(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (time, jwks) = bytes.split_at_checked(8)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(time);
    Some((u64::from_le_bytes(word), jwks))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: Schedule = Schedule {
        refresh_ms: 300_000,
        timeout_ms: 2_000,
    };

    #[test]
    fn records_round_trip() {
        let state = FetchState {
            last_attempt_ms: 1,
            last_completed_ms: 2,
            last_success_ms: u64::MAX,
            last_kid_refetch_ms: 3,
            consecutive_failures: 4,
        };
        assert_eq!(FetchState::decode(&state.encode()), Some(state));
        assert_eq!(FetchState::decode(b"short"), None);
        let record = encode_key_record(42, b"{\"keys\":[]}");
        assert_eq!(
            decode_key_record(&record),
            Some((42, &b"{\"keys\":[]}"[..]))
        );
        assert_eq!(decode_key_record(b"1234"), None);
    }

    #[test]
    fn first_fetch_is_due_at_once() {
        assert!(SCHEDULE.periodic_fetch_due(&FetchState::default(), false, 5));
    }

    #[test]
    fn periodic_schedule_table() {
        let ok = FetchState {
            last_attempt_ms: 10_000,
            last_completed_ms: 10_100,
            last_success_ms: 10_100,
            ..FetchState::default()
        };
        let in_flight = FetchState {
            last_attempt_ms: 10_000,
            ..FetchState::default()
        };
        let failing = |failures| FetchState {
            last_attempt_ms: 10_000,
            last_completed_ms: 10_000,
            consecutive_failures: failures,
            ..FetchState::default()
        };
        let cases = [
            (ok, true, 10_100 + 299_999, false),
            (ok, true, 10_100 + 300_000, true),
            // A fetch in flight is not duplicated, but one that never answered stops counting.
            (in_flight, false, 12_999, false),
            (in_flight, false, 13_000, true),
            (failing(1), false, 10_999, false),
            (failing(1), false, 11_000, true),
            (failing(3), false, 13_999, false),
            (failing(3), false, 14_000, true),
            (failing(10), false, 39_999, false),
            (failing(10), false, 40_000, true),
            // A failed refresh retries even while old keys are still in use.
            (failing(2), true, 12_000, true),
        ];
        for (state, have_keys, now, expected) in cases {
            assert_eq!(
                SCHEDULE.periodic_fetch_due(&state, have_keys, now),
                expected,
                "{state:?} have_keys={have_keys} now={now}"
            );
        }
    }

    #[test]
    fn missing_kids_are_remembered_until_the_next_refresh() {
        let mut missing = MissingKids::default();
        assert!(missing.insert("junk", 1_000, 300_000));
        assert!(missing.contains("junk", 300_999, 300_000));
        assert!(!missing.contains("junk", 301_000, 300_000));
        assert!(!missing.contains("new", 2_000, 300_000));
        assert!(!missing.insert(&"x".repeat(200), 2_000, 300_000));
        for i in 0..100 {
            missing.insert(&format!("k{i}"), 3_000 + i, 300_000);
        }
        assert!(
            !missing.contains("junk", 4_000, 300_000),
            "the oldest went first"
        );
        assert!(missing.contains("k99", 4_000, 300_000));
        let decoded = MissingKids::decode(&missing.encode()).unwrap();
        assert_eq!(decoded, missing);
        assert_eq!(MissingKids::decode(b"\x01\x00\x00\x00"), None);
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let mut state = FetchState {
            last_attempt_ms: 100_000,
            last_completed_ms: 100_050,
            last_success_ms: 100_050,
            last_kid_refetch_ms: 100_000,
            consecutive_failures: 0,
        };
        assert!(!SCHEDULE.kid_refetch_allowed(&state, 104_999));
        assert!(SCHEDULE.kid_refetch_allowed(&state, 105_000));
        state.last_attempt_ms = 104_000;
        assert!(
            !SCHEDULE.kid_refetch_allowed(&state, 105_000),
            "fetch in flight"
        );
        // Right after the start-up fetch completed, a new kid may refetch at once.
        let fresh = FetchState {
            last_attempt_ms: 1_000,
            last_completed_ms: 1_100,
            last_success_ms: 1_100,
            ..FetchState::default()
        };
        assert!(SCHEDULE.kid_refetch_allowed(&fresh, 1_200));
        assert!(SCHEDULE.kid_refetch_allowed(&FetchState::default(), 1));
    }
}

//! A bounded per-worker cache keyed on the exact token bytes.
//!
//! It sits on the filter's hot path, so a hit is one hash, one probe, one comparison of the
//! stored bytes and one time comparison. Eviction is first-in first-out: entries also leave at
//! their expiry, and a cache of verified tokens has no use for recency bookkeeping that would
//! cost every hit a write.
//!
//! # Hashing
//!
//! Tokens are long (a Keycloak access token is about 800 bytes) and a general-purpose hash of
//! all of them costs more than everything else a cache hit does; in wasm32, foldhash's 64×64→128
//! multiplications are emulated. The cache of *verified* tokens
//! ([`TokenCache::for_verified_tokens`]) therefore hashes only the length and the last 16 bytes,
//! mixed with a per-worker random seed. The last bytes of a JWS are its signature (base64url),
//! which for a token signed by the IdP is uniformly distributed (an RSA signature is a
//! pseudo-random residue, ECDSA's `s` is randomised, EdDSA's `S` comes from a hash). Only
//! tokens that passed signature verification are ever inserted, so nobody without the IdP's
//! key can fill the table with colliding keys (hash flooding), and the seed keeps anyone from
//! picking colliding tokens among the ones the IdP issues. A lookup of an unverified token
//! (forged, or chosen to share a tail with a cached one) costs one probe and a byte comparison
//! that fails; it inserts nothing. Equality is always on every byte.
//!
//! The introspection cache stores the IdP's verdict on arbitrary strings, `active: false`
//! included, so its keys are attacker-chosen: [`TokenCache::new`] hashes every byte with a
//! seeded hash.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use hashbrown::HashTable;

struct Entry<V> {
    key: Box<str>,
    hash: u64,
    value: V,
    /// Unix seconds after which the entry is dead; `None` = no time limit.
    valid_until: Option<i64>,
    /// Distinguishes this insertion from an earlier one of the same key still queued.
    generation: u64,
}

impl<V> Entry<V> {
    fn alive(&self, now: i64) -> bool {
        self.valid_until.is_none_or(|until| now < until)
    }
}

/// How keys are hashed (see the module documentation).
enum Hashing {
    /// Every byte, seeded: for keys anyone can choose.
    Full(foldhash::fast::RandomState),
    /// Length and the last 16 bytes, seeded: only for keys that are verified signatures.
    Tail(u64),
}

impl Hashing {
    fn hash(&self, key: &[u8]) -> u64 {
        match self {
            Hashing::Full(state) => state.hash_one(key),
            Hashing::Tail(seed) => tail_hash(*seed, key),
        }
    }
}

/// A lookup that found nothing: the key's hash, for the insertion of that key that may follow
/// (a miss is usually followed by a verification and an insertion; the key is not hashed again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss {
    hash: u64,
    /// The key's length: a `Miss` handed with another key is not trusted.
    len: usize,
}

/// The length and the last 16 bytes of `key`, mixed with `seed` (multiply-xorshift rounds with
/// 64-bit products, which wasm32 has natively).
fn tail_hash(seed: u64, key: &[u8]) -> u64 {
    let take = key.len().min(16);
    let mut tail = [0u8; 16];
    if let (Some(dst), Some(src)) = (tail.get_mut(16 - take..), key.get(key.len() - take..)) {
        dst.copy_from_slice(src);
    }
    let [lo, hi] = [0, 8].map(|at| {
        let mut word = [0u8; 8];
        word.copy_from_slice(tail.get(at..at + 8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(word)
    });
    let length = u64::try_from(key.len()).unwrap_or(u64::MAX);
    let mut h = seed ^ length.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ lo).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 31) ^ hi).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 29)
}

/// Byte equality without an early exit, 16 bytes a step (a byte loop is what `==` on slices
/// becomes in wasm32, through wasi-libc's `memcmp`).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_blocks, a_rest) = a.as_chunks::<16>();
    let (b_blocks, b_rest) = b.as_chunks::<16>();
    let diff = a_blocks.iter().zip(b_blocks).fold(0u128, |acc, (x, y)| {
        acc | (u128::from_ne_bytes(*x) ^ u128::from_ne_bytes(*y))
    });
    diff == 0 && a_rest == b_rest
}

/// A bounded token-keyed cache with per-entry expiry (see the module documentation).
pub struct TokenCache<V> {
    capacity: usize,
    hashing: Hashing,
    entries: HashTable<Entry<V>>,
    /// (hash, generation) of every insertion, oldest first; entries removed early leave stale
    /// items behind, recognised by their generation.
    insertion_order: VecDeque<(u64, u64)>,
    next_generation: u64,
}

impl<V> TokenCache<V> {
    /// A cache of at most `capacity` entries (0 disables caching) for keys anyone may choose.
    pub fn new(capacity: usize) -> Self {
        Self::with_hashing(
            capacity,
            Hashing::Full(foldhash::fast::RandomState::default()),
        )
    }

    /// A cache for tokens whose signature has been verified: hashes only their tail. Never
    /// insert an unverified token (see the module documentation).
    pub fn for_verified_tokens(capacity: usize) -> Self {
        let seed =
            std::collections::hash_map::RandomState::new().hash_one(0x746f_6b65_6e67_6174u64);
        Self::with_hashing(capacity, Hashing::Tail(seed))
    }

    fn with_hashing(capacity: usize, hashing: Hashing) -> Self {
        TokenCache {
            capacity,
            hashing,
            entries: HashTable::with_capacity(capacity.min(1024)),
            insertion_order: VecDeque::new(),
            next_generation: 0,
        }
    }

    /// Live and not yet collected entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the cache stores anything at all (capacity above 0).
    pub fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The live entry for `key` at `now`; a dead entry is dropped.
    pub fn get(&mut self, key: &[u8], now: i64) -> Option<&V> {
        if self.entries.is_empty() {
            return None;
        }
        self.lookup(key, now).ok()
    }

    /// The live entry for `key` at `now` (a dead entry is dropped), or what
    /// [`TokenCache::insert_after`] needs to store one.
    pub fn lookup(&mut self, key: &[u8], now: i64) -> Result<&V, Miss> {
        let len = key.len();
        if self.entries.is_empty() {
            // Nothing to find: hashed only when there is something to store.
            return Err(Miss {
                hash: if self.capacity == 0 {
                    0
                } else {
                    self.hashing.hash(key)
                },
                len,
            });
        }
        let hash = self.hashing.hash(key);
        match self
            .entries
            .find_entry(hash, |e| same_bytes(e.key.as_bytes(), key))
        {
            Ok(entry) if entry.get().alive(now) => Ok(&entry.into_mut().value),
            Ok(entry) => {
                entry.remove();
                Err(Miss { hash, len })
            }
            Err(_) => Err(Miss { hash, len }),
        }
    }

    /// Stores `value` until `valid_until` (exclusive). Entries already dead are not stored.
    pub fn insert(&mut self, key: &str, value: V, valid_until: Option<i64>, now: i64) {
        let hash = self.hashing.hash(key.as_bytes());
        self.insert_hashed(hash, key, value, valid_until, now);
    }

    /// [`TokenCache::insert`] after `miss`, the lookup of `key` in this cache that found
    /// nothing.
    pub fn insert_after(
        &mut self,
        miss: Miss,
        key: &str,
        value: V,
        valid_until: Option<i64>,
        now: i64,
    ) {
        if miss.len != key.len() || self.capacity == 0 {
            return self.insert(key, value, valid_until, now);
        }
        self.insert_hashed(miss.hash, key, value, valid_until, now);
    }

    fn insert_hashed(
        &mut self,
        hash: u64,
        key: &str,
        value: V,
        valid_until: Option<i64>,
        now: i64,
    ) {
        if self.capacity == 0 || valid_until.is_some_and(|until| until <= now) {
            return;
        }
        if let Ok(existing) = self
            .entries
            .find_entry(hash, |e| same_bytes(e.key.as_bytes(), key.as_bytes()))
        {
            existing.remove();
        }
        while self.entries.len() >= self.capacity {
            if !self.evict_oldest() {
                break;
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.insertion_order.push_back((hash, generation));
        self.entries.insert_unique(
            hash,
            Entry {
                key: Box::from(key),
                hash,
                value,
                valid_until,
                generation,
            },
            |e| e.hash,
        );
        // Keys removed early (expired on lookup, replaced) leave stale queue entries behind;
        // keep the queue within a constant factor of the live entries.
        if self.insertion_order.len() > 2 * self.capacity.max(16) {
            self.compact_order();
        }
    }

    /// Drops the entry for `key`, if any.
    pub fn remove(&mut self, key: &str) {
        let hash = self.hashing.hash(key.as_bytes());
        if let Ok(entry) = self
            .entries
            .find_entry(hash, |e| same_bytes(e.key.as_bytes(), key.as_bytes()))
        {
            entry.remove();
        }
    }

    /// Drops every entry (the key set changed: verdicts may no longer hold).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.insertion_order.clear();
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((hash, generation)) = self.insertion_order.pop_front() {
            if let Ok(entry) = self
                .entries
                .find_entry(hash, |e| e.generation == generation)
            {
                entry.remove();
                return true;
            }
        }
        false
    }

    fn compact_order(&mut self) {
        let entries = &self.entries;
        self.insertion_order.retain(|(hash, generation)| {
            entries
                .find(*hash, |e| e.generation == *generation)
                .is_some()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(capacity: usize) -> [TokenCache<usize>; 2] {
        [
            TokenCache::new(capacity),
            TokenCache::for_verified_tokens(capacity),
        ]
    }

    #[test]
    fn hit_miss_and_expiry() {
        for mut cache in both(4) {
            cache.insert("a", 1, Some(100), 10);
            assert_eq!(cache.get(b"a", 99), Some(&1));
            assert_eq!(cache.get(b"a", 100), None, "never outlives its expiry");
            assert!(cache.is_empty());
            cache.insert("dead", 2, Some(10), 10);
            assert_eq!(cache.get(b"dead", 10), None);
            cache.insert("forever", 3, None, 10);
            assert_eq!(cache.get(b"forever", i64::MAX), Some(&3));
        }
    }

    #[test]
    fn bounded_with_fifo_eviction() {
        for mut cache in both(3) {
            for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
                cache.insert(key, i, None, 0);
            }
            assert_eq!(cache.len(), 3);
            assert_eq!(cache.get(b"a", 0), None);
            assert_eq!(cache.get(b"d", 0), Some(&3));
            // Re-inserting a key must not let its stale queue entry evict the new one early.
            cache.insert("b", 10, None, 0);
            cache.insert("e", 11, None, 0);
            assert_eq!(cache.get(b"b", 0), Some(&10));
            assert_eq!(cache.len(), 3);
        }
    }

    #[test]
    fn queue_stays_bounded_under_churn() {
        for mut cache in both(8) {
            for i in 0..10_000 {
                let key = format!("k{}", i % 5);
                cache.insert(
                    &key,
                    i,
                    Some(i64::try_from(i).unwrap() + 1),
                    i64::try_from(i).unwrap(),
                );
                cache.remove(&key);
            }
            assert!(cache.insertion_order.len() <= 32);
        }
    }

    #[test]
    fn disabled_cache_stores_nothing() {
        for mut cache in both(0) {
            cache.insert("a", 1, None, 0);
            assert_eq!(cache.get(b"a", 0), None);
            assert!(!cache.is_enabled());
        }
    }

    #[test]
    fn keys_sharing_a_tail_are_told_apart_by_every_byte() {
        let mut cache = TokenCache::for_verified_tokens(64);
        let tail = "-same-last-sixteen-bytes";
        let keys: Vec<String> = (0..40)
            .map(|i| format!("{i:03}{}{tail}", "x".repeat(700)))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            cache.insert(key, i, None, 0);
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(cache.get(key.as_bytes(), 0), Some(&i));
        }
        let mut other = keys[7].clone();
        other.replace_range(1..2, "9");
        assert_eq!(cache.get(other.as_bytes(), 0), None);
        assert_eq!(
            cache.get(&keys[7].as_bytes()[1..], 0),
            None,
            "a suffix is another key"
        );
    }

    #[test]
    fn insertion_after_a_miss() {
        for mut cache in both(4) {
            let miss = cache.lookup(b"a", 0).unwrap_err();
            cache.insert_after(miss, "a", 1, None, 0);
            assert_eq!(cache.get(b"a", 0), Some(&1));
            let miss = cache.lookup(b"bb", 0).unwrap_err();
            assert_eq!(cache.get(b"bb", 0), None);
            // A miss handed with another key is not trusted with its hash.
            cache.insert_after(miss, "ccc", 3, None, 0);
            assert_eq!(cache.get(b"ccc", 0), Some(&3));
            cache.insert_after(miss, "bb", 2, Some(5), 0);
            assert_eq!(cache.lookup(b"bb", 4), Ok(&2));
            assert!(cache.lookup(b"bb", 5).is_err(), "dead: dropped on lookup");
            assert_eq!(cache.len(), 2);
        }
    }

    #[test]
    fn byte_comparison() {
        let a: Vec<u8> = (0..=255u8).cycle().take(790).collect();
        for at in [0, 15, 16, 500, 783, 789] {
            let mut b = a.clone();
            b[at] ^= 1;
            assert!(!same_bytes(&a, &b), "{at}");
        }
        assert!(same_bytes(&a, &a.clone()));
        assert!(!same_bytes(&a, &a[..789]));
        assert!(same_bytes(b"", b""));
        assert_ne!(tail_hash(1, b"abc"), tail_hash(2, b"abc"));
        assert_ne!(tail_hash(1, b"xabc"), tail_hash(1, b"abc"), "length counts");
    }
}

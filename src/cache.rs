//! A bounded per-worker cache keyed on the exact token bytes.
//!
//! It sits on the filter's hot path, so a hit is one hash of the token, one comparison of the
//! stored bytes and one time comparison. Eviction is first-in first-out: entries also leave at
//! their expiry, and a cache of verified tokens has no use for recency bookkeeping that would
//! cost every hit a write.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use foldhash::fast::RandomState;

struct Slot<V> {
    value: V,
    /// Unix seconds after which the entry is dead; `None` = no time limit.
    valid_until: Option<i64>,
    /// Distinguishes this insertion from an earlier one of the same key still queued.
    generation: u64,
}

pub struct TokenCache<V> {
    capacity: usize,
    slots: HashMap<Rc<str>, Slot<V>, RandomState>,
    insertion_order: VecDeque<(u64, Rc<str>)>,
    next_generation: u64,
}

impl<V> TokenCache<V> {
    /// A cache of at most `capacity` entries; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            slots: HashMap::with_capacity_and_hasher(capacity.min(1024), RandomState::default()),
            insertion_order: VecDeque::new(),
            next_generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The live entry for `key` at `now`; a dead entry is dropped.
    pub fn get(&mut self, key: &str, now: i64) -> Option<&V> {
        let alive = match self.slots.get(key) {
            None => return None,
            Some(slot) => slot.valid_until.is_none_or(|until| now < until),
        };
        if !alive {
            self.slots.remove(key);
            return None;
        }
        self.slots.get(key).map(|slot| &slot.value)
    }

    /// Stores `value` until `valid_until` (exclusive). Entries already dead are not stored.
    pub fn insert(&mut self, key: &str, value: V, valid_until: Option<i64>, now: i64) {
        if self.capacity == 0 || valid_until.is_some_and(|until| until <= now) {
            return;
        }
        self.slots.remove(key);
        while self.slots.len() >= self.capacity {
            if !self.evict_oldest() {
                break;
            }
        }
        let key: Rc<str> = Rc::from(key);
        let generation = self.next_generation;
        self.next_generation += 1;
        self.insertion_order
            .push_back((generation, Rc::clone(&key)));
        self.slots.insert(
            key,
            Slot {
                value,
                valid_until,
                generation,
            },
        );
        // Keys removed early (expired on lookup, replaced) leave stale queue entries behind;
        // keep the queue within a constant factor of the live entries.
        if self.insertion_order.len() > 2 * self.capacity.max(16) {
            self.compact_order();
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.slots.remove(key);
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.insertion_order.clear();
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((generation, key)) = self.insertion_order.pop_front() {
            if self
                .slots
                .get(&key)
                .is_some_and(|slot| slot.generation == generation)
            {
                self.slots.remove(&key);
                return true;
            }
        }
        false
    }

    fn compact_order(&mut self) {
        let slots = &self.slots;
        self.insertion_order.retain(|(generation, key)| {
            slots
                .get(key)
                .is_some_and(|slot| slot.generation == *generation)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_miss_and_expiry() {
        let mut cache = TokenCache::new(4);
        cache.insert("a", 1, Some(100), 10);
        assert_eq!(cache.get("a", 99), Some(&1));
        assert_eq!(cache.get("a", 100), None, "never outlives its expiry");
        assert!(cache.is_empty());
        cache.insert("dead", 2, Some(10), 10);
        assert_eq!(cache.get("dead", 10), None);
        cache.insert("forever", 3, None, 10);
        assert_eq!(cache.get("forever", i64::MAX), Some(&3));
    }

    #[test]
    fn bounded_with_fifo_eviction() {
        let mut cache = TokenCache::new(3);
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            cache.insert(key, i, None, 0);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("a", 0), None);
        assert_eq!(cache.get("d", 0), Some(&3));
        // Re-inserting a key must not let its stale queue entry evict the new one early.
        cache.insert("b", 10, None, 0);
        cache.insert("e", 11, None, 0);
        assert_eq!(cache.get("b", 0), Some(&10));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn queue_stays_bounded_under_churn() {
        let mut cache = TokenCache::new(8);
        for i in 0..10_000 {
            let key = format!("k{}", i % 5);
            cache.insert(&key, i, Some(i64::from(i) + 1), i64::from(i));
            cache.remove(&key);
        }
        assert!(cache.insertion_order.len() <= 32);
    }

    #[test]
    fn disabled_cache_stores_nothing() {
        let mut cache = TokenCache::new(0);
        cache.insert("a", 1, None, 0);
        assert_eq!(cache.get("a", 0), None);
        assert!(!cache.is_enabled());
    }
}

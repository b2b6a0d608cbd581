//! Requests waiting for the same answer: one introspection call per (provider, token) per
//! worker, however many requests carry that token while the call is open.

use std::collections::HashMap;
use std::hash::Hash;

use foldhash::fast::RandomState;

/// How a waiter joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// First for this key: the caller must start the call.
    First,
    /// A call for this key is already open; the waiter rides on it.
    Joined,
    /// Too many distinct calls open: the waiter was not added.
    Full,
}

/// Waiters grouped by the key of the call they wait on.
pub struct Coalescer<K, W> {
    waiting: HashMap<K, Vec<W>, RandomState>,
    max_keys: usize,
}

impl<K: Hash + Eq, W> Coalescer<K, W> {
    /// At most `max_keys` distinct keys may be waited on at once.
    pub fn new(max_keys: usize) -> Self {
        Coalescer {
            waiting: HashMap::default(),
            max_keys,
        }
    }

    /// Adds a waiter for `key`; the answer says whether the caller must start the call.
    pub fn join(&mut self, key: K, waiter: W) -> Join {
        if let Some(waiters) = self.waiting.get_mut(&key) {
            waiters.push(waiter);
            return Join::Joined;
        }
        if self.waiting.len() >= self.max_keys {
            return Join::Full;
        }
        self.waiting.insert(key, vec![waiter]);
        Join::First
    }

    /// Everyone waiting on `key`, in arrival order; the key is free again afterwards.
    pub fn take(&mut self, key: &K) -> Vec<W> {
        self.waiting.remove(key).unwrap_or_default()
    }

    /// Number of keys with an open call.
    pub fn open(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_per_key() {
        let mut coalescer = Coalescer::new(2);
        assert_eq!(coalescer.join("a", 1), Join::First);
        assert_eq!(coalescer.join("a", 2), Join::Joined);
        assert_eq!(coalescer.join("b", 3), Join::First);
        assert_eq!(coalescer.join("c", 4), Join::Full);
        assert_eq!(
            coalescer.join("b", 5),
            Join::Joined,
            "joining is never refused"
        );
        assert_eq!(coalescer.take(&"a"), vec![1, 2]);
        assert_eq!(coalescer.take(&"a"), Vec::<i32>::new());
        assert_eq!(coalescer.join("c", 6), Join::First);
        assert_eq!(coalescer.open(), 2);
    }
}

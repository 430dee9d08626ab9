//! A bounded map of finished outcomes that forgets by age, never by
//! admission.
//!
//! Threat: a cache with an admission policy (TinyLFU, as in moka) refuses new
//! entries when full — and the entry a late arrival needs is always the
//! newest one. Refusing it means the late arrival replays a consumed refresh
//! token and the provider revokes the family. So this map always admits, and
//! when it is over capacity it drops the entry inserted first (the one least
//! likely to still be needed), counting the eviction. Entries also expire at
//! their own deadline.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The token identity used as key (a SHA-256, never the token).
pub(crate) type Key = [u8; 32];

struct Entry<V> {
    /// Insertion number: tells the live entry from stale queue slots.
    seq: u64,
    until: Instant,
    value: V,
}

/// Insertion-ordered, capacity-bounded, per-entry deadlines.
pub(crate) struct Memo<V> {
    entries: HashMap<Key, Entry<V>>,
    /// Keys in insertion order; a slot whose `seq` no longer matches its
    /// entry (replaced or removed) is skipped.
    order: VecDeque<(u64, Key)>,
    next_seq: u64,
    capacity: usize,
    /// Live (unexpired) entries dropped to stay within capacity.
    evicted: u64,
}

impl<V: Clone> Memo<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Memo {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            capacity,
            evicted: 0,
        }
    }

    /// The value for `key` if it has not expired at `now`.
    pub(crate) fn get(&mut self, key: &Key, now: Instant) -> Option<V> {
        match self.entries.get(key) {
            Some(entry) if now < entry.until => Some(entry.value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Inserts (or replaces) `key` until `until`; returns how many live
    /// entries were evicted to make room.
    pub(crate) fn insert(&mut self, key: Key, until: Instant, value: V, now: Instant) -> u64 {
        if self.capacity == 0 || until <= now {
            return 0;
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.entries.insert(key, Entry { seq, until, value });
        self.order.push_back((seq, key));
        let mut evicted = 0;
        while self.entries.len() > self.capacity {
            let Some((seq, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.get(&key) {
                if entry.seq == seq {
                    if now < entry.until {
                        evicted += 1;
                    }
                    self.entries.remove(&key);
                }
            }
        }
        self.evicted = self.evicted.saturating_add(evicted);
        self.compact(now);
        evicted
    }

    /// Drops expired entries at the front and stale queue slots, so the
    /// queue stays within a small multiple of the live entries.
    fn compact(&mut self, now: Instant) {
        while let Some(&(seq, key)) = self.order.front() {
            let live = self
                .entries
                .get(&key)
                .is_some_and(|e| e.seq == seq && now < e.until);
            if live {
                break;
            }
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&key);
            }
            self.order.pop_front();
        }
        if self.order.len() > self.entries.len().saturating_mul(2).max(64) {
            let entries = &self.entries;
            self.order
                .retain(|(seq, key)| entries.get(key).is_some_and(|e| e.seq == *seq));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(i: u32) -> Key {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k
    }

    #[test]
    fn at_capacity_the_oldest_goes_and_the_newest_always_stays() {
        let now = Instant::now();
        let until = now + Duration::from_secs(60);
        let mut memo = Memo::new(1000);
        for i in 0..2000 {
            memo.insert(key(i), until, i, now);
        }
        assert_eq!(memo.len(), 1000);
        assert_eq!(memo.evicted(), 1000);
        // the newest 500 (the late arrivals that matter) are all there
        for i in 1500..2000 {
            assert_eq!(memo.get(&key(i), now), Some(i));
        }
        for i in 0..1000 {
            assert_eq!(memo.get(&key(i), now), None);
        }
        assert!(memo.order.len() <= 2 * 1000 + 64);
    }

    #[test]
    fn entries_expire_at_their_deadline_and_expired_ones_are_not_evictions() {
        let now = Instant::now();
        let mut memo = Memo::new(2);
        memo.insert(key(1), now + Duration::from_secs(1), 1, now);
        memo.insert(key(2), now + Duration::from_secs(10), 2, now);
        let later = now + Duration::from_secs(2);
        assert_eq!(memo.get(&key(1), later), None);
        assert_eq!(memo.get(&key(2), later), Some(2));
        memo.insert(key(3), later + Duration::from_secs(10), 3, later);
        memo.insert(key(4), later + Duration::from_secs(10), 4, later);
        assert_eq!(memo.get(&key(2), later), None);
        assert_eq!(memo.evicted(), 1, "only key 2 was live when dropped");
        // capacity 0 keeps nothing; a deadline in the past keeps nothing
        let mut none = Memo::new(0);
        none.insert(key(1), now + Duration::from_secs(1), 1, now);
        assert_eq!(none.get(&key(1), now), None);
        let mut memo = Memo::new(4);
        memo.insert(key(1), now, 1, now);
        assert_eq!(memo.len(), 0);
    }

    #[test]
    fn replacing_a_key_many_times_keeps_the_queue_bounded() {
        let now = Instant::now();
        let mut memo = Memo::new(8);
        for i in 0..10_000u32 {
            memo.insert(key(i % 3), now + Duration::from_secs(60), i, now);
        }
        assert_eq!(memo.len(), 3);
        assert!(memo.order.len() <= 64 + 6, "{}", memo.order.len());
        assert_eq!(memo.get(&key(9_999 % 3), now), Some(9_999));
    }
}

//! A compact string → `u32` index: a table of 64-bit keyed fingerprints
//! (SipHash with a per-process random key) instead of owned strings.
//!
//! The index stores no key; the caller keeps the strings (user ids, tokens)
//! in its own records and answers "does record `i` own this key?" through a
//! closure. That is what makes the final comparison the caller's (constant
//! time for tokens) and halves the memory of a million-entry map. Two
//! different keys with the same fingerprint (about 1 in 2^40 for a million
//! keys) go to a small spill map keyed by the full string.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// Hasher for keys that already are uniform 64-bit fingerprints.
#[derive(Default)]
pub(super) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Fingerprint → record index, plus the rare colliding keys in full.
#[derive(Default, Clone)]
pub(super) struct FpIndex {
    keys: RandomState,
    table: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    spill: HashMap<Box<[u8]>, u32>,
}

impl FpIndex {
    /// An index sized for `n` keys.
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            keys: RandomState::new(),
            table: HashMap::with_capacity_and_hasher(n, BuildHasherDefault::default()),
            spill: HashMap::new(),
        }
    }

    fn fingerprint(&self, key: &[u8]) -> u64 {
        self.keys.hash_one(key)
    }

    /// Add `key` → `index`. `owns(i)` must say whether record `i` already
    /// holds `key`; if one does, nothing changes and that `i` is returned.
    pub(super) fn insert(
        &mut self,
        key: &[u8],
        index: u32,
        owns: impl Fn(u32) -> bool,
    ) -> Result<(), u32> {
        let fp = self.fingerprint(key);
        match self.table.get(&fp) {
            None => {
                self.table.insert(fp, index);
                Ok(())
            }
            Some(&i) if owns(i) => Err(i),
            Some(_) => match self.spill.get(key) {
                Some(&i) => Err(i),
                None => {
                    self.spill.insert(key.into(), index);
                    Ok(())
                }
            },
        }
    }

    /// The record owning `key`, if any. `owns(i)` is asked at most once, for
    /// the fingerprint's candidate; the spill map compares in full.
    pub(super) fn get(&self, key: &[u8], owns: impl Fn(u32) -> bool) -> Option<u32> {
        let fp = self.fingerprint(key);
        match self.table.get(&fp) {
            Some(&i) if owns(i) => Some(i),
            Some(_) if !self.spill.is_empty() => self.spill.get(key).copied(),
            _ => None,
        }
    }

    /// Number of keys.
    pub(super) fn len(&self) -> usize {
        self.table.len() + self.spill.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_duplicate_and_spill() {
        let names = ["alice", "bob", "carol"];
        let mut idx = FpIndex::with_capacity(4);
        for (i, n) in names.iter().enumerate() {
            let owns = |j: u32| names.get(j as usize) == Some(n) && j as usize != i;
            assert_eq!(idx.insert(n.as_bytes(), i as u32, owns), Ok(()));
        }
        let owns_of = |key: &'static str| move |j: u32| names.get(j as usize) == Some(&key);
        assert_eq!(idx.get(b"bob", owns_of("bob")), Some(1));
        assert_eq!(idx.get(b"dave", owns_of("dave")), None);
        assert_eq!(idx.insert(b"bob", 7, owns_of("bob")), Err(1));
        assert_eq!(idx.len(), 3);

        // Force a collision: a record that does not own the key shares its slot.
        let mut forced = FpIndex::with_capacity(2);
        let fp = forced.fingerprint(b"x");
        forced.table.insert(fp, 0);
        assert_eq!(forced.insert(b"x", 1, |_| false), Ok(()));
        assert_eq!(forced.get(b"x", |_| false), Some(1));
        assert_eq!(forced.insert(b"x", 2, |_| false), Err(1));
    }
}

//! [`ChunkedMap`]: an ordered map `u32 -> V` kept as sorted chunks of at most [`CHUNK`] entries,
//! for the id index.
//!
//! The id index of a large, much-edited document holds about a million ranges, and every leaf
//! split re-points a few dozen of them at random places. A `BTreeMap` (11 keys per node) walks
//! five or six nodes for each, most of them cache misses once the map outgrows the caches. Here a
//! lookup is a binary search over the chunks' first keys (one small contiguous array) and a count
//! over one chunk (see [`rank`]); an insert or removal moves at most a chunk's entries.
//!
//! # Invariants
//! - Every chunk is non-empty and holds at most `CHUNK` entries, sorted by key, and the chunks
//!   are in key order (the last key of one is below the first of the next).
//! - `firsts[i]` is the first key of `chunks[i]`; `len` counts all entries.

/// Most entries in one chunk; a chunk that grows past it is cut in two.
const CHUNK: usize = 128;

#[derive(Clone, Debug)]
pub(crate) struct ChunkedMap<V> {
    chunks: Vec<Vec<(u32, V)>>,
    firsts: Vec<u32>,
    len: usize,
}

/// How many entries of `chunk` have a key `<= key` (`< key` when `strict`).
///
/// Not a binary search: a count over every 16th key finds the stretch of 16 that holds the
/// answer, and a count over that stretch the answer. Neither count has a chain of dependent
/// loads, so when the chunk is not in cache (a large map, looked up at random) its lines are
/// fetched together instead of one probe after another. On a map of a million entries this
/// took a fifth off integrating a remote operation.
fn rank<V>(chunk: &[(u32, V)], key: u32, strict: bool) -> usize {
    const STRIDE: usize = 16;
    let below = |e: &(u32, V)| (if strict { e.0 < key } else { e.0 <= key }) as usize;
    let coarse: usize = chunk.iter().step_by(STRIDE).map(below).sum();
    let Some(block) = coarse.checked_sub(1) else { return 0 };
    let start = block * STRIDE;
    let end = (start + STRIDE).min(chunk.len());
    start + chunk[start..end].iter().map(below).sum::<usize>()
}

impl<V> Default for ChunkedMap<V> {
    fn default() -> Self {
        ChunkedMap { chunks: Vec::new(), firsts: Vec::new(), len: 0 }
    }
}

impl<V: Copy> ChunkedMap<V> {
    /// The map of `entries`, which must be sorted by key without repeats.
    pub fn from_sorted(entries: Vec<(u32, V)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "sorted, distinct keys");
        let len = entries.len();
        // Three quarters full, leaving room for the next inserts.
        let chunks: Vec<Vec<(u32, V)>> = entries
            .chunks(CHUNK * 3 / 4)
            .map(|c| {
                let mut chunk = Vec::with_capacity(CHUNK + 1);
                chunk.extend_from_slice(c);
                chunk
            })
            .collect();
        let firsts = chunks.iter().map(|c| c[0].0).collect();
        ChunkedMap { chunks, firsts, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The chunk that holds `key` if any chunk can: the last whose first key is `<= key`.
    fn chunk_le(&self, key: u32) -> Option<usize> {
        self.firsts.partition_point(|f| *f <= key).checked_sub(1)
    }

    /// The entry with the largest key `<= key`, its value mutable, and the key of the entry
    /// after it, if any.
    pub fn entry_le_mut(&mut self, key: u32) -> Option<(u32, &mut V, Option<u32>)> {
        let c = self.chunk_le(key)?;
        let next_first = self.firsts.get(c + 1).copied();
        let chunk = &mut self.chunks[c];
        let i = rank(chunk, key, false) - 1;
        let next = chunk.get(i + 1).map(|e| e.0).or(next_first);
        let (k, v) = &mut chunk[i];
        Some((*k, v, next))
    }

    /// The entry with the largest key `<= key`.
    pub fn last_le(&self, key: u32) -> Option<(u32, V)> {
        let c = self.chunk_le(key)?;
        let chunk = &self.chunks[c];
        Some(chunk[rank(chunk, key, false) - 1])
    }

    /// The entry with the largest key `< key`.
    pub fn last_lt(&self, key: u32) -> Option<(u32, V)> {
        self.last_le(key.checked_sub(1)?)
    }

    /// The entry with the smallest key `>= key`.
    pub fn first_ge(&self, key: u32) -> Option<(u32, V)> {
        let c = self.chunk_le(key).unwrap_or(0);
        let chunk = self.chunks.get(c)?;
        let i = rank(chunk, key, true);
        // Past this chunk's last key: the next chunk's first entry.
        chunk.get(i).or_else(|| self.chunks.get(c + 1).map(|n| &n[0])).copied()
    }

    pub fn get(&self, key: u32) -> Option<V> {
        self.last_le(key).filter(|e| e.0 == key).map(|e| e.1)
    }

    /// Sets `key`'s value, adding the entry if there is none.
    pub fn insert(&mut self, key: u32, value: V) {
        // Past the last key (the id index's usual insert: a range leaving the tail): no search.
        let last = self.chunks.len().wrapping_sub(1);
        if self.chunks.get(last).and_then(|c| c.last()).is_some_and(|e| e.0 < key) {
            self.insert_at(last, self.chunks[last].len(), key, value);
            return;
        }
        let Some(c) = self.chunk_le(key) else {
            // Before every entry (or the map is empty): into the first chunk.
            if self.chunks.is_empty() {
                self.chunks.push(vec![(key, value)]);
                self.firsts.push(key);
            } else {
                self.chunks[0].insert(0, (key, value));
                self.firsts[0] = key;
                self.split_if_full(0);
            }
            self.len += 1;
            return;
        };
        let chunk = &mut self.chunks[c];
        let i = rank(chunk, key, true);
        if chunk.get(i).is_some_and(|e| e.0 == key) {
            chunk[i].1 = value;
            return;
        }
        self.insert_at(c, i, key, value);
    }

    /// Inserts a new entry as entry `i` of chunk `c` (where it belongs in key order).
    fn insert_at(&mut self, c: usize, i: usize, key: u32, value: V) {
        let chunk = &mut self.chunks[c];
        if chunk.len() == chunk.capacity() && chunk.len() >= CHUNK / 2 {
            // Room for the one entry over `CHUNK` that a split takes away, and no more: a chunk
            // left to grow by doubling would keep twice the memory it needs.
            chunk.reserve_exact((CHUNK + 1).saturating_sub(chunk.len()).max(1));
        }
        chunk.insert(i, (key, value));
        self.len += 1;
        self.split_if_full(c);
    }

    fn split_if_full(&mut self, c: usize) {
        if self.chunks[c].len() <= CHUNK {
            return;
        }
        let mut right = Vec::with_capacity(CHUNK + 1);
        right.extend(self.chunks[c].drain(CHUNK / 2..));
        self.firsts.insert(c + 1, right[0].0);
        self.chunks.insert(c + 1, right);
    }

    pub fn remove(&mut self, key: u32) -> Option<V> {
        let c = self.chunk_le(key)?;
        let chunk = &mut self.chunks[c];
        let i = rank(chunk, key, true);
        if chunk.get(i).is_none_or(|e| e.0 != key) {
            return None;
        }
        let (_, value) = chunk.remove(i);
        self.len -= 1;
        match chunk.first() {
            None => {
                self.chunks.remove(c);
                self.firsts.remove(c);
            }
            Some(first) => self.firsts[c] = first.0,
        }
        Some(value)
    }

    pub fn last(&self) -> Option<(u32, V)> {
        self.chunks.last().and_then(|c| c.last()).copied()
    }

    pub fn pop_last(&mut self) -> Option<(u32, V)> {
        let chunk = self.chunks.last_mut()?;
        let last = chunk.pop();
        if chunk.is_empty() {
            self.chunks.pop();
            self.firsts.pop();
        }
        self.len -= 1;
        last
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, V)> + '_ {
        self.chunks.iter().flatten().copied()
    }

    pub fn heap_size(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity() * std::mem::size_of::<(u32, V)>()).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<(u32, V)>>()
            + self.firsts.capacity() * 4
    }

    /// Panics unless the invariants in the module docs hold.
    pub fn check_invariants(&self) {
        assert_eq!(self.chunks.len(), self.firsts.len(), "one first key per chunk");
        let mut prev: Option<u32> = None;
        for (chunk, first) in self.chunks.iter().zip(&self.firsts) {
            assert!(!chunk.is_empty() && chunk.len() <= CHUNK, "chunk size {}", chunk.len());
            assert_eq!(chunk[0].0, *first, "first key of a chunk");
            for (k, _) in chunk {
                assert!(prev.is_none_or(|p| p < *k), "keys in order");
                prev = Some(*k);
            }
        }
        assert_eq!(self.iter().count(), self.len, "entry count");
    }
}

/// A seeded xorshift generator for tests: `rand(n)` is in `0 .. n`.
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut(u32) -> u32 {
    let mut x = seed;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Random operations against a `BTreeMap`, with every query compared.
    #[test]
    fn behaves_like_a_btreemap() {
        let mut rand = xorshift(0x9E37_79B9_7F4A_7C15);
        for round in 0..4 {
            let keys = [40, 400, 4000, 40000][round];
            let mut ours = ChunkedMap::default();
            let mut model = BTreeMap::new();
            for step in 0..20_000u32 {
                let k = rand(keys);
                match rand(6) {
                    0..=2 => {
                        ours.insert(k, step);
                        model.insert(k, step);
                    }
                    3 => assert_eq!(ours.remove(k), model.remove(&k)),
                    4 => {
                        assert_eq!(ours.pop_last(), model.pop_last());
                    }
                    _ => {
                        if let Some((key, v, next)) = ours.entry_le_mut(k) {
                            *v += 1;
                            *model.get_mut(&key).unwrap() += 1;
                            assert_eq!(next, model.range(key + 1..).next().map(|e| *e.0));
                        }
                    }
                }
                let q = rand(keys + 2);
                assert_eq!(ours.last_le(q), model.range(..=q).next_back().map(|(a, b)| (*a, *b)));
                assert_eq!(ours.last_lt(q), model.range(..q).next_back().map(|(a, b)| (*a, *b)));
                assert_eq!(ours.first_ge(q), model.range(q..).next().map(|(a, b)| (*a, *b)));
                assert_eq!(ours.get(q), model.get(&q).copied());
                assert_eq!(ours.last(), model.last_key_value().map(|(a, b)| (*a, *b)));
                assert_eq!(ours.len(), model.len());
                if step % 1000 == 0 {
                    ours.check_invariants();
                    assert!(ours.iter().eq(model.iter().map(|(a, b)| (*a, *b))));
                }
            }
            let rebuilt = ChunkedMap::from_sorted(model.iter().map(|(a, b)| (*a, *b)).collect());
            rebuilt.check_invariants();
            assert!(rebuilt.iter().eq(ours.iter()));
        }
    }
}

//! Compact ids inside one [`Rga`](super::Rga), the replica table, and the id → leaf index.
//!
//! The public API speaks [`OpId`] (a 16-byte UUID plus a counter). Inside the sequence every
//! character's id is stored as an [`Id`]: an index into this RGA's own replica table and a 32-bit
//! counter, 8 bytes in all. Indices are local to one `Rga` value and never leave it.
//!
//! # Invariants
//! - `Replicas::ids[i]` and `Replicas::index` are inverse maps.
//! - `IdIndex` maps every inserted id to the leaf that holds its run, and only those ids.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::chunked::ChunkedMap;
use crate::{OpId, ReplicaId};

/// A character's id inside one `Rga`: `(replica index, counter)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub(crate) struct Id {
    pub replica: u32,
    pub counter: u32,
}

impl Id {
    /// "No item": the start of the document as a left origin, the end as a right origin.
    pub const NONE: Id = Id { replica: u32::MAX, counter: u32::MAX };

    pub fn new(replica: u32, counter: u32) -> Self {
        Id { replica, counter }
    }

    pub fn is_none(self) -> bool {
        self.replica == u32::MAX
    }

    /// The id `by` characters later in the same run.
    pub fn plus(self, by: u32) -> Id {
        Id { replica: self.replica, counter: self.counter + by }
    }
}

/// The replica table: `ReplicaId` ↔ small index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Replicas {
    ids: Vec<ReplicaId>,
    index: HashMap<ReplicaId, u32, KeyedHash>,
}

/// A keyed multiply-fold hash for replica ids: every remote operation looks up two or three of
/// them, and SipHash was a sixth of the cost of integrating one. The keys are drawn from the
/// standard library's random source per table, so ids chosen by a client cannot be aimed at
/// one bucket without knowing them.
#[derive(Clone, Debug)]
struct KeyedHash {
    seed: u64,
    multiplier: u64,
}

impl Default for KeyedHash {
    fn default() -> Self {
        let random = std::hash::RandomState::new();
        KeyedHash { seed: random.hash_one(0u8), multiplier: random.hash_one(1u8) | 1 }
    }
}

impl BuildHasher for KeyedHash {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher { state: self.seed, multiplier: self.multiplier }
    }
}

struct KeyedHasher {
    state: u64,
    multiplier: u64,
}

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            let product = ((self.state ^ u64::from_le_bytes(word)) as u128) * self.multiplier as u128;
            self.state = (product as u64) ^ ((product >> 64) as u64);
        }
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

impl Replicas {
    pub fn get_or_insert(&mut self, replica: ReplicaId) -> u32 {
        if let Some(i) = self.index.get(&replica) {
            return *i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(replica);
        self.index.insert(replica, i);
        i
    }

    pub fn lookup(&self, replica: ReplicaId) -> Option<u32> {
        self.index.get(&replica).copied()
    }

    pub fn replica(&self, index: u32) -> ReplicaId {
        self.ids[index as usize]
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.ids.iter().copied()
    }

    /// The public form of an internal id; `None` for [`Id::NONE`].
    pub fn to_op_id(&self, id: Id) -> Option<OpId> {
        (!id.is_none()).then(|| OpId::new(self.replica(id.replica), id.counter as u64))
    }

    pub fn check_invariants(&self) {
        assert_eq!(self.ids.len(), self.index.len(), "replica table maps disagree");
        for (i, r) in self.ids.iter().enumerate() {
            assert_eq!(self.index.get(r), Some(&(i as u32)), "replica table maps disagree");
        }
    }
}

/// For each replica index, the counter ranges of its characters and the leaf holding them.
///
/// Ranges are disjoint and half-open. Neighbouring ranges in the same leaf are joined, so a
/// replica that types a paragraph in one place costs one entry.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdIndex {
    per_replica: Vec<Ranges>,
}

/// One replica's ranges: the one with the highest ids apart (new characters extend it, and
/// looking it up needs no search), the others in a map `start -> (end, leaf)`.
///
/// Invariant: `tail` is `None` only if `map` is empty, and every range in `map` ends at or
/// before `tail`'s start.
#[derive(Clone, Debug, Default)]
struct Ranges {
    map: ChunkedMap<(u32, u32)>,
    /// `(start, end, leaf)`.
    tail: Option<(u32, u32, u32)>,
}

impl Ranges {
    fn leaf_of(&self, counter: u32) -> Option<u32> {
        let (start, end, leaf) = self.tail?;
        if counter >= start {
            return (counter < end).then_some(leaf);
        }
        let (_, (end, leaf)) = self.map.last_le(counter)?;
        (counter < end).then_some(leaf)
    }

    fn set(&mut self, start: u32, end: u32, leaf: u32) {
        match &mut self.tail {
            None => {
                self.tail = Some((start, end, leaf));
                return;
            }
            Some(t) if start == t.1 && leaf == t.2 => {
                t.1 = end;
                return;
            }
            Some(t) if start >= t.1 => {
                self.map.insert(t.0, (t.1, t.2));
                *t = (start, end, leaf);
                return;
            }
            // Entirely before the tail (ids moving to a new leaf): the map alone changes.
            Some(t) if end <= t.0 => {
                set_in_map(&mut self.map, start, end, leaf);
                if end == t.0 && leaf == t.2 {
                    if let Some((s, _)) = self.map.last().filter(|l| l.1 .0 == t.0 && l.1 .1 == t.2) {
                        self.map.pop_last();
                        t.0 = s;
                    }
                }
                return;
            }
            Some(t) => {
                self.map.insert(t.0, (t.1, t.2));
            }
        }
        set_in_map(&mut self.map, start, end, leaf);
        self.tail = self.map.pop_last().map(|(s, (e, l))| (s, e, l));
    }

    fn heap_size(&self) -> usize {
        self.map.heap_size()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len() + self.tail.is_some() as usize
    }

    fn iter(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        self.map.iter().map(|(s, (e, l))| (s, e, l)).chain(self.tail)
    }
}

/// Records in `map` that ids `start .. end` live in `leaf`, splitting and joining entries.
fn set_in_map(map: &mut ChunkedMap<(u32, u32)>, start: u32, end: u32, leaf: u32) {
    // Fast path: the range lies inside one entry (the usual case when a leaf splits). The entry
    // is cut in place; its neighbours are not joined: a leaf split re-points maximal ranges of
    // consecutive ids to a new leaf, so no neighbour can point at that leaf already.
    if let Some((s, value)) = map.last_le_mut(start) {
        let (e, l) = *value;
        if end <= e {
            if l == leaf {
                return;
            }
            if s == start {
                *value = (end, leaf);
            } else {
                *value = (start, l);
                map.insert(start, (end, leaf));
            }
            if end < e {
                map.insert(end, (e, l));
            }
            return;
        }
    }
    // Trim an entry that begins before `start` and reaches into the range.
    if let Some((s, (e, l))) = map.last_lt(start) {
        if e > start {
            map.insert(s, (start, l));
            if e > end {
                map.insert(end, (e, l));
            }
        }
    }
    // Remove entries that begin inside the range, keeping any tail past `end`.
    while let Some((k, (e, l))) = map.first_ge(start).filter(|(k, _)| *k < end) {
        map.remove(k);
        if e > end {
            map.insert(end, (e, l));
        }
    }
    // Join with the neighbours when they point at the same leaf.
    let mut new_start = start;
    let mut new_end = end;
    if let Some((s, (e, l))) = map.last_lt(start) {
        if e == start && l == leaf {
            map.remove(s);
            new_start = s;
        }
    }
    if let Some((e, l)) = map.get(end) {
        if l == leaf {
            map.remove(end);
            new_end = e;
        }
    }
    map.insert(new_start, (new_end, leaf));
}

impl IdIndex {
    pub fn ensure_replica(&mut self, replica: u32) {
        while self.per_replica.len() <= replica as usize {
            self.per_replica.push(Ranges::default());
        }
    }

    /// The leaf that holds `id`, if the id is known.
    pub fn leaf_of(&self, id: Id) -> Option<u32> {
        self.per_replica.get(id.replica as usize)?.leaf_of(id.counter)
    }

    /// Records that ids `start .. end` of `replica` now live in `leaf`.
    pub fn set(&mut self, replica: u32, start: u32, end: u32, leaf: u32) {
        self.ensure_replica(replica);
        self.per_replica[replica as usize].set(start, end, leaf);
    }

    /// An index of `(replica, start, end, leaf)` ranges that do not overlap, in any order.
    /// The index of `per_replica[r]`: replica `r`'s ranges `(start, (end, leaf))` in order,
    /// each starting where the one before ends and neighbours in one leaf already joined.
    pub fn from_sorted(per_replica: Vec<Vec<(u32, (u32, u32))>>) -> IdIndex {
        let per_replica = per_replica
            .into_iter()
            .map(|mut joined| {
                let tail = joined.pop().map(|(s, (e, l))| (s, e, l));
                Ranges { map: ChunkedMap::from_sorted(joined), tail }
            })
            .collect();
        IdIndex { per_replica }
    }

    /// Every entry, as `(replica, start, end, leaf)`.
    pub fn entries(&self) -> impl Iterator<Item = (u32, u32, u32, u32)> + '_ {
        self.per_replica
            .iter()
            .enumerate()
            .flat_map(|(r, ranges)| ranges.iter().map(move |(s, e, l)| (r as u32, s, e, l)))
    }

    pub fn heap_size(&self) -> usize {
        self.per_replica.iter().map(Ranges::heap_size).sum::<usize>()
            + self.per_replica.capacity() * std::mem::size_of::<Ranges>()
    }

    /// Panics unless each replica's map keeps its own invariants and ends before its tail.
    pub fn check_invariants(&self) {
        for ranges in &self.per_replica {
            ranges.map.check_invariants();
            match (ranges.tail, ranges.map.last()) {
                (None, last) => assert!(last.is_none(), "a map without a tail"),
                (Some((start, end, _)), last) => {
                    assert!(start < end, "empty tail");
                    assert!(last.is_none_or(|(_, (e, _))| e <= start), "map ends before the tail");
                }
            }
        }
    }

    #[cfg(test)]
    pub fn entry_count(&self) -> usize {
        self.per_replica.iter().map(Ranges::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_inside_the_tail_and_before_it() {
        let mut ix = IdIndex::default();
        ix.set(0, 0, 4, 1);
        ix.set(0, 4, 8, 2);
        ix.set(0, 8, 9, 2);
        ix.set(0, 2, 6, 3);
        let leaves: Vec<_> = (0..10).map(|c| ix.leaf_of(Id::new(0, c))).collect();
        let s = Some;
        assert_eq!(leaves, [s(1), s(1), s(3), s(3), s(3), s(3), s(2), s(2), s(2), None]);
        ix.set(0, 6, 9, 4);
        let leaves: Vec<_> = (0..10).map(|c| ix.leaf_of(Id::new(0, c))).collect();
        assert_eq!(leaves, [s(1), s(1), s(3), s(3), s(3), s(3), s(4), s(4), s(4), None]);
        assert_eq!(ix.entries().collect::<Vec<_>>(), [(0, 0, 2, 1), (0, 2, 6, 3), (0, 6, 9, 4)]);
    }

    #[test]
    fn set_cuts_ranges_in_place() {
        let mut ix = IdIndex::default();
        ix.set(0, 0, 10, 1);
        ix.set(0, 3, 6, 2);
        assert_eq!(ix.leaf_of(Id::new(0, 2)), Some(1));
        assert_eq!(ix.leaf_of(Id::new(0, 3)), Some(2));
        assert_eq!(ix.leaf_of(Id::new(0, 6)), Some(1));
        assert_eq!(ix.leaf_of(Id::new(0, 10)), None);
        // Re-pointed again (ids only ever move to a new leaf): the entry is cut in place.
        ix.set(0, 3, 6, 3);
        ix.set(0, 4, 5, 4);
        let leaves: Vec<_> = (0..11).map(|c| ix.leaf_of(Id::new(0, c))).collect();
        let s = Some;
        assert_eq!(leaves, [s(1), s(1), s(1), s(3), s(4), s(3), s(1), s(1), s(1), s(1), None]);
        assert_eq!(ix.entry_count(), 5);
        // New ids next to the tail's in the same leaf extend it.
        ix.set(0, 10, 12, 1);
        assert_eq!(ix.entry_count(), 5);
        assert_eq!(ix.leaf_of(Id::new(0, 11)), Some(1));
    }
}

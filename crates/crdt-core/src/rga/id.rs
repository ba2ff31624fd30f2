//! Compact ids inside one [`Rga`](super::Rga), the replica table, and the id → leaf index.
//!
//! The public API speaks [`OpId`] (a 16-byte UUID plus a counter). Inside the sequence every
//! character's id is stored as an [`Id`]: an index into this RGA's own replica table and a 32-bit
//! counter, 8 bytes in all. Indices are local to one `Rga` value and never leave it.
//!
//! # Invariants
//! - `Replicas::ids[i]` and `Replicas::index` are inverse maps.
//! - `IdIndex` maps every inserted id to the leaf that holds its run, and only those ids. (A
//!   loaded `Rga` has none until first needed: it is then built from the tree, see
//!   [`IdIndex::from_tree`].)

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::chunked::ChunkedMap;
use super::node::{Tree, NIL};
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
/// A replica's counters are dense (its characters are `0 .. n`, see
/// [`Rga::apply`](super::Rga::apply)), so a range is stored as its start and leaf alone: it ends
/// where the next begins. Neighbouring ranges in one leaf are mostly joined, so a replica that
/// types a paragraph in one place costs one entry. A replica whose characters are scattered
/// (about as many ranges as characters: edits at random places) is kept as one leaf per
/// character instead, which is no larger and needs no search; see [`Ranges`].
#[derive(Clone, Debug, Default)]
pub(crate) struct IdIndex {
    per_replica: Vec<Ranges>,
}

/// One replica's part of the index.
///
/// It starts [`Sparse`] and turns [`Dense`](Ranges::Dense) once it holds at least
/// [`DENSE_MIN_RANGES`] ranges averaging under two characters each: then a sparse entry (8 bytes
/// and a share of its chunk) costs more than the 4 bytes a character costs dense, and every
/// lookup and every re-pointing of a scattered character, each a cache miss in a large
/// document, becomes a single array access. It never turns back (a character costs 4 bytes at
/// most).
#[derive(Clone, Debug)]
enum Ranges {
    Sparse(Sparse),
    /// `leaf[counter]`.
    Dense(Vec<u32>),
}

/// Below this many ranges a replica stays [`Ranges::Sparse`] whatever their lengths.
const DENSE_MIN_RANGES: usize = 256;

impl Default for Ranges {
    fn default() -> Self {
        Ranges::Sparse(Sparse::default())
    }
}

impl Ranges {
    fn leaf_of(&self, counter: u32) -> Option<u32> {
        match self {
            Ranges::Sparse(s) => s.leaf_of(counter),
            Ranges::Dense(d) => d.get(counter as usize).copied(),
        }
    }

    fn set(&mut self, start: u32, end: u32, leaf: u32) {
        match self {
            Ranges::Sparse(s) => {
                let entries = s.map.len();
                s.set(start, end, leaf);
                // Only a map that grew can have become scattered (typing, which extends the
                // tail, never checks).
                if s.map.len() > entries && s.scattered() {
                    *self = Ranges::Dense(s.to_dense());
                }
            }
            Ranges::Dense(d) => {
                let (start, end) = (start as usize, end as usize);
                debug_assert!(start <= d.len(), "counters are dense");
                if end > d.len() {
                    if d.len() == d.capacity() {
                        // Grow by a quarter, not double: the array is most of the index.
                        d.reserve_exact(end - d.len() + d.len() / 4);
                    }
                    d.resize(end, leaf);
                }
                d[start.min(end)..end].fill(leaf);
            }
        }
    }

    fn heap_size(&self) -> usize {
        match self {
            Ranges::Sparse(s) => s.map.heap_size(),
            Ranges::Dense(d) => d.capacity() * 4,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.iter().count()
    }

    /// `(start, end, leaf)` of every range, in order (for a dense replica: every stretch of
    /// characters in one leaf).
    fn iter(&self) -> Box<dyn Iterator<Item = (u32, u32, u32)> + '_> {
        match self {
            Ranges::Sparse(s) => Box::new(s.iter()),
            Ranges::Dense(d) => {
                let mut at = 0usize;
                Box::new(std::iter::from_fn(move || {
                    let leaf = *d.get(at)?;
                    let start = at;
                    while d.get(at) == Some(&leaf) {
                        at += 1;
                    }
                    Some((start as u32, at as u32, leaf))
                }))
            }
        }
    }
}

/// A replica's ranges kept sparse: the one with the highest ids apart (new characters extend
/// it, and looking it up needs no search), the others in a map `start -> leaf`, each ending
/// where the next starts and the last where the tail starts.
///
/// Invariant: `tail` is `None` only if `map` is empty; the map's first key is 0 (or, with an
/// empty map, the tail's start is), and every key is below the tail's start.
#[derive(Clone, Debug, Default)]
struct Sparse {
    map: ChunkedMap<u32>,
    /// `(start, end, leaf)`.
    tail: Option<(u32, u32, u32)>,
}

impl Sparse {
    /// True if these ranges have become many and short (see [`Ranges`]).
    fn scattered(&self) -> bool {
        let ranges = self.map.len() + 1;
        ranges >= DENSE_MIN_RANGES && self.tail.is_some_and(|(_, end, _)| ranges * 2 > end as usize)
    }

    /// The dense form of these ranges.
    #[cold]
    fn to_dense(&self) -> Vec<u32> {
        let end = self.tail.map_or(0, |t| t.1);
        let mut dense = Vec::with_capacity(end as usize + end as usize / 4);
        for (start, end, leaf) in self.iter() {
            debug_assert_eq!(start as usize, dense.len());
            dense.resize(end as usize, leaf);
        }
        dense
    }

    fn leaf_of(&self, counter: u32) -> Option<u32> {
        let (start, end, leaf) = self.tail?;
        if counter >= start {
            return (counter < end).then_some(leaf);
        }
        self.map.last_le(counter).map(|(_, leaf)| leaf)
    }

    fn set(&mut self, start: u32, end: u32, leaf: u32) {
        let Some(t) = &mut self.tail else {
            debug_assert_eq!(start, 0, "a replica's first characters");
            self.tail = Some((start, end, leaf));
            return;
        };
        if start >= t.1 {
            // New characters.
            debug_assert_eq!(start, t.1, "counters are dense");
            if leaf == t.2 {
                t.1 = end;
            } else {
                self.map.insert(t.0, t.2);
                *t = (start, end, leaf);
            }
            return;
        }
        if end <= t.0 {
            // Entirely before the tail (ids moving to a new leaf): the map alone changes.
            set_in_map(&mut self.map, start, end, leaf, t.0);
            if let Some((s, _)) = self.map.last().filter(|l| l.1 == t.2) {
                self.map.pop_last();
                t.0 = s;
            }
            return;
        }
        let limit = t.1.max(end);
        self.map.insert(t.0, t.2);
        set_in_map(&mut self.map, start, end, leaf, limit);
        let (s, l) = self.map.pop_last().expect("the old tail's entry or a later one");
        *t = (s, limit, l);
    }

    /// `(start, end, leaf)` of every range, in order.
    fn iter(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        let mut entries = self.map.iter().peekable();
        let tail_start = self.tail.map_or(0, |t| t.0);
        std::iter::from_fn(move || {
            let (s, l) = entries.next()?;
            let e = entries.peek().map_or(tail_start, |n| n.0);
            Some((s, e, l))
        })
        .chain(self.tail)
    }
}

/// Records in `map` that ids `start .. end` live in `leaf`, where the map's ranges cover
/// `0 .. limit` and `end <= limit`: splits the ranges it cuts, drops the ones it covers, and joins
/// the result with neighbours in the same leaf.
fn set_in_map(map: &mut ChunkedMap<u32>, start: u32, end: u32, leaf: u32, limit: u32) {
    // Fast path: the range lies inside one entry (the usual case when a leaf splits). The entry
    // is cut in place; its neighbours are not joined: a leaf split re-points maximal ranges of
    // consecutive ids to a new leaf, so no neighbour can point at that leaf already.
    if let Some((s, value, next)) = map.entry_le_mut(start) {
        let stop = next.unwrap_or(limit);
        if end <= stop {
            let old = *value;
            if old == leaf {
                return;
            }
            if s == start {
                *value = leaf;
            } else {
                map.insert(start, leaf);
            }
            if end < stop {
                map.insert(end, old);
            }
            return;
        }
    }
    // The leaf of the ids from `end` on, if no range starts there: they keep it.
    let after = map.last_le(end).filter(|(k, _)| *k != end && end < limit).map(|(_, l)| l);
    // Drop the ranges that begin inside the range.
    while let Some((k, _)) = map.first_ge(start).filter(|(k, _)| *k < end) {
        map.remove(k);
    }
    // Join with the neighbours when they point at the same leaf.
    if map.last_lt(start).is_none_or(|(_, l)| l != leaf) {
        map.insert(start, leaf);
    }
    match after {
        Some(l) if l != leaf => map.insert(end, l),
        Some(_) => {}
        None => {
            if map.get(end) == Some(leaf) {
                map.remove(end);
            }
        }
    }
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
    #[inline]
    pub fn set(&mut self, replica: u32, start: u32, end: u32, leaf: u32) {
        // Typing on in the same leaf (most keystrokes): the tail grows.
        if let Some(Ranges::Sparse(Sparse { tail: Some(t), .. })) = self.per_replica.get_mut(replica as usize) {
            if start == t.1 && leaf == t.2 {
                t.1 = end;
                return;
            }
        }
        self.set_slow(replica, start, end, leaf);
    }

    #[inline(never)]
    fn set_slow(&mut self, replica: u32, start: u32, end: u32, leaf: u32) {
        self.ensure_replica(replica);
        self.per_replica[replica as usize].set(start, end, leaf);
    }

    /// The index of `per_replica[r]`: replica `r`'s ranges `(start, leaf)` in order, each
    /// ending where the next starts and the last at `ends[r]`, the first starting at 0.
    pub fn from_sorted(per_replica: Vec<Vec<(u32, u32)>>, ends: &[u32]) -> IdIndex {
        debug_assert_eq!(per_replica.len(), ends.len(), "one end per replica");
        let per_replica = per_replica
            .into_iter()
            .zip(ends)
            .map(|(mut ranges, end)| {
                let tail = ranges.pop().map(|(s, l)| (s, *end, l));
                let sparse = Sparse { map: ChunkedMap::from_sorted(ranges), tail };
                if sparse.scattered() {
                    Ranges::Dense(sparse.to_dense())
                } else {
                    Ranges::Sparse(sparse)
                }
            })
            .collect();
        IdIndex { per_replica }
    }

    /// The index of `tree`, whose runs cover each replica `r`'s counters `0 .. chars[r]`
    /// exactly once (the tree's invariant), in O(runs + characters / 64), without sorting: a
    /// bitmap of run starts gives each run its rank among its replica's runs, which is its
    /// place in id order.
    pub fn from_tree(tree: &Tree, chars: &[u32]) -> IdIndex {
        // Calls `f(first id, leaf)` for every run in document order.
        let each_run = |f: &mut dyn FnMut(Id, u32)| {
            let mut leaf = tree.first_leaf;
            while leaf != NIL {
                for run in &tree.leaves[leaf as usize].runs {
                    f(run.id, leaf);
                }
                leaf = tree.leaves[leaf as usize].next;
            }
        };
        // Per replica: where its words start in `starts` (and, last, the end of the words).
        let mut word_base = Vec::with_capacity(chars.len() + 1);
        let mut words = 0usize;
        for c in chars {
            word_base.push(words);
            words += (*c as usize).div_ceil(64);
        }
        word_base.push(words);
        let mut starts = vec![0u64; words];
        let mut runs = 0usize;
        each_run(&mut |id, _| {
            let bit = id.counter as usize;
            starts[word_base[id.replica as usize] + bit / 64] |= 1 << (bit % 64);
            runs += 1;
        });
        // Runs before each word, counted over all replicas in order: a run's place in id order.
        let mut before = Vec::with_capacity(words + 1);
        let mut count = 0u32;
        for w in &starts {
            before.push(count);
            count += w.count_ones();
        }
        before.push(count);
        debug_assert_eq!(count as usize, runs, "runs start at distinct ids");
        let mut by_id = vec![(0u32, 0u32); runs];
        each_run(&mut |id, leaf| {
            let bit = id.counter as usize;
            let word = word_base[id.replica as usize] + bit / 64;
            let place = before[word] + (starts[word] & ((1u64 << (bit % 64)) - 1)).count_ones();
            by_id[place as usize] = (id.counter, leaf);
        });
        // Each replica's runs in id order, neighbours in one leaf joined.
        let per_replica = (0..chars.len())
            .map(|r| {
                let places = &by_id[before[word_base[r]] as usize..before[word_base[r + 1]] as usize];
                let mut joined: Vec<(u32, u32)> = Vec::with_capacity(places.len());
                for &(start, leaf) in places {
                    if joined.last().is_none_or(|(_, l)| *l != leaf) {
                        joined.push((start, leaf));
                    }
                }
                joined
            })
            .collect();
        IdIndex::from_sorted(per_replica, chars)
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

    /// Panics unless each replica's map keeps its own invariants and its ranges cover the
    /// replica's counters from 0, the map ending where the tail starts.
    pub fn check_invariants(&self) {
        for ranges in &self.per_replica {
            let Ranges::Sparse(ranges) = ranges else {
                // Dense: any array is a valid index; what it says is checked by the caller.
                continue;
            };
            ranges.map.check_invariants();
            match ranges.tail {
                None => assert!(ranges.map.last().is_none(), "a map without a tail"),
                Some((start, end, _)) => {
                    assert!(start < end, "empty tail");
                    let first = ranges.map.iter().next().map_or(start, |(k, _)| k);
                    assert_eq!(first, 0, "ranges start at counter 0");
                    assert!(ranges.map.last().is_none_or(|(k, _)| k < start), "map ends before the tail");
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

    /// Random re-pointing and new ids against a plain leaf-per-counter array: half the rounds
    /// scatter single characters over many leaves (the index turns dense), half move longer
    /// stretches among a few leaves.
    #[test]
    fn behaves_like_an_array() {
        let mut rand = super::super::chunked::xorshift(0x2545_F491_4F6C_DD1D);
        for round in 0..20 {
            let scattered = round % 2 == 0;
            let (leaves, longest) = if scattered { (1000, 1) } else { (6, 12) };
            let mut ix = IdIndex::default();
            let mut model: Vec<u32> = Vec::new();
            for step in 0..2_000 {
                let leaf = rand(leaves);
                if model.is_empty() || rand(4) == 0 {
                    let len = 1 + rand(longest.min(5));
                    ix.set(0, model.len() as u32, model.len() as u32 + len, leaf);
                    model.extend(std::iter::repeat_n(leaf, len as usize));
                } else {
                    let start = rand(model.len() as u32);
                    let end = start + 1 + rand((model.len() as u32 - start).min(longest));
                    ix.set(0, start, end, leaf);
                    model[start as usize..end as usize].fill(leaf);
                }
                if step % 50 == 0 || step < 50 {
                    ix.check_invariants();
                    let got: Vec<_> = (0..=model.len() as u32).map(|c| ix.leaf_of(Id::new(0, c))).collect();
                    let want: Vec<_> = model.iter().map(|l| Some(*l)).chain([None]).collect();
                    assert_eq!(got, want, "round {round}, step {step}");
                    let covered: u32 = ix.entries().map(|(_, s, e, _)| e - s).sum();
                    assert_eq!(covered as usize, model.len());
                }
            }
            if scattered {
                assert!(matches!(ix.per_replica[0], Ranges::Dense(_)), "round {round} turned dense");
            }
            // Built again from its entries, the index says the same.
            let entries: Vec<(u32, u32)> = ix.entries().map(|(_, s, _, l)| (s, l)).collect();
            let rebuilt = IdIndex::from_sorted(vec![entries], &[model.len() as u32]);
            rebuilt.check_invariants();
            assert!(rebuilt.entries().eq(ix.entries()), "round {round}: rebuilt");
        }
    }

    /// Typing long stretches keeps a replica sparse: a few entries, not one per character.
    #[test]
    fn typing_stays_sparse() {
        let mut ix = IdIndex::default();
        for i in 0..2_000u32 {
            ix.set(0, i * 100, (i + 1) * 100, i / 40);
        }
        assert!(matches!(ix.per_replica[0], Ranges::Sparse(_)));
        assert_eq!(ix.entry_count(), 50);
        assert!(ix.heap_size() < 4_000, "{} bytes", ix.heap_size());
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

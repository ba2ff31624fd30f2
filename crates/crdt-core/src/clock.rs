//! Identity and causality: [`ReplicaId`], [`OpId`], [`Lamport`] and [`VersionVector`].
//!
//! A replica is one copy of a document being edited (one browser tab, one server). Every replica
//! has a random [`ReplicaId`] (a UUID v4), so two replicas never need to agree on names. Types that
//! store many ids map each `ReplicaId` to a small index of their own; the public API and the wire
//! format always speak `ReplicaId`.
//!
//! # Invariants
//! - A [`VersionVector`] never stores an entry with value 0: "never seen anything from this
//!   replica" and "no entry" are the same state, so equality and hashing are structural.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity of one replica of a document: a random UUID v4.
///
/// Ordering of `ReplicaId`s is the byte order of the UUID. It is used only to break ties between
/// concurrent operations deterministically; it carries no meaning.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaId(Uuid);

// The UUID's byte order, as one comparison of two integers: `Uuid`'s derived order compares
// byte arrays through `memcmp`, and replica ids are compared on every version lookup.
impl Ord for ReplicaId {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_u128().cmp(&other.0.as_u128())
    }
}

impl PartialOrd for ReplicaId {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl ReplicaId {
    /// A new random replica id.
    pub fn random() -> Self {
        ReplicaId(Uuid::new_v4())
    }

    /// A replica id from a fixed number. Tests use it to control tie-breaking order.
    pub const fn from_u128(value: u128) -> Self {
        ReplicaId(Uuid::from_u128(value))
    }

    /// The underlying UUID.
    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for ReplicaId {
    fn from(value: Uuid) -> Self {
        ReplicaId(value)
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first 8 hex digits are enough to tell replicas apart in test output.
        let s = self.0.simple().to_string();
        write!(f, "R{}", &s[..8])
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The id of one unit of an operation: the `counter`-th unit made by `replica`.
///
/// For text, one unit is one inserted character; counters start at 0 and grow by one per unit, so
/// an insert of `n` characters with id `(r, c)` owns the ids `(r, c) .. (r, c + n)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct OpId {
    /// Who made it.
    pub replica: ReplicaId,
    /// The replica's own running count.
    pub counter: u64,
}

impl OpId {
    /// Shorthand constructor.
    pub const fn new(replica: ReplicaId, counter: u64) -> Self {
        OpId { replica, counter }
    }
}

/// A Lamport timestamp with its replica as tie-breaker: a total order consistent with causality.
///
/// If operation `a` happened before `b` (the replica that made `b` had seen `a`), then
/// `a < b`. Concurrent operations are ordered by `time` and then by `replica`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Debug)]
pub struct Lamport {
    /// The logical time: one more than the largest time the replica had seen.
    pub time: u64,
    /// The replica that made the timestamp.
    pub replica: ReplicaId,
}

/// For each replica, how many of its changes (or units) have been seen: a contiguous prefix.
///
/// `get(r) == n` means "everything `r` numbered `1..=n` has been seen".
///
/// # Invariants
/// - No entry is 0.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "BTreeMap<ReplicaId, u64>")]
pub struct VersionVector(BTreeMap<ReplicaId, u64>);

impl VersionVector {
    /// The empty version: nothing seen.
    pub const fn new() -> Self {
        VersionVector(BTreeMap::new())
    }

    /// How much of `replica` has been seen (0 if nothing).
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.0.get(&replica).copied().unwrap_or(0)
    }

    /// Sets the entry for `replica`. Setting 0 removes it.
    pub fn set(&mut self, replica: ReplicaId, value: u64) {
        if value == 0 {
            self.0.remove(&replica);
        } else {
            self.0.insert(replica, value);
        }
    }

    /// Counts one more change of `replica` (one lookup); returns its new entry.
    pub fn increment(&mut self, replica: ReplicaId) -> u64 {
        // Nearly always the entry exists (a replica's second change on): `get_mut` finds it
        // without the cost of `entry`.
        if let Some(entry) = self.0.get_mut(&replica) {
            *entry += 1;
            return *entry;
        }
        let entry = self.0.entry(replica).or_insert(0);
        *entry += 1;
        *entry
    }

    /// Raises the entry for `replica` to at least `value`.
    pub fn raise(&mut self, replica: ReplicaId, value: u64) {
        if value > self.get(replica) {
            self.0.insert(replica, value);
        }
    }

    /// True if every entry of `self` is at most the matching entry of `other`.
    pub fn le(&self, other: &VersionVector) -> bool {
        self.0.iter().all(|(r, v)| *v <= other.get(*r))
    }

    /// True if neither is `le` the other.
    pub fn concurrent_with(&self, other: &VersionVector) -> bool {
        !self.le(other) && !other.le(self)
    }

    /// Pointwise maximum (the least upper bound).
    pub fn merge(&mut self, other: &VersionVector) {
        for (r, v) in &other.0 {
            self.raise(*r, *v);
        }
    }

    /// The entries, in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.0.iter().map(|(r, v)| (*r, *v))
    }

    /// Number of replicas with a non-zero entry.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sum of all entries: the number of things seen.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Checks the documented invariants; panics with a description if one is broken.
    pub fn check_invariants(&self) {
        assert!(self.0.values().all(|v| *v > 0), "version vector holds a zero entry");
    }
}

/// Deserializing goes through this, so zero entries in untrusted input are dropped.
impl From<BTreeMap<ReplicaId, u64>> for VersionVector {
    fn from(mut map: BTreeMap<ReplicaId, u64>) -> Self {
        map.retain(|_, v| *v > 0);
        VersionVector(map)
    }
}

impl fmt::Debug for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl FromIterator<(ReplicaId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (ReplicaId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (r, v) in iter {
            vv.raise(r, v);
        }
        vv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Replica ids order as their UUIDs' bytes (the order ties between concurrent edits
        /// are broken by, on every replica: it must never change).
        #[test]
        fn replica_ids_order_as_their_bytes(a: [u8; 16], b: [u8; 16], shared in 0usize..16) {
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            let (x, y) = (ReplicaId::from(Uuid::from_bytes(a)), ReplicaId::from(Uuid::from_bytes(b)));
            proptest::prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            proptest::prop_assert_eq!(x == y, a == b);
        }
    }

    #[test]
    fn version_vector_order_and_merge() {
        let a = ReplicaId::from_u128(1);
        let b = ReplicaId::from_u128(2);
        let x: VersionVector = [(a, 2), (b, 1)].into_iter().collect();
        let y: VersionVector = [(a, 1), (b, 3)].into_iter().collect();
        assert!(x.concurrent_with(&y));
        let mut m = x.clone();
        m.merge(&y);
        assert!(x.le(&m) && y.le(&m));
        assert_eq!(m.get(a), 2);
        assert_eq!(m.get(b), 3);
        assert_eq!(m.total(), 5);
    }

    #[test]
    fn zero_entries_are_absent() {
        let a = ReplicaId::from_u128(1);
        let mut v = VersionVector::new();
        v.set(a, 3);
        v.set(a, 0);
        assert_eq!(v, VersionVector::new());
        v.check_invariants();
    }
}

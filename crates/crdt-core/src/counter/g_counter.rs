//! The grow-only counter [`GCounter`] and its operation [`GCounterOp`].
//!
//! Each replica owns one entry, its running total. `increment` raises the local entry and returns
//! the new total as the operation to send; `apply` and `merge` take pointwise maxima. See the
//! [`counter`](super) module docs for why the operation carries a total rather than a delta.
//!
//! # Invariants
//! - No entry is 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Applied, ApplyError, ReplicaId};

/// A grow-only counter: the sum of one running total per replica.
///
/// # Invariants
/// - No entry is 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GCounter {
    counts: BTreeMap<ReplicaId, u64>,
}

/// The operation sent by [`GCounter::increment`]: the replica's new running total.
///
/// Applying it takes the maximum with the stored total, so it is idempotent and commutative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GCounterOp {
    /// The replica whose total this is.
    pub replica: ReplicaId,
    /// That replica's running total after the increment.
    pub total: u64,
}

impl GCounter {
    /// An empty counter with value 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` to `replica`'s total (saturating at `u64::MAX`) and returns the operation to send.
    ///
    /// An increment by 0 changes nothing; the returned operation then re-states the current
    /// total and applies elsewhere as a duplicate or a harmless catch-up.
    pub fn increment(&mut self, replica: ReplicaId, n: u64) -> GCounterOp {
        let total = self.get(replica).saturating_add(n);
        let op = GCounterOp { replica, total };
        self.raise(replica, total);
        self.debug_check();
        op
    }

    /// Applies a (possibly remote, possibly repeated) operation.
    ///
    /// Returns [`Applied::Duplicate`] when the stored total is already at least `op.total`. Never
    /// fails; the `Result` keeps the signature uniform with the other CRDTs.
    pub fn apply(&mut self, op: &GCounterOp) -> Result<Applied, ApplyError> {
        let applied = if self.raise(op.replica, op.total) { Applied::Changed } else { Applied::Duplicate };
        self.debug_check();
        Ok(applied)
    }

    /// Merges another state into this one: the pointwise maximum of the totals.
    pub fn merge(&mut self, other: &Self) {
        for (replica, total) in &other.counts {
            self.raise(*replica, *total);
        }
        self.debug_check();
    }

    /// The counter's value: the sum of all totals, saturating at `u64::MAX`.
    pub fn value(&self) -> u64 {
        self.counts.values().fold(0u64, |sum, total| sum.saturating_add(*total))
    }

    /// The running total of one replica (0 if it never incremented).
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.counts.get(&replica).copied().unwrap_or(0)
    }

    /// The non-zero totals, in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.counts.iter().map(|(r, total)| (*r, *total))
    }

    /// Checks the documented invariants; panics with a description if one is broken.
    pub fn check_invariants(&self) {
        if let Err(message) = self.validate() {
            panic!("GCounter invariant broken: {message}");
        }
    }

    /// Checks the documented invariants without panicking.
    ///
    /// Call it after deserializing a state from untrusted bytes.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.counts.values().any(|total| *total == 0) {
            return Err("g-counter holds a zero entry");
        }
        Ok(())
    }

    /// Raises `replica`'s total to at least `total`; returns whether anything changed.
    fn raise(&mut self, replica: ReplicaId, total: u64) -> bool {
        // A zero total is never larger than the stored one, so no zero entry is ever inserted.
        if total > self.get(replica) {
            self.counts.insert(replica, total);
            true
        } else {
            false
        }
    }

    fn debug_check(&self) {
        if cfg!(any(debug_assertions, feature = "check-invariants")) {
            self.check_invariants();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId::from_u128(1);
    const B: ReplicaId = ReplicaId::from_u128(2);

    #[test]
    fn increments_sum_across_replicas() {
        let mut a = GCounter::new();
        let mut b = GCounter::new();
        let op1 = a.increment(A, 3);
        let op2 = b.increment(B, 2);
        let op3 = a.increment(A, 1);
        assert_eq!(op3, GCounterOp { replica: A, total: 4 });
        assert_eq!(b.apply(&op3), Ok(Applied::Changed));
        assert_eq!(b.apply(&op1), Ok(Applied::Duplicate), "older op is superseded");
        assert_eq!(a.apply(&op2), Ok(Applied::Changed));
        assert_eq!(a.apply(&op2), Ok(Applied::Duplicate), "re-delivery is a no-op");
        assert_eq!(a, b);
        assert_eq!(a.value(), 6);
        assert_eq!(a.get(A), 4);
        assert_eq!(a.get(ReplicaId::from_u128(9)), 0);
    }

    #[test]
    fn merge_is_pointwise_max() {
        let mut a = GCounter::new();
        let mut b = GCounter::new();
        a.increment(A, 5);
        b.increment(A, 2);
        b.increment(B, 7);
        a.merge(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![(A, 5), (B, 7)]);
        assert_eq!(a.value(), 12);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let mut c = GCounter::new();
        c.increment(A, u64::MAX - 1);
        assert_eq!(c.increment(A, 10).total, u64::MAX);
        c.increment(B, 5);
        assert_eq!(c.value(), u64::MAX);
    }

    #[test]
    fn zero_increment_stores_nothing() {
        let mut c = GCounter::new();
        let op = c.increment(A, 0);
        assert_eq!(op.total, 0);
        assert_eq!(c, GCounter::new());
        assert_eq!(c.apply(&op), Ok(Applied::Duplicate));
        c.check_invariants();
    }

    #[test]
    fn validate_rejects_zero_entries() {
        let mut c = GCounter::new();
        c.counts.insert(A, 0);
        assert!(c.validate().is_err());
    }
}

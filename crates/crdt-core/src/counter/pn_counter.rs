//! The increment/decrement counter [`PnCounter`] and its operation [`PnCounterOp`].
//!
//! A `PnCounter` is two [`GCounter`]s, one of increments and one of decrements; its value is
//! their difference. Both halves only grow, so the operation carries the replica's two running
//! totals and applying it is a pointwise `max`, exactly as for [`GCounter`].
//!
//! # Invariants
//! - Both halves satisfy the [`GCounter`] invariants (no zero entries).

use serde::{Deserialize, Serialize};

use super::{GCounter, GCounterOp};
use crate::{Applied, ApplyError, ReplicaId};

/// A counter that can go up and down: increments minus decrements.
///
/// # Invariants
/// - Both halves satisfy the [`GCounter`] invariants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    increments: GCounter,
    decrements: GCounter,
}

/// The operation sent by [`PnCounter::increment`] and [`PnCounter::decrement`]: the replica's
/// two running totals after the change.
///
/// Applying it takes the maximum of each total with the stored one, so it is idempotent and
/// commutative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounterOp {
    /// The replica whose totals these are.
    pub replica: ReplicaId,
    /// The replica's running total of increments.
    pub increments: u64,
    /// The replica's running total of decrements.
    pub decrements: u64,
}

impl PnCounter {
    /// An empty counter with value 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` to the counter on behalf of `replica` and returns the operation to send.
    pub fn increment(&mut self, replica: ReplicaId, n: u64) -> PnCounterOp {
        self.increments.increment(replica, n);
        self.debug_check();
        self.op_for(replica)
    }

    /// Subtracts `n` from the counter on behalf of `replica` and returns the operation to send.
    pub fn decrement(&mut self, replica: ReplicaId, n: u64) -> PnCounterOp {
        self.decrements.increment(replica, n);
        self.debug_check();
        self.op_for(replica)
    }

    /// Applies a (possibly remote, possibly repeated) operation.
    ///
    /// Returns [`Applied::Duplicate`] when neither total raises the stored one. Never fails; the
    /// `Result` keeps the signature uniform with the other CRDTs.
    pub fn apply(&mut self, op: &PnCounterOp) -> Result<Applied, ApplyError> {
        let up = self.increments.apply(&GCounterOp { replica: op.replica, total: op.increments })?;
        let down = self.decrements.apply(&GCounterOp { replica: op.replica, total: op.decrements })?;
        self.debug_check();
        if up == Applied::Changed || down == Applied::Changed {
            Ok(Applied::Changed)
        } else {
            Ok(Applied::Duplicate)
        }
    }

    /// Merges another state into this one: the pointwise maximum of both halves.
    pub fn merge(&mut self, other: &Self) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
        self.debug_check();
    }

    /// The counter's value: increments minus decrements, computed exactly in `i128` and then
    /// clamped to the `i64` range.
    pub fn value(&self) -> i64 {
        let sum = |half: &GCounter| half.iter().map(|(_, total)| i128::from(total)).sum::<i128>();
        let exact = sum(&self.increments) - sum(&self.decrements);
        i64::try_from(exact).unwrap_or(if exact < 0 { i64::MIN } else { i64::MAX })
    }

    /// The running totals `(increments, decrements)` of one replica.
    pub fn get(&self, replica: ReplicaId) -> (u64, u64) {
        (self.increments.get(replica), self.decrements.get(replica))
    }

    /// The grow-only counter of increments.
    pub fn increments(&self) -> &GCounter {
        &self.increments
    }

    /// The grow-only counter of decrements.
    pub fn decrements(&self) -> &GCounter {
        &self.decrements
    }

    /// Checks the documented invariants; panics with a description if one is broken.
    pub fn check_invariants(&self) {
        if let Err(message) = self.validate() {
            panic!("PnCounter invariant broken: {message}");
        }
    }

    /// Checks the documented invariants without panicking.
    ///
    /// Call it after deserializing a state from untrusted bytes.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.increments.validate()?;
        self.decrements.validate()
    }

    fn op_for(&self, replica: ReplicaId) -> PnCounterOp {
        let (increments, decrements) = self.get(replica);
        PnCounterOp { replica, increments, decrements }
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
    fn increments_and_decrements_converge() {
        let mut a = PnCounter::new();
        let mut b = PnCounter::new();
        let op1 = a.increment(A, 10);
        let op2 = b.decrement(B, 4);
        let op3 = a.decrement(A, 3);
        assert_eq!(op3, PnCounterOp { replica: A, increments: 10, decrements: 3 });
        assert_eq!(b.apply(&op3), Ok(Applied::Changed));
        assert_eq!(b.apply(&op1), Ok(Applied::Duplicate), "older op is superseded");
        assert_eq!(a.apply(&op2), Ok(Applied::Changed));
        assert_eq!(a.apply(&op2), Ok(Applied::Duplicate));
        assert_eq!(a, b);
        assert_eq!(a.value(), 3);
        assert_eq!(a.get(A), (10, 3));
    }

    #[test]
    fn merge_takes_both_maxima() {
        let mut a = PnCounter::new();
        let mut b = PnCounter::new();
        a.increment(A, 1);
        b.decrement(A, 2);
        b.increment(B, 5);
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.value(), 4);
    }

    #[test]
    fn value_clamps_to_i64() {
        let mut c = PnCounter::new();
        c.increment(A, u64::MAX);
        assert_eq!(c.value(), i64::MAX);
        c.decrement(B, u64::MAX);
        assert_eq!(c.value(), 0);
        c.decrement(A, u64::MAX);
        assert_eq!(c.value(), i64::MIN);
    }

    #[test]
    fn negative_values_are_exact() {
        let mut c = PnCounter::new();
        c.decrement(A, 7);
        c.increment(B, 2);
        assert_eq!(c.value(), -5);
        c.check_invariants();
    }
}

//! The last-writer-wins register [`LwwRegister`] and its operation [`LwwOp`].
//!
//! A register holds at most one value together with the [`Lamport`] stamp of the write that put
//! it there. The rule in one line: **the write with the larger stamp wins**.
//!
//! A local [`set`](LwwRegister::set) stamps its write with `time = stored time + 1`, so a write
//! made after seeing another write always beats it. Two writes made without seeing each other
//! (concurrent writes) can carry the same `time`; the tie is broken by comparing the
//! [`ReplicaId`]s, because [`Lamport`] orders by `(time, replica)`. Every replica therefore picks
//! the same winner no matter in which order the writes arrive.
//!
//! | incoming stamp vs stored stamp | effect                                 | result                |
//! |--------------------------------|----------------------------------------|-----------------------|
//! | nothing stored                 | store the write                        | `Changed`             |
//! | larger                         | replace the stored write               | `Changed`             |
//! | equal, same value              | nothing (re-delivery)                  | `Duplicate`           |
//! | equal, different value         | nothing (a stamp was reused)           | `Err(Invalid)`        |
//! | smaller                        | nothing (the write was superseded)     | `Duplicate`           |
//!
//! ```text
//! replica 1 (time 0): set("a") -> stamp (1, R1)
//! replica 2 (time 0): set("b") -> stamp (1, R2)     concurrent: same time, R2 > R1, "b" wins
//! replica 1 after seeing "b": set("c") -> stamp (2, R1)     saw (1, R2), so "c" wins
//! ```
//!
//! # Invariants
//! - A stored stamp has `time >= 1` (time 0 means "nothing written" and is never stamped).
//! - A replica never issues two writes with the same stamp, because each of its writes takes a
//!   time larger than every stamp it has stored. `merge` relies on this: equal stamps are assumed
//!   to carry equal values.

use serde::{Deserialize, Serialize};

use crate::{Applied, ApplyError, Lamport, ReplicaId};

/// A register whose concurrent writes are resolved by "the larger [`Lamport`] stamp wins".
///
/// # Invariants
/// - A stored stamp has `time >= 1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwRegister<T> {
    current: Option<(Lamport, T)>,
}

/// The operation sent by [`LwwRegister::set`]: a value and the stamp of the write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwOp<T> {
    /// The write's stamp; the larger stamp wins.
    pub stamp: Lamport,
    /// The value written.
    pub value: T,
}

// Written by hand because the derive would require `T: Default`, which an empty register does
// not need.
impl<T> Default for LwwRegister<T> {
    fn default() -> Self {
        LwwRegister { current: None }
    }
}

impl<T> LwwRegister<T> {
    /// An empty register (never written).
    pub fn new() -> Self {
        Self::default()
    }

    /// The winning value, or `None` if the register was never written.
    pub fn value(&self) -> Option<&T> {
        self.current.as_ref().map(|(_, value)| value)
    }

    /// The stamp of the winning write, or `None` if the register was never written.
    pub fn stamp(&self) -> Option<Lamport> {
        self.current.as_ref().map(|(stamp, _)| *stamp)
    }

    /// Checks the documented invariants; panics with a description if one is broken.
    pub fn check_invariants(&self) {
        if let Err(message) = self.validate() {
            panic!("LwwRegister invariant broken: {message}");
        }
    }

    /// Checks the documented invariants without panicking.
    ///
    /// Call it after deserializing a state from untrusted bytes.
    pub fn validate(&self) -> Result<(), &'static str> {
        match self.stamp() {
            Some(stamp) if stamp.time == 0 => Err("lww register holds a stamp with time 0"),
            _ => Ok(()),
        }
    }

    fn debug_check(&self) {
        if cfg!(any(debug_assertions, feature = "check-invariants")) {
            self.check_invariants();
        }
    }
}

impl<T: Clone + PartialEq> LwwRegister<T> {
    /// Writes `value` on behalf of `replica` and returns the operation to send.
    ///
    /// The stamp's time is one more than the stored stamp's time (1 on an empty register), so
    /// this write wins over every write this replica has seen. The time saturates at `u64::MAX`;
    /// reaching it would need a peer to send such a stamp, after which further writes are ordered
    /// by replica only.
    pub fn set(&mut self, replica: ReplicaId, value: T) -> LwwOp<T> {
        let time = self.stamp().map_or(0, |stamp| stamp.time).saturating_add(1);
        let op = LwwOp { stamp: Lamport { time, replica }, value };
        self.store_if_newer(&op);
        self.debug_check();
        op
    }

    /// Applies a (possibly remote, possibly repeated) write.
    ///
    /// The write replaces the stored one iff its stamp is larger. A re-delivered or superseded
    /// write returns [`Applied::Duplicate`].
    ///
    /// # Errors
    /// [`ApplyError::Invalid`] if the stamp's time is 0, or if the stamp equals the stored one but
    /// the value differs (a replica reused a stamp, which would make replicas diverge).
    pub fn apply(&mut self, op: &LwwOp<T>) -> Result<Applied, ApplyError> {
        if op.stamp.time == 0 {
            return Err(ApplyError::Invalid("lww stamp time must be at least 1"));
        }
        if let Some((stamp, value)) = &self.current {
            if *stamp == op.stamp && *value != op.value {
                return Err(ApplyError::Invalid("lww stamp was reused with a different value"));
            }
        }
        let applied = if self.store_if_newer(op) { Applied::Changed } else { Applied::Duplicate };
        self.debug_check();
        Ok(applied)
    }

    /// Merges another state into this one: the write with the larger stamp is kept.
    pub fn merge(&mut self, other: &Self) {
        if let Some((stamp, value)) = &other.current {
            if Some(*stamp) > self.stamp() {
                self.current = Some((*stamp, value.clone()));
            }
        }
        self.debug_check();
    }

    /// Stores the write iff its stamp is larger than the stored one; returns whether it did.
    fn store_if_newer(&mut self, op: &LwwOp<T>) -> bool {
        // `None` orders below every `Some`, so an empty register takes any write.
        if Some(op.stamp) > self.stamp() {
            self.current = Some((op.stamp, op.value.clone()));
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: ReplicaId = ReplicaId::from_u128(1);
    const R2: ReplicaId = ReplicaId::from_u128(2);

    #[test]
    fn empty_register_has_no_value() {
        let r: LwwRegister<u8> = LwwRegister::new();
        assert_eq!(r.value(), None);
        assert_eq!(r.stamp(), None);
        r.check_invariants();
    }

    #[test]
    fn concurrent_writes_tie_break_on_replica() {
        let mut a = LwwRegister::new();
        let mut b = LwwRegister::new();
        let op_a = a.set(R1, "a");
        let op_b = b.set(R2, "b");
        assert_eq!(op_a.stamp.time, op_b.stamp.time);
        assert_eq!(a.apply(&op_b), Ok(Applied::Changed));
        assert_eq!(b.apply(&op_a), Ok(Applied::Duplicate), "superseded");
        assert_eq!(a, b);
        assert_eq!(a.value(), Some(&"b"));
    }

    #[test]
    fn a_write_that_saw_another_wins() {
        let mut a = LwwRegister::new();
        let mut b = LwwRegister::new();
        let first = b.set(R2, 1);
        a.apply(&first).unwrap();
        let second = a.set(R1, 2);
        assert!(second.stamp > first.stamp);
        assert_eq!(b.apply(&second), Ok(Applied::Changed));
        assert_eq!(b.apply(&second), Ok(Applied::Duplicate), "re-delivery");
        assert_eq!(b.value(), Some(&2));
    }

    #[test]
    fn merge_keeps_larger_stamp() {
        let mut a = LwwRegister::new();
        let mut b = LwwRegister::new();
        a.set(R1, 'x');
        b.set(R2, 'y');
        b.set(R2, 'z');
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.value(), Some(&'z'));
    }

    #[test]
    fn reused_stamp_or_zero_time_is_rejected() {
        let mut r = LwwRegister::new();
        let op = r.set(R1, 1u8);
        let forged = LwwOp { value: 2, ..op };
        assert!(matches!(r.apply(&forged), Err(ApplyError::Invalid(_))));
        let zero = LwwOp { stamp: Lamport { time: 0, replica: R2 }, value: 3 };
        assert!(matches!(r.apply(&zero), Err(ApplyError::Invalid(_))));
        assert_eq!(r.value(), Some(&1));
    }
}

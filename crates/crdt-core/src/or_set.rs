//! The add-wins observed-remove set [`OrSet`], its operation [`OrSetOp`] and its [`Dot`]s.
//!
//! This is the "optimized" OR-Set, which keeps no tombstones. Every add is tagged with a fresh
//! [`Dot`] `(replica, counter)`. The state is
//! - for each present element, the set of its *live* dots, and
//! - one causal context, a [`VersionVector`] of every dot ever seen (live or removed).
//!
//! An element is present iff it has a live dot. A removed dot is simply gone from the element,
//! and because the context still covers it, the set knows it was removed rather than never seen.
//!
//! The rule in one line: **a remove deletes only the dots it observed, so an add that the remove
//! did not see survives it (add wins).**
//!
//! | operation                       | effect                                                       |
//! |---------------------------------|--------------------------------------------------------------|
//! | local `add(r, x)`               | new dot `(r, context[r] + 1)` replaces every observed dot of `x` |
//! | local `remove(x)`               | deletes every observed dot of `x`; `None` if `x` is absent    |
//! | apply `Add`, dot already seen   | nothing: `Duplicate`                                         |
//! | apply `Add`, dot skips ahead    | `Err(OutOfOrder)`: one replica's adds arrive in order         |
//! | apply `Add`/`Remove` naming a dot not yet seen | `Err(UnknownId)`: delivery is causal          |
//! | apply `Remove`, nothing live    | nothing: `Duplicate`                                         |
//! | merge, dot live on both sides   | kept                                                         |
//! | merge, dot live on one side     | kept iff the other side's context has not seen it            |
//!
//! Because an add replaces the dots of the element it observed, re-adding an element keeps one
//! dot per replica rather than a growing list.
//!
//! ```text
//! replica 1: add(x) -> dot (R1,1)           state {x: [(R1,1)]}
//! replica 2: receives it, remove(x) -> Remove { x, dots: [(R1,1)] }
//! replica 1, concurrently: add(x) -> Add { x, dot (R1,2), removes: [(R1,1)] }
//! both replicas after exchanging: {x: [(R1,2)]}     the remove did not see (R1,2): add wins
//! ```
//!
//! # Invariants
//! - No element has an empty dot set.
//! - Every live dot has `counter >= 1` and is covered by the context.
//! - A dot is live under at most one element.
//! - An element has at most one live dot per replica: a replica's newer add of an element
//!   supersedes its older dots of that element. (Several replicas adding concurrently give
//!   several dots, one each.)
//! - The context holds no zero entry.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Applied, ApplyError, ReplicaId, VersionVector};

/// The tag of one add: the `counter`-th add made by `replica` (counters start at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that made the add.
    pub replica: ReplicaId,
    /// The replica's running count of adds, starting at 1.
    pub counter: u64,
}

impl Dot {
    /// Shorthand constructor.
    pub const fn new(replica: ReplicaId, counter: u64) -> Self {
        Dot { replica, counter }
    }
}

/// An add-wins observed-remove set without tombstones.
///
/// # Invariants
/// - No element has an empty dot set.
/// - Every live dot has `counter >= 1` and is covered by the context.
/// - A dot is live under at most one element.
/// - An element has at most one live dot per replica.
/// - The context holds no zero entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Ord + Deserialize<'de>"))]
pub struct OrSet<T> {
    entries: BTreeMap<T, BTreeSet<Dot>>,
    context: VersionVector,
}

/// An operation on an [`OrSet`], returned by [`OrSet::add`] and [`OrSet::remove`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrSetOp<T> {
    /// `value` was added with a fresh `dot`, replacing the dots of `value` its sender observed.
    Add {
        /// The element added.
        value: T,
        /// The add's fresh dot.
        dot: Dot,
        /// The dots of `value` that the sender had observed; they are superseded.
        removes: Vec<Dot>,
    },
    /// `value` was removed: the dots of `value` its sender had observed are deleted.
    Remove {
        /// The element removed.
        value: T,
        /// The dots of `value` that the sender had observed.
        dots: Vec<Dot>,
    },
}

// Written by hand because the derive would require `T: Default`.
impl<T> Default for OrSet<T> {
    fn default() -> Self {
        OrSet { entries: BTreeMap::new(), context: VersionVector::new() }
    }
}

impl<T: Ord + Clone> OrSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` on behalf of `replica` and returns the operation to send.
    ///
    /// The add gets the fresh dot `(replica, context[replica] + 1)` and replaces every dot of
    /// `value` this replica has observed, so `value` ends up with exactly this one dot here.
    pub fn add(&mut self, replica: ReplicaId, value: T) -> OrSetOp<T> {
        // Saturation is unreachable in practice (it takes 2^64 adds from one replica); it only
        // keeps a forged context from making this panic.
        let dot = Dot::new(replica, self.context.get(replica).saturating_add(1));
        let removes: Vec<Dot> = self.dots(&value).collect();
        self.integrate_add(value.clone(), dot, &removes);
        self.debug_check();
        OrSetOp::Add { value, dot, removes }
    }

    /// Removes `value` and returns the operation to send, or `None` if `value` is absent.
    pub fn remove(&mut self, value: &T) -> Option<OrSetOp<T>> {
        let dots: Vec<Dot> = self.entries.remove(value)?.into_iter().collect();
        self.debug_check();
        Some(OrSetOp::Remove { value: value.clone(), dots })
    }

    /// Applies a (possibly remote, possibly repeated) operation.
    ///
    /// Returns [`Applied::Duplicate`] for an add whose dot was already seen and for a remove that
    /// finds none of its dots live.
    ///
    /// # Errors
    /// - [`ApplyError::OutOfOrder`] if an add's dot skips ahead of its replica's next counter.
    /// - [`ApplyError::UnknownId`] if an add's `removes` or a remove's `dots` name a dot this set
    ///   has not seen; the operation must wait for that dot's add.
    /// - [`ApplyError::Invalid`] if a dot has counter 0.
    ///
    /// On error nothing changes.
    pub fn apply(&mut self, op: &OrSetOp<T>) -> Result<Applied, ApplyError> {
        let applied = match op {
            OrSetOp::Add { value, dot, removes } => {
                Self::check_counter(*dot)?;
                let next = self.context.get(dot.replica);
                if dot.counter <= next {
                    return Ok(Applied::Duplicate);
                }
                // `next < dot.counter <= u64::MAX`, so `next + 1` cannot overflow.
                if dot.counter > next + 1 {
                    return Err(ApplyError::OutOfOrder {
                        replica: dot.replica,
                        expected: next + 1,
                        found: dot.counter,
                    });
                }
                self.check_seen(removes)?;
                self.integrate_add(value.clone(), *dot, removes);
                Applied::Changed
            }
            OrSetOp::Remove { value, dots } => {
                self.check_seen(dots)?;
                if self.remove_dots(value, dots) {
                    Applied::Changed
                } else {
                    Applied::Duplicate
                }
            }
        };
        self.debug_check();
        Ok(applied)
    }

    /// Merges another state into this one (the join of the two states).
    ///
    /// A dot survives if both sides have it live, or if one side has it live and the other side
    /// has never seen it. A dot live on one side but seen and gone on the other was removed, so it
    /// is dropped. The contexts are joined pointwise.
    pub fn merge(&mut self, other: &Self) {
        for (value, dots) in self.entries.iter_mut() {
            let theirs = other.entries.get(value);
            dots.retain(|dot| theirs.is_some_and(|t| t.contains(dot)) || !other.seen(*dot));
        }
        for (value, dots) in &other.entries {
            let unseen: Vec<Dot> = dots.iter().copied().filter(|d| !self.seen(*d)).collect();
            if !unseen.is_empty() {
                self.entries.entry(value.clone()).or_default().extend(unseen);
            }
        }
        self.entries.retain(|_, dots| !dots.is_empty());
        self.context.merge(&other.context);
        self.debug_check();
    }

    /// The elements present, in ascending order.
    pub fn value(&self) -> Vec<&T> {
        self.iter().collect()
    }

    /// The elements present, in ascending order, without collecting them.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.entries.keys()
    }

    /// True if `value` is present.
    pub fn contains(&self, value: &T) -> bool {
        self.entries.contains_key(value)
    }

    /// The live dots of `value` (none if it is absent), in order.
    pub fn dots(&self, value: &T) -> impl Iterator<Item = Dot> + '_ {
        self.entries.get(value).into_iter().flatten().copied()
    }

    /// The number of elements present.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no element is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The causal context: every dot this set has seen, live or removed.
    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// Checks the documented invariants; panics with a description if one is broken.
    pub fn check_invariants(&self) {
        if let Err(message) = self.validate() {
            panic!("OrSet invariant broken: {message}");
        }
    }

    /// Checks the documented invariants without panicking.
    ///
    /// Call it after deserializing a state from untrusted bytes.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.context.iter().any(|(_, seen)| seen == 0) {
            return Err("or-set context holds a zero entry");
        }
        let mut all = BTreeSet::new();
        for dots in self.entries.values() {
            if dots.is_empty() {
                return Err("or-set element has no dots");
            }
            // Dots sort by replica first, so two dots of one replica are neighbours.
            let mut previous: Option<ReplicaId> = None;
            for dot in dots {
                if dot.counter == 0 {
                    return Err("or-set dot has counter 0");
                }
                if !self.seen(*dot) {
                    return Err("or-set dot is not covered by the context");
                }
                if previous == Some(dot.replica) {
                    return Err("or-set element has two dots from one replica");
                }
                previous = Some(dot.replica);
                if !all.insert(*dot) {
                    return Err("or-set dot is live under two elements");
                }
            }
        }
        Ok(())
    }

    /// True if the context covers `dot`.
    fn seen(&self, dot: Dot) -> bool {
        dot.counter <= self.context.get(dot.replica)
    }

    fn check_counter(dot: Dot) -> Result<(), ApplyError> {
        if dot.counter == 0 {
            return Err(ApplyError::Invalid("or-set dot counter must be at least 1"));
        }
        Ok(())
    }

    /// Fails unless every dot is a valid dot this set has already seen.
    fn check_seen(&self, dots: &[Dot]) -> Result<(), ApplyError> {
        for dot in dots {
            Self::check_counter(*dot)?;
            if !self.seen(*dot) {
                return Err(ApplyError::UnknownId { replica: dot.replica, counter: dot.counter });
            }
        }
        Ok(())
    }

    /// Adds `dot` to `value`, deleting the superseded dots, and records `dot` in the context.
    fn integrate_add(&mut self, value: T, dot: Dot, removes: &[Dot]) {
        let dots = self.entries.entry(value).or_default();
        // Older dots of the same replica are dropped even when `removes` does not list them: the
        // sender had seen them (its counters are contiguous) and did not have them live, so they
        // were removed by an operation that may not have reached us yet. Dropping them now keeps
        // one dot per replica and gives the same result as when that removal arrives.
        let superseded = |d: &Dot| removes.contains(d) || (d.replica == dot.replica && d.counter < dot.counter);
        dots.retain(|d| !superseded(d));
        dots.insert(dot);
        self.context.raise(dot.replica, dot.counter);
    }

    /// Deletes the listed dots of `value`; returns whether any was live.
    fn remove_dots(&mut self, value: &T, dots: &[Dot]) -> bool {
        let Some(live) = self.entries.get_mut(value) else {
            return false;
        };
        let before = live.len();
        for dot in dots {
            live.remove(dot);
        }
        let changed = live.len() != before;
        if live.is_empty() {
            self.entries.remove(value);
        }
        changed
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

    const R1: ReplicaId = ReplicaId::from_u128(1);
    const R2: ReplicaId = ReplicaId::from_u128(2);

    #[test]
    fn add_and_remove_locally() {
        let mut s = OrSet::new();
        s.add(R1, 'a');
        s.add(R1, 'b');
        assert_eq!(s.value(), vec![&'a', &'b']);
        assert!(s.remove(&'a').is_some());
        assert!(s.remove(&'a').is_none(), "absent element gives no op");
        assert_eq!(s.value(), vec![&'b']);
        assert_eq!(s.len(), 1);
        assert_eq!(s.context().get(R1), 2);
    }

    #[test]
    fn concurrent_add_wins_over_remove() {
        let mut a = OrSet::new();
        let mut b = OrSet::new();
        let add1 = a.add(R1, 7u8);
        b.apply(&add1).unwrap();
        let remove = b.remove(&7).unwrap();
        let add2 = a.add(R1, 7);
        assert_eq!(a.apply(&remove), Ok(Applied::Duplicate), "removed dot already superseded");
        assert_eq!(b.apply(&add2), Ok(Applied::Changed));
        assert_eq!(a, b);
        assert!(a.contains(&7));
        assert_eq!(a.dots(&7).collect::<Vec<_>>(), vec![Dot::new(R1, 2)]);
    }

    #[test]
    fn merge_drops_removed_and_keeps_unseen() {
        let mut a = OrSet::new();
        let mut b = OrSet::new();
        a.add(R1, 1u8);
        b.merge(&a);
        b.remove(&1);
        b.add(R2, 2);
        a.add(R1, 3);
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.value(), vec![&2, &3]);
    }

    #[test]
    fn apply_rejects_gaps_and_unknown_dots() {
        let mut a = OrSet::new();
        let mut b = OrSet::new();
        let first = a.add(R1, 1u8);
        let second = a.add(R1, 2);
        assert_eq!(b.apply(&second), Err(ApplyError::OutOfOrder { replica: R1, expected: 1, found: 2 }));
        let remove = a.remove(&1).unwrap();
        assert_eq!(b.apply(&remove), Err(ApplyError::UnknownId { replica: R1, counter: 1 }));
        assert_eq!(b, OrSet::new(), "a failed apply changes nothing");
        for op in [&first, &second, &remove, &first] {
            b.apply(op).unwrap();
        }
        assert_eq!(a, b);
    }

    #[test]
    fn same_replica_dots_are_superseded_without_the_remove() {
        // R2 removes R1's first dot; R1 sees the remove and re-adds. A third replica gets the
        // re-add before the remove and must still hold one dot.
        let mut r1 = OrSet::new();
        let mut r2 = OrSet::new();
        let mut r3 = OrSet::new();
        let add1 = r1.add(R1, 'x');
        r2.apply(&add1).unwrap();
        let remove = r2.remove(&'x').unwrap();
        r1.apply(&remove).unwrap();
        let add2 = r1.add(R1, 'x');
        r3.apply(&add1).unwrap();
        r3.apply(&add2).unwrap();
        assert_eq!(r3.dots(&'x').count(), 1);
        assert_eq!(r3.apply(&remove), Ok(Applied::Duplicate));
        assert_eq!(r1, r3);
    }

    #[test]
    fn validate_catches_broken_states() {
        let mut s: OrSet<u8> = OrSet::new();
        s.entries.insert(1, BTreeSet::new());
        assert!(s.validate().is_err());
        let mut s: OrSet<u8> = OrSet::new();
        s.entries.insert(1, [Dot::new(R1, 1)].into_iter().collect());
        assert!(s.validate().is_err(), "dot not covered by the context");
        s.context.set(R1, 1);
        assert!(s.validate().is_ok());
        s.entries.insert(2, [Dot::new(R1, 1)].into_iter().collect());
        assert!(s.validate().is_err(), "dot under two elements");
    }
}

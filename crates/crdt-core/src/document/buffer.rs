//! [`Pending`]: changes that arrived before their causal past, kept until it arrives.
//!
//! The buffer is bounded by [`MAX_PENDING`] changes so that a peer sending changes that can
//! never become ready cannot make a document grow without limit.
//!
//! # Invariants
//! - Holds at most one change per `(replica, seq)`, and at most [`MAX_PENDING`] changes.
//! - After the document has drained it, no held change is ready or already applied.

use std::collections::BTreeMap;

use super::change::Change;
use crate::{ReplicaId, VersionVector};

/// The most changes a document buffers while waiting for their causal past.
pub const MAX_PENDING: usize = 100_000;

/// Buffered changes keyed by `(replica, seq)`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pending {
    changes: BTreeMap<(ReplicaId, u64), Change>,
}

/// What [`Pending::insert`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    New,
    AlreadyHeld,
    Full,
}

impl Pending {
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Change> {
        self.changes.values()
    }

    /// Keeps `change` unless a change with its `(replica, seq)` is already held or the buffer
    /// is full.
    pub fn insert(&mut self, change: Change) -> Inserted {
        let key = (change.replica, change.seq);
        if self.changes.contains_key(&key) {
            Inserted::AlreadyHeld
        } else if self.changes.len() >= MAX_PENDING {
            Inserted::Full
        } else {
            self.changes.insert(key, change);
            Inserted::New
        }
    }

    /// Removes and returns a change that is ready under `version` (the next seq of its replica,
    /// with all its deps seen), dropping on the way the changes `version` already covers.
    pub fn take_ready(&mut self, version: &VersionVector) -> Option<Change> {
        let mut from = self.changes.keys().next().map(|(replica, _)| *replica)?;
        loop {
            let seen = version.get(from);
            // Changes this replica has already applied (possibly learnt by a state merge).
            while let Some(key) = self.changes.range((from, 0)..=(from, seen)).next().map(|(key, _)| *key) {
                self.changes.remove(&key);
            }
            let candidate = (from, seen + 1);
            if self.changes.get(&candidate).is_some_and(|change| change.deps_seen(version)) {
                return self.changes.remove(&candidate);
            }
            from = self
                .changes
                .range((from, u64::MAX)..)
                .find(|((replica, _), _)| *replica != from)
                .map(|((replica, _), _)| *replica)?;
        }
    }

    /// Panics if a held change is ready or already covered by `version`.
    pub fn check_invariants(&self, version: &VersionVector) {
        assert!(self.changes.len() <= MAX_PENDING, "pending buffer over its limit");
        for ((replica, seq), change) in &self.changes {
            assert_eq!((change.replica, change.seq), (*replica, *seq), "pending key mismatch");
            let seen = version.get(*replica);
            assert!(*seq > seen, "pending holds an applied change");
            assert!(*seq != seen + 1 || !change.deps_seen(version), "pending holds a ready change");
        }
    }
}

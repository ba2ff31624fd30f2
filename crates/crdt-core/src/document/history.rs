//! [`History`]: the changes a document has applied, in the order it applied them.
//!
//! A history may start after the beginning of time: a document loaded from a snapshot without
//! history, or one that learnt part of its state by a state merge, only knows the *result* of
//! the changes up to its `base` version. It can serve every change after `base` and nothing
//! before it.
//!
//! # Invariants
//! - `base` has no zero entries and no entry above [`MAX_SEQ`].
//! - For every replica `r`, the changes of `r` in `changes` have the seqs `base[r] + 1`,
//!   `base[r] + 2`, … with no gap, in that order; so `base` plus the changes is the document's
//!   version.
//! - Every change's `deps` is covered by `base` and the changes before it (causal order), and
//!   `deps[r] == seq - 1` for its own replica `r`.
//! - `by_replica[r][i]` is the position in `changes` of `r`'s change number `base[r] + 1 + i`.

use std::collections::HashMap;

use super::change::{Change, MAX_SEQ};
use crate::{ReplicaId, VersionVector};

/// The applied changes after a base version; see the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct History {
    base: VersionVector,
    changes: Vec<Change>,
    /// An index of `changes` by replica.
    by_replica: HashMap<ReplicaId, Vec<usize>>,
}

impl History {
    /// An empty history starting at `base`.
    pub fn starting_at(base: VersionVector) -> History {
        History { base, changes: Vec::new(), by_replica: HashMap::new() }
    }

    /// Rebuilds a history from untrusted parts; returns it with the version it reaches.
    pub fn from_parts(base: VersionVector, changes: Vec<Change>) -> Result<(History, VersionVector), &'static str> {
        let version = verify(&base, &changes)?;
        let mut history = History::starting_at(base);
        history.changes = changes;
        history.reindex();
        Ok((history, version))
    }

    /// The version at which the history starts.
    pub fn base(&self) -> &VersionVector {
        &self.base
    }

    /// The changes, in the order they were applied.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// `replica`'s change number `seq`, if the history holds it.
    pub fn get(&self, replica: ReplicaId, seq: u64) -> Option<&Change> {
        let offset = seq.checked_sub(self.base.get(replica) + 1)?;
        let index = self.by_replica.get(&replica)?.get(usize::try_from(offset).ok()?)?;
        Some(&self.changes[*index])
    }

    /// True if both hold the same changes after the same base, in whatever order.
    pub fn same_changes(&self, other: &History) -> bool {
        self.base == other.base
            && self.changes.len() == other.changes.len()
            && self.changes.iter().all(|change| other.get(change.replica, change.seq) == Some(change))
    }

    /// Appends a change that the document has just applied (the caller checked its seq and
    /// deps).
    pub fn push(&mut self, change: Change) {
        self.by_replica.entry(change.replica).or_default().push(self.changes.len());
        self.changes.push(change);
    }

    /// The changes not covered by `version`, in causal order; `None` if some of them are before
    /// `base` (the caller should send a snapshot instead).
    pub fn since(&self, version: &VersionVector) -> Option<Vec<Change>> {
        if !self.base.le(version) {
            return None;
        }
        let mut positions = Vec::new();
        for (replica, indices) in &self.by_replica {
            let skip = version.get(*replica) - self.base.get(*replica);
            let skip = usize::try_from(skip).unwrap_or(usize::MAX).min(indices.len());
            positions.extend_from_slice(&indices[skip..]);
        }
        // History order is a causal order, so sorting by position keeps causality.
        positions.sort_unstable();
        Some(positions.into_iter().map(|i| self.changes[i].clone()).collect())
    }

    /// `replica`'s changes after `after_seq`, in seq order; `None` if some of them are before
    /// `base`.
    pub fn of(&self, replica: ReplicaId, after_seq: u64) -> Option<Vec<Change>> {
        let base = self.base.get(replica);
        if after_seq < base {
            return None;
        }
        let indices = self.by_replica.get(&replica).map_or(&[][..], Vec::as_slice);
        let skip = usize::try_from(after_seq - base).unwrap_or(usize::MAX).min(indices.len());
        Some(indices[skip..].iter().map(|i| self.changes[*i].clone()).collect())
    }

    /// After a state merge: takes the changes beyond `own` (this history's version) from
    /// `other`, whose history reaches `other_version`.
    ///
    /// Where `other` cannot supply a replica's changes right after `own` (its base is past
    /// them), this history gives up that replica's range too: its base is raised to `other`'s,
    /// and its own changes of that replica below the new base are dropped. Changes of other
    /// replicas that depended on them stay valid, because the raised base covers them.
    pub fn absorb(&mut self, own: &VersionVector, other: &History) {
        let mut raised = false;
        let mut cutoff = own.clone();
        for (replica, other_base) in other.base.iter() {
            if other_base > own.get(replica) {
                self.base.set(replica, other_base);
                cutoff.set(replica, other_base);
                raised = true;
            }
        }
        if raised {
            let base = &self.base;
            self.changes.retain(|change| change.seq > base.get(change.replica));
        }
        let before = self.changes.len();
        self.changes.extend(other.changes.iter().filter(|change| change.seq > cutoff.get(change.replica)).cloned());
        if raised || self.changes.len() != before {
            self.reindex();
        }
    }

    fn reindex(&mut self) {
        self.by_replica.clear();
        for (i, change) in self.changes.iter().enumerate() {
            self.by_replica.entry(change.replica).or_default().push(i);
        }
    }

    /// Panics unless the invariants hold and the history reaches exactly `version`.
    pub fn check_invariants(&self, version: &VersionVector) {
        self.base.check_invariants();
        let reached =
            verify(&self.base, &self.changes).unwrap_or_else(|message| panic!("history invariant broken: {message}"));
        assert_eq!(&reached, version, "history does not reach the document version");
        let indexed: usize = self.by_replica.values().map(Vec::len).sum();
        assert_eq!(indexed, self.changes.len(), "history index is out of date");
        for (replica, indices) in &self.by_replica {
            for (offset, index) in indices.iter().enumerate() {
                let change = &self.changes[*index];
                assert_eq!(change.replica, *replica, "history index is out of date");
                assert_eq!(change.seq, self.base.get(*replica) + 1 + offset as u64, "history index is out of date");
            }
        }
    }

    /// A cheap partial check for debug builds: the per-replica counts reach `version`.
    pub fn quick_check(&self, version: &VersionVector) {
        for (replica, seq) in version.iter() {
            let held = self.by_replica.get(&replica).map_or(0, Vec::len) as u64;
            assert_eq!(self.base.get(replica) + held, seq, "history does not reach the version");
        }
    }
}

/// Checks the history invariants of `base` and `changes`; returns the version they reach.
fn verify(base: &VersionVector, changes: &[Change]) -> Result<VersionVector, &'static str> {
    if base.iter().any(|(_, seq)| seq == 0 || seq > MAX_SEQ) {
        return Err("history base holds a zero or too large entry");
    }
    let mut version = base.clone();
    for change in changes {
        change.validate()?;
        if change.seq != version.get(change.replica) + 1 {
            return Err("history seqs of a replica are not contiguous");
        }
        if !change.deps.le(&version) {
            return Err("history is not in causal order");
        }
        version.set(change.replica, change.seq);
    }
    Ok(version)
}

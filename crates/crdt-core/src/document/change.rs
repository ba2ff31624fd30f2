//! [`Change`]: the unit of replication, its structural checks, and the check of its operations
//! against a document's state before any of them is applied.
//!
//! A change is numbered `seq` (1, 2, 3, …) per replica and names its causal past by its
//! *direct dependencies*: its own replica's previous change (implied, never written) and, in
//! `deps`, the other changes it was made on top of that are not already in that one's past —
//! the heads of its replica's document, which while one person types alone is nothing at all.
//! A document applies a change only when it has seen exactly `seq - 1` changes of that replica
//! and every change in `deps`; a document's applied changes are closed under "depends on", so
//! that is the whole causal past, and an operation only ever refers to ids its replica had seen.
//!
//! Validation is split in two. [`Change::validate`] looks at the change alone (numbering,
//! authorship) and runs when it arrives, even if it is buffered. [`validate_ops`] runs when the
//! change is ready: it checks every operation against the current state without changing it,
//! tracking what earlier operations of the same change would add, so that a change is applied
//! whole or not at all.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::field::{Field, FieldKind, FieldName, FieldOp, Op};
use crate::{
    ApplyError, Dot, InlineVec, Lamport, LwwOp, LwwRegister, OrSet, OrSetOp, ReplicaId, Rga, RgaOp, TextDelta,
    VersionVector,
};

/// The largest `seq` (and version vector entry) a document accepts. Far beyond anything real,
/// it leaves room so that counting one more change can never overflow.
pub const MAX_SEQ: u64 = u64::MAX / 2;

/// The largest running total a counter operation may carry: 2^53 - 1, the largest integer a
/// JavaScript number holds exactly (the page shows counters as numbers). A total above it
/// would also let one replica saturate the sum and freeze the counter for everyone, so a
/// change that carries one is invalid, and a document's local increments stop at it.
pub const MAX_COUNTER_TOTAL: u64 = (1 << 53) - 1;

/// The most direct dependencies one change may name: one per replica that edited concurrently,
/// so far beyond anything real.
pub const MAX_DEPS: usize = 4096;

/// The id of a change: `replica`'s change number `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChangeId {
    /// The replica that made it.
    pub replica: ReplicaId,
    /// Its number among `replica`'s changes, from 1.
    pub seq: u64,
}

/// A batch of operations made by one replica in one step, numbered and with its causal past.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The replica that made it.
    pub replica: ReplicaId,
    /// Its number among `replica`'s changes, from 1.
    pub seq: u64,
    /// The changes of other replicas it depends on directly, beyond `replica`'s change
    /// `seq - 1` (which it always depends on): sorted by replica, at most one per replica, never
    /// `replica` itself. Empty while one replica edits alone.
    pub deps: Vec<ChangeId>,
    /// The operations, applied in order.
    pub ops: InlineVec<FieldOp>,
}

impl Change {
    /// This change's id.
    pub fn id(&self) -> ChangeId {
        ChangeId { replica: self.replica, seq: self.seq }
    }

    /// Checks what can be checked of the change alone: its numbering, its dependencies, and
    /// that every operation that mints an id or a total does so as the change's own replica.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.seq == 0 {
            return Err("change seq is 0 (seqs start at 1)");
        }
        if self.seq > MAX_SEQ {
            return Err("change seq is too large");
        }
        validate_deps(self.replica, &self.deps)?;
        for field_op in &self.ops {
            if op_author(&field_op.op).is_some_and(|author| author != self.replica) {
                return Err("operation is attributed to another replica than its change");
            }
            let total = match &field_op.op {
                Op::Counter(op) => op.increments.max(op.decrements),
                Op::GCounter(op) => op.total,
                _ => 0,
            };
            if total > MAX_COUNTER_TOTAL {
                return Err("counter total is above 2^53 - 1");
            }
        }
        Ok(())
    }

    /// True if a document at `version` can apply this change now: it is `replica`'s next one and
    /// every dependency has been seen.
    pub fn is_ready(&self, version: &VersionVector) -> bool {
        self.seq == version.get(self.replica) + 1 && self.deps_seen(version)
    }

    /// True if `version` has seen every change in `deps`.
    pub fn deps_seen(&self, version: &VersionVector) -> bool {
        self.deps.iter().all(|dep| version.get(dep.replica) >= dep.seq)
    }
}

/// Reorders `changes` so that each comes after those of them it depends on (its replica's
/// earlier changes and its `deps`), moving only what must move: a list already in causal
/// order is left as it is. Linear in the number of changes and dependencies.
pub fn causal_order(changes: &mut Vec<Change>) {
    let index: HashMap<(ReplicaId, u64), usize> =
        changes.iter().enumerate().map(|(i, change)| ((change.replica, change.seq), i)).collect();
    let mut placed = vec![false; changes.len()];
    let mut order = Vec::with_capacity(changes.len());
    let mut stack: Vec<(usize, bool)> = Vec::new();
    for first in 0..changes.len() {
        stack.push((first, false));
        while let Some((i, expanded)) = stack.pop() {
            if placed[i] {
                continue;
            }
            if expanded {
                placed[i] = true;
                order.push(i);
                continue;
            }
            stack.push((i, true));
            let change = &changes[i];
            let before = change.deps.iter().map(|dep| (dep.replica, dep.seq));
            // Pushed in reverse so that the replica's previous change is placed first.
            for key in before.rev().chain([(change.replica, change.seq.wrapping_sub(1))]) {
                if let Some(j) = index.get(&key).filter(|j| !placed[**j]) {
                    stack.push((*j, false));
                }
            }
        }
    }
    let mut taken: Vec<Option<Change>> = std::mem::take(changes).into_iter().map(Some).collect();
    changes.extend(order.into_iter().filter_map(|i| taken[i].take()));
}

/// Checks a change's `deps`: sorted by replica, one per replica, never the change's own, seqs
/// in `1..=MAX_SEQ`, at most [`MAX_DEPS`].
pub(crate) fn validate_deps(replica: ReplicaId, deps: &[ChangeId]) -> Result<(), &'static str> {
    if deps.len() > MAX_DEPS {
        return Err("change names too many dependencies");
    }
    for (i, dep) in deps.iter().enumerate() {
        if dep.seq == 0 || dep.seq > MAX_SEQ {
            return Err("change dependency has a zero or too large seq");
        }
        if dep.replica == replica {
            return Err("change names its own replica as a dependency");
        }
        if i > 0 && deps[i - 1].replica >= dep.replica {
            return Err("change dependencies are not sorted by replica, one per replica");
        }
    }
    Ok(())
}

/// The replica whose id space or total an operation extends, if it has one.
pub(crate) fn op_author(op: &Op) -> Option<ReplicaId> {
    match op {
        Op::Text(RgaOp::Insert { id, .. }) => Some(id.replica),
        Op::Text(RgaOp::Delete { .. }) => None,
        Op::Register(op) => Some(op.stamp.replica),
        Op::Set(OrSetOp::Add { dot, .. }) => Some(dot.replica),
        Op::Set(OrSetOp::Remove { .. }) => None,
        Op::Counter(op) => Some(op.replica),
        Op::GCounter(op) => Some(op.replica),
    }
}

/// What [`Document::apply_change`](crate::Document::apply_change) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The change was applied, and so were `changes - 1` buffered changes that it made ready.
    Applied {
        /// How many changes were applied, this one included.
        changes: usize,
        /// The visible edits of text fields, in order, as `(field name, delta)`.
        deltas: Vec<(String, TextDelta)>,
    },
    /// The change's causal past is not all here yet; it is kept and applied when it is.
    Buffered,
    /// The change had already been applied (or is already buffered): nothing changed.
    Duplicate,
}

/// Checks that every operation of `change` can be applied, in order, to `fields`, without
/// changing anything.
pub(crate) fn validate_ops(
    fields: &BTreeMap<(FieldName, FieldKind), Field>,
    change: &Change,
) -> Result<(), ApplyError> {
    OpsCheck::new(fields).check(change)
}

/// Checks operations against a document's fields as if the operations checked before them had
/// been applied, without applying anything: what they add is tracked on the side. One check
/// over a whole change is [`validate_ops`]; one over a batch of changes lets a server refuse a
/// batch whose third change does not fit before the first two are applied.
pub(crate) struct OpsCheck<'a> {
    fields: &'a BTreeMap<(FieldName, FieldKind), Field>,
    /// What earlier operations add, per field: characters per replica for texts, dots per
    /// replica for sets.
    text_extra: HashMap<&'a str, HashMap<ReplicaId, u64>>,
    set_extra: HashMap<&'a str, HashMap<ReplicaId, u64>>,
    /// The newest write to each register, per field, among earlier operations.
    register_latest: HashMap<&'a str, Option<(Lamport, &'a String)>>,
    /// Stands for a text field that does not exist yet (its replica id is never used).
    empty_text: Option<Rga>,
    empty_set: OrSet<String>,
}

impl<'a> OpsCheck<'a> {
    pub(crate) fn new(fields: &'a BTreeMap<(FieldName, FieldKind), Field>) -> OpsCheck<'a> {
        OpsCheck {
            fields,
            text_extra: HashMap::new(),
            set_extra: HashMap::new(),
            register_latest: HashMap::new(),
            empty_text: None,
            empty_set: OrSet::default(),
        }
    }

    /// Checks `change`'s operations in order, after everything checked before.
    pub(crate) fn check(&mut self, change: &'a Change) -> Result<(), ApplyError> {
        for FieldOp { field, op } in &change.ops {
            let state = self.fields.get(&(field.clone(), op.kind()));
            match op {
                Op::Text(op) => {
                    let rga = match state {
                        Some(Field::Text(rga)) => &**rga,
                        _ => &*self.empty_text.get_or_insert_with(|| Rga::new(change.replica)),
                    };
                    // `Rga::apply` refuses an empty delete range, which `Rga::validate_op` lets
                    // through; check it here so that validation never accepts what apply refuses.
                    if let RgaOp::Delete { ranges } = op {
                        if ranges.iter().any(|range| range.len == 0) {
                            return Err(ApplyError::Invalid("empty or overflowing delete range"));
                        }
                    }
                    rga.validate_op(op, self.text_extra.entry(field).or_default())?;
                }
                Op::Set(op) => {
                    let set = match state {
                        Some(Field::Set(set)) => set,
                        _ => &self.empty_set,
                    };
                    validate_set_op(set, op, self.set_extra.entry(field).or_default())?;
                }
                Op::Register(op) => {
                    let register = match state {
                        Some(Field::Register(register)) => Some(register),
                        _ => None,
                    };
                    validate_register_op(register, op, self.register_latest.entry(field).or_default())?;
                }
                // Counters accept every operation: applying one is a maximum of totals, and an
                // old one is a duplicate.
                Op::Counter(_) | Op::GCounter(_) => {}
            }
        }
        Ok(())
    }
}

/// Checks one set operation exactly as [`OrSet::apply`] would, with `extra` holding the dots
/// that earlier operations of the same change add (and updating it).
fn validate_set_op(
    set: &OrSet<String>,
    op: &OrSetOp<String>,
    extra: &mut HashMap<ReplicaId, u64>,
) -> Result<(), ApplyError> {
    let seen = |replica: ReplicaId, extra: &HashMap<ReplicaId, u64>| {
        let context = set.context().get(replica);
        extra.get(&replica).map_or(context, |more| context.max(*more))
    };
    let check_counter = |dot: &Dot| {
        if dot.counter == 0 {
            return Err(ApplyError::Invalid("or-set dot counter must be at least 1"));
        }
        Ok(())
    };
    let check_seen = |dots: &[Dot], extra: &HashMap<ReplicaId, u64>| {
        for dot in dots {
            check_counter(dot)?;
            if dot.counter > seen(dot.replica, extra) {
                return Err(ApplyError::UnknownId { replica: dot.replica, counter: dot.counter });
            }
        }
        Ok(())
    };
    match op {
        OrSetOp::Add { dot, removes, .. } => {
            check_counter(dot)?;
            let seen_before = seen(dot.replica, extra);
            if dot.counter <= seen_before {
                // A duplicate: `OrSet::apply` ignores it without looking at `removes`.
                return Ok(());
            }
            if dot.counter > seen_before + 1 {
                return Err(ApplyError::OutOfOrder {
                    replica: dot.replica,
                    expected: seen_before + 1,
                    found: dot.counter,
                });
            }
            check_seen(removes, extra)?;
            extra.insert(dot.replica, dot.counter);
            Ok(())
        }
        OrSetOp::Remove { dots, .. } => check_seen(dots, extra),
    }
}

/// Checks one register operation exactly as [`LwwRegister::apply`] would, with `latest` holding
/// the newest write of earlier operations of the same change (and updating it).
fn validate_register_op<'a>(
    register: Option<&'a LwwRegister<String>>,
    op: &'a LwwOp<String>,
    latest: &mut Option<(Lamport, &'a String)>,
) -> Result<(), ApplyError> {
    if op.stamp.time == 0 {
        return Err(ApplyError::Invalid("lww stamp time must be at least 1"));
    }
    let current = match (*latest, register) {
        (Some(latest), _) => Some(latest),
        (None, Some(register)) => register.stamp().zip(register.value()),
        (None, None) => None,
    };
    match current {
        Some((stamp, value)) if stamp == op.stamp && *value != op.value => {
            Err(ApplyError::Invalid("lww stamp was reused with a different value"))
        }
        Some((stamp, _)) if stamp >= op.stamp => Ok(()),
        _ => {
            *latest = Some((op.stamp, &op.value));
            Ok(())
        }
    }
}

//! Receiving from other replicas: [`Document::apply_change`] (op-based, with buffering),
//! [`Document::merge`] (state-based), and serving history with [`Document::ops_since`] and
//! [`Document::changes_of`].
//!
//! A change from replica `r` with number `seq` is *ready* when the document has applied
//! exactly `seq - 1` changes of `r` and everything in the change's `deps`. The cases:
//!
//! | arriving change                 | result                                            |
//! |---------------------------------|---------------------------------------------------|
//! | `seq <= version[r]`             | `Duplicate`, nothing changes                      |
//! | ready, operations fit the state | `Applied`, then buffered changes it made ready    |
//! | ready, an operation does not fit| `Err`, nothing changes                            |
//! | not ready, already buffered     | `Duplicate`                                       |
//! | not ready                       | `Buffered` (or `Err` if [`MAX_PENDING`] are held) |
//!
//! A buffered change that turns out not to fit when it becomes ready is dropped: the change
//! that made it ready has been applied, so its caller gets `Ok`. Changes that depend on the
//! dropped one stay buffered, as they can never become ready.
//!
//! [`MAX_PENDING`]: super::MAX_PENDING

use std::collections::HashMap;

use super::buffer::Inserted;
use super::change::{validate_ops, OpsCheck};
use super::field::{Field, FieldKind, FieldName, FieldOp, Op};
use super::{ApplyOutcome, Change, ChangeId, Document};
use crate::{ApplyError, ReplicaId, TextDelta, VersionVector};

impl Document {
    /// Checks that the register writes of `changes` (ready to apply in this order, after
    /// everything this document holds) carry stamps their authors could have made: at most one
    /// above the largest stamp of that register written before it.
    ///
    /// A replica stamps a write one above the register's stamp it has seen, and it has seen no
    /// more than the change's causal past, which a document that can apply the change already
    /// holds. So an honest write is never refused; a write stamped far ahead (say `u64::MAX`)
    /// is, because it would win against every later write and pin the register for good. Not
    /// part of [`apply_change`](Self::apply_change), which must decide alike on every replica
    /// whatever else each has seen: a server checks this before it accepts a batch, so no
    /// replica ever receives such a write. Returns the index of the first change that fails.
    pub fn check_register_stamps(&self, changes: &[Change]) -> Result<(), usize> {
        let mut latest: HashMap<&FieldName, u64> = HashMap::new();
        for (index, change) in changes.iter().enumerate() {
            if change.seq <= self.version.get(change.replica) {
                continue; // a duplicate: applying it changes nothing
            }
            for field_op in &change.ops {
                let Op::Register(op) = &field_op.op else { continue };
                let before = *latest.entry(&field_op.field).or_insert_with(|| {
                    match self.fields.get(&(field_op.field.clone(), FieldKind::Register)) {
                        Some(Field::Register(register)) => register.stamp().map_or(0, |stamp| stamp.time),
                        _ => 0,
                    }
                });
                if op.stamp.time > before.saturating_add(1) {
                    return Err(index);
                }
                latest.insert(&field_op.field, before.max(op.stamp.time));
            }
        }
        Ok(())
    }

    /// Checks that `changes`, applied in this order after everything this document holds, would
    /// all apply: each new one must be ready by then (its replica's next change, its `deps`
    /// held or earlier in the list) and its operations must fit the state the earlier ones
    /// leave. Changes the document (or an earlier one of the list) already has are skipped, as
    /// [`apply_change`](Self::apply_change) would skip them. Nothing is changed.
    ///
    /// This is what lets a server refuse a batch whole without applying part of it first: if
    /// this returns `Ok`, applying the changes one by one cannot fail. On failure it returns
    /// the index of the first change that would not apply, and why.
    pub fn check_changes(&self, changes: &[Change]) -> Result<(), (usize, ApplyError)> {
        let mut version = self.version.clone();
        let mut ops = OpsCheck::new(&self.fields);
        for (index, change) in changes.iter().enumerate() {
            change.validate().map_err(|error| (index, ApplyError::Invalid(error)))?;
            if change.seq <= version.get(change.replica) {
                continue;
            }
            if !change.is_ready(&version) {
                let expected = version.get(change.replica) + 1;
                return Err((index, ApplyError::OutOfOrder { replica: change.replica, expected, found: change.seq }));
            }
            ops.check(change).map_err(|error| (index, error))?;
            version.set(change.replica, change.seq);
        }
        Ok(())
    }

    /// How many fields the document has (one per `(name, kind)` that any change touched).
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// Whether the field `(name, kind)` exists.
    pub fn has_field(&self, name: &str, kind: FieldKind) -> bool {
        self.fields.contains_key(&(FieldName::new(name), kind))
    }

    /// Characters ever inserted into the document's text fields, deleted ones included (a
    /// text keeps its deleted characters: concurrent edits may still refer to them).
    pub fn text_chars(&self) -> u64 {
        self.fields
            .values()
            .map(|field| match field {
                Field::Text(rga) => rga.inserted_chars(),
                _ => 0,
            })
            .sum()
    }

    /// Applies a change from another replica (or re-delivers one of ours); see the module docs
    /// for the cases.
    ///
    /// `Applied::deltas` lists the visible edits of text fields, in order, for updating an
    /// editor in place.
    pub fn apply_change(&mut self, change: Change) -> Result<ApplyOutcome, ApplyError> {
        change.validate().map_err(ApplyError::Invalid)?;
        if change.seq <= self.version.get(change.replica) {
            return Ok(ApplyOutcome::Duplicate);
        }
        if !self.is_ready(&change) {
            return match self.pending.insert(change) {
                Inserted::New => Ok(ApplyOutcome::Buffered),
                Inserted::AlreadyHeld => Ok(ApplyOutcome::Duplicate),
                Inserted::Full => Err(ApplyError::Invalid("too many buffered changes")),
            };
        }
        let mut deltas = Vec::new();
        self.apply_ready(change, &mut deltas)?;
        let changes = 1 + self.drain_pending(&mut deltas);
        self.debug_check();
        Ok(ApplyOutcome::Applied { changes, deltas })
    }

    /// The changes in the history that `version` lacks, in causal order, ready to be applied
    /// one by one by a replica at `version`.
    ///
    /// `None` if that replica also lacks changes from before [`history_base`] (which this
    /// document knows only by their effect): send it a snapshot instead.
    ///
    /// [`history_base`]: Document::history_base
    pub fn ops_since(&self, version: &VersionVector) -> Option<Vec<Change>> {
        self.history.since(version, &self.fields)
    }

    /// The change `id` as this document applied it, if its history holds it (not when it is
    /// before [`history_base`](Document::history_base) or was never applied). A server
    /// compares a re-sent change with it: same id, other content is a reused replica id.
    pub fn change(&self, id: ChangeId) -> Option<Change> {
        self.history.get(id, &self.fields)
    }

    /// `replica`'s changes after number `after_seq`, in order; `None` if some of them are from
    /// before [`history_base`](Document::history_base).
    pub fn changes_of(&self, replica: ReplicaId, after_seq: u64) -> Option<Vec<Change>> {
        self.history.of(replica, after_seq, &self.fields)
    }

    /// Merges another document's state into this one: every field is merged (missing ones are
    /// created), the version becomes the maximum of both, and the history takes the other's
    /// changes that this one lacks.
    ///
    /// Where the other document cannot supply those changes (its history starts after them),
    /// this document's history base is raised past them, so [`ops_since`](Self::ops_since)
    /// answers `None` instead of an incomplete list for such ranges. Buffered changes that
    /// became ready are applied afterwards; the other document's buffer is not taken.
    pub fn merge(&mut self, other: &Document) {
        for (key, theirs) in &other.fields {
            match self.fields.get_mut(key) {
                Some(ours) => ours.merge(theirs),
                None => {
                    let mut field = theirs.clone();
                    field.set_replica(self.replica);
                    self.fields.insert(key.clone(), field);
                }
            }
        }
        let own = self.version.clone();
        self.history.absorb(&own, &other.history, &self.fields);
        for (replica, seq) in other.version.iter() {
            if seq > own.get(replica) {
                self.heads.insert(replica);
            }
        }
        self.version.merge(&other.version);
        self.drain_pending(&mut Vec::new());
        self.debug_check();
    }

    fn is_ready(&self, change: &Change) -> bool {
        change.is_ready(&self.version)
    }

    /// Validates a ready change against the state, then applies and records it.
    fn apply_ready(&mut self, change: Change, deltas: &mut Vec<(String, TextDelta)>) -> Result<(), ApplyError> {
        validate_ops(&self.fields, &change)?;
        let mut text_deltas = Vec::new();
        for FieldOp { field, op } in &change.ops {
            let replica = self.replica;
            let state = self.fields.entry((field.clone(), op.kind())).or_insert_with(|| Field::new(op.kind(), replica));
            if let Err(error) = state.apply(op, &mut text_deltas) {
                // `validate_ops` accepted the operation, so this is a bug in a CRDT's checks.
                // The change stays unrecorded; its operations are idempotent, so delivering it
                // again after a fix re-applies only what is missing.
                debug_assert!(false, "validated operation failed to apply: {error}");
                return Err(error);
            }
            deltas.extend(text_deltas.drain(..).map(|delta| (field.to_string(), delta)));
        }
        for dep in &change.deps {
            if self.version.get(dep.replica) == dep.seq {
                self.heads.remove(&dep.replica);
            }
        }
        self.heads.insert(change.replica);
        self.version.set(change.replica, change.seq);
        self.history.push(&change);
        Ok(())
    }

    /// Applies every buffered change that is ready, until none is; returns how many applied.
    fn drain_pending(&mut self, deltas: &mut Vec<(String, TextDelta)>) -> usize {
        let mut applied = 0;
        while let Some(change) = self.pending.take_ready(&self.version) {
            // The deltas of a rejected change are never produced: validation comes first.
            if self.apply_ready(change, deltas).is_ok() {
                applied += 1;
            }
        }
        applied
    }
}

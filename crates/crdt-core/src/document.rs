//! [`Document`]: named fields of five CRDT kinds sharing one causal history.
//!
//! A document holds fields keyed by `(name, kind)` — text ([`Rga`]), register
//! ([`LwwRegister<String>`](crate::LwwRegister)), set ([`OrSet<String>`](crate::OrSet)), counter
//! ([`PnCounter`](crate::PnCounter)) and grow-only counter ([`GCounter`](crate::GCounter)). A
//! field comes into being with the first operation on it, local or remote; the same name with
//! two kinds is two fields that never conflict.
//!
//! Every local edit is applied at once and recorded as a [`Change`]: the next `seq` of this
//! replica, the changes it was made on top of (`deps`: the document's *heads*, the applied
//! changes no other applied change depends on, less this replica's own previous one), and the
//! operations. The change is appended to the document's history (a compact log that stores
//! none of what the fields already hold) and returned, to be sent to the other replicas, which apply it with
//! [`Document::apply_change`]. A remote change applies only after its causal past; until then
//! it is buffered. A change whose operations do not fit the state (say, deleting characters
//! that do not exist) is rejected whole, and the document is unchanged.
//!
//! ```
//! use crdt_core::{Document, ReplicaId};
//!
//! let mut alice = Document::new(ReplicaId::from_u128(1));
//! let mut bob = Document::new(ReplicaId::from_u128(2));
//! let hello = alice.insert_text("body", 0, "hello").unwrap();
//! let like = bob.increment("likes", 1);
//! bob.apply_change(hello).unwrap();
//! alice.apply_change(like).unwrap();
//! assert_eq!(alice.text("body").as_deref(), Some("hello"));
//! assert_eq!(alice.state_hash(), bob.state_hash());
//! ```
//!
//! # Invariants
//! - `version` has no zero entries, and `history` runs from its base to exactly `version`.
//! - `heads` holds replicas `version` counts, and the changes `(r, version[r])` for `r` in
//!   `heads`, with everything they depend on, are exactly the changes `version` counts (it may
//!   hold a replica whose latest change another one depends on: one dependency too many is
//!   harmless).
//! - Every field's state is the result of exactly the changes counted by `version` (so a field
//!   exists iff some applied change touched it).
//! - Every text field's [`Rga`] makes local inserts as `replica`.
//! - No buffered change is ready or already applied.

mod buffer;
mod change;
mod edit;
mod field;
mod history;
mod log_codec;
mod remote;
mod transaction;
mod value;

use std::collections::{BTreeMap, BTreeSet};

pub use buffer::MAX_PENDING;
pub use change::{causal_order, ApplyOutcome, Change, ChangeId, MAX_COUNTER_TOTAL, MAX_DEPS, MAX_SEQ};
pub use field::{FieldKind, FieldName, FieldOp, Op};
pub use transaction::Transaction;
pub use value::{DocValue, FieldValue};

pub(crate) use field::Field;
pub(crate) use history::{Fields, History};
pub(crate) use log_codec::{decode as decode_log, encode as encode_log};

use buffer::Pending;

use crate::{EditError, InlineVec, ReplicaId, Rga, VersionVector};

/// A collaborative document; see the module docs.
#[derive(Clone, Debug)]
pub struct Document {
    replica: ReplicaId,
    fields: BTreeMap<(FieldName, FieldKind), Field>,
    version: VersionVector,
    /// The replicas whose latest change is a head (see the invariants).
    heads: BTreeSet<ReplicaId>,
    history: History,
    pending: Pending,
    /// The name of the text field edited last, so that the next edit of it (nearly every edit)
    /// reuses the name instead of copying it again.
    last_text: FieldName,
}

/// Two documents are equal when they hold the same replicated state: equal fields and version,
/// and the same history (the same changes after the same base, in any causal order). The local
/// replica id and the buffer of not-yet-ready changes (unprocessed input) are ignored.
impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
            && self.version == other.version
            && self.history.same_changes(&self.fields, &other.history, &other.fields)
    }
}

impl Document {
    /// An empty document edited locally as `replica`.
    pub fn new(replica: ReplicaId) -> Document {
        Document {
            replica,
            fields: BTreeMap::new(),
            version: VersionVector::new(),
            heads: BTreeSet::new(),
            history: History::default(),
            pending: Pending::default(),
            last_text: FieldName::default(),
        }
    }

    /// Checks decoded field states and keys them; every text field edits as `replica`.
    pub(crate) fn check_fields(replica: ReplicaId, fields: Vec<(FieldName, Field)>) -> Result<Fields, &'static str> {
        let mut map = BTreeMap::new();
        for (name, mut field) in fields {
            field.validate()?;
            field.set_replica(replica);
            if map.insert((name, field.kind()), field).is_some() {
                return Err("snapshot holds the same field twice");
            }
        }
        Ok(map)
    }

    /// Rebuilds a document from decoded and checked parts; the history must reach `version`.
    pub(crate) fn from_parts(
        replica: ReplicaId,
        fields: Fields,
        version: VersionVector,
        history: History,
    ) -> Result<Document, &'static str> {
        if history.reached() != version {
            return Err("history does not reach the snapshot version");
        }
        let heads = history.heads(&version).into_iter().collect();
        let doc = Document {
            replica,
            fields,
            version,
            heads,
            history,
            pending: Pending::default(),
            last_text: FieldName::default(),
        };
        doc.debug_check();
        Ok(doc)
    }

    /// The replica this document makes its local edits as.
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// Makes later local edits as `replica`.
    ///
    /// Use a replica id that has never made a change in this document (a fresh
    /// [`ReplicaId::random`]) unless it is this document's own earlier id, restored after a
    /// reload: two documents editing as one replica would mint the same ids.
    pub fn set_replica(&mut self, replica: ReplicaId) {
        self.replica = replica;
        for field in self.fields.values_mut() {
            field.set_replica(replica);
        }
    }

    /// How many changes of each replica this document has applied.
    pub fn version(&self) -> &VersionVector {
        &self.version
    }

    /// The version at which the kept history starts: changes up to it are known only by their
    /// effect (after loading a snapshot without history, or through a state merge).
    pub fn history_base(&self) -> &VersionVector {
        self.history.base()
    }

    /// The applied changes after [`history_base`](Self::history_base), in the order they were
    /// applied (a causal order). Rebuilt from the compact log: linear in the history.
    pub fn history(&self) -> Vec<Change> {
        self.history.all(&self.fields)
    }

    /// How many changes the history holds (without rebuilding them).
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// How many spans the history keeps its changes in: runs of one replica's changes that
    /// follow one pattern (typing, backspacing), each stored once.
    pub fn history_spans(&self) -> usize {
        self.history.span_count()
    }

    /// Bytes of heap the document uses: its fields and its history.
    pub fn heap_size(&self) -> usize {
        self.fields.values().map(Field::heap_size).sum::<usize>() + self.history.heap_size()
    }

    /// How many received changes are buffered, waiting for their causal past.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The buffered changes, in `(replica, seq)` order.
    pub fn pending(&self) -> impl Iterator<Item = &Change> {
        self.pending.iter()
    }

    /// The keys of all fields, in `(name, kind)` order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, FieldKind)> {
        self.fields.keys().map(|(name, kind)| (name.as_str(), *kind))
    }

    // ---- Local edits. Each applies at once and returns the change to send. ----

    /// Inserts `text` at character position `pos` of the text field `field`.
    ///
    /// Errors: [`EditError::EmptyText`] for `""`, [`EditError::OutOfBounds`] past the end; the
    /// document is then unchanged.
    #[inline(always)]
    pub fn insert_text(&mut self, field: &str, pos: usize, text: &str) -> Result<Change, EditError> {
        let ops = self.stage_insert_text(field, pos, text, false)?;
        Ok(self.commit(ops))
    }

    /// Deletes `len` characters from position `pos` of the text field `field`.
    ///
    /// Returns `Ok(None)` (and records nothing) when `len` is 0.
    #[inline(always)]
    pub fn delete_text(&mut self, field: &str, pos: usize, len: usize) -> Result<Option<Change>, EditError> {
        let ops = self.stage_delete_text(field, pos, len, false)?;
        Ok(self.commit_some(ops))
    }

    /// Replaces the `len` characters from position `pos` of the text field `field` by `text`,
    /// as one change: what an editor does when text is typed or pasted over a selection.
    ///
    /// The change holds the delete (if `len` > 0), then the insert (if `text` is not empty), the
    /// same operations as a [`transact`](Self::transact) that calls
    /// [`Transaction::delete_text`] and then [`Transaction::insert_text`] at `pos`; but the
    /// edit is checked whole before anything changes, so it copies nothing. Returns `Ok(None)`
    /// (and records nothing) when `len` is 0 and `text` is empty.
    ///
    /// Errors: [`EditError::OutOfBounds`] if `pos + len` is past the end ([`EditError::Overflow`]
    /// as for an insert); the document is then unchanged, and a field that did not exist is not
    /// created.
    ///
    /// ```
    /// use crdt_core::{Document, ReplicaId};
    ///
    /// let mut doc = Document::new(ReplicaId::from_u128(1));
    /// doc.insert_text("body", 0, "hello world").unwrap();
    /// let change = doc.replace_text("body", 6, 5, "there").unwrap().expect("an edit");
    /// assert_eq!(change.ops.len(), 2);
    /// assert_eq!(doc.text("body").as_deref(), Some("hello there"));
    /// ```
    #[inline(always)]
    pub fn replace_text(
        &mut self,
        field: &str,
        pos: usize,
        len: usize,
        text: &str,
    ) -> Result<Option<Change>, EditError> {
        let ops = self.stage_replace_text(field, pos, len, text, false)?;
        Ok(self.commit_some(ops))
    }

    /// [`insert_text`](Self::insert_text) with `pos16` in UTF-16 code units (JavaScript string
    /// positions).
    pub fn insert_text_utf16(&mut self, field: &str, pos16: usize, text: &str) -> Result<Change, EditError> {
        let ops = self.stage_insert_text(field, pos16, text, true)?;
        Ok(self.commit(ops))
    }

    /// [`delete_text`](Self::delete_text) with `pos16` and `len16` in UTF-16 code units.
    pub fn delete_text_utf16(&mut self, field: &str, pos16: usize, len16: usize) -> Result<Option<Change>, EditError> {
        let ops = self.stage_delete_text(field, pos16, len16, true)?;
        Ok(self.commit_some(ops))
    }

    /// [`replace_text`](Self::replace_text) with `pos16` and `len16` in UTF-16 code units, as an
    /// editor reports a change (also [`EditError::SplitsSurrogate`] if either end falls inside
    /// a surrogate pair).
    pub fn replace_text_utf16(
        &mut self,
        field: &str,
        pos16: usize,
        len16: usize,
        text: &str,
    ) -> Result<Option<Change>, EditError> {
        let ops = self.stage_replace_text(field, pos16, len16, text, true)?;
        Ok(self.commit_some(ops))
    }

    /// Sets the register field `field` to `value`.
    pub fn set_register(&mut self, field: &str, value: String) -> Change {
        let op = self.stage_set_register(field, value);
        self.commit(InlineVec::one(op))
    }

    /// Adds `value` to the set field `field`.
    pub fn add_to_set(&mut self, field: &str, value: String) -> Change {
        let op = self.stage_add_to_set(field, value);
        self.commit(InlineVec::one(op))
    }

    /// Removes `value` from the set field `field`; `Ok(None)` (nothing recorded) if it is not
    /// there. Never fails today; the `Result` leaves room for errors of future set kinds.
    pub fn remove_from_set(&mut self, field: &str, value: &str) -> Result<Option<Change>, EditError> {
        let op = self.stage_remove_from_set(field, value);
        Ok(op.map(|op| self.commit(InlineVec::one(op))))
    }

    /// Adds `n` to the counter field `field`.
    pub fn increment(&mut self, field: &str, n: u64) -> Change {
        let op = self.stage_counter(field, n, true);
        self.commit(InlineVec::one(op))
    }

    /// Subtracts `n` from the counter field `field`.
    pub fn decrement(&mut self, field: &str, n: u64) -> Change {
        let op = self.stage_counter(field, n, false);
        self.commit(InlineVec::one(op))
    }

    /// Adds `n` to the grow-only counter field `field`.
    pub fn increment_gcounter(&mut self, field: &str, n: u64) -> Change {
        let op = self.stage_gcounter(field, n);
        self.commit(InlineVec::one(op))
    }

    /// Makes several edits as one change.
    ///
    /// The closure edits through the [`Transaction`]; each edit applies at once, so later ones
    /// see earlier ones. If the closure returns `Ok`, the edits are recorded as one change,
    /// returned (`None` if it made no edit). If it returns `Err`, every edit is undone and the
    /// document is as before; the error is returned.
    ///
    /// To be able to undo, a transaction copies each field the first time it edits it: cheap
    /// for registers, sets and counters, proportional to the text for a text field. The single
    /// edit methods copy nothing. If the closure panics, the edits are undone as the
    /// transaction unwinds.
    pub fn transact<F>(&mut self, edits: F) -> Result<Option<Change>, EditError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), EditError>,
    {
        let mut transaction = Transaction::new(self);
        // On `Err`, or if the closure panics, dropping the transaction undoes its edits.
        edits(&mut transaction)?;
        let ops = transaction.finish();
        Ok(self.commit_some(ops))
    }

    // ---- Reads. ----

    /// The text of the text field `field`, if it exists.
    pub fn text(&self, field: &str) -> Option<String> {
        self.rga(field).map(Rga::value)
    }

    /// The text field `field` itself (for lengths, position conversion and anchors).
    pub fn rga(&self, field: &str) -> Option<&Rga> {
        match self.field(field, FieldKind::Text) {
            Some(Field::Text(rga)) => Some(rga),
            _ => None,
        }
    }

    /// The value of the register field `field`; `None` if it does not exist or was never set.
    pub fn register(&self, field: &str) -> Option<&str> {
        match self.field(field, FieldKind::Register) {
            Some(Field::Register(register)) => register.value().map(String::as_str),
            _ => None,
        }
    }

    /// The elements of the set field `field`, in ascending order (empty if it does not exist).
    pub fn set(&self, field: &str) -> Vec<String> {
        match self.field(field, FieldKind::Set) {
            Some(Field::Set(set)) => field::set_elements(set),
            _ => Vec::new(),
        }
    }

    /// The value of the counter field `field` (0 if it does not exist).
    pub fn counter(&self, field: &str) -> i64 {
        match self.field(field, FieldKind::Counter) {
            Some(Field::Counter(counter)) => counter.value(),
            _ => 0,
        }
    }

    /// The value of the grow-only counter field `field` (0 if it does not exist).
    pub fn gcounter(&self, field: &str) -> u64 {
        match self.field(field, FieldKind::GCounter) {
            Some(Field::GCounter(counter)) => counter.value(),
            _ => 0,
        }
    }

    /// The plain value of every field; see [`DocValue`].
    pub fn value(&self) -> DocValue {
        DocValue::of(&self.fields)
    }

    /// A 64-bit hash of the values of all fields, equal for equal values on every replica and
    /// platform (FNV-1a over a canonical encoding; see [`DocValue`]'s module).
    pub fn state_hash(&self) -> u64 {
        value::state_hash(&self.fields)
    }

    /// Checks every documented invariant; panics with a description if one is broken.
    pub fn check_invariants(&self) {
        self.version.check_invariants();
        self.history.check_invariants(&self.version, &self.fields);
        for replica in &self.heads {
            assert!(self.version.get(*replica) > 0, "a head names a replica the version does not count");
        }
        self.pending.check_invariants(&self.version);
        for ((name, kind), field) in &self.fields {
            assert_eq!(field.kind(), *kind, "field {name:?} is stored under another kind");
            field.check_invariants();
            if let Field::Text(rga) = field {
                assert_eq!(rga.replica(), self.replica, "text field {name:?} uses another replica");
            }
        }
    }

    /// The full check is linear in the document's size, so plain debug builds run only the
    /// cheap part after each edit; the `check-invariants` feature runs all of it.
    fn debug_check(&self) {
        if cfg!(feature = "check-invariants") {
            self.check_invariants();
        } else if cfg!(debug_assertions) {
            self.version.check_invariants();
            self.history.quick_check(&self.version);
        }
    }

    fn field(&self, name: &str, kind: FieldKind) -> Option<&Field> {
        self.fields.get(&(FieldName::new(name), kind))
    }

    /// [`commit`](Self::commit), unless there is no operation.
    #[inline(always)]
    fn commit_some(&mut self, ops: InlineVec<FieldOp>) -> Option<Change> {
        (!ops.is_empty()).then(|| self.commit(ops))
    }

    /// Records locally applied operations as this replica's next change.
    #[inline(always)]
    fn commit(&mut self, ops: InlineVec<FieldOp>) -> Change {
        let seq = self.version.increment(self.replica);
        // While this replica edits alone, its previous change is the only head: no deps, and
        // the heads stay as they are (the common case, checked without walking the set).
        let alone = self.heads.len() == 1 && self.heads.first() == Some(&self.replica);
        let deps = if alone {
            Vec::new()
        } else {
            self.heads
                .iter()
                .filter(|replica| **replica != self.replica)
                .map(|replica| ChangeId { replica: *replica, seq: self.version.get(*replica) })
                .collect()
        };
        // The new change depends on every head: it is the only one now.
        if !alone {
            self.heads.clear();
            self.heads.insert(self.replica);
        }
        self.history.record(self.replica, seq, &deps, &ops);
        self.debug_check();
        // Put together only here, where it is returned: a change is large enough that every
        // move of it costs a call to `memcpy`. For the same reason the text edits that return
        // it are inlined into their callers (`#[inline(always)]`), which lets the change be
        // built where the caller keeps it rather than copied out through each layer.
        Change { replica: self.replica, seq, deps, ops }
    }

    pub(crate) fn history_log(&self) -> &History {
        &self.history
    }

    pub(crate) fn fields_map(&self) -> &BTreeMap<(FieldName, FieldKind), Field> {
        &self.fields
    }
}

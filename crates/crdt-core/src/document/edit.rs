//! Staging of local edits: apply one edit to its field and return the operation, without
//! recording a change. [`Document`]'s edit methods commit the operation at once; a
//! [`Transaction`](super::Transaction) collects several before committing.
//!
//! A field is created only by an edit that produces an operation: a failed edit, an empty
//! delete or the removal of an absent element leaves no trace. Every replica therefore has a
//! field exactly when it has applied a change that touches it, which keeps [`Document::value`]
//! equal across replicas.

use super::field::{Field, FieldKind, FieldName, FieldOp, Op};
use super::Document;
use crate::{EditError, InlineVec, Rga, RgaOp, MAX_COUNTER_TOTAL};

/// A text operation on the field `name`.
#[inline(always)]
fn text_op(name: FieldName, op: RgaOp) -> FieldOp {
    FieldOp { field: name, op: Op::Text(op) }
}

/// How much a counter total of `total` may still grow: up to [`MAX_COUNTER_TOTAL`].
fn room(total: u64) -> u64 {
    MAX_COUNTER_TOTAL.saturating_sub(total)
}

/// The field under a key of `kind` has another kind: impossible, because keys are always made
/// from the kind of the field stored under them.
fn kind_mismatch(kind: FieldKind) -> ! {
    unreachable!("a field stored under kind {kind:?} has another kind")
}

impl Document {
    /// Inserts `text` at `pos` of the text field `name`; returns the operation.
    #[inline(always)]
    pub(super) fn stage_insert_text(
        &mut self,
        name: &str,
        pos: usize,
        text: &str,
        utf16: bool,
    ) -> Result<InlineVec<FieldOp>, EditError> {
        let (name, inserted) = self.edit_text(
            name,
            |rga| if utf16 { rga.insert_utf16(pos, text) } else { rga.insert(pos, text) },
            |_| true,
        )?;
        Ok(InlineVec::one(text_op(name, inserted.to_op())))
    }

    /// Deletes `len` characters at `pos` of the text field `name`; returns the operation (none
    /// if `len` is 0).
    #[inline(always)]
    pub(super) fn stage_delete_text(
        &mut self,
        name: &str,
        pos: usize,
        len: usize,
        utf16: bool,
    ) -> Result<InlineVec<FieldOp>, EditError> {
        let (name, deleted) = self.edit_text(
            name,
            |rga| if utf16 { rga.delete_utf16(pos, len) } else { rga.delete(pos, len) },
            |deleted| !deleted.is_empty(),
        )?;
        Ok(deleted.into_op().map(|op| text_op(name, op)).into_iter().collect())
    }

    /// Replaces `len` characters at `pos` of the text field `name` by `text`; returns the delete
    /// and then the insert operation (each only if it does something). Checked whole before
    /// anything changes ([`Rga::replace`]), so it needs no undo.
    pub(super) fn stage_replace_text(
        &mut self,
        name: &str,
        pos: usize,
        len: usize,
        text: &str,
        utf16: bool,
    ) -> Result<InlineVec<FieldOp>, EditError> {
        let (name, (deleted, inserted)) = self.edit_text(
            name,
            |rga| if utf16 { rga.replace_utf16(pos, len, text) } else { rga.replace(pos, len, text) },
            |(deleted, inserted)| !deleted.is_empty() || inserted.is_some(),
        )?;
        let deleted = deleted.into_op().map(|op| text_op(name.clone(), op));
        Ok(deleted.into_iter().chain(inserted.map(|inserted| text_op(name, inserted.to_op()))).collect())
    }

    /// Runs `edit` on the text field `name` and returns the field's name with what `edit`
    /// returned. Without such a field, `edit` runs on a new empty text, which is kept only if
    /// `made` says that the edit produced an operation. `edit` must change nothing when it
    /// returns an error.
    #[inline(always)]
    fn edit_text<R>(
        &mut self,
        name: &str,
        edit: impl FnOnce(&mut Rga) -> Result<R, EditError>,
        made: impl FnOnce(&R) -> bool,
    ) -> Result<(FieldName, R), EditError> {
        // Nearly every edit is of the text edited last: its name is taken from there, not copied.
        let name = if self.last_text == name { self.last_text.clone() } else { FieldName::new(name) };
        let edited = match self.fields.get_mut(&(name.clone(), FieldKind::Text)) {
            Some(Field::Text(rga)) => edit(rga)?,
            Some(_) => kind_mismatch(FieldKind::Text),
            None => self.edit_new_text(name.clone(), edit, made)?,
        };
        self.last_text = name.clone();
        Ok((name, edited))
    }

    /// [`edit_text`](Self::edit_text) of a text field that does not exist yet.
    #[cold]
    fn edit_new_text<R>(
        &mut self,
        name: FieldName,
        edit: impl FnOnce(&mut Rga) -> Result<R, EditError>,
        made: impl FnOnce(&R) -> bool,
    ) -> Result<R, EditError> {
        let mut rga = Rga::new(self.replica);
        let edited = edit(&mut rga)?;
        if made(&edited) {
            self.fields.insert((name, FieldKind::Text), Field::Text(Box::new(rga)));
        }
        Ok(edited)
    }

    pub(super) fn stage_set_register(&mut self, name: &str, value: String) -> FieldOp {
        let replica = self.replica;
        let name = FieldName::new(name);
        let op = match self.entry(name.clone(), FieldKind::Register) {
            Field::Register(register) => register.set(replica, value),
            _ => kind_mismatch(FieldKind::Register),
        };
        FieldOp { field: name, op: Op::Register(op) }
    }

    pub(super) fn stage_add_to_set(&mut self, name: &str, value: String) -> FieldOp {
        let replica = self.replica;
        let name = FieldName::new(name);
        let op = match self.entry(name.clone(), FieldKind::Set) {
            Field::Set(set) => set.add(replica, value),
            _ => kind_mismatch(FieldKind::Set),
        };
        FieldOp { field: name, op: Op::Set(op) }
    }

    pub(super) fn stage_remove_from_set(&mut self, name: &str, value: &str) -> Option<FieldOp> {
        let name = FieldName::new(name);
        let op = match self.fields.get_mut(&(name.clone(), FieldKind::Set)) {
            Some(Field::Set(set)) => set.remove(&value.to_owned())?,
            Some(_) => kind_mismatch(FieldKind::Set),
            None => return None,
        };
        Some(FieldOp { field: name, op: Op::Set(op) })
    }

    pub(super) fn stage_counter(&mut self, name: &str, n: u64, up: bool) -> FieldOp {
        let replica = self.replica;
        let name = FieldName::new(name);
        // A total stops at MAX_COUNTER_TOTAL, above which other replicas refuse it.
        let op = match self.entry(name.clone(), FieldKind::Counter) {
            Field::Counter(counter) if up => counter.increment(replica, n.min(room(counter.get(replica).0))),
            Field::Counter(counter) => counter.decrement(replica, n.min(room(counter.get(replica).1))),
            _ => kind_mismatch(FieldKind::Counter),
        };
        FieldOp { field: name, op: Op::Counter(op) }
    }

    pub(super) fn stage_gcounter(&mut self, name: &str, n: u64) -> FieldOp {
        let replica = self.replica;
        let name = FieldName::new(name);
        let op = match self.entry(name.clone(), FieldKind::GCounter) {
            Field::GCounter(counter) => counter.increment(replica, n.min(room(counter.get(replica)))),
            _ => kind_mismatch(FieldKind::GCounter),
        };
        FieldOp { field: name, op: Op::GCounter(op) }
    }

    /// The field `(name, kind)`, created empty if missing. Only for edits that always produce
    /// an operation.
    fn entry(&mut self, name: FieldName, kind: FieldKind) -> &mut Field {
        let replica = self.replica;
        self.fields.entry((name, kind)).or_insert_with(|| Field::new(kind, replica))
    }
}

//! Staging of local edits: apply one edit to its field and return the operation, without
//! recording a change. [`Document`]'s edit methods commit the operation at once; a
//! [`Transaction`](super::Transaction) collects several before committing.
//!
//! A field is created only by an edit that produces an operation: a failed edit, an empty
//! delete or the removal of an absent element leaves no trace. Every replica therefore has a
//! field exactly when it has applied a change that touches it, which keeps [`Document::value`]
//! equal across replicas.

use super::field::{Field, FieldKind, FieldOp, Op};
use super::Document;
use crate::{EditError, Rga, RgaOp};

/// The field under a key of `kind` has another kind: impossible, because keys are always made
/// from the kind of the field stored under them.
fn kind_mismatch(kind: FieldKind) -> ! {
    unreachable!("a field stored under kind {kind:?} has another kind")
}

impl Document {
    pub(super) fn stage_insert_text(
        &mut self,
        name: &str,
        pos: usize,
        text: &str,
        utf16: bool,
    ) -> Result<FieldOp, EditError> {
        let op = self.stage_text(name, |rga| {
            let op = if utf16 { rga.insert_utf16(pos, text)? } else { rga.insert(pos, text)? };
            Ok(Some(op.to_op()))
        })?;
        // An insert always yields an operation; `stage_text` only passes it through.
        op.ok_or(EditError::EmptyText)
    }

    pub(super) fn stage_delete_text(
        &mut self,
        name: &str,
        pos: usize,
        len: usize,
        utf16: bool,
    ) -> Result<Option<FieldOp>, EditError> {
        self.stage_text(name, |rga| {
            let deleted = if utf16 { rga.delete_utf16(pos, len)? } else { rga.delete(pos, len)? };
            Ok(deleted.into_op())
        })
    }

    /// Runs `edit` on the text field `name`, or on a new empty text that is kept only if the
    /// edit produced an operation.
    fn stage_text(
        &mut self,
        name: &str,
        edit: impl FnOnce(&mut Rga) -> Result<Option<RgaOp>, EditError>,
    ) -> Result<Option<FieldOp>, EditError> {
        let key = (name.to_owned(), FieldKind::Text);
        let op = match self.fields.get_mut(&key) {
            Some(Field::Text(rga)) => edit(rga)?,
            Some(_) => kind_mismatch(FieldKind::Text),
            None => {
                let mut rga = Rga::new(self.replica);
                let op = edit(&mut rga)?;
                if op.is_some() {
                    self.fields.insert(key.clone(), Field::Text(Box::new(rga)));
                }
                op
            }
        };
        Ok(op.map(|op| FieldOp { field: key.0, op: Op::Text(op) }))
    }

    pub(super) fn stage_set_register(&mut self, name: &str, value: String) -> FieldOp {
        let replica = self.replica;
        let op = match self.entry(name, FieldKind::Register) {
            Field::Register(register) => register.set(replica, value),
            _ => kind_mismatch(FieldKind::Register),
        };
        FieldOp { field: name.to_owned(), op: Op::Register(op) }
    }

    pub(super) fn stage_add_to_set(&mut self, name: &str, value: String) -> FieldOp {
        let replica = self.replica;
        let op = match self.entry(name, FieldKind::Set) {
            Field::Set(set) => set.add(replica, value),
            _ => kind_mismatch(FieldKind::Set),
        };
        FieldOp { field: name.to_owned(), op: Op::Set(op) }
    }

    pub(super) fn stage_remove_from_set(&mut self, name: &str, value: &str) -> Option<FieldOp> {
        let op = match self.fields.get_mut(&(name.to_owned(), FieldKind::Set)) {
            Some(Field::Set(set)) => set.remove(&value.to_owned())?,
            Some(_) => kind_mismatch(FieldKind::Set),
            None => return None,
        };
        Some(FieldOp { field: name.to_owned(), op: Op::Set(op) })
    }

    pub(super) fn stage_counter(&mut self, name: &str, n: u64, up: bool) -> FieldOp {
        let replica = self.replica;
        let op = match self.entry(name, FieldKind::Counter) {
            Field::Counter(counter) if up => counter.increment(replica, n),
            Field::Counter(counter) => counter.decrement(replica, n),
            _ => kind_mismatch(FieldKind::Counter),
        };
        FieldOp { field: name.to_owned(), op: Op::Counter(op) }
    }

    pub(super) fn stage_gcounter(&mut self, name: &str, n: u64) -> FieldOp {
        let replica = self.replica;
        let op = match self.entry(name, FieldKind::GCounter) {
            Field::GCounter(counter) => counter.increment(replica, n),
            _ => kind_mismatch(FieldKind::GCounter),
        };
        FieldOp { field: name.to_owned(), op: Op::GCounter(op) }
    }

    /// The field `(name, kind)`, created empty if missing. Only for edits that always produce
    /// an operation.
    fn entry(&mut self, name: &str, kind: FieldKind) -> &mut Field {
        let replica = self.replica;
        self.fields.entry((name.to_owned(), kind)).or_insert_with(|| Field::new(kind, replica))
    }
}

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

/// A text operation whose field name [`Document::stage_text`] fills in.
fn unnamed(op: RgaOp) -> FieldOp {
    FieldOp { field: String::new(), op: Op::Text(op) }
}

impl Document {
    /// Inserts `text` at `pos` of the text field `name` and appends the operation to `ops`.
    pub(super) fn stage_insert_text(
        &mut self,
        name: &str,
        pos: usize,
        text: &str,
        utf16: bool,
        ops: &mut Vec<FieldOp>,
    ) -> Result<(), EditError> {
        self.stage_text(name, ops, |rga, ops| {
            let inserted = if utf16 { rga.insert_utf16(pos, text)? } else { rga.insert(pos, text)? };
            ops.push(unnamed(inserted.to_op()));
            Ok(())
        })
    }

    /// Deletes `len` characters at `pos` of the text field `name` and appends the operation
    /// (none if `len` is 0) to `ops`.
    pub(super) fn stage_delete_text(
        &mut self,
        name: &str,
        pos: usize,
        len: usize,
        utf16: bool,
        ops: &mut Vec<FieldOp>,
    ) -> Result<(), EditError> {
        self.stage_text(name, ops, |rga, ops| {
            let deleted = if utf16 { rga.delete_utf16(pos, len)? } else { rga.delete(pos, len)? };
            ops.extend(deleted.into_op().map(unnamed));
            Ok(())
        })
    }

    /// Replaces `len` characters at `pos` of the text field `name` by `text` and appends the
    /// delete and then the insert operation (each only if it does something) to `ops`. Checked
    /// whole before anything changes ([`Rga::replace`]), so it needs no undo.
    pub(super) fn stage_replace_text(
        &mut self,
        name: &str,
        pos: usize,
        len: usize,
        text: &str,
        utf16: bool,
        ops: &mut Vec<FieldOp>,
    ) -> Result<(), EditError> {
        self.stage_text(name, ops, |rga, ops| {
            let (deleted, inserted) =
                if utf16 { rga.replace_utf16(pos, len, text)? } else { rga.replace(pos, len, text)? };
            ops.extend(deleted.into_op().map(unnamed));
            ops.extend(inserted.map(|inserted| unnamed(inserted.to_op())));
            Ok(())
        })
    }

    /// Runs `edit` on the text field `name`, or on a new empty text that is kept only if the
    /// edit produced an operation. `edit` appends its operations to `ops` unnamed, and only
    /// once nothing can fail: it must change nothing when it returns an error.
    fn stage_text(
        &mut self,
        name: &str,
        ops: &mut Vec<FieldOp>,
        edit: impl FnOnce(&mut Rga, &mut Vec<FieldOp>) -> Result<(), EditError>,
    ) -> Result<(), EditError> {
        let key = (name.to_owned(), FieldKind::Text);
        let before = ops.len();
        match self.fields.get_mut(&key) {
            Some(Field::Text(rga)) => edit(rga, ops)?,
            Some(_) => kind_mismatch(FieldKind::Text),
            None => {
                let mut rga = Rga::new(self.replica);
                edit(&mut rga, ops)?;
                if ops.len() > before {
                    self.fields.insert(key.clone(), Field::Text(Box::new(rga)));
                }
            }
        }
        // The operations are named here, so that the copy of the name made for the lookup goes
        // to the last one: only a replace that deletes and inserts copies it again.
        if let Some((last, rest)) = ops[before..].split_last_mut() {
            for op in rest {
                op.field = key.0.clone();
            }
            last.field = key.0;
        }
        Ok(())
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

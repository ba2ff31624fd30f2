//! [`Transaction`]: several local edits recorded as one change, all or nothing.
//!
//! Edits apply at once (so the closure can read its own writes through
//! [`Transaction::document`]) and their operations are collected. Before the first edit of a
//! field the transaction keeps a copy of it (or notes that it did not exist); if the closure
//! fails, the copies are put back, so a failed transaction leaves no operation applied without
//! being recorded. The same happens if the closure panics, as the transaction is dropped
//! unfinished.

use std::collections::BTreeMap;

use super::field::{Field, FieldKind, FieldName, FieldOp};
use super::Document;
use crate::{EditError, InlineVec};

/// Edits collected by [`Document::transact`].
pub struct Transaction<'a> {
    doc: &'a mut Document,
    ops: InlineVec<FieldOp>,
    /// Each edited field as it was before the transaction (`None`: it did not exist).
    saved: BTreeMap<(FieldName, FieldKind), Option<Field>>,
    /// Set by `finish`; a transaction dropped unfinished is rolled back.
    finished: bool,
}

impl<'a> Transaction<'a> {
    pub(super) fn new(doc: &'a mut Document) -> Self {
        Transaction { doc, ops: InlineVec::new(), saved: BTreeMap::new(), finished: false }
    }

    /// The document with the edits made so far.
    pub fn document(&self) -> &Document {
        self.doc
    }

    /// Inserts `text` at character `pos` of the text field `field`; see
    /// [`Document::insert_text`].
    pub fn insert_text(&mut self, field: &str, pos: usize, text: &str) -> Result<(), EditError> {
        self.save(field, FieldKind::Text);
        let ops = self.doc.stage_insert_text(field, pos, text, false)?;
        self.ops.extend(ops);
        Ok(())
    }

    /// Deletes `len` characters at `pos` of the text field `field` (nothing if `len` is 0).
    pub fn delete_text(&mut self, field: &str, pos: usize, len: usize) -> Result<(), EditError> {
        self.save(field, FieldKind::Text);
        let ops = self.doc.stage_delete_text(field, pos, len, false)?;
        self.ops.extend(ops);
        Ok(())
    }

    /// [`insert_text`](Self::insert_text) at a UTF-16 position.
    pub fn insert_text_utf16(&mut self, field: &str, pos16: usize, text: &str) -> Result<(), EditError> {
        self.save(field, FieldKind::Text);
        let ops = self.doc.stage_insert_text(field, pos16, text, true)?;
        self.ops.extend(ops);
        Ok(())
    }

    /// [`delete_text`](Self::delete_text) with a UTF-16 position and length.
    pub fn delete_text_utf16(&mut self, field: &str, pos16: usize, len16: usize) -> Result<(), EditError> {
        self.save(field, FieldKind::Text);
        let ops = self.doc.stage_delete_text(field, pos16, len16, true)?;
        self.ops.extend(ops);
        Ok(())
    }

    /// Replaces `len` characters at `pos` of the text field `field` by `text`; see
    /// [`Document::replace_text`].
    pub fn replace_text(&mut self, field: &str, pos: usize, len: usize, text: &str) -> Result<(), EditError> {
        self.save(field, FieldKind::Text);
        let ops = self.doc.stage_replace_text(field, pos, len, text, false)?;
        self.ops.extend(ops);
        Ok(())
    }

    /// [`replace_text`](Self::replace_text) with a UTF-16 position and length.
    pub fn replace_text_utf16(&mut self, field: &str, pos16: usize, len16: usize, text: &str) -> Result<(), EditError> {
        self.save(field, FieldKind::Text);
        let ops = self.doc.stage_replace_text(field, pos16, len16, text, true)?;
        self.ops.extend(ops);
        Ok(())
    }

    /// Sets the register field `field`.
    pub fn set_register(&mut self, field: &str, value: String) {
        self.save(field, FieldKind::Register);
        let op = self.doc.stage_set_register(field, value);
        self.ops.push(op);
    }

    /// Adds `value` to the set field `field`.
    pub fn add_to_set(&mut self, field: &str, value: String) {
        self.save(field, FieldKind::Set);
        let op = self.doc.stage_add_to_set(field, value);
        self.ops.push(op);
    }

    /// Removes `value` from the set field `field`; returns whether it was there.
    pub fn remove_from_set(&mut self, field: &str, value: &str) -> bool {
        self.save(field, FieldKind::Set);
        let op = self.doc.stage_remove_from_set(field, value);
        let removed = op.is_some();
        self.ops.extend(op);
        removed
    }

    /// Adds `n` to the counter field `field`.
    pub fn increment(&mut self, field: &str, n: u64) {
        self.save(field, FieldKind::Counter);
        let op = self.doc.stage_counter(field, n, true);
        self.ops.push(op);
    }

    /// Subtracts `n` from the counter field `field`.
    pub fn decrement(&mut self, field: &str, n: u64) {
        self.save(field, FieldKind::Counter);
        let op = self.doc.stage_counter(field, n, false);
        self.ops.push(op);
    }

    /// Adds `n` to the grow-only counter field `field`.
    pub fn increment_gcounter(&mut self, field: &str, n: u64) {
        self.save(field, FieldKind::GCounter);
        let op = self.doc.stage_gcounter(field, n);
        self.ops.push(op);
    }

    /// How many operations the transaction has collected.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if no edit has produced an operation yet.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Keeps a copy of the field before its first edit in this transaction.
    fn save(&mut self, name: &str, kind: FieldKind) {
        let key = (FieldName::new(name), kind);
        if !self.saved.contains_key(&key) {
            let before = self.doc.fields.get(&key).cloned();
            self.saved.insert(key, before);
        }
    }

    /// The collected operations, for the document to commit; the edits stay.
    pub(super) fn finish(mut self) -> InlineVec<FieldOp> {
        self.finished = true;
        std::mem::take(&mut self.ops)
    }
}

impl Drop for Transaction<'_> {
    /// Puts every edited field back as it was, unless the transaction was finished.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        for (key, before) in std::mem::take(&mut self.saved) {
            match before {
                Some(field) => {
                    self.doc.fields.insert(key, field);
                }
                None => {
                    self.doc.fields.remove(&key);
                }
            }
        }
    }
}

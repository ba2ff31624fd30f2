//! Edits described in JSON (`POST /docs/{id}/edits`), checked and applied by the document's
//! actor as the server's own replica.
//!
//! One request's edits become one change, all or nothing: they are checked against the
//! document's limits first (new fields, field-name length, text size, value sizes: the same
//! `DocLimits` a WebSocket batch meets), then applied in order, each seeing the ones before it;
//! an edit that does not fit (a position past the end, a field of another kind, empty text)
//! undoes the earlier ones and refuses the request with its index.
//!
//! Positions and lengths count Unicode characters (scalar values), not bytes or UTF-16 units.

use std::collections::HashSet;

use crdt_core::{Change, Document, EditError, FieldKind};

use crate::limits::DocLimits;

/// The most edits one request carries.
pub const MAX_EDITS: usize = 1000;
/// The longest title, in characters (what the editor and the document list show).
pub const MAX_TITLE_CHARS: usize = 1000;
/// The largest register value or set element, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// One edit. `field` defaults to the field the editor page uses for that kind: `body` (text),
/// `title` (register), `tags` (set), `likes` (counter).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Edit {
    /// Inserts `text` at character `pos` of a text field.
    Insert {
        #[serde(default = "body")]
        field: String,
        pos: usize,
        text: String,
    },
    /// Deletes `len` characters from character `pos` of a text field.
    Delete {
        #[serde(default = "body")]
        field: String,
        pos: usize,
        len: usize,
    },
    /// Sets a register (the title by default).
    Set {
        #[serde(default = "title")]
        field: String,
        value: String,
    },
    /// Adds an element to a set (a tag by default).
    Add {
        #[serde(default = "tags")]
        field: String,
        value: String,
    },
    /// Removes an element from a set (nothing happens if it is not there).
    Remove {
        #[serde(default = "tags")]
        field: String,
        value: String,
    },
    /// Adds `by` (default 1; negative subtracts) to a counter.
    Increment {
        #[serde(default = "likes")]
        field: String,
        #[serde(default = "one")]
        by: i64,
    },
}

fn body() -> String {
    "body".into()
}
fn title() -> String {
    "title".into()
}
fn tags() -> String {
    "tags".into()
}
fn likes() -> String {
    "likes".into()
}
fn one() -> i64 {
    1
}

impl Edit {
    fn field(&self) -> (&str, FieldKind) {
        match self {
            Edit::Insert { field, .. } | Edit::Delete { field, .. } => (field, FieldKind::Text),
            Edit::Set { field, .. } => (field, FieldKind::Register),
            Edit::Add { field, .. } | Edit::Remove { field, .. } => (field, FieldKind::Set),
            Edit::Increment { field, .. } => (field, FieldKind::Counter),
        }
    }
}

/// Why a request's edits were refused; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("edit {index}: {reason}")]
pub struct EditRefused {
    /// The edit at fault (0-based).
    pub index: usize,
    /// What is wrong, in words.
    pub reason: String,
    /// Whether the document's limits (not the edit's shape) refused it (HTTP 413 rather than 422).
    pub over_limit: bool,
}

fn refused(index: usize, reason: impl Into<String>, over_limit: bool) -> EditRefused {
    EditRefused { index, reason: reason.into(), over_limit }
}

/// Checks `edits` against `limits` and `doc` (nothing changes).
pub fn check(doc: &Document, edits: &[Edit], limits: &DocLimits) -> Result<(), EditRefused> {
    let mut new_fields: HashSet<(&str, FieldKind)> = HashSet::new();
    let mut chars = doc.text_chars();
    for (index, edit) in edits.iter().enumerate() {
        let (field, kind) = edit.field();
        if field.is_empty() {
            return Err(refused(index, "the field name is empty", false));
        }
        if !doc.has_field(field, kind) && new_fields.insert((field, kind)) {
            if field.len() > limits.max_field_name_bytes {
                let reason = format!(
                    "the new field's name is {} bytes long: the limit is {}",
                    field.len(),
                    limits.max_field_name_bytes
                );
                return Err(refused(index, reason, true));
            }
            if doc.field_count() + new_fields.len() > limits.max_fields {
                let reason = format!("it creates a field beyond the document's limit of {} fields", limits.max_fields);
                return Err(refused(index, reason, true));
            }
        }
        match edit {
            Edit::Insert { text, .. } => {
                chars += text.chars().count() as u64;
                if chars > limits.max_text_chars {
                    let reason = format!(
                        "the text would exceed the document's limit of {} characters (deleted ones count: \
                         the server keeps them)",
                        limits.max_text_chars
                    );
                    return Err(refused(index, reason, true));
                }
            }
            Edit::Set { field, value } if field == "title" && value.chars().count() > MAX_TITLE_CHARS => {
                return Err(refused(index, format!("a title has at most {MAX_TITLE_CHARS} characters"), true));
            }
            Edit::Set { value, .. } | Edit::Add { value, .. } | Edit::Remove { value, .. }
                if value.len() > MAX_VALUE_BYTES =>
            {
                return Err(refused(index, format!("a value has at most {MAX_VALUE_BYTES} bytes"), true));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks `edits`, then applies them to `doc` as one change (`None` if they changed nothing,
/// such as deleting 0 characters). On an error `doc` is as before.
pub fn apply(doc: &mut Document, edits: &[Edit], limits: &DocLimits) -> Result<Option<Change>, EditRefused> {
    if edits.is_empty() {
        return Ok(None);
    }
    check(doc, edits, limits)?;
    let mut at = 0;
    let result = doc.transact(|tx| {
        for (index, edit) in edits.iter().enumerate() {
            at = index;
            match edit {
                Edit::Insert { field, pos, text } => {
                    kind_is(tx.document(), field, FieldKind::Text)?;
                    tx.insert_text(field, *pos, text)?;
                }
                Edit::Delete { field, pos, len } => {
                    kind_is(tx.document(), field, FieldKind::Text)?;
                    tx.delete_text(field, *pos, *len)?;
                }
                Edit::Set { field, value } => {
                    kind_is(tx.document(), field, FieldKind::Register)?;
                    tx.set_register(field, value.clone());
                }
                Edit::Add { field, value } => {
                    kind_is(tx.document(), field, FieldKind::Set)?;
                    tx.add_to_set(field, value.clone());
                }
                Edit::Remove { field, value } => {
                    kind_is(tx.document(), field, FieldKind::Set)?;
                    tx.remove_from_set(field, value);
                }
                Edit::Increment { field, by } => {
                    kind_is(tx.document(), field, FieldKind::Counter)?;
                    if *by >= 0 {
                        tx.increment(field, by.unsigned_abs());
                    } else {
                        tx.decrement(field, by.unsigned_abs());
                    }
                }
            }
        }
        Ok(())
    });
    result.map_err(|error| refused(at, describe(&error), false))
}

/// Fields are keyed by name and kind, so `title` as a set would be a second field beside the
/// title register: legal for the CRDT, but surely a mistake in a request. Refused when a field
/// of that name exists with another kind only.
fn kind_is(doc: &Document, field: &str, kind: FieldKind) -> Result<(), EditError> {
    if doc.has_field(field, kind) {
        return Ok(());
    }
    match doc.fields().find(|(name, _)| *name == field) {
        Some((_, found)) => {
            Err(EditError::FieldKind { field: field.to_owned(), expected: kind_name(found), found: kind_name(kind) })
        }
        None => Ok(()),
    }
}

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "text",
        FieldKind::Register => "register",
        FieldKind::Set => "set",
        FieldKind::Counter => "counter",
        FieldKind::GCounter => "grow-only counter",
    }
}

fn describe(error: &EditError) -> String {
    match error {
        EditError::EmptyText => "nothing to insert: the text is empty".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt_core::ReplicaId;

    const LIMITS: DocLimits = DocLimits { max_fields: 3, max_field_name_bytes: 8, max_text_chars: 10 };

    fn edits(json: &str) -> Vec<Edit> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn edits_apply_in_order_as_one_change_with_the_editor_fields_by_default() {
        let mut doc = Document::new(ReplicaId::from_u128(1));
        let list = edits(
            r#"[{"op":"insert","pos":0,"text":"héllo"},{"op":"delete","pos":1,"len":1},
                {"op":"insert","pos":1,"text":"e"},{"op":"set","value":"T"},{"op":"add","value":"x"},
                {"op":"increment","by":-2}]"#,
        );
        let change = apply(&mut doc, &list, &DocLimits { max_fields: 10, ..LIMITS }).unwrap().unwrap();
        assert_eq!(change.seq, 1, "one change");
        assert_eq!(doc.text("body").as_deref(), Some("hello"));
        assert_eq!(doc.register("title"), Some("T"));
        assert_eq!(doc.set("tags"), ["x"]);
        assert_eq!(doc.counter("likes"), -2);
        let removed = apply(&mut doc, &edits(r#"[{"op":"remove","value":"x"}]"#), &LIMITS).unwrap();
        assert!(removed.is_some());
        assert!(doc.set("tags").is_empty());
    }

    #[test]
    fn a_bad_edit_refuses_the_request_and_undoes_the_earlier_ones() {
        let mut doc = Document::new(ReplicaId::from_u128(1));
        apply(&mut doc, &edits(r#"[{"op":"insert","pos":0,"text":"abc"}]"#), &LIMITS).unwrap();
        let bad = edits(r#"[{"op":"insert","pos":0,"text":"x"},{"op":"delete","pos":2,"len":5}]"#);
        let error = apply(&mut doc, &bad, &LIMITS).unwrap_err();
        assert_eq!(error.index, 1);
        assert!(!error.over_limit);
        assert!(error.reason.contains("out of bounds"), "{error}");
        assert_eq!(doc.text("body").as_deref(), Some("abc"));
        assert_eq!(doc.version().total(), 1);
        let kind = apply(&mut doc, &edits(r#"[{"op":"set","field":"body","value":"x"}]"#), &LIMITS).unwrap_err();
        assert!(kind.reason.contains("is a text"), "{kind}");
        let empty = apply(&mut doc, &edits(r#"[{"op":"insert","pos":0,"text":""}]"#), &LIMITS).unwrap_err();
        assert!(empty.reason.contains("empty"), "{empty}");
    }

    #[test]
    fn limits_are_checked_before_anything_applies() {
        let mut doc = Document::new(ReplicaId::from_u128(1));
        let long = apply(&mut doc, &edits(r#"[{"op":"insert","pos":0,"text":"12345678901"}]"#), &LIMITS).unwrap_err();
        assert!(long.over_limit && long.reason.contains("10 characters"), "{long}");
        let name = apply(&mut doc, &edits(r#"[{"op":"add","field":"123456789","value":"x"}]"#), &LIMITS);
        assert!(name.unwrap_err().reason.contains("9 bytes"));
        let many = edits(
            r#"[{"op":"increment","field":"a"},{"op":"increment","field":"b"},{"op":"add","field":"a","value":"x"},{"op":"set","field":"a","value":"y"}]"#,
        );
        assert_eq!(apply(&mut doc, &many, &LIMITS).unwrap_err().index, 3);
        let title = format!(r#"[{{"op":"set","value":"{}"}}]"#, "t".repeat(MAX_TITLE_CHARS + 1));
        assert!(apply(&mut doc, &edits(&title), &LIMITS).unwrap_err().over_limit);
        assert_eq!(doc.version().total(), 0, "nothing applied");
    }
}

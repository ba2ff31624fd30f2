//! Reading a document: its value keys fields of one name by kind, and its state hash is pinned
//! (computed independently), so that every replica and the server agree on what "same" means.

use crdt_core::{Change, Document, FieldValue, ReplicaId};

const A: ReplicaId = ReplicaId::from_u128(1);
const B: ReplicaId = ReplicaId::from_u128(2);

fn apply_all(doc: &mut Document, changes: &[Change]) {
    for change in changes {
        doc.apply_change(change.clone()).expect("valid change");
    }
}

#[test]
fn value_keys_fields_of_one_name_by_kind() {
    let mut doc = Document::new(A);
    doc.set_register("title", "Hello".into());
    doc.insert_text("title", 0, "draft").unwrap();
    doc.add_to_set("title#register", "taken".into());
    doc.decrement("votes", 2);
    doc.increment_gcounter("views", 7);
    let value = doc.value();
    assert_eq!(value.get("title"), Some(&FieldValue::Text("draft".into())));
    assert_eq!(value.get("title#register"), Some(&FieldValue::Register(Some("Hello".into()))));
    assert_eq!(value.get("title#register#set"), Some(&FieldValue::Set(vec!["taken".into()])));
    assert_eq!(value.get("votes"), Some(&FieldValue::Counter(-2)));
    assert_eq!(value.get("views"), Some(&FieldValue::GCounter(7)));
    assert_eq!(value.len(), 5);
    assert_eq!(doc.register("title"), Some("Hello"));
    assert_eq!(doc.text("title").as_deref(), Some("draft"));
    assert_eq!(doc.set("title#register"), ["taken"]);
    let keys: Vec<String> = doc.fields().map(|(name, kind)| format!("{name}:{}", kind.name())).collect();
    assert_eq!(keys.join(" "), "title:text title:register title#register:set views:gcounter votes:counter");
}

#[test]
fn state_hash_is_pinned() {
    // The hash must not change between builds or platforms: it is compared across replicas.
    // The empty document hashes the field count 0 as eight zero bytes.
    let mut doc = Document::new(A);
    assert_eq!(doc.state_hash(), 12_161_962_213_042_174_405);
    doc.insert_text("t", 0, "hé🦀").unwrap();
    doc.set_register("r", "v".into());
    doc.add_to_set("s", "x".into());
    doc.decrement("c", 3);
    doc.increment_gcounter("g", 9);
    let mut other = Document::new(B);
    apply_all(&mut other, &doc.history());
    assert_eq!(doc.state_hash(), other.state_hash());
    // Computed independently: a Python FNV-1a over the encoding described in `document/value.rs`
    // (the text as its length in characters and its polynomial hash, `rga/text_hash.rs`).
    assert_eq!(doc.state_hash(), 12_812_321_040_950_047_434);
}

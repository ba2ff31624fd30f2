//! Document-level behaviour: convergence of all five field kinds under shuffled and duplicated
//! delivery, buffering, history serving, state merge, snapshots, transactions, and checking a
//! whole batch before applying it (what a document refuses is in `refusals.rs`, its value and
//! state hash in `reads.rs`).

use crdt_core::codec::{decode_snapshot, encode_snapshot, encode_snapshot_without_history};
use crdt_core::{
    ApplyError, ApplyOutcome, Change, DocValue, Document, EditError, FieldOp, Op, OpId, ReplicaId, RgaOp, TextDelta,
    VersionVector,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const A: ReplicaId = ReplicaId::from_u128(1);
const B: ReplicaId = ReplicaId::from_u128(2);
const C: ReplicaId = ReplicaId::from_u128(3);

fn apply_all(doc: &mut Document, changes: &[Change]) {
    for change in changes {
        doc.apply_change(change.clone()).expect("valid change");
    }
}

/// Equal values, versions, hashes and histories (in any order); invariants hold; nothing pending.
fn assert_converged(docs: &[Document]) {
    assert_converged_values(docs);
    for pair in docs.windows(2) {
        assert_eq!(pair[0], pair[1]);
    }
}

// ---- Random editing of all five kinds, delivered in shuffled orders with duplicates. ----

const WORDS: [&str; 5] = ["a", "b", "é", "🦀", "d"];

fn random_text(rng: &mut StdRng) -> String {
    (0..rng.gen_range(1..4)).map(|_| *WORDS.choose(rng).expect("non-empty")).collect()
}

/// Makes one random local edit; returns the change (if the edit made one).
fn random_edit(doc: &mut Document, rng: &mut StdRng) -> Option<Change> {
    let field = if rng.gen_bool(0.7) { "body" } else { "title" };
    let len = doc.rga(field).map_or(0, |rga| rga.len());
    match rng.gen_range(0..11) {
        0..=2 => Some(doc.insert_text(field, rng.gen_range(0..=len), &random_text(rng)).unwrap()),
        3 => {
            let rga = doc.rga(field)?;
            let pos = rng.gen_range(0..=len);
            let pos16 = rga.char_to_utf16(pos).unwrap();
            doc.insert_text_utf16(field, pos16, &random_text(rng)).ok()
        }
        4 if len > 0 => {
            let pos = rng.gen_range(0..len);
            let n = rng.gen_range(0..=(len - pos).min(3));
            doc.delete_text(field, pos, n).unwrap()
        }
        5 => Some(doc.set_register("title", random_text(rng))),
        6 => Some(doc.add_to_set("tags", WORDS.choose(rng)?.to_string())),
        7 => doc.remove_from_set("tags", WORDS.choose(rng)?).unwrap(),
        8 if rng.gen_bool(0.5) => Some(doc.increment("votes", rng.gen_range(0..5))),
        8 => Some(doc.decrement("votes", rng.gen_range(0..5))),
        9 => Some(doc.increment_gcounter("views", rng.gen_range(0..5))),
        _ => doc
            .transact(|tx| {
                tx.insert_text("body", 0, "[")?;
                tx.increment("votes", 1);
                tx.add_to_set("title", "both kinds of title".into());
                let end = tx.document().rga("body").map_or(0, |rga| rga.len());
                tx.insert_text("body", end, "]")
            })
            .unwrap(),
    }
}

/// Applies a text delta to a shadow copy of the text, as an editor would.
fn apply_delta(shadow: &mut Vec<char>, delta: &TextDelta) {
    match delta {
        TextDelta::Insert { pos, text, .. } => drop(shadow.splice(*pos..*pos, text.chars())),
        TextDelta::Delete { pos, len, .. } => drop(shadow.drain(*pos..*pos + *len)),
    }
}

/// A replica plus shadow texts kept up to date from the deltas only.
struct Peer {
    doc: Document,
    shadows: std::collections::HashMap<String, Vec<char>>,
}

impl Peer {
    fn receive(&mut self, change: Change) {
        // What a server checks before it accepts a change: never refuses an honest one.
        if change.is_ready(self.doc.version()) {
            assert_eq!(self.doc.check_register_stamps(std::slice::from_ref(&change)), Ok(()), "{change:?}");
        }
        if let ApplyOutcome::Applied { deltas, .. } = self.doc.apply_change(change).unwrap() {
            for (field, delta) in &deltas {
                apply_delta(self.shadows.entry(field.clone()).or_default(), delta);
            }
        }
    }

    fn edit(&mut self, rng: &mut StdRng) -> Option<Change> {
        let change = random_edit(&mut self.doc, rng);
        self.refresh_shadows();
        change
    }

    /// After a local edit, a merge or a restart the editor reloads the texts.
    fn refresh_shadows(&mut self) {
        for field in ["body", "title"] {
            if let Some(text) = self.doc.text(field) {
                self.shadows.insert(field.into(), text.chars().collect());
            }
        }
    }

    fn check_shadows(&self) {
        for (field, shadow) in &self.shadows {
            let text: String = shadow.iter().collect();
            assert_eq!(Some(text), self.doc.text(field), "deltas of {field:?} drifted");
        }
    }
}

fn simulate(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut peers: Vec<Peer> = [A, B, C]
        .into_iter()
        .map(|replica| Peer { doc: Document::new(replica), shadows: Default::default() })
        .collect();
    let mut sent: Vec<Change> = Vec::new();
    for _ in 0..100 {
        let i = rng.gen_range(0..peers.len());
        let j = rng.gen_range(0..peers.len());
        match rng.gen_range(0..20) {
            0..=11 => sent.extend(peers[i].edit(&mut rng)),
            12..=17 => {
                for _ in 0..rng.gen_range(0..=8) {
                    if let Some(change) = sent.choose(&mut rng) {
                        peers[i].receive(change.clone());
                    }
                }
            }
            18 => {
                // A state merge, then serving history across it.
                let other = peers[j].doc.clone();
                peers[i].doc.merge(&other);
                peers[i].refresh_shadows();
                check_ops_since(&peers[i].doc, &peers[j].doc);
                check_ops_since(&peers[j].doc, &peers[i].doc);
            }
            _ => {
                // A restart from a snapshot, with or without history (the buffer is lost).
                let doc = &peers[i].doc;
                let bytes = if rng.gen_bool(0.5) { encode_snapshot(doc) } else { encode_snapshot_without_history(doc) };
                let restored = decode_snapshot(&bytes, doc.replica()).unwrap();
                assert_eq!(restored.value(), doc.value());
                peers[i].doc = restored;
                peers[i].refresh_shadows();
            }
        }
    }
    for i in 0..peers.len() {
        for j in 0..peers.len() {
            check_ops_since(&peers[i].doc, &peers[j].doc);
        }
    }
    for peer in &mut peers {
        let mut all: Vec<Change> = sent.iter().chain(sent.iter().step_by(3)).cloned().collect();
        all.shuffle(&mut rng);
        for change in all {
            peer.receive(change);
        }
        peer.check_shadows();
    }
    let docs: Vec<Document> = peers.into_iter().map(|peer| peer.doc).collect();
    assert_converged_values(&docs);
    // A newcomer catches up from the history of any replica that still has all of it.
    for doc in &docs {
        match doc.ops_since(&VersionVector::new()) {
            Some(changes) => {
                let mut newcomer = Document::new(ReplicaId::from_u128(99));
                apply_all(&mut newcomer, &changes);
                assert_converged_values(&[newcomer, doc.clone()]);
            }
            None => assert!(!doc.history_base().is_empty()),
        }
    }
}

/// What a server does for a reconnecting client: `server.ops_since(client.version())`, when
/// available, brings the client up to the server's version.
fn check_ops_since(server: &Document, client: &Document) {
    if let Some(missing) = server.ops_since(client.version()) {
        let mut client = client.clone();
        apply_all(&mut client, &missing);
        assert!(server.version().le(client.version()), "ops_since left a gap");
        client.check_invariants();
    } else {
        assert!(!server.history_base().le(client.version()));
    }
}

/// Like `assert_converged`, but histories may differ (a restored or merged replica may have a
/// later history base).
fn assert_converged_values(docs: &[Document]) {
    for doc in docs {
        doc.check_invariants();
        assert_eq!(doc.pending_count(), 0);
    }
    for pair in docs.windows(2) {
        assert_eq!(pair[0].value(), pair[1].value());
        assert_eq!(pair[0].version(), pair[1].version());
        assert_eq!(pair[0].state_hash(), pair[1].state_hash());
    }
}

#[test]
fn three_replicas_converge_under_shuffled_duplicated_delivery() {
    for seed in 0..200 {
        simulate(seed);
    }
}

// ---- Buffering. ----

#[test]
fn out_of_order_changes_are_buffered_until_ready() {
    let mut a = Document::new(A);
    let c1 = a.insert_text("t", 0, "ab").unwrap();
    let c2 = a.insert_text("t", 2, "c").unwrap();
    let c3 = a.delete_text("t", 0, 1).unwrap().unwrap();
    let mut b = Document::new(B);
    assert_eq!(b.apply_change(c3.clone()), Ok(ApplyOutcome::Buffered));
    assert_eq!(b.apply_change(c3.clone()), Ok(ApplyOutcome::Duplicate), "already buffered");
    assert_eq!(b.apply_change(c2), Ok(ApplyOutcome::Buffered));
    assert_eq!(b.pending_count(), 2);
    assert_eq!(b.text("t"), None);
    let Ok(ApplyOutcome::Applied { changes, deltas }) = b.apply_change(c1.clone()) else { panic!("not applied") };
    assert_eq!(changes, 3);
    assert!(deltas.iter().all(|(field, _)| field == "t") && deltas.len() == 3);
    assert_eq!(b.pending_count(), 0);
    assert_eq!(b.text("t").as_deref(), Some("bc"));
    assert_eq!(b.apply_change(c1), Ok(ApplyOutcome::Duplicate));
    assert_eq!(b, a);
    b.check_invariants();
}

#[test]
fn change_waits_for_its_deps_from_other_replicas() {
    let mut a = Document::new(A);
    let mut b = Document::new(B);
    let from_a = a.add_to_set("s", "x".into());
    b.apply_change(from_a.clone()).unwrap();
    let from_b = b.remove_from_set("s", "x").unwrap().unwrap();
    let mut c = Document::new(C);
    assert_eq!(c.apply_change(from_b), Ok(ApplyOutcome::Buffered));
    assert!(matches!(c.apply_change(from_a), Ok(ApplyOutcome::Applied { changes: 2, .. })));
    assert_eq!(c.set("s"), Vec::<String>::new());
    assert_eq!(c, b);
}

// ---- Local edit results. ----

#[test]
fn local_changes_are_numbered_and_empty_edits_make_none() {
    let mut doc = Document::new(A);
    assert_eq!(doc.insert_text("t", 0, ""), Err(EditError::EmptyText));
    assert_eq!(doc.delete_text("t", 0, 0), Ok(None));
    assert!(matches!(doc.insert_text("t", 1, "x"), Err(EditError::OutOfBounds { .. })));
    assert_eq!(doc.remove_from_set("s", "x"), Ok(None));
    assert_eq!(doc.fields().count(), 0);
    assert!(doc.version().is_empty());
    assert!(doc.history().is_empty());
    assert_eq!(doc.value(), DocValue::default());
    // Real edits are numbered from 1, each depending on the one before.
    let c1 = doc.insert_text("t", 0, "x").unwrap();
    let c2 = doc.increment("t", 4);
    assert_eq!((c1.replica, c1.seq, c1.deps.clone()), (A, 1, Vec::new()));
    assert_eq!((c2.seq, c2.deps.clone()), (2, Vec::new()));
    assert_eq!(doc.history(), vec![c1, c2]);
    assert_eq!(doc.version().get(A), 2);
}

#[test]
fn utf16_edits_count_code_units() {
    let mut doc = Document::new(A);
    doc.insert_text("t", 0, "a🦀b").unwrap();
    doc.insert_text_utf16("t", 3, "é").unwrap();
    assert_eq!(doc.text("t").as_deref(), Some("a🦀éb"));
    assert_eq!(doc.insert_text_utf16("t", 2, "x"), Err(EditError::SplitsSurrogate(2)));
    doc.delete_text_utf16("t", 1, 2).unwrap().unwrap();
    assert_eq!(doc.text("t").as_deref(), Some("aéb"));
}

/// Replaces with `replace_text` (or its UTF-16 twin) on one copy and with a `transact` of a
/// delete and an insert on another copy of the same replica: the changes must be the same, and
/// applying the replace's change elsewhere must give the transaction's text.
#[test]
fn replace_text_makes_the_change_a_delete_and_insert_transaction_makes() {
    let mut rng = StdRng::seed_from_u64(17);
    let mut replaced = Document::new(A);
    let mut transacted = Document::new(A);
    let mut remote = Document::new(B);
    for step in 0..400 {
        let utf16 = rng.gen_bool(0.3);
        let len = replaced.rga("body").map_or(0, |rga| rga.len());
        let start = rng.gen_range(0..=len);
        let end = start + rng.gen_range(0..=(len - start).min(4));
        let text = if rng.gen_bool(0.2) { String::new() } else { random_text(&mut rng) };
        // UTF-16 edits at character boundaries, as an editor's positions are.
        let unit = |p: usize| match replaced.rga("body") {
            Some(rga) if utf16 => rga.char_to_utf16(p).unwrap(),
            _ => p,
        };
        let (pos, del) = (unit(start), unit(end) - unit(start));
        let got = if utf16 {
            replaced.replace_text_utf16("body", pos, del, &text)
        } else {
            replaced.replace_text("body", pos, del, &text)
        }
        .unwrap();
        let want = transacted
            .transact(|tx| {
                if utf16 {
                    tx.delete_text_utf16("body", pos, del)?;
                    if !text.is_empty() {
                        tx.insert_text_utf16("body", pos, &text)?;
                    }
                } else {
                    tx.delete_text("body", pos, del)?;
                    if !text.is_empty() {
                        tx.insert_text("body", pos, &text)?;
                    }
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(got, want, "step {step}: replace({pos}, {del}, {text:?}), utf16 {utf16}");
        if let Some(change) = got {
            assert_eq!(change.ops.len(), usize::from(del > 0) + usize::from(!text.is_empty()));
            remote.apply_change(change).unwrap();
        }
        assert_eq!(remote.text("body"), transacted.text("body"), "step {step}");
    }
    replaced.check_invariants();
    assert!(replaced.history_len() > 100);
    assert_converged(&[replaced, transacted, remote]);
}

#[test]
fn failed_or_empty_replace_changes_nothing() {
    let mut doc = Document::new(A);
    // Nothing to do, or out of bounds: no change, and no field comes into being.
    assert_eq!(doc.replace_text("t", 0, 0, ""), Ok(None));
    assert_eq!(doc.replace_text_utf16("t", 0, 0, ""), Ok(None));
    assert_eq!(doc.replace_text("t", 1, 0, ""), Err(EditError::OutOfBounds { pos: 1, len: 0 }));
    assert_eq!(doc.replace_text("t", 0, 1, "x"), Err(EditError::OutOfBounds { pos: 1, len: 0 }));
    assert_eq!(doc.replace_text("t", usize::MAX, 1, "x"), Err(EditError::OutOfBounds { pos: usize::MAX, len: 0 }));
    assert!(matches!(doc.replace_text_utf16("t", 2, 0, "x"), Err(EditError::OutOfBounds { .. })));
    assert_eq!(doc.fields().count(), 0);
    assert!(doc.version().is_empty());
    // On an existing text, an error leaves the document as it was.
    doc.insert_text("t", 0, "a🦀b").unwrap();
    let before = doc.clone();
    assert_eq!(doc.replace_text("t", 2, 2, "x"), Err(EditError::OutOfBounds { pos: 4, len: 3 }));
    assert_eq!(doc.replace_text_utf16("t", 2, 1, "x"), Err(EditError::SplitsSurrogate(2)));
    assert_eq!(doc.replace_text_utf16("t", 0, 2, "x"), Err(EditError::SplitsSurrogate(2)));
    assert_eq!(doc.replace_text_utf16("t", 3, 2, "x"), Err(EditError::OutOfBounds { pos: 5, len: 4 }));
    assert_eq!(doc.replace_text("t", 3, 0, ""), Ok(None));
    assert_eq!(doc, before);
    assert_eq!(doc.history_len(), 1);
    doc.check_invariants();
    // Then it edits on, and another replica follows.
    let pasted = doc.replace_text_utf16("t", 1, 2, "🦞").unwrap().unwrap();
    let deleted = doc.replace_text("t", 0, 1, "").unwrap().unwrap();
    assert_eq!((pasted.ops.len(), deleted.ops.len()), (2, 1));
    assert_eq!(doc.text("t").as_deref(), Some("🦞b"));
    let mut other = Document::new(B);
    apply_all(&mut other, &doc.history());
    assert_converged(&[doc, other]);
}

// ---- History. ----

#[test]
fn ops_since_serves_exactly_the_missing_changes() {
    let mut a = Document::new(A);
    let mut b = Document::new(B);
    apply_all(&mut b, &[a.insert_text("t", 0, "one ").unwrap()]);
    let b_at = b.version().clone();
    a.insert_text("t", 4, "two ").unwrap();
    b.increment("n", 1);
    a.set_register("r", "x".into());
    let missing = a.ops_since(&b_at).unwrap();
    assert_eq!(missing.len(), 2);
    assert!(a.ops_since(a.version()).unwrap().is_empty());
    assert_eq!(a.ops_since(&VersionVector::new()).unwrap().len(), 3);
    apply_all(&mut b, &missing);
    let missing = b.ops_since(a.version()).unwrap();
    apply_all(&mut a, &missing);
    assert_converged(&[a.clone(), b.clone()]);
    assert_eq!(a.changes_of(A, 1).unwrap().len(), 2);
    assert_eq!(a.changes_of(B, 0).unwrap()[0].replica, B);
    assert!(a.changes_of(C, 0).unwrap().is_empty());
}

#[test]
fn history_before_a_snapshot_base_cannot_be_served() {
    let mut a = Document::new(A);
    a.insert_text("t", 0, "abc").unwrap();
    let snapshot = encode_snapshot_without_history(&a);
    let mut server = decode_snapshot(&snapshot, C).unwrap();
    assert_eq!(server.history_base(), a.version());
    assert_eq!(server.ops_since(&VersionVector::new()), None);
    assert_eq!(server.changes_of(A, 0), None);
    assert_eq!(server.ops_since(a.version()), Some(Vec::new()));
    let later = a.insert_text("t", 3, "d").unwrap();
    server.apply_change(later.clone()).unwrap();
    assert_eq!(server.ops_since(&server.history_base().clone()), Some(vec![later]));
    server.check_invariants();
}

// ---- State merge. ----

#[test]
fn merge_converges_and_takes_the_other_history() {
    let mut a = Document::new(A);
    let mut b = Document::new(B);
    a.insert_text("t", 0, "left").unwrap();
    a.add_to_set("s", "x".into());
    b.insert_text("t", 0, "right").unwrap();
    b.remove_from_set("s", "x").unwrap();
    b.increment("n", 3);
    let mut ab = a.clone();
    ab.merge(&b);
    let mut ba = b.clone();
    ba.merge(&a);
    assert_converged(&[ab.clone(), ba.clone()]);
    ab.merge(&ba);
    assert_converged(&[ab.clone(), ba.clone()]);
    let mut replay = Document::new(C);
    apply_all(&mut replay, &ab.ops_since(&VersionVector::new()).unwrap());
    assert_converged(&[replay, ab.clone()]);
    // Local edits after a merge continue the local numbering.
    assert_eq!(ab.increment("n", 1).seq, 3);
}

#[test]
fn merge_with_a_history_less_document_raises_the_base() {
    let mut a = Document::new(A);
    let mut b = Document::new(B);
    let shared = a.insert_text("t", 0, "x").unwrap();
    b.apply_change(shared).unwrap();
    b.increment("n", 1);
    a.increment("n", 2);
    let b_light = decode_snapshot(&encode_snapshot_without_history(&b), B).unwrap();
    a.merge(&b_light);
    a.check_invariants();
    assert_eq!(a.history_base().get(B), 1);
    assert_eq!(a.ops_since(&VersionVector::new()), None);
    let mut only_a: VersionVector = VersionVector::new();
    only_a.set(B, 1);
    assert_eq!(a.ops_since(&only_a).map(|changes| changes.len()), Some(2));
    b.merge(&a);
    assert_eq!(a.value(), b.value());
}

#[test]
fn merge_applies_buffered_changes_that_became_ready() {
    let mut a = Document::new(A);
    let first = a.insert_text("t", 0, "a").unwrap();
    let second = a.insert_text("t", 1, "b").unwrap();
    let third = a.insert_text("t", 2, "c").unwrap();
    let mut b = Document::new(B);
    b.apply_change(third).unwrap();
    b.apply_change(second.clone()).unwrap();
    assert_eq!(b.pending_count(), 2);
    let mut partial = Document::new(C);
    partial.apply_change(first).unwrap();
    b.merge(&partial);
    assert_eq!(b.pending_count(), 0);
    assert_eq!(b.text("t").as_deref(), Some("abc"));
    b.check_invariants();
}

// ---- Snapshots. ----

#[test]
fn snapshots_round_trip_with_and_without_history() {
    let mut a = Document::new(A);
    let mut b = Document::new(B);
    apply_all(&mut b, &[a.insert_text("t", 0, "héllo").unwrap(), a.decrement("n", 2)]);
    apply_all(&mut a, &[b.add_to_set("s", "x".into()), b.set_register("r", "v".into())]);
    a.increment_gcounter("g", 4);
    let full = decode_snapshot(&encode_snapshot(&a), C).unwrap();
    assert_eq!(full, a);
    assert_eq!(full.replica(), C);
    assert_eq!(full.history(), a.history());
    let light = decode_snapshot(&encode_snapshot_without_history(&a), C).unwrap();
    assert_eq!(light.value(), a.value());
    assert_eq!(light.version(), a.version());
    assert_eq!(light.state_hash(), a.state_hash());
    assert!(light.history().is_empty());
    assert_eq!(light.history_base(), a.version());
    // Both keep editing and stay in sync with the original.
    for mut restored in [full, light] {
        let edit = restored.insert_text("t", 0, ">").unwrap();
        assert_eq!(edit.replica, C);
        a.clone().apply_change(edit).unwrap();
        restored.check_invariants();
    }
}

// ---- Transactions. ----

#[test]
fn transaction_records_one_change() {
    let mut a = Document::new(A);
    let change = a
        .transact(|tx| {
            tx.insert_text("t", 0, "hello world")?;
            tx.delete_text("t", 5, 6)?;
            tx.set_register("r", "x".into());
            tx.add_to_set("s", "y".into());
            assert!(tx.remove_from_set("s", "y"));
            tx.increment("n", 2);
            tx.decrement("n", 1);
            tx.increment_gcounter("g", 1);
            assert_eq!(tx.len(), 8);
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(change.seq, 1);
    assert_eq!(a.history().len(), 1);
    let mut b = Document::new(B);
    b.apply_change(change).unwrap();
    assert_converged(&[a.clone(), b]);
    assert_eq!(a.text("t").as_deref(), Some("hello"));
    assert_eq!(a.transact(|_| Ok(())), Ok(None));
}

#[test]
fn failed_transaction_changes_nothing() {
    let mut a = Document::new(A);
    a.insert_text("t", 0, "abc").unwrap();
    let before = a.clone();
    let result = a.transact(|tx| {
        tx.insert_text("t", 3, "def")?;
        tx.increment("new counter", 5);
        tx.set_register("r", "x".into());
        tx.delete_text("t", 0, 100)
    });
    assert!(matches!(result, Err(EditError::OutOfBounds { .. })));
    assert_eq!(a, before);
    assert_eq!(a.text("t").as_deref(), Some("abc"));
    assert_eq!(a.fields().count(), 1);
    a.check_invariants();
    // The next edit reuses the ids the failed transaction had minted, and syncs.
    let mut b = Document::new(B);
    apply_all(&mut b, &a.history());
    let next = a.insert_text("t", 3, "!").unwrap();
    b.apply_change(next).unwrap();
    assert_converged(&[a, b]);
}

#[test]
fn panicking_transaction_changes_nothing() {
    let mut a = Document::new(A);
    a.insert_text("t", 0, "abc").unwrap();
    let before = a.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.transact(|tx| {
            tx.insert_text("t", 0, "x")?;
            tx.add_to_set("s", "y".into());
            panic!("the editor crashed mid-transaction");
        })
    }));
    assert!(result.is_err());
    assert_eq!(a, before);
    a.check_invariants();
}

/// Where applying `changes` one by one to a copy of `doc` first fails (an error, or a change
/// that would have to wait), if anywhere.
fn first_failure(doc: &Document, changes: &[Change]) -> Option<usize> {
    let mut copy = doc.clone();
    changes.iter().position(|change| {
        !matches!(copy.apply_change(change.clone()), Ok(ApplyOutcome::Applied { .. } | ApplyOutcome::Duplicate))
    })
}

/// Spoils one operation of `change` so that it names something no document has (or breaks a
/// rule), if the change has an operation that can be spoiled that way.
fn spoil(change: &mut Change, rng: &mut StdRng) {
    let mut ops: Vec<FieldOp> = change.ops.iter().cloned().collect();
    let Some(field_op) = ops.choose_mut(rng) else { return };
    match &mut field_op.op {
        Op::Text(RgaOp::Delete { ranges }) => ranges[0].start.counter += 10_000,
        Op::Text(RgaOp::Insert { origin_left, id, .. }) => {
            *origin_left = Some(OpId::new(C, 77));
            if rng.gen_bool(0.3) {
                id.counter += 5_000;
            }
        }
        Op::Register(op) => op.stamp.time = 0,
        Op::Set(crdt_core::OrSetOp::Remove { dots, .. }) if !dots.is_empty() => dots[0].counter += 10_000,
        Op::Set(crdt_core::OrSetOp::Add { dot, .. }) => dot.counter += 10_000,
        _ => {}
    }
    change.ops = ops.into_iter().collect();
}

#[test]
fn check_changes_predicts_exactly_where_a_batch_would_fail() {
    let mut refused = 0;
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut author = Document::new(A);
        let mut changes = Vec::new();
        for _ in 0..rng.gen_range(1..25) {
            changes.extend(random_edit(&mut author, &mut rng));
        }
        let mut server = Document::new(B);
        let held = rng.gen_range(0..=changes.len());
        apply_all(&mut server, &changes[..held]);
        let mut batch = changes[held.saturating_sub(rng.gen_range(0..3))..].to_vec();
        if !batch.is_empty() && rng.gen_bool(0.7) {
            let at = rng.gen_range(0..batch.len());
            spoil(&mut batch[at], &mut rng);
        }
        if batch.len() > 2 && rng.gen_bool(0.1) {
            batch.remove(1); // a gap: what follows is not ready
        }
        let before = server.clone();
        let checked = server.check_changes(&batch).map_err(|(index, _)| index).err();
        assert_eq!(checked, first_failure(&server, &batch), "seed {seed}: {batch:?}");
        assert_eq!(server, before);
        refused += checked.is_some() as usize;
    }
    assert!(refused > 50, "the spoiled batches must exercise refusals: {refused} of 300");
}

#[test]
fn a_batch_is_checked_against_what_its_earlier_changes_add() {
    let mut author = Document::new(A);
    let typed = author.insert_text("body", 0, "abc").unwrap();
    let deleted = author.delete_text("body", 1, 1).unwrap().unwrap();
    let tagged = author.add_to_set("tags", "x".into());
    let untagged = author.remove_from_set("tags", "x").unwrap().unwrap();
    let server = Document::new(B);
    let batch = [typed.clone(), deleted.clone(), tagged, untagged];
    assert_eq!(server.check_changes(&batch), Ok(()), "later changes use what earlier ones add");
    // Alone, the delete names characters the server has never seen.
    let (index, error) = server.check_changes(&[deleted]).unwrap_err();
    assert_eq!(index, 0);
    assert!(matches!(error, ApplyError::OutOfOrder { .. }), "{error:?}");
    assert_eq!(server.check_changes(&[typed.clone(), typed]), Ok(()), "a repeat is a duplicate");
    assert_eq!(server.text_chars(), 0);
    assert_eq!(server.field_count(), 0);
    let mut applied = server.clone();
    apply_all(&mut applied, &batch);
    assert_eq!(applied.text_chars(), 3, "deleted characters still count");
    assert_eq!(applied.field_count(), 2);
    assert!(applied.has_field("tags", crdt_core::FieldKind::Set));
    assert!(!applied.has_field("tags", crdt_core::FieldKind::Text));
}

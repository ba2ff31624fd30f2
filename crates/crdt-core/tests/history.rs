//! The compact history against a naive reference: random documents edited by several replicas
//! that sync in random orders, with duplicates and partitions, then
//! - `ops_since(v)` for versions seen along the way equals every change after `v` (the
//!   reference keeps each change as it was made), in an order in which each is ready;
//! - encode → decode → encode is byte-identical, and the decoded document equals the original;
//! - a format 1 snapshot of the same document (written the old way, whole version vectors as
//!   deps) loads to the same value, state hash, version and history;
//! - mutated and truncated encodings are rejected or load to a document whose invariants hold.
//!
//! Each case is one seed; a failure prints it (`seed = …`) so it can be replayed.

use std::collections::HashMap;

use crdt_core::codec::{decode_changes, decode_snapshot, encode_changes, encode_legacy_snapshot, encode_snapshot};
use crdt_core::{Change, ChangeId, Document, ReplicaId, VersionVector};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every change any replica made, as it made it.
type Reference = HashMap<(ReplicaId, u64), Change>;

/// One random local edit of `doc`; the change it made goes into `reference`.
fn edit(doc: &mut Document, rng: &mut StdRng, reference: &mut Reference) {
    let len = doc.rga("body").map_or(0, |rga| rga.len());
    let change = match rng.gen_range(0..10) {
        0..=3 => {
            let text: String = (0..rng.gen_range(1..4)).map(|_| rng.gen_range(b'a'..=b'e') as char).collect();
            doc.insert_text("body", rng.gen_range(0..=len), &text).ok()
        }
        4 | 5 if len > 0 => {
            let pos = rng.gen_range(0..len);
            doc.delete_text("body", pos, rng.gen_range(1..=(len - pos).min(3))).unwrap()
        }
        6 if len > 0 => {
            let pos = rng.gen_range(0..len);
            let del = rng.gen_range(1..=(len - pos).min(4));
            doc.transact(|t| {
                t.delete_text("body", pos, del)?;
                t.insert_text("body", pos, "xy")
            })
            .unwrap()
        }
        7 => Some(doc.set_register("title", format!("t{}", rng.gen_range(0..5)))),
        8 => match rng.gen_bool(0.5) {
            true => Some(doc.add_to_set("tags", format!("g{}", rng.gen_range(0..3)))),
            false => doc.remove_from_set("tags", &format!("g{}", rng.gen_range(0..3))).unwrap(),
        },
        _ => Some(doc.increment("likes", 1)),
    };
    if let Some(change) = change {
        reference.insert((change.replica, change.seq), change);
    }
}

/// A random session: replicas edit, sync pairwise (changes in random order and with
/// duplicates, so some are buffered), sometimes merge whole states, and replicas are replaced
/// by new page opens (a fresh replica id on the same document). Returns the documents, the
/// reference, and versions seen along the way.
fn session(seed: u64) -> (Vec<Document>, Reference, Vec<VersionVector>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.gen_range(2..5);
    let mut docs: Vec<Document> = (0..n).map(|i| Document::new(ReplicaId::from_u128(seed as u128 * 16 + i))).collect();
    let mut reference = Reference::new();
    let mut versions = vec![VersionVector::new()];
    let mut fresh = 1000;
    for _ in 0..rng.gen_range(5..60) {
        let i = rng.gen_range(0..n as usize);
        match rng.gen_range(0..12) {
            0..=6 => edit(&mut docs[i], &mut rng, &mut reference),
            7..=9 => {
                let j = rng.gen_range(0..n as usize);
                let mut changes = docs[j].ops_since(docs[i].version()).unwrap_or_default();
                if rng.gen_bool(0.3) && !changes.is_empty() {
                    let k = rng.gen_range(0..changes.len());
                    changes.push(changes[k].clone());
                }
                if rng.gen_bool(0.3) {
                    changes.reverse();
                }
                for change in changes {
                    docs[i].apply_change(change).unwrap();
                }
            }
            10 => {
                let j = rng.gen_range(0..n as usize);
                let other = docs[j].clone();
                docs[i].merge(&other);
            }
            _ => {
                fresh += 1;
                docs[i].set_replica(ReplicaId::from_u128(seed as u128 * 16 + fresh));
            }
        }
        versions.push(docs[i].version().clone());
    }
    (docs, reference, versions)
}

/// Checks `ops_since(v)` of `doc` against the reference.
fn check_ops_since(doc: &Document, reference: &Reference, v: &VersionVector) {
    let Some(answer) = doc.ops_since(v) else {
        assert!(!doc.history_base().le(v), "ops_since refused a version at or after the base");
        return;
    };
    // Exactly the changes after v, each as it was made.
    let mut expected: Vec<&Change> =
        reference.values().filter(|c| c.seq > v.get(c.replica) && c.seq <= doc.version().get(c.replica)).collect();
    expected.sort_by_key(|c| (c.replica, c.seq));
    let mut got: Vec<&Change> = answer.iter().collect();
    got.sort_by_key(|c| (c.replica, c.seq));
    assert_eq!(got, expected, "ops_since({v:?}) differs from the reference");
    // In an order a replica at v can apply one by one.
    let mut at = v.clone();
    for change in &answer {
        assert!(change.is_ready(&at), "ops_since answer is not in causal order at {change:?}");
        at.set(change.replica, change.seq);
    }
}

fn check_document(doc: &Document, reference: &Reference, versions: &[VersionVector]) {
    doc.check_invariants();
    // Each change by its id, as it was made; nothing for ids the document has not applied.
    for change in reference.values() {
        let held =
            change.seq <= doc.version().get(change.replica) && change.seq > doc.history_base().get(change.replica);
        assert_eq!(doc.change(change.id()).as_ref(), held.then_some(change), "change {:?}", change.id());
    }
    let unknown = ChangeId { replica: ReplicaId::from_u128(99), seq: 1 };
    assert_eq!(doc.change(unknown), None);
    for v in versions.iter().chain([doc.version(), &VersionVector::new()]) {
        check_ops_since(doc, reference, v);
    }
    let bytes = encode_snapshot(doc);
    let decoded = decode_snapshot(&bytes, ReplicaId::from_u128(7)).expect("own snapshot decodes");
    decoded.check_invariants();
    assert_eq!(&decoded, doc, "decoded snapshot differs");
    assert_eq!(decoded.state_hash(), doc.state_hash());
    assert_eq!(encode_snapshot(&decoded), bytes, "encode → decode → encode is not byte-identical");
    for v in versions {
        assert_eq!(decoded.ops_since(v), doc.ops_since(v));
    }
    let legacy =
        decode_snapshot(&encode_legacy_snapshot(doc), ReplicaId::from_u128(8)).expect("format 1 snapshot decodes");
    legacy.check_invariants();
    assert_eq!(legacy.value(), doc.value());
    assert_eq!(legacy.state_hash(), doc.state_hash());
    assert_eq!(legacy.version(), doc.version());
    assert_eq!(legacy.history_len(), doc.history_len());
    for v in versions {
        let ids =
            |d: &Document| d.ops_since(v).map(|cs| cs.into_iter().map(|c| (c.replica, c.seq)).collect::<Vec<_>>());
        assert_eq!(ids(&legacy), ids(doc));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(2000) })]

    #[test]
    fn compact_history_matches_the_reference(seed in any::<u64>()) {
        let (docs, reference, versions) = session(seed);
        for doc in &docs {
            check_document(doc, &reference, &versions);
        }
    }
}

/// Mutated and truncated encodings (snapshots and change lists of random documents): each is
/// an error or a document whose invariants hold; never a panic. 10,000+ inputs per run.
#[test]
fn mutated_encodings_are_errors_or_valid_documents() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut inputs = 0;
    for seed in 0..40u64 {
        let (docs, _, _) = session(seed);
        let doc = &docs[0];
        let snapshot = encode_snapshot(doc);
        let changes = encode_changes(&doc.history());
        for _ in 0..130 {
            for (original, is_snapshot) in [(&snapshot, true), (&changes, false)] {
                let mut bytes = original.clone();
                match rng.gen_range(0..3) {
                    0 => bytes.truncate(rng.gen_range(0..=bytes.len())),
                    1 => {
                        for _ in 0..rng.gen_range(1..4) {
                            let i = rng.gen_range(0..bytes.len());
                            bytes[i] = rng.gen();
                        }
                    }
                    _ => {
                        let i = rng.gen_range(0..=bytes.len());
                        bytes.insert(i, rng.gen());
                    }
                }
                inputs += 1;
                if is_snapshot {
                    if let Ok(decoded) = decode_snapshot(&bytes, ReplicaId::from_u128(3)) {
                        decoded.check_invariants();
                        let _ = decoded.ops_since(&VersionVector::new());
                    }
                } else if let Ok(list) = decode_changes(&bytes) {
                    let mut fresh = Document::new(ReplicaId::from_u128(3));
                    for change in list {
                        let _ = fresh.apply_change(change);
                    }
                    fresh.check_invariants();
                }
            }
        }
    }
    assert!(inputs >= 10_000, "only {inputs} inputs");
}

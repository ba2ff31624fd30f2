//! Prints, per trace, the size of a `Document` typed one change per patch (with its compact
//! history) next to the text alone, and the time to load it.
//!
//! `cargo run -p integration-tests --release --example history_size [page opens]`

use std::time::Instant;

use crdt_core::codec::{decode_snapshot, encode_snapshot};
use crdt_core::{Document, ReplicaId};
use integration_tests::load_traces;

fn main() {
    let opens: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    for trace in load_traces() {
        let started = Instant::now();
        let mut doc = Document::new(ReplicaId::from_u128(1));
        let chunk = trace.patches.len().div_ceil(opens);
        for (i, p) in trace.patches.iter().enumerate() {
            if i % chunk == 0 && i > 0 {
                doc.set_replica(ReplicaId::from_u128(1 + i as u128));
            }
            match (p.1, p.2.is_empty()) {
                (0, false) => drop(doc.insert_text("body", p.0, &p.2).unwrap()),
                (_, true) => drop(doc.delete_text("body", p.0, p.1).unwrap().expect("a delete")),
                (_, false) => drop(doc.replace_text("body", p.0, p.1, &p.2).unwrap().expect("a replace")),
            }
        }
        let apply = started.elapsed();
        assert_eq!(doc.text("body").unwrap_or_default(), trace.end);
        let bytes = encode_snapshot(&doc);
        let started = Instant::now();
        let loaded = decode_snapshot(&bytes, ReplicaId::from_u128(99)).unwrap();
        let load = started.elapsed();
        for _ in 0..std::env::var("LOADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0) {
            drop(decode_snapshot(&bytes, ReplicaId::from_u128(99)).unwrap());
        }
        assert_eq!(loaded.text("body").unwrap_or_default(), trace.end);
        let text_bytes = crdt_core::codec::encode_snapshot_without_history(&doc);
        let text_only = text_bytes.len();
        let started = Instant::now();
        decode_snapshot(&text_bytes, ReplicaId::from_u128(99)).unwrap();
        let load_text = started.elapsed();
        println!(
            "{:16} changes {:7} spans {:6} size {:8} (text alone {:8}, history {:6}) apply {:?} load {:?} (text alone {:?}) version entries {}",
            trace.name,
            doc.history_len(),
            doc.history_spans(),
            bytes.len(),
            text_only,
            bytes.len() - text_only,
            apply,
            load,
            load_text,
            doc.version().len()
        );
    }
}

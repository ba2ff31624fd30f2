//! Prints, per trace, the size of a `Document` typed one change per patch (with its compact
//! history) next to the text alone, and the time to load it (the best of `LOADS` loads, 5 by
//! default).
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
        // The best of `LOADS` loads (at least 5): the first one also pays for cold caches.
        let loads = std::env::var("LOADS").ok().and_then(|v| v.parse().ok()).unwrap_or(5usize).max(1);
        let mut load = std::time::Duration::MAX;
        for _ in 0..loads {
            let started = Instant::now();
            drop(decode_snapshot(&bytes, ReplicaId::from_u128(99)).unwrap());
            load = load.min(started.elapsed());
        }
        let loaded = decode_snapshot(&bytes, ReplicaId::from_u128(99)).unwrap();
        assert_eq!(loaded.text("body").unwrap_or_default(), trace.end);
        assert_eq!(encode_snapshot(&loaded), bytes, "encode → decode → encode is not byte-identical");
        assert_eq!(
            loaded.ops_since(&Default::default()),
            doc.ops_since(&Default::default()),
            "the loaded history differs"
        );
        let text_bytes = crdt_core::codec::encode_snapshot_without_history(&doc);
        let text_only = text_bytes.len();
        let mut load_text = std::time::Duration::MAX;
        for _ in 0..loads {
            let started = Instant::now();
            drop(decode_snapshot(&text_bytes, ReplicaId::from_u128(99)).unwrap());
            load_text = load_text.min(started.elapsed());
        }
        println!(
            "{:16} changes {:7} spans {:6} size {:8} (text alone {:8}, history {:6}) apply {:?} load {:?} (text alone {:?}) version entries {} heap {} (loaded {})",
            trace.name,
            doc.history_len(),
            doc.history_spans(),
            bytes.len(),
            text_only,
            bytes.len() - text_only,
            apply,
            load,
            load_text,
            doc.version().len(),
            doc.heap_size(),
            loaded.heap_size()
        );
    }
}

//! Seeded random editing sessions whose results must be the same bytes in every build: the
//! native server and the browser's wasm must agree on encodings and state hashes, or a
//! document saved by one would not load, or compare, in the other.
//!
//! [`sample`] runs one session from a seed and returns what it produced: each replica's
//! snapshot (with its compact history), the wire frame of its last change, and its state hash.
//! The snapshots are in the browser's form (stored deflate streams; native builds compress
//! otherwise, with a compressor the browser does not carry).
//! `cargo run -p wasm-client --example determinism -- FIRST COUNT` prints the native results;
//! `web/test/determinism.test.mjs` computes the same seeds in the wasm build under Node and
//! compares them byte for byte, naming the first seed that differs.

use crdt_core::protocol::{ClientMsg, WireNames};
use crdt_core::{codec, Document, ReplicaId};

/// A small deterministic generator (SplitMix64): the same numbers on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

const WORDS: [&str; 6] = ["a", "bc", "héllo ", "✓", "😀x", "\n"];

/// One seeded session of three replicas (edits of every field kind, syncs in random order with
/// duplicates, a state merge, a new page open); the bytes it produced, concatenated, encoded
/// as the browser build encodes (stored deflate streams, [`codec::as_the_browser_writes`]).
pub fn sample(seed: u64) -> Vec<u8> {
    codec::as_the_browser_writes(|| session(seed))
}

fn session(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut docs: Vec<Document> =
        (0..3u128).map(|i| Document::new(ReplicaId::from_u128((seed as u128) << 8 | (i + 1)))).collect();
    let mut last = Vec::new();
    for step in 0..(20 + rng.below(60)) {
        let i = rng.below(3) as usize;
        let len = docs[i].rga("body").map_or(0, |r| r.len());
        let change = match rng.below(12) {
            0..=4 => {
                let word = WORDS[rng.below(WORDS.len() as u64) as usize];
                docs[i].insert_text("body", rng.below(len as u64 + 1) as usize, word).ok()
            }
            5 | 6 if len > 0 => {
                let pos = rng.below(len as u64) as usize;
                let n = 1 + rng.below((len - pos).min(4) as u64) as usize;
                docs[i].delete_text("body", pos, n).ok().flatten()
            }
            7 => Some(docs[i].set_register("title", format!("title {step}"))),
            8 => Some(docs[i].add_to_set("tags", format!("t{}", rng.below(3)))),
            9 => Some(docs[i].increment("likes", 1 + rng.below(3))),
            10 => {
                let j = rng.below(3) as usize;
                let mut changes = docs[j].ops_since(docs[i].version()).unwrap_or_default();
                if rng.below(2) == 0 {
                    changes.reverse();
                }
                for change in changes {
                    // Out of order: buffered until their past arrives.
                    let _ = docs[i].apply_change(change);
                }
                None
            }
            _ if step % 17 == 0 => {
                let other = docs[rng.below(3) as usize].clone();
                docs[i].merge(&other);
                None
            }
            _ => {
                docs[i].set_replica(ReplicaId::from_u128((seed as u128) << 8 | (100 + step as u128)));
                None
            }
        };
        if let Some(change) = change {
            last = vec![change];
        }
    }
    let mut out = Vec::new();
    for doc in &docs {
        let snapshot = codec::encode_snapshot(doc);
        out.extend_from_slice(&(snapshot.len() as u32).to_le_bytes());
        out.extend_from_slice(&snapshot);
        out.extend_from_slice(&doc.state_hash().to_le_bytes());
    }
    let mut names = WireNames::new();
    out.extend(ClientMsg::Changes { seq: 1, changes: last }.encode_on(&mut names));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples are functions of the seed (no hash-map order, no clock, no randomness of
    /// the process leaks into them).
    #[test]
    fn a_sample_depends_on_its_seed_alone() {
        for seed in 0..50 {
            assert_eq!(sample(seed), sample(seed), "seed {seed}");
        }
        assert_ne!(sample(1), sample(2));
    }
}

//! Convergence of whole documents: 2 to 8 replicas edit every field kind at random; changes are
//! delivered late, out of order, twice, or not at all (then recovered with `ops_since`), across
//! partitions that later heal. At the end every replica has the same value, version vector and
//! state hash, and state merge agrees with op delivery.
//!
//! `soak` runs the same property 100,000 times: `cargo test -p integration-tests -- --ignored soak`.

use crdt_core::{codec, Change, Document, ReplicaId};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const WORDS: [&str; 8] = ["a", "bc", "xyz", "é", "中文", "😀", "e\u{301}", " "];
const TAGS: [&str; 4] = ["red", "green", "blue", "urgent"];

/// One step of the simulation; the numbers pick replicas, positions and values.
#[derive(Debug, Clone)]
enum Step {
    Edit { who: usize, what: u8, a: u32, b: u32 },
    Deliver { who: usize, count: u32, dup: bool },
    Drop { who: usize },
    Partition { mask: u8 },
    Heal,
    SnapshotReload { who: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..8, 0u8..10, any::<u32>(), any::<u32>()).prop_map(|(who, what, a, b)| Step::Edit { who, what, a, b }),
        4 => (0usize..8, 1u32..6, any::<bool>()).prop_map(|(who, count, dup)| Step::Deliver { who, count, dup }),
        1 => (0usize..8).prop_map(|who| Step::Drop { who }),
        1 => any::<u8>().prop_map(|mask| Step::Partition { mask }),
        1 => Just(Step::Heal),
        1 => (0usize..8).prop_map(|who| Step::SnapshotReload { who }),
    ]
}

struct Net {
    docs: Vec<Document>,
    /// Messages in flight to each replica.
    inbox: Vec<Vec<Change>>,
    /// Messages held back by the partition, per destination.
    held: Vec<Vec<Change>>,
    /// Which side of the partition each replica is on.
    side: Vec<bool>,
}

impl Net {
    fn new(n: usize) -> Self {
        Net {
            docs: (0..n).map(|i| Document::new(ReplicaId::from_u128(i as u128 + 1))).collect(),
            inbox: vec![Vec::new(); n],
            held: vec![Vec::new(); n],
            side: vec![false; n],
        }
    }

    fn broadcast(&mut self, from: usize, change: Change) {
        for to in 0..self.docs.len() {
            if to != from {
                if self.side[to] == self.side[from] {
                    self.inbox[to].push(change.clone());
                } else {
                    self.held[to].push(change.clone());
                }
            }
        }
    }

    fn edit(&mut self, who: usize, what: u8, a: u32, b: u32) {
        let doc = &mut self.docs[who];
        let len = doc.rga("body").map_or(0, |t| t.len());
        let word = WORDS[b as usize % WORDS.len()];
        let tag = TAGS[a as usize % TAGS.len()].to_string();
        let change = match what {
            0..=2 => Some(doc.insert_text("body", a as usize % (len + 1), word).unwrap()),
            3 => {
                let pos = a as usize % (len + 1);
                doc.delete_text("body", pos, (b as usize % 4).min(len - pos)).unwrap()
            }
            4 => Some(doc.set_register("title", format!("t{}", a % 5))),
            5 => Some(doc.add_to_set("tags", tag)),
            6 => doc.remove_from_set("tags", &tag).unwrap(),
            7 => Some(if a.is_multiple_of(2) { doc.increment("likes", 1) } else { doc.decrement("likes", 1) }),
            8 => Some(doc.increment_gcounter("views", 1 + b as u64 % 3)),
            _ => doc
                .transact(|tx| {
                    tx.insert_text("body", 0, word)?;
                    tx.set_register("title", format!("tx{}", a % 3));
                    tx.add_to_set("tags", tag.clone());
                    tx.increment("likes", 2);
                    Ok(())
                })
                .unwrap(),
        };
        if let Some(change) = change {
            self.broadcast(who, change);
        }
    }

    fn deliver(&mut self, who: usize, count: u32, dup: bool, pick: u32) {
        for k in 0..count {
            if self.inbox[who].is_empty() {
                return;
            }
            let i = (pick as usize).wrapping_mul(k as usize + 7) % self.inbox[who].len();
            let change = if dup { self.inbox[who][i].clone() } else { self.inbox[who].swap_remove(i) };
            self.docs[who].apply_change(change).expect("a valid change applies or buffers");
        }
    }

    fn heal(&mut self) {
        self.side.iter_mut().for_each(|s| *s = false);
        for to in 0..self.docs.len() {
            let held = std::mem::take(&mut self.held[to]);
            self.inbox[to].extend(held);
        }
    }

    /// Delivers everything in flight, then lets each pair catch up with `ops_since` (what a
    /// reconnecting client gets), the way lost messages are recovered.
    fn settle(&mut self) {
        self.heal();
        for who in 0..self.docs.len() {
            let n = self.inbox[who].len() as u32;
            self.deliver(who, n, false, 1);
        }
        for a in 0..self.docs.len() {
            for b in 0..self.docs.len() {
                if a != b {
                    let missing = self.docs[b].ops_since(self.docs[a].version()).expect("full history kept");
                    for change in missing {
                        self.docs[a].apply_change(change).unwrap();
                    }
                }
            }
        }
    }
}

fn run(replicas: usize, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut net = Net::new(replicas);
    for (k, s) in steps.iter().enumerate() {
        match s.clone() {
            Step::Edit { who, what, a, b } => net.edit(who % replicas, what, a, b),
            Step::Deliver { who, count, dup } => net.deliver(who % replicas, count, dup, k as u32 * 31 + 5),
            Step::Drop { who } => {
                net.inbox[who % replicas].pop();
            }
            Step::Partition { mask } => {
                for (i, side) in net.side.iter_mut().enumerate() {
                    *side = mask & (1 << i) != 0;
                }
            }
            Step::Heal => net.heal(),
            Step::SnapshotReload { who } => {
                // A replica restarts from its own snapshot (as after closing the tab).
                let who = who % replicas;
                let bytes = codec::encode_snapshot(&net.docs[who]);
                let replica = net.docs[who].replica();
                net.docs[who] = codec::decode_snapshot(&bytes, replica).expect("own snapshot reads back");
            }
        }
    }
    net.settle();
    let first = &net.docs[0];
    for doc in &net.docs {
        doc.check_invariants();
        prop_assert_eq!(doc.pending_count(), 0);
        prop_assert_eq!(doc.version(), first.version());
        prop_assert_eq!(doc.value(), first.value());
        prop_assert_eq!(doc.state_hash(), first.state_hash());
    }
    // State merge reaches the same place as op delivery.
    let mut merged = Document::new(ReplicaId::from_u128(99));
    for doc in &net.docs {
        merged.merge(doc);
    }
    merged.check_invariants();
    prop_assert_eq!(merged.value(), first.value());
    prop_assert_eq!(merged.state_hash(), first.state_hash());
    Ok(())
}

fn property(cases: u32) {
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = (2usize..=8, prop::collection::vec(step(), 1..80));
    runner.run(&strategy, |(n, steps)| run(n, &steps)).unwrap();
}

#[test]
fn documents_converge_under_any_delivery() {
    property(2_000);
}

#[test]
#[ignore = "soak: 100,000 cases, run with -- --ignored soak"]
fn soak() {
    property(100_000);
}

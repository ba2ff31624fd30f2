//! Synthetic random-position typing at growing sizes: does our cost grow with the work as it
//! should? Each edit is, with a fixed seed, a one-character insert at a uniformly random position
//! (90 %) or a one-character delete at a uniformly random position (10 %). Random positions are
//! the worst case for runs: nearly every insert starts a run of its own.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::driver::{Peer, Remote, REPLICA_A, REPLICA_B};
use crate::peers::ours::Ours;
use crate::peers::rope::Rope;
use crate::trace::Patch;

/// One row of the scaling table.
pub struct Row {
    pub edits: usize,
    pub local: Duration,
    pub remote: Duration,
    pub rope: Duration,
}

/// The seeded edit script of `n` edits.
pub fn edits(n: usize, seed: u64) -> Vec<Patch> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut len = 0usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if len > 0 && rng.gen_ratio(1, 10) {
            let pos = rng.gen_range(0..len);
            out.push(Patch { pos, del: 1, pos16: pos, del16: 1, ins: String::new(), ins_chars: 0 });
            len -= 1;
        } else {
            let pos = rng.gen_range(0..=len);
            let ch = char::from(b'a' + rng.gen_range(0..26u8));
            out.push(Patch { pos, del: 0, pos16: pos, del16: 0, ins: ch.to_string(), ins_chars: 1 });
            len += 1;
        }
    }
    out
}

fn expected(edits: &[Patch]) -> String {
    let mut rope = Rope::empty(0);
    rope.apply_txn(edits, 0);
    rope.text()
}

/// The median of three timings of `once`.
fn median3(mut once: impl FnMut() -> Duration) -> Duration {
    let mut t = [once(), once(), once()];
    t.sort();
    t[1]
}

/// Times our local replay, a fresh replica integrating those operations, and the plain rope;
/// each the median of three runs, each result checked.
pub fn run(sizes: &[usize]) -> Vec<Row> {
    sizes
        .iter()
        .map(|&n| {
            let script = edits(n, 0x5eed);
            let want = expected(&script);
            let rope = median3(|| {
                let start = Instant::now();
                let mut rope = Rope::empty(0);
                rope.apply_txn(&script, 0);
                let elapsed = start.elapsed();
                assert_eq!(rope.text(), want, "rope, {n} synthetic edits");
                elapsed
            });
            let local = median3(|| {
                let start = Instant::now();
                let mut doc = Ours::empty(REPLICA_A);
                doc.apply_txn(&script, 0);
                let elapsed = start.elapsed();
                assert_eq!(doc.text(), want, "ours, {n} synthetic edits");
                elapsed
            });
            let mut source = Ours::empty(REPLICA_A);
            source.set_recording(true);
            source.apply_txn(&script, 0);
            let ops = source.take_ops();
            drop(source);
            let remote = median3(|| {
                let mut prepared = Ours::prepare(&ops);
                let start = Instant::now();
                let mut doc = Ours::integrate(REPLICA_B, &mut prepared);
                let elapsed = start.elapsed();
                assert_eq!(doc.text(), want, "ours remote, {n} synthetic edits");
                elapsed
            });
            Row { edits: n, local, remote, rope }
        })
        .collect()
}

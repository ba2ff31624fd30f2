//! Synthetic random-position typing at growing sizes: does our cost grow with the work as it
//! should? Each edit is, with a fixed seed, a one-character insert at a uniformly random position
//! (90 %) or a one-character delete at a uniformly random position (10 %). Random positions are
//! the worst case for runs: nearly every insert starts a run of its own. diamond-types, the
//! fastest CRDT peer on local edits, runs the same edits for comparison.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::driver::{settle_allocator, Peer, Remote, REPLICA_A, REPLICA_B};
use crate::peers::diamond::Diamond;
use crate::peers::ours::Ours;
use crate::peers::rope::Rope;
use crate::trace::Patch;

/// One row of the scaling table.
pub struct Row {
    pub edits: usize,
    pub local: Duration,
    pub remote: Duration,
    pub rope: Duration,
    pub diamond: Duration,
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

/// Timings of one size are repeated until each library has at least this much time measured
/// (a small size is over in a few milliseconds, where one slow moment of a shared machine
/// would decide a median of three), and at least three times.
const MEASURE: Duration = Duration::from_millis(300);

fn median(mut t: Vec<Duration>) -> Duration {
    t.sort();
    t[t.len() / 2]
}

/// Times `script` applied as local edits to a fresh `P`, checked against `want`.
fn local<P: Peer>(script: &[Patch], want: &str, name: &str) -> Duration {
    settle_allocator();
    let start = Instant::now();
    let mut doc = P::empty(REPLICA_A);
    doc.apply_txn(script, 0);
    let elapsed = start.elapsed();
    assert_eq!(doc.text(), want, "{name}, {} synthetic edits", script.len());
    elapsed
}

/// Times the plain rope, our local replay, diamond-types' and a fresh replica of ours
/// integrating the recorded operations, in interleaved rounds (so a slow spell of the machine
/// hits all four alike); each the median of its rounds, each result checked.
pub fn run(sizes: &[usize]) -> Vec<Row> {
    sizes
        .iter()
        .map(|&n| {
            let script = edits(n, 0x5eed);
            let want = expected(&script);
            let mut source = Ours::empty(REPLICA_A);
            source.set_recording(true);
            source.apply_txn(&script, 0);
            let ops = source.take_ops();
            drop(source);
            let (mut rope, mut ours, mut diamond, mut remote) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            while rope.len() < 3 || ours.iter().sum::<Duration>() < MEASURE {
                rope.push(local::<Rope>(&script, &want, "rope"));
                ours.push(local::<Ours>(&script, &want, "ours"));
                diamond.push(local::<Diamond>(&script, &want, "diamond-types"));
                let mut prepared = Ours::prepare(&ops);
                settle_allocator();
                let start = Instant::now();
                let mut doc = Ours::integrate(REPLICA_B, &mut prepared);
                let elapsed = start.elapsed();
                assert_eq!(doc.text(), want, "ours remote, {n} synthetic edits");
                remote.push(elapsed);
            }
            Row { edits: n, local: median(ours), remote: median(remote), rope: median(rope), diamond: median(diamond) }
        })
        .collect()
}

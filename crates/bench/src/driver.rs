//! The one driver every library goes through: the same replay, the same timers, the same checks.
//!
//! A library plugs in by implementing [`Peer`] (local edits) and, where it has them, [`Remote`]
//! (a fresh replica integrating another's operations), [`Merge`] (bringing one replica up to date
//! with a concurrent one) and [`Encode`] (a saved document with full history, and loading it).
//! Each measurement checks its result against the trace's `endContent` and panics on a mismatch,
//! so no number in the table comes from a wrong answer.
//!
//! # What each measurement is
//! - **local**: an empty replica applies every patch of the trace as local edits, one library
//!   transaction (commit) per trace transaction. Also reports the live heap bytes the finished
//!   replica holds (counted by the global allocator, see `alloc.rs`). The libraries take turns,
//!   one run each per round ([`local_interleaved`]), so that the ratios between them do not
//!   depend on which one the shared machine's load happened to fall on.
//! - **remote**: replica A's operations are recorded in an untimed replay; a fresh replica B then
//!   integrates all of them (timed). Anything that only turns bytes into the library's in-memory
//!   operations happens before the timer starts. Ours also takes part in the local rounds as
//!   a remote apply (`main.rs`), so the goal that compares our remote with our local apply
//!   compares two medians of the same rounds.
//! - **merge**: see [`merge`]: two replicas that forked from a one-character document each type
//!   the whole trace into their own half of it, concurrently; A then integrates everything B did.
//! - **encode/load**: the replica after the trace is saved with its full history; loading is
//!   decoding into a fresh replica plus reading its text once (some libraries decode lazily).

use std::time::{Duration, Instant};

use crate::alloc::live_bytes;
use crate::trace::{Patch, Trace};

/// Replica numbers used by every library (each maps them to its own id type).
pub const REPLICA_A: u64 = 1;
pub const REPLICA_B: u64 = 2;
const REPLICA_BASE: u64 = 3;
const REPLICA_LOADED: u64 = 4;

/// A text replica of one library, edited locally.
pub trait Peer: Sized {
    /// An empty document edited as `replica`.
    fn empty(replica: u64) -> Self;
    /// Applies one trace transaction as local edits, with every position shifted by `offset`
    /// (characters and UTF-16 units alike: the shift is always ASCII text).
    fn apply_txn(&mut self, patches: &[Patch], offset: usize);
    /// The visible text.
    fn text(&mut self) -> String;
}

/// A library whose replicas exchange operations.
pub trait Remote: Peer {
    /// All operations a replica made, as recorded.
    type Ops;
    /// `Ops` in the form `integrate` takes (decoded, cloned), made before the timer starts.
    type Prepared;
    /// Starts or stops keeping the operations of later local edits.
    fn set_recording(&mut self, on: bool);
    /// The operations recorded so far.
    fn take_ops(&mut self) -> Self::Ops;
    fn prepare(ops: &Self::Ops) -> Self::Prepared;
    /// A fresh replica `replica` that integrates `ops` (which are dropped after the timer stops;
    /// a library whose integration consumes them takes them out).
    fn integrate(replica: u64, ops: &mut Self::Prepared) -> Self;
}

/// A library that can bring one replica up to date with a concurrent one.
pub trait Merge: Peer {
    /// What `merge` takes from `from`, made before the timer starts (an update's bytes, say).
    type Input;
    /// A copy of this replica that edits as `replica` from now on.
    fn fork(&mut self, replica: u64) -> Self;
    /// Needed by libraries whose merge replays `from`'s recorded operations.
    fn record_for_merge(&mut self) {}
    fn merge_input(from: &mut Self, into: &mut Self) -> Self::Input;
    fn merge(into: &mut Self, from: &mut Self, input: Self::Input);
}

/// A library that saves a document with its full history and loads it back.
pub trait Encode: Peer {
    /// Every encoding worth reporting, labelled (`"snapshot"`, `"update v2"`, `"+ zstd"`, ...).
    fn encodings(&mut self) -> Vec<(&'static str, Vec<u8>)>;
    fn load(label: &str, bytes: &[u8], replica: u64) -> Self;
}

/// How many times to repeat a measurement, and when to stop early.
#[derive(Clone, Copy, Debug)]
pub struct Runs {
    pub wanted: usize,
    /// Stop repeating once this much time was spent on one measurement (after at least 1 run):
    /// automerge and yrs take seconds per local replay.
    pub budget: Duration,
}

/// The median of a measurement, and how many runs it is the median of.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub median: Duration,
    pub runs: usize,
}

/// Makes the allocator tidy up what the last measurement freed, outside any timer.
///
/// glibc's malloc leaves small freed blocks in fast lists and merges them only when a later
/// request of a kilobyte or more comes: without this, the first such request of the next
/// library measured (a leaf of ours, a node of another) pays for merging everything the
/// library before it freed — hundreds of thousands of blocks after automerge or yrs. A 64 KB
/// request, served from the heap, triggers that merge here instead.
pub fn settle_allocator() {
    drop(std::hint::black_box(Vec::<u8>::with_capacity(64 * 1024)));
}

pub fn repeat(runs: Runs, mut once: impl FnMut() -> Duration) -> Timing {
    let mut times = Vec::new();
    let mut spent = Duration::ZERO;
    while times.len() < runs.wanted.max(1) && (times.is_empty() || spent < runs.budget) {
        settle_allocator();
        let t = once();
        spent += t;
        times.push(t);
    }
    times.sort();
    Timing { median: times[times.len() / 2], runs: times.len() }
}

pub fn check(library: &str, what: &str, trace: &Trace, got: &str, want: &str) {
    if got != want {
        let at = got.chars().zip(want.chars()).take_while(|(a, b)| a == b).count();
        panic!(
            "{library} gave a wrong result for {what} on {} ({} chars, expected {}; first difference at char {at})",
            trace.name,
            got.chars().count(),
            want.chars().count()
        );
    }
}

pub fn replay<P: Peer>(doc: &mut P, trace: &Trace, offset: usize) {
    for txn in &trace.txns {
        doc.apply_txn(&trace.patches[txn.clone()], offset);
    }
}

/// One local apply: the time, and the live heap bytes the finished replica holds.
pub fn local_once<P: Peer>(library: &str, trace: &Trace) -> (Duration, usize) {
    settle_allocator();
    let before = live_bytes();
    let start = Instant::now();
    let mut doc = P::empty(REPLICA_A);
    replay(&mut doc, trace, 0);
    let elapsed = start.elapsed();
    let held = (live_bytes() - before).max(0) as usize;
    check(library, "local apply", trace, &doc.text(), &trace.end);
    (elapsed, held)
}

/// Local apply of every library in `once` (one closure per library), run in rounds: round `r`
/// runs each library once, in turn, so a stretch of load on this shared machine falls on all of
/// them alike rather than on whichever was being measured. Each round starts one library further
/// on, so no library always follows the same one (what the one before leaves in the caches and
/// the allocator moved a library's time by up to a tenth). A library leaves the rounds once it
/// has `runs.wanted` runs or has spent `runs.budget`. Returns each library's timing and heap
/// (of its first run).
pub fn local_interleaved(runs: Runs, once: &mut [Box<dyn FnMut() -> (Duration, usize) + '_>]) -> Vec<(Timing, usize)> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); once.len()];
    let mut heaps = vec![0; once.len()];
    let mut spent = vec![Duration::ZERO; once.len()];
    let n = once.len();
    for round in 0.. {
        let mut ran = false;
        for i in (0..n).map(|k| (k + round) % n) {
            let f = &mut once[i];
            let done = times[i].len() >= runs.wanted.max(1) || (!times[i].is_empty() && spent[i] >= runs.budget);
            if done {
                continue;
            }
            let (t, heap) = f();
            if times[i].is_empty() {
                heaps[i] = heap;
            }
            spent[i] += t;
            times[i].push(t);
            ran = true;
        }
        if !ran {
            break;
        }
    }
    times
        .into_iter()
        .zip(heaps)
        .map(|(mut t, heap)| {
            t.sort();
            (Timing { median: t[t.len() / 2], runs: t.len() }, heap)
        })
        .collect()
}

/// The operations of an untimed local replay of `trace` by replica A, for [`remote_once`].
pub fn record<P: Remote>(trace: &Trace) -> P::Ops {
    let mut source = P::empty(REPLICA_A);
    source.set_recording(true);
    replay(&mut source, trace, 0);
    source.take_ops()
}

/// One remote apply: a fresh replica integrates all of `ops` (recorded by [`record`]).
pub fn remote_once<P: Remote>(library: &str, trace: &Trace, ops: &P::Ops) -> Duration {
    let mut prepared = P::prepare(ops);
    settle_allocator();
    let start = Instant::now();
    let mut doc = P::integrate(REPLICA_B, &mut prepared);
    let elapsed = start.elapsed();
    check(library, "remote apply", trace, &doc.text(), &trace.end);
    elapsed
}

/// Remote apply: a fresh replica integrates every operation of the trace.
pub fn remote<P: Remote>(library: &str, trace: &Trace, runs: Runs) -> Timing {
    let ops = record::<P>(trace);
    repeat(runs, || remote_once::<P>(library, trace, &ops))
}

/// Merge of two concurrent halves.
///
/// A base replica holds one character, `"\n"`. Replicas A and B fork from it; A types the whole
/// trace before the newline and B types it after, neither seeing the other. The merge (timed)
/// brings A up to date with everything B did, by the library's own means: a state merge where it
/// has one, otherwise integrating B's operations or B's encoded update for A's version. The result
/// must be `end + "\n" + end`. Each half is a full replay of the trace, so the merge integrates as
/// many operations as remote apply does, but into a replica that already holds as much concurrent
/// text: the cost an offline editing session pays when it comes back online.
pub fn merge<P: Merge>(library: &str, trace: &Trace, runs: Runs) -> Timing {
    let newline = Patch { pos: 0, del: 0, pos16: 0, del16: 0, ins: "\n".to_owned(), ins_chars: 1 };
    let expected = format!("{end}\n{end}", end = trace.end);
    repeat(runs, || {
        let mut base = P::empty(REPLICA_BASE);
        base.apply_txn(std::slice::from_ref(&newline), 0);
        let mut a = base.fork(REPLICA_A);
        let mut b = base.fork(REPLICA_B);
        drop(base);
        b.record_for_merge();
        replay(&mut a, trace, 0);
        replay(&mut b, trace, 1);
        check(library, "merge (replica A before)", trace, &a.text(), &format!("{}\n", trace.end));
        check(library, "merge (replica B before)", trace, &b.text(), &format!("\n{}", trace.end));
        let input = P::merge_input(&mut b, &mut a);
        let start = Instant::now();
        P::merge(&mut a, &mut b, input);
        let elapsed = start.elapsed();
        check(library, "merge", trace, &a.text(), &expected);
        elapsed
    })
}

/// One encoding's size and load time.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub label: &'static str,
    pub bytes: usize,
    pub load: Timing,
}

/// Saves the replica after the trace in each of the library's encodings and times loading them.
pub fn encode<P: Encode>(library: &str, trace: &Trace, runs: Runs) -> Vec<Encoded> {
    let mut doc = P::empty(REPLICA_A);
    replay(&mut doc, trace, 0);
    let encodings = doc.encodings();
    drop(doc);
    encodings
        .into_iter()
        .map(|(label, bytes)| {
            let load = repeat(runs, || {
                let start = Instant::now();
                let mut loaded = P::load(label, &bytes, REPLICA_LOADED);
                let text = loaded.text();
                let elapsed = start.elapsed();
                check(library, "load", trace, &text, &trace.end);
                elapsed
            });
            Encoded { label, bytes: bytes.len(), load }
        })
        .collect()
}

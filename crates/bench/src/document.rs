//! `--document`: what a user's [`Document`] costs next to the bare `Rga` the main report measures
//! (issue 17, "a document's history costs what its text costs").
//!
//! For each trace, in one process and with the main report's timers and checks:
//! - **one replica**: the trace typed into the text field `body` of a [`Document`], one change
//!   per patch (a patch that deletes and inserts is one [`Document::replace_text`]), as the
//!   editor does. Its local apply and heap take turns, in the same rounds
//!   ([`driver::local_interleaved`]), with the bare `Rga`'s (the `ours` adapter), so the ratio
//!   does not depend on where the machine's load fell.
//! - **page opens**: the same typing spread over 50 and over 500 page opens: the patches in as
//!   many consecutive chunks, each typed by a fresh replica (`set_replica` before it). The ids
//!   come from an RNG with a fixed seed, so every run builds the same document.
//! - for each of these: the snapshot with full history ([`codec::encode_snapshot`]), the time to
//!   save it and to load it ([`codec::decode_snapshot`] and reading the text once, as the main
//!   report's load reads it), the entries of the final version, and the wire bytes per change:
//!   the `ClientMsg::Changes` frame a client sends for one change, `seq` counting 1, 2, 3… on
//!   each page open's connection, encoded with that connection's names (`encode_on`, the
//!   `Hello` naming the replica) as the browser does.
//! - beside them: our `Rga` alone through bincode (the main report's `ours` encoding),
//!   diamond-types' operation log with `ENCODE_FULL` (lz4, a default feature of diamond-types
//!   1.0) and without compression, and automerge's `save()` (one commit per trace transaction,
//!   as in the main report), for the same trace.
//!
//! Only the API an editor uses is called (the edits, `replace_text`, `set_replica`, `version`,
//! `text`, the codec, `ClientMsg::encode_on`); a [`Change`] is passed along and never looked into,
//! so this keeps compiling while crdt-core's internals change.
//!
//! A warm-up replay of every variant (the one the sizes and wire bytes are taken from) runs
//! before the timed rounds.

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crdt_core::protocol::{ClientMsg, WireNames};
use crdt_core::{codec, Change, Document, ReplicaId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::alloc::live_bytes;
use crate::driver::{self, Encode, Encoded, Peer, Runs, Timing};
use crate::peers::automerge::Automerge;
use crate::peers::diamond::Diamond;
use crate::peers::ours::{self, Ours};
use crate::report::{kb, ms, ratio, secs, timing};
use crate::trace::{Patch, Trace};

/// The text field the trace is typed into, as in the editor.
const FIELD: &str = "body";
/// Seed of the replica ids, so that every run builds the same document.
const SEED: u64 = 17;
/// The variants measured: typed over this many page opens (1: one replica).
const OPENS: [usize; 3] = [1, 50, 500];
/// Ends a child's section; its row of the summary table follows.
const ROW_MARK: &str = "<!-- document summary row -->\n";

/// Types `trace` into a new document over `opens` page opens: the patches in `opens` consecutive
/// chunks, each typed by a fresh replica. Every change goes to `sent`, with the page open (from 0)
/// that made it.
fn type_trace(trace: &Trace, opens: usize, mut sent: impl FnMut(usize, Change)) -> Document {
    let mut ids = StdRng::seed_from_u64(SEED);
    let mut doc = Document::new(ReplicaId::from_u128(ids.gen()));
    let n = trace.patches.len();
    for page in 0..opens {
        if page > 0 {
            doc.set_replica(ReplicaId::from_u128(ids.gen()));
        }
        for patch in &trace.patches[page * n / opens..(page + 1) * n / opens] {
            if let Some(change) = edit(&mut doc, patch) {
                sent(page, change);
            }
        }
    }
    doc
}

/// One patch as one change (`None` only for a patch that changes nothing, which traces lack).
fn edit(doc: &mut Document, p: &Patch) -> Option<Change> {
    let change = if p.del > 0 && !p.ins.is_empty() {
        doc.replace_text(FIELD, p.pos, p.del, &p.ins)
    } else if p.del > 0 {
        doc.delete_text(FIELD, p.pos, p.del)
    } else {
        doc.insert_text(FIELD, p.pos, &p.ins).map(Some)
    };
    change.expect("the trace's patches are in bounds")
}

fn text(doc: &Document) -> String {
    doc.text(FIELD).unwrap_or_default()
}

/// One local apply of a variant: the time, and the live heap bytes the finished document holds.
fn local_once(trace: &Trace, opens: usize) -> (Duration, usize) {
    driver::settle_allocator();
    let before = live_bytes();
    let start = Instant::now();
    let doc = type_trace(trace, opens, |_, _| {});
    let elapsed = start.elapsed();
    let held = (live_bytes() - before).max(0) as usize;
    driver::check("document", "local apply", trace, &text(&doc), &trace.end);
    (elapsed, held)
}

/// The `ClientMsg::Changes` frames a client sends, one change each, on one connection per page
/// open (encoded as a client does: with the connection's names, after its `Hello`).
#[derive(Default)]
struct Wire {
    frames: usize,
    bytes: usize,
    largest: usize,
    /// The page open whose connection is sending, its last `seq` and what it has named.
    page: Option<usize>,
    seq: u64,
    names: WireNames,
}

impl Wire {
    fn send(&mut self, page: usize, change: Change) {
        if self.page != Some(page) {
            self.page = Some(page);
            self.seq = 0;
            self.names = WireNames::new();
            // The connection's Hello names the author (it is not counted: one per connection).
            let _ = self.names.name_replica(change.replica);
        }
        self.seq += 1;
        let len = ClientMsg::Changes { seq: self.seq, changes: vec![change] }.encode_on(&mut self.names).len();
        self.frames += 1;
        self.bytes += len;
        self.largest = self.largest.max(len);
    }

    fn mean(&self) -> f64 {
        self.bytes as f64 / self.frames.max(1) as f64
    }
}

/// Everything measured for one variant.
struct Variant {
    opens: usize,
    changes: usize,
    wire: Wire,
    version_entries: usize,
    snapshot: usize,
    save: Timing,
    /// Or why the snapshot does not load (say, longer than `codec::MAX_SNAPSHOT_LEN`).
    load: Result<Timing, String>,
    local: Timing,
    heap: usize,
}

/// The untimed replay of a variant (also its warm-up), and its snapshot's save and load.
/// `local` and `heap` are filled in after the rounds.
fn measure(trace: &Trace, opens: usize, runs: Runs) -> Variant {
    let mut wire = Wire::default();
    let doc = type_trace(trace, opens, |page, change| wire.send(page, change));
    driver::check("document", "local apply", trace, &text(&doc), &trace.end);
    let bytes = codec::encode_snapshot(&doc);
    let save = driver::repeat(runs, || {
        let start = Instant::now();
        let saved = codec::encode_snapshot(&doc);
        let elapsed = start.elapsed();
        drop(saved);
        elapsed
    });
    // A first, untimed load finds out whether the snapshot loads at all.
    let load = codec::decode_snapshot(&bytes, ReplicaId::random()).map_err(|e| e.to_string()).map(|_| {
        driver::repeat(runs, || {
            let start = Instant::now();
            let loaded = codec::decode_snapshot(&bytes, ReplicaId::random()).expect("loaded once already");
            let got = text(&loaded);
            let elapsed = start.elapsed();
            driver::check("document", "load", trace, &got, &trace.end);
            elapsed
        })
    });
    Variant {
        opens,
        changes: wire.frames,
        version_entries: doc.version().len(),
        snapshot: bytes.len(),
        wire,
        save,
        load,
        local: Timing { median: Duration::ZERO, runs: 0 },
        heap: 0,
    }
}

/// The bare `Rga` (the main report's `ours`): local apply, heap, its encoding and load, save.
struct Bare {
    local: Timing,
    heap: usize,
    encoded: Encoded,
    save: Timing,
}

fn bare_save(trace: &Trace, runs: Runs) -> Timing {
    let mut doc = Ours::empty(driver::REPLICA_A);
    driver::replay(&mut doc, trace, 0);
    driver::repeat(runs, || {
        let start = Instant::now();
        let saved = ours::encode_bincode(&doc.rga);
        let elapsed = start.elapsed();
        drop(saved);
        elapsed
    })
}

/// automerge's `save()` of the trace (size only: its replay alone takes seconds).
fn automerge_save(trace: &Trace) -> usize {
    let mut doc = Automerge::empty(driver::REPLICA_A);
    driver::replay(&mut doc, trace, 0);
    driver::check("automerge", "local apply", trace, &doc.text(), &trace.end);
    doc.encodings().into_iter().map(|(_, bytes)| bytes.len()).next().unwrap_or(0)
}

/// Measures the trace in `file` and renders its part of the report, then [`ROW_MARK`] and its
/// row of the summary table.
pub fn trace_section(file: &Path, runs: Runs) -> Result<String, String> {
    let trace = Trace::load(file)?;
    let t = &trace;
    eprintln!("== {} ({} patches), document mode", t.name, t.patches.len());
    eprintln!("   warm-up replays, snapshots, loads, wire bytes");
    let mut variants: Vec<Variant> = OPENS.iter().map(|&opens| measure(t, opens, runs)).collect();
    eprintln!("   local apply, interleaved: ours (Rga), document over {OPENS:?} page opens");
    let mut once: Vec<Box<dyn FnMut() -> (Duration, usize)>> =
        vec![Box::new(move || driver::local_once::<Ours>("ours", t))];
    once.extend(OPENS.iter().map(|&opens| Box::new(move || local_once(t, opens)) as Box<dyn FnMut() -> _>));
    let mut locals = driver::local_interleaved(runs, &mut once).into_iter();
    drop(once);
    let (local, heap) = locals.next().expect("one timing per closure");
    for (v, (local, heap)) in variants.iter_mut().zip(locals) {
        v.local = local;
        v.heap = heap;
    }
    eprintln!("   ours, diamond-types: encodings and loads; automerge: save");
    let encoded = driver::encode::<Ours>("ours", t, runs).into_iter().next().expect("ours has one encoding");
    let bare = Bare { local, heap, encoded, save: bare_save(t, runs) };
    let diamond = driver::encode::<Diamond>("dt", t, runs);
    let automerge = automerge_save(t);
    let mut out = section(t, &bare, &variants, &diamond, automerge, runs.wanted);
    out.push_str(ROW_MARK);
    out.push_str(&summary_row(t, &bare, &variants, &diamond));
    Ok(out)
}

fn load_cell(load: &Result<Timing, String>, wanted: usize) -> String {
    match load {
        Ok(t) => timing(*t, wanted),
        Err(e) => format!("fails: {e}"),
    }
}

fn load_ratio(load: &Result<Timing, String>, of: Timing) -> String {
    load.as_ref().map_or("–".to_owned(), |&t| ratio(secs(t), secs(of)))
}

fn label(opens: usize) -> String {
    if opens == 1 {
        "Document, one replica".to_owned()
    } else {
        format!("Document, {opens} page opens")
    }
}

fn section(
    t: &Trace,
    bare: &Bare,
    variants: &[Variant],
    diamond: &[Encoded],
    automerge: usize,
    wanted: usize,
) -> String {
    let mut out = String::new();
    let changes = variants.first().map_or(0, |v| v.changes);
    let _ = writeln!(
        out,
        "### {} ({} patches = {} changes, final text {} chars)\n",
        t.name,
        t.patches.len(),
        changes,
        t.end.chars().count()
    );
    let _ = writeln!(
        out,
        "| | local apply | ÷ Rga | heap | ÷ Rga | full history | ÷ Rga | save | load | ÷ Rga | version entries | \
         wire bytes per change (mean, largest) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| Rga alone (`ours`) | {} | 1.00 | {} | 1.00 | {} | 1.00 | {} | {} | 1.00 | – | – |",
        timing(bare.local, wanted),
        kb(bare.heap),
        kb(bare.encoded.bytes),
        timing(bare.save, wanted),
        timing(bare.encoded.load, wanted),
    );
    for v in variants {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1}, {} |",
            label(v.opens),
            timing(v.local, wanted),
            ratio(secs(v.local), secs(bare.local)),
            kb(v.heap),
            ratio(v.heap as f64, bare.heap as f64),
            kb(v.snapshot),
            ratio(v.snapshot as f64, bare.encoded.bytes as f64),
            timing(v.save, wanted),
            load_cell(&v.load, wanted),
            load_ratio(&v.load, bare.encoded.load),
            v.version_entries,
            v.wire.mean(),
            v.wire.largest,
        );
    }
    let _ = writeln!(out);
    if let Some((one, opened)) = variants.split_first() {
        let _ = writeln!(out, "Page opens ÷ one replica on {}:\n", t.name);
        let _ = writeln!(out, "| variant | local apply | heap | full history | load | wire bytes per change |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for v in opened {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                label(v.opens),
                ratio(secs(v.local), secs(one.local)),
                ratio(v.heap as f64, one.heap as f64),
                ratio(v.snapshot as f64, one.snapshot as f64),
                one.load.as_ref().map_or("–".to_owned(), |&one| load_ratio(&v.load, one)),
                ratio(v.wire.mean(), one.wire.mean()),
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Full history on {}, side by side (the Document typed by one replica ÷ each):\n", t.name);
        let _ = writeln!(out, "| encoding | size | load | Document ÷ it |");
        let _ = writeln!(out, "|---|---|---|---|");
        let mut row = |name: &str, bytes: usize, load: String| {
            let x = ratio(one.snapshot as f64, bytes as f64);
            let _ = writeln!(out, "| {name} | {} | {load} | {x} |", kb(bytes));
        };
        row("Document, `codec::encode_snapshot`", one.snapshot, load_cell(&one.load, wanted));
        row("Rga alone, bincode (`ours`)", bare.encoded.bytes, timing(bare.encoded.load, wanted));
        for e in diamond {
            row(&format!("diamond-types 1.0, `ENCODE_FULL`, {}", e.label), e.bytes, timing(e.load, wanted));
        }
        row("automerge 0.12, `save()`", automerge, "–".to_owned());
        let _ = writeln!(out);
    }
    out
}

fn summary_row(t: &Trace, bare: &Bare, variants: &[Variant], diamond: &[Encoded]) -> String {
    let [one, fifty, many] = variants else { return String::new() };
    let dt = diamond.first().map_or(0, |e| e.bytes);
    let opened = |v: &Variant| {
        format!(
            "{} ({}), {}",
            kb(v.snapshot),
            ratio(v.snapshot as f64, one.snapshot as f64),
            ratio(secs(v.local), secs(one.local))
        )
    };
    format!(
        "| {} | {} | {} ({}) | {} ({}, {}) | {} ({}) | {} | {} | {} | {:.0} / {:.0} / {:.0} | {} ({}) |\n",
        t.name,
        one.changes,
        ms(one.local.median),
        ratio(secs(one.local), secs(bare.local)),
        kb(one.snapshot),
        ratio(one.snapshot as f64, bare.encoded.bytes as f64),
        ratio(one.snapshot as f64, dt as f64),
        one.load.as_ref().map_or_else(|e| e.clone(), |l| ms(l.median)),
        load_ratio(&one.load, bare.encoded.load),
        opened(fifty),
        opened(many),
        many.version_entries,
        one.wire.mean(),
        fifty.wire.mean(),
        many.wire.mean(),
        kb(one.heap),
        ratio(one.heap as f64, bare.heap as f64),
    )
}

/// The report's opening paragraph.
pub fn header(runs: usize, budget: Duration, fresh_processes: bool) -> String {
    let isolation = if fresh_processes {
        "Each trace is measured in a fresh process."
    } else {
        "All traces were measured in one process (`--in-process`)."
    };
    format!(
        "## Document-level figures (issue 17)\n\n\
         The trace typed into the text field `body` of a `crdt_core::Document`, one change per patch \
         (a patch that deletes and inserts is one `replace_text`), next to the bare `Rga` (`ours`). \
         Median of {runs} runs per measurement (stopping once a measurement's runs add up to {:.0} s), \
         after a warm-up replay; local apply in rounds, the Rga and the three Document variants once \
         per round. Page opens: the patches in 50 (500) consecutive chunks, each typed by a fresh \
         replica (seeded ids). Full history: `codec::encode_snapshot`; load: `codec::decode_snapshot` \
         plus reading the text once. Wire bytes: `ClientMsg::Changes {{ seq, changes: vec![change] }}` \
         encoded on the page open's connection (`encode_on`, after its Hello), per change, `seq` from 1. {isolation} Every result was checked \
         against `endContent`.\n\n",
        budget.as_secs_f64()
    )
}

/// Joins the children's sections (each [`trace_section`]'s output) into the report, with the
/// summary table for BENCHMARKS.md at the end.
pub fn join(header: String, sections: &[String]) -> String {
    let mut out = header;
    let mut rows = String::new();
    for s in sections {
        let (section, row) = s.split_once(ROW_MARK).unwrap_or((s, ""));
        out.push_str(section);
        rows.push_str(row);
    }
    let _ = writeln!(out, "### Summary (for BENCHMARKS.md)\n");
    let _ = writeln!(
        out,
        "Ratios in parentheses are ÷ the bare Rga unless marked; page opens: size (÷ one replica), \
         apply ÷ one replica.\n"
    );
    let _ = writeln!(
        out,
        "| trace | changes | Document local apply (÷ Rga) | full history (÷ Rga, ÷ diamond-types \
         full oplog lz4) | load (÷ Rga) | 50 page opens | 500 page opens | version entries after 500 | wire \
         bytes per change: 1 / 50 / 500 opens | heap (÷ Rga) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    out.push_str(&rows);
    out.push('\n');
    out
}

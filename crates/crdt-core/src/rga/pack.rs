//! The compact byte form of an [`RgaState`](super::snapshot): the texts with long repeats
//! replaced by references and deflated, and the runs as predicted columns.
//!
//! # Layout (format 3; format 2 differs only in its tag and origin codes)
//!
//! ```text
//! byte 0     TAG_V3 (0xEE; format 2: TAG_V2, 0xE6): bits 1-2 set, a reserved block type no
//!            deflate stream starts with, so format 1 (a bare deflate stream) is told apart
//! varint     length of the first stream
//! deflate(   text literals: the bytes of the texts that long repeats did not cover )
//! deflate(   the structure (written as stored blocks, see below; any deflate stream is read):
//!   varint R, then R × varint byte length of replica i's text
//!   varint M, then M × (varint literal count, varint distance, varint length): the texts,
//!            concatenated in replica order, are rebuilt by taking that many literal bytes, then
//!            copying `length` bytes from `distance` bytes back; the literals left come last
//!   varint N runs (document order)
//!   replica  runs of equal values: (varint replica index, varint count) until N are covered
//!   length   N × varint: len << 1 | deleted
//!   counter  N × varint: (offset << 2) | min(pops, 3), then varint pops - 3 if pops >= 3
//!   origins  runs of equal codes: (byte left + 4 × right, varint count) until N are covered;
//!            code 0 predicted, 1 the neighbour, 2 explicit (listed next), 3 predicted across
//!            replicas (format 2: left + 3 × right, codes 0-2)
//!   explicit per run in order, left then right where the code is 2:
//!            varint 0 for none, or replica index + 1, then varint counter
//! )
//! ```
//!
//! # The counter and origin model
//!
//! Runs are written in document order, which is not the order they were typed in. For each
//! replica, the encoder and decoder keep the same stack: that replica's runs seen so far whose
//! counters increase from bottom to top, popping the ones with a larger counter than the run at
//! hand (an "all nearest smaller values" scan). After the pops, the top is the nearest run to
//! the left with a smaller counter, the *base*; a run's counter is written as its distance from
//! the base's end, and the number of pops. A run cut in two by a later insert or a delete
//! continues its base: offset 0.
//!
//! When one replica typed everything, the left origin of a run is exactly the base's last
//! character (the character just before it when it was typed is the nearest older one to its
//! left), and its right origin is the nearest run to the right with a smaller counter (found by
//! the same scan from the right). So origins cost nothing then. When replicas took turns (one
//! person's page opens, each a new replica), the same holds with characters ordered by
//! (replica index, counter) across all replicas: code 3, [`predicted_across`]. Truly concurrent
//! edits fall back to the neighbouring run's boundary, or to an explicit id.
//!
//! # Texts
//!
//! Every character ever inserted is kept, so a text pasted twice or typed, deleted and pasted
//! back is stored twice. Deflate only looks 32 KiB back; a first pass finds repeats of at least
//! [`MIN_MATCH`] bytes anywhere earlier (a rolling hash of 32 bytes) and replaces them by a
//! reference, which more than halves some traces.
//!
//! # Why the structure is stored
//!
//! The columns are varints of small, already predicted numbers: deflate shrinks them by only
//! about a quarter (seph-blog1: 48.6 KB to 37.4 KB), and inflating them took about 15 % of a
//! document's load time. So the packer writes the structure as stored deflate blocks (copied,
//! not decoded, when read back); the reader accepts compressed structure as well (documents
//! saved before this choice still load).
//!
//! # Untrusted input
//!
//! Unpacking is bounded: everything the packed bytes expand to (both inflated streams and the
//! rebuilt texts) is capped relative to their length (a zip bomb is an error, not an
//! allocation), every count is checked against the bytes left before anything is reserved, and
//! all arithmetic on counters is checked. The packer keeps its own output within that cap (it
//! falls back to stored, uncompressed streams for text that compresses beyond it), so whatever
//! it writes unpacks. Format 1 (a single deflated stream of plain columns) is still read.

mod flate;
mod v1;

use self::flate::{deflate, deflate_literals, inflate, inflate_literals};
use super::content::CharBuf;
use super::id::Id;
use super::node::Run;
use super::snapshot::{RgaState, StateRun};
use crate::varint::{put, unzigzag, Reader};

/// First byte of format 2.
const TAG_V2: u8 = 0xE6;
/// First byte of format 3: format 2 with a fourth origin code (see the module docs). Bits 1-2
/// set, like [`TAG_V2`]: no deflate stream starts with it.
const TAG_V3: u8 = 0xEE;
/// The most an unpacked state may expand to, relative to the packed bytes, plus a floor.
const MAX_RATIO: usize = 64;
const MAX_FLOOR: usize = 1 << 20;
/// The shortest repeat the long-range pass replaces by a reference.
const MIN_MATCH: usize = 40;
/// Bytes hashed per position by the long-range pass.
const WINDOW: usize = 32;

fn cap(packed_len: usize) -> usize {
    packed_len.saturating_mul(MAX_RATIO).saturating_add(MAX_FLOOR)
}

pub(super) fn pack(state: &RgaState) -> Vec<u8> {
    let texts: Vec<u8> = state.text.concat().into_bytes();
    let (literals, matches) = long_repeats(&texts);
    let mut structure = Vec::new();
    put(&mut structure, state.text.len() as u64);
    for text in &state.text {
        put(&mut structure, text.len() as u64);
    }
    put(&mut structure, matches.len() as u64);
    for m in &matches {
        put(&mut structure, m.literals as u64);
        put(&mut structure, m.distance as u64);
        put(&mut structure, m.len as u64);
    }
    runs_to_columns(&state.runs, state.text.len(), &mut structure);
    let packed = frame(&literals, &structure, true);
    // What `unpack` counts against its cap: both inflated streams and the rebuilt texts.
    if literals.len() + structure.len() + texts.len() <= cap(packed.len()) {
        return packed;
    }
    // Compresses beyond what `unpack` accepts: store instead (at least as long as the input).
    let mut structure = Vec::new();
    put(&mut structure, state.text.len() as u64);
    for text in &state.text {
        put(&mut structure, text.len() as u64);
    }
    put(&mut structure, 0);
    runs_to_columns(&state.runs, state.text.len(), &mut structure);
    frame(&texts, &structure, false)
}

/// The two streams: the literals deflated (or stored, unless `compress`), the structure stored
/// (see the module docs).
fn frame(literals: &[u8], structure: &[u8], compress: bool) -> Vec<u8> {
    let first = if compress { deflate_literals(literals) } else { deflate(literals, flate2::Compression::none()) };
    let mut out = vec![TAG_V3];
    put(&mut out, first.len() as u64);
    out.extend_from_slice(&first);
    out.extend_from_slice(&deflate(structure, flate2::Compression::none()));
    out
}

/// A repeat found by [`long_repeats`]: after `literals` literal bytes, `len` bytes equal to
/// those `distance` bytes back.
struct Match {
    literals: usize,
    distance: usize,
    len: usize,
}

/// Splits `data` into literal bytes and references to earlier repeats of at least
/// [`MIN_MATCH`] bytes, at any distance.
fn long_repeats(data: &[u8]) -> (Vec<u8>, Vec<Match>) {
    const MUL: u64 = 0x100_0000_01b3;
    let mut matches = Vec::new();
    if data.len() < MIN_MATCH {
        return (data.to_vec(), matches);
    }
    let bits = (usize::BITS - data.len().leading_zeros()).clamp(12, 22);
    let mut table = vec![u32::MAX; 1 << bits];
    let slot = |h: u64| (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize;
    // MUL^WINDOW, to take the byte leaving the window out of the rolling hash.
    let out_factor = (0..WINDOW).fold(1u64, |a, _| a.wrapping_mul(MUL));
    let hash_at =
        |at: usize| data[at..at + WINDOW].iter().fold(0u64, |h, &b| h.wrapping_mul(MUL).wrapping_add(b as u64));
    let mut literals = Vec::with_capacity(data.len());
    let mut lit_start = 0;
    let mut i = 0;
    let mut h = hash_at(0);
    while i + WINDOW <= data.len() {
        let s = slot(h);
        let candidate = table[s];
        table[s] = i as u32;
        if candidate != u32::MAX {
            let src = candidate as usize;
            if data[src..src + WINDOW] == data[i..i + WINDOW] {
                let (mut a, mut b) = (src, i);
                while a > 0 && b > lit_start && data[a - 1] == data[b - 1] {
                    a -= 1;
                    b -= 1;
                }
                let mut len = i + WINDOW - b;
                while b + len < data.len() && data[a + len] == data[b + len] {
                    len += 1;
                }
                if len >= MIN_MATCH {
                    literals.extend_from_slice(&data[lit_start..b]);
                    matches.push(Match { literals: b - lit_start, distance: b - a, len });
                    i = b + len;
                    lit_start = i;
                    if i + WINDOW <= data.len() {
                        h = hash_at(i);
                    }
                    continue;
                }
            }
        }
        if i + WINDOW < data.len() {
            h = h
                .wrapping_mul(MUL)
                .wrapping_sub((data[i] as u64).wrapping_mul(out_factor))
                .wrapping_add(data[i + WINDOW] as u64);
        }
        i += 1;
    }
    literals.extend_from_slice(&data[lit_start..]);
    (literals, matches)
}

/// Per replica, the stack of an "all nearest smaller values" scan (see the module docs):
/// `(counter, end, run index)` of runs seen so far, counters increasing from bottom to top.
type Stacks = Vec<Vec<(u32, u32, u32)>>;

/// The predicted left origin of a run whose base is `base`: the base's last character.
fn predicted_left(replica: u32, base: Option<&(u32, u32, u32)>) -> Option<(u32, u32)> {
    base.map(|&(_, end, _)| (replica, end - 1))
}

fn runs_to_columns(runs: &[StateRun], replicas: usize, out: &mut Vec<u8>) {
    put(out, runs.len() as u64);
    let mut i = 0;
    while i < runs.len() {
        let replica = runs[i].replica;
        let count = runs[i..].iter().take_while(|r| r.replica == replica).count();
        put(out, replica as u64);
        put(out, count as u64);
        i += count;
    }
    for r in runs {
        put(out, (r.len as u64) << 1 | r.deleted as u64);
    }
    let mut stacks: Stacks = vec![Vec::new(); replicas];
    let mut predicted = vec![(None, None); runs.len()];
    for (i, r) in runs.iter().enumerate() {
        let stack = &mut stacks[r.replica as usize];
        let mut pops = 0u64;
        while let Some(&(counter, _, j)) = stack.last() {
            if counter < r.counter {
                break;
            }
            // This run is the nearest one to the right of run j with a smaller counter.
            predicted[j as usize].1 = Some((r.replica, r.counter));
            stack.pop();
            pops += 1;
        }
        let base = stack.last();
        let offset = r.counter - base.map_or(0, |&(_, end, _)| end);
        put(out, (offset as u64) << 2 | pops.min(3));
        if pops >= 3 {
            put(out, pops - 3);
        }
        predicted[i].0 = predicted_left(r.replica, base);
        stack.push((r.counter, r.counter + r.len, i as u32));
    }
    let keys: Vec<(u32, u32, u32)> = runs.iter().map(|r| (r.replica, r.counter, r.len)).collect();
    let across = if replicas > 1 { predicted_across(&keys) } else { vec![(None, None); runs.len()] };
    let codes: Vec<u8> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let left = i.checked_sub(1).map(|p| (runs[p].replica, runs[p].counter + runs[p].len - 1));
            let right = runs.get(i + 1).map(|n| (n.replica, n.counter));
            code(r.origin_left, predicted[i].0, left, across[i].0)
                + 4 * code(r.origin_right, predicted[i].1, right, across[i].1)
        })
        .collect();
    let mut i = 0;
    while i < codes.len() {
        let count = codes[i..].iter().take_while(|c| **c == codes[i]).count();
        out.push(codes[i]);
        put(out, count as u64);
        i += count;
    }
    let explicit = |out: &mut Vec<u8>, origin: Option<(u32, u32)>| match origin {
        None => put(out, 0),
        Some((replica, counter)) => {
            put(out, replica as u64 + 1);
            put(out, counter as u64);
        }
    };
    for (r, c) in runs.iter().zip(&codes) {
        if c % 4 == EXPLICIT {
            explicit(out, r.origin_left);
        }
        if c / 4 == EXPLICIT {
            explicit(out, r.origin_right);
        }
    }
}

/// Origin code: the per-replica prediction.
const PREDICTED: u8 = 0;
/// Origin code: the neighbouring run's boundary.
const NEIGHBOUR: u8 = 1;
/// Origin code: written explicitly after the codes.
const EXPLICIT: u8 = 2;
/// Origin code (format 3): the prediction across replicas, [`predicted_across`].
const ACROSS: u8 = 3;

/// The code of `origin`: the first of the per-replica prediction, the neighbour's boundary and
/// the prediction across replicas that it equals, else explicit.
fn code(
    origin: Option<(u32, u32)>,
    predicted: Option<(u32, u32)>,
    neighbour: Option<(u32, u32)>,
    across: Option<(u32, u32)>,
) -> u8 {
    if origin == predicted {
        PREDICTED
    } else if origin == neighbour {
        NEIGHBOUR
    } else if origin == across {
        ACROSS
    } else {
        EXPLICIT
    }
}

/// The origins predicted across replicas, for runs `(replica, counter, len)` in document order:
/// take the characters to have been typed in the order of `(replica index, counter)` (true when
/// replicas took turns, as page opens of one person do, the replica table listing them in the
/// order they first edited). Then a run's left origin is the last character of the nearest run
/// to its left that starts earlier in that order, and its right origin the first character of
/// the nearest such run to its right: everything between a character and its origins was typed
/// after it. The same "all nearest smaller values" scan as the per-replica predictions, over
/// one stack for all replicas; `None` where no such run exists.
#[allow(clippy::type_complexity)]
fn predicted_across(runs: &[(u32, u32, u32)]) -> Vec<(Option<(u32, u32)>, Option<(u32, u32)>)> {
    let mut out = vec![(None, None); runs.len()];
    let mut stack: Vec<usize> = Vec::new();
    for (i, &(replica, counter, _)) in runs.iter().enumerate() {
        while let Some(&j) = stack.last() {
            let (r, c, _) = runs[j];
            if (r, c) < (replica, counter) {
                break;
            }
            out[j].1 = Some((replica, counter));
            stack.pop();
        }
        if let Some(&j) = stack.last() {
            let (r, c, len) = runs[j];
            out[i].0 = Some((r, c + len - 1));
        }
        stack.push(i);
    }
    out
}

/// The texts (one buffer per replica) and the runs of a packed state.
///
/// Every run is checked against the texts here: its replica is listed, it is not empty, it ends
/// within its replica's text, its origins name inserted characters, and the runs cover each
/// character exactly once.
pub(super) fn unpack(packed: &[u8], replicas: usize) -> Result<(Vec<CharBuf>, Vec<Run>), &'static str> {
    match packed.first() {
        Some(&TAG_V3) => unpack_v2(&packed[1..], replicas, cap(packed.len()), Codes::Four),
        Some(&TAG_V2) => unpack_v2(&packed[1..], replicas, cap(packed.len()), Codes::Three),
        _ => v1::unpack_v1(packed, replicas),
    }
}

/// How a format writes its origin codes: format 2 as `left + 3 × right` with codes 0-2, format 3
/// as `left + 4 × right` with code 3 (the prediction across replicas) added.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Codes {
    Three,
    Four,
}

fn unpack_v2(
    packed: &[u8],
    replicas: usize,
    mut budget: usize,
    codes: Codes,
) -> Result<(Vec<CharBuf>, Vec<Run>), &'static str> {
    let mut rd = Reader { buf: packed, at: 0 };
    let first = rd.count()?;
    let (literal_stream, structure_stream) = packed[rd.at..].split_at(first);
    // The structure first: it says how many literal bytes to expect, so that they inflate
    // straight into the buffer of the texts.
    let structure = inflate(structure_stream, budget)?;
    budget -= structure.len();
    let mut rd = Reader { buf: &structure, at: 0 };
    if rd.count()? != replicas {
        return Err("one text per replica");
    }
    let mut lens = Vec::with_capacity(replicas);
    let mut total = 0usize;
    for _ in 0..replicas {
        let len = usize::try_from(rd.varint()?).map_err(|_| "text too long")?;
        total = total.checked_add(len).filter(|t| *t <= budget).ok_or("texts longer than the data allows")?;
        lens.push(len);
    }
    let bytes = rebuild(&mut rd, literal_stream, total)?;
    let text = if replicas == 1 {
        vec![String::from_utf8(bytes).map_err(|_| "text is not UTF-8")?]
    } else {
        let mut text = Vec::with_capacity(replicas);
        let mut at = 0;
        for len in lens {
            let slice = &bytes[at..at + len];
            at += len;
            text.push(std::str::from_utf8(slice).map_err(|_| "text is not UTF-8")?.to_owned());
        }
        text
    };
    let content = buffers(text)?;
    let chars: Vec<u32> = content.iter().map(CharBuf::chars).collect();
    let runs = columns_to_runs(&mut rd, &chars, codes)?;
    if rd.at != structure.len() {
        return Err("trailing bytes in text state");
    }
    Ok((content, runs))
}

/// One buffer per replica's text.
fn buffers(text: Vec<String>) -> Result<Vec<CharBuf>, &'static str> {
    text.into_iter()
        .map(|text| {
            // A character takes at least a byte, so only a text this long can overflow a counter.
            if text.len() >= u32::MAX as usize && text.chars().count() >= u32::MAX as usize {
                return Err("text too long");
            }
            Ok(CharBuf::from_string(text))
        })
        .collect()
}

/// The concatenated texts, `total` bytes: the literals (inflated from `literal_stream`) with
/// the repeats listed in `rd` put back.
///
/// The literals inflate into the end of the texts' buffer, and the texts are rebuilt from its
/// start: the bytes written never pass the literals still to be read (they trail them by the
/// length of the repeats still to come), so one buffer does.
fn rebuild(rd: &mut Reader, literal_stream: &[u8], total: usize) -> Result<Vec<u8>, &'static str> {
    let matches = rd.count()?;
    // A first pass over the repeats: how many bytes they cover, so how many are literals.
    let list = rd.at;
    let mut repeated = 0usize;
    for _ in 0..matches {
        let (_, _, len) = (rd.usize()?, rd.usize()?, rd.usize()?);
        repeated = repeated.checked_add(len).filter(|r| *r <= total).ok_or("a repeat outside the text")?;
    }
    // The literals inflate after the room for the repeats.
    let mut bytes = Vec::with_capacity(total);
    bytes.resize(repeated, 0);
    inflate_literals(literal_stream, &mut bytes, total)?;
    if matches == 0 {
        return Ok(bytes);
    }
    let mut rd = Reader { buf: rd.buf, at: list };
    // `write`: end of the rebuilt texts; `read`: the next literal byte.
    let (mut write, mut read) = (0usize, repeated);
    for _ in 0..matches {
        let (n, distance, len) = (rd.usize()?, rd.usize()?, rd.usize()?);
        if n > total - read {
            return Err("a repeat outside the text");
        }
        bytes.copy_within(read..read + n, write);
        read += n;
        write += n;
        if distance == 0 || distance > write || len > read - write {
            return Err("a repeat outside the text");
        }
        let from = write - distance;
        if distance >= len {
            bytes.copy_within(from..from + len, write);
        } else {
            // Overlapping: the copy repeats the last `distance` bytes.
            for k in 0..len {
                bytes[write + k] = bytes[from + k];
            }
        }
        write += len;
    }
    // The repeats covered `repeated` bytes, so the literals left are already in place.
    debug_assert_eq!(write, read);
    Ok(bytes)
}

/// The runs, origins included, as [`Run`]s ([`Id::NONE`] for no origin), checked against
/// `chars`, the length of each replica's text (see [`unpack`]).
///
/// Only the counters and the explicit origins need a check: a predicted origin is the end of
/// an earlier run or the start of this one, a neighbour's is the end or start of a run next to
/// it, and those runs are checked.
fn columns_to_runs(rd: &mut Reader, chars: &[u32], codes: Codes) -> Result<Vec<Run>, &'static str> {
    let replicas = chars.len();
    // Every run takes at least two bytes (its counter and its length).
    let n = rd.count()?;
    // (replica, first run, end of its runs) per stretch of the replica column.
    let mut stretches = Vec::new();
    let mut listed = 0;
    while listed < n {
        let replica = rd.u32()?;
        let count = rd.usize()?;
        if replica as usize >= replicas || count == 0 || count > n - listed {
            return Err("bad replica column");
        }
        stretches.push((replica, listed, listed + count));
        listed += count;
    }
    // The runs, made as their lengths are read (counters and origins follow).
    let mut runs: Vec<Run> = Vec::with_capacity(n);
    for &(replica, first, end) in &stretches {
        for _ in first..end {
            let v = rd.varint()?;
            let len = u32::try_from(v >> 1).map_err(|_| "number out of range")?;
            if len == 0 {
                return Err("empty run");
            }
            runs.push(Run {
                id: Id::new(replica, 0),
                len,
                origin_left: Id::NONE,
                origin_right: Id::NONE,
                deleted: v & 1 == 1,
            });
        }
    }
    // The decoder's side of the stacks: `(end, run index)`, the counter is not needed again.
    let mut stacks: Vec<Vec<(u32, u32)>> = vec![Vec::new(); replicas];
    let mut cover = Cover::new(chars);
    for (replica, first, end) in stretches {
        let stack = &mut stacks[replica as usize];
        for i in first..end {
            let v = rd.varint()?;
            let pops = match v & 3 {
                3 => rd.varint()?.checked_add(3).ok_or("counter out of range")?,
                p => p,
            };
            let keep = (stack.len() as u64).checked_sub(pops).ok_or("counter out of range")? as usize;
            let offset = u32::try_from(v >> 2).map_err(|_| "counter out of range")?;
            let run = &mut runs[i];
            let counter = match keep.checked_sub(1) {
                // The origins start as the predictions; the codes below replace the others.
                Some(b) => {
                    let base_end = stack[b].0;
                    run.origin_left = Id::new(replica, base_end - 1);
                    base_end.checked_add(offset).ok_or("counter out of range")?
                }
                None => offset,
            };
            run.id.counter = counter;
            let end = counter.checked_add(run.len).ok_or("counter out of range")?;
            if end > chars[replica as usize] {
                return Err("run past the replica's text");
            }
            cover.add(replica, counter, end)?;
            for &(_, j) in &stack[keep..] {
                runs[j as usize].origin_right = Id::new(replica, counter);
            }
            stack.truncate(keep);
            stack.push((end, i as u32));
        }
    }
    cover.finish()?;
    // Runs of equal codes, then the explicit origins of the runs whose code says so.
    let (base, limit) = match codes {
        Codes::Three => (3, 9),
        Codes::Four => (4, 16),
    };
    let mut groups = Vec::new();
    let mut covered = 0;
    let mut across_needed = false;
    while covered < n {
        let code = rd.bytes(1)?[0];
        let count = rd.usize()?;
        if code >= limit || count == 0 || count > n - covered {
            return Err("bad origin column");
        }
        across_needed |= code % base == ACROSS || code / base == ACROSS;
        groups.push((covered, code, count));
        covered += count;
    }
    let across = if across_needed {
        let keys: Vec<(u32, u32, u32)> = runs.iter().map(|r| (r.id.replica, r.id.counter, r.len)).collect();
        predicted_across(&keys)
    } else {
        Vec::new()
    };
    let id = |origin: Option<(u32, u32)>| origin.map_or(Id::NONE, |(r, c)| Id::new(r, c));
    for (first, code, count) in groups {
        if code == 0 {
            continue;
        }
        for i in first..first + count {
            match code % base {
                0 => {}
                // Counters and lengths were checked above: `last` does not overflow.
                1 => runs[i].origin_left = i.checked_sub(1).map_or(Id::NONE, |p| runs[p].last()),
                ACROSS => runs[i].origin_left = id(across[i].0),
                _ => runs[i].origin_left = rd.origin(chars)?,
            }
            match code / base {
                0 => {}
                1 => runs[i].origin_right = runs.get(i + 1).map_or(Id::NONE, |r| r.id),
                ACROSS => runs[i].origin_right = id(across[i].1),
                _ => runs[i].origin_right = rd.origin(chars)?,
            }
        }
    }
    Ok(runs)
}

const NEVER_INSERTED: &str = "an origin names a character that was never inserted";

/// Checks that runs, each inside its replica's counters `0 .. chars[replica]`, cover every
/// counter exactly once: no two overlap (a bitmap of every character, one bit each), and their
/// lengths add up to all the characters.
struct Cover {
    /// Per replica: its first bit in `seen`.
    base: Vec<usize>,
    seen: Vec<u64>,
    left: u64,
}

const NOT_COVERED: &str = "runs do not cover each inserted character exactly once";

impl Cover {
    fn new(chars: &[u32]) -> Cover {
        let mut base = Vec::with_capacity(chars.len());
        let mut words = 0usize;
        for c in chars {
            base.push(words * 64);
            words += (*c as usize).div_ceil(64);
        }
        Cover { base, seen: vec![0; words], left: chars.iter().map(|c| *c as u64).sum() }
    }

    /// Marks counters `start .. end` (not empty, within the replica's) of `replica` covered.
    #[inline(always)]
    fn add(&mut self, replica: u32, start: u32, end: u32) -> Result<(), &'static str> {
        let base = self.base[replica as usize];
        let (start, end) = (base + start as usize, base + end as usize);
        let (first, last) = (start / 64, (end - 1) / 64);
        let head = !0u64 << (start % 64);
        let tail = !0u64 >> (63 - (end - 1) % 64);
        let seen = &mut self.seen;
        let overlap = if first == last {
            let o = seen[first] & head & tail;
            seen[first] |= head & tail;
            o
        } else {
            let mut o = seen[first] & head | seen[last] & tail;
            seen[first] |= head;
            seen[last] |= tail;
            for w in &mut seen[first + 1..last] {
                o |= *w;
                *w = !0;
            }
            o
        };
        if overlap != 0 {
            return Err(NOT_COVERED);
        }
        self.left -= (end - start) as u64;
        Ok(())
    }

    fn finish(self) -> Result<(), &'static str> {
        if self.left == 0 {
            Ok(())
        } else {
            Err(NOT_COVERED)
        }
    }
}

impl Reader<'_> {
    /// An explicitly written origin: 0 for none, or replica index + 1 and the counter, which
    /// must be one of the `chars[replica]` characters inserted.
    fn origin(&mut self, chars: &[u32]) -> Result<Id, &'static str> {
        match self.varint()? {
            0 => Ok(Id::NONE),
            r if r <= chars.len() as u64 => {
                let replica = r as u32 - 1;
                let counter = self.u32()?;
                if counter >= chars[replica as usize] {
                    return Err(NEVER_INSERTED);
                }
                Ok(Id::new(replica, counter))
            }
            _ => Err("an origin of an unknown replica"),
        }
    }

    fn relative(&mut self, base: u32) -> Result<u32, &'static str> {
        let v = (base as i64).checked_add(unzigzag(self.varint()?)).ok_or("counter out of range")?;
        u32::try_from(v).map_err(|_| "counter out of range")
    }
}

/// `data` deflated at zlib's best level (the compact history's columns).
pub(crate) fn deflate_best(data: &[u8]) -> Vec<u8> {
    deflate(data, flate2::Compression::best())
}

/// Inflates `data`, refusing to produce more than `limit` bytes.
pub(crate) fn inflate_limited(data: &[u8], limit: usize) -> Result<Vec<u8>, &'static str> {
    inflate(data, limit)
}

//! The compact byte form of an [`RgaState`](super::snapshot): the texts with long repeats
//! replaced by references and deflated, and the runs as predicted columns.
//!
//! # Layout (format 4; formats 2 and 3 differ in their tag, the model byte and origin codes)
//!
//! ```text
//! byte 0     TAG_V4 (0xF6; format 3: TAG_V3, 0xEE; format 2: TAG_V2, 0xE6): bits 1-2 set, a
//!            reserved block type no deflate stream starts with, so format 1 (a bare deflate
//!            stream) is told apart
//! varint     length of the first stream
//! deflate(   text literals: the bytes of the texts that long repeats did not cover )
//! deflate(   the structure (written as stored blocks, see below; any deflate stream is read):
//!   varint R, then R × varint byte length of replica i's text
//!   varint M, then M × (varint literal count, varint distance, varint length): the texts,
//!            concatenated in replica order, are rebuilt by taking that many literal bytes, then
//!            copying `length` bytes from `distance` bytes back; the literals left come last
//!   byte     the counter model: 0 per replica, 1 global (formats 2 and 3: no byte, per replica)
//!   varint N runs (document order)
//!   replica  per replica model only: runs of equal values, (varint replica index, varint
//!            count) until N are covered
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
//! person's page opens, each a new replica), the same holds with characters numbered by
//! (replica index, counter) across all replicas. Format 3 wrote such origins as code 3; format 4
//! has a second counter model, *global*, that keeps one stack over that numbering, so that page
//! opens cost what one replica's typing costs, with no replica column at all (the 500-open
//! automerge-paper: 139.5 KB in format 3, 103.1 KB in format 4, one replica 84.0 KB). The
//! packer writes both and keeps the smaller (`columns`). Truly concurrent edits fall back to
//! the neighbouring run's boundary, or to an explicit id.
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

pub(super) mod columns;
mod flate;
mod v1;

use self::flate::{inflate, inflate_literals, stored};
use super::content::CharBuf;
use super::node::Run;
use super::snapshot::{RgaState, StateRun};
use crate::varint::{put, Reader};

/// First byte of format 2.
const TAG_V2: u8 = 0xE6;
/// First byte of format 3: format 2 with a fourth origin code (see the module docs). Bits 1-2
/// set, like [`TAG_V2`]: no deflate stream starts with it.
const TAG_V3: u8 = 0xEE;
/// First byte of format 4: format 3 with a model byte before the runs' columns, which may be
/// the global model (see the module docs). Bits 1-2 set too.
const TAG_V4: u8 = 0xF6;
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
    pack_with(state, None)
}

/// [`pack`] in the counter model `model` (either, when `None`: the smaller).
pub(super) fn pack_with(state: &RgaState, model: Option<u8>) -> Vec<u8> {
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
    let chars: Vec<u32> = state.text.iter().map(|text| text.chars().count() as u32).collect();
    runs_to_columns(&state.runs, &chars, model, &mut structure);
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
    runs_to_columns(&state.runs, &chars, model, &mut structure);
    frame(&texts, &structure, false)
}

/// The two streams: the literals deflated (or stored, unless `compress`), the structure stored
/// (see the module docs).
fn frame(literals: &[u8], structure: &[u8], compress: bool) -> Vec<u8> {
    let first = compress.then(|| flate::deflate_best(literals)).flatten().unwrap_or_else(|| stored(literals));
    let mut out = vec![TAG_V4];
    put(&mut out, first.len() as u64);
    out.extend_from_slice(&first);
    out.extend_from_slice(&stored(structure));
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

/// The runs' columns in whichever counter model writes fewer bytes, after its model byte.
/// `chars` is the number of characters of each replica's text.
fn runs_to_columns(runs: &[StateRun], chars: &[u32], model: Option<u8>, out: &mut Vec<u8>) {
    let global = || {
        let mut global = vec![columns::GLOBAL];
        columns::global(runs, chars, &mut global);
        global
    };
    let per_replica = || {
        let mut per_replica = vec![columns::PER_REPLICA];
        columns::per_replica(runs, chars.len(), &mut per_replica);
        per_replica
    };
    let columns = match model {
        Some(columns::GLOBAL) => global(),
        Some(_) => per_replica(),
        // One replica: the models differ only by the replica column, which the global lacks.
        None if chars.len() <= 1 => global(),
        None => {
            let (global, per_replica) = (global(), per_replica());
            if per_replica.len() < global.len() {
                per_replica
            } else {
                global
            }
        }
    };
    out.extend_from_slice(&columns);
}

/// The texts (one buffer per replica) and the runs of a packed state.
///
/// Every run is checked against the texts here: its replica is listed, it is not empty, it ends
/// within its replica's text, its origins name inserted characters, and the runs cover each
/// character exactly once.
pub(super) fn unpack(packed: &[u8], replicas: usize) -> Result<(Vec<CharBuf>, Vec<Run>), &'static str> {
    match packed.first() {
        Some(&TAG_V4) => unpack_v2(&packed[1..], replicas, cap(packed.len()), Codes::Model),
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
    /// Format 4: a model byte, then the columns of that model with format 3's codes.
    Model,
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
    let runs = match codes {
        Codes::Model => match rd.bytes(1)?[0] {
            columns::PER_REPLICA => columns::read_per_replica(&mut rd, &chars, Codes::Four)?,
            columns::GLOBAL => columns::read_global(&mut rd, &chars)?,
            _ => return Err("unknown counter model"),
        },
        codes => columns::read_per_replica(&mut rd, &chars, codes)?,
    };
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

/// `data` deflated at the best level (the compact history's columns); `None` where this build
/// writes stored streams (`flate.rs`).
pub(crate) fn deflate_best(data: &[u8]) -> Option<Vec<u8>> {
    flate::deflate_best(data)
}

pub(crate) use self::flate::as_the_browser_writes;

/// Inflates `data`, refusing to produce more than `limit` bytes.
pub(crate) fn inflate_limited(data: &[u8], limit: usize) -> Result<Vec<u8>, &'static str> {
    inflate(data, limit)
}

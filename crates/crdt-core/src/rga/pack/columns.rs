//! The runs of a packed state as columns, in one of two counter models (see the module docs of
//! `pack`): *per replica* (a replica column, then one stack per replica) or *global* (format 4:
//! no replica column; every character numbered by `(replica index, counter)` in one sequence,
//! and one stack over that numbering).
//!
//! The global model is what one person's page opens look like: each open is a new replica that
//! continues where the last one stopped, so the numbering is the typing order and a run costs
//! what it costs when one replica typed everything. Truly concurrent edits interleave in time,
//! which the per-replica model follows better; the packer writes whichever is smaller.

use super::Codes;
use crate::rga::id::Id;
use crate::rga::node::Run;
use crate::rga::snapshot::StateRun;
use crate::varint::{put, unzigzag, Reader};

/// Model byte of format 4: a replica column and one stack per replica.
pub(in crate::rga) const PER_REPLICA: u8 = 0;
/// Model byte of format 4: one stack over all characters numbered in replica order.
pub(in crate::rga) const GLOBAL: u8 = 1;

/// An origin as `(replica index, counter)`.
type Origin = Option<(u32, u32)>;

/// The columns of `runs` in the per-replica model, after its model byte.
pub(super) fn per_replica(runs: &[StateRun], replicas: usize, out: &mut Vec<u8>) {
    put(out, runs.len() as u64);
    let mut i = 0;
    while i < runs.len() {
        let replica = runs[i].replica;
        let count = runs[i..].iter().take_while(|r| r.replica == replica).count();
        put(out, replica as u64);
        put(out, count as u64);
        i += count;
    }
    lengths(runs, out);
    // Per replica, the stack of an "all nearest smaller values" scan: `(counter, end, run
    // index)` of runs seen so far, counters increasing from bottom to top.
    let mut stacks: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); replicas];
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
        put_counter(out, offset as u64, pops);
        predicted[i].0 = base.map(|&(_, end, _)| (r.replica, end - 1));
        stack.push((r.counter, r.counter + r.len, i as u32));
    }
    // Computed with one replica too: `code` must not take "no origin" for the across code
    // where the reader's prediction across is an origin.
    let keys: Vec<(u32, u32, u32)> = runs.iter().map(|r| (r.replica, r.counter, r.len)).collect();
    origins(runs, &predicted, &predicted_across(&keys), out);
}

/// The columns of `runs` in the global model, after its model byte; `chars` is the number of
/// characters of each replica.
pub(super) fn global(runs: &[StateRun], chars: &[u32], out: &mut Vec<u8>) {
    let starts = starts(chars);
    let number = |r: &StateRun| starts[r.replica as usize] + r.counter as u64;
    let locate = |n: u64| locate(&starts, n);
    put(out, runs.len() as u64);
    lengths(runs, out);
    // One stack: `(number, end, run index)`.
    let mut stack: Vec<(u64, u64, u32)> = Vec::new();
    let mut predicted = vec![(None, None); runs.len()];
    for (i, r) in runs.iter().enumerate() {
        let n = number(r);
        let mut pops = 0u64;
        while let Some(&(m, _, j)) = stack.last() {
            if m < n {
                break;
            }
            predicted[j as usize].1 = Some((r.replica, r.counter));
            stack.pop();
            pops += 1;
        }
        let base = stack.last();
        put_counter(out, n - base.map_or(0, |&(_, end, _)| end), pops);
        predicted[i].0 = base.map(|&(_, end, _)| locate(end - 1));
        stack.push((n, n + r.len as u64, i as u32));
    }
    // The prediction across replicas is this model's own: the across code is never needed.
    origins(runs, &predicted, &predicted, out);
}

/// `(replica index, counter)` of character number `n` (below the total of `starts`' replicas).
fn locate(starts: &[u64], n: u64) -> (u32, u32) {
    let replica = starts.partition_point(|&s| s <= n) - 1;
    (replica as u32, (n - starts[replica]) as u32)
}

/// The number of each replica's first character: the characters of the replicas before it.
fn starts(chars: &[u32]) -> Vec<u64> {
    let mut total = 0u64;
    chars
        .iter()
        .map(|&c| {
            let start = total;
            total += c as u64;
            start
        })
        .collect()
}

fn lengths(runs: &[StateRun], out: &mut Vec<u8>) {
    for r in runs {
        put(out, (r.len as u64) << 1 | r.deleted as u64);
    }
}

fn put_counter(out: &mut Vec<u8>, offset: u64, pops: u64) {
    put(out, offset << 2 | pops.min(3));
    if pops >= 3 {
        put(out, pops - 3);
    }
}

/// The origin codes (runs of equal codes), then the origins written explicitly.
fn origins(runs: &[StateRun], predicted: &[(Origin, Origin)], across: &[(Origin, Origin)], out: &mut Vec<u8>) {
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
    let explicit = |out: &mut Vec<u8>, origin: Origin| match origin {
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

/// Origin code: the model's prediction.
const PREDICTED: u8 = 0;
/// Origin code: the neighbouring run's boundary.
const NEIGHBOUR: u8 = 1;
/// Origin code: written explicitly after the codes.
const EXPLICIT: u8 = 2;
/// Origin code (format 3): the prediction across replicas, [`predicted_across`].
const ACROSS: u8 = 3;

/// The code of `origin`: the first of the model's prediction, the neighbour's boundary and the
/// prediction across replicas that it equals, else explicit.
fn code(origin: Origin, predicted: Origin, neighbour: Origin, across: Origin) -> u8 {
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
/// one stack for all replicas; `None` where no such run exists. (The global model predicts
/// exactly these; format 3 wrote them as a code of their own.)
fn predicted_across(runs: &[(u32, u32, u32)]) -> Vec<(Origin, Origin)> {
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

/// Reads the counter column's entry: the offset from the base and the number of pops.
fn read_counter(rd: &mut Reader) -> Result<(u64, u64), &'static str> {
    let v = rd.varint()?;
    let pops = match v & 3 {
        3 => rd.varint()?.checked_add(3).ok_or("counter out of range")?,
        p => p,
    };
    Ok((v >> 2, pops))
}

/// Reads the length column: `n` runs without ids or origins yet.
fn read_lengths(rd: &mut Reader, n: usize, replica_of: impl Fn(usize) -> u32) -> Result<Vec<Run>, &'static str> {
    let mut runs: Vec<Run> = Vec::with_capacity(n);
    for i in 0..n {
        let v = rd.varint()?;
        let len = u32::try_from(v >> 1).map_err(|_| "number out of range")?;
        if len == 0 {
            return Err("empty run");
        }
        runs.push(Run {
            id: Id::new(replica_of(i), 0),
            len,
            origin_left: Id::NONE,
            origin_right: Id::NONE,
            deleted: v & 1 == 1,
        });
    }
    Ok(runs)
}

/// The runs, origins included, as [`Run`]s ([`Id::NONE`] for no origin), checked against
/// `chars`, the length of each replica's text (see `unpack`): the per-replica model.
///
/// Only the counters and the explicit origins need a check: a predicted origin is the end of
/// an earlier run or the start of this one, a neighbour's is the end or start of a run next to
/// it, and those runs are checked.
pub(super) fn read_per_replica(rd: &mut Reader, chars: &[u32], codes: Codes) -> Result<Vec<Run>, &'static str> {
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
    let replica_of = |i: usize| stretches[stretches.partition_point(|&(_, _, end)| end <= i)].0;
    let mut runs = read_lengths(rd, n, replica_of)?;
    // The decoder's side of the stacks: `(end, run index)`, the counter is not needed again.
    let mut stacks: Vec<Vec<(u32, u32)>> = vec![Vec::new(); replicas];
    let mut cover = Cover::new(chars);
    for (replica, first, end) in stretches {
        let stack = &mut stacks[replica as usize];
        for i in first..end {
            let (offset, pops) = read_counter(rd)?;
            let keep = (stack.len() as u64).checked_sub(pops).ok_or("counter out of range")? as usize;
            let offset = u32::try_from(offset).map_err(|_| "counter out of range")?;
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
    read_origins(rd, &mut runs, chars, codes)?;
    Ok(runs)
}

/// [`read_per_replica`] for the global model.
pub(super) fn read_global(rd: &mut Reader, chars: &[u32]) -> Result<Vec<Run>, &'static str> {
    let n = rd.count()?;
    let mut runs = read_lengths(rd, n, |_| 0)?;
    let starts = starts(chars);
    let total = chars.iter().map(|&c| c as u64).sum::<u64>();
    // `(end, run index)` per run on the stack.
    let mut stack: Vec<(u64, u32)> = Vec::new();
    let mut cover = Cover::new(chars);
    for i in 0..n {
        let (offset, pops) = read_counter(rd)?;
        let keep = (stack.len() as u64).checked_sub(pops).ok_or("counter out of range")? as usize;
        let base_end = keep.checked_sub(1).map_or(0, |b| stack[b].0);
        let number = base_end.checked_add(offset).filter(|&n| n < total).ok_or("counter out of range")?;
        let (replica, counter) = locate(&starts, number);
        let run = &mut runs[i];
        let end = counter.checked_add(run.len).ok_or("counter out of range")?;
        if end > chars[replica as usize] {
            return Err("run past the replica's text");
        }
        run.id = Id::new(replica, counter);
        if keep > 0 {
            let (r, c) = locate(&starts, base_end - 1);
            run.origin_left = Id::new(r, c);
        }
        cover.add(replica, counter, end)?;
        for &(_, j) in &stack[keep..] {
            runs[j as usize].origin_right = Id::new(replica, counter);
        }
        stack.truncate(keep);
        stack.push((number + runs[i].len as u64, i as u32));
    }
    cover.finish()?;
    read_origins(rd, &mut runs, chars, Codes::Four)?;
    Ok(runs)
}

/// Runs of equal codes, then the explicit origins of the runs whose code says so; the origins
/// the codes do not replace stay the model's predictions.
fn read_origins(rd: &mut Reader, runs: &mut [Run], chars: &[u32], codes: Codes) -> Result<(), &'static str> {
    let n = runs.len();
    let (base, limit) = match codes {
        Codes::Three => (3, 9),
        Codes::Four | Codes::Model => (4, 16),
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
    let id = |origin: Origin| origin.map_or(Id::NONE, |(r, c)| Id::new(r, c));
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
    Ok(())
}

pub(super) const NEVER_INSERTED: &str = "an origin names a character that was never inserted";

/// Checks that runs, each inside its replica's counters `0 .. chars[replica]`, cover every
/// counter exactly once: no two overlap (a bitmap of every character, one bit each), and their
/// lengths add up to all the characters.
pub(super) struct Cover {
    /// Per replica: its first bit in `seen`.
    base: Vec<usize>,
    seen: Vec<u64>,
    left: u64,
}

const NOT_COVERED: &str = "runs do not cover each inserted character exactly once";

impl Cover {
    pub(super) fn new(chars: &[u32]) -> Cover {
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
    pub(super) fn add(&mut self, replica: u32, start: u32, end: u32) -> Result<(), &'static str> {
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

    pub(super) fn finish(self) -> Result<(), &'static str> {
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
    pub(super) fn origin(&mut self, chars: &[u32]) -> Result<Id, &'static str> {
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

    pub(super) fn relative(&mut self, base: u32) -> Result<u32, &'static str> {
        let v = (base as i64).checked_add(unzigzag(self.varint()?)).ok_or("counter out of range")?;
        u32::try_from(v).map_err(|_| "counter out of range")
    }
}

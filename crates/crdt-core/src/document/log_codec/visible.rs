//! Which characters of the texts were visible at a point of the log, so that a delete of a
//! selection is written as where it starts (or nothing, when the insert that replaced it
//! follows) and how many characters it took: its id ranges are read back from the text.
//!
//! A character was visible at a point of the log when its replica had inserted it by then
//! (its counter is below the replica's next insert counter in that text, which the log
//! walk tracks) and no earlier delete of the log had removed it (a bit per counter, set by
//! every delete as it is walked). The encoder writes the short form only when reading the
//! ranges back gives exactly the change's ranges, so the rule needs no other guarantee.
//!
//! The work is bounded by the data: setting bits spends a budget proportional to the texts'
//! characters (once spent, tracking stops and no delete is read back, on both sides alike),
//! and reading `n` characters back takes no more than `4n + 256` steps (a run, a stretch of
//! visible or deleted characters);
//! each read-back delete takes characters that were visible and marks them, so the `n`s of
//! a log add up to at most the texts' characters.

use std::collections::HashMap;

use super::Table;
use crate::{OpId, ReplicaId, Rga};

/// A text delete's ranges: (replica index, first counter, length).
pub(super) type Ranges = Vec<(u32, u32, u32)>;

pub(super) struct Visible<'f> {
    /// Per (replica, text): bit `k` set once a delete of the log removed counter `k`.
    deleted: Table<Vec<u64>>,
    /// Bits still to be set before tracking stops.
    budget: u64,
    texts: Vec<Option<&'f Rga>>,
    replicas: &'f [ReplicaId],
    /// Per text: the text's replica index → the log's, built on first use.
    maps: Vec<Option<Vec<Option<u32>>>>,
}

impl<'f> Visible<'f> {
    pub fn new(replicas: &'f [ReplicaId], texts: Vec<Option<&'f Rga>>) -> Visible<'f> {
        let chars: u64 = texts.iter().flatten().map(|rga| rga.version().iter().map(|(_, n)| n).sum::<u64>()).sum();
        Visible {
            deleted: Table::new(replicas.len(), texts.len()),
            budget: chars.saturating_mul(8).saturating_add(1 << 20),
            maps: vec![None; texts.len()],
            texts,
            replicas,
        }
    }

    /// Records that a delete removed `len` counters of `target` from `start` (inside the
    /// text: the caller checked).
    pub fn mark(&mut self, target: u32, text: u32, start: u32, len: u32) {
        if self.budget < len as u64 {
            self.budget = 0;
            return;
        }
        self.budget -= len as u64;
        let bits = self.deleted.get_mut(target, text);
        let end = start as usize + len as usize;
        if bits.len() * 64 < end {
            bits.resize(end.div_ceil(64), 0);
        }
        let mut k = start as usize;
        while k < end {
            let word = k / 64;
            let from = k % 64;
            let to = (end - word * 64).min(64);
            let mask = if to - from == 64 { u64::MAX } else { ((1u64 << (to - from)) - 1) << from };
            bits[word] |= mask;
            k = word * 64 + to;
        }
    }

    /// Records a delete span's changes: `count` deletes of `len` counters from `start`,
    /// `stride` apart.
    pub fn mark_span(&mut self, target: u32, text: u32, start: u32, len: u32, count: u32, stride: i64) {
        let last = start as i64 + (count as i64 - 1) * stride;
        if stride.unsigned_abs() <= len as u64 {
            // The ranges touch or overlap: one stretch.
            let low = start.min(last as u32);
            let high = start.max(last as u32) + len;
            self.mark(target, text, low, high - low);
        } else {
            for k in 0..count as i64 {
                self.mark(target, text, (start as i64 + k * stride) as u32, len);
            }
        }
    }

    /// The ranges of the `n` characters of text `text` that were visible at this point of the
    /// log from `from` on, in document order; `None` if there are not that many (within the
    /// bound) or one of them is of a replica the log does not name.
    pub fn read_back(&mut self, next: &Table<u32>, text: u32, from: OpId, n: u32) -> Option<Ranges> {
        if self.budget == 0 || n == 0 {
            return None;
        }
        let rga = (*self.texts.get(text as usize)?)?;
        if self.maps[text as usize].is_none() {
            let index: HashMap<ReplicaId, u32> =
                self.replicas.iter().enumerate().map(|(i, r)| (*r, i as u32)).collect();
            self.maps[text as usize] = Some(rga.replica_table().map(|r| index.get(&r).copied()).collect());
        }
        let map = self.maps[text as usize].as_deref()?;
        let mut steps = 4 * n as u64 + 256;
        let mut left = n;
        let mut out: Ranges = Vec::new();
        for (replica, counter, len) in rga.runs_from(from)? {
            steps = steps.checked_sub(1)?;
            let Some(g) = map.get(replica as usize).copied().flatten() else {
                // Characters of a replica the log does not name were inserted before its
                // base: visible or not, the log could not say which.
                return None;
            };
            // Counters from the replica's next insert on were not inserted yet.
            let end = counter.saturating_add(len).min(*next.get(g, text));
            let bits = self.deleted.get(g, text);
            let mut c = counter;
            while c < end {
                steps = steps.checked_sub(1)?;
                let from = next_bit(bits, c, end, false);
                let to = next_bit(bits, from, end, true).min(from.saturating_add(left));
                // Each 64 counters scanned is a step too.
                steps = steps.checked_sub(((to - c) / 64) as u64)?;
                if from == to {
                    break;
                }
                match out.last_mut() {
                    Some((r, s, l)) if *r == g && *s + *l == from => *l += to - from,
                    _ => out.push((g, from, to - from)),
                }
                left -= to - from;
                if left == 0 {
                    return Some(out);
                }
                c = to;
            }
        }
        None
    }
}

/// The first counter from `from` on (at most `end`) whose bit is `set`; counters past the
/// bits are clear.
fn next_bit(bits: &[u64], from: u32, end: u32, set: bool) -> u32 {
    let mut k = from as u64;
    while k < end as u64 {
        let Some(&word) = bits.get(k as usize / 64) else {
            return if set { end } else { k as u32 };
        };
        let word = if set { word } else { !word } >> (k % 64);
        if word != 0 {
            return (k + word.trailing_zeros() as u64).min(end as u64) as u32;
        }
        k = (k / 64 + 1) * 64;
    }
    end
}

/// The id of `counter` of the log's replica `replica`.
pub(super) fn at(replicas: &[ReplicaId], replica: u32, counter: u32) -> OpId {
    OpId::new(replicas[replica as usize], counter as u64)
}

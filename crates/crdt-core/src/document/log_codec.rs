//! A [`History`] as bytes: the compact log inside a snapshot (format 2).
//!
//! ```text
//! varint R, then R × 16 bytes      the replica table (UUIDs), indexed from 0
//! varint T, then T × (varint n, n bytes of UTF-8)   text field names, indexed from 0
//! varint S                         spans
//! byte   0 = columns as they are, 1 = deflated
//! varint C                         the columns' length (inflated)
//! bytes                            the columns: 10 × (varint length, bytes), in this order:
//!   head     S bytes: kind (bits 0-1: 0 insert, 1 delete, 2 ops, 3 delete near the last
//!            delete) | 4 has deps | 8 replica
//!            switches | 16 len is 1 | 32 offset is 0 | 64 delete of the span's own replica |
//!            128 delete stride is -len
//!   count    varint count - 1, for insert and delete spans (an ops span is one change)
//!   replica  varint replica index, when the head says it switches (it starts at 0)
//!   text     varint text index of insert and delete spans, only when T > 1
//!   len      varint characters per change, unless 1
//!   offset   zigzag: insert counter - the replica's next counter in that text; delete start -
//!            (the target's next counter in that text - len), or for kind 3 - the start of the
//!            last change's range of the last delete of the target in that text; unless 0
//!   target   varint replica index of a delete's characters, unless the span's own
//!   stride   zigzag delete stride, for delete spans of 2 changes or more, unless -len
//!   deps     for spans with deps: varint n, n × (varint replica index, varint how far the
//!            dependency is below that replica's version at that point of the log)
//!   ops      for ops spans: varint n, then n operations, each a varint tag and its fields
//!            ([text] is a varint text index, only when T > 1):
//!            0 [text] zigzag offset, varint len: an insert, its offset as an insert span's
//!            1 varint b, b bytes: any other operation, its bincode FieldOp
//!            2 [text] varint m, m × (varint target, zigzag offset, varint len): a text delete
//!              by its ranges, the first range's offset as a kind 1 delete span's, the others'
//!              from the end of the range before
//!            3 [text] varint target, zigzag offset, varint k: a text delete of the k
//!              characters visible at that point of the log from (target, start) on, in
//!              document order, the first of them (target, start); the offset is start -
//!              (the target's next counter in that text - k)
//!            4 [text] varint k: a text delete of the k characters visible at that point of
//!              the log from the first character of the insert that follows it (typing over a
//!              selection): the next operation is a 0 of the same text, and counts among the n
//! ```
//!
//! A character is *visible at a point of the log* when its replica had inserted it by then
//! and no delete before it in the log removed it (`log_codec/visible.rs`). The encoder writes
//! a delete as 4, else 3, only when reading its ranges back from the text gives exactly them;
//! reading back is bounded (see there), so a delete beyond the bound is written as 2.
//!
//! A span's seq is never written: it is one more than its replica's version at that point
//! (the base, then each span of the replica). Nothing an insert holds is written beyond where
//! it is: its text and origins are the text field's.
//!
//! Decoding checks everything a history promises ([`History`]'s invariants): every number in
//! range, dependencies sorted and already seen, every insert and delete inside the characters
//! its text field holds. Counts are bounded by the bytes left, and the columns inflate to at
//! most their declared length, itself bounded by the input length.

use std::collections::HashMap;

use super::change::{op_author, validate_deps, ChangeId, MAX_SEQ};
use super::field::FieldOp;
use super::history::{text_of, Body, Fields, History, LogOp, Span};
use crate::codec;
use crate::rga::pack::{deflate_best, inflate_limited};
use crate::varint::{put, unzigzag, zigzag, Reader};
use crate::{FieldName, OpId, ReplicaId, VersionVector};
use visible::Visible;

mod visible;

const INSERT: u8 = 0;
const DELETE: u8 = 1;
const OPS: u8 = 2;
const DELETE_NEAR: u8 = 3;
const HAS_DEPS: u8 = 4;
const SWITCH: u8 = 8;
const LEN_ONE: u8 = 16;
const OFFSET_ZERO: u8 = 32;
const OWN_TARGET: u8 = 64;
const STRIDE_BACK: u8 = 128;

/// Tags of the operations of an ops span.
const OP_INSERT: u64 = 0;
const OP_OTHER: u64 = 1;
const DELETE_RANGES: u64 = 2;
const DELETE_FROM: u64 = 3;
const DELETE_REPLACED: u64 = 4;

/// The most a deflate stream inflates per input byte (its format's limit is about 1032).
const MAX_RATIO: usize = 1040;

#[derive(Default)]
struct Columns {
    head: Vec<u8>,
    count: Vec<u8>,
    replica: Vec<u8>,
    text: Vec<u8>,
    len: Vec<u8>,
    offset: Vec<u8>,
    target: Vec<u8>,
    stride: Vec<u8>,
    deps: Vec<u8>,
    ops: Vec<u8>,
}

/// What both directions track while walking the log: the next insert counter of each
/// (replica, text) and each replica's version.
struct Walk {
    next: Table<u32>,
    /// Per (target, text): the start of the last range the last delete removed.
    deleted: Table<Option<u32>>,
    version: Vec<u64>,
    replica: u32,
}

impl Walk {
    fn new(base: &VersionVector, replicas: &[ReplicaId], texts: usize) -> Walk {
        Walk {
            next: Table::new(replicas.len(), texts),
            deleted: Table::new(replicas.len(), texts),
            version: replicas.iter().map(|r| base.get(*r)).collect(),
            replica: 0,
        }
    }

    fn next_insert(&self, replica: u32, text: u32) -> u32 {
        *self.next.get(replica, text)
    }

    fn expected_delete(&self, target: u32, text: u32, len: u32) -> u32 {
        self.next_insert(target, text).saturating_sub(len)
    }
}

/// The most (replica, text) pairs a [`Table`] keeps in a flat vector.
const FLAT_MAX: usize = 1 << 16;

/// A value per (replica, text) of the log. A vector indexed by `replica * texts + text` while
/// that is small, as it is in every real document (a map cost a sixth of a load); a map
/// beyond, so that a hostile table of names cannot make us allocate the product.
enum Table<V> {
    Flat { texts: usize, values: Vec<V>, default: V },
    Map { values: HashMap<(u32, u32), V>, default: V },
}

impl<V: Clone + Default> Table<V> {
    fn new(replicas: usize, texts: usize) -> Table<V> {
        match replicas.checked_mul(texts) {
            Some(n) if n <= FLAT_MAX => Table::Flat { texts, values: vec![V::default(); n], default: V::default() },
            _ => Table::Map { values: HashMap::new(), default: V::default() },
        }
    }

    /// The value of `(replica, text)`, the default if it was never set (or is out of range).
    fn get(&self, replica: u32, text: u32) -> &V {
        match self {
            Table::Flat { texts, values, default } => {
                values.get(replica as usize * texts + text as usize).unwrap_or(default)
            }
            Table::Map { values, default } => values.get(&(replica, text)).unwrap_or(default),
        }
    }

    /// The value of `(replica, text)`, both in range (the callers checked them).
    fn get_mut(&mut self, replica: u32, text: u32) -> &mut V {
        match self {
            Table::Flat { texts, values, .. } => &mut values[replica as usize * *texts + text as usize],
            Table::Map { values, .. } => values.entry((replica, text)).or_default(),
        }
    }
}

/// Appends `history`'s log (not its base) to `out`.
pub(crate) fn encode(history: &History, fields: &Fields, out: &mut Vec<u8>) {
    put(out, history.replicas.len() as u64);
    for replica in &history.replicas {
        out.extend_from_slice(replica.uuid().as_bytes());
    }
    put(out, history.texts.len() as u64);
    for text in &history.texts {
        put(out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
    }
    put(out, history.spans.len() as u64);
    let columns = columns(history, fields);
    if let Some(deflated) = deflate_best(&columns).filter(|deflated| deflated.len() < columns.len()) {
        out.push(1);
        put(out, columns.len() as u64);
        out.extend_from_slice(&deflated);
    } else {
        out.push(0);
        put(out, columns.len() as u64);
        out.extend_from_slice(&columns);
    }
}

fn columns(history: &History, fields: &Fields) -> Vec<u8> {
    let mut c = Columns::default();
    let mut walk = Walk::new(&history.base, &history.replicas, history.texts.len());
    let texts = history.texts.iter().map(|name| text_of(fields, name)).collect();
    let mut visible = Visible::new(&history.replicas, texts);
    let many_texts = history.texts.len() > 1;
    for span in &history.spans {
        let mut head = 0;
        if !span.deps.is_empty() {
            head |= HAS_DEPS;
            put(&mut c.deps, span.deps.len() as u64);
            for (replica, seq) in span.deps.iter() {
                put(&mut c.deps, *replica as u64);
                put(&mut c.deps, walk.version[*replica as usize] - seq);
            }
        }
        if span.replica != walk.replica {
            head |= SWITCH;
            put(&mut c.replica, span.replica as u64);
            walk.replica = span.replica;
        }
        match &span.body {
            Body::Insert { text, counter, len } => {
                head |= INSERT;
                put(&mut c.count, span.count as u64 - 1);
                if many_texts {
                    put(&mut c.text, *text as u64);
                }
                let offset = *counter as i64 - walk.next_insert(span.replica, *text) as i64;
                head |= len_and_offset(&mut c, *len, offset);
                let end = *counter as u64 + span.count as u64 * *len as u64;
                *walk.next.get_mut(span.replica, *text) = end as u32;
            }
            Body::Delete { text, target, start, len, stride } => {
                put(&mut c.count, span.count as u64 - 1);
                if many_texts {
                    put(&mut c.text, *text as u64);
                }
                let offset = *start as i64 - walk.expected_delete(*target, *text, *len) as i64;
                let near = walk.deleted.get(*target, *text).map(|d| *start as i64 - d as i64);
                let offset = match near {
                    Some(near) if near.abs() < offset.abs() => {
                        head |= DELETE_NEAR;
                        near
                    }
                    _ => {
                        head |= DELETE;
                        offset
                    }
                };
                head |= len_and_offset(&mut c, *len, offset);
                let last = *start as i64 + (span.count as i64 - 1) * *stride;
                *walk.deleted.get_mut(*target, *text) = Some(last as u32);
                visible.mark_span(*target, *text, *start, *len, span.count, *stride);
                if *target == span.replica {
                    head |= OWN_TARGET;
                } else {
                    put(&mut c.target, *target as u64);
                }
                if span.count > 1 {
                    if *stride == -(*len as i64) {
                        head |= STRIDE_BACK;
                    } else {
                        put(&mut c.stride, zigzag(*stride));
                    }
                }
            }
            Body::Ops(ops) => {
                head |= OPS;
                put(&mut c.ops, ops.len() as u64);
                for (i, op) in ops.iter().enumerate() {
                    match op {
                        LogOp::Insert { text, counter, len } => {
                            put(&mut c.ops, OP_INSERT);
                            if many_texts {
                                put(&mut c.ops, *text as u64);
                            }
                            let offset = *counter as i64 - walk.next_insert(span.replica, *text) as i64;
                            put(&mut c.ops, zigzag(offset));
                            put(&mut c.ops, *len as u64);
                            *walk.next.get_mut(span.replica, *text) = counter + len;
                        }
                        LogOp::Delete { text, ranges } => {
                            let replaced = match ops.get(i + 1) {
                                Some(LogOp::Insert { text: t, counter, .. }) if t == text => Some(*counter),
                                _ => None,
                            };
                            let many = many_texts.then_some(*text);
                            let place = (span.replica, *text, replaced);
                            encode_text_delete(&mut c.ops, &walk, &mut visible, &history.replicas, place, many, ranges);
                            for (target, start, len) in ranges.iter() {
                                visible.mark(*target, *text, *start, *len);
                            }
                        }
                        LogOp::Other(field_op) => {
                            put(&mut c.ops, OP_OTHER);
                            let mut bytes = Vec::new();
                            codec::encode_value(field_op, &mut bytes);
                            put(&mut c.ops, bytes.len() as u64);
                            c.ops.extend_from_slice(&bytes);
                        }
                    }
                }
            }
        }
        walk.version[span.replica as usize] = span.seq + span.count as u64 - 1;
        c.head.push(head);
    }
    let mut out = Vec::new();
    for column in [&c.head, &c.count, &c.replica, &c.text, &c.len, &c.offset, &c.target, &c.stride, &c.deps, &c.ops] {
        put(&mut out, column.len() as u64);
        out.extend_from_slice(column);
    }
    out
}

/// Writes a text delete of an ops change by `author` into the ops column: as a count of the
/// characters after the insert that follows it (`replaced`, that insert's counter) or after
/// its first character when reading them back gives its ranges, else as its ranges.
fn encode_text_delete(
    out: &mut Vec<u8>,
    walk: &Walk,
    visible: &mut Visible<'_>,
    replicas: &[ReplicaId],
    (author, text, replaced): (u32, u32, Option<u32>),
    many: Option<u32>,
    ranges: &[(u32, u32, u32)],
) {
    let n = ranges.iter().try_fold(0u32, |n, (_, _, len)| n.checked_add(*len));
    let read_back = |visible: &mut Visible<'_>, from: OpId, n: u32| {
        visible.read_back(&walk.next, text, from, n).is_some_and(|r| r == ranges)
    };
    let tag = |out: &mut Vec<u8>, tag: u64| {
        put(out, tag);
        if let Some(text) = many {
            put(out, text as u64);
        }
    };
    if let (Some(n), Some(&(target, start, _))) = (n, ranges.first()) {
        if replaced.is_some_and(|counter| read_back(visible, visible::at(replicas, author, counter), n)) {
            tag(out, DELETE_REPLACED);
            put(out, n as u64);
            return;
        }
        if read_back(visible, visible::at(replicas, target, start), n) {
            tag(out, DELETE_FROM);
            put(out, target as u64);
            put(out, zigzag(start as i64 - walk.expected_delete(target, text, n) as i64));
            put(out, n as u64);
            return;
        }
    }
    tag(out, DELETE_RANGES);
    put(out, ranges.len() as u64);
    let mut previous: Option<(u32, u32)> = None;
    for (target, start, len) in ranges.iter() {
        put(out, *target as u64);
        let expected = match previous {
            Some((g, end)) if g == *target => end,
            _ => walk.expected_delete(*target, text, *len),
        };
        put(out, zigzag(*start as i64 - expected as i64));
        put(out, *len as u64);
        previous = Some((*target, start + len));
    }
}

fn len_and_offset(c: &mut Columns, len: u32, offset: i64) -> u8 {
    let mut head = 0;
    if len == 1 {
        head |= LEN_ONE;
    } else {
        put(&mut c.len, len as u64);
    }
    if offset == 0 {
        head |= OFFSET_ZERO;
    } else {
        put(&mut c.offset, zigzag(offset));
    }
    head
}

/// Reads a log written by [`encode`] from `rd`, for a history starting at `base` whose
/// inserts are in `fields`; checks it whole.
pub(crate) fn decode(rd: &mut Reader<'_>, base: VersionVector, fields: &Fields) -> Result<History, &'static str> {
    let r = rd.count()?;
    if r > (rd.buf.len() - rd.at) / 16 {
        return Err("replica table larger than the data");
    }
    let mut replicas = Vec::with_capacity(r);
    let mut seen = HashMap::with_capacity(r);
    for i in 0..r {
        let bytes: [u8; 16] = rd.bytes(16)?.try_into().map_err(|_| "replica id is not 16 bytes")?;
        let replica = ReplicaId::from(uuid::Uuid::from_bytes(bytes));
        if seen.insert(replica, i).is_some() {
            return Err("replica table names a replica twice");
        }
        replicas.push(replica);
    }
    let t = rd.count()?;
    let mut texts: Vec<FieldName> = Vec::with_capacity(t);
    for _ in 0..t {
        let n = rd.count()?;
        let name = std::str::from_utf8(rd.bytes(n)?).map_err(|_| "text field name is not UTF-8")?;
        if texts.iter().any(|t| t == name) {
            return Err("text field named twice");
        }
        texts.push(FieldName::new(name));
    }
    let s = rd.varint()?;
    let compressed = rd.bytes(1)?[0];
    let c = rd.usize()?;
    let rest = &rd.buf[rd.at..];
    rd.at = rd.buf.len();
    let inflated;
    let columns: &[u8] = match compressed {
        0 if c == rest.len() => rest,
        1 if c <= rest.len().saturating_mul(MAX_RATIO).saturating_add(1024).min(codec::MAX_SNAPSHOT_LEN) => {
            inflated = inflate_limited(rest, c)?;
            if inflated.len() != c {
                return Err("history columns do not have their declared length");
            }
            &inflated
        }
        0 | 1 => return Err("history columns do not have their declared length"),
        _ => return Err("unknown history column encoding"),
    };
    let mut all = Reader { buf: columns, at: 0 };
    let mut column = || -> Result<Reader<'_>, &'static str> {
        let n = all.count()?;
        let start = all.at;
        all.bytes(n)?;
        Ok(Reader { buf: &columns[start..start + n], at: 0 })
    };
    let mut head = column()?;
    let mut count = column()?;
    let mut replica = column()?;
    let mut text = column()?;
    let mut len = column()?;
    let mut offset = column()?;
    let mut target = column()?;
    let mut stride = column()?;
    let mut deps = column()?;
    let mut ops = column()?;
    if s != head.buf.len() as u64 {
        return Err("history span count differs from its head column");
    }
    let text_fields: Vec<_> = texts.iter().map(|name| text_of(fields, name)).collect();
    // Characters each replica inserted into each text: inserts and deletes stay inside them.
    let inserted = |replica: u32, text: u32| -> Result<u64, &'static str> {
        let rga = text_fields[text as usize].ok_or("history names a text field the document lacks")?;
        Ok(rga.next_counter(replicas[replica as usize]))
    };
    let index = |rd: &mut Reader<'_>, bound: usize, what: &'static str| -> Result<u32, &'static str> {
        let i = rd.u32()?;
        if i as usize >= bound {
            return Err(what);
        }
        Ok(i)
    };
    let mut walk = Walk::new(&base, &replicas, texts.len());
    let mut visible = Visible::new(&replicas, text_fields.clone());
    let mut spans = Vec::with_capacity(head.buf.len());
    while !head.at_end() {
        let h = head.bytes(1)?[0];
        let mut span_deps = Vec::new();
        if h & HAS_DEPS != 0 {
            let n = deps.count()?;
            if n == 0 {
                return Err("history span marked with dependencies has none");
            }
            for _ in 0..n {
                let dep = index(&mut deps, replicas.len(), "history dependency of an unknown replica")?;
                let below = deps.varint()?;
                let at = walk.version[dep as usize];
                let seq = at.checked_sub(below).filter(|seq| *seq >= 1).ok_or("history dependency not yet seen")?;
                span_deps.push((dep, seq));
            }
        }
        if h & SWITCH != 0 {
            let next = index(&mut replica, replicas.len(), "history span of an unknown replica")?;
            if next == walk.replica {
                return Err("history replica switch to the same replica");
            }
            walk.replica = next;
        }
        let author = walk.replica;
        if author as usize >= replicas.len() {
            return Err("history span of an unknown replica");
        }
        let ids: Vec<ChangeId> =
            span_deps.iter().map(|(r, seq)| ChangeId { replica: replicas[*r as usize], seq: *seq }).collect();
        validate_deps(replicas[author as usize], &ids)?;
        let kind = h & 3;
        let n = if kind == OPS { 1 } else { count.varint()?.checked_add(1).ok_or("history span too long")? };
        let n = u32::try_from(n).map_err(|_| "history span too long")?;
        let seq = walk.version[author as usize] + 1;
        let last = seq + n as u64 - 1;
        if last > MAX_SEQ {
            return Err("history seq too large");
        }
        let text_of_span = |rd: &mut Reader<'_>| -> Result<u32, &'static str> {
            if texts.len() > 1 {
                index(rd, texts.len(), "history names an unknown text field")
            } else if texts.len() == 1 {
                Ok(0)
            } else {
                Err("history edits a text but names none")
            }
        };
        let body = match kind {
            INSERT => {
                let t = text_of_span(&mut text)?;
                let l = if h & LEN_ONE != 0 { 1 } else { len.u32()? };
                let off = if h & OFFSET_ZERO != 0 { 0 } else { unzigzag(offset.varint()?) };
                let counter = walk.next_insert(author, t) as i64 + off;
                let end = counter + n as i64 * l as i64;
                if l == 0 || counter < 0 || end as u64 > inserted(author, t)? {
                    return Err("history insert outside its text");
                }
                *walk.next.get_mut(author, t) = end as u32;
                Body::Insert { text: t, counter: counter as u32, len: l }
            }
            DELETE | DELETE_NEAR => {
                let t = text_of_span(&mut text)?;
                let l = if h & LEN_ONE != 0 { 1 } else { len.u32()? };
                let off = if h & OFFSET_ZERO != 0 { 0 } else { unzigzag(offset.varint()?) };
                let g = if h & OWN_TARGET != 0 {
                    author
                } else {
                    let g = index(&mut target, replicas.len(), "history delete of an unknown replica")?;
                    if g == author {
                        return Err("history delete target written out for the span's own replica");
                    }
                    g
                };
                let start = if kind == DELETE {
                    walk.expected_delete(g, t, l) as i64 + off
                } else {
                    walk.deleted.get(g, t).ok_or("history delete near no earlier delete")? as i64 + off
                };
                let step = if n > 1 && h & STRIDE_BACK == 0 {
                    let step = unzigzag(stride.varint()?);
                    if step == -(l as i64) {
                        return Err("history delete stride written out though it is the default");
                    }
                    step
                } else {
                    -(l as i64)
                };
                let end_start = (n as i64 - 1).checked_mul(step).and_then(|d| d.checked_add(start));
                let end_start = end_start.ok_or("history delete outside its text")?;
                let limit = inserted(g, t)? as i64 - l as i64;
                if l == 0 || start.min(end_start) < 0 || start.max(end_start) > limit {
                    return Err("history delete outside its text");
                }
                *walk.deleted.get_mut(g, t) = Some(end_start as u32);
                visible.mark_span(g, t, start as u32, l, n, step);
                Body::Delete { text: t, target: g, start: start as u32, len: l, stride: step }
            }
            _ => {
                // OPS, the one kind left of the two bits.
                if h & (LEN_ONE | OFFSET_ZERO | OWN_TARGET | STRIDE_BACK) != 0 {
                    return Err("history ops span with insert or delete flags");
                }
                let k = ops.count()?;
                let mut list = Vec::with_capacity(k);
                // Reads an insert's fields (after its tag) and checks it against the text.
                let read_insert = |ops: &mut Reader<'_>, walk: &Walk| -> Result<(u32, u32, u32), &'static str> {
                    let t = text_of_span(ops)?;
                    let counter = walk.next_insert(author, t) as i64 + unzigzag(ops.varint()?);
                    let l = ops.u32()?;
                    if l == 0 || counter < 0 || (counter + l as i64) as u64 > inserted(author, t)? {
                        return Err("history insert outside its text");
                    }
                    Ok((t, counter as u32, l))
                };
                while list.len() < k {
                    match ops.varint()? {
                        OP_INSERT => {
                            let (t, counter, l) = read_insert(&mut ops, &walk)?;
                            *walk.next.get_mut(author, t) = counter + l;
                            list.push(LogOp::Insert { text: t, counter, len: l });
                        }
                        OP_OTHER => {
                            let b = ops.count()?;
                            let field_op: FieldOp = codec::decode_value(ops.bytes(b)?).map_err(|_| "history op")?;
                            if op_author(&field_op.op).is_some_and(|a| a != replicas[author as usize]) {
                                return Err("history operation attributed to another replica");
                            }
                            list.push(LogOp::Other(field_op));
                        }
                        DELETE_RANGES => {
                            let t = text_of_span(&mut ops)?;
                            let n = ops.count()?;
                            if n == 0 {
                                return Err("history delete of no range");
                            }
                            let mut ranges = Vec::with_capacity(n);
                            let mut previous: Option<(u32, u32)> = None;
                            for _ in 0..n {
                                let g = index(&mut ops, replicas.len(), "history delete of an unknown replica")?;
                                let off = unzigzag(ops.varint()?);
                                let l = ops.u32()?;
                                let expected = match previous {
                                    Some((p, end)) if p == g => end,
                                    _ => walk.expected_delete(g, t, l),
                                };
                                let start = expected as i64 + off;
                                if l == 0 || start < 0 || start + l as i64 > inserted(g, t)? as i64 {
                                    return Err("history delete outside its text");
                                }
                                visible.mark(g, t, start as u32, l);
                                ranges.push((g, start as u32, l));
                                previous = Some((g, start as u32 + l));
                            }
                            list.push(LogOp::Delete { text: t, ranges: ranges.into() });
                        }
                        DELETE_FROM => {
                            let t = text_of_span(&mut ops)?;
                            let g = index(&mut ops, replicas.len(), "history delete of an unknown replica")?;
                            let off = unzigzag(ops.varint()?);
                            let n = ops.u32()?;
                            let start = walk.expected_delete(g, t, n) as i64 + off;
                            if start < 0 || start >= inserted(g, t)? as i64 {
                                return Err("history delete outside its text");
                            }
                            let ranges = visible
                                .read_back(&walk.next, t, visible::at(&replicas, g, start as u32), n)
                                .filter(|r| r.first().is_some_and(|f| (f.0, f.1) == (g, start as u32)))
                                .ok_or("history delete does not match its text")?;
                            for (g, start, l) in &ranges {
                                visible.mark(*g, t, *start, *l);
                            }
                            list.push(LogOp::Delete { text: t, ranges: ranges.into() });
                        }
                        DELETE_REPLACED => {
                            let t = text_of_span(&mut ops)?;
                            let n = ops.u32()?;
                            if list.len() + 2 > k || ops.varint()? != OP_INSERT {
                                return Err("history delete of a replaced selection without its insert");
                            }
                            let (it, counter, l) = read_insert(&mut ops, &walk)?;
                            if it != t {
                                return Err("history delete of a replaced selection without its insert");
                            }
                            let ranges = visible
                                .read_back(&walk.next, t, visible::at(&replicas, author, counter), n)
                                .ok_or("history delete does not match its text")?;
                            for (g, start, l) in &ranges {
                                visible.mark(*g, t, *start, *l);
                            }
                            list.push(LogOp::Delete { text: t, ranges: ranges.into() });
                            *walk.next.get_mut(author, t) = counter + l;
                            list.push(LogOp::Insert { text: t, counter, len: l });
                        }
                        _ => return Err("unknown history op tag"),
                    }
                }
                Body::Ops(list.into())
            }
        };
        walk.version[author as usize] = last;
        spans.push(Span { replica: author, seq, count: n, deps: span_deps.into(), body });
    }
    for rd in [&count, &replica, &text, &len, &offset, &target, &stride, &deps, &ops] {
        if !rd.at_end() {
            return Err("history column has bytes left over");
        }
    }
    if !all.at_end() {
        return Err("history columns have bytes left over");
    }
    Ok(History::from_spans(base, replicas, texts, spans))
}

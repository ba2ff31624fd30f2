//! [`History`]: the changes a document has applied, kept as a compact log.
//!
//! A history stores what the fields do not already hold. An insert is stored as *where* its
//! characters are (text field, first counter, length): their text and origins are in the
//! field's [`Rga`] for good, deleted or not, and [`Rga::insert_op`] rebuilds the operation
//! from them. Changes are grouped in *spans*: consecutive changes of one replica, applied one
//! after another, that extend one pattern — each inserting `len` characters right after the
//! previous change's (typing), or each deleting `len` characters `stride` counters on from the
//! previous change's (backspacing, forward deleting). A span stores its replica and first seq
//! once, its first change's dependencies, and its pattern; a person typing a paragraph is one
//! span. Any other change (several operations, a register or set edit, a delete of several
//! ranges) is a span of one change with its operations, inserts still stored by position.
//! Replica ids and text field names are interned: a span names them by small indexes.
//!
//! A history may start after the beginning of time: a document loaded from a snapshot without
//! history, or one that learnt part of its state by a state merge, only knows the *result* of
//! the changes up to its `base` version. It can serve every change after `base` and nothing
//! before it.
//!
//! `document/log_codec.rs` writes and reads a history as bytes.
//!
//! # Invariants
//! - `base` has no zero entries and no entry above [`MAX_SEQ`].
//! - For every replica `r`, the spans of `r` cover the seqs `base[r] + 1`, `base[r] + 2`, …
//!   with no gap, in log order; so `base` plus the spans is the document's version.
//! - Every span's `deps` were all seen by `base` and the spans before it (log order is a causal
//!   order), and only a span's first change has dependencies of its own.
//! - `by_replica[r]` lists `r`'s spans in log order; `replica_index` inverts `replicas`.
//! - Every insert the log holds is in its text field, so it can be rebuilt.

use std::collections::{BTreeMap, HashMap};

use super::change::{validate_deps, Change, ChangeId, MAX_SEQ};
use super::field::{Field, FieldKind, FieldName, FieldOp, Op};
use crate::{IdRange, InlineVec, OpId, ReplicaId, Rga, RgaOp, VersionVector};

/// A document's fields, as the history reads them to rebuild inserts.
pub(crate) type Fields = BTreeMap<(FieldName, FieldKind), Field>;

/// The applied changes after a base version; see the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct History {
    pub(super) base: VersionVector,
    pub(super) replicas: Vec<ReplicaId>,
    replica_index: HashMap<ReplicaId, u32>,
    /// Names of the text fields inserts go to.
    pub(super) texts: Vec<FieldName>,
    pub(super) spans: Vec<Span>,
    /// Per replica index: its spans' indexes in `spans`, in log (and seq) order.
    by_replica: Vec<Vec<u32>>,
    /// How many changes the spans hold.
    changes: usize,
}

/// Consecutive changes of one replica that follow one pattern; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Span {
    /// Index in `History::replicas`.
    pub replica: u32,
    /// The first change's seq.
    pub seq: u64,
    /// How many changes (at least 1).
    pub count: u32,
    /// The first change's dependencies, as (replica index, seq), in `Change::deps` order.
    pub deps: Box<[(u32, u64)]>,
    pub body: Body,
}

/// What the changes of a span do.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Body {
    /// Change `k` inserts `len` characters into text `text`, from counter `counter + k * len`.
    Insert { text: u32, counter: u32, len: u32 },
    /// Change `k` deletes `len` characters of replica `target` in text `text`, from counter
    /// `start + k * stride` (a span of one change has `stride == -len`).
    Delete { text: u32, target: u32, start: u32, len: u32, stride: i64 },
    /// One change with these operations.
    Ops(Box<[LogOp]>),
}

/// One operation of a [`Body::Ops`] change.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum LogOp {
    /// An insert by the change's replica, rebuilt from the text.
    Insert { text: u32, counter: u32, len: u32 },
    /// A delete of text characters: (replica index, first counter, length) per range.
    Delete { text: u32, ranges: Box<[(u32, u32, u32)]> },
    /// Anything else, as it came.
    Other(FieldOp),
}

impl History {
    /// An empty history starting at `base`.
    pub fn starting_at(base: VersionVector) -> History {
        History { base, ..History::default() }
    }

    /// A history of decoded parts; the caller checked them (`log_codec`).
    pub(super) fn from_spans(
        base: VersionVector,
        replicas: Vec<ReplicaId>,
        texts: Vec<FieldName>,
        spans: Vec<Span>,
    ) -> History {
        let replica_index = replicas.iter().enumerate().map(|(i, r)| (*r, i as u32)).collect();
        let mut by_replica = vec![Vec::new(); replicas.len()];
        let mut changes = 0;
        for (i, span) in spans.iter().enumerate() {
            by_replica[span.replica as usize].push(i as u32);
            changes += span.count as usize;
        }
        History { base, replicas, replica_index, texts, spans, by_replica, changes }
    }

    /// Rebuilds a history from untrusted changes, checked against the fields they made (every
    /// insert must be rebuilt exactly from its text); returns it with the version it reaches.
    pub fn from_changes(
        base: VersionVector,
        changes: &[Change],
        fields: &Fields,
    ) -> Result<(History, VersionVector), &'static str> {
        if base.iter().any(|(_, seq)| seq == 0 || seq > MAX_SEQ) {
            return Err("history base holds a zero or too large entry");
        }
        let mut version = base.clone();
        let mut history = History::starting_at(base);
        for change in changes {
            change.validate()?;
            if change.seq != version.get(change.replica) + 1 {
                return Err("history seqs of a replica are not contiguous");
            }
            if !change.deps_seen(&version) {
                return Err("history is not in causal order");
            }
            for field_op in &change.ops {
                if let Op::Text(insert @ RgaOp::Insert { id, text, .. }) = &field_op.op {
                    let len = u32::try_from(text.chars().count()).map_err(|_| "history insert too long")?;
                    let rebuilt = text_of(fields, &field_op.field).and_then(|rga| rga.insert_op(*id, len));
                    if rebuilt.as_ref() != Some(insert) {
                        return Err("history insert is not in its text");
                    }
                }
            }
            version.set(change.replica, change.seq);
            history.push(change);
        }
        Ok((history, version))
    }

    /// The version at which the history starts.
    pub fn base(&self) -> &VersionVector {
        &self.base
    }

    /// The version the history reaches: its base plus its changes.
    pub fn reached(&self) -> VersionVector {
        let mut version = self.base.clone();
        for (replica, spans) in self.by_replica.iter().enumerate() {
            if let Some(last) = spans.last() {
                let span = &self.spans[*last as usize];
                version.set(self.replicas[replica], span.seq + span.count as u64 - 1);
            }
        }
        version
    }

    /// How many changes it holds.
    pub fn len(&self) -> usize {
        self.changes
    }

    /// How many spans the changes are kept in.
    pub fn span_count(&self) -> usize {
        self.spans.len()
    }

    /// Bytes of heap the log uses.
    pub fn heap_size(&self) -> usize {
        let ops: usize = self
            .spans
            .iter()
            .map(|s| {
                s.deps.len() * 16
                    + match &s.body {
                        Body::Ops(ops) => ops.len() * std::mem::size_of::<LogOp>(),
                        _ => 0,
                    }
            })
            .sum();
        self.spans.capacity() * std::mem::size_of::<Span>()
            + self.by_replica.iter().map(|v| v.capacity() * 4 + 24).sum::<usize>()
            + self.replicas.capacity() * 16
            + self.replica_index.capacity() * 24
            + ops
    }

    /// Appends a change that the document has just applied (the caller checked its seq and
    /// deps, and its inserts are in their texts).
    pub fn push(&mut self, change: &Change) {
        self.record(change.replica, change.seq, &change.deps, &change.ops);
    }

    /// [`push`](Self::push) of the change `(replica, seq)` with these `deps` and `ops`, before
    /// it is put together (so that a local edit builds its change once, where it returns it).
    pub fn record(&mut self, replica: ReplicaId, seq: u64, deps: &[ChangeId], ops: &[FieldOp]) {
        self.changes += 1;
        // Only a span's first change has dependencies of its own.
        if deps.is_empty() && self.extend_last(replica, seq, ops) {
            return;
        }
        let index = self.intern(replica);
        let body = self.body_of(ops);
        let deps = deps.iter().map(|dep| (self.intern(dep.replica), dep.seq)).collect();
        self.by_replica[index as usize].push(self.spans.len() as u32);
        self.spans.push(Span { replica: index, seq, count: 1, deps, body });
    }

    /// Counts the change into the last span if it is the next change of that span's replica and
    /// continues its pattern. Reads the change in place: typing and backspacing, nearly every
    /// change, end here without building their log form.
    fn extend_last(&mut self, replica: ReplicaId, seq: u64, ops: &[FieldOp]) -> bool {
        let Some(last) = self.spans.last_mut() else { return false };
        if last.seq + last.count as u64 != seq
            || last.count == u32::MAX
            || self.replicas[last.replica as usize] != replica
        {
            return false;
        }
        let [FieldOp { field, op: Op::Text(op) }] = ops else { return false };
        let count = last.count;
        let extends = match (&mut last.body, op) {
            (Body::Insert { text, counter, len }, RgaOp::Insert { id, text: inserted, .. }) => {
                insert_place(*id, inserted)
                    .is_some_and(|(c, l)| l == *len && c as u64 == *counter as u64 + count as u64 * *len as u64)
                    && self.texts[*text as usize] == *field
            }
            (Body::Delete { text, target, start, len, stride }, RgaOp::Delete { ranges }) => {
                let [range] = ranges.as_slice() else { return false };
                let Some((s, l)) = delete_place(range) else { return false };
                if l != *len
                    || self.replicas[*target as usize] != range.start.replica
                    || self.texts[*text as usize] != *field
                {
                    return false;
                }
                if count == 1 {
                    *stride = s as i64 - *start as i64;
                    true
                } else {
                    s as i64 == *start as i64 + count as i64 * *stride
                }
            }
            _ => false,
        };
        if extends {
            last.count += 1;
        }
        extends
    }

    fn intern(&mut self, replica: ReplicaId) -> u32 {
        // Typing: the replica of the last span, without hashing its id.
        if let Some(last) = self.spans.last() {
            if self.replicas[last.replica as usize] == replica {
                return last.replica;
            }
        }
        if let Some(index) = self.replica_index.get(&replica) {
            return *index;
        }
        let index = self.replicas.len() as u32;
        self.replicas.push(replica);
        self.replica_index.insert(replica, index);
        self.by_replica.push(Vec::new());
        index
    }

    fn intern_text(&mut self, name: &FieldName) -> u32 {
        match self.texts.iter().position(|t| t == name) {
            Some(i) => i as u32,
            None => {
                self.texts.push(name.clone());
                self.texts.len() as u32 - 1
            }
        }
    }

    /// A change's operations in log form.
    fn body_of(&mut self, ops: &[FieldOp]) -> Body {
        if let [FieldOp { field, op: Op::Text(op) }] = ops {
            match op {
                RgaOp::Insert { id, text, .. } => {
                    if let Some((counter, len)) = insert_place(*id, text) {
                        return Body::Insert { text: self.intern_text(field), counter, len };
                    }
                }
                RgaOp::Delete { ranges } => {
                    if let [range] = ranges.as_slice() {
                        if let Some((counter, len)) = delete_place(range) {
                            let text = self.intern_text(field);
                            let target = self.intern(range.start.replica);
                            return Body::Delete { text, target, start: counter, len, stride: -(len as i64) };
                        }
                    }
                }
            }
        }
        let ops = ops
            .iter()
            .map(|field_op| match &field_op.op {
                Op::Text(RgaOp::Insert { id, text, .. }) => match insert_place(*id, text) {
                    Some((counter, len)) => LogOp::Insert { text: self.intern_text(&field_op.field), counter, len },
                    None => LogOp::Other(field_op.clone()),
                },
                Op::Text(RgaOp::Delete { ranges }) if ranges.iter().all(|r| delete_place(r).is_some()) => {
                    let text = self.intern_text(&field_op.field);
                    let ranges = ranges
                        .iter()
                        .filter_map(|range| {
                            let (start, len) = delete_place(range)?;
                            Some((self.intern(range.start.replica), start, len))
                        })
                        .collect();
                    LogOp::Delete { text, ranges }
                }
                _ => LogOp::Other(field_op.clone()),
            })
            .collect();
        Body::Ops(ops)
    }

    /// The changes not covered by `version`, in causal order; `None` if some of them are before
    /// `base` (the caller should send a snapshot instead). Takes time in proportion to the
    /// answer (plus a lookup per replica of the log).
    pub fn since(&self, version: &VersionVector, fields: &Fields) -> Option<Vec<Change>> {
        if !self.base.le(version) {
            return None;
        }
        let mut starts: Vec<(u32, u32)> = Vec::new();
        for (replica, spans) in self.by_replica.iter().enumerate() {
            let seen = version.get(self.replicas[replica]);
            let first = spans.partition_point(|s| {
                let span = &self.spans[*s as usize];
                span.seq + span.count as u64 <= seen + 1
            });
            for (i, s) in spans[first..].iter().enumerate() {
                let span = &self.spans[*s as usize];
                let skip = if i == 0 { seen.saturating_sub(span.seq - 1) as u32 } else { 0 };
                starts.push((*s, skip));
            }
        }
        // Log order is a causal order, so span order keeps causality.
        starts.sort_unstable();
        let texts = self.text_fields(fields);
        let mut out = Vec::new();
        for (s, skip) in starts {
            let span = &self.spans[s as usize];
            out.extend((skip..span.count).map(|k| self.change(span, k, &texts)));
        }
        Some(out)
    }

    /// `replica`'s changes after `after_seq`, in seq order; `None` if some of them are before
    /// `base`.
    pub fn of(&self, replica: ReplicaId, after_seq: u64, fields: &Fields) -> Option<Vec<Change>> {
        if after_seq < self.base.get(replica) {
            return None;
        }
        let Some(index) = self.replica_index.get(&replica) else { return Some(Vec::new()) };
        let texts = self.text_fields(fields);
        let mut out = Vec::new();
        for s in &self.by_replica[*index as usize] {
            let span = &self.spans[*s as usize];
            let first = after_seq.saturating_sub(span.seq - 1).min(span.count as u64) as u32;
            out.extend((first..span.count).map(|k| self.change(span, k, &texts)));
        }
        Some(out)
    }

    /// The change `id`, if the log holds it (not when it is before `base` or not applied).
    pub fn get(&self, id: ChangeId, fields: &Fields) -> Option<Change> {
        let index = *self.replica_index.get(&id.replica)?;
        let spans = &self.by_replica[index as usize];
        // A replica's spans are in seq order: the first that ends after `id.seq`.
        let at = spans.partition_point(|s| {
            let span = &self.spans[*s as usize];
            span.seq + span.count as u64 <= id.seq
        });
        let span = &self.spans[*spans.get(at)? as usize];
        if id.seq < span.seq {
            return None;
        }
        let texts = self.text_fields(fields);
        Some(self.change(span, (id.seq - span.seq) as u32, &texts))
    }

    /// Every change, in log order.
    pub fn all(&self, fields: &Fields) -> Vec<Change> {
        let texts = self.text_fields(fields);
        let mut out = Vec::with_capacity(self.changes);
        for span in &self.spans {
            out.extend((0..span.count).map(|k| self.change(span, k, &texts)));
        }
        out
    }

    /// True if both hold the same changes after the same base, in whatever order.
    pub fn same_changes(&self, fields: &Fields, other: &History, other_fields: &Fields) -> bool {
        if self.base != other.base || self.changes != other.changes {
            return false;
        }
        let key = |c: &Change| (c.replica, c.seq);
        let mut ours = self.all(fields);
        let mut theirs = other.all(other_fields);
        ours.sort_by_key(key);
        theirs.sort_by_key(key);
        ours == theirs
    }

    /// After a state merge: takes the changes beyond `own` (this history's version) from
    /// `other`, whose history reaches `other_version`. `fields` are the merged fields, which
    /// hold the characters of both.
    ///
    /// Where `other` cannot supply a replica's changes right after `own` (its base is past
    /// them), this history gives up that replica's range too: its base is raised to `other`'s,
    /// and its own changes of that replica below the new base are dropped. Changes of other
    /// replicas that depended on them stay valid, because the raised base covers them.
    pub fn absorb(&mut self, own: &VersionVector, other: &History, fields: &Fields) {
        let mut raised = false;
        let mut cutoff = own.clone();
        let mut base = self.base.clone();
        for (replica, other_base) in other.base.iter() {
            if other_base > own.get(replica) {
                base.set(replica, other_base);
                cutoff.set(replica, other_base);
                raised = true;
            }
        }
        if raised {
            let kept: Vec<Change> =
                self.all(fields).into_iter().filter(|change| change.seq > base.get(change.replica)).collect();
            *self = History::starting_at(base);
            for change in &kept {
                self.push(change);
            }
        }
        let theirs = other.since(&cutoff, fields).unwrap_or_default();
        for change in theirs.iter().filter(|change| change.seq > cutoff.get(change.replica)) {
            self.push(change);
        }
    }

    /// The replicas whose latest change no change of the log depends on, among those `version`
    /// counts: the heads a document at `version` makes its next change on top of. Replicas
    /// whose changes are all before `base` count as heads (a superset is harmless: naming one
    /// more dependency than needed changes nothing).
    pub fn heads(&self, version: &VersionVector) -> Vec<ReplicaId> {
        let mut named: HashMap<u32, ()> = HashMap::new();
        for span in &self.spans {
            for (replica, seq) in span.deps.iter() {
                if version.get(self.replicas[*replica as usize]) == *seq {
                    named.insert(*replica, ());
                }
            }
        }
        version
            .iter()
            .map(|(replica, _)| replica)
            .filter(|replica| self.replica_index.get(replica).is_none_or(|index| !named.contains_key(index)))
            .collect()
    }

    /// The text fields the log names, in `texts` order.
    fn text_fields<'f>(&self, fields: &'f Fields) -> Vec<Option<&'f Rga>> {
        self.texts.iter().map(|name| text_of(fields, name)).collect()
    }

    /// Change `k` of `span`.
    fn change(&self, span: &Span, k: u32, texts: &[Option<&Rga>]) -> Change {
        let replica = self.replicas[span.replica as usize];
        let deps = if k == 0 {
            span.deps.iter().map(|(r, seq)| ChangeId { replica: self.replicas[*r as usize], seq: *seq }).collect()
        } else {
            Vec::new()
        };
        let ops = match &span.body {
            Body::Insert { text, counter, len } => {
                InlineVec::one(self.insert(replica, *text, counter + k * len, *len, texts))
            }
            Body::Delete { text, target, start, len, stride } => {
                let counter = (*start as i64 + k as i64 * stride) as u64;
                let range = IdRange { start: OpId::new(self.replicas[*target as usize], counter), len: *len as u64 };
                InlineVec::one(FieldOp {
                    field: self.texts[*text as usize].clone(),
                    op: Op::Text(RgaOp::Delete { ranges: InlineVec::one(range) }),
                })
            }
            Body::Ops(ops) => ops
                .iter()
                .map(|op| match op {
                    LogOp::Insert { text, counter, len } => self.insert(replica, *text, *counter, *len, texts),
                    LogOp::Delete { text, ranges } => {
                        let ranges = ranges
                            .iter()
                            .map(|(target, start, len)| IdRange {
                                start: OpId::new(self.replicas[*target as usize], *start as u64),
                                len: *len as u64,
                            })
                            .collect();
                        FieldOp { field: self.texts[*text as usize].clone(), op: Op::Text(RgaOp::Delete { ranges }) }
                    }
                    LogOp::Other(field_op) => field_op.clone(),
                })
                .collect(),
        };
        Change { replica, seq: span.seq + k as u64, deps, ops }
    }

    fn insert(&self, replica: ReplicaId, text: u32, counter: u32, len: u32, texts: &[Option<&Rga>]) -> FieldOp {
        let op = texts[text as usize]
            .and_then(|rga| rga.insert_op(OpId::new(replica, counter as u64), len))
            .expect("every insert of the history is in its text (checked on push and on load)");
        FieldOp { field: self.texts[text as usize].clone(), op: Op::Text(op) }
    }

    /// Panics unless the invariants hold and the history reaches exactly `version`.
    pub fn check_invariants(&self, version: &VersionVector, fields: &Fields) {
        self.base.check_invariants();
        assert!(self.base.iter().all(|(_, seq)| seq <= MAX_SEQ), "history base entry too large");
        assert_eq!(self.replicas.len(), self.replica_index.len(), "replica table and index differ");
        assert_eq!(self.by_replica.len(), self.replicas.len(), "history index is out of date");
        let mut reached = self.base.clone();
        let mut counted = 0;
        let mut indexed = vec![Vec::new(); self.replicas.len()];
        for (i, span) in self.spans.iter().enumerate() {
            let replica = self.replicas[span.replica as usize];
            assert!(span.count >= 1, "empty span");
            assert_eq!(span.seq, reached.get(replica) + 1, "history seqs of a replica are not contiguous");
            let deps: Vec<ChangeId> =
                span.deps.iter().map(|(r, seq)| ChangeId { replica: self.replicas[*r as usize], seq: *seq }).collect();
            validate_deps(replica, &deps).unwrap_or_else(|e| panic!("history invariant broken: {e}"));
            assert!(deps.iter().all(|d| reached.get(d.replica) >= d.seq), "history is not in causal order");
            reached.set(replica, span.seq + span.count as u64 - 1);
            counted += span.count as usize;
            indexed[span.replica as usize].push(i as u32);
        }
        assert_eq!(&reached, version, "history does not reach the document version");
        assert_eq!(counted, self.changes, "history change count is out of date");
        assert_eq!(indexed, self.by_replica, "history index is out of date");
        // Every change can be rebuilt (inserts from their texts) and is well formed.
        for change in self.all(fields) {
            change.validate().unwrap_or_else(|e| panic!("history holds an invalid change: {e}"));
        }
    }

    /// A cheap partial check for debug builds: the per-replica counts reach `version`.
    pub fn quick_check(&self, version: &VersionVector) {
        if let Some(last) = self.spans.last() {
            let replica = self.replicas[last.replica as usize];
            assert_eq!(last.seq + last.count as u64 - 1, version.get(replica), "history does not reach the version");
        }
    }
}

/// The text field `name`, if there is one.
pub(super) fn text_of<'f>(fields: &'f Fields, name: &str) -> Option<&'f Rga> {
    match fields.get(&(FieldName::new(name), FieldKind::Text)) {
        Some(Field::Text(rga)) => Some(rga),
        _ => None,
    }
}

/// A delete range's first counter and length, if both fit the log's `u32`s (and it is not
/// empty).
fn delete_place(range: &IdRange) -> Option<(u32, u32)> {
    let start = u32::try_from(range.start.counter).ok()?;
    let len = u32::try_from(range.len).ok()?;
    (len > 0 && start.checked_add(len).is_some()).then_some((start, len))
}

/// An insert's first counter and length, if both fit the log's `u32`s.
fn insert_place(id: OpId, text: &str) -> Option<(u32, u32)> {
    let counter = u32::try_from(id.counter).ok()?;
    let len = u32::try_from(crate::rga::char_count(text)).ok()?;
    (len > 0).then_some((counter, len))
}

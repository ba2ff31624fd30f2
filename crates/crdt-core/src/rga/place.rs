//! Putting runs into the tree and taking characters out of the visible text: the mutations that
//! local edits, remote operations and merges share.

use super::node::{Cursor, Metric, Run, Width, LEAF_CAP};
use super::{Id, LocalDelete, Rga, RgaOp, TextDelta};
use crate::{Applied, ApplyError, OpId, ReplicaId};

/// A run in public ids: first id, length, origins, deleted.
pub(super) type Piece = (OpId, u32, Option<OpId>, Option<OpId>, bool);

impl Rga {
    /// Inserts `run` right after the character at `after` (at the very start when `None`),
    /// extending that character's run when `run` continues it. Returns where `run` now starts.
    pub(super) fn place_after(&mut self, after: Option<Cursor>, run: Run) -> Cursor {
        let (leaf, index) = match after {
            None => {
                self.tree.runs_changed(self.tree.first_leaf, 0);
                self.tree.leaves[self.tree.first_leaf as usize].runs.insert(0, run);
                (self.tree.first_leaf, 0)
            }
            Some(c) => {
                let prev = self.tree.leaves[c.leaf as usize].runs[c.run];
                self.tree.runs_changed(c.leaf, c.run);
                let runs = &mut self.tree.leaves[c.leaf as usize].runs;
                if c.offset + 1 == prev.len {
                    if prev.can_append(&run) {
                        runs[c.run].len += run.len;
                        let w = run.width(&self.content);
                        self.tree.update_width(c.leaf, Width::default(), w);
                        if let Some(ids) = self.ids.get_mut() {
                            ids.set(run.id.replica, run.id.counter, run.id.counter + run.len, c.leaf);
                        }
                        return Cursor { leaf: c.leaf, run: c.run, offset: c.offset + 1 };
                    }
                    runs.insert(c.run + 1, run);
                } else {
                    // Inside a run: its right part goes after `run`, both in one shift.
                    let right = runs[c.run].split(c.offset + 1);
                    runs.insert_pair(c.run + 1, run, right);
                }
                (c.leaf, c.run + 1)
            }
        };
        self.tree.update_width(leaf, Width::default(), run.width(&self.content));
        if let Some(ids) = self.ids.get_mut() {
            ids.set(run.id.replica, run.id.counter, run.id.counter + run.len, leaf);
        }
        self.split_if_full(leaf, Cursor { leaf, run: index, offset: 0 })
    }

    /// Splits `leaf` if it is over capacity, re-pointing the moved runs' ids; returns where the
    /// run at `cur` (in `leaf`) ended up.
    fn split_if_full(&mut self, leaf: u32, cur: Cursor) -> Cursor {
        let Some(new_leaf) = self.tree.split_leaf_if_full(leaf, &self.content) else { return cur };
        let kept = self.tree.leaves[leaf as usize].runs.len();
        let moved_cur = if cur.run >= kept { Cursor { leaf: new_leaf, run: cur.run - kept, ..cur } } else { cur };
        // Not built yet (a loaded text): it will be built from the tree as it is then.
        let Some(ids) = self.ids.get_mut() else { return moved_cur };
        // Re-point the moved ids, joined into as few ranges as possible first: the pieces of a
        // run split by deletes sit next to each other with consecutive counters.
        let runs = &self.tree.leaves[new_leaf as usize].runs;
        // Half of a leaf just over capacity, on the stack: a split happens every few dozen edits.
        let mut buf = [(0u32, 0u32, 0u32); LEAF_CAP + 1];
        let mut large = Vec::new();
        let moved = match buf.get_mut(..runs.len()) {
            Some(m) => m,
            None => {
                large.resize(runs.len(), (0, 0, 0));
                &mut large[..]
            }
        };
        for (m, r) in moved.iter_mut().zip(runs) {
            *m = (r.id.replica, r.id.counter, r.len);
        }
        moved.sort_unstable();
        let mut i = 0;
        while i < moved.len() {
            let (replica, start, mut end) = (moved[i].0, moved[i].1, moved[i].1 + moved[i].2);
            i += 1;
            while i < moved.len() && moved[i].0 == replica && moved[i].1 == end {
                end += moved[i].2;
                i += 1;
            }
            ids.set(replica, start, end, new_leaf);
        }
        moved_cur
    }

    /// Deletes the live runs of `cur.leaf` from `cur` (the start of a live run) on, whole, while
    /// they fit in `remaining`, passing over the tombstones between them; records their ids in
    /// `deleted`. One sweep for what a selection delete covers: the widths are updated once and
    /// the tombstones that now continue one another are joined. Returns how many characters it
    /// deleted (0 when the first run does not fit).
    #[inline(never)]
    pub(super) fn delete_whole_runs(&mut self, cur: Cursor, remaining: &mut u32, deleted: &mut LocalDelete) -> u32 {
        let leaf = cur.leaf;
        let runs = &mut self.tree.leaves[leaf as usize].runs;
        let mut gone = Width::default();
        let mut end = cur.run;
        while let Some(run) = runs.get_mut(end) {
            if !run.deleted {
                if run.len > *remaining {
                    break;
                }
                gone = gone.add(run.width(&self.content));
                run.deleted = true;
                *remaining -= run.len;
                deleted.push(self.replicas.to_op_id(run.id).expect("a run has an id"), run.len as u64);
                if *remaining == 0 {
                    end += 1;
                    break;
                }
            }
            end += 1;
        }
        if gone.all == 0 {
            return 0;
        }
        // Join tombstones that continue one another, from the run before the first deleted one
        // to the run after the last.
        let from = cur.run.saturating_sub(1);
        let to = (end + 1).min(runs.len());
        let joins = |a: &Run, b: &Run| a.deleted && b.deleted && a.can_append(b);
        if let Some(first) = (from + 1..to).find(|&i| joins(&runs[i - 1], &runs[i])) {
            let mut kept = first - 1;
            for i in first..to {
                let run = runs[i];
                if joins(&runs[kept], &run) {
                    runs[kept].len += run.len;
                } else {
                    kept += 1;
                    runs[kept] = run;
                }
            }
            runs.remove_range(kept + 1, to);
        }
        self.tree.runs_changed(leaf, from);
        self.tree.update_width(leaf, gone, Width { all: gone.all, chars: 0, utf16: 0 });
        gone.chars
    }

    /// Deletes `len` characters starting at `cur`, all inside one run. Already deleted characters
    /// stay deleted. Returns where the first of them is now if anything became deleted (valid
    /// until the next change), `None` otherwise.
    pub(super) fn mark_deleted(&mut self, cur: Cursor, len: u32) -> Option<Cursor> {
        let leaf = cur.leaf;
        let mut index = cur.run;
        let runs = &mut self.tree.leaves[leaf as usize].runs;
        let run = runs[index];
        if run.deleted {
            return None;
        }
        // Backspace and forward delete at the edge of a run next to its own tombstones: move
        // the boundary instead of splitting off a run and joining it to the tombstone.
        let continues = |a: &Run, b: &Run| {
            b.id.replica == a.id.replica
                && b.id.counter == a.id.counter + a.len
                && b.origin_left == a.last()
                && b.origin_right == a.origin_right
        };
        let mut gone = run;
        gone.id = run.id.plus(cur.offset);
        gone.len = len;
        let suffix = cur.offset > 0 && cur.offset + len == run.len;
        if suffix && index + 1 < runs.len() && runs[index + 1].deleted && continues(&run, &runs[index + 1]) {
            runs[index].len = cur.offset;
            let next = &mut runs[index + 1];
            next.id = gone.id;
            next.len += len;
            next.origin_left = run.id.plus(cur.offset - 1);
            let before = gone.width(&self.content);
            self.tree.runs_changed(leaf, index);
            self.tree.update_width(leaf, before, Width { all: len, chars: 0, utf16: 0 });
            return Some(Cursor { leaf, run: index + 1, offset: 0 });
        }
        let prefix = cur.offset == 0 && len < run.len;
        if prefix && index > 0 && runs[index - 1].deleted && continues(&runs[index - 1], &run) {
            let at = Cursor { leaf, run: index - 1, offset: runs[index - 1].len };
            runs[index - 1].len += len;
            let rest = &mut runs[index];
            rest.id = run.id.plus(len);
            rest.len -= len;
            rest.origin_left = run.id.plus(len - 1);
            let before = gone.width(&self.content);
            self.tree.hidden_moved(leaf, index - 1);
            self.tree.runs_changed(leaf, index);
            self.tree.update_width(leaf, before, Width { all: len, chars: 0, utf16: 0 });
            return Some(at);
        }
        if cur.offset > 0 {
            // Cut off what follows the offset; from the middle of a run, cut in three with one
            // shift.
            let mut middle = runs[index].split(cur.offset);
            index += 1;
            if len < middle.len {
                let tail = middle.split(len);
                runs.insert_pair(index, middle, tail);
            } else {
                runs.insert(index, middle);
            }
        } else if len < runs[index].len {
            let right = runs[index].split(len);
            runs.insert(index + 1, right);
        }
        let before = runs[index].width(&self.content);
        runs[index].deleted = true;
        let after = runs[index].width(&self.content);
        // Tombstones next to each other that continue one another are stored as one run.
        if index + 1 < runs.len() && runs[index].can_append(&runs[index + 1]) {
            runs[index].len += runs[index + 1].len;
            runs.remove(index + 1);
        }
        let mut first_changed = index;
        let mut at = Cursor { leaf, run: index, offset: 0 };
        if index > 0 && runs[index - 1].can_append(&runs[index]) {
            at = Cursor { leaf, run: index - 1, offset: runs[index - 1].len };
            runs[index - 1].len += runs[index].len;
            runs.remove(index);
            first_changed = index - 1;
        }
        self.tree.runs_changed(leaf, first_changed.min(cur.run));
        self.tree.update_width(leaf, before, after);
        Some(self.split_if_full(leaf, at))
    }

    pub(super) fn apply_inner(
        &mut self,
        op: &RgaOp,
        deltas: Option<&mut Vec<TextDelta>>,
    ) -> Result<Applied, ApplyError> {
        self.typing = None;
        let hint = self.placed.take();
        let applied = match op {
            RgaOp::Insert { id, origin_left, origin_right, text } => {
                self.apply_insert(*id, *origin_left, *origin_right, text, deltas, hint)?
            }
            RgaOp::Delete { ranges } => {
                // Checked in full before anything changes; one range (the usual case) needs no
                // list.
                let mut first = None;
                let mut checked = Vec::new();
                for r in ranges {
                    let unknown = ApplyError::UnknownId { replica: r.start.replica, counter: r.start.counter };
                    let start = self.known_id(r.start).ok_or(unknown)?;
                    let end = (start.counter as u64).checked_add(r.len).filter(|e| *e > start.counter as u64);
                    let end = end.ok_or(ApplyError::Invalid("empty or overflowing delete range"))?;
                    if end > self.content[start.replica as usize].chars() as u64 {
                        return Err(ApplyError::UnknownId { replica: r.start.replica, counter: end - 1 });
                    }
                    if first.is_none() {
                        first = Some((start, r.len as u32));
                    } else {
                        checked.push((start, r.len as u32));
                    }
                }
                let mut changed = false;
                let mut deltas = deltas;
                let mut hint = hint;
                for (start, len) in first.into_iter().chain(checked) {
                    let (c, h) = self.delete_ids_near(start, len, deltas.as_deref_mut(), hint.take());
                    changed |= c;
                    hint = h;
                }
                // Nothing changed since: the next op (a backspace, say) starts looking there.
                self.placed = hint;
                if changed {
                    Applied::Changed
                } else {
                    Applied::Duplicate
                }
            }
        };
        self.after_edit();
        Ok(applied)
    }

    /// Deletes the characters with ids `start .. start + len` (all known).
    pub(super) fn delete_ids(&mut self, start: Id, len: u32, deltas: Option<&mut Vec<TextDelta>>) -> bool {
        self.delete_ids_near(start, len, deltas, None).0
    }

    /// [`delete_ids`](Self::delete_ids) where `hint` may name a character and where it is, valid
    /// until the first change.
    fn delete_ids_near(
        &mut self,
        start: Id,
        len: u32,
        mut deltas: Option<&mut Vec<TextDelta>>,
        mut hint: Option<(Id, Cursor)>,
    ) -> (bool, Option<(Id, Cursor)>) {
        let mut changed = false;
        let mut done = 0;
        while done < len {
            let id = start.plus(done);
            let cur = self.cursor_near(id, hint.take()).expect("known id has a run");
            let run = self.tree.leaves[cur.leaf as usize].runs[cur.run];
            let take = (len - done).min(run.len - cur.offset);
            hint = Some((id, cur));
            if !run.deleted {
                if let Some(d) = deltas.as_deref_mut() {
                    let at = self.tree.position(cur, &self.content);
                    let mut piece = run;
                    piece.id = id;
                    piece.len = take;
                    let w = piece.width(&self.content);
                    d.push(TextDelta::Delete {
                        pos: at.chars as usize,
                        pos_utf16: at.utf16 as usize,
                        len: w.chars as usize,
                        len_utf16: w.utf16 as usize,
                    });
                }
                if let Some(at) = self.mark_deleted(cur, take) {
                    changed = true;
                    hint = Some((id, at));
                }
            }
            done += take;
        }
        // Where the last piece is now: the next piece, or the next delete, is most likely next
        // to it.
        (changed, hint)
    }

    fn apply_insert(
        &mut self,
        id: OpId,
        origin_left: Option<OpId>,
        origin_right: Option<OpId>,
        text: &str,
        deltas: Option<&mut Vec<TextDelta>>,
        hint: Option<(Id, Cursor)>,
    ) -> Result<Applied, ApplyError> {
        let len = super::content::char_count(text) as u64;
        if len == 0 {
            return Err(ApplyError::Invalid("empty insert"));
        }
        let end = id.counter.checked_add(len).filter(|e| *e < u32::MAX as u64);
        let end = end.ok_or(ApplyError::Invalid("counter overflow"))?;
        // One replica-table lookup for the common case where the origins are the same replica's.
        let known_replica = self.replicas.lookup(id.replica);
        let next = known_replica.map_or(0, |r| self.content[r as usize].chars() as u64);
        if end <= next {
            return Ok(Applied::Duplicate);
        }
        if id.counter > next {
            return Err(ApplyError::OutOfOrder { replica: id.replica, expected: next, found: id.counter });
        }
        // Part of it may be known already (after a merge): keep the new tail only.
        let skip = (next - id.counter) as usize;
        let (text, origin_left) = if skip > 0 {
            let byte = text.char_indices().nth(skip).map_or(text.len(), |(b, _)| b);
            (&text[byte..], Some(OpId::new(id.replica, next - 1)))
        } else {
            (text, origin_left)
        };
        let resolve = |o: Option<OpId>| -> Result<Id, ApplyError> {
            let Some(o) = o else { return Ok(Id::NONE) };
            let known = if o.replica == id.replica {
                // `next` is 0 for a replica not in the table: nothing of it is known.
                known_replica.filter(|_| o.counter < next).map(|r| Id::new(r, o.counter as u32))
            } else {
                self.known_id(o)
            };
            known.ok_or(ApplyError::UnknownId { replica: o.replica, counter: o.counter })
        };
        let left = resolve(origin_left)?;
        let right = resolve(origin_right)?;
        let r = match known_replica {
            Some(r) => r,
            None => self.ensure_replica(id.replica),
        };
        self.content[r as usize].push_str(text);
        let run = Run {
            id: Id::new(r, next as u32),
            len: (end - next) as u32,
            origin_left: left,
            origin_right: right,
            deleted: false,
        };
        let cur = self.integrate(run, id.replica, hint);
        self.placed = Some((run.last(), Cursor { offset: cur.offset + run.len - 1, ..cur }));
        if let Some(d) = deltas {
            let at = self.tree.position(cur, &self.content);
            d.push(TextDelta::Insert { pos: at.chars as usize, pos_utf16: at.utf16 as usize, text: text.to_owned() });
        }
        Ok(Applied::Changed)
    }

    /// The runs in document order with maximal merging, in public ids: a canonical form.
    pub(super) fn pieces(&self) -> Vec<Piece> {
        let mut out: Vec<(Run, Piece)> = Vec::new();
        let mut leaf = self.tree.first_leaf;
        while leaf != super::node::NIL {
            for run in &self.tree.leaves[leaf as usize].runs {
                if let Some((last, public)) = out.last_mut() {
                    if last.can_append(run) {
                        last.len += run.len;
                        public.1 += run.len;
                        continue;
                    }
                }
                let public = (
                    self.replicas.to_op_id(run.id).expect("a run has an id"),
                    run.len,
                    self.replicas.to_op_id(run.origin_left),
                    self.replicas.to_op_id(run.origin_right),
                    run.deleted,
                );
                out.push((*run, public));
            }
            leaf = self.tree.leaves[leaf as usize].next;
        }
        out.into_iter().map(|(_, p)| p).collect()
    }

    /// The replica a local index stands for.
    pub(super) fn replica_of(&self, index: u32) -> ReplicaId {
        self.replicas.replica(index)
    }

    /// The position, counting every character ever inserted, of the character at `cur`.
    pub(super) fn pos_all(&self, cur: Cursor) -> u32 {
        let mut at = self.tree.leaf_start(cur.leaf).all;
        for run in &self.tree.leaves[cur.leaf as usize].runs[..cur.run] {
            at += run.len;
        }
        at + cur.offset
    }

    /// The cursor at position `pos` counting every character (`pos < total`).
    pub(super) fn seek_all(&self, pos: u32) -> Option<Cursor> {
        self.tree.seek(pos, Metric::All, &self.content)
    }
}

//! Where a remote insert goes (the YjsMod / FugueMax rule of the module docs), and state merge.
//!
//! Positions here count every character ever inserted (tombstones too), as in the reference
//! implementation (josephg/reference-crdts, `integrateYjsMod`); `left_end` is one past the left
//! origin (0 for "start of document") and `right` is the right origin (the current length for
//! "end of document").
//!
//! Inside a run only the first character the scan meets needs a comparison: every later one has
//! the character before it as left origin, which is right of ours, so the scan skips it.

use super::node::{Cursor, Run, NIL};
use super::{Id, Rga};
use crate::ReplicaId;

impl Rga {
    /// Places a remote run whose origins are known and returns where it starts. `known` may
    /// give where one character is (a caller integrating runs one after another passes where
    /// the previous one ended: the next often continues it).
    pub(super) fn integrate(&mut self, run: Run, replica: ReplicaId, known: Option<(Id, Cursor)>) -> Cursor {
        // Fast path, by far the most common: nothing was inserted concurrently between the two
        // origins, so the run goes right after its left origin.
        let left = match known {
            _ if run.origin_left.is_none() => None,
            _ => self.cursor_near(run.origin_left, known),
        };
        let next = match left {
            None => self.seek_all(0),
            Some(c) => self.tree.next_char(c),
        };
        if next.map_or(Id::NONE, |c| self.id_at(c)) == run.origin_right {
            return self.place_after(left, run);
        }
        let total = self.tree.total().all;
        let pos_of = |rga: &Rga, id: Id| rga.pos_all(rga.cursor_of(id).expect("origin is known"));
        let left_end = if run.origin_left.is_none() { 0 } else { pos_of(self, run.origin_left) + 1 };
        let right = if run.origin_right.is_none() { total } else { pos_of(self, run.origin_right) };
        let mut dest = left_end;
        if left_end < right {
            let mut scanning = false;
            let mut i = left_end;
            let mut cur = self.seek_all(i);
            loop {
                if !scanning {
                    dest = i;
                }
                if i >= right {
                    break;
                }
                let Some(c) = cur else { break };
                let other = self.tree.leaves[c.leaf as usize].runs[c.run];
                let other_left_end = if c.offset > 0 {
                    i
                } else if other.origin_left.is_none() {
                    0
                } else {
                    pos_of(self, other.origin_left) + 1
                };
                if other_left_end < left_end {
                    break;
                }
                if other_left_end == left_end {
                    let other_right =
                        if other.origin_right.is_none() { total } else { pos_of(self, other.origin_right) };
                    if other_right < right {
                        scanning = true;
                    } else if other_right == right && replica < self.replica_of(other.id.replica) {
                        break;
                    } else {
                        scanning = false;
                    }
                }
                let run_end = i + (other.len - c.offset);
                if right < run_end {
                    i = right;
                    cur = None;
                } else {
                    i = run_end;
                    cur = self.tree.next_run(c.leaf, c.run);
                }
            }
        }
        let after = if dest == 0 { None } else { self.seek_all(dest - 1) };
        self.place_after(after, run)
    }

    /// Merges another replica's state into this one: afterwards this text holds every character
    /// either held, in the order both agree on, deleted if either deleted it.
    pub fn merge(&mut self, other: &Rga) {
        self.typing = None;
        self.placed = None;
        // The other's replica indices in this text's table.
        let remap: Vec<u32> =
            (0..other.replicas.len() as u32).map(|i| self.ensure_replica(other.replica_of(i))).collect();
        let to_ours = |id: Id| if id.is_none() { Id::NONE } else { Id::new(remap[id.replica as usize], id.counter) };
        // What this text knew before, per replica (our index): older ids may need deleting.
        let known_before: Vec<u32> = self.content.iter().map(|b| b.chars()).collect();
        // The other's runs in document order, and per replica of the other their indices in
        // counter order: runs tile each replica's counters, so a slot per counter sorts them.
        let mut runs: Vec<Run> = Vec::new();
        let mut leaf = other.tree.first_leaf;
        while leaf != NIL {
            runs.extend_from_slice(&other.tree.leaves[leaf as usize].runs);
            leaf = other.tree.leaves[leaf as usize].next;
        }
        let mut slots: Vec<Vec<u32>> = other.content.iter().map(|b| vec![u32::MAX; b.chars() as usize]).collect();
        for (i, run) in runs.iter().enumerate() {
            slots[run.id.replica as usize][run.id.counter as usize] = i as u32;
        }
        let queues: Vec<Vec<u32>> =
            slots.into_iter().map(|s| s.into_iter().filter(|i| *i != u32::MAX).collect()).collect();
        for (q, buf) in other.content.iter().enumerate() {
            let r = remap[q] as usize;
            let new = buf.chars().saturating_sub(self.content[r].chars());
            self.content[r].reserve(buf.byte_len(buf.chars() - new));
        }
        // Kahn's algorithm: a run goes in once its origins are known here; a queue whose head
        // waits for an id sleeps until that id's replica (our index) has grown past it.
        let mut heads = vec![0usize; queues.len()];
        let mut waiting: Vec<Vec<(u32, usize)>> = vec![Vec::new(); self.replicas.len()];
        let mut ready: Vec<usize> = (0..queues.len()).collect();
        let known = |rga: &Rga, id: Id| id.is_none() || id.counter < rga.content[id.replica as usize].chars();
        // Where the last placed run ended: the next run of the queue often continues it.
        let mut last: Option<(Id, Cursor)> = None;
        while let Some(q) = ready.pop() {
            let r = remap[q];
            while let Some(&index) = queues[q].get(heads[q]) {
                let run = runs[index as usize];
                let next = self.content[r as usize].chars();
                let (start, end) = (run.id.counter, run.id.counter + run.len);
                if end <= next {
                    heads[q] += 1;
                    continue;
                }
                // Part of it may be known already: keep the new tail only.
                let from = start.max(next);
                let origin_left = if start < next { Id::new(r, next - 1) } else { to_ours(run.origin_left) };
                let origin_right = to_ours(run.origin_right);
                let gap = (start > next).then(|| Id::new(r, start - 1));
                let blocker =
                    [Some(origin_left), Some(origin_right), gap].into_iter().flatten().find(|o| !known(self, *o));
                if let Some(b) = blocker {
                    waiting[b.replica as usize].push((b.counter, q));
                    break;
                }
                self.content[r as usize].push_str(other.content[q].slice(from, end - from));
                // New characters the other deleted go in deleted: same place, nothing to redo.
                let placed =
                    Run { id: Id::new(r, from), len: end - from, origin_left, origin_right, deleted: run.deleted };
                let at = self.integrate(placed, other.replica_of(q as u32), last);
                last = Some((placed.last(), Cursor { offset: at.offset + placed.len - 1, ..at }));
                heads[q] += 1;
                let grown = self.content[r as usize].chars();
                waiting[r as usize].retain(|&(needed, w)| {
                    if needed < grown {
                        ready.push(w);
                        false
                    } else {
                        true
                    }
                });
            }
        }
        // Deletes of characters this text already had.
        for run in runs.iter().filter(|r| r.deleted) {
            let id = to_ours(run.id);
            let old_end = known_before.get(id.replica as usize).copied().unwrap_or(0);
            let end = (id.counter + run.len).min(old_end);
            if id.counter < end {
                self.delete_ids(id, end - id.counter, None);
            }
        }
        self.after_edit();
    }
}

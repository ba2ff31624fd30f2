//! Where a remote insert goes (the YjsMod / FugueMax rule of the module docs), and state merge.
//!
//! Positions here count every character ever inserted (tombstones too), as in the reference
//! implementation (josephg/reference-crdts, `integrateYjsMod`); `left_end` is one past the left
//! origin (0 for "start of document") and `right` is the right origin (the current length for
//! "end of document").
//!
//! Inside a run only the first character the scan meets needs a comparison: every later one has
//! the character before it as left origin, which is right of ours, so the scan skips it.

use std::collections::HashMap;

use super::node::{Cursor, Run};
use super::{Id, Rga};
use crate::{OpId, ReplicaId};

impl Rga {
    /// Places a remote run whose origins are known and returns where it starts.
    pub(super) fn integrate(&mut self, run: Run, replica: ReplicaId) -> Cursor {
        // Fast path, by far the most common: nothing was inserted concurrently between the two
        // origins, so the run goes right after its left origin.
        let left = if run.origin_left.is_none() { None } else { self.cursor_of(run.origin_left) };
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
        // The other's runs per replica, in counter order.
        let mut queues: Vec<(ReplicaId, Vec<Run>, usize)> = Vec::new();
        let mut queue_of: HashMap<u32, usize> = HashMap::new();
        let mut deleted: Vec<(OpId, u32)> = Vec::new();
        let mut leaf = other.tree.first_leaf;
        while leaf != super::node::NIL {
            for run in &other.tree.leaves[leaf as usize].runs {
                let q = *queue_of.entry(run.id.replica).or_insert_with(|| {
                    queues.push((other.replica_of(run.id.replica), Vec::new(), 0));
                    queues.len() - 1
                });
                queues[q].1.push(*run);
                if run.deleted {
                    deleted.push((other.replicas.to_op_id(run.id).expect("run id"), run.len));
                }
            }
            leaf = other.tree.leaves[leaf as usize].next;
        }
        for q in &mut queues {
            q.1.sort_unstable_by_key(|r| r.id.counter);
        }
        // Kahn's algorithm: a run goes in once its origins are known here; a queue whose head
        // waits for an id sleeps until that id's replica has grown past it.
        let mut waiting: HashMap<ReplicaId, Vec<(u64, usize)>> = HashMap::new();
        let mut ready: Vec<usize> = (0..queues.len()).collect();
        while let Some(q) = ready.pop() {
            let replica = queues[q].0;
            while let Some(run) = queues[q].1.get(queues[q].2).copied() {
                let to_op = |id: Id| other.replicas.to_op_id(id);
                let start = run.id.counter as u64;
                let next = self.next_counter(replica);
                if start + run.len as u64 <= next {
                    queues[q].2 += 1;
                    continue;
                }
                let origin_left =
                    if start < next { Some(OpId::new(replica, next - 1)) } else { to_op(run.origin_left) };
                let origin_right = to_op(run.origin_right);
                let blocker = [origin_left, origin_right, (start > next).then(|| OpId::new(replica, start - 1))]
                    .into_iter()
                    .flatten()
                    .find(|o| o.counter >= self.next_counter(o.replica));
                if let Some(b) = blocker {
                    waiting.entry(b.replica).or_default().push((b.counter, q));
                    break;
                }
                let buf = &other.content[run.id.replica as usize];
                let text = buf.slice(start as u32, run.len);
                let op = super::RgaOp::Insert {
                    id: OpId::new(replica, start),
                    origin_left,
                    origin_right,
                    text: text.to_owned(),
                };
                self.apply_inner(&op, None).expect("origins checked above");
                queues[q].2 += 1;
                let grown = self.next_counter(replica);
                if let Some(ws) = waiting.get_mut(&replica) {
                    ws.retain(|(needed, w)| {
                        if *needed < grown {
                            ready.push(*w);
                            false
                        } else {
                            true
                        }
                    });
                }
            }
        }
        for (start, len) in deleted {
            if let Some(id) = self.known_id(start) {
                if id.counter as u64 + len as u64 <= self.content[id.replica as usize].chars() as u64 {
                    self.delete_ids(id, len, None);
                }
            }
        }
        self.after_edit();
    }
}

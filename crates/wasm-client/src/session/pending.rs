//! The pending changes: what the server is not known to have, kept in causal order, with an
//! index by replica so that adding, acknowledging and forgetting a change never scans them all.

use super::*;

impl Session {
    /// Appends the changes the server may lack to `pending`, skipping known ones; returns
    /// whether any was added. The caller keeps `pending` in causal order (see
    /// [`Session::sort_unsent`]).
    pub(super) fn add_pending(&mut self, changes: Vec<Change>) -> bool {
        let before = self.pending.len();
        for change in changes {
            let known = change.seq <= self.server_version.get(change.replica)
                || self.pending_seqs.get(&change.replica).is_some_and(|seqs| seqs.contains(&change.seq));
            if !known && change.validate().is_ok() {
                self.pending_seqs.entry(change.replica).or_default().insert(change.seq);
                self.pending.push_back(change);
            }
        }
        self.pending.len() > before
    }

    /// Puts the unsent pending changes in a causal order (the server refuses a batch whose
    /// changes are not), leaving already ordered changes where they are. Linear in the pending
    /// changes: used when restoring and merging saved states, and when changes from other tabs
    /// were released from the buffer, never for a keystroke.
    pub(super) fn sort_unsent(&mut self) {
        let sent = match &self.link {
            Link::Up { sent, .. } => *sent,
            _ => 0,
        };
        let mut unsent: Vec<Change> = self.pending.drain(sent..).collect();
        crdt_core::causal_order(&mut unsent);
        self.pending.extend(unsent);
    }

    /// Drops the pending changes the server's known version covers; returns how many.
    ///
    /// Acknowledgements cover the oldest changes, so those leave from the front; the rest is
    /// scanned only when `pending_seqs` shows that a covered change remains (a change another
    /// tab delivered first, say).
    pub(super) fn prune(&mut self) -> usize {
        let mut removed = 0;
        while let Some(front) = self.pending.front() {
            if front.seq > self.server_version.get(front.replica) {
                break;
            }
            let Some(change) = self.pending.pop_front() else { break };
            self.forget_seq(&change);
            if let Link::Up { sent, .. } = &mut self.link {
                *sent = sent.saturating_sub(1);
            }
            removed += 1;
        }
        let server = &self.server_version;
        let covered = self
            .pending_seqs
            .iter()
            .any(|(replica, seqs)| seqs.first().is_some_and(|&seq| seq <= server.get(*replica)));
        if covered {
            removed += self.remove_covered();
        }
        removed
    }

    /// Removes every pending change the server's known version covers, keeping `sent`
    /// pointing at the first unsent one.
    pub(super) fn remove_covered(&mut self) -> usize {
        let sent = match &self.link {
            Link::Up { sent, .. } => *sent,
            _ => 0,
        };
        let mut removed_sent = 0;
        let mut index = 0;
        let before = self.pending.len();
        let server = &self.server_version;
        let seqs = &mut self.pending_seqs;
        self.pending.retain(|change| {
            let remove = change.seq <= server.get(change.replica);
            if remove {
                if index < sent {
                    removed_sent += 1;
                }
                if let Some(set) = seqs.get_mut(&change.replica) {
                    set.remove(&change.seq);
                }
            }
            index += 1;
            !remove
        });
        seqs.retain(|_, set| !set.is_empty());
        if let Link::Up { sent, .. } = &mut self.link {
            *sent -= removed_sent;
        }
        before - self.pending.len()
    }

    pub(super) fn forget_seq(&mut self, change: &Change) {
        if let Some(set) = self.pending_seqs.get_mut(&change.replica) {
            set.remove(&change.seq);
            if set.is_empty() {
                self.pending_seqs.remove(&change.replica);
            }
        }
    }
}

//! Document-order reads for the compact history (`document/log_codec.rs`): the runs that
//! follow a character, so that a delete of a selection can be stored as where it starts and
//! how many characters it took, its id ranges read back from the text.

use super::node::Cursor;
use super::Rga;
use crate::{OpId, ReplicaId};

/// The text's characters in document order, deleted or not, as runs of one replica's
/// consecutive counters: (the text's own index of the replica, first counter, length).
pub(crate) struct DocRuns<'a> {
    rga: &'a Rga,
    cur: Option<Cursor>,
}

impl Rga {
    /// The runs from character `from` on, in document order; `None` if this text has not
    /// seen `from`.
    pub(crate) fn runs_from(&self, from: OpId) -> Option<DocRuns<'_>> {
        let cur = self.cursor_of(self.known_id(from)?)?;
        Some(DocRuns { rga: self, cur: Some(cur) })
    }

    /// The replicas this text has seen, in the order of its own indexes (those [`DocRuns`]
    /// yields).
    pub(crate) fn replica_table(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.replicas.iter()
    }
}

impl Iterator for DocRuns<'_> {
    type Item = (u32, u32, u32);

    fn next(&mut self) -> Option<(u32, u32, u32)> {
        let cur = self.cur?;
        let run = &self.rga.tree.leaves[cur.leaf as usize].runs[cur.run];
        self.cur = self.rga.tree.next_run(cur.leaf, cur.run);
        Some((run.id.replica, run.id.counter + cur.offset, run.len - cur.offset))
    }
}

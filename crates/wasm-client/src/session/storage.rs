//! The saving half of [`Session`]: what a page that saves calls (see the module docs of
//! `session.rs` for the write-ahead rule, and `saved.rs` for the formats).

use crdt_core::{codec, Change, DecodeError, ReplicaId};

use super::{Session, MAX_RECORD};
use crate::saved::{Saved, SavedChanges};

impl Session {
    /// An empty document edited as `replica`, for a page that saves: own changes are sent
    /// only once reported stored ([`Session::mark_saved`]). The page then restores what it
    /// stored with [`Session::restore_state`] and [`Session::restore_changes`] and calls
    /// [`Session::restored`].
    ///
    /// `replica` may be the id this browser used for the document before (from its pool of
    /// ids, held by one tab at a time): the restored state knows how many changes it made, and
    /// write-ahead guarantees that no change of it exists that the storage lacks.
    pub fn with_storage(replica: ReplicaId) -> Session {
        let mut session = Session::new(replica);
        session.saved_through = Some(0);
        session
    }

    /// Merges a stored compacted state ([`Session::compact`] or [`Session::export`] bytes).
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let saved = Saved::decode(bytes)?;
        let other = codec::decode_snapshot(&saved.snapshot, self.doc.replica())?;
        // The pending changes a compact state leaves out are in its history.
        let derived = other.ops_since(&saved.server_version).unwrap_or_default();
        if self.doc.version().is_empty() && self.pending.is_empty() && self.doc.pending_count() == 0 {
            self.doc = other;
        } else {
            self.doc.merge(&other);
        }
        self.server_version.merge(&saved.server_version);
        self.add_pending(saved.pending);
        self.add_pending(derived);
        Ok(())
    }

    /// Applies a stored record of changes ([`Session::take_unsaved`] bytes).
    pub fn restore_changes(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let record = SavedChanges::decode(bytes)?;
        let changes = codec::decode_changes(&record.changes)?;
        self.server_version.merge(&record.server_version);
        // Like changes from a tab: pending once applied (a buffered one may wait for a later
        // record). `restored` sorts them once, at the end.
        self.from_tabs.extend(changes.iter().cloned());
        for change in changes {
            // A change that does not fit was refused when it was first received too; the
            // record keeps it only because it was taken in before that was known.
            let _ = self.doc.apply_change(change);
        }
        self.adopt_tab_changes(true);
        Ok(())
    }

    /// Ends a restore: everything restored counts as stored, and pending changes are put in a
    /// causal order.
    pub fn restored(&mut self) {
        self.sort_unsent();
        self.prune();
        self.unsaved.clear();
        let own = self.own_seq();
        self.taken_through = own;
        self.saved_through = self.saved_through.map(|_| own);
    }

    /// [`Session::export`] for a page that saves: the stored records so far are covered by it
    /// and can be deleted in the transaction that stores it.
    pub fn compact(&mut self) -> Vec<u8> {
        self.unsaved.clear();
        self.needs_compaction = false;
        self.taken_through = self.own_seq();
        self.export()
    }

    /// The changes taken in since the last call (at most [`MAX_RECORD`]; call until `None`),
    /// as one record for storage and for the other tabs.
    pub fn take_unsaved(&mut self) -> Option<Vec<u8>> {
        if self.unsaved.is_empty() {
            return None;
        }
        let take = self.unsaved.len().min(MAX_RECORD);
        let changes: Vec<Change> = self.unsaved.drain(..take).collect();
        if let Some(ordinal) = changes.iter().filter_map(|c| self.own_ordinal(c)).max() {
            self.taken_through = self.taken_through.max(ordinal);
        }
        let record =
            SavedChanges { changes: codec::encode_changes(&changes), server_version: self.server_version.clone() };
        Some(record.encode())
    }

    /// The highest own change ordinal (its `seq`, unless the session minted a new replica:
    /// see the module docs of `session.rs`) in what [`Session::take_unsaved`] and
    /// [`Session::compact`] returned so far: pass it to [`Session::mark_saved`] once stored.
    pub fn taken_through(&self) -> u64 {
        self.taken_through
    }

    /// Storage holds every own change up to ordinal `through`: they may now be sent.
    pub fn mark_saved(&mut self, through: u64) {
        if let Some(saved) = &mut self.saved_through {
            *saved = (*saved).max(through);
        }
    }

    /// Whether the next save must be a compacted state (a merged snapshot is not a change).
    pub fn needs_compaction(&self) -> bool {
        self.needs_compaction
    }

    /// The ordinal of the current replica's latest change (its seq, plus the replica's base).
    fn own_seq(&self) -> u64 {
        self.base + self.doc.version().get(self.doc.replica())
    }
}

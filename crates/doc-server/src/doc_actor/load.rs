//! Loading a document from the store (latest snapshot, then the log suffix re-applied in order)
//! and writing snapshots that compact the log.
//!
//! Snapshots are [`codec::encode_snapshot`], which keeps the whole history, so that after a
//! restart the server can still answer `Hello` with the changes a client lacks rather than a
//! snapshot. The history grows with every change and is never pruned: a document edited for a
//! long time gets a large snapshot. Pruning it (snapshots without history once every known
//! client is past a version) is left for later.

use std::sync::Arc;

use crdt_core::{codec, ApplyOutcome, Document, ReplicaId};
use tokio::time::Instant;

use super::DocActor;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::{DocId, ServerError};

/// A document rebuilt from the store.
pub(super) struct Loaded {
    pub doc: Document,
    /// The last log index included.
    pub log_index: u64,
    /// The log index the stored snapshot includes (0 without a snapshot).
    pub snapshot_index: u64,
    /// How many changes were re-applied from the log after the snapshot.
    pub replayed: u64,
}

/// Reads the snapshot and the log of `id` and rebuilds the document.
pub(super) async fn load(store: &Arc<dyn Store>, id: &DocId) -> Result<Loaded, ServerError> {
    let stored = {
        let store = Arc::clone(store);
        let id = id.clone();
        tokio::task::spawn_blocking(move || store.load(&id)).await??
    };
    let corrupt = |reason: String| ServerError::Load { doc: id.to_string(), reason };
    // The server never edits, so its replica id only has to be one nobody else uses.
    let replica = ReplicaId::random();
    let (mut doc, snapshot_index) = match &stored.snapshot {
        Some((bytes, through)) => {
            let doc = codec::decode_snapshot(bytes, replica).map_err(|error| corrupt(format!("snapshot: {error}")))?;
            (doc, *through)
        }
        None => (Document::new(replica), 0),
    };
    let mut log_index = snapshot_index;
    let mut replayed = 0;
    for entry in &stored.log {
        let changes = codec::decode_changes(&entry.bytes)
            .map_err(|error| corrupt(format!("log entry {}: {error}", entry.index)))?;
        for change in changes {
            match doc.apply_change(change) {
                Ok(ApplyOutcome::Applied { .. }) => replayed += 1,
                Ok(ApplyOutcome::Duplicate) => {}
                Ok(ApplyOutcome::Buffered) => {
                    return Err(corrupt(format!(
                        "log entry {} holds a change whose dependencies are not logged before it",
                        entry.index
                    )))
                }
                Err(error) => {
                    return Err(corrupt(format!("log entry {}: {error}", entry.index)));
                }
            }
        }
        log_index = entry.index;
    }
    Ok(Loaded { doc, log_index, snapshot_index, replayed })
}

impl DocActor {
    /// Writes a snapshot if the log holds anything after the last one. On failure the log still
    /// holds every change, so the document stays correct; the snapshot is retried later.
    pub(super) async fn snapshot(&mut self) {
        if self.log_index <= self.snapshot_index {
            self.changes_since_snapshot = 0;
            self.first_unsnapshotted = None;
            return;
        }
        let started = Instant::now();
        let bytes = codec::encode_snapshot(&self.doc);
        let size = bytes.len();
        let through = self.log_index;
        let store = Arc::clone(&self.ctx.store);
        let id = self.id.clone();
        let result = tokio::task::spawn_blocking(move || store.write_snapshot(&id, &bytes, through))
            .await
            .map_err(ServerError::from)
            .and_then(|written| written.map_err(ServerError::from));
        match result {
            Ok(()) => {
                tracing::debug!(through, size, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot written");
                Metrics::inc(&self.ctx.metrics.snapshots_written);
                self.snapshot_index = through;
                self.changes_since_snapshot = 0;
                self.first_unsnapshotted = None;
            }
            Err(error) => {
                tracing::warn!(%error, "snapshot failed; the log still holds every change");
                Metrics::inc(&self.ctx.metrics.storage_errors);
                self.first_unsnapshotted = Some(Instant::now());
            }
        }
    }

    /// Rebuilds the document from the store and re-applies `changes` (the round's batches so
    /// far), undoing a half-applied batch. See the module docs of `doc_actor`.
    pub(super) async fn rebuild(&mut self, changes: Vec<crdt_core::Change>) -> Result<(), ServerError> {
        let mut loaded = load(&self.ctx.store, &self.id).await?;
        for change in changes {
            loaded.doc.apply_change(change).map_err(|error| ServerError::Load {
                doc: self.id.to_string(),
                reason: format!("re-applying the round after a rejected batch: {error}"),
            })?;
        }
        self.doc = loaded.doc;
        self.catchup_snapshot = None;
        Ok(())
    }
}

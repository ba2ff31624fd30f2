//! Loading a document from the store (latest snapshot, then the log suffix re-applied in order)
//! and writing snapshots that compact the log.
//!
//! Snapshots are [`codec::encode_snapshot`], which keeps the whole history, so that after a
//! restart the server can still answer `Hello` with the changes a client lacks rather than a
//! snapshot. The history is the compact log of crdt-core, so a snapshot's size follows the
//! document's compact size (about 100 KB for the automerge-paper trace, 260,000 keystrokes).
//!
//! A log entry that cannot be read or applied (a damaged store) does not make the document
//! unloadable: it is skipped and logged, what came before it is served, and so is what came
//! after it as far as it does not depend on it. The entry and everything after it stay in the
//! store: no snapshot is written while the actor holds a damaged load (a snapshot deletes the
//! log it covers).
//!
//! When to snapshot is a trade between bytes written and load time (`DocActor::snapshot_due`):
//! a snapshot is due once the log since the last one is as large as that snapshot (so snapshots
//! never cost more bytes than the log they replace: everything written stays within about twice
//! the log), or holds `--snapshot-every` changes (which bounds what a load replays), or its
//! first change is `--snapshot-interval` old. A snapshot the decoder would refuse (above
//! [`codec::MAX_SNAPSHOT_LEN`]) is never written: the log keeps every change instead.
//!
//! A snapshot is written in the background ([`DocActor::start_snapshot`]): the actor copies the
//! document (about a millisecond for a megabyte of text) and a blocking thread encodes and
//! writes the copy, while later rounds go on (encoding a 1 MB document on the actor held every
//! round of it for tens of milliseconds: its p99 was 3× an empty document's). Unloading and
//! shutdown wait for it ([`DocActor::snapshot`]).

use std::sync::Arc;

use crdt_core::{codec, ApplyOutcome, Document, ReplicaId};
use tokio::time::Instant;

use super::{log_entry, DocActor};
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::{DocId, ServerError};

/// The log may grow to this many bytes before its size alone calls for a snapshot, so that a
/// small document is not snapshotted on every commit.
const MIN_SNAPSHOT_TRIGGER_BYTES: u64 = 16 << 10;

/// Whether the decoder accepts a snapshot of `len` bytes.
fn loadable_snapshot(len: usize) -> bool {
    len <= codec::MAX_SNAPSHOT_LEN
}

/// A document rebuilt from the store.
pub(super) struct Loaded {
    pub doc: Document,
    /// The last log index included.
    pub log_index: u64,
    /// The log index the stored snapshot includes (0 without a snapshot).
    pub snapshot_index: u64,
    /// How many changes were re-applied from the log after the snapshot.
    pub replayed: u64,
    /// The stored snapshot's size (0 without one).
    pub snapshot_bytes: u64,
    /// The size of the log entries after it.
    pub log_bytes: u64,
    /// The first log entry that could not be read or applied, and why: the document holds
    /// everything before it, and nothing from it on (see [`load`]).
    pub damaged: Option<(u64, String)>,
    /// The registered owners of the document's replicas.
    pub authors: std::collections::BTreeMap<ReplicaId, crate::storage::AuthorHash>,
    /// The names people gave for their replicas.
    pub names: std::collections::BTreeMap<ReplicaId, String>,
}

/// Reads the snapshot and the log of `id` and rebuilds the document.
pub(super) async fn load(store: &Arc<dyn Store>, id: &DocId) -> Result<Loaded, ServerError> {
    let stored = {
        let store = Arc::clone(store);
        let id = id.clone();
        tokio::task::spawn_blocking(move || store.load(&id)).await??
    };
    let corrupt = |reason: String| ServerError::Load { doc: id.to_string(), reason };
    // The server edits as one replica per document (HTTP edits: a rename from the list), the
    // same across loads, so its edits never grow the document's version vector.
    let replica = super::server_replica(id);
    let (mut doc, snapshot_index) = match &stored.snapshot {
        Some((bytes, through)) => {
            let doc = codec::decode_snapshot(bytes, replica).map_err(|error| corrupt(format!("snapshot: {error}")))?;
            (doc, *through)
        }
        None => (Document::new(replica), 0),
    };
    let mut log_index = snapshot_index;
    let mut replayed = 0;
    let mut log_bytes = 0;
    let mut damaged: Option<(u64, String)> = None;
    for entry in &stored.log {
        log_bytes += entry.bytes.len() as u64;
        // A damaged entry is skipped, not fatal: what came before it is served, and so is what
        // came after it as far as it does not depend on it (the rest waits in the document's
        // buffer). The entry stays in the store untouched: the actor writes no snapshot, which
        // would delete it.
        if let Err(reason) = replay(&mut doc, &entry.bytes, &mut replayed, damaged.is_some()) {
            tracing::error!(doc = %id, entry = entry.index, %reason, "damaged log entry: skipped, kept in the store");
            damaged.get_or_insert((entry.index, reason));
        }
        log_index = entry.index;
    }
    let snapshot_bytes = stored.snapshot.as_ref().map_or(0, |(bytes, _)| bytes.len() as u64);
    let (authors, names) = (stored.authors, stored.names);
    Ok(Loaded { doc, log_index, snapshot_index, replayed, snapshot_bytes, log_bytes, damaged, authors, names })
}

/// Applies one log entry's changes; counts the newly applied ones in `replayed`. On an error
/// the changes before the failing one stay applied (each change applies whole or not at all).
/// A change whose dependencies are missing is an error, unless an earlier entry was damaged
/// (`after_damage`): then it may depend on that entry, and waits in the document's buffer.
fn replay(doc: &mut Document, bytes: &[u8], replayed: &mut u64, after_damage: bool) -> Result<(), String> {
    let changes = log_entry::unpack(bytes).map_err(|error| format!("undecodable: {error}"))?;
    for change in changes {
        match doc.apply_change(change) {
            Ok(ApplyOutcome::Applied { changes, .. }) => *replayed += changes as u64,
            Ok(ApplyOutcome::Duplicate) => {}
            Ok(ApplyOutcome::Buffered) if after_damage => {}
            Ok(ApplyOutcome::Buffered) => {
                return Err("holds a change whose dependencies are not logged before it".into())
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(())
}

/// A snapshot written in the background: what it covers, and how the write went.
pub(super) struct SnapshotDone {
    through: u64,
    size: usize,
    started: Instant,
    result: Result<(), ServerError>,
}

/// The snapshot a task is writing while the actor goes on with its rounds.
pub(super) type SnapshotTask = tokio::sync::oneshot::Receiver<SnapshotDone>;

impl DocActor {
    /// Starts writing a snapshot in the background if the log holds anything after the last one
    /// and no snapshot is being written. The actor pays for a copy of the document; encoding
    /// and writing (tens of milliseconds for a large document) run on a blocking thread, so a
    /// round never waits for a snapshot ([`Self::snapshot_done`] takes the outcome). On failure
    /// the log still holds every change, so the document stays correct; the snapshot is
    /// retried an interval later.
    pub(super) fn start_snapshot(&mut self) {
        // A snapshot covers the document through `log_index`: only when that is all of it
        // (the pipeline starts one when it drains).
        if self.snapshotting.is_some() || !self.pipeline.is_drained() {
            return;
        }
        if let Some((entry, _)) = &self.damaged {
            // A snapshot deletes the log it covers: the damaged entry and what follows it too.
            tracing::warn!(entry, "no snapshot while a damaged log entry is kept");
            return;
        }
        // The counters restart now: changes of later rounds count towards the next snapshot.
        self.changes_since_snapshot = 0;
        self.log_bytes_since_snapshot = 0;
        self.first_unsnapshotted = None;
        if self.log_index <= self.snapshot_index {
            return;
        }
        let started = Instant::now();
        let doc = self.doc.clone();
        let through = self.log_index;
        let store = Arc::clone(&self.ctx.store);
        let (id, epoch) = (self.id.clone(), self.epoch);
        let (done, task) = tokio::sync::oneshot::channel();
        self.snapshotting = Some(task);
        self.ctx.tracker.spawn_blocking(move || {
            let bytes = codec::encode_snapshot(&doc);
            drop(doc);
            let size = bytes.len();
            let result = if loadable_snapshot(size) {
                store.write_snapshot(&id, epoch, &bytes, through).map_err(ServerError::from)
            } else {
                Err(ServerError::Load {
                    doc: id.to_string(),
                    reason: format!(
                        "a snapshot of {size} bytes is above the {} the decoder loads",
                        codec::MAX_SNAPSHOT_LEN
                    ),
                })
            };
            let _ = done.send(SnapshotDone { through, size, started, result });
        });
    }

    /// Takes the outcome of the background snapshot.
    pub(super) fn snapshot_done(&mut self, done: Result<SnapshotDone, tokio::sync::oneshot::error::RecvError>) {
        self.snapshotting = None;
        let Ok(SnapshotDone { through, size, started, result }) = done else {
            // The task panicked: as a failed write.
            Metrics::inc(&self.ctx.metrics.storage_errors);
            self.first_unsnapshotted.get_or_insert_with(Instant::now);
            return;
        };
        match result {
            Ok(()) => {
                tracing::debug!(through, size, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot written");
                Metrics::inc(&self.ctx.metrics.snapshots_written);
                Metrics::add(&self.ctx.metrics.snapshot_bytes, size as u64);
                self.snapshot_index = self.snapshot_index.max(through);
                self.snapshot_bytes = size as u64;
            }
            Err(error) => {
                tracing::warn!(%error, "snapshot failed; the log still holds every change");
                Metrics::inc(&self.ctx.metrics.storage_errors);
                // Retried an interval from now (or sooner, when the log grows enough).
                self.first_unsnapshotted = Some(Instant::now());
            }
        }
    }

    /// Writes a snapshot and waits for it (before unloading or at shutdown): first the one
    /// being written, if any, then one of everything logged since.
    pub(super) async fn snapshot(&mut self) {
        for _ in 0..2 {
            if self.snapshotting.is_none() {
                self.start_snapshot();
            }
            let Some(task) = self.snapshotting.take() else { return };
            let done = task.await;
            self.snapshot_done(done);
            if self.log_index <= self.snapshot_index {
                return;
            }
        }
    }

    /// Whether the log since the last snapshot calls for a new one (see the module docs).
    pub(super) fn snapshot_due(&self) -> bool {
        if self.damaged.is_some() {
            return false; // see `snapshot`
        }
        let config = &self.ctx.config;
        let overdue = self.first_unsnapshotted.is_some_and(|at| at + config.snapshot_interval <= Instant::now());
        overdue
            || self.changes_since_snapshot >= config.snapshot_every
            || self.log_bytes_since_snapshot >= self.snapshot_bytes.max(MIN_SNAPSHOT_TRIGGER_BYTES)
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
        self.damaged = loaded.damaged;
        self.catchup_snapshot = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_the_decoder_refuses_are_never_written() {
        assert!(loadable_snapshot(codec::MAX_SNAPSHOT_LEN));
        assert!(!loadable_snapshot(codec::MAX_SNAPSHOT_LEN + 1));
        let at_limit = vec![codec::FORMAT_VERSION; codec::MAX_SNAPSHOT_LEN + 1];
        assert!(matches!(
            codec::decode_snapshot(&at_limit, ReplicaId::random()),
            Err(crdt_core::DecodeError::TooLarge { .. })
        ));
    }
}

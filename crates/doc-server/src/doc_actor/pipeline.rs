//! The commit pipeline: a round's changes are relayed at once and committed behind it.
//!
//! A round ends by relaying what it applied to the document's other connections
//! ([`ServerMsg::Relay`](crdt_core::protocol::ServerMsg::Relay), tagged: `relay.rs`) and handing
//! its changes to the pipeline, which keeps at most one commit in flight per document. While it
//! is in flight the actor goes on taking commands: their rounds apply and relay at once, and
//! their changes queue up as one [`Unsettled`] that becomes the next commit when this one
//! returns. What must wait for durability waits with the commit that holds it:
//!
//! - acknowledgements (built at the end of their round, with that round's version and hash);
//! - the answers to the server's own edits, and the feed's events (SSE, webhooks);
//! - welcomes, values and reads wait for a *drained* pipeline (nothing applied that is not
//!   durable): the actor takes no new command while one waits, so the pipeline drains within
//!   two commits. A welcome so never carries a change the server could lose, and a snapshot is
//!   started only when drained too (its `through` then covers exactly the document).
//!
//! Commits of one document are in apply order, one after another, so when the commit holding
//! relay `n` returns, every relay up to `n` is durable; each relay carries that mark
//! (`durable`), and clients let go of the tags it covers.

use std::sync::Arc;

use axum::body::Bytes;
use crdt_core::Change;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{log_entry, Committed, ConnId, DeferredRead, DocActor, EditFailure, JoinRequest};
use crate::feed::ChangeEvent;
use crate::metrics::Metrics;
use crate::storage::StoreError;
use crate::ServerError;

/// What rounds leave to do once the changes they applied are durable.
#[derive(Default)]
pub(super) struct AfterCommit {
    /// Acknowledgement frames, in order.
    pub acks: Vec<(ConnId, Bytes)>,
    /// The server's own edits, with their answers.
    pub edits: Vec<(oneshot::Sender<Result<Committed, EditFailure>>, Committed)>,
    /// For the feed.
    pub events: Vec<ChangeEvent>,
    /// The highest relay number among these rounds' relays (0: none).
    pub relayed: u64,
}

impl AfterCommit {
    fn extend(&mut self, other: AfterCommit) {
        self.acks.extend(other.acks);
        self.edits.extend(other.edits);
        self.events.extend(other.events);
        self.relayed = self.relayed.max(other.relayed);
    }
}

/// Applied changes not handed to the store yet, and what waits for them.
#[derive(Default)]
pub(super) struct Unsettled {
    /// In apply order.
    pub changes: Vec<Change>,
    pub after: AfterCommit,
}

impl Unsettled {
    fn extend(&mut self, other: Unsettled) {
        self.changes.extend(other.changes);
        self.after.extend(other.after);
    }
}

/// The commit being written: its log index and the bytes logged, once it returns.
struct InFlight {
    task: JoinHandle<Result<(u64, u64), StoreError>>,
    started: Instant,
    changes: usize,
    ops: usize,
    after: AfterCommit,
}

/// Commands answered only when the pipeline is drained.
#[derive(Default)]
pub(super) struct Waiting {
    pub joins: Vec<JoinRequest>,
    pub values: Vec<oneshot::Sender<Vec<u8>>>,
    pub reads: Vec<DeferredRead>,
}

impl Waiting {
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty() && self.values.is_empty() && self.reads.is_empty()
    }
}

/// See the module docs.
#[derive(Default)]
pub(super) struct Pipeline {
    in_flight: Option<InFlight>,
    queued: Option<Unsettled>,
    pub waiting: Waiting,
    /// The last relay's number (relays of this load are numbered from 1).
    pub relay_number: u64,
    /// Every relay up to this number is durable.
    pub durable_relay: u64,
}

impl Pipeline {
    /// Nothing applied is waiting for a commit.
    pub fn is_drained(&self) -> bool {
        self.in_flight.is_none() && self.queued.is_none()
    }

    /// [`super::MAX_ROUND_CHANGES`] or more changes wait behind the commit in flight.
    pub fn backlogged(&self) -> bool {
        self.queued.as_ref().is_some_and(|queued| queued.changes.len() >= super::MAX_ROUND_CHANGES)
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Waits for the commit in flight (pending for ever if there is none: select on
    /// [`Pipeline::in_flight`]).
    pub async fn committed(&mut self) -> Result<Result<(u64, u64), StoreError>, tokio::task::JoinError> {
        match self.in_flight.as_mut() {
            Some(in_flight) => (&mut in_flight.task).await,
            None => std::future::pending().await,
        }
    }
}

impl DocActor {
    /// Hands a finished round's changes and after-work to the pipeline.
    pub(super) fn settle(&mut self, unsettled: Unsettled) {
        if let Some(queued) = self.pipeline.queued.as_mut() {
            queued.extend(unsettled);
        } else if self.pipeline.in_flight.is_some() {
            self.pipeline.queued = Some(unsettled);
        } else {
            self.start_commit(unsettled);
        }
    }

    /// Starts committing `unsettled` (nothing may be in flight), or does its after-work at once
    /// if it holds no change.
    fn start_commit(&mut self, unsettled: Unsettled) {
        debug_assert!(self.pipeline.in_flight.is_none());
        let Unsettled { changes, after } = unsettled;
        if changes.is_empty() {
            self.after_commit(after);
            return;
        }
        let frames = log_entry::encode_each(&changes.iter().collect::<Vec<_>>());
        let ops: usize = changes.iter().map(|change| change.ops.len()).sum();
        let store = Arc::clone(&self.ctx.store);
        let (id, epoch) = (self.id.clone(), self.epoch);
        // Packing (deflate) runs on the blocking thread too, off the runtime's workers. A round
        // too large for one entry becomes several, each committed before the acks.
        let task = tokio::task::spawn_blocking(move || {
            let (mut index, mut logged) = (0, 0);
            for run in log_entry::split(&frames) {
                let entry = log_entry::pack(run);
                logged += entry.len() as u64;
                index = store.append(&id, epoch, &entry)?;
            }
            Ok((index, logged))
        });
        self.pipeline.in_flight = Some(InFlight { task, started: Instant::now(), changes: changes.len(), ops, after });
    }

    /// Takes the outcome of the commit in flight: does its after-work and starts the next
    /// one; once drained, serves what waited for it. An error means the commit failed:
    /// nothing of it was acknowledged and the actor must stop.
    pub(super) fn commit_done(
        &mut self,
        outcome: Result<Result<(u64, u64), StoreError>, tokio::task::JoinError>,
    ) -> Result<(), ServerError> {
        let Some(InFlight { started, changes, ops, after, .. }) = self.pipeline.in_flight.take() else {
            return Ok(());
        };
        let (index, logged) = outcome??;
        let metrics = &self.ctx.metrics;
        Metrics::add(&metrics.log_bytes, logged);
        metrics.commit_latency.observe(started.elapsed());
        Metrics::add(&metrics.changes_applied, changes as u64);
        Metrics::add(&metrics.ops_applied, ops as u64);
        self.log_index = index;
        self.changes_since_snapshot += changes as u64;
        self.log_bytes_since_snapshot += logged;
        self.first_unsnapshotted.get_or_insert_with(Instant::now);
        tracing::debug!(index, changes, "group commit");
        self.after_commit(after);
        if let Some(next) = self.pipeline.queued.take() {
            self.start_commit(next);
        }
        Ok(())
    }

    /// What waits for a commit, once it returned.
    fn after_commit(&mut self, after: AfterCommit) {
        self.pipeline.durable_relay = self.pipeline.durable_relay.max(after.relayed);
        for event in after.events {
            self.ctx.feed.publish(&self.id, event);
        }
        for (reply, committed) in after.edits {
            let _ = reply.send(Ok(committed));
        }
        for (conn, frame) in after.acks {
            self.send_to(conn, frame);
        }
        self.settle_dropped();
        if self.pipeline.is_drained() {
            self.serve_waiting();
        }
    }

    /// Serves the joins, values and reads that waited for a drained pipeline, and starts a
    /// snapshot if one is due.
    fn serve_waiting(&mut self) {
        let waiting = std::mem::take(&mut self.pipeline.waiting);
        if !waiting.joins.is_empty() {
            let (version, hash) = (self.doc.version().clone(), self.doc.state_hash());
            for join in waiting.joins {
                self.welcome(join, &version, hash);
            }
        }
        for read in waiting.reads {
            (read.0)(&self.doc);
        }
        if !waiting.values.is_empty() {
            let json = super::round::value_json(&self.doc);
            for reply in waiting.values {
                let _ = reply.send(json.clone());
            }
        }
        if self.snapshot_due() {
            self.start_snapshot();
        }
    }

    /// Waits until nothing applied waits for a commit (before a snapshot that must cover the
    /// document, an unload, a rebuild from the store, a hand-over).
    pub(super) async fn drain(&mut self) -> Result<(), ServerError> {
        while self.pipeline.in_flight.is_some() {
            let outcome = self.pipeline.committed().await;
            self.commit_done(outcome)?;
        }
        Ok(())
    }
}

//! The per-document actor: one tokio task owns a loaded [`Document`], its connections and its
//! op log position; everything else talks to it through a [`DocHandle`] (Ryhl's actor recipe).
//!
//! The actor works in *rounds*. It waits for one [`DocCommand`], then takes every command
//! already queued (up to [`MAX_ROUND_COMMANDS`], or until it has applied
//! [`MAX_ROUND_CHANGES`]) without waiting, applies the changes they carry, and finishes the
//! round (`round.rs`, `pipeline.rs`):
//!
//! 1. new replicas' owners are stored (awaited: a relayed change may come back on its tag);
//! 2. each applied batch is relayed at once to the document's *other* connections, tagged
//!    (`relay.rs`), before it is durable;
//! 3. the round's changes go to the commit pipeline: appended to the op log as one entry in
//!    one fsync'd transaction, while later rounds apply and relay (one commit in flight per
//!    document; group commit: what queued up meanwhile shares the next one, and appends of
//!    all documents share a transaction, `storage/group.rs`);
//! 4. once that commit returns, each batch is acknowledged to its sender with the version and
//!    state hash at the end of its round;
//! 5. connections that asked to join get their `Welcome` when nothing applied is waiting for a
//!    commit (so a welcome never carries a change the server could still lose).
//!
//! Batches are all-or-nothing. A batch is checked first: every change must be well formed and
//! either already applied (a duplicate, acknowledged as applied) or ready (the next change of
//! its replica, with every dependency already in the document or earlier in the batch). A batch
//! that would need buffering is rejected, so the server's document never holds buffered changes
//! and its log holds exactly the applied changes, in apply order. Every operation of the batch
//! is checked against the state the earlier changes of the batch leave before any is applied
//! (`Document::check_changes`), and so are the document's limits (fields, field name length,
//! text size: `limits::DocLimits`), so a refused batch costs a check, never a reload. (Should a
//! checked batch still fail halfway, a bug, the document is rebuilt from the store plus the
//! round's other batches and the batch is rejected.)
//!
//! Each connection proves which replicas it may author as (`authors.rs`): a change authored as
//! a replica another author owns, or a `Hello` naming a replica in use by another connection, is
//! refused; new owners are registered in the store before the round is acknowledged.
//!
//! Sends to connections never wait: each connection has a bounded queue, and one whose queue is
//! full is kicked (closed as a slow consumer; it resyncs from its version when it reconnects).
//!
//! # Invariants
//! - The store holds exactly the changes of `doc` whenever the pipeline is drained (snapshot
//!   plus log); otherwise, those of the rounds before the commit in flight.
//! - `log_index >= snapshot_index`; the log after `snapshot_index` holds the changes made since
//!   the snapshot; `changes_since_snapshot` and `log_bytes_since_snapshot` count the changes and
//!   entry bytes logged since the last snapshot attempt.
//! - `doc.pending_count() == 0`.
//! - At most one joined connection per replica; `authors` holds the store's registrations plus
//!   the current round's (committed before anything of the round is sent).
//! - The actor never awaits a connection; it awaits only its own queue, timers and the store.

mod authors;
mod command;
mod handle;
mod history;
mod lease;
mod load;
mod log_entry;
mod peers;
mod pipeline;
mod round;
mod upkeep;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crdt_core::{Document, ReplicaId, VersionVector};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::{GaugeGuard, Metrics};
use crate::registry::DocRegistry;
use crate::storage::{now_ms, AuthorHash, Epoch, Store, StoreError};
use crate::{DocId, ServerError};
pub use authors::author_hash;
pub use command::{Committed, DeferredRead, DocCommand, EditFailure, JoinRefused, JoinRequest, ServerEdit};
pub(crate) use handle::channel;
pub use handle::{ActorStatus, DocHandle, QueueRoom, QUEUED_BYTES_PER_UNIT, QUEUED_COST};
use lease::{claim, release};
use peers::PeerEntry;
use round::Round;
use upkeep::MEASURE_EVERY;

/// The most commands one round takes, so that a flood cannot delay acknowledgements forever:
/// as many as the queue holds, so that everything that queued up during a commit shares the
/// next one.
pub const MAX_ROUND_COMMANDS: usize = COMMAND_QUEUE;

/// A round also ends once it has applied this many changes, and the actor takes no command
/// while this many wait behind the commit in flight: a client that sends a long history in big
/// batches (a document pasted in, an offline session coming back) is taken a few thousand
/// changes at a time. Taken whole, the automerge-paper trace (260 batches of 1,000) was one
/// round: 100 MB of decoded changes for a 104 KB document, and the allocator kept its
/// bookkeeping for that peak (about 3 MB) after the document unloaded.
pub const MAX_ROUND_CHANGES: usize = 4096;

/// The server's id for one WebSocket connection (unique while the process runs). A connection is
/// not a replica: a replica may reconnect many times, each time with a new `ConnId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Why the actor closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KickReason {
    /// Its outgoing queue was full.
    SlowConsumer,
    /// The store failed; the document is being unloaded.
    StorageFailure,
    /// Another server owns the document now (its lease was lost, taken or handed over).
    Moved,
}

/// What every actor needs from the server.
#[derive(Clone)]
pub struct ActorContext {
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Metrics to update.
    pub metrics: Arc<Metrics>,
    /// Limits and intervals.
    pub config: Arc<Config>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Tracks every task so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Told of every round's committed changes (SSE subscribers, webhooks).
    pub feed: Arc<crate::feed::ChangeFeed>,
    /// Tags relays and checks the tags of give-backs (`relay.rs`).
    pub relay: Arc<crate::relay::RelayKey>,
}

/// How many commands may wait in an actor's queue before senders wait.
pub(crate) const COMMAND_QUEUE: usize = 1024;

/// The replica the server writes a document as (edits made over HTTP): derived from the
/// document id, so it is the same on every load and every server; no client may connect or
/// write as it (`authors.rs`).
pub fn server_replica(id: &DocId) -> ReplicaId {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("doc-server replica of {id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    ReplicaId::from_u128(u128::from_be_bytes(bytes))
}

/// The connection id the server's own edits go out as (connections count from 1).
const SERVER_CONN: ConnId = ConnId(0);

/// The state owned by one actor task; see the module docs.
struct DocActor {
    id: DocId,
    generation: u64,
    doc: Document,
    /// The epoch of the lease this actor holds: every append and snapshot carries it.
    epoch: Epoch,
    rx: mpsc::Receiver<DocCommand>,
    registry: Weak<DocRegistry>,
    ctx: ActorContext,
    peers: std::collections::BTreeMap<ConnId, PeerEntry>,
    /// Connections to drop after the current send loop, with the reason to tell them.
    dropped: Vec<(ConnId, Option<KickReason>)>,
    log_index: u64,
    snapshot_index: u64,
    changes_since_snapshot: u64,
    log_bytes_since_snapshot: u64,
    /// The size of the stored snapshot (0 without one).
    snapshot_bytes: u64,
    first_unsnapshotted: Option<Instant>,
    /// The snapshot being written in the background, if one is (`load.rs`).
    snapshotting: Option<load::SnapshotTask>,
    last_activity: Instant,
    /// A history-less snapshot made for a welcome, reused while the version is the same.
    catchup_snapshot: Option<(VersionVector, Vec<u8>)>,
    /// Per replica, the hash of the author secret that owns it (see `authors.rs`).
    authors: std::collections::HashMap<ReplicaId, AuthorHash>,
    /// The first stored log entry the load could not read or apply, and why. The document is
    /// served from what came before it, and no snapshot is written (it would delete that entry
    /// and those after it from the store) until the document is loaded whole again.
    damaged: Option<(u64, String)>,
    /// Shared with the handles (the memory budget reads it).
    status: Arc<ActorStatus>,
    /// The memory last published in `status` (and added to the server-wide gauge), and when.
    measured: (i64, Instant),
    /// A round changed the document since the last measure (which was too recent to repeat):
    /// the timer measures again once [`MEASURE_EVERY`] has passed, so that a document that
    /// goes quiet right after a burst is not left with the size it had before it.
    memory_stale: bool,
    /// The registry asked for room: unload after this round if nobody has the document open.
    unload_requested: bool,
    /// The title last recorded for listings (`Store::set_title`).
    listed_title: Option<String>,
    /// The name each replica's person gave (see `history.rs`).
    names: std::collections::HashMap<ReplicaId, String>,
    /// Commits in flight and queued, and what waits for them (`pipeline.rs`).
    pipeline: pipeline::Pipeline,
}

/// Runs one document's actor until it unloads, fails or the server shuts down.
pub(crate) async fn run(
    id: DocId,
    generation: u64,
    status: Arc<ActorStatus>,
    rx: mpsc::Receiver<DocCommand>,
    registry: Weak<DocRegistry>,
    ctx: ActorContext,
) {
    let metrics = Arc::clone(&ctx.metrics);
    let _open = GaugeGuard::new(&metrics.open_documents);
    let epoch = match claim(&ctx, &id).await {
        Ok(epoch) => epoch,
        Err(refusal) => {
            let mut rx = rx;
            retire(&registry, &id, generation, &mut rx, refusal, None).await;
            return;
        }
    };
    status.claimed_ms.store(now_ms(), Ordering::Relaxed);
    status.epoch.store(epoch, Ordering::Relaxed);
    let started = Instant::now();
    match load::load(&ctx.store, &id).await {
        Ok(loaded) => {
            let elapsed = started.elapsed();
            metrics.load_latency.observe(elapsed);
            if loaded.damaged.is_some() {
                // Logged by the load; counted here as a storage error.
                Metrics::inc(&metrics.storage_errors);
            }
            tracing::info!(
                changes = loaded.doc.version().total(),
                replayed = loaded.replayed,
                log_bytes = loaded.log_bytes,
                snapshot_bytes = loaded.snapshot_bytes,
                elapsed_us = elapsed.as_micros() as u64,
                "document loaded"
            );
            let actor = DocActor {
                id,
                generation,
                doc: loaded.doc,
                epoch,
                rx,
                registry,
                ctx,
                peers: Default::default(),
                dropped: Vec::new(),
                log_index: loaded.log_index,
                snapshot_index: loaded.snapshot_index,
                changes_since_snapshot: loaded.replayed,
                log_bytes_since_snapshot: loaded.log_bytes,
                snapshot_bytes: loaded.snapshot_bytes,
                first_unsnapshotted: (loaded.replayed > 0).then(Instant::now),
                snapshotting: None,
                last_activity: Instant::now(),
                catchup_snapshot: None,
                authors: loaded.authors.into_iter().collect(),
                damaged: loaded.damaged,
                status,
                measured: (0, Instant::now()),
                memory_stale: true,
                unload_requested: false,
                listed_title: None,
                names: loaded.names.into_iter().collect(),
                pipeline: Default::default(),
            };
            actor.run_loop().await;
        }
        Err(error) => {
            tracing::error!(%error, "document could not be loaded");
            Metrics::inc(&metrics.storage_errors);
            let mut rx = rx;
            let _ = release(&ctx, &id, epoch).await;
            retire(&registry, &id, generation, &mut rx, JoinRefused::Failed(error.to_string()), None).await;
        }
    }
}

/// Removes the actor from the registry, closes its queue and answers what is left in it: joins
/// are refused (the connection opens the document again), value requests are answered from
/// `doc` if the document is sound (otherwise dropped: their callers answer 503).
async fn retire(
    registry: &Weak<DocRegistry>,
    id: &DocId,
    generation: u64,
    rx: &mut mpsc::Receiver<DocCommand>,
    refusal: JoinRefused,
    doc: Option<&Document>,
) {
    retire_from_registry(registry, id, generation);
    rx.close();
    while let Some(command) = rx.recv().await {
        match command {
            DocCommand::Join(join) => {
                let _ = join.reply.send(Err(refusal.clone()));
            }
            DocCommand::Value { reply } => {
                if let Some(doc) = doc {
                    let _ = reply.send(round::value_json(doc));
                }
            }
            // Only joined connections send these, and none is joined any more.
            DocCommand::Changes { .. }
            | DocCommand::GiveBack { .. }
            | DocCommand::Presence { .. }
            | DocCommand::Leave { .. }
            | DocCommand::Unload
            | DocCommand::Lease { .. } => {}
            DocCommand::History { reply, .. } => {
                let _ = reply.send(Err("the document is unloading: try again".into()));
            }
            DocCommand::Edit { reply, .. } => {
                let _ = reply.send(Err(EditFailure::Unavailable("the document is unloading: try again".into())));
            }
            DocCommand::Read(read) => {
                // Dropped without a sound document: the caller answers 503.
                if let Some(doc) = doc {
                    (read.0)(doc);
                }
            }
        }
    }
}

/// Removes the actor of `generation` from the registry (new opens spawn a new actor).
fn retire_from_registry(registry: &Weak<DocRegistry>, id: &DocId, generation: u64) {
    if let Some(registry) = registry.upgrade() {
        registry.remove(id, generation);
    }
}

/// What the timer branch decided.
#[derive(PartialEq, Eq)]
enum Next {
    Continue,
    Stop,
}

impl DocActor {
    async fn run_loop(mut self) {
        self.measure();
        self.run_until_stopped().await;
        // However the actor ended, its memory leaves the server-wide gauge.
        self.ctx.metrics.document_memory.fetch_sub(self.measured.0, Ordering::Relaxed);
        self.status.memory.store(0, Ordering::Relaxed);
    }

    async fn run_until_stopped(&mut self) {
        loop {
            let deadline = self.next_deadline();
            let command = tokio::select! {
                biased;
                _ = self.ctx.shutdown.cancelled() => {
                    self.shut_down().await;
                    return;
                }
                outcome = self.pipeline.committed(), if self.pipeline.in_flight() => {
                    if let Err(error) = self.commit_done(outcome) {
                        self.fail(error).await;
                        return;
                    }
                    continue;
                }
                // While a join, value or read waits for the pipeline to drain, nothing new is
                // taken: it drains within two commits.
                // Nor while a full commit's worth of changes waits behind the one in flight.
                command = self.rx.recv(), if self.pipeline.waiting.is_empty() && !self.pipeline.backlogged() => command,
                done = async {
                    match self.snapshotting.as_mut() {
                        Some(task) => task.await,
                        None => std::future::pending().await,
                    }
                }, if self.snapshotting.is_some() => {
                    self.snapshot_done(done);
                    continue;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if self.on_timer().await == Next::Stop {
                        return;
                    }
                    continue;
                }
            };
            let Some(command) = command else {
                // Every handle is gone, including the registry's: nothing can reach us.
                if let Err(error) = self.drain().await {
                    self.fail(error).await;
                    return;
                }
                self.snapshot().await;
                return;
            };
            if self.run_round(Some(command)).await == Next::Stop {
                return;
            }
        }
    }

    /// Handles `first` and everything already queued, then finishes the round.
    async fn run_round(&mut self, first: Option<DocCommand>) -> Next {
        let mut round = Round::default();
        if let Some(command) = first {
            self.handle(command, &mut round).await;
        }
        while round.commands < MAX_ROUND_COMMANDS && round.changes < MAX_ROUND_CHANGES {
            match self.rx.try_recv() {
                Ok(command) => self.handle(command, &mut round).await,
                Err(_) => break,
            }
        }
        let lease = round.lease.take();
        if let Err(error) = self.finish(round).await {
            self.fail(error).await;
            return Next::Stop;
        }
        if let Some(lost) = lease {
            // A hand-over commits what is in flight first; a lost lease can write nothing.
            if !lost {
                if let Err(error) = self.drain().await {
                    self.fail(error).await;
                    return Next::Stop;
                }
            }
            self.move_away(lost).await;
            return Next::Stop;
        }
        self.publish_memory();
        self.list_title();
        self.status.connections.store(self.peers.len() as u64, Ordering::Relaxed);
        self.status.last_used_ms.store(now_ms(), Ordering::Relaxed);
        if std::mem::take(&mut self.unload_requested) && self.peers.is_empty() {
            return self.unload("memory budget").await;
        }
        Next::Continue
    }

    async fn handle(&mut self, command: DocCommand, round: &mut Round) {
        round.commands += 1;
        self.last_activity = Instant::now();
        match command {
            DocCommand::Join(join) => match self.check_join(&join, round) {
                Ok(()) => round.joins.push(*join),
                Err(reason) => {
                    tracing::info!(replica = %join.replica, %reason, "join refused");
                    Metrics::inc(&self.ctx.metrics.replica_refusals);
                    let _ = join.reply.send(Err(JoinRefused::Replica(reason)));
                }
            },
            DocCommand::Changes { conn, seq, changes, room } => {
                drop(room);
                self.apply_batch(conn, seq, changes, false, round).await;
            }
            DocCommand::GiveBack { conn, seq, changes, tag, room } => {
                drop(room);
                let list = crdt_core::protocol::change_list_bytes(&changes);
                if self.ctx.relay.verify(&self.id, &list, &tag) {
                    Metrics::inc(&self.ctx.metrics.give_backs);
                    self.apply_batch(conn, seq, changes, true, round).await;
                } else {
                    tracing::info!(conn = conn.0, seq, "give-back refused: its tag does not vouch for it");
                    let reason = "the tag given back does not vouch for these changes (another server secret, \
                                  another document, or altered changes)"
                        .to_owned();
                    let status =
                        crdt_core::protocol::AckStatus::Rejected { code: crdt_core::protocol::reject::INVALID, reason };
                    round.acks.push(round::PendingAck { conn, seq, status });
                }
            }
            DocCommand::Presence { conn, selection } => self.presence(conn, selection),
            DocCommand::Leave { conn } => self.leave(conn),
            DocCommand::Value { reply } => round.values.push(reply),
            DocCommand::Unload => self.unload_requested = true,
            DocCommand::Lease { lost } => round.lease = Some(round.lease.unwrap_or(false) || lost),
            DocCommand::History { at, reply } => {
                let _ = reply.send(self.history_json(at));
            }
            DocCommand::Edit { edit: ServerEdit::Edits(edits), reply } => {
                let limits = self.limits();
                match crate::api::edit::apply(&mut self.doc, &edits, &limits) {
                    Ok(change) => {
                        let changed = change.is_some();
                        if let Some(change) = change {
                            round.changes += 1;
                            round.applied.push(round::AppliedBatch { conn: SERVER_CONN, changes: vec![change] });
                        }
                        round.edits.push((reply, changed));
                    }
                    Err(refused) => {
                        tracing::info!(%refused, "HTTP edit refused");
                        let _ = reply.send(Err(EditFailure::Refused(refused)));
                    }
                }
            }
            DocCommand::Read(read) => round.reads.push(read),
        }
    }

    /// The next moment a timer needs the actor: a due snapshot or an idle unload.
    fn next_deadline(&self) -> Instant {
        let config = &self.ctx.config;
        let snapshot = self.first_unsnapshotted.map(|at| at + config.snapshot_interval);
        let idle = self.peers.is_empty().then(|| self.last_activity + config.idle_unload);
        let measure = self.memory_stale.then(|| self.measured.1 + MEASURE_EVERY);
        [snapshot, idle, measure]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    async fn on_timer(&mut self) -> Next {
        let now = Instant::now();
        let config = Arc::clone(&self.ctx.config);
        if self.memory_stale && self.measured.1 + MEASURE_EVERY <= now {
            self.measure();
        }
        if self.first_unsnapshotted.is_some_and(|at| at + config.snapshot_interval <= now) {
            self.start_snapshot();
        }
        if !self.peers.is_empty() || self.last_activity + config.idle_unload > now {
            return Next::Continue;
        }
        self.unload("idle").await
    }

    /// Snapshots and unloads, unless commands arrived during the snapshot (they keep the
    /// document loaded). The lease is released, so another server may claim it at once.
    async fn unload(&mut self, why: &'static str) -> Next {
        if let Err(error) = self.drain().await {
            self.fail(error).await;
            return Next::Stop;
        }
        self.snapshot().await;
        if !self.rx.is_empty() {
            return Next::Continue;
        }
        tracing::info!(why, "unloading the document");
        if why == "memory budget" {
            Metrics::inc(&self.ctx.metrics.memory_evictions);
        }
        // Out of the registry before the release: a connection arriving now spawns a new
        // actor, whose claim then finds the lease free.
        retire_from_registry(&self.registry, &self.id, self.generation);
        let _ = release(&self.ctx, &self.id, self.epoch).await;
        retire(&self.registry, &self.id, self.generation, &mut self.rx, JoinRefused::Unloading, Some(&self.doc)).await;
        let store = self.ctx.store.clone();
        drop(tokio::task::spawn_blocking(move || store.trim_memory()));
        Next::Stop
    }

    /// Shutdown: finish what is queued, write a final snapshot, let the connections go, give
    /// the lease up.
    async fn shut_down(&mut self) {
        if !self.rx.is_empty() && self.run_round(None).await == Next::Stop {
            return; // The store failed: the document was unloaded without a snapshot.
        }
        if let Err(error) = self.drain().await {
            self.fail(error).await;
            return;
        }
        self.snapshot().await;
        self.peers.clear();
        let _ = release(&self.ctx, &self.id, self.epoch).await;
        tracing::info!("document closed for shutdown");
    }

    /// The store failed: nothing more can be acknowledged. Close every connection (clients
    /// resend what was not acknowledged) and unload; the next connection reloads from the store.
    /// A write refused by the fence means another server owns the document: the connections
    /// are told so (close 4010) rather than of a failure.
    async fn fail(&mut self, error: ServerError) {
        let fenced = matches!(error, ServerError::Store(StoreError::Fenced { .. }));
        let reason = if fenced {
            tracing::warn!(%error, "write refused by the lease fence: another server owns the document");
            Metrics::inc(&self.ctx.metrics.fenced_writes);
            Metrics::inc(&self.ctx.metrics.leases_lost);
            KickReason::Moved
        } else {
            tracing::error!(%error, "storage failure: unloading the document");
            Metrics::inc(&self.ctx.metrics.storage_errors);
            KickReason::StorageFailure
        };
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.dropped.push((conn, Some(reason)));
        }
        self.settle_dropped();
        let refusal = if fenced { JoinRefused::Moved } else { JoinRefused::Failed(error.to_string()) };
        retire(&self.registry, &self.id, self.generation, &mut self.rx, refusal, None).await;
    }
}

//! The actor's connections: joining (the `Welcome`), presence, leaving, and the never-waiting
//! sends to bounded per-connection queues.
//!
//! A send that finds a queue full does not drop the message and carry on (that connection would
//! silently miss an update): the connection is *kicked* — told to close — so its client resyncs
//! from its version vector when it reconnects. Kicks and closed queues found while sending are
//! collected in `dropped` and settled afterwards, because settling one (telling the others it is
//! gone) sends more messages.

use std::collections::BTreeSet;

use axum::body::Bytes;
use crdt_core::protocol::{Catchup, Peer, Selection, ServerMsg};
use crdt_core::{codec, ReplicaId, VersionVector};
use tokio::sync::oneshot;

use super::{ConnId, DocActor, JoinRefused, JoinRequest, KickReason};
use crate::metrics::Metrics;
use crate::outbox::{OutboxSender, Refused};
use crate::storage::AuthorHash;

/// Changes catch-ups up to this size are sent as changes without comparing with a snapshot.
const CATCHUP_COMPARE_FROM: usize = 64 << 10;
/// The fewest bytes one change takes in a `ChangeList` (its replica, seq, dependency count and
/// operation count, one byte each at least).
const MIN_CHANGE_BYTES: u64 = 4;

/// One joined connection.
#[derive(Debug)]
pub(super) struct PeerEntry {
    pub out: OutboxSender,
    pub kick: Option<oneshot::Sender<KickReason>>,
    pub peer: Peer,
    /// The hash of the connection's author secret.
    pub author: AuthorHash,
    /// Whether it may send changes (see `JoinRequest::writable`).
    pub writable: bool,
    /// The replicas whose entry of the document's version changed since this connection's
    /// `Welcome` or last `Ack`: its next `Ack` carries just those (PROTOCOL.md §5), so an ack
    /// does not grow with the number of replicas that ever edited the document.
    pub untold: BTreeSet<ReplicaId>,
}

/// Encodes a server message once, to be shared by every queue it goes to.
pub(super) fn frame(message: &ServerMsg) -> Bytes {
    Bytes::from(message.encode())
}

impl DocActor {
    /// Queues `frame` for `conn`, noting the connection for dropping if its queue is full or
    /// closed.
    pub(super) fn send_to(&mut self, conn: ConnId, frame: Bytes) {
        let Some(entry) = self.peers.get(&conn) else {
            return;
        };
        match entry.out.try_send(frame) {
            Ok(()) => {}
            Err(Refused::Full) => self.dropped.push((conn, Some(KickReason::SlowConsumer))),
            Err(Refused::Closed) => self.dropped.push((conn, None)),
        }
    }

    /// Queues `frame` for every connection but `except`.
    pub(super) fn broadcast(&mut self, frame: &Bytes, except: Option<ConnId>) {
        let targets: Vec<ConnId> = self.peers.keys().copied().filter(|c| Some(*c) != except).collect();
        for conn in targets {
            self.send_to(conn, frame.clone());
        }
    }

    /// Removes the connections noted in `dropped`, kicks them, and tells the others they left.
    pub(super) fn settle_dropped(&mut self) {
        while let Some((conn, reason)) = self.dropped.pop() {
            let Some(mut entry) = self.peers.remove(&conn) else {
                continue;
            };
            if let Some(reason) = reason {
                if reason == KickReason::SlowConsumer {
                    Metrics::inc(&self.ctx.metrics.slow_consumer_disconnects);
                }
                tracing::info!(conn = conn.0, ?reason, "closing connection");
                if let Some(kick) = entry.kick.take() {
                    let _ = kick.send(reason);
                }
            }
            let gone = frame(&ServerMsg::PresenceGone { connection: conn.0 });
            self.broadcast(&gone, None);
        }
    }

    /// A connection's cursor moved: remember it and tell the others.
    pub(super) fn presence(&mut self, conn: ConnId, selection: Option<Selection>) {
        let Some(entry) = self.peers.get_mut(&conn) else {
            return;
        };
        entry.peer.selection = selection;
        let message = frame(&ServerMsg::Presence(entry.peer.clone()));
        self.broadcast(&message, Some(conn));
        self.settle_dropped();
    }

    /// A connection left: forget it and tell the others.
    pub(super) fn leave(&mut self, conn: ConnId) {
        if self.peers.contains_key(&conn) {
            self.dropped.push((conn, None));
            self.settle_dropped();
        }
    }

    /// Answers a join: the welcome goes first into the new connection's queue, then the others
    /// learn of it. Called only between rounds, when everything in the document is durable.
    pub(super) fn welcome(&mut self, join: JoinRequest, version: &VersionVector, hash: u64) {
        // `check_join` refused a second connection of one replica when the join arrived.
        let peer = Peer { connection: join.conn.0, replica: join.replica, user: join.user, selection: None };
        // The others already here follow as one `Presence` each, not in `Welcome.peers`: the
        // connection's WebSocket keeps a write buffer the size of the largest frame it ever
        // sent, and with many people in a document that was the welcome (BENCHMARKS.md,
        // issue 20). The outbox is bounded in bytes, so however many they are, they fit.
        let welcome = ServerMsg::Welcome {
            connection: join.conn.0,
            catchup: self.catchup(&join.since),
            version: version.clone(),
            hash,
            peers: Vec::new(),
        };
        let queued = std::iter::once(frame(&welcome))
            .chain(self.peers.values().map(|entry| frame(&ServerMsg::Presence(entry.peer.clone()))))
            .try_for_each(|frame| join.out.try_send(frame));
        if let Err(refused) = queued {
            let reason = format!("the connection's queue refused the welcome ({refused:?})");
            let _ = join.reply.send(Err(JoinRefused::Failed(reason)));
            return;
        }
        if join.writable {
            self.note_name(join.replica, &peer.user.name);
        }
        let announce = frame(&ServerMsg::Presence(peer.clone()));
        self.peers.insert(
            join.conn,
            PeerEntry {
                out: join.out,
                kick: Some(join.kick),
                peer,
                author: join.author,
                writable: join.writable,
                untold: BTreeSet::new(),
            },
        );
        self.broadcast(&announce, Some(join.conn));
        self.settle_dropped();
        let _ = join.reply.send(Ok(()));
    }

    /// What a client at `since` lacks: the changes, or a snapshot without history when the
    /// changes are not available or larger.
    ///
    /// The changes are counted before any is rebuilt: when even the smallest list of that many
    /// would be larger than the snapshot (a new reader of a long document), the snapshot goes
    /// without rebuilding the history at all.
    fn catchup(&mut self, since: &VersionVector) -> Catchup {
        let missing: u64 = self.doc.version().iter().map(|(replica, seq)| seq.saturating_sub(since.get(replica))).sum();
        if missing == 0 {
            return Catchup::Changes(Vec::new());
        }
        let at_least = missing.saturating_mul(MIN_CHANGE_BYTES);
        if at_least >= CATCHUP_COMPARE_FROM as u64 {
            let snapshot = self.catchup_snapshot();
            if at_least >= snapshot.len() as u64 {
                return Catchup::Snapshot(snapshot);
            }
        }
        let Some(changes) = self.doc.ops_since(since) else {
            return Catchup::Snapshot(self.catchup_snapshot());
        };
        let changes_len = crdt_core::protocol::change_list_len(&changes);
        if changes_len >= CATCHUP_COMPARE_FROM {
            let snapshot = self.catchup_snapshot();
            if snapshot.len() < changes_len {
                return Catchup::Snapshot(snapshot);
            }
        }
        Catchup::Changes(changes)
    }

    /// A history-less snapshot of the current version, cached until the version moves.
    fn catchup_snapshot(&mut self) -> Vec<u8> {
        match &self.catchup_snapshot {
            Some((version, bytes)) if version == self.doc.version() => bytes.clone(),
            _ => {
                let bytes = codec::encode_snapshot_without_history(&self.doc);
                self.catchup_snapshot = Some((self.doc.version().clone(), bytes.clone()));
                bytes
            }
        }
    }
}

//! What the actor is asked: the commands a [`DocHandle`](super::DocHandle) sends, a join's
//! request and its refusal, and the server's own edits and reads.

use crdt_core::protocol::{Selection, UserInfo};
use crdt_core::{Change, Document, ReplicaId, VersionVector};
use tokio::sync::oneshot;

use super::{AuthorHash, ConnId, KickReason, QueueRoom};
use crate::outbox::OutboxSender;

/// A connection's request to join the document.
#[derive(Debug)]
pub struct JoinRequest {
    /// The connection.
    pub conn: ConnId,
    /// Its replica, from `Hello`.
    pub replica: ReplicaId,
    /// Its user, from `Hello`.
    pub user: UserInfo,
    /// What it already has, from `Hello`.
    pub since: VersionVector,
    /// The SHA-256 of its author secret, from `Hello`.
    pub author: AuthorHash,
    /// Whether its access token lets it send changes (a view link's does not).
    pub writable: bool,
    /// Its outgoing queue (bounded; the actor only ever `try_send`s).
    pub out: OutboxSender,
    /// Fired by the actor to close the connection.
    pub kick: oneshot::Sender<KickReason>,
    /// `Ok` once the welcome is queued.
    pub reply: oneshot::Sender<Result<(), JoinRefused>>,
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefused {
    /// The actor is unloading: open the document again.
    Unloading,
    /// The document could not be loaded or stored.
    Failed(String),
    /// The connection may not use its replica id (in use by another connection, or owned by
    /// another author): it should connect as a new replica.
    Replica(String),
    /// Another server holds the document's lease: reconnect (the proxy routes to the owner).
    Moved,
}

/// What a [`DocHandle`] can ask of the actor: a closed set.
#[derive(Debug)]
pub enum DocCommand {
    /// A connection joins (after its `Hello`).
    Join(Box<JoinRequest>),
    /// A batch of changes from a joined connection.
    Changes {
        /// The sender.
        conn: ConnId,
        /// The connection's batch number, echoed in the ack.
        seq: u64,
        /// The changes, in causal order.
        changes: Vec<Change>,
        /// Their room in the queue, given back when the actor takes them (`None` only until
        /// the connection has it).
        room: Option<QueueRoom>,
    },
    /// Changes a joined connection gives back: a relay the server sent it and then lost
    /// (`relay.rs`). Applied like a batch of the connection's if `tag` vouches for them.
    GiveBack {
        /// The sender.
        conn: ConnId,
        /// The connection's batch number, echoed in the ack.
        seq: u64,
        /// The relay's changes, in its order.
        changes: Vec<Change>,
        /// The relay's tag.
        tag: crdt_core::protocol::RelayTag,
        /// Their room in the queue, given back when the actor takes them (`None` only until
        /// the connection has it).
        room: Option<QueueRoom>,
    },
    /// A joined connection's cursor moved.
    Presence {
        /// The sender.
        conn: ConnId,
        /// The new selection.
        selection: Option<Selection>,
    },
    /// A connection left (for whatever reason).
    Leave {
        /// The connection.
        conn: ConnId,
    },
    /// The document's value as JSON (after the current round is durable).
    Value {
        /// Receives `serde_json` bytes of `Document::value()`.
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// Unload now if no connection has the document open (the memory budget needs room).
    Unload,
    /// The lease keeper's news: this server no longer holds the document's lease (`lost`), or
    /// another server asked for it (hand it over: finish the round, release, let everyone go).
    Lease {
        /// `true`: lost (fenced already); `false`: wanted elsewhere.
        lost: bool,
    },
    /// An edit made by the server itself (the HTTP API's, checked like any batch); answered
    /// once it is durable (and sent to everyone).
    Edit {
        /// What to change.
        edit: ServerEdit,
        /// The version once the change is committed, or why nothing changed.
        reply: oneshot::Sender<Result<Committed, EditFailure>>,
    },
    /// A read of the document, run on the actor after the current round is durable (so it
    /// never sees a change that is not). It must be quick: a long read copies what it needs
    /// and works elsewhere (`api.rs` replays past versions on a blocking thread).
    Read(DeferredRead),
    /// The history view's data as JSON (`history.rs`): the outline, or the text at a point.
    History {
        /// `None`: the outline; `Some(n)`: the body after the first `n` changes.
        at: Option<usize>,
        /// Receives the JSON, or why there is none.
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
}

/// An edit the server makes as its own replica ([`server_replica`](super::server_replica)): edits described in JSON
/// (`api/edit.rs`), checked against the document's limits, applied as one change.
#[derive(Debug)]
pub enum ServerEdit {
    /// The edits of one request, all or nothing.
    Edits(Vec<crate::api::edit::Edit>),
}

/// What a server edit left: the document's version once it was committed.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The document's version after the round.
    pub version: VersionVector,
    /// Whether the edit changed anything (deleting 0 characters does not).
    pub changed: bool,
}

/// Why a server edit changed nothing.
#[derive(Clone, Debug)]
pub enum EditFailure {
    /// The edits do not fit the document (the client's fault).
    Refused(crate::api::edit::EditRefused),
    /// The document cannot take edits now (it is unloading, or its store failed).
    Unavailable(String),
}

/// A read of the document run by its actor ([`DocCommand::Read`]).
pub struct DeferredRead(pub Box<dyn FnOnce(&Document) + Send>);

impl std::fmt::Debug for DeferredRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeferredRead")
    }
}

impl DocCommand {
    /// Puts a batch's room in the queue into it (`Changes` and `GiveBack`; others take none).
    pub fn give_room(&mut self, room: QueueRoom) {
        if let DocCommand::Changes { room: slot, .. } | DocCommand::GiveBack { room: slot, .. } = self {
            *slot = Some(room);
        }
    }
}

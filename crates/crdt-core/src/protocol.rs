//! The messages a client and the document server exchange over one WebSocket, as plain data.
//!
//! crdt-core does no IO: this module only defines the messages and their encoding, so the server
//! (`doc-server`) and the browser client (`wasm-client`) share one definition. PROTOCOL.md tells
//! the story (who sends what, when, and the acknowledgement rule); this module is the truth for
//! the field layout.
//!
//! Every WebSocket binary frame is one message, encoded by [`crate::codec::encode_message`]:
//! byte 0 is the format version ([`crate::codec::FORMAT_VERSION`]), byte 1 the kind
//! ([`KIND_CLIENT`] for [`ClientMsg`], [`KIND_SERVER`] for [`ServerMsg`]), then the bincode
//! (standard config, varint integers) encoding of the message.

use serde::{Deserialize, Serialize};

use crate::document::Change;
use crate::{Anchor, DecodeError, ReplicaId, VersionVector};

/// Kind byte of a frame holding a [`ClientMsg`].
pub const KIND_CLIENT: u8 = 16;
/// Kind byte of a frame holding a [`ServerMsg`].
pub const KIND_SERVER: u8 = 17;
/// The protocol revision a client states in its hello; the server refuses others.
pub const PROTOCOL_VERSION: u16 = 2;

/// Who is behind a connection, as shown to the other people in the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Display name.
    pub name: String,
    /// CSS color, e.g. `#e91e63`.
    pub color: String,
}

/// A cursor or selection in a text field, in CRDT positions that follow their characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// The text field it is in.
    pub field: String,
    /// Where the selection started.
    pub anchor: Anchor,
    /// Where the caret is (equal to `anchor` for a plain cursor).
    pub head: Anchor,
}

/// Client → server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// First message on every connection.
    Hello {
        /// Must be [`PROTOCOL_VERSION`].
        protocol: u16,
        /// The client's replica (one per browser profile and document).
        replica: ReplicaId,
        /// What the client already has; the server answers with what it lacks.
        version: VersionVector,
        /// Name and color for presence.
        user: UserInfo,
    },
    /// A batch of the client's changes. `seq` numbers batches on this connection (1, 2, ...);
    /// the server acknowledges each `seq` once the batch is durable.
    Changes {
        /// Per-connection batch number.
        seq: u64,
        /// The changes, in causal order.
        changes: Vec<Change>,
    },
    /// The client's cursor moved (or it has none: `None`).
    Presence {
        /// The new cursor or selection.
        selection: Option<Selection>,
    },
}

/// How the server brings a new connection up to date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Catchup {
    /// The changes the client lacks, in causal order.
    Changes(Vec<Change>),
    /// A full snapshot (as made by [`crate::codec::encode_snapshot`]): merge it.
    Snapshot(Vec<u8>),
}

/// What happened to a batch of changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckStatus {
    /// Every change of the batch is applied (or was already there) and durable.
    Applied,
    /// The batch was refused as a whole; nothing of it was applied.
    Rejected {
        /// Why, for logs and for the user.
        reason: String,
    },
}

/// One other connection in the same document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The server's id for that connection (unique while the server runs).
    pub connection: u64,
    /// That client's replica.
    pub replica: ReplicaId,
    /// Its name and color.
    pub user: UserInfo,
    /// Its cursor, if it has one.
    pub selection: Option<Selection>,
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// Answer to `Hello`, sent once the document has finished loading.
    Welcome {
        /// This connection's id, as others will see it in presence.
        connection: u64,
        /// What the client lacks.
        catchup: Catchup,
        /// The server's version of the document at the time of this message.
        version: VersionVector,
        /// [`crate::Document::state_hash`] at `version`.
        hash: u64,
        /// The other people in the document now.
        peers: Vec<Peer>,
    },
    /// The client's batch `seq` is done (see [`AckStatus`]). Sent only after the changes are
    /// durable in the server's log.
    Ack {
        /// The batch number the client sent.
        seq: u64,
        /// Applied or rejected.
        status: AckStatus,
        /// The document's version right after this batch.
        version: VersionVector,
        /// The state hash at `version`: a client at exactly `version` must have the same hash.
        hash: u64,
    },
    /// Changes made by other clients, to apply.
    Changes {
        /// In causal order.
        changes: Vec<Change>,
    },
    /// Someone joined or moved their cursor.
    Presence(Peer),
    /// Someone left (closed, timed out or was disconnected).
    PresenceGone {
        /// Their connection id.
        connection: u64,
    },
    /// The connection is being closed because of this client's input or state.
    Error {
        /// Human-readable reason.
        message: String,
    },
}

impl ClientMsg {
    /// Encodes as one frame.
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode_message(KIND_CLIENT, self)
    }

    /// Decodes one frame (bounded: see [`crate::codec::decode_message`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        crate::codec::decode_message(KIND_CLIENT, bytes)
    }
}

impl ServerMsg {
    /// Encodes as one frame.
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode_message(KIND_SERVER, self)
    }

    /// Decodes one frame (bounded: see [`crate::codec::decode_message`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        crate::codec::decode_message(KIND_SERVER, bytes)
    }
}

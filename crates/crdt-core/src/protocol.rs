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
//! (standard config, varint integers) encoding of the message, in which every list of changes
//! is a byte string in the compact form of `wire.rs`. A client names replica ids and
//! field names once per connection ([`ClientMsg::encode_on`], [`ClientMsg::decode_on`] with
//! one [`WireNames`] per connection and direction, starting with the `Hello`'s replica), so a
//! keystroke costs a few tens of bytes; the server's messages name them once per message.

use serde::{Deserialize, Serialize};

use crate::codec::Bytes;
use crate::document::Change;
use crate::varint::Reader;
pub use crate::wire::{WireNames, MAX_NAMES};
use crate::{codec, wire, Anchor, DecodeError, ReplicaId, VersionVector};

/// Kind byte of a frame holding a [`ClientMsg`].
pub const KIND_CLIENT: u8 = 16;
/// Kind byte of a frame holding a [`ServerMsg`].
pub const KIND_SERVER: u8 = 17;
/// The protocol revision a client states in its hello; the server refuses others.
pub const PROTOCOL_VERSION: u16 = 5;

/// The close code of a connection whose `Hello` named a replica it may not use: one that
/// another live connection is using, or one owned by another [`AuthorSecret`]. The client
/// mints a new replica id and connects again (its pending changes keep their own ids).
pub const CLOSE_REPLICA_REFUSED: u16 = 4002;

/// The close code of a connection whose `Hello` presented no access token, or one that does
/// not grant reading this document (a bad signature, another document, malformed): do not
/// reconnect with the same token.
pub const CLOSE_UNAUTHORIZED: u16 = 4003;

/// The close code of a connection whose `Hello` presented an access token that has expired:
/// ask for a new link.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4004;

/// The longest access token a `Hello` may carry, in bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// The default limit of a client message's size, in bytes (the server's `--max-message-bytes`).
/// A client keeps each frame below it: a change larger than that is split into several changes
/// before it is made (PROTOCOL.md section 10a).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The default limit of the characters a document's text fields hold, deleted ones included
/// (the server's `--max-text-chars`; a batch going beyond it is refused with
/// [`reject::TEXT_TOO_LARGE`]). A client refuses an edit that would go beyond it before making
/// it, so a person learns at once rather than from a refusal.
pub const DEFAULT_MAX_TEXT_CHARS: u64 = 16 << 20;

/// The codes of [`AckStatus::Rejected`] (PROTOCOL.md section 5). A `u16`, not an enum, so that
/// a client can decode a code newer than itself; treat an unknown one like [`reject::INVALID`].
pub mod reject {
    /// A change is malformed (`seq` 0, an operation attributed to another replica, ...).
    pub const INVALID: u16 = 1;
    /// A change reuses the `(replica, seq)` of a change the server holds, with other content.
    pub const CONFLICT: u16 = 2;
    /// A change is not ready: the server lacks earlier changes of its replica or its deps.
    /// The only code that may pass: the same changes can be accepted once their past arrives.
    pub const NOT_READY: u16 = 3;
    /// A change's operations do not fit the document.
    pub const DOES_NOT_FIT: u16 = 4;
    /// A change is authored as a replica this connection does not own (another author
    /// secret registered it, or another live connection is using it).
    pub const NOT_OWNER: u16 = 5;
    /// The connection's access token grants reading only: nothing it sends is applied.
    pub const READ_ONLY: u16 = 6;
    /// A change would create a field beyond the document's limit of fields.
    pub const TOO_MANY_FIELDS: u16 = 7;
    /// A change would create a field whose name is longer than the server allows.
    pub const FIELD_NAME_TOO_LONG: u16 = 8;
    /// A change would insert text beyond the document's limit of characters.
    pub const TEXT_TOO_LARGE: u16 = 9;
}

/// The proof that a connection authors as its replicas: 32 random bytes a client draws once
/// per document (a browser keeps them with its saved state) and sends in every `Hello`. The
/// server keeps only their SHA-256 per (document, replica), recorded when a replica is first
/// used; changes of a replica are accepted only from connections with the same secret.
/// `Debug` never shows the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorSecret(pub [u8; 32]);

impl AuthorSecret {
    /// A new secret from the system's random source: two UUID v4s, 244 random bits (what
    /// `uuid` draws through `getrandom`, `crypto.getRandomValues` in a browser).
    pub fn random() -> AuthorSecret {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        AuthorSecret(bytes)
    }
}

impl std::fmt::Debug for AuthorSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthorSecret(..)")
    }
}

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
#[derive(Clone, Debug, PartialEq)]
pub enum ClientMsg {
    /// First message on every connection.
    Hello {
        /// Must be [`PROTOCOL_VERSION`].
        protocol: u16,
        /// The replica this connection edits as (a new one per page open, or one of a small
        /// pool the browser keeps per document).
        replica: ReplicaId,
        /// Proves that this connection may author changes as `replica` and as the client's
        /// earlier replicas of the document (see [`AuthorSecret`]).
        author: AuthorSecret,
        /// What the client already has; the server answers with what it lacks.
        version: VersionVector,
        /// Name and color for presence.
        user: UserInfo,
        /// The access token of the link the client was given (PROTOCOL.md section 9a); empty
        /// when it has none (a server in `--open` mode needs none).
        token: String,
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
    /// Changes of *other* replicas that the server relayed to this client and then lost (it
    /// crashed before they were durable), given back with the [`RelayTag`] of the
    /// [`ServerMsg::Relay`] that carried them (since protocol 5). Numbered and acknowledged like
    /// a `Changes` batch; the server checks the tag instead of the authors.
    GiveBack {
        /// Per-connection batch number (shared with `Changes`).
        seq: u64,
        /// Exactly the changes of that relay, in its order.
        changes: Vec<Change>,
        /// The relay's tag.
        tag: RelayTag,
    },
}

/// The server's proof that it accepted a list of changes from their authors: 16 bytes of an
/// HMAC-SHA256 under a key only servers hold, over the document id and the list's encoding
/// ([`change_list_bytes`]). A client keeps it with a relay until the server says the relay is
/// durable, so that it can give the changes back should the server lose them.
pub type RelayTag = [u8; 16];

/// How the server brings a new connection up to date.
#[derive(Clone, Debug, PartialEq)]
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
        /// Why, for the client to act on: one of the [`reject`] codes.
        code: u16,
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
#[derive(Clone, Debug, PartialEq)]
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
        /// The entries of the document's version right after this batch that changed since
        /// this connection's `Welcome` or previous `Ack` (the rest are as they were told).
        version: VersionVector,
        /// The state hash at `version`: a client at exactly `version` must have the same hash.
        hash: u64,
    },
    /// Changes made by other clients, to apply (protocol 4; since protocol 5 the server sends
    /// [`ServerMsg::Relay`] instead).
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
    /// Changes made by other clients, to apply, sent as soon as the server applied them and
    /// *before* they are durable (since protocol 5). Keep `tag` with them until a relay arrives
    /// whose `durable` is at least `number`; after a reconnect, give back with
    /// [`ClientMsg::GiveBack`] what the `Welcome`'s version lacks.
    Relay {
        /// In causal order.
        changes: Vec<Change>,
        /// Vouches for exactly `changes`.
        tag: RelayTag,
        /// This relay's number: relays of a document are numbered 1, 2, ... while it is loaded.
        number: u64,
        /// Every relay of this load of the document numbered up to this one is durable.
        durable: u64,
    },
}

impl ClientMsg {
    /// Encodes as one frame that names everything in full (for a one-off message; a client
    /// on a connection uses [`encode_on`](Self::encode_on)).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_on(&mut WireNames::new())
    }

    /// Encodes as one frame on a connection whose client → server names are `names`.
    pub fn encode_on(&self, names: &mut WireNames) -> Vec<u8> {
        let wire = match self {
            ClientMsg::Hello { protocol, replica, author, version, user, token } => {
                // The decoder refuses a full table; the Hello still encodes.
                let _ = names.name_replica(*replica);
                ClientWire::HelloWithToken { protocol: *protocol, replica: *replica, author, version, user, token }
            }
            ClientMsg::Changes { seq, changes } => {
                ClientWire::Changes { seq: *seq, changes: changes_bytes(changes, names) }
            }
            ClientMsg::Presence { selection } => ClientWire::Presence { selection },
            ClientMsg::GiveBack { seq, changes, tag } => {
                ClientWire::GiveBack { seq: *seq, changes: Bytes(change_list_bytes(changes)), tag: Bytes(tag.to_vec()) }
            }
        };
        codec::encode_message(KIND_CLIENT, &wire)
    }

    /// Decodes one frame that names everything it uses (bounded: see
    /// [`crate::codec::decode_message`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_on(bytes, codec::MAX_MESSAGE_LEN, &mut WireNames::new())
    }

    /// Decodes one frame of at most `max_len` bytes on a connection whose client → server
    /// names are `names` (which it extends).
    pub fn decode_on(bytes: &[u8], max_len: usize, names: &mut WireNames) -> Result<Self, DecodeError> {
        let wire: ClientWireOwned = codec::decode_message_with_limit(KIND_CLIENT, bytes, max_len)?;
        Ok(match wire {
            // Protocol 3's hello (no token) still decodes, so that its `protocol` is refused
            // by number rather than as an undecodable frame.
            ClientWireOwned::Hello { protocol, replica, author, version, user } => {
                names.name_replica(replica).map_err(DecodeError::Invalid)?;
                ClientMsg::Hello { protocol, replica, author, version, user, token: String::new() }
            }
            ClientWireOwned::HelloWithToken { protocol, replica, author, version, user, token } => {
                names.name_replica(replica).map_err(DecodeError::Invalid)?;
                ClientMsg::Hello { protocol, replica, author, version, user, token }
            }
            ClientWireOwned::Changes { seq, changes } => {
                ClientMsg::Changes { seq, changes: changes_of(&changes.0, names)? }
            }
            ClientWireOwned::Presence { selection } => ClientMsg::Presence { selection },
            ClientWireOwned::GiveBack { seq, changes, tag } => {
                ClientMsg::GiveBack { seq, changes: changes_of(&changes.0, &mut WireNames::new())?, tag: tag_of(&tag)? }
            }
        })
    }
}

impl ServerMsg {
    /// Encodes as one frame (each list of changes names its replicas and fields itself, so one
    /// frame can go to every connection).
    pub fn encode(&self) -> Vec<u8> {
        let changes = |list: &[Change]| changes_bytes(list, &mut WireNames::new());
        let wire = match self {
            ServerMsg::Welcome { connection, catchup, version, hash, peers } => ServerWire::Welcome {
                connection: *connection,
                catchup: match catchup {
                    Catchup::Changes(list) => CatchupWire::Changes(changes(list)),
                    Catchup::Snapshot(bytes) => CatchupWire::Snapshot(Bytes(bytes.clone())),
                },
                version,
                hash: *hash,
                peers,
            },
            ServerMsg::Ack { seq, status, version, hash } => {
                ServerWire::Ack { seq: *seq, status, version, hash: *hash }
            }
            ServerMsg::Changes { changes: list } => ServerWire::Changes { changes: changes(list) },
            ServerMsg::Presence(peer) => ServerWire::Presence(peer),
            ServerMsg::PresenceGone { connection } => ServerWire::PresenceGone { connection: *connection },
            ServerMsg::Error { message } => ServerWire::Error { message },
            ServerMsg::Relay { changes: list, tag, number, durable } => {
                ServerWire::Relay { relay: relay_bytes(&changes(list).0, tag, *number, *durable) }
            }
        };
        codec::encode_message(KIND_SERVER, &wire)
    }

    /// Decodes one frame (bounded: see [`crate::codec::decode_message`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: ServerWireOwned = codec::decode_message(KIND_SERVER, bytes)?;
        let changes = |bytes: &Bytes| changes_of(&bytes.0, &mut WireNames::new());
        Ok(match wire {
            ServerWireOwned::Welcome { connection, catchup, version, hash, peers } => ServerMsg::Welcome {
                connection,
                catchup: match catchup {
                    CatchupWireOwned::Changes(bytes) => Catchup::Changes(changes(&bytes)?),
                    CatchupWireOwned::Snapshot(bytes) => Catchup::Snapshot(bytes.0),
                },
                version,
                hash,
                peers,
            },
            ServerWireOwned::Ack { seq, status, version, hash } => ServerMsg::Ack { seq, status, version, hash },
            ServerWireOwned::Changes { changes: bytes } => ServerMsg::Changes { changes: changes(&bytes)? },
            ServerWireOwned::Presence(peer) => ServerMsg::Presence(peer),
            ServerWireOwned::PresenceGone { connection } => ServerMsg::PresenceGone { connection },
            ServerWireOwned::Error { message } => ServerMsg::Error { message },
            ServerWireOwned::Relay { relay } => relay_of(&relay.0)?,
        })
    }
}

/// How many bytes `changes` take as a server message's `ChangeList` (each list names its own
/// replicas and fields): what a catch-up of them costs on the wire.
pub fn change_list_len(changes: &[Change]) -> usize {
    change_list_bytes(changes).len()
}

/// `changes` as a server message's `ChangeList` names them (every replica and field in
/// full): the bytes a [`RelayTag`] covers.
pub fn change_list_bytes(changes: &[Change]) -> Vec<u8> {
    changes_bytes(changes, &mut WireNames::new()).0
}

/// A [`ServerMsg::Relay`] frame of changes already encoded by [`change_list_bytes`] (the
/// server encodes them once, for the tag and the frame).
pub fn relay_frame(list: &[u8], tag: &RelayTag, number: u64, durable: u64) -> Vec<u8> {
    codec::encode_message(KIND_SERVER, &ServerWire::Relay { relay: relay_bytes(list, tag, number, durable) })
}

/// A relay's one byte string: `number` and `durable` (LEB128 varints), the 16 tag bytes, then
/// the change list. One byte string decodes with code every frame already uses (serde fields
/// of their own cost the browser's wasm kilobytes).
fn relay_bytes(list: &[u8], tag: &RelayTag, number: u64, durable: u64) -> Bytes {
    let mut out = Vec::with_capacity(list.len() + 36);
    crate::varint::put(&mut out, number);
    crate::varint::put(&mut out, durable);
    out.extend_from_slice(tag);
    out.extend_from_slice(list);
    Bytes(out)
}

fn relay_of(bytes: &[u8]) -> Result<ServerMsg, DecodeError> {
    let mut rd = Reader { buf: bytes, at: 0 };
    let malformed = |e: &'static str| DecodeError::Malformed(e.into());
    let number = rd.varint().map_err(malformed)?;
    let durable = rd.varint().map_err(malformed)?;
    let mut tag: RelayTag = [0; 16];
    tag.copy_from_slice(rd.bytes(16).map_err(malformed)?);
    let changes = changes_of(&bytes[rd.at..], &mut WireNames::new())?;
    Ok(ServerMsg::Relay { changes, tag, number, durable })
}

/// A tag from the wire, where it is a byte string (of 16 bytes): a byte string decodes with
/// code every frame already uses, and keeps the browser's wasm smaller than a `[u8; 16]`.
fn tag_of(bytes: &Bytes) -> Result<RelayTag, DecodeError> {
    bytes.0.as_slice().try_into().map_err(|_| DecodeError::Malformed("a relay tag is not 16 bytes".into()))
}

fn changes_bytes(changes: &[Change], names: &mut WireNames) -> Bytes {
    let mut out = Vec::new();
    wire::encode_changes(changes, names, &mut out);
    Bytes(out)
}

fn changes_of(bytes: &[u8], names: &mut WireNames) -> Result<Vec<Change>, DecodeError> {
    let mut rd = Reader { buf: bytes, at: 0 };
    let changes = wire::decode_changes(&mut rd, names).map_err(|e| DecodeError::Malformed(e.into()))?;
    if !rd.at_end() {
        return Err(DecodeError::TrailingBytes(bytes.len() - rd.at));
    }
    Ok(changes)
}

// The messages as bincode writes them: the same variants and fields, lists of changes as
// compact byte strings. Borrowed for encoding, owned for decoding.

#[derive(Serialize)]
enum ClientWire<'a> {
    /// Protocol 3's hello: no longer sent, kept for the variant indexes.
    #[allow(dead_code)]
    Hello {
        protocol: u16,
        replica: ReplicaId,
        author: &'a AuthorSecret,
        version: &'a VersionVector,
        user: &'a UserInfo,
    },
    Changes {
        seq: u64,
        changes: Bytes,
    },
    Presence {
        selection: &'a Option<Selection>,
    },
    /// Since protocol 4: the hello with an access token.
    HelloWithToken {
        protocol: u16,
        replica: ReplicaId,
        author: &'a AuthorSecret,
        version: &'a VersionVector,
        user: &'a UserInfo,
        token: &'a str,
    },
    /// Since protocol 5. The changes name everything in full (as the relay did).
    GiveBack {
        seq: u64,
        changes: Bytes,
        tag: Bytes,
    },
}

#[derive(Deserialize)]
enum ClientWireOwned {
    Hello {
        protocol: u16,
        replica: ReplicaId,
        author: AuthorSecret,
        version: VersionVector,
        user: UserInfo,
    },
    Changes {
        seq: u64,
        changes: Bytes,
    },
    Presence {
        selection: Option<Selection>,
    },
    HelloWithToken {
        protocol: u16,
        replica: ReplicaId,
        author: AuthorSecret,
        version: VersionVector,
        user: UserInfo,
        token: String,
    },
    GiveBack {
        seq: u64,
        changes: Bytes,
        tag: Bytes,
    },
}

#[derive(Serialize)]
enum CatchupWire {
    Changes(Bytes),
    Snapshot(Bytes),
}

#[derive(Deserialize)]
enum CatchupWireOwned {
    Changes(Bytes),
    Snapshot(Bytes),
}

#[derive(Serialize)]
enum ServerWire<'a> {
    Welcome {
        connection: u64,
        catchup: CatchupWire,
        version: &'a VersionVector,
        hash: u64,
        peers: &'a [Peer],
    },
    Ack {
        seq: u64,
        status: &'a AckStatus,
        version: &'a VersionVector,
        hash: u64,
    },
    Changes {
        changes: Bytes,
    },
    Presence(&'a Peer),
    PresenceGone {
        connection: u64,
    },
    Error {
        message: &'a str,
    },
    /// See [`relay_bytes`].
    Relay {
        relay: Bytes,
    },
}

#[derive(Deserialize)]
enum ServerWireOwned {
    Welcome {
        connection: u64,
        catchup: CatchupWireOwned,
        version: VersionVector,
        hash: u64,
        peers: Vec<Peer>,
    },
    Ack {
        seq: u64,
        status: AckStatus,
        version: VersionVector,
        hash: u64,
    },
    Changes {
        changes: Bytes,
    },
    Presence(Peer),
    PresenceGone {
        connection: u64,
    },
    Error {
        message: String,
    },
    /// See [`relay_bytes`].
    Relay {
        relay: Bytes,
    },
}

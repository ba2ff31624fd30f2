//! What the page learns from the session, as plain serializable structs that become JS objects.
//!
//! Field names are camelCase as JavaScript expects. Positions are UTF-16 code units.

use serde::Serialize;

/// Which message (or step) produced an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// The server accepted the connection and sent what was missing.
    Welcome,
    /// Changes from the server or from another tab.
    Changes,
    /// The server acknowledged a batch.
    Ack,
    /// Someone arrived, left or moved their cursor.
    Presence,
    /// The server reported an error and is closing the connection.
    Error,
    /// State saved by another tab was merged in.
    Merged,
}

/// One edit of the body, to apply to the editor in order (each position is in the text as
/// left by the previous delta).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Delta {
    /// `text` appeared at `pos`.
    Insert {
        /// UTF-16 position.
        pos: usize,
        /// The new text.
        text: String,
    },
    /// `len` UTF-16 units at `pos` went away.
    Delete {
        /// UTF-16 position.
        pos: usize,
        /// UTF-16 length.
        len: usize,
    },
}

/// The outcome of one incoming frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// What produced it.
    pub kind: EventKind,
    /// Edits of the body, in order; apply them to the editor to keep it equal to the document.
    pub deltas: Vec<Delta>,
    /// The body changed in a way not described by `deltas` (a state merge): reread it.
    pub reset: bool,
    /// Some field may have changed: reread title, tags, likes and views.
    pub changed: bool,
    /// The presence list changed.
    pub peers_changed: bool,
    /// How many pending changes the server now has (and so left the pending queue).
    pub acked: usize,
    /// The document is at the server's version but its state hash differs: a bug somewhere.
    pub diverged: bool,
    /// A message for the user (server error, refused change).
    pub message: Option<String>,
    /// Connect again now: the session discarded changes the server refused for good, and the
    /// next connection rebuilds the document from the server's copy.
    pub reconnect: bool,
}

impl Event {
    /// An event of `kind` that changes nothing.
    pub fn new(kind: EventKind) -> Event {
        Event {
            kind,
            deltas: Vec::new(),
            reset: false,
            changed: false,
            peers_changed: false,
            acked: 0,
            diverged: false,
            message: None,
            reconnect: false,
        }
    }
}

/// Another person in the document, for the presence list and the remote cursors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    /// The server's id of their connection.
    pub connection: u64,
    /// Their replica id (a UUID).
    pub replica: String,
    /// Display name.
    pub name: String,
    /// CSS color.
    pub color: String,
    /// Selection start in the body now (UTF-16), if they have a cursor and it is known here.
    pub anchor: Option<usize>,
    /// Caret position in the body now (UTF-16).
    pub head: Option<usize>,
}

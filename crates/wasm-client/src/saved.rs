//! [`Saved`]: what a page keeps in IndexedDB for one document, as one versioned frame.
//!
//! ```text
//! byte 0   codec::FORMAT_VERSION
//! byte 1   KIND_SAVED (48)
//! bytes 2.. bincode { snapshot: bytes (codec::encode_snapshot, history included),
//!                     pending: Vec<Change>, server_version: VersionVector }
//! ```
//!
//! The snapshot keeps the history so that the restored document can still serve
//! `ops_since`; `pending` are the changes the server had not acknowledged when it was saved.

use crdt_core::{codec, Change, DecodeError, VersionVector};
use serde::{Deserialize, Serialize};

/// Kind byte of a saved session. crdt-core uses 1 and 2, the protocol 16 and 17.
pub const KIND_SAVED: u8 = 48;

/// A session as stored in the browser.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Saved {
    /// `codec::encode_snapshot` of the document.
    pub snapshot: Vec<u8>,
    /// Changes not yet acknowledged by the server, in causal order.
    pub pending: Vec<Change>,
    /// What the server was known to have.
    pub server_version: VersionVector,
}

impl Saved {
    /// One frame.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode_message(KIND_SAVED, self)
    }

    /// Decodes a frame made by [`Saved::encode`]. The snapshot inside is validated when it is
    /// decoded, and each pending change before it is used.
    pub fn decode(bytes: &[u8]) -> Result<Saved, DecodeError> {
        codec::decode_message_with_limit(KIND_SAVED, bytes, codec::MAX_SNAPSHOT_LEN)
    }
}

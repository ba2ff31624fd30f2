//! What a page keeps in IndexedDB for one document, as versioned frames: a compacted state
//! ([`Saved`]) and the records of changes appended after it ([`SavedChanges`]).
//!
//! ```text
//! Saved (the compacted state, written when the page is idle):
//! byte 0   codec::FORMAT_VERSION
//! byte 1   KIND_SAVED (48)
//! bytes 2.. bincode { snapshot: bytes (codec::encode_snapshot, history included),
//!                     pending: Vec<Change>, server_version: VersionVector }
//!
//! SavedChanges (one record, appended as changes are taken in):
//! byte 0   codec::FORMAT_VERSION
//! byte 1   KIND_SAVED_CHANGES (49)
//! bytes 2.. bincode { changes: bytes (codec::encode_changes), server_version: VersionVector }
//! ```
//!
//! The snapshot keeps the history so that the restored document can still serve
//! `ops_since`; `pending` are the changes the server had not acknowledged when it was saved.
//! A record's changes are every change the document took in since the previous record (its
//! own, the server's, other tabs'), in the order it took them; `server_version` is what the
//! server was known to have when the record was taken. Loading applies the records in order
//! over the state.

use std::collections::VecDeque;

use crdt_core::{codec, Change, DecodeError, VersionVector};
use serde::{Deserialize, Serialize};

/// Kind byte of a saved session. crdt-core uses 1 and 2, the protocol 16 and 17.
pub const KIND_SAVED: u8 = 48;
/// Kind byte of a record of changes appended after a saved session.
pub const KIND_SAVED_CHANGES: u8 = 49;

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
    ///
    /// A record an earlier release wrote (format 1: pending changes with whole version vectors
    /// as deps, a format 1 snapshot) is converted: the snapshot is decoded as format 1 later,
    /// and the pending changes get their direct dependencies here.
    pub fn decode(bytes: &[u8]) -> Result<Saved, DecodeError> {
        if codec::frame_version(bytes) == Some(codec::LEGACY_FORMAT_VERSION) {
            let legacy: LegacySaved = codec::decode_legacy_message(KIND_SAVED, bytes, codec::MAX_SNAPSHOT_LEN)?;
            return Ok(Saved {
                snapshot: legacy.snapshot,
                pending: codec::from_legacy(legacy.pending),
                server_version: legacy.server_version,
            });
        }
        codec::decode_message_with_limit(KIND_SAVED, bytes, codec::MAX_SNAPSHOT_LEN)
    }
}

/// A [`Saved`] record of format 1.
#[derive(Deserialize)]
struct LegacySaved {
    snapshot: Vec<u8>,
    pending: Vec<codec::LegacyChange>,
    server_version: VersionVector,
}

/// [`Saved`] by reference, so that saving does not copy the pending changes. It encodes to
/// the same bytes.
#[derive(Serialize)]
pub(crate) struct SavedRef<'a> {
    pub snapshot: Vec<u8>,
    pub pending: &'a VecDeque<Change>,
    pub server_version: &'a VersionVector,
}

impl SavedRef<'_> {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode_message(KIND_SAVED, self)
    }
}

/// One record of changes, appended to storage after the compacted state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedChanges {
    /// `codec::encode_changes` of the changes, in the order the document took them in.
    pub changes: Vec<u8>,
    /// What the server was known to have when the record was taken.
    pub server_version: VersionVector,
}

impl SavedChanges {
    /// One frame.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode_message(KIND_SAVED_CHANGES, self)
    }

    /// Decodes a frame made by [`SavedChanges::encode`]; the changes inside are decoded (and
    /// validated) by `codec::decode_changes`.
    pub fn decode(bytes: &[u8]) -> Result<SavedChanges, DecodeError> {
        codec::decode_message(KIND_SAVED_CHANGES, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt_core::{Document, ReplicaId};

    #[test]
    fn saved_by_reference_encodes_like_saved() {
        let mut doc = Document::new(ReplicaId::from_u128(1));
        let change = doc.insert_text("body", 0, "hi").unwrap();
        let mut server_version = VersionVector::new();
        server_version.set(ReplicaId::from_u128(2), 3);
        let owned =
            Saved { snapshot: vec![1, 2, 3], pending: vec![change.clone()], server_version: server_version.clone() };
        let pending = VecDeque::from([change]);
        let borrowed = SavedRef { snapshot: vec![1, 2, 3], pending: &pending, server_version: &server_version };
        assert_eq!(owned.encode(), borrowed.encode());
    }
}

#[cfg(test)]
mod legacy_tests {
    use super::*;
    use crdt_core::{Document, ReplicaId};

    /// A record of format 1 (an earlier release's IndexedDB) loads into the same session.
    #[test]
    fn format_1_records_are_converted() {
        let mut doc = Document::new(ReplicaId::from_u128(1));
        let first = doc.insert_text("body", 0, "hi").unwrap();
        let second = doc.insert_text("body", 2, "!").unwrap();
        let legacy = |change: &Change| codec::LegacyChange {
            replica: change.replica,
            seq: change.seq,
            deps: [(change.replica, change.seq - 1)].into_iter().collect(),
            ops: change.ops.to_vec(),
        };
        #[derive(Serialize)]
        struct Old {
            snapshot: Vec<u8>,
            pending: Vec<codec::LegacyChange>,
            server_version: VersionVector,
        }
        let old = Old {
            snapshot: codec::encode_legacy_snapshot(&doc),
            pending: vec![legacy(&first), legacy(&second)],
            server_version: VersionVector::new(),
        };
        let mut bytes = codec::encode_message(KIND_SAVED, &old);
        bytes[0] = codec::LEGACY_FORMAT_VERSION;
        let saved = Saved::decode(&bytes).unwrap();
        assert_eq!(saved.pending, vec![first, second]);
        let restored = codec::decode_snapshot(&saved.snapshot, ReplicaId::from_u128(1)).unwrap();
        assert_eq!(restored.text("body").as_deref(), Some("hi!"));
        assert_eq!(restored.state_hash(), doc.state_hash());
    }
}

//! Relay tags: the server's proof, inside every [`ServerMsg::Relay`], that it accepted a list
//! of changes from their authors.
//!
//! A document's actor sends each round's changes to the other connections as soon as they are
//! applied, before the group commit that makes them durable (so a peer sees a keystroke
//! without waiting for an fsync). Should the server die in between, the peers hold changes the
//! server lost, and their authors may never come back to send them again. A peer therefore
//! keeps each relay's tag until the server says the relay is durable, and after a reconnect
//! gives back ([`ClientMsg::GiveBack`]) what the server's `Welcome` lacks. The server accepts
//! those changes on the tag, whoever sends them: the tag proves that the server itself checked
//! their authors when they first arrived (and registered any new author durably before the
//! relay), so the authors check is not repeated.
//!
//! The tag is 16 bytes of HMAC-SHA256 under a key derived from the server secret (so every
//! server sharing that secret, as a cluster's members do, accepts it), over the document id
//! (length-prefixed) and the change list as [`change_list_bytes`] encodes it.
//!
//! [`ServerMsg::Relay`]: crdt_core::protocol::ServerMsg::Relay
//! [`ClientMsg::GiveBack`]: crdt_core::protocol::ClientMsg::GiveBack
//! [`change_list_bytes`]: crdt_core::protocol::change_list_bytes

use crdt_core::protocol::RelayTag;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::DocId;

/// See the module docs. `Debug` never shows the key.
#[derive(Clone)]
pub struct RelayKey(Option<[u8; 32]>);

impl std::fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayKey(..)")
    }
}

impl RelayKey {
    /// A key of these bytes (derived from the server secret: `Auth::relay_key`); `None`: no
    /// key, every tag is refused.
    pub fn new(bytes: Option<[u8; 32]>) -> RelayKey {
        RelayKey(bytes)
    }

    /// The tag of `list` (a [`crdt_core::protocol::change_list_bytes`] encoding) in `doc`.
    pub fn tag(&self, doc: &DocId, list: &[u8]) -> RelayTag {
        let mut tag = [0u8; 16];
        if let Some(mac) = self.mac(doc, list) {
            tag.copy_from_slice(&mac.finalize().into_bytes()[..16]);
        }
        tag
    }

    /// Whether `tag` is this key's tag of `list` in `doc` (in constant time).
    pub fn verify(&self, doc: &DocId, list: &[u8], tag: &RelayTag) -> bool {
        self.mac(doc, list).is_some_and(|mac| mac.verify_truncated_left(tag).is_ok())
    }

    fn mac(&self, doc: &DocId, list: &[u8]) -> Option<Hmac<Sha256>> {
        // HMAC takes keys of any length: `ok()` never drops one.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref()?).ok()?;
        let id = doc.as_str().as_bytes();
        mac.update(&(id.len() as u64).to_le_bytes());
        mac.update(id);
        mac.update(list);
        Some(mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_only_for_its_document_list_and_key() {
        let key = RelayKey::new(Some([7; 32]));
        let (doc, other) = (DocId::parse("doc").unwrap(), DocId::parse("doc2").unwrap());
        let tag = key.tag(&doc, b"list");
        assert!(key.verify(&doc, b"list", &tag));
        assert!(!key.verify(&other, b"list", &tag), "another document");
        assert!(!key.verify(&doc, b"lisT", &tag), "other changes");
        assert!(!RelayKey::new(Some([8; 32])).verify(&doc, b"list", &tag), "another server's secret");
        let mut forged = tag;
        forged[15] ^= 1;
        assert!(!key.verify(&doc, b"list", &forged));
        assert!(!RelayKey::new(None).verify(&doc, b"list", &RelayKey::new(None).tag(&doc, b"list")), "no key");
    }
}

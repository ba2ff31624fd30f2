//! Presence: the `Presence` frame for this person's cursor, and the other people here with
//! their selections mapped to current positions (UTF-16 units of the body, as the editor
//! counts).

use crdt_core::protocol::{ClientMsg, Selection};
use crdt_core::Anchor;

use super::{PeerView, Session, BODY};

impl Session {
    /// The `Presence` frame for a cursor or selection given in UTF-16 positions of the body.
    pub fn presence(&self, anchor: usize, head: usize) -> Vec<u8> {
        let selection =
            Selection { field: BODY.to_owned(), anchor: self.anchor_at(anchor), head: self.anchor_at(head) };
        ClientMsg::Presence { selection: Some(selection) }.encode()
    }

    fn anchor_at(&self, pos16: usize) -> Anchor {
        let Some(rga) = self.doc.rga(BODY) else {
            return Anchor { after: None };
        };
        // A position inside a surrogate pair (which an editor should never report) snaps to
        // the start of the pair; one past the end snaps to the end.
        let pos16 = pos16.min(rga.len_utf16());
        let pos = rga.utf16_to_char(pos16).or_else(|_| rga.utf16_to_char(pos16.saturating_sub(1))).unwrap_or(0);
        rga.anchor_at(pos)
    }

    /// Where an anchor is now, in UTF-16 units of the body (`None` if its character has not
    /// arrived here yet).
    fn anchor_position(&self, anchor: &Anchor) -> Option<usize> {
        match self.doc.rga(BODY) {
            Some(rga) => rga.anchor_position(anchor).and_then(|pos| rga.char_to_utf16(pos).ok()),
            None => anchor.after.is_none().then_some(0),
        }
    }

    /// The other people here, with their selections mapped to current positions.
    pub fn peers(&self) -> Vec<PeerView> {
        self.peers
            .values()
            .map(|peer| {
                let selection = peer.selection.as_ref().filter(|s| s.field == BODY);
                PeerView {
                    connection: peer.connection,
                    replica: peer.replica.to_string(),
                    name: peer.user.name.clone(),
                    color: peer.user.color.clone(),
                    anchor: selection.and_then(|s| self.anchor_position(&s.anchor)),
                    head: selection.and_then(|s| self.anchor_position(&s.head)),
                }
            })
            .collect()
    }
}

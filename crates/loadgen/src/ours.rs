//! doc-server's protocol (PROTOCOL.md), spoken with crdt-core directly: `Hello` → `Welcome`,
//! then one `Changes` batch per keystroke, encoded on the connection's [`WireNames`], and the
//! others' `Changes` applied to the local [`Document`] as they come.
//!
//! A keystroke's stamp is its change's `(replica, seq)`. An `Applied` ack of batch `seq`
//! acknowledges every earlier batch of the connection too (one ack per group commit).

use crdt_core::protocol::{
    AckStatus, AuthorSecret, Catchup, ClientMsg, ServerMsg, UserInfo, WireNames, PROTOCOL_VERSION,
};
use crdt_core::{codec, Anchor, ApplyOutcome, Document, ReplicaId, VersionVector};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{connect_ws, next_binary, Incoming, Outgoing, Protocol, Ws};
use crate::ledger::Stamp;
use crate::typist::{jump_position, Key, Step};

/// The text field the browser page edits.
const FIELD: &str = "body";

/// One doc-server client's state after its handshake.
pub struct Ours {
    doc: Document,
    author: u128,
    names: WireNames,
    next_batch: u64,
    /// Where the caret was put by the last jump.
    base: Anchor,
    /// After each character typed since then (and not backspaced): the caret is after the last.
    run: Vec<Anchor>,
}

impl Ours {
    /// A new replica with an empty document, not connected.
    fn fresh(replica: ReplicaId) -> Ours {
        Ours {
            doc: Document::new(replica),
            author: replica.uuid().as_u128(),
            names: WireNames::new(),
            next_batch: 1,
            base: Anchor { after: None },
            run: Vec::new(),
        }
    }

    /// Connects to `ws://{addr}/ws/{doc}`, says hello as a new replica and applies the welcome.
    pub async fn connect(addr: &str, doc: &str, user: &str) -> Result<(Ws, Ours), String> {
        let mut ws = connect_ws(&format!("ws://{addr}/ws/{doc}")).await?;
        let mut ours = Ours::fresh(ReplicaId::random());
        let hello = ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            replica: ours.doc.replica(),
            author: AuthorSecret::random(),
            version: VersionVector::new(),
            user: UserInfo { name: user.to_owned(), color: "#3366cc".into() },
            token: String::new(),
        };
        ws.send(Message::Binary(hello.encode_on(&mut ours.names).into())).await.map_err(|e| format!("send: {e}"))?;
        let frame = next_binary(&mut ws).await?;
        match ServerMsg::decode(&frame).map_err(|e| format!("bad welcome: {e}"))? {
            ServerMsg::Welcome { catchup: Catchup::Changes(changes), .. } => {
                for change in changes {
                    ours.doc.apply_change(change).map_err(|e| format!("catch-up: {e}"))?;
                }
            }
            ServerMsg::Welcome { catchup: Catchup::Snapshot(bytes), .. } => {
                let snapshot =
                    codec::decode_snapshot(&bytes, ours.doc.replica()).map_err(|e| format!("snapshot: {e}"))?;
                ours.doc.merge(&snapshot);
            }
            other => return Err(format!("expected Welcome, got {other:?}")),
        }
        Ok((ws, ours))
    }

    /// The local document, to edit outside the typist (loading a trace).
    pub fn document_mut(&mut self) -> &mut Document {
        &mut self.doc
    }

    /// Encodes `message` on this connection's names.
    pub fn encode(&mut self, message: ClientMsg) -> Vec<u8> {
        message.encode_on(&mut self.names)
    }

    fn len(&self) -> usize {
        self.doc.rga(FIELD).map_or(0, |rga| rga.len())
    }

    /// The caret's position now.
    fn caret(&self) -> usize {
        let anchor = self.run.last().unwrap_or(&self.base);
        match self.doc.rga(FIELD) {
            Some(rga) => rga.anchor_position(anchor).unwrap_or_else(|| rga.len()),
            None => 0,
        }
    }
}

impl Protocol for Ours {
    fn keystroke(&mut self, step: Step) -> Result<Outgoing, String> {
        if let Some(fraction) = step.jump {
            let pos = jump_position(fraction, self.len());
            self.base = self.doc.rga(FIELD).map_or(Anchor { after: None }, |rga| rga.anchor_at(pos));
            self.run.clear();
        }
        let pos = self.caret();
        let change = match step.key {
            Key::Type(c) => {
                let change = self.doc.insert_text(FIELD, pos, c.encode_utf8(&mut [0; 4])).map_err(|e| e.to_string())?;
                let rga = self.doc.rga(FIELD).ok_or("the text field vanished")?;
                self.run.push(rga.anchor_at(pos + 1));
                change
            }
            Key::Backspace => {
                // The typist backspaces only over its own run, so the caret is after one of
                // this replica's characters.
                let at = pos.checked_sub(1).ok_or("a backspace at the start of the text")?;
                let change = self.doc.delete_text(FIELD, at, 1).map_err(|e| e.to_string())?.ok_or("an empty delete")?;
                self.run.pop();
                change
            }
        };
        let stamp = Stamp { author: self.author, number: change.seq };
        let batch = self.next_batch;
        self.next_batch += 1;
        let frame = ClientMsg::Changes { seq: batch, changes: vec![change] }.encode_on(&mut self.names);
        Ok(Outgoing { stamp, frame, batch: Some(batch) })
    }

    fn receive(&mut self, frame: &[u8], incoming: &mut Incoming) -> Result<(), String> {
        match ServerMsg::decode(frame).map_err(|e| format!("bad server frame: {e}"))? {
            ServerMsg::Changes { changes } | ServerMsg::Relay { changes, .. } => {
                for change in changes {
                    incoming.seen.push(Stamp { author: change.replica.uuid().as_u128(), number: change.seq });
                    match self.doc.apply_change(change) {
                        Ok(ApplyOutcome::Applied { .. } | ApplyOutcome::Duplicate) => {}
                        Ok(ApplyOutcome::Buffered) => return Err("the server sent a change out of causal order".into()),
                        Err(e) => return Err(format!("the server sent a change that does not apply: {e}")),
                    }
                }
            }
            ServerMsg::Ack { seq, status: AckStatus::Applied, .. } => incoming.acked = Some(seq),
            ServerMsg::Ack { seq, status: AckStatus::Rejected { reason, .. }, .. } => {
                return Err(format!("batch {seq} rejected: {reason}"))
            }
            ServerMsg::Presence(_) | ServerMsg::PresenceGone { .. } => {}
            ServerMsg::Error { message } => return Err(format!("server error: {message}")),
            ServerMsg::Welcome { .. } => return Err("a second Welcome".into()),
        }
        Ok(())
    }

    fn text(&self) -> String {
        self.doc.text(FIELD).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(c: char) -> Step {
        Step { jump: None, key: Key::Type(c) }
    }

    /// Sends `frame` through a server's decoding (on `names`) to `to`; returns the stamps seen.
    fn relay(frame: &[u8], names: &mut WireNames, to: &mut Ours) -> Vec<Stamp> {
        let Ok(ClientMsg::Changes { changes, .. }) = ClientMsg::decode_on(frame, 1 << 20, names) else {
            panic!("a Changes frame");
        };
        let mut incoming = Incoming::default();
        to.receive(&ServerMsg::Changes { changes }.encode(), &mut incoming).expect("applies");
        incoming.seen
    }

    #[test]
    fn a_typist_continues_behind_its_caret_while_others_type_before_it() {
        let (mut ann, mut bob) = (Ours::fresh(ReplicaId::from_u128(1)), Ours::fresh(ReplicaId::from_u128(2)));
        let mut ann_names = WireNames::new();
        let mut bob_names = WireNames::new();
        ann_names.name_replica(ann.doc.replica()).unwrap();
        ann.names.name_replica(ann.doc.replica()).unwrap();
        bob_names.name_replica(bob.doc.replica()).unwrap();
        bob.names.name_replica(bob.doc.replica()).unwrap();

        let mut steps = vec![Step { jump: Some(0.0), key: Key::Type('a') }, typed('b'), typed('c')];
        for step in steps.drain(..) {
            let out = ann.keystroke(step).unwrap();
            assert_eq!(relay(&out.frame, &mut ann_names, &mut bob), vec![out.stamp]);
        }
        // Bob types at the start, before Ann's caret.
        for step in [Step { jump: Some(0.0), key: Key::Type('X') }, typed('Y')] {
            let out = bob.keystroke(step).unwrap();
            relay(&out.frame, &mut bob_names, &mut ann);
        }
        let out = ann.keystroke(typed('d')).unwrap();
        assert_eq!(out.batch, Some(4));
        relay(&out.frame, &mut ann_names, &mut bob);
        let out = ann.keystroke(Step { jump: None, key: Key::Backspace }).unwrap();
        assert_eq!(relay(&out.frame, &mut ann_names, &mut bob), vec![out.stamp]);
        assert_eq!(ann.text(), "XYabc");
        assert_eq!(bob.text(), "XYabc");
    }
}

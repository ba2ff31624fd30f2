//! The Yjs sync protocol as y-websocket speaks it, with yrs: one `Y.Text` per document, each
//! keystroke one local transaction whose update goes out as one sync `Update` message.
//!
//! Messages (lib0 encoding): a varuint message type, 0 = sync or 1 = awareness; a sync
//! message is `SyncStep1(state vector)`, `SyncStep2(update)` or `Update(update)`. On connect
//! the server sends its step 1; the client answers with its step 2 and sends its own step 1,
//! and is in sync once the server's step 2 arrives. Then it announces its user in the
//! document's awareness, as the browser provider does (doc-server's `Hello` carries the
//! same). y-websocket relays each update to every connection of the document, the sender's
//! included, and acknowledges nothing.
//!
//! A keystroke's stamp is the inserted character's `(client, clock)`, or for a backspace the
//! deleted character's with [`Stamp::DELETE`] set; a receiver reads both from the update
//! (its blocks and its delete set) before applying it.

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Assoc, ClientID, Doc, GetString, IndexedSequence, ReadTxn, StickyIndex, Text, TextRef, Transact, Update, ID,
};

use crate::client::{connect_ws, next_binary, Incoming, Outgoing, Protocol, Ws};
use crate::ledger::Stamp;
use crate::typist::{jump_position, Key, Step};

/// The shared type every client edits.
const FIELD: &str = "body";

/// One y-websocket client's state after its handshake.
pub struct Yjs {
    doc: Doc,
    text: TextRef,
    client: ClientID,
    /// The clock of this client's next inserted character (every character is one clock
    /// unit; deletes take none).
    next_clock: u32,
    /// Where the caret was put by the last jump.
    base: StickyIndex,
    /// The clocks of the characters typed since then (and not backspaced).
    run: Vec<u32>,
}

impl Yjs {
    /// A new client with an empty document, not connected.
    fn fresh(client: ClientID) -> Yjs {
        let doc = Doc::with_client_id(client.get());
        let text = doc.get_or_insert_text(FIELD);
        let base = StickyIndex::from_type(&doc.transact(), &text, Assoc::Before);
        Yjs { doc, text, client, next_clock: 0, base, run: Vec::new() }
    }

    /// Connects to `ws://{addr}/{doc}` and syncs (step 1 and 2 both ways).
    pub async fn connect(addr: &str, doc: &str) -> Result<(Ws, Yjs), String> {
        let mut ws = connect_ws(&format!("ws://{addr}/{doc}")).await?;
        let mut yjs = Yjs::fresh(ClientID::random());
        let step1 = Message::Sync(SyncMessage::SyncStep1(yjs.doc.transact().state_vector())).encode_v1();
        ws.send(WsMessage::Binary(step1.into())).await.map_err(|e| format!("send: {e}"))?;
        loop {
            let frame = next_binary(&mut ws).await?;
            let message = Message::decode_v1(&frame).map_err(|e| format!("bad message: {e}"))?;
            let synced = matches!(message, Message::Sync(SyncMessage::SyncStep2(_)));
            let mut incoming = Incoming::default();
            yjs.handle(message, &mut incoming)?;
            for reply in incoming.replies {
                ws.send(WsMessage::Binary(reply.into())).await.map_err(|e| format!("send: {e}"))?;
            }
            if synced {
                // As y-websocket's browser provider does: announce this client's user in the
                // document's awareness (the server keeps it and relays it to the others, as
                // doc-server does with a Hello's user).
                let mut clients = std::collections::HashMap::new();
                let json = r##"{"user":{"name":"typist","color":"#3366cc"}}"##;
                clients.insert(yjs.client, AwarenessUpdateEntry { clock: 1, json: json.into() });
                let awareness = Message::Awareness(AwarenessUpdate { clients }).encode_v1();
                ws.send(WsMessage::Binary(awareness.into())).await.map_err(|e| format!("send: {e}"))?;
                return Ok((ws, yjs));
            }
        }
    }

    /// The local document and its text, to edit outside the typist (loading a trace).
    pub fn parts(&mut self) -> (&Doc, &TextRef) {
        (&self.doc, &self.text)
    }

    fn handle(&mut self, message: Message, incoming: &mut Incoming) -> Result<(), String> {
        match message {
            Message::Sync(SyncMessage::Update(bytes) | SyncMessage::SyncStep2(bytes)) => {
                let update = Update::decode_v1(&bytes).map_err(|e| format!("bad update: {e}"))?;
                for (client, ranges) in update.insertions(true).iter() {
                    for clock in ranges.iter().flat_map(|range| range.clone()) {
                        incoming.seen.push(Stamp { author: client.get() as u128, number: clock as u64 });
                    }
                }
                for (client, ranges) in update.delete_set().iter() {
                    for clock in ranges.iter().flat_map(|range| range.clone()) {
                        incoming
                            .seen
                            .push(Stamp { author: client.get() as u128, number: clock as u64 | Stamp::DELETE });
                    }
                }
                self.doc.transact_mut().apply_update(update).map_err(|e| format!("apply: {e}"))?;
            }
            Message::Sync(SyncMessage::SyncStep1(state_vector)) => {
                let update = self.doc.transact().encode_state_as_update_v1(&state_vector);
                incoming.replies.push(Message::Sync(SyncMessage::SyncStep2(update)).encode_v1());
            }
            // Awareness, auth and custom messages carry no keystrokes.
            _ => {}
        }
        Ok(())
    }
}

impl Protocol for Yjs {
    fn keystroke(&mut self, step: Step) -> Result<Outgoing, String> {
        let mut txn = self.doc.transact_mut();
        if let Some(fraction) = step.jump {
            let pos = jump_position(fraction, self.text.len(&txn) as usize) as u32;
            self.base = self.text.sticky_index(&txn, pos, Assoc::Before).ok_or("no caret at the jump")?;
            self.run.clear();
        }
        let caret = match self.run.last() {
            Some(&clock) => StickyIndex::from_id(ID::new(self.client, clock), Assoc::Before),
            None => self.base.clone(),
        };
        let pos = caret.get_offset(&txn).ok_or("the caret's character is unknown")?.index;
        let stamp = match step.key {
            Key::Type(c) => {
                self.text.insert(&mut txn, pos, c.encode_utf8(&mut [0; 4]));
                let clock = self.next_clock;
                self.next_clock += 1;
                self.run.push(clock);
                Stamp { author: self.client.get() as u128, number: clock as u64 }
            }
            Key::Backspace => {
                // The typist backspaces only over its own run: the character before the caret
                // is the run's last.
                let at = pos.checked_sub(1).ok_or("a backspace at the start of the text")?;
                self.text.remove_range(&mut txn, at, 1);
                let clock = self.run.pop().ok_or("a backspace with an empty run")?;
                Stamp { author: self.client.get() as u128, number: clock as u64 | Stamp::DELETE }
            }
        };
        let update = txn.encode_update_v1();
        let frame = Message::Sync(SyncMessage::Update(update)).encode_v1();
        Ok(Outgoing { stamp, frame, batch: None })
    }

    fn receive(&mut self, frame: &[u8], incoming: &mut Incoming) -> Result<(), String> {
        let message = Message::decode_v1(frame).map_err(|e| format!("bad message: {e}"))?;
        self.handle(message, incoming)
    }

    fn text(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(c: char) -> Step {
        Step { jump: None, key: Key::Type(c) }
    }

    /// Delivers `frame` to `to` as y-websocket relays it; returns the stamps seen.
    fn relay(frame: &[u8], to: &mut Yjs) -> Vec<Stamp> {
        let mut incoming = Incoming::default();
        to.receive(frame, &mut incoming).expect("applies");
        incoming.seen
    }

    #[test]
    fn a_typist_continues_behind_its_caret_while_others_type_before_it() {
        let (mut ann, mut bob) = (Yjs::fresh(ClientID::new(1)), Yjs::fresh(ClientID::new(2)));
        for step in [Step { jump: Some(0.0), key: Key::Type('a') }, typed('b'), typed('c')] {
            let out = ann.keystroke(step).unwrap();
            assert_eq!(out.batch, None);
            assert_eq!(relay(&out.frame, &mut bob), vec![out.stamp]);
        }
        for step in [Step { jump: Some(0.0), key: Key::Type('X') }, typed('Y')] {
            let out = bob.keystroke(step).unwrap();
            relay(&out.frame, &mut ann);
        }
        let out = ann.keystroke(typed('d')).unwrap();
        assert_eq!(out.stamp, Stamp { author: 1, number: 3 });
        relay(&out.frame, &mut bob);
        let out = ann.keystroke(Step { jump: None, key: Key::Backspace }).unwrap();
        assert_eq!(out.stamp, Stamp { author: 1, number: 3 | Stamp::DELETE });
        assert_eq!(relay(&out.frame, &mut bob), vec![out.stamp]);
        assert_eq!(ann.text(), "XYabc");
        assert_eq!(bob.text(), "XYabc");
    }
}

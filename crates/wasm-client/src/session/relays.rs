//! Relays and give-backs (PROTOCOL.md section 5b).
//!
//! The server relays others' changes before they are durable, each list with a tag. Should it
//! lose them (a crash before its commit), this session may be the only one left holding them:
//! their authors may never come back. So the session keeps each relay's changes and tag
//! (`kept`) until a later relay's `durable` mark covers it; at the next `Welcome`, the kept
//! relays whose changes the server's version lacks become `owed`, and go back to the server as
//! `GiveBack` batches, each in its place among this session's own pending changes: after the
//! pending change that was last when the relay arrived (those may come before it causally;
//! later ones cannot), before the rest. A give-back refused as not ready is offered again after
//! the next applied batch; one refused for good (its tag no longer checks out) is let go.
//!
//! Normally `kept` holds the relays of one commit window (a few), and `owed` is empty.

use super::*;

/// At most this many relays are kept: beyond it the oldest go (relays are durable a commit
/// later, so only a server whose disk stalled for that long could still lose them).
pub(super) const MAX_KEPT_RELAYS: usize = 4096;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Relays {
    /// The current connection's relays not known durable: their number and what to give back.
    /// (`Vec`s, not `VecDeque`s: they are short, and each `VecDeque` of another type costs the
    /// page's wasm kilobytes.)
    kept: Vec<(u64, Owed)>,
    /// What the server lacked at the last `Welcome`, in arrival order.
    owed: Vec<Owed>,
}

/// One relay to give back.
#[derive(Debug, Clone)]
pub(super) struct Owed {
    changes: Vec<Change>,
    tag: RelayTag,
    /// The last pending change when the relay arrived: sent before it.
    after: Option<ChangeId>,
    state: GiveBack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GiveBack {
    /// Not sent on this connection.
    Due,
    /// Sent as this batch.
    Sent(u64),
    /// Refused as not ready: due again after the next applied batch.
    Later,
}

impl Relays {
    /// How many relays are kept or owed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.kept.len() + self.owed.len()
    }

    /// A relay arrived: everything up to `durable` is safe, and this one is kept if it is not.
    fn keep(&mut self, changes: &[Change], tag: RelayTag, number: u64, durable: u64, after: Option<ChangeId>) {
        self.kept.retain(|(kept, _)| *kept > durable);
        if number > durable {
            if self.kept.len() == MAX_KEPT_RELAYS {
                self.kept.remove(0);
            }
            self.kept.push((number, Owed { changes: changes.to_vec(), tag, after, state: GiveBack::Due }));
        }
    }

    /// A `Welcome` at `version`: what it lacks is owed, the rest is let go.
    fn welcome(&mut self, version: &VersionVector) {
        self.owed.extend(std::mem::take(&mut self.kept).into_iter().map(|(_, owed)| owed));
        self.owed.retain(|owed| owed.changes.iter().any(|change| change.seq > version.get(change.replica)));
        for owed in &mut self.owed {
            owed.state = GiveBack::Due;
        }
    }
}

impl Session {
    /// Applies a relay and keeps it until it is durable (see the module docs).
    pub(super) fn relay(&mut self, changes: Vec<Change>, tag: RelayTag, number: u64, durable: u64) -> Event {
        let after = self.pending.back().map(Change::id);
        self.relays.keep(&changes, tag, number, durable, after);
        // The server has applied each change, after its causal past: it has every change of
        // that replica up to this one. Another tab's change that we were holding for it can
        // leave the queue (should the server lose it, the tag brings it back).
        for change in &changes {
            self.server_version.raise(change.replica, change.seq);
        }
        let mut event = self.apply_changes(changes, EventKind::Changes);
        event.acked = self.prune();
        event
    }

    /// A `Welcome` arrived: the kept relays it lacks are owed.
    pub(super) fn relays_welcome(&mut self, version: &VersionVector) {
        self.relays.welcome(version);
    }

    /// The next give-back to send before the pending changes from `sent` on, if one is due
    /// there; else how many pending changes (from `sent`) may go before the first due one.
    pub(super) fn next_give_back(&mut self, sent: usize) -> Result<Vec<u8>, Option<usize>> {
        let Some(index) = self.relays.owed.iter().position(|owed| owed.state == GiveBack::Due) else {
            return Err(None);
        };
        let after = self.relays.owed[index].after;
        // Where `after` is among the pending changes (absent: acknowledged, or never sent).
        let position = after.and_then(|id| self.pending.iter().position(|change| change.id() == id));
        if let Some(position) = position.filter(|position| *position >= sent) {
            return Err(Some(position + 1 - sent));
        }
        let Link::Up { next_seq, .. } = &mut self.link else { return Err(None) };
        let seq = *next_seq;
        *next_seq += 1;
        let owed = &mut self.relays.owed[index];
        owed.state = GiveBack::Sent(seq);
        Ok(ClientMsg::GiveBack { seq, changes: owed.changes.clone(), tag: owed.tag }.encode_on(&mut self.names))
    }

    /// An ack of batch `seq`: whether it was a give-back's (settled here), with what to tell.
    pub(super) fn give_back_acked(&mut self, seq: u64, status: &AckStatus) -> Option<Option<String>> {
        let owed = &mut self.relays.owed;
        if matches!(status, AckStatus::Applied) {
            // An applied ack covers every earlier batch: those give-backs are done, and those
            // that waited for an applied batch are due again.
            owed.retain(|owed| !matches!(owed.state, GiveBack::Sent(sent) if sent <= seq));
            for owed in owed.iter_mut() {
                if owed.state == GiveBack::Later {
                    owed.state = GiveBack::Due;
                }
            }
            return None;
        }
        let index = owed.iter().position(|owed| owed.state == GiveBack::Sent(seq))?;
        let AckStatus::Rejected { code, reason } = status else { return None };
        if *code == reject::NOT_READY {
            owed[index].state = GiveBack::Later;
            return Some(None);
        }
        owed.remove(index);
        Some(Some(format!(
            "the server did not take back changes it had relayed to this page ({reason}); \
             their authors still hold them"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{connect, fake_tag, flush, FakeServer};
    use super::*;

    /// The server relays a change, loses it (restarts from what it had before), and the peer
    /// that got the relay gives it back, in its place among the peer's own pending changes.
    #[test]
    fn a_relay_the_server_lost_comes_back_from_a_peer_in_causal_order() {
        let mut server = FakeServer::new();
        let (mut ann, mut bob) = (Session::new(ReplicaId::from_u128(1)), Session::new(ReplicaId::from_u128(2)));
        connect(&mut ann, &mut server);
        connect(&mut bob, &mut server);
        ann.edit(0, 0, "a").unwrap();
        for relay in flush(&mut ann, &mut server) {
            bob.receive(&relay).unwrap();
        }
        let before_crash = server.doc.clone();
        // Bob types (not sent yet), then ann's next change arrives, then bob types after it.
        bob.edit(1, 1, "x").unwrap();
        ann.edit(1, 1, "b").unwrap();
        for relay in flush(&mut ann, &mut server) {
            bob.receive(&relay).unwrap();
        }
        bob.edit(3, 3, "y").unwrap();
        assert_eq!(bob.relays.len(), 2, "no relay said it was durable");

        // The server dies before "b" is durable; ann never comes back. Bob reconnects.
        let mut restarted = FakeServer::new();
        restarted.doc = before_crash;
        bob.disconnected();
        connect(&mut bob, &mut restarted);
        assert_eq!(bob.relays.len(), 1, "the relay of \"a\" is in the welcome's version: let go");
        flush(&mut bob, &mut restarted);
        assert_eq!(restarted.given_back, 1);
        assert_eq!(restarted.doc.text("body").unwrap(), bob.body(), "x before b before y, each ready");
        assert_eq!(bob.relays.len(), 0, "an applied give-back is settled");
        assert_eq!(bob.pending_len(), 0);
    }

    #[test]
    fn a_relay_marked_durable_is_let_go_and_a_refused_give_back_is_dropped() {
        let mut bob = Session::new(ReplicaId::from_u128(2));
        let mut server = FakeServer::new();
        connect(&mut bob, &mut server);
        let mut ann = Document::new(ReplicaId::from_u128(1));
        let relay = |changes: Vec<Change>, number, durable| {
            ServerMsg::Relay { tag: fake_tag(&changes), changes, number, durable }.encode()
        };
        let first = ann.insert_text("body", 0, "a").unwrap();
        let second = ann.insert_text("body", 1, "b").unwrap();
        bob.receive(&relay(vec![first], 1, 0)).unwrap();
        bob.receive(&relay(vec![second.clone()], 2, 1)).unwrap();
        assert_eq!(bob.relays.len(), 1, "relay 1 is durable");
        // A restarted server lacking "b" (with another secret: the tag does not check out)
        // refuses the give-back for good: it is let go, and nothing of bob's stalls.
        bob.disconnected();
        bob.hello(super::super::tests::user("bob"), "");
        let welcome = ServerMsg::Welcome {
            connection: 9,
            catchup: Catchup::Changes(Vec::new()),
            version: [(ann.replica(), 1)].into_iter().collect(),
            hash: 0,
            peers: Vec::new(),
        };
        bob.receive(&welcome.encode()).unwrap();
        let frame = bob.next_frame().expect("the give-back");
        let Ok(ClientMsg::GiveBack { seq: 1, changes, .. }) = ClientMsg::decode(&frame) else { panic!("a give-back") };
        assert_eq!(changes, vec![second]);
        let refusal = ServerMsg::Ack {
            seq: 1,
            status: AckStatus::Rejected { code: reject::INVALID, reason: "bad tag".into() },
            version: VersionVector::new(),
            hash: 0,
        };
        let event = bob.receive(&refusal.encode()).unwrap();
        assert!(event.message.is_some_and(|m| m.contains("bad tag")));
        assert_eq!(bob.relays.len(), 0);
        bob.edit(0, 0, "z").unwrap();
        let mut names = WireNames::new();
        names.name_replica(bob.doc().replica()).unwrap();
        let next = ClientMsg::decode_on(&bob.next_frame().expect("a frame"), 1 << 20, &mut names).unwrap();
        assert!(matches!(next, ClientMsg::Changes { seq: 2, .. }), "{next:?}");
    }
}

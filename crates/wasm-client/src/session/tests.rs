//! Session tests against a tiny in-test server (a `Document` that answers like doc-server).

use super::*;

/// Answers `ClientMsg`s the way PROTOCOL.md describes, for one document.
pub(super) struct FakeServer {
    pub(super) doc: Document,
    next_connection: u64,
    /// Each client's connection's names (one connection per replica at a time).
    names: HashMap<ReplicaId, WireNames>,
    /// Relays sent (each `Relay` says nothing is durable: `durable` 0).
    relays: u64,
    /// Changes that came back in `GiveBack`s.
    pub(super) given_back: usize,
}

/// This fake server's relay tag: a checksum of the list (doc-server's is an HMAC).
pub(super) fn fake_tag(changes: &[Change]) -> RelayTag {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    crdt_core::protocol::change_list_bytes(changes).hash(&mut hasher);
    let half = hasher.finish().to_le_bytes();
    let mut tag = [0; 16];
    tag[..8].copy_from_slice(&half);
    tag[8..].copy_from_slice(&half);
    tag
}

impl FakeServer {
    pub(super) fn new() -> FakeServer {
        FakeServer {
            doc: Document::new(ReplicaId::from_u128(u128::MAX)),
            next_connection: 1,
            names: HashMap::new(),
            relays: 0,
            given_back: 0,
        }
    }

    /// The server's answer to `frame` from the session of replica `from`, plus the `Changes`
    /// frame it would broadcast to others.
    pub(super) fn handle(&mut self, from: ReplicaId, frame: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        let names = self.names.entry(from).or_default();
        if matches!(ClientMsg::decode(frame), Ok(ClientMsg::Hello { .. })) {
            // A Hello starts a connection.
            *names = WireNames::new();
        }
        match ClientMsg::decode_on(frame, 1 << 24, names).expect("client frame decodes") {
            ClientMsg::Hello { version, .. } => {
                let connection = self.next_connection;
                self.next_connection += 1;
                let catchup = Catchup::Changes(self.doc.ops_since(&version).expect("history"));
                let welcome = ServerMsg::Welcome {
                    connection,
                    catchup,
                    version: self.doc.version().clone(),
                    hash: self.doc.state_hash(),
                    peers: Vec::new(),
                };
                (welcome.encode(), None)
            }
            ClientMsg::Changes { seq, changes } => {
                for change in &changes {
                    // Like doc-server: every change of a batch must be a duplicate or ready.
                    let seen = self.doc.version().get(change.replica);
                    assert!(change.seq <= seen || change.is_ready(self.doc.version()), "batch is not in causal order");
                    self.doc.apply_change(change.clone()).expect("valid change");
                }
                let ack = ServerMsg::Ack {
                    seq,
                    status: AckStatus::Applied,
                    version: self.doc.version().clone(),
                    hash: self.doc.state_hash(),
                };
                self.relays += 1;
                let relay = ServerMsg::Relay { tag: fake_tag(&changes), changes, number: self.relays, durable: 0 };
                (ack.encode(), Some(relay.encode()))
            }
            ClientMsg::GiveBack { seq, changes, tag } => {
                assert_eq!(tag, fake_tag(&changes), "a give-back carries its relay's tag");
                for change in &changes {
                    let seen = self.doc.version().get(change.replica);
                    assert!(
                        change.seq <= seen || change.is_ready(self.doc.version()),
                        "give-back is not in causal order"
                    );
                    self.doc.apply_change(change.clone()).expect("valid change");
                }
                self.given_back += changes.len();
                let ack = ServerMsg::Ack {
                    seq,
                    status: AckStatus::Applied,
                    version: self.doc.version().clone(),
                    hash: self.doc.state_hash(),
                };
                (ack.encode(), None)
            }
            ClientMsg::Presence { .. } => panic!("not used here"),
        }
    }
}

pub(super) fn user(name: &str) -> UserInfo {
    UserInfo { name: name.to_owned(), color: "#123456".to_owned() }
}

pub(super) fn connect(session: &mut Session, server: &mut FakeServer) -> Event {
    let hello = session.hello(user("a"), "");
    let (welcome, _) = server.handle(session.doc().replica(), &hello);
    session.receive(&welcome).expect("welcome decodes")
}

/// Sends every pending batch and feeds the acks back; returns the broadcasts.
pub(super) fn flush(session: &mut Session, server: &mut FakeServer) -> Vec<Vec<u8>> {
    let mut broadcasts = Vec::new();
    while let Some(frame) = session.next_frame() {
        let (ack, broadcast) = server.handle(session.doc().replica(), &frame);
        let event = session.receive(&ack).expect("ack decodes");
        assert!(!event.diverged, "ack reported divergence");
        broadcasts.extend(broadcast);
    }
    broadcasts
}

/// Applies deltas to a UTF-16 buffer, as CodeMirror would.
fn apply_deltas(editor: &mut Vec<u16>, deltas: &[Delta]) {
    for delta in deltas {
        match delta {
            Delta::Insert { pos, text } => {
                let units: Vec<u16> = text.encode_utf16().collect();
                editor.splice(*pos..*pos, units);
            }
            Delta::Delete { pos, len } => {
                editor.drain(*pos..*pos + *len);
            }
        }
    }
}

fn utf16(text: &str) -> Vec<u16> {
    text.encode_utf16().collect()
}

#[test]
fn local_edits_wait_for_the_link_and_leave_on_ack() {
    let mut server = FakeServer::new();
    let mut session = Session::new(ReplicaId::from_u128(1));
    session.replace(0, 0, "hi 👋").unwrap();
    session.set_title("Notes");
    assert_eq!(session.pending_len(), 2);
    assert!(session.next_frame().is_none(), "nothing is sent while the link is down");

    connect(&mut session, &mut server);
    assert_eq!(session.link_state(), "up");
    flush(&mut session, &mut server);
    assert_eq!(session.pending_len(), 0);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("hi 👋"));
    assert_eq!(server.doc.register(TITLE), Some("Notes"));
}

#[test]
fn unacknowledged_changes_are_resent_after_a_reconnect() {
    let mut server = FakeServer::new();
    let mut session = Session::new(ReplicaId::from_u128(1));
    connect(&mut session, &mut server);
    session.replace(0, 0, "lost").unwrap();
    let lost_frame = session.next_frame().expect("a batch");
    drop(lost_frame);
    session.disconnected();
    assert_eq!(session.pending_len(), 1);

    connect(&mut session, &mut server);
    let frame = session.next_frame().expect("the batch again");
    let mut names = WireNames::new();
    names.name_replica(session.doc().replica()).unwrap();
    match ClientMsg::decode_on(&frame, 1 << 20, &mut names).unwrap() {
        ClientMsg::Changes { seq, changes } => {
            assert_eq!(seq, 1, "batch numbers restart on a new connection");
            assert_eq!(changes.len(), 1);
        }
        other => panic!("expected changes, got {other:?}"),
    }
    let (ack, _) = server.handle(session.doc().replica(), &frame);
    session.receive(&ack).unwrap();
    assert_eq!(session.pending_len(), 0);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("lost"));
}

#[test]
fn remote_deltas_keep_a_utf16_editor_equal_to_the_document() {
    let mut server = FakeServer::new();
    let mut alice = Session::new(ReplicaId::from_u128(1));
    let mut bob = Session::new(ReplicaId::from_u128(2));
    connect(&mut alice, &mut server);
    connect(&mut bob, &mut server);
    let mut bob_editor = Vec::new();

    // Emoji (two UTF-16 units each) and CJK (one unit, three UTF-8 bytes) mixed.
    alice.replace(0, 0, "😀 漢字 👍🏽!").unwrap();
    // Typing over a selection is one change (a delete and an insert).
    assert_eq!(alice.replace(2, 3, "—").unwrap().len(), 1); // the space after the emoji
    alice.replace(4, 5, "").unwrap(); // 字
    for broadcast in flush(&mut alice, &mut server) {
        let event = bob.receive(&broadcast).unwrap();
        apply_deltas(&mut bob_editor, &event.deltas);
    }
    assert_eq!(alice.body(), "😀—漢 👍🏽!");
    assert_eq!(bob.body(), alice.body());
    assert_eq!(bob_editor, utf16(&bob.body()));
}

#[test]
fn concurrent_edits_from_two_sessions_converge() {
    let mut server = FakeServer::new();
    let mut alice = Session::new(ReplicaId::from_u128(1));
    let mut bob = Session::new(ReplicaId::from_u128(2));
    connect(&mut alice, &mut server);
    connect(&mut bob, &mut server);
    alice.replace(0, 0, "shared ").unwrap();
    for broadcast in flush(&mut alice, &mut server) {
        bob.receive(&broadcast).unwrap();
    }
    let mut bob_editor = utf16(&bob.body());

    // Both type before either hears of the other.
    alice.replace(7, 7, "alice").unwrap();
    bob.replace(0, 0, "🙂bob ").unwrap();
    bob_editor = {
        let mut text = String::from_utf16(&bob_editor).unwrap();
        text.insert_str(0, "🙂bob ");
        utf16(&text)
    };
    let from_alice = flush(&mut alice, &mut server);
    let from_bob = flush(&mut bob, &mut server);
    for frame in from_alice {
        let event = bob.receive(&frame).unwrap();
        apply_deltas(&mut bob_editor, &event.deltas);
    }
    for frame in from_bob {
        alice.receive(&frame).unwrap();
    }
    assert_eq!(alice.body(), bob.body());
    assert_eq!(alice.body(), "🙂bob shared alice");
    assert_eq!(bob_editor, utf16(&bob.body()));
    assert_eq!(alice.doc().state_hash(), server.doc.state_hash());
}

#[test]
fn export_and_load_keep_text_pending_changes_and_server_knowledge() {
    let mut server = FakeServer::new();
    let mut first = Session::new(ReplicaId::from_u128(1));
    connect(&mut first, &mut server);
    first.replace(0, 0, "saved ").unwrap();
    flush(&mut first, &mut server);
    first.disconnected();
    first.replace(6, 6, "offline 漢").unwrap();
    first.add_tag("draft");

    let bytes = first.export();
    let mut reloaded = Session::load(&bytes, ReplicaId::from_u128(3)).unwrap();
    assert_eq!(reloaded.body(), "saved offline 漢");
    assert_eq!(reloaded.pending_len(), 2, "only the unacknowledged changes");
    assert_eq!(reloaded.doc().replica(), ReplicaId::from_u128(3));
    reloaded.replace(0, 0, "+").unwrap();

    connect(&mut reloaded, &mut server);
    flush(&mut reloaded, &mut server);
    assert_eq!(reloaded.pending_len(), 0);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("+saved offline 漢"));
    assert_eq!(server.doc.set(TAGS), vec!["draft".to_owned()]);
}

#[test]
fn load_refuses_other_bytes() {
    assert!(Session::load(b"", ReplicaId::from_u128(1)).is_err());
    let changes = codec::encode_changes(&[]);
    assert!(Session::load(&changes, ReplicaId::from_u128(1)).is_err());
}

#[test]
fn changes_from_another_tab_are_applied_and_kept_until_the_server_has_them() {
    let mut server = FakeServer::new();
    let mut tab_a = Session::new(ReplicaId::from_u128(1));
    let mut tab_b = Session::new(ReplicaId::from_u128(2));
    let made = tab_a.replace(0, 0, "from tab a").unwrap();
    let event = tab_b.receive_from_tab(&codec::encode_changes(&made)).unwrap();
    assert_eq!(event.deltas, vec![Delta::Insert { pos: 0, text: "from tab a".to_owned() }]);
    assert_eq!(tab_b.pending_len(), 1);

    // Once the server relays a change, no tab needs to hold it any more.
    let mut tab_c = Session::new(ReplicaId::from_u128(4));
    tab_c.receive_from_tab(&codec::encode_changes(&made)).unwrap();
    connect(&mut tab_c, &mut server);
    let mut relay = Session::new(ReplicaId::from_u128(5));
    connect(&mut relay, &mut server);
    relay.receive_from_tab(&codec::encode_changes(&made)).unwrap();
    let broadcast = flush(&mut relay, &mut server);
    assert_eq!(tab_c.receive(&broadcast[0]).unwrap().acked, 1);
    assert_eq!(tab_c.pending_len(), 0);

    // Tab b reconnects and its copy of tab a's change leaves its queue too.
    connect(&mut tab_b, &mut server);
    flush(&mut tab_b, &mut server);
    assert_eq!(tab_b.pending_len(), 0);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("from tab a"));
    // Tab a's own copy leaves its queue once the server's version covers it.
    let event = connect(&mut tab_a, &mut server);
    assert_eq!(event.acked, 1);
    assert_eq!(tab_a.pending_len(), 0);
}

#[test]
fn merging_saved_state_unions_text_and_pending_changes() {
    let mut tab_a = Session::new(ReplicaId::from_u128(1));
    let mut tab_b = Session::new(ReplicaId::from_u128(2));
    tab_a.replace(0, 0, "a").unwrap();
    tab_b.replace(0, 0, "b").unwrap();
    let event = tab_a.merge_saved(&tab_b.export()).unwrap();
    assert!(event.reset);
    assert_eq!(tab_a.pending_len(), 2);
    let mut other = Session::new(ReplicaId::from_u128(3));
    other.merge_saved(&tab_a.export()).unwrap();
    tab_b.merge_saved(&tab_a.export()).unwrap();
    assert_eq!(tab_b.body(), tab_a.body());
    assert_eq!(other.body(), tab_a.body());
}

#[test]
fn a_remote_cursor_stays_on_its_character() {
    let mut session = Session::new(ReplicaId::from_u128(1));
    session.replace(0, 0, "ab😀cd").unwrap();
    let mut peer_doc = Session::load(&session.export(), ReplicaId::from_u128(2)).unwrap();
    // The peer puts its caret after the emoji (UTF-16 position 4).
    let presence = match ClientMsg::decode(&peer_doc.presence(4, 4)).unwrap() {
        ClientMsg::Presence { selection } => selection,
        other => panic!("expected presence, got {other:?}"),
    };
    let peer = Peer { connection: 7, replica: peer_doc.doc().replica(), user: user("Bob"), selection: presence };
    let event = session.receive(&ServerMsg::Presence(peer).encode()).unwrap();
    assert!(event.peers_changed);
    assert_eq!(session.peers()[0].head, Some(4));
    assert_eq!(session.peers()[0].name, "Bob");

    // Text typed before the cursor pushes it right; deleting before it pulls it left.
    session.replace(0, 0, "漢字").unwrap();
    assert_eq!(session.peers()[0].head, Some(6));
    session.replace(0, 3, "").unwrap();
    assert_eq!(session.peers()[0].anchor, Some(3));
    peer_doc.disconnected();

    let gone = ServerMsg::PresenceGone { connection: 7 }.encode();
    assert!(session.receive(&gone).unwrap().peers_changed);
    assert!(session.peers().is_empty());
}

#[test]
fn an_ack_with_another_hash_at_the_same_version_is_divergence() {
    let mut server = FakeServer::new();
    let mut session = Session::new(ReplicaId::from_u128(1));
    connect(&mut session, &mut server);
    session.replace(0, 0, "x").unwrap();
    let frame = session.next_frame().unwrap();
    let (ack, _) = server.handle(session.doc().replica(), &frame);
    let ServerMsg::Ack { seq, status, version, hash } = ServerMsg::decode(&ack).unwrap() else {
        panic!("expected an ack");
    };
    let wrong = ServerMsg::Ack { seq, status, version, hash: hash ^ 1 };
    assert!(session.receive(&wrong.encode()).unwrap().diverged);
}

#[test]
fn a_rejected_batch_is_kept_and_offered_again_on_the_next_connection() {
    let mut server = FakeServer::new();
    let mut session = Session::new(ReplicaId::from_u128(1));
    connect(&mut session, &mut server);
    session.replace(0, 0, "x").unwrap();
    session.next_frame().unwrap();
    session.replace(1, 1, "y").unwrap();
    let rejected = ServerMsg::Ack {
        seq: 1,
        status: AckStatus::Rejected { code: reject::NOT_READY, reason: "test".to_owned() },
        version: server.doc.version().clone(),
        hash: server.doc.state_hash(),
    };
    let event = session.receive(&rejected.encode()).unwrap();
    assert_eq!(event.acked, 0);
    assert!(event.message.unwrap().contains("test"));
    assert_eq!(session.pending_len(), 2, "nothing is dropped");
    assert!(session.next_frame().is_none(), "a stalled connection sends nothing more");

    session.disconnected();
    connect(&mut session, &mut server);
    flush(&mut session, &mut server);
    assert_eq!(session.pending_len(), 0);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("xy"));
}

#[test]
fn a_change_from_a_tab_waits_until_it_is_applied_before_it_is_sent() {
    let mut server = FakeServer::new();
    let mut tab_a = Session::new(ReplicaId::from_u128(1));
    let mut tab_b = Session::new(ReplicaId::from_u128(2));
    let first = codec::encode_changes(&tab_a.replace(0, 0, "one ").unwrap());
    let second = codec::encode_changes(&tab_a.replace(4, 4, "two").unwrap());
    tab_b.receive_from_tab(&second).unwrap();
    assert_eq!(tab_b.pending_len(), 0, "buffered here, so not offered to the server yet");
    connect(&mut tab_b, &mut server);
    assert!(tab_b.next_frame().is_none());
    let event = tab_b.receive_from_tab(&first).unwrap();
    assert_eq!(event.deltas.len(), 2);
    assert_eq!(tab_b.pending_len(), 2);
    flush(&mut tab_b, &mut server);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("one two"));
}

#[test]
fn long_offline_sessions_go_out_in_several_batches() {
    let mut server = FakeServer::new();
    let mut session = Session::new(ReplicaId::from_u128(1));
    for i in 0..(MAX_BATCH * 2 + 5) {
        session.replace(i, i, "x").unwrap();
    }
    connect(&mut session, &mut server);
    let frames = std::iter::from_fn(|| session.next_frame()).count();
    assert_eq!(frames, 3);
}

#[test]
fn changes_from_tabs_are_sent_in_causal_order_whatever_order_they_came_in() {
    let mut server = FakeServer::new();
    let mut tab_a = Session::new(ReplicaId::from_u128(1));
    let mut tab_b = Session::new(ReplicaId::from_u128(2));
    let mut tab_c = Session::new(ReplicaId::from_u128(3));
    let first = codec::encode_changes(&tab_a.replace(0, 0, "first ").unwrap());
    tab_b.receive_from_tab(&first).unwrap();
    let second = codec::encode_changes(&tab_b.replace(6, 6, "second").unwrap());
    // Tab c hears of the second change before the first: it is buffered, then applied.
    tab_c.receive_from_tab(&second).unwrap();
    tab_c.receive_from_tab(&first).unwrap();
    assert_eq!(tab_c.body(), "first second");

    connect(&mut tab_c, &mut server);
    flush(&mut tab_c, &mut server);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("first second"));
    assert_eq!(tab_c.pending_len(), 0);
}

#[test]
fn a_resync_rebuilds_the_document_from_the_server_and_keeps_unsent_edits() {
    let mut server = FakeServer::new();
    let mut session = Session::new(ReplicaId::from_u128(1));
    connect(&mut session, &mut server);
    session.replace(0, 0, "acked ").unwrap();
    flush(&mut session, &mut server);
    let mut other = Session::new(ReplicaId::from_u128(2));
    connect(&mut other, &mut server);
    other.replace(0, 0, "[other] ").unwrap();
    flush(&mut other, &mut server);
    session.disconnected();
    session.replace(6, 6, "unsent").unwrap();

    session.start_resync();
    let hello = session.hello(user("a"), "");
    match ClientMsg::decode(&hello).unwrap() {
        ClientMsg::Hello { version, .. } => assert!(version.is_empty(), "a resync asks for everything"),
        other => panic!("expected hello, got {other:?}"),
    }
    let (welcome, _) = server.handle(session.doc().replica(), &hello);
    let event = session.receive(&welcome).unwrap();
    assert!(event.reset && event.deltas.is_empty());
    assert_eq!(session.body(), "[other] acked unsent");
    assert_eq!(session.pending_len(), 1);
    flush(&mut session, &mut server);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("[other] acked unsent"));
}

/// The `Hello` a session sends, decoded.
fn hello_of(session: &mut Session) -> (ReplicaId, AuthorSecret) {
    match ClientMsg::decode(&session.hello(user("a"), "")).unwrap() {
        ClientMsg::Hello { replica, author, .. } => (replica, author),
        other => panic!("expected hello, got {other:?}"),
    }
}

#[test]
fn a_refused_replica_is_reminted_and_its_pending_changes_still_go_out() {
    let mut server = FakeServer::new();
    let first = ReplicaId::from_u128(1);
    let mut session = Session::new(first);
    connect(&mut session, &mut server);
    session.replace(0, 0, "a").unwrap();
    flush(&mut session, &mut server);
    session.disconnected();
    session.replace(1, 1, "b").unwrap(); // offline, as the first replica

    // The server refuses the replica (its previous socket still looks alive there).
    let (replica, author) = hello_of(&mut session);
    assert_eq!(replica, first);
    assert!(!session.disconnected_with(Some(1006)), "other closes keep the replica");
    assert!(session.disconnected_with(Some(CLOSE_REPLICA_REFUSED)));
    let (replica, same_author) = hello_of(&mut session);
    assert_ne!(replica, first, "a new replica id");
    assert_eq!(session.doc().replica(), replica);
    assert_eq!(same_author, author, "the secret that owns the first replica too");

    connect(&mut session, &mut server);
    flush(&mut session, &mut server);
    assert_eq!(session.pending_len(), 0, "the first replica's offline change was delivered");
    assert_eq!(server.doc.version().get(first), 2);
    session.replace(2, 2, "c").unwrap();
    flush(&mut session, &mut server);
    assert_eq!(server.doc.version().get(replica), 1, "new edits go out as the new replica");
    assert_eq!(server.doc.text(BODY).as_deref(), Some("abc"));
}

#[test]
fn write_ahead_holds_across_a_new_replica() {
    let mut server = FakeServer::new();
    let first = ReplicaId::from_u128(1);
    let mut session = Session::with_storage(first);
    session.restored();
    session.replace(0, 0, "x").unwrap();
    let _record = session.take_unsaved().unwrap();
    assert_eq!(session.taken_through(), 1);
    session.disconnected_with(Some(CLOSE_REPLICA_REFUSED));
    let second = session.doc().replica();
    session.replace(1, 1, "y").unwrap();
    let _record = session.take_unsaved().unwrap();
    assert_eq!(session.taken_through(), 2, "ordinals keep growing across replicas");

    connect(&mut session, &mut server);
    assert!(session.next_frame().is_none(), "nothing is stored yet");
    session.mark_saved(1);
    let frame = session.next_frame().expect("the first replica's stored change");
    let (ack, _) = server.handle(second, &frame);
    session.receive(&ack).unwrap();
    assert_eq!(server.doc.version().get(first), 1);
    assert_eq!(server.doc.version().get(second), 0, "the second replica's change is not stored yet");
    assert!(session.next_frame().is_none());
    session.mark_saved(2);
    flush(&mut session, &mut server);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("xy"));
}

#[test]
fn a_batch_refused_for_good_is_discarded_and_never_stalls_the_session() {
    let mut server = FakeServer::new();
    let first = ReplicaId::from_u128(1);
    let mut session = Session::new(first);
    connect(&mut session, &mut server);
    // A change of another replica, which the server will accept.
    let mut other = Session::new(ReplicaId::from_u128(2));
    let theirs = codec::encode_changes(&other.replace(0, 0, "theirs ").unwrap());
    session.receive_from_tab(&theirs).unwrap();
    let ours_at = session.body().len();
    session.replace(ours_at, ours_at, "refused").unwrap();
    // Batch 1 holds both; the server says the first replica is not this author's.
    let frame = session.next_frame().unwrap();
    let mut names = WireNames::new();
    names.name_replica(first).unwrap(); // as the Hello did
    let ClientMsg::Changes { changes, .. } = ClientMsg::decode_on(&frame, 1 << 24, &mut names).unwrap() else {
        panic!("a batch")
    };
    assert_eq!(changes.len(), 2);
    // Typed after the batch went out: depends on the refused change.
    session.replace(0, 0, "later ").unwrap();
    let refusal = ServerMsg::Ack {
        seq: 1,
        status: AckStatus::Rejected { code: reject::NOT_OWNER, reason: "not yours".to_owned() },
        version: VersionVector::new(),
        hash: server.doc.state_hash(),
    };
    let event = session.receive(&refusal.encode()).unwrap();
    assert!(event.reconnect, "the page reconnects at once");
    assert!(event.message.unwrap().contains("not yours"));
    assert_eq!(session.pending_len(), 0, "the whole refused batch and what depends on it went");
    assert_ne!(session.doc().replica(), first, "the first replica's next seq can never be accepted");
    assert!(session.next_frame().is_none());

    // The next connection rebuilds from the server's copy and carries on.
    session.disconnected();
    let (replica, _) = hello_of(&mut session);
    session.disconnected();
    let event = connect(&mut session, &mut server);
    assert!(event.reset);
    assert_eq!(session.body(), "");
    session.replace(0, 0, "fresh").unwrap();
    flush(&mut session, &mut server);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("fresh"));
    assert_eq!(server.doc.version().get(replica), 1);
    assert_eq!(session.pending_len(), 0);
}

/// A small deterministic generator (no dependency) for the property test below.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Whatever is refused, what stays pending never depends on it: after the resync, the server
/// takes every change left, in order, and ends with the session's text.
#[test]
fn discarding_refused_changes_leaves_a_deliverable_causal_closure() {
    for seed in 0..150u64 {
        let mut rng = Lcg(seed);
        let me = ReplicaId::from_u128(9);
        let mut session = Session::new(me);
        let mut tabs: Vec<Session> = (1..=3).map(|r| Session::new(ReplicaId::from_u128(r))).collect();
        for _ in 0..30 {
            let who = rng.below(4);
            if who == 3 {
                let at = rng.below(session.body().len() + 1);
                session.replace(at, at, "m").unwrap();
                continue;
            }
            let tab = &mut tabs[who];
            let len = tab.body().len();
            let at = rng.below(len + 1);
            let made = tab.replace(at, at, "t").unwrap();
            let bytes = codec::encode_changes(&made);
            // Some tabs hear of it, in the order it happens; the session may too.
            for (index, other) in tabs.iter_mut().enumerate() {
                if index != who && rng.below(2) == 0 {
                    other.receive_from_tab(&bytes).unwrap();
                }
            }
            if rng.below(3) > 0 {
                session.receive_from_tab(&bytes).unwrap();
            }
        }
        if session.pending_len() == 0 {
            continue;
        }
        let refused: Vec<ChangeId> =
            (0..1 + rng.below(2)).map(|_| session.pending[rng.below(session.pending_len())].id()).collect();
        session.discard(&refused);
        for change in &session.pending {
            for id in &refused {
                assert!(!(change.replica == id.replica && change.seq >= id.seq), "seed {seed}: a later change stayed");
            }
        }
        session.start_resync();
        let mut server = FakeServer::new();
        connect(&mut session, &mut server);
        flush(&mut session, &mut server);
        assert_eq!(session.pending_len(), 0, "seed {seed}");
        assert_eq!(server.doc.text(BODY).unwrap_or_default(), session.body(), "seed {seed}");
        for id in &refused {
            assert!(server.doc.version().get(id.replica) < id.seq, "seed {seed}: a refused change reached the server");
        }
        if refused.iter().any(|id| id.replica == me) {
            assert_ne!(session.doc().replica(), me, "seed {seed}: its own replica lost a change");
        }
    }
}

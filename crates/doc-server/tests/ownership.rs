//! Replica ownership against the real server (issue 18, must-show 2): a connection authors
//! only as replicas its author secret owns. Forged changes, replays with other content, claims
//! of future seqs and hellos that would take over a live replica are all refused; the victim's
//! own changes are all applied and acknowledged, and it never diverges from the server.

mod common;

use std::time::Duration;

use common::{all_tokens_present, client::connect_ws, converge, Client, Event, Server, WAIT};
use crdt_core::protocol::{reject, AuthorSecret, ClientMsg, ServerMsg, UserInfo, PROTOCOL_VERSION};
use crdt_core::{codec, Change, Document, ReplicaId};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite::Message;

/// A copy of what `attacker` has seen, editing as `victim`'s replica: its changes carry the
/// victim's id and the victim's next seqs.
fn forger(attacker: &Client, victim: ReplicaId) -> Document {
    codec::decode_snapshot(&codec::encode_snapshot(&attacker.doc), victim).unwrap()
}

/// Sends `changes` as one batch and waits for its ack; returns the reject code, if any.
async fn send_and_wait(client: &mut Client, changes: Vec<Change>) -> Option<u16> {
    let before = client.rejected_codes.len();
    client.send_batch(changes).await.unwrap();
    client.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    client.rejected_codes.get(before).copied()
}

/// A `Hello` on a fresh socket; returns the server's error message and close code, or `None`
/// if it was welcomed.
async fn hello_outcome(server: &Server, doc: &str, replica: ReplicaId, author: AuthorSecret) -> Option<(String, u16)> {
    let mut ws = connect_ws(server.addr, doc).await.unwrap();
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica,
        author,
        version: Default::default(),
        user: UserInfo { name: "mallory".into(), color: "#000".into() },
        token: String::new(),
    };
    ws.send(Message::Binary(hello.encode().into())).await.unwrap();
    let mut error = String::new();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("an answer to the hello") {
            Some(Ok(Message::Binary(bytes))) => match ServerMsg::decode(&bytes).unwrap() {
                ServerMsg::Welcome { .. } => return None,
                ServerMsg::Error { message } => error = message,
                other => panic!("unexpected {other:?}"),
            },
            Some(Ok(Message::Close(frame))) => return Some((error, u16::from(frame.expect("a close code").code))),
            Some(Ok(_)) => {}
            other => panic!("the socket ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_authorship_is_refused_and_the_victim_loses_nothing() {
    let dir = common::tmp_dir("forged");
    let server = Server::start(&dir, &[]);
    let mut rng = StdRng::seed_from_u64(common::seed("forged"));
    let mut victim = Client::new("victim");
    let mut attacker = Client::new("attacker");
    victim.connect(server.addr, "forged").await.unwrap();
    attacker.connect(server.addr, "forged").await.unwrap();
    let target = victim.replica();
    attacker.pump_until(WAIT, |c| c.peers.values().any(|peer| peer.replica == target)).await.unwrap();

    // The victim's replica is claimed by its live connection before it has written anything.
    let mut early = forger(&attacker, target);
    let claim = early.insert_text("body", 0, "x").unwrap();
    assert_eq!(claim.seq, 1);
    assert_eq!(send_and_wait(&mut attacker, vec![claim]).await, Some(reject::NOT_OWNER));

    // A live race: the victim types while the attacker, always caught up, forges its next seq.
    let rounds = 40;
    for _ in 0..rounds {
        victim.edit(&mut rng);
        victim.flush().await.unwrap();
        // Let the attacker see what the server relayed so far, so its forgeries name the
        // victim's next seq (or the one in flight).
        let _ = tokio::time::timeout(Duration::from_millis(2), attacker.next_event()).await;
        let mut forged = forger(&attacker, target);
        let len = forged.rga("body").map_or(0, |rga| rga.len());
        let change = forged
            .transact(|tx| {
                tx.insert_text("body", rng.gen_range(0..=len), "FORGED")?;
                tx.add_to_set("tokens", "victim-forged".to_owned());
                Ok(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(change.replica, target);
        attacker.send_batch(vec![change]).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(2), victim.next_event()).await;
    }
    attacker.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    victim.settle().await.unwrap();
    // Whether a raced forgery names a seq the server already holds (code 2) or one it has not
    // seen yet (code 5) depends on timing; caught up, the attacker forges the victim's next
    // seq, which only ownership can refuse.
    let typed = victim.doc.version().get(target);
    attacker.pump_until(WAIT, |c| c.doc.version().get(target) == typed).await.unwrap();
    let ahead = forger(&attacker, target).insert_text("body", 0, "FORGED").unwrap();
    assert_eq!(ahead.seq, typed + 1);
    assert_eq!(send_and_wait(&mut attacker, vec![ahead]).await, Some(reject::NOT_OWNER));

    assert_eq!(attacker.rejected.len(), rounds + 2, "every forgery was refused: {:?}", attacker.rejected);
    assert!(
        attacker.rejected_codes.iter().all(|code| [reject::NOT_OWNER, reject::CONFLICT].contains(code)),
        "{:?}",
        attacker.rejected_codes
    );
    assert!(
        attacker.rejected.iter().any(|reason| reason.contains("belongs to another author")),
        "{:?}",
        attacker.rejected
    );
    assert!(victim.rejected.is_empty(), "the victim's changes were all accepted: {:?}", victim.rejected);
    assert_eq!(victim.acked_own, rounds as u64, "every change of the victim was acknowledged");

    let mut clients = vec![victim, attacker];
    converge(&server, "forged", &mut clients).await;
    let [victim, attacker] = &clients[..] else { unreachable!() };
    assert_eq!(victim.doc.state_hash(), attacker.doc.state_hash());
    let counted = server.metric("doc_server_ownership_rejections_total").await;
    let not_owner = attacker.rejected_codes.iter().filter(|&&code| code == reject::NOT_OWNER).count();
    assert_eq!(counted, not_owner as f64);
    all_tokens_present(attacker, victim, rounds as u64);
    assert!(!victim.doc.set("tokens").contains(&"victim-forged".to_owned()));
    assert!(!victim.doc.text("body").unwrap_or_default().contains("FORGED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_survives_a_restart() {
    let dir = common::tmp_dir("owned-restart");
    let mut server = Server::start(&dir, &[]);
    let mut victim = Client::new("victim");
    victim.connect(server.addr, "kept").await.unwrap();
    let change = victim.doc.insert_text("body", 0, "mine").unwrap();
    victim.queue(change);
    victim.settle().await.unwrap();
    victim.disconnect();
    server.kill();
    let server = Server::start(&dir, &[]);

    // The victim is offline; its replica is still its own.
    let mut attacker = Client::new("attacker");
    attacker.connect(server.addr, "kept").await.unwrap();
    let forged = forger(&attacker, victim.replica()).insert_text("body", 0, "not ").unwrap();
    assert_eq!(forged.seq, 2);
    assert_eq!(send_and_wait(&mut attacker, vec![forged]).await, Some(reject::NOT_OWNER));
    let refused = hello_outcome(&server, "kept", victim.replica(), attacker.author).await;
    let (message, code) = refused.expect("a hello as the victim's replica with another secret is refused");
    assert_eq!(code, 4002);
    assert!(message.contains("belongs to another author"), "{message}");

    // The victim comes back with its secret and carries on.
    victim.connect(server.addr, "kept").await.unwrap();
    let change = victim.doc.insert_text("body", 4, "!").unwrap();
    victim.queue(change);
    victim.settle().await.unwrap();
    assert!(victim.rejected.is_empty(), "{:?}", victim.rejected);
    let mut clients = vec![victim, attacker];
    converge(&server, "kept", &mut clients).await;
    assert_eq!(clients[0].doc.text("body").unwrap(), "mine!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_other_content_is_refused_and_an_identical_one_is_a_duplicate() {
    let dir = common::tmp_dir("replay");
    let server = Server::start(&dir, &[]);
    let mut victim = Client::new("victim");
    victim.connect(server.addr, "replay").await.unwrap();
    for text in ["a", "b", "c"] {
        let len = victim.doc.text("body").map_or(0, |t| t.len());
        let change = victim.doc.insert_text("body", len, text).unwrap();
        victim.queue(change);
    }
    victim.settle().await.unwrap();
    let mut attacker = Client::new("attacker");
    attacker.connect(server.addr, "replay").await.unwrap();

    // Change #2 of the victim again, with other content.
    let held = victim.doc.history()[1].clone();
    assert_eq!(held.seq, 2);
    let mut replay = Document::new(victim.replica());
    replay.apply_change(victim.doc.history()[0].clone()).unwrap();
    let other = replay.insert_text("body", 0, "Z").unwrap();
    assert_eq!(other.id(), held.id());
    assert_ne!(other, held);
    assert_eq!(send_and_wait(&mut attacker, vec![other.clone()]).await, Some(reject::CONFLICT));
    assert!(attacker.rejected[0].contains("differs from the change the server holds"), "{}", attacker.rejected[0]);
    // The victim's own connection is refused the same way: "Applied" never means "dropped".
    assert_eq!(send_and_wait(&mut victim, vec![other]).await, Some(reject::CONFLICT));

    // Relaying the very change the server holds is harmless, whoever does it.
    assert_eq!(send_and_wait(&mut attacker, vec![held]).await, None);
    let (_, _, body) = server.get("/docs/replay").await;
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["body"], "abc");
    let mut clients = vec![victim, attacker];
    converge(&server, "replay", &mut clients).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_cannot_take_over_a_live_replica() {
    let dir = common::tmp_dir("takeover");
    let server = Server::start(&dir, &[]);
    let mut victim = Client::new("victim");
    victim.connect(server.addr, "takeover").await.unwrap();
    let change = victim.doc.insert_text("body", 0, "hello").unwrap();
    victim.queue(change);
    victim.settle().await.unwrap();

    // Another author, and the victim's own secret (a stale tab, a copied profile): both refused
    // while the victim's connection is live, and neither closes it.
    for author in [AuthorSecret::random(), victim.author] {
        let (message, code) =
            hello_outcome(&server, "takeover", victim.replica(), author).await.expect("the takeover is refused");
        assert_eq!(code, 4002, "{message}");
        assert!(message.contains("in use by another connection"), "{message}");
    }
    // A replica that has not written anything yet is protected the same way.
    let mut quiet = Client::new("quiet");
    quiet.connect(server.addr, "takeover").await.unwrap();
    assert!(hello_outcome(&server, "takeover", quiet.replica(), AuthorSecret::random()).await.is_some());

    // The victim never heard of it: it is still connected and its changes are acknowledged.
    let change = victim.doc.insert_text("body", 5, ", world").unwrap();
    victim.queue(change);
    victim.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while victim.inflight() > 0 {
        match tokio::time::timeout_at(deadline, victim.next_event()).await.expect("the ack") {
            Ok(Event::Closed(code)) => panic!("the victim was disconnected ({code:?})"),
            Ok(Event::Error(message)) => panic!("the victim got an error: {message}"),
            Ok(_) => {}
            Err(error) => panic!("{error}"),
        }
    }
    assert!(victim.is_connected());
    assert_eq!(victim.acked_own, 2);
    let mut clients = vec![victim, quiet];
    converge(&server, "takeover", &mut clients).await;
    assert_eq!(clients[0].doc.text("body").unwrap(), "hello, world");
    assert_eq!(server.metric("doc_server_replica_refusals_total").await, 3.0);
    // A refused connection's task ends a moment after its client saw the close.
    let connections = server.metric_settled("doc_server_connections", 2.0).await;
    assert_eq!(connections, 2.0, "the refused hellos left, the victim and quiet stayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn future_seqs_cannot_be_claimed_in_advance() {
    let dir = common::tmp_dir("future");
    let server = Server::start(&dir, &[]);
    let mut victim = Client::new("victim");
    victim.connect(server.addr, "future").await.unwrap();
    let change = victim.doc.insert_text("body", 0, "v").unwrap();
    victim.queue(change);
    victim.settle().await.unwrap();
    let mut attacker = Client::new("attacker");
    attacker.connect(server.addr, "future").await.unwrap();

    // 100 changes ahead of the victim, as one batch and as single claims far ahead.
    let mut forged = forger(&attacker, victim.replica());
    let claims: Vec<Change> = (0..100).map(|i| forged.insert_text("body", 0, &format!("{i}")).unwrap()).collect();
    assert_eq!((claims[0].seq, claims[99].seq), (2, 101));
    assert_eq!(send_and_wait(&mut attacker, claims.clone()).await, Some(reject::NOT_OWNER));
    for claim in [&claims[0], &claims[50], &claims[99]] {
        assert_eq!(send_and_wait(&mut attacker, vec![claim.clone()]).await, Some(reject::NOT_OWNER));
    }

    // The victim's own next 100 changes all go through.
    let mut rng = StdRng::seed_from_u64(common::seed("future"));
    for _ in 0..100 {
        victim.edit(&mut rng);
        victim.flush().await.unwrap();
    }
    victim.settle().await.unwrap();
    assert!(victim.rejected.is_empty(), "{:?}", victim.rejected);
    assert_eq!(victim.acked_own, 101);
    let mut clients = vec![victim, attacker];
    converge(&server, "future", &mut clients).await;
}

/// A client reopening with a new replica id (as a page does) still delivers the offline changes
/// of its earlier replicas: they are its own, proven by the same secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_of_the_same_author_delivers_the_older_ones_changes() {
    let dir = common::tmp_dir("same-author");
    let server = Server::start(&dir, &[]);
    let mut page = Client::new("page");
    page.connect(server.addr, "notes").await.unwrap();
    let change = page.doc.insert_text("body", 0, "one").unwrap();
    page.queue(change);
    page.settle().await.unwrap();
    page.disconnect();
    let old = page.replica();
    // Offline as the old replica, then reopened as a new one.
    let offline = page.doc.insert_text("body", 3, " two").unwrap();
    page.doc.set_replica(ReplicaId::random());
    page.connect(server.addr, "notes").await.unwrap();
    page.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    assert!(page.rejected.is_empty(), "{:?}", page.rejected);
    assert_eq!(page.told.get(old), offline.seq, "the old replica's offline change was accepted");

    // Another author cannot do the same with the old replica.
    let mut other = Client::new("other");
    other.connect(server.addr, "notes").await.unwrap();
    let forged = forger(&other, old).insert_text("body", 0, "x").unwrap();
    assert_eq!(send_and_wait(&mut other, vec![forged]).await, Some(reject::NOT_OWNER));
    let mut clients = vec![page, other];
    converge(&server, "notes", &mut clients).await;
    assert_eq!(clients[0].doc.text("body").unwrap(), "one two");
}

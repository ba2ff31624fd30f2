//! Syncing through the real server: concurrent editing, late joiners, offline edits, presence,
//! all-or-nothing batches and the HTTP routes.

mod common;

use std::time::Duration;

use common::{all_tokens_present, converge, Client, Server, WAIT};
use crdt_core::protocol::Selection;
use crdt_core::{Anchor, Document, ReplicaId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_converge_and_a_late_joiner_catches_up() {
    let dir = common::tmp_dir("converge");
    let server = Server::start(&dir, &[]);
    let mut rng = StdRng::seed_from_u64(common::seed("converge"));
    let mut alice = Client::new("alice");
    let mut bob = Client::new("bob");
    alice.connect(server.addr, "pad").await.unwrap();
    bob.connect(server.addr, "pad").await.unwrap();
    // Both edit at once: each batch goes out before the other's broadcasts are read.
    for _ in 0..40 {
        for client in [&mut alice, &mut bob] {
            for _ in 0..rng.gen_range(1..4) {
                client.edit(&mut rng);
            }
            client.flush().await.unwrap();
        }
        let _ = tokio::time::timeout(Duration::from_millis(2), alice.next_event()).await;
        let _ = tokio::time::timeout(Duration::from_millis(2), bob.next_event()).await;
    }
    let mut clients = vec![alice, bob];
    converge(&server, "pad", &mut clients).await;
    assert!(clients.iter().all(|c| c.hash_checks > 0), "the divergence check ran");

    let mut carol = Client::new("carol");
    carol.connect(server.addr, "pad").await.unwrap();
    assert!(!carol.caught_up_by_snapshot);
    assert_eq!(carol.doc.version(), clients[0].doc.version(), "caught up by the welcome alone");
    clients.push(carol);
    converge(&server, "pad", &mut clients).await;
    let [alice, bob, carol] = &clients[..] else { unreachable!() };
    all_tokens_present(carol, alice, alice.acked_own);
    all_tokens_present(carol, bob, bob.acked_own);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_merge_on_reconnect() {
    let dir = common::tmp_dir("offline");
    let server = Server::start(&dir, &[]);
    let mut rng = StdRng::seed_from_u64(common::seed("offline"));
    let mut alice = Client::new("alice");
    let mut bob = Client::new("bob");
    alice.connect(server.addr, "trip").await.unwrap();
    bob.connect(server.addr, "trip").await.unwrap();
    for _ in 0..5 {
        alice.edit(&mut rng);
    }
    let mut clients = vec![alice, bob];
    converge(&server, "trip", &mut clients).await;
    let [mut alice, mut bob] = <[Client; 2]>::try_from(clients).ok().unwrap();

    alice.disconnect();
    for _ in 0..30 {
        alice.edit(&mut rng); // offline: stays in alice's document only
    }
    for _ in 0..30 {
        bob.edit(&mut rng);
        bob.flush().await.unwrap();
    }
    bob.settle().await.unwrap();
    alice.connect(server.addr, "trip").await.unwrap();
    let mut clients = vec![alice, bob];
    converge(&server, "trip", &mut clients).await;
    let [alice, bob] = &clients[..] else { unreachable!() };
    assert_eq!(alice.acked_own, 35, "every offline edit was sent and acknowledged");
    for client in &clients {
        all_tokens_present(client, alice, 35);
        all_tokens_present(client, bob, 30);
    }
    assert_eq!(alice.doc.counter("edits"), 65);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_reaches_the_other_connections() {
    let dir = common::tmp_dir("presence");
    let server = Server::start(&dir, &[]);
    let mut alice = Client::new("alice");
    let mut bob = Client::new("bob");
    alice.connect(server.addr, "room").await.unwrap();
    let change = alice.doc.insert_text("body", 0, "hello").unwrap();
    alice.queue(change);
    alice.settle().await.unwrap();
    bob.connect(server.addr, "room").await.unwrap();
    // Those already there follow the welcome, one `Presence` each.
    bob.pump_until(WAIT, |c| !c.peers.is_empty()).await.unwrap();
    assert_eq!(bob.peers.len(), 1, "alice's presence followed the welcome");
    assert_eq!(bob.peers.values().next().unwrap().user.name, "alice");
    let bob_conn = bob.connection;
    alice.pump_until(WAIT, |c| c.peers.contains_key(&bob_conn)).await.unwrap();

    let rga = bob.doc.rga("body").unwrap();
    let selection = Selection { field: "body".into(), anchor: rga.anchor_at(1), head: rga.anchor_at(3) };
    bob.send_presence(Some(selection.clone())).await.unwrap();
    alice.pump_until(WAIT, |c| c.peers.get(&bob_conn).and_then(|p| p.selection.clone()).is_some()).await.unwrap();
    let seen = alice.peers[&bob_conn].selection.clone().unwrap();
    assert_eq!(seen, selection);
    let rga = alice.doc.rga("body").unwrap();
    assert_eq!(rga.anchor_position(&seen.anchor), Some(1));
    assert_eq!(rga.anchor_position(&seen.head), Some(3));
    assert_ne!(seen.head, Anchor { after: None });

    bob.disconnect();
    alice.pump_until(WAIT, |c| !c.peers.contains_key(&bob_conn)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_gets_a_snapshot_when_it_is_smaller_than_the_changes() {
    let dir = common::tmp_dir("snapshot-catchup");
    let server = Server::start(&dir, &[]);
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "big").await.unwrap();
    let line = "x".repeat(1000);
    for _ in 0..150 {
        let change = alice.doc.insert_text("body", 0, &line).unwrap();
        alice.queue(change);
    }
    alice.flush().await.unwrap();
    let len = alice.doc.rga("body").unwrap().len();
    let change = alice.doc.delete_text("body", 10, len - 10).unwrap().unwrap();
    alice.queue(change);
    alice.settle().await.unwrap();

    let mut bob = Client::new("bob");
    bob.connect(server.addr, "big").await.unwrap();
    assert!(bob.caught_up_by_snapshot, "150 kB of changes for a 10-character text");
    assert_eq!(bob.doc.text("body"), alice.doc.text("body"));
    assert_eq!(bob.doc.version(), alice.doc.version());
    let mut clients = vec![alice, bob];
    let mut rng = StdRng::seed_from_u64(7);
    clients[1].edit(&mut rng);
    clients[0].edit(&mut rng);
    converge(&server, "big", &mut clients).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_batches_change_nothing() {
    let dir = common::tmp_dir("rejected");
    let server = Server::start(&dir, &[]);
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "strict").await.unwrap();
    let base = alice.doc.insert_text("body", 0, "abc").unwrap();
    alice.queue(base);
    alice.settle().await.unwrap();
    let (_, _, before) = server.get("/docs/strict").await;

    // A change whose dependencies the server lacks.
    let mut other = Document::new(ReplicaId::random());
    let unseen = other.insert_text("body", 0, "zz").unwrap();
    let mut third = Document::new(ReplicaId::random());
    third.apply_change(unseen.clone()).unwrap();
    let dependent = third.insert_text("body", 0, "q").unwrap();
    alice.send_batch(vec![dependent]).await.unwrap();

    // A batch whose second change does not fit: its first change must be undone too. The
    // second deletes characters the server has never seen, and its deps hide that.
    let valid = alice.doc.insert_text("body", 3, "d").unwrap();
    alice.doc.apply_change(unseen).unwrap();
    let at = alice.doc.text("body").unwrap().find("zz").unwrap();
    let mut invalid = alice.doc.delete_text("body", at, 2).unwrap().unwrap();
    invalid.deps = valid.deps.clone(); // claims not to need "zz"
    alice.send_batch(vec![valid.clone(), invalid]).await.unwrap();
    alice.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    assert_eq!(alice.rejected.len(), 2, "{:?}", alice.rejected);
    assert!(alice.rejected[0].contains("depends on changes"), "{}", alice.rejected[0]);
    assert!(alice.rejected[1].contains("does not fit"), "{}", alice.rejected[1]);
    let (_, _, after) = server.get("/docs/strict").await;
    assert_eq!(before, after, "nothing of either batch was applied");

    // The connection carries on: the valid change alone is accepted.
    alice.send_batch(vec![valid]).await.unwrap();
    alice.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    assert_eq!(alice.rejected.len(), 2);
    let (_, _, body) = server.get("/docs/strict").await;
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["body"], "abcd");
}

/// "Applied" never means "dropped": a change under an id the server already holds with other
/// content (a replica id used by two editors, or forged) is refused, not acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_change_id_is_refused_not_acknowledged_and_dropped() {
    let dir = common::tmp_dir("reused-id");
    let server = Server::start(&dir, &[]);
    let replica = ReplicaId::random();
    let mut first = Client::new("first");
    first.doc = Document::new(replica);
    first.connect(server.addr, "shared-id").await.unwrap();
    let change = first.doc.insert_text("body", 0, "mine").unwrap();
    first.queue(change);
    first.settle().await.unwrap();
    first.disconnect();

    // Another editor with the same replica id (a restored backup, a forger), which never saw
    // the first one's change, has its own change #1 sent.
    let mut elsewhere = Document::new(replica);
    let clash = elsewhere.insert_text("body", 0, "theirs").unwrap();
    assert_eq!(clash.id(), first.doc.history()[0].id());
    let mut second = Client::new("second");
    second.connect(server.addr, "shared-id").await.unwrap();
    second.send_batch(vec![clash]).await.unwrap();
    second.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    assert_eq!(second.rejected.len(), 1, "the clash is refused: {:?}", second.rejected);
    assert!(second.rejected[0].contains("two editors used one replica id"), "{}", second.rejected[0]);
    let (_, _, body) = server.get("/docs/shared-id").await;
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["body"], "mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_answer() {
    let dir = common::tmp_dir("http");
    let server = Server::start(&dir, &[]);
    let (status, content_type, body) = server.get("/").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"));
    assert!(String::from_utf8_lossy(&body).contains("not built"));
    assert_eq!(server.get("/healthz").await.0, 200);
    let (status, _, body) = server.get("/readyz").await;
    assert_eq!((status, body.as_slice()), (200, b"ready\n".as_slice()), "the SQLite store takes a durable write");
    assert_eq!(server.get("/docs/not!valid").await.0, 400);
    assert_eq!(server.get("/docs/never-written").await.0, 404);
    assert_eq!(server.get("/ws/bad.id").await.0, 400);
    let (status, _, body) = server.get("/docs").await;
    assert_eq!((status, body.as_slice()), (200, b"[]".as_slice()));

    std::fs::create_dir_all(dir.join("web/assets/js")).unwrap();
    std::fs::write(dir.join("web/index.html"), "<h1>index</h1>").unwrap();
    std::fs::write(dir.join("web/editor.html"), "<h1>editor</h1>").unwrap();
    std::fs::write(dir.join("web/assets/js/app.js"), "console.log(1)").unwrap();
    std::fs::write(dir.join("web/assets/app.wasm"), b"\0asm").unwrap();
    let (status, content_type, body) = server.get("/").await;
    assert_eq!((status, body.as_slice()), (200, b"<h1>index</h1>".as_slice()));
    assert!(content_type.starts_with("text/html"));
    assert_eq!(server.get("/d/my-doc").await.2, b"<h1>editor</h1>");
    let (status, content_type, _) = server.get("/assets/js/app.js").await;
    assert_eq!((status, content_type.as_str()), (200, "text/javascript; charset=utf-8"));
    assert_eq!(server.get("/assets/app.wasm").await.1, "application/wasm");
    assert_eq!(server.get("/assets/missing.js").await.0, 404);
    assert_ne!(server.get("/assets/../index.html").await.0, 200);
    assert_ne!(server.get("/assets/%2e%2e/index.html").await.0, 200);

    let mut alice = Client::new("alice");
    alice.connect(server.addr, "listed").await.unwrap();
    let change = alice.doc.increment("n", 2);
    alice.queue(change);
    alice.settle().await.unwrap();
    let (_, content_type, body) = server.get("/docs").await;
    assert_eq!(content_type, "application/json");
    let docs: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(docs[0]["id"], "listed");
    assert!(docs[0]["updated_ms"].as_u64().unwrap() > 1_600_000_000_000);
    let (_, _, body) = server.get("/docs/listed").await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["n"], 2);
}

/// An ack names only the version entries that moved since the connection's last welcome or
/// ack: after 40 replicas have edited the document, a keystroke's ack still carries one entry
/// (its own replica), and the client's view of the server's version stays whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_does_not_grow_with_the_replicas_of_the_past() {
    let dir = common::tmp_dir("ack-size");
    let server = Server::start(&dir, &[]);
    let mut rng = StdRng::seed_from_u64(common::seed("ack-size"));
    for i in 0..40 {
        let mut visitor = Client::new(&format!("visitor {i}"));
        visitor.connect(server.addr, "old").await.unwrap();
        visitor.edit(&mut rng);
        visitor.flush().await.unwrap();
        visitor.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    }
    let mut writer = Client::new("writer");
    writer.connect(server.addr, "old").await.unwrap();
    assert!(writer.told.len() >= 40, "the welcome carries the whole version");
    for _ in 0..5 {
        writer.edit(&mut rng);
        writer.flush().await.unwrap();
        writer.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
        assert_eq!(writer.last_ack_entries, 1, "an ack names what moved: the writer's own entry");
        assert_eq!(&writer.told, writer.doc.version(), "the client's view of the server's version is whole");
    }
    assert!(writer.hash_checks >= 5, "each ack was checked against the state hash");
}

//! Durability of the real binary: SIGKILL at random moments during an edit storm loses no
//! acknowledged change; restarts from snapshot plus log suffix, SIGTERM (final snapshot, exit
//! 0) and idle unloading all give back the same document.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{all_tokens_present, converge, Client, Server, WAIT};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{params, Connection, OpenFlags};

/// Kill points per run of the kill test (`KILL_POINTS` overrides).
const DEFAULT_KILL_POINTS: usize = 22;

/// `(snapshot rows, log rows)` stored for `doc`, read from the database directly.
fn stored_rows(dir: &Path, doc: &str) -> (i64, i64) {
    let db = Connection::open_with_flags(dir.join("data").join("docs.sqlite3"), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the database");
    let count = |sql: &str| db.query_row(sql, params![doc], |row| row.get(0)).expect(sql);
    (count("SELECT COUNT(*) FROM snapshots WHERE doc = ?1"), count("SELECT COUNT(*) FROM log WHERE doc = ?1"))
}

/// A fresh client's view of the server's document: every change any client saw acknowledged
/// must be in it, by version and by value.
async fn audit(server: &Server, doc: &str, clients: &[Client]) -> Client {
    let mut auditor = Client::new("auditor");
    auditor.connect(server.addr, doc).await.expect("auditor connects");
    auditor.doc.check_invariants();
    for client in clients {
        let stored = auditor.doc.version().get(client.replica());
        assert!(
            stored >= client.acked_own,
            "{}: {} changes acknowledged but only {stored} stored",
            client.name,
            client.acked_own
        );
        all_tokens_present(&auditor, client, client.acked_own);
    }
    auditor.disconnect();
    auditor
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_change_is_lost_when_the_server_is_killed() {
    let dir = common::tmp_dir("kill");
    let mut rng = StdRng::seed_from_u64(common::seed("kill"));
    let kill_points = std::env::var("KILL_POINTS").ok().and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_KILL_POINTS);
    // Small snapshot thresholds so that kills also land around snapshots and log truncation.
    let args = ["--snapshot-every", "60", "--snapshot-interval", "300ms"];
    let mut clients: Vec<Client> = (0..3).map(|i| Client::new(&format!("c{i}"))).collect();
    let mut acked_at_kill = Vec::new();
    for point in 0..kill_points {
        let mut server = Server::start(&dir, &args);
        audit(&server, "storm", &clients).await;
        let tasks: Vec<_> = clients
            .drain(..)
            .map(|mut client| {
                let seed = rng.gen();
                let addr = server.addr;
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(seed);
                    if client.connect(addr, "storm").await.is_ok() {
                        // Ends with an error when the server dies.
                        let _ = client.storm(&mut rng, Duration::from_secs(10)).await;
                    }
                    client.disconnect();
                    client
                })
            })
            .collect();
        // Some kills land during the reconnect and resend, most in the middle of the storm.
        let delay = if point % 5 == 0 { rng.gen_range(0..15) } else { rng.gen_range(30..300) };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
        for task in tasks {
            clients.push(task.await.expect("client task"));
        }
        acked_at_kill.push(clients.iter().map(|c| c.acked_own).sum::<u64>());
    }
    let server = Server::start(&dir, &args);
    audit(&server, "storm", &clients).await;
    for client in clients.iter_mut() {
        client.connect(server.addr, "storm").await.unwrap();
    }
    converge(&server, "storm", &mut clients).await;
    for client in &clients {
        assert_eq!(
            client.acked_own,
            client.doc.version().get(client.replica()),
            "{}: everything resent and acknowledged in the end",
            client.name
        );
        for owner in &clients {
            all_tokens_present(client, owner, owner.acked_own);
        }
    }
    let given_back: usize = clients.iter().map(|c| c.given_back).sum();
    eprintln!("acknowledged changes after each kill: {acked_at_kill:?}; relays given back: {given_back}");
    let total = *acked_at_kill.last().unwrap_or(&0);
    assert!(total >= 200, "the storm made too little progress to prove anything: {total}");
    let grew = acked_at_kill.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(grew >= kill_points / 2, "most kill points interrupted real progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_snapshot_and_log_suffix_gives_the_same_document() {
    let dir = common::tmp_dir("snapshot-restart");
    let args = ["--snapshot-every", "25", "--snapshot-interval", "1h"];
    let mut server = Server::start(&dir, &args);
    let mut rng = StdRng::seed_from_u64(common::seed("snapshot-restart"));
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "compact").await.unwrap();
    for _ in 0..60 {
        alice.edit(&mut rng);
        alice.settle().await.unwrap(); // one change per commit: 60 log entries
    }
    let (snapshots, log) = stored_rows(&dir, "compact");
    assert_eq!(snapshots, 1, "a snapshot was written");
    assert!(log > 0 && log < 25, "the log holds only the suffix after it: {log} entries");
    let (_, _, before) = server.get("/docs/compact").await;
    let reference = audit(&server, "compact", &[]).await;
    assert_eq!(reference.doc.version(), alice.doc.version());

    server.kill();
    let server = Server::start(&dir, &args);
    let (status, _, after) = server.get("/docs/compact").await;
    assert_eq!(status, 200);
    assert_eq!(before, after, "same value after the restart");
    let reloaded = audit(&server, "compact", &[]).await;
    assert_eq!(reloaded.doc.version(), reference.doc.version());
    assert_eq!(reloaded.doc.state_hash(), reference.doc.state_hash());
    assert_eq!(reloaded.doc.history().len(), 60, "the history survived, so catch-ups stay small");
    alice.connect(server.addr, "compact").await.unwrap();
    assert!(!alice.caught_up_by_snapshot);
    assert!(alice.hash_checks > 0);
    converge(&server, "compact", &mut [alice]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_writes_a_final_snapshot_and_exits_zero() {
    let dir = common::tmp_dir("sigterm");
    let mut server = Server::start(&dir, &[]);
    let mut rng = StdRng::seed_from_u64(common::seed("sigterm"));
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "final").await.unwrap();
    for _ in 0..30 {
        alice.edit(&mut rng);
        alice.flush().await.unwrap();
    }
    alice.settle().await.unwrap();
    assert_eq!(stored_rows(&dir, "final").0, 0, "no snapshot before shutdown");
    let (_, _, before) = server.get("/docs/final").await;

    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    match alice.next_event().await {
        Ok(common::Event::Closed(code)) => assert_eq!(code, Some(1001), "going away"),
        other => panic!("expected a close, got {other:?}"),
    }
    assert_eq!(stored_rows(&dir, "final"), (1, 0), "final snapshot, log truncated");
    assert!(server.log_text().contains("shutdown complete"));

    let server = Server::start(&dir, &[]);
    assert_eq!(server.get("/docs/final").await.2, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_documents_unload_with_a_snapshot_and_reload() {
    let dir = common::tmp_dir("idle");
    let server = Server::start(&dir, &["--idle-unload", "300ms"]);
    let mut rng = StdRng::seed_from_u64(common::seed("idle"));
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "nap").await.unwrap();
    for _ in 0..10 {
        alice.edit(&mut rng);
    }
    alice.settle().await.unwrap();
    assert_eq!(server.metric("doc_server_open_documents").await, 1.0);
    alice.disconnect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.metric("doc_server_open_documents").await != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "the document never unloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored_rows(&dir, "nap"), (1, 0), "unloaded with a snapshot");
    let reloaded = audit(&server, "nap", &[alice]).await;
    assert_eq!(reloaded.doc.counter("edits"), 10);
    assert_eq!(server.metric("doc_server_open_documents").await, 1.0);
}

/// A damaged log entry in the store does not make the document unloadable: the server serves
/// what came before it (and after it, where that does not depend on it), keeps the damaged
/// entry and every later one in the store (no snapshot deletes them), and takes new edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_entry_loses_nothing_before_it() {
    let dir = common::tmp_dir("damaged-log");
    let args = ["--snapshot-every", "1000000", "--snapshot-interval", "1h"];
    let mut server = Server::start(&dir, &args);
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "scarred").await.unwrap();
    for word in ["one ", "two ", "three ", "four "] {
        let at = alice.doc.text("body").map_or(0, |t| t.chars().count());
        let change = alice.doc.insert_text("body", at, word).unwrap();
        alice.send_batch(vec![change]).await.unwrap();
        alice.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap(); // one log entry each
    }
    server.kill();
    let (_, log_rows) = stored_rows(&dir, "scarred");
    assert_eq!(log_rows, 4);
    {
        // Damage the third entry ("three ").
        let db = Connection::open(dir.join("data").join("docs.sqlite3")).unwrap();
        let third: i64 = db
            .query_row("SELECT idx FROM log WHERE doc = 'scarred' ORDER BY idx LIMIT 1 OFFSET 2", [], |r| r.get(0))
            .unwrap();
        db.execute("UPDATE log SET bytes = x'0badbeef' WHERE idx = ?1", params![third]).unwrap();
    }
    let mut server = Server::start(&dir, &args);
    let (status, _, body) = server.get("/docs/scarred").await;
    assert_eq!(status, 200, "the document still loads");
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["body"], "one two ", "what came before the damaged entry is served");
    // New edits are taken and kept; nothing of the store is compacted away.
    let mut bob = Client::new("bob");
    bob.connect(server.addr, "scarred").await.unwrap();
    let change = bob.doc.insert_text("body", 0, "zero ").unwrap();
    bob.send_batch(vec![change]).await.unwrap();
    bob.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    server.terminate(WAIT);
    let (snapshots, log_rows) = stored_rows(&dir, "scarred");
    assert_eq!((snapshots, log_rows), (0, 5), "no snapshot deleted the damaged entry or those after it");
}

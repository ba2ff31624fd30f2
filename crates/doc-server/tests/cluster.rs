//! Several servers (issue 19): three doc-servers sharing PostgreSQL behind nginx routing by
//! document id, with clients typing through nginx the whole time.
//!
//! - the failover drill: `kill -9` of a random server, ten times, each restarted a second later;
//!   every client whose connection broke is editing again (an applied ack) within 5 s at p99,
//!   no acknowledged change is ever missing from a welcome, and all converge with the store;
//! - the split-brain drill: the owner of a document is frozen (`SIGSTOP`) until another server
//!   takes its lease, then thawed: nothing it receives afterwards is acknowledged (its writes
//!   meet the fence), nothing acknowledged is lost or applied twice, clients converge;
//! - PostgreSQL down: no acknowledgement, `/readyz` 503, clients disconnected (not stalled);
//!   back up: service resumes without a restart.
//!
//! - the browser's own session logic (`wasm_client::session::Session`, driven natively over a
//!   WebSocket the way `web/src/lib/connection.js` drives it) rides through the owner's
//!   `kill -9`: its pending keystrokes reach the new owner, none twice.
//!
//! Clients are `common::Client` (the protocol client of PROTOCOL.md: resends what the server
//! lacks on every reconnect), driven by [`Typist`]: a keystroke every 200 ms, reconnect with
//! backoff, and a watchdog that drops a connection whose acks stopped for 6 s (a frozen server
//! keeps its sockets open). Skipped without PostgreSQL and nginx, unless
//! `DOC_SERVER_REQUIRE_CLUSTER=1`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::{free_port, Nginx, Postgres};
use common::{Client, Event, Server};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// The keystroke interval of every typist.
const TYPING: Duration = Duration::from_millis(200);
/// A connection with batches in flight and no ack for this long is dropped (frozen server).
const WATCHDOG: Duration = Duration::from_secs(6);

/// A cluster member: its directory, port and process (None while killed).
struct Member {
    dir: PathBuf,
    listen: String,
    server: Option<Server>,
}

fn server_args(url: &str) -> Vec<String> {
    ["--store", url, "--lease-ttl", "3s", "--max-connections-per-address", "0", "--new-documents-per-minute", "0"]
        .map(str::to_owned)
        .to_vec()
}

impl Member {
    fn start(dir: &Path, n: usize, url: &str) -> Member {
        let dir = dir.join(format!("server-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut member = Member { dir, listen: format!("127.0.0.1:{}", free_port()), server: None };
        member.restart(url);
        member
    }

    fn restart(&mut self, url: &str) {
        let mut args = server_args(url);
        // One secret for every member, as `scripts/cluster.sh` gives them: links, and the tags
        // of relays given back after a failover (PROTOCOL.md 5b), open on all.
        let secret = self.dir.parent().expect("members live in the test's directory").join("secret.key");
        if !secret.exists() {
            std::fs::write(&secret, "cluster-test-secret-0123456789abcdef").unwrap();
        }
        args.extend(["--secret-file".to_owned(), secret.display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.server = Some(Server::start_at(&self.dir, &self.listen, &args));
    }

    fn addr(&self) -> SocketAddr {
        self.listen.parse().unwrap()
    }
}

/// What a typist saw.
#[derive(Default)]
struct Record {
    /// From each broken connection to the next applied ack.
    outages: Vec<Duration>,
    /// Welcomes whose version lacked a change this client had seen acknowledged.
    lost: Vec<String>,
    /// Disconnections seen (closes, errors, watchdog).
    disconnects: usize,
    /// When the last applied ack came.
    last_ack: Option<Instant>,
}

/// One client typing through `addr` until `stop`.
struct Typist {
    client: Client,
    doc: String,
    record: Record,
}

impl Typist {
    fn new(name: &str, doc: &str) -> Typist {
        Typist { client: Client::new(name), doc: doc.to_owned(), record: Record::default() }
    }

    /// Connects (again) if needed; `false` if it failed (after a short pause).
    async fn ensure_connected(&mut self, addr: SocketAddr, backoff: &mut Duration) -> bool {
        if self.client.is_connected() {
            return true;
        }
        let acked = self.client.acked_own;
        match tokio::time::timeout(Duration::from_secs(10), self.client.connect(addr, &self.doc)).await {
            Ok(Ok(())) => {
                *backoff = Duration::from_millis(50);
                let has = self.client.welcome_version.get(self.client.replica());
                if has < acked {
                    self.record.lost.push(format!("{}: acked {acked}, the server had {has}", self.client.name));
                }
                true
            }
            _ => {
                self.client.disconnect();
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(Duration::from_millis(800));
                false
            }
        }
    }

    /// Types and reads until `stop`, riding through every failure.
    async fn run(mut self, addr: SocketAddr, seed: u64, stop: Arc<AtomicBool>) -> Typist {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut backoff = Duration::from_millis(50);
        let mut down_since: Option<Instant> = None;
        let mut next_edit = Instant::now();
        let mut waiting_since = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if !self.ensure_connected(addr, &mut backoff).await {
                down_since.get_or_insert_with(Instant::now);
                continue;
            }
            if Instant::now() >= next_edit {
                if self.client.inflight() == 0 {
                    waiting_since = Instant::now();
                }
                self.client.edit(&mut rng);
                let _ = self.client.flush().await;
                next_edit += TYPING;
            }
            let event = tokio::time::timeout_at(next_edit, self.client.next_event()).await;
            let broke = match event {
                Ok(Ok(Event::Ack { applied: true, .. })) => {
                    let now = Instant::now();
                    self.record.last_ack = Some(now);
                    waiting_since = now;
                    if let Some(since) = down_since.take() {
                        self.record.outages.push(now - since);
                        if now - since > Duration::from_secs(3) {
                            eprintln!(
                                "slow recovery: {} on {} down {:?} from {:?}",
                                self.client.name,
                                self.doc,
                                now - since,
                                since.into_std()
                            );
                        }
                    }
                    false
                }
                Ok(Ok(Event::Closed(_))) | Ok(Err(_)) => true,
                Ok(Ok(_)) => false,
                Err(_) => self.client.inflight() > 0 && waiting_since.elapsed() > WATCHDOG,
            };
            if broke {
                self.record.disconnects += 1;
                self.client.disconnect();
                down_since.get_or_insert_with(Instant::now);
            }
        }
        self
    }

    /// After typing stopped: connects if needed and waits until everything is acknowledged
    /// and, with `version`, until it has seen at least that (riding through moves).
    async fn settle(&mut self, addr: SocketAddr, version: Option<&crdt_core::VersionVector>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut backoff = Duration::from_millis(50);
        loop {
            assert!(Instant::now() < deadline, "{} could not settle", self.client.name);
            if !self.ensure_connected(addr, &mut backoff).await {
                continue;
            }
            let reached = match version {
                Some(version) => self.client.reach(version).await,
                None => self.client.settle().await,
            };
            match reached {
                Ok(()) => return,
                Err(_) => self.client.disconnect(),
            }
        }
    }
}

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort();
    if values.is_empty() {
        return Duration::ZERO;
    }
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// Starts `typists` typing through `addr`; returns the stop flag and the tasks.
fn start_typing(
    typists: Vec<Typist>,
    addr: SocketAddr,
    seed: u64,
) -> (Arc<AtomicBool>, Vec<tokio::task::JoinHandle<Typist>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = typists
        .into_iter()
        .enumerate()
        .map(|(i, typist)| tokio::spawn(typist.run(addr, seed + i as u64, Arc::clone(&stop))))
        .collect();
    (stop, tasks)
}

async fn stop_typing(stop: Arc<AtomicBool>, tasks: Vec<tokio::task::JoinHandle<Typist>>) -> Vec<Typist> {
    stop.store(true, Ordering::Relaxed);
    let mut typists = Vec::new();
    for task in tasks {
        typists.push(task.await.expect("typist task"));
    }
    typists
}

/// Settles every typist, checks that the clients of each document agree, that each client's
/// acknowledged changes were never missing, that no change counted twice, and that a server
/// started afresh on the store serves exactly the clients' state.
async fn check_converged(typists: &mut [Typist], addr: SocketAddr, fresh: SocketAddr) {
    for typist in typists.iter_mut() {
        typist.settle(addr, None).await;
    }
    let mut docs: Vec<String> = typists.iter().map(|t| t.doc.clone()).collect();
    docs.sort();
    docs.dedup();
    for doc in docs {
        let mut group: Vec<&mut Typist> = typists.iter_mut().filter(|t| t.doc == doc).collect();
        let mut all = crdt_core::VersionVector::new();
        for typist in group.iter() {
            all.merge(typist.client.doc.version());
        }
        for typist in group.iter_mut() {
            typist.settle(addr, Some(&all)).await;
        }
        let hash = group[0].client.doc.state_hash();
        let value = serde_json::to_value(group[0].client.doc.value()).unwrap();
        let mut typed = 0;
        for typist in group.iter() {
            assert_eq!(typist.client.doc.state_hash(), hash, "{doc}: {} diverged", typist.client.name);
            typed += typist.client.doc.version().get(typist.client.replica());
        }
        // Every change increments `edits` once: a change applied twice would count twice.
        assert_eq!(value["edits"], serde_json::json!(typed), "{doc}: every change counted exactly once");
        // A client that joins the fresh server gets the store's state, and its state hash.
        let mut probe = Client::new("probe");
        probe.connect(fresh, &doc).await.unwrap_or_else(|e| panic!("{doc}: probe: {e}"));
        assert_eq!(probe.doc.state_hash(), hash, "{doc}: the store's state hash is the clients'");
        probe.disconnect();
        let (status, _, body) = common::http_get(fresh, &format!("/docs/{doc}")).await;
        assert_eq!(status, 200, "{doc} from the fresh server");
        let stored: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(stored, value, "{doc}: the store holds exactly what the clients converged to");
    }
    for typist in typists.iter() {
        assert!(typist.record.lost.is_empty(), "acknowledged changes went missing: {:?}", typist.record.lost);
    }
}

/// The owner recorded in the lease of `doc` (a server id starts with its listen address).
fn lease_owner(url: &str, doc: &str) -> Option<String> {
    Postgres::query(url, |client| {
        let row =
            client.query_opt("SELECT owner FROM leases WHERE doc = $1 AND expires_at > now()", &[&doc]).ok()??;
        row.get(0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_drill_kill_9_ten_times() {
    let dir = common::tmp_dir("cluster-failover");
    let Some(pg) = Postgres::start(&dir) else { return };
    let url = pg.create_db("drill");
    let mut members: Vec<Member> = (0..3).map(|n| Member::start(&dir, n, &url)).collect();
    let addrs: Vec<SocketAddr> = members.iter().map(Member::addr).collect();
    let Some(nginx) = Nginx::start(&dir, &addrs) else { return };
    let seed = common::seed("failover_drill");
    let mut rng = StdRng::seed_from_u64(seed);

    let typists: Vec<Typist> = (0..50).map(|i| Typist::new(&format!("c{i}"), &format!("drill-{}", i % 20))).collect();
    let (stop, tasks) = start_typing(typists, nginx.addr, seed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for round in 0..10 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1500..3500))).await;
        let victim = rng.gen_range(0..members.len());
        eprintln!(
            "round {round}: kill -9 server {victim} ({}) at {:?}",
            members[victim].listen,
            std::time::Instant::now()
        );
        if let Some(mut server) = members[victim].server.take() {
            server.kill();
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..1500))).await;
        members[victim].restart(&url);
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut typists = stop_typing(stop, tasks).await;

    let mut outages: Vec<Duration> = typists.iter().flat_map(|t| t.record.outages.iter().copied()).collect();
    let disconnects: usize = typists.iter().map(|t| t.record.disconnects).sum();
    let p50 = percentile(&mut outages, 0.5);
    let p99 = percentile(&mut outages, 0.99);
    let max = outages.last().copied().unwrap_or_default();
    eprintln!(
        "failover drill: {} interruptions ({disconnects} disconnects) over 10 kills; back to editing p50 {p50:?}, p99 {p99:?}, max {max:?}",
        outages.len()
    );
    assert!(outages.len() >= 10, "the kills interrupted clients ({} interruptions)", outages.len());
    assert!(p99 <= Duration::from_secs(5), "editing again within 5 s at p99: {p99:?}");

    // Every server stops; one starts afresh and loads each document from the store.
    for member in members.iter_mut() {
        if let Some(mut server) = member.server.take() {
            server.terminate(Duration::from_secs(15));
        }
    }
    members[0].restart(&url);
    let fresh = members[0].addr();
    check_converged(&mut typists, fresh, fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_brain_a_frozen_owner_is_fenced() {
    let dir = common::tmp_dir("cluster-split");
    let Some(pg) = Postgres::start(&dir) else { return };
    let url = pg.create_db("split");
    let members: Vec<Member> = (0..3).map(|n| Member::start(&dir, n, &url)).collect();
    let addrs: Vec<SocketAddr> = members.iter().map(Member::addr).collect();
    let Some(nginx) = Nginx::start(&dir, &addrs) else { return };
    let seed = common::seed("split_brain");
    let doc = "split-doc";

    let typists: Vec<Typist> = (0..4).map(|i| Typist::new(&format!("t{i}"), doc)).collect();
    let (stop, tasks) = start_typing(typists, nginx.addr, seed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let owner = lease_owner(&url, doc).expect("the document has an owner");
    let victim = members.iter().position(|m| owner.starts_with(&format!("{}#", m.listen))).expect("owner is a member");
    eprintln!("split brain: the owner is server {victim} ({owner})");

    // A client straight to the owner (past nginx), so that it still has something to write
    // when it wakes up.
    let mut direct = Client::new("direct");
    direct.connect(members[victim].addr(), doc).await.unwrap();
    let mut rng = StdRng::seed_from_u64(seed ^ 1);
    for _ in 0..3 {
        direct.edit(&mut rng);
        direct.settle().await.unwrap();
    }
    let acked_before = direct.acked_own;

    members[victim].server.as_ref().unwrap().signal("STOP");
    let stopped = Instant::now();
    for _ in 0..5 {
        direct.edit(&mut rng);
        direct.flush().await.unwrap();
    }
    loop {
        let now_owner = lease_owner(&url, doc);
        if now_owner.as_ref().is_some_and(|o| *o != owner) {
            eprintln!("split brain: {now_owner:?} took over after {:?}", stopped.elapsed());
            break;
        }
        assert!(stopped.elapsed() < Duration::from_secs(30), "no server took the document over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // More writes that reach the frozen owner's socket before it wakes.
    for _ in 0..5 {
        direct.edit(&mut rng);
        direct.flush().await.unwrap();
    }
    members[victim].server.as_ref().unwrap().signal("CONT");

    // The thawed server must not acknowledge anything sent after it froze.
    let mut closed = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while closed.is_none() && Instant::now() < deadline {
        match tokio::time::timeout_at(deadline, direct.next_event()).await {
            Ok(Ok(Event::Ack { applied: true, seq })) => panic!("the fenced server acknowledged batch {seq}"),
            Ok(Ok(Event::Closed(code))) => closed = Some(code),
            Ok(Err(_)) => closed = Some(None),
            _ => {}
        }
    }
    assert_eq!(direct.acked_own, acked_before, "nothing sent to the frozen owner was acknowledged");
    eprintln!("split brain: the thawed owner closed the direct client with {closed:?}");
    assert_eq!(closed, Some(Some(4010)), "told to reconnect to the new owner");
    let page = members[victim].server.as_ref().unwrap().get("/metrics").await.2;
    let page = String::from_utf8_lossy(&page);
    let fenced = common::metric(&page, "doc_server_fenced_writes_total");
    let lost = common::metric(&page, "doc_server_leases_lost_total");
    eprintln!("split brain: the thawed owner counted {fenced} fenced writes, {lost} lost leases");
    assert!(lost >= 1.0, "the thawed owner learned it lost the document");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut typists = stop_typing(stop, tasks).await;
    let mut joined = Typist { client: direct, doc: doc.to_owned(), record: Record::default() };
    joined.client.disconnect();
    typists.push(joined);
    let fresh_member = Member::start(&dir, 9, &url);
    check_converged(&mut typists, nginx.addr, fresh_member.addr()).await;
    drop(members);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_means_no_acks_not_ready_and_reconnecting_then_recovery() {
    let dir = common::tmp_dir("cluster-pg-down");
    let Some(mut pg) = Postgres::start(&dir) else { return };
    let url = pg.url();
    let member = Member::start(&dir, 0, &url);
    let addr = member.addr();
    let seed = common::seed("postgres_down");
    let typists: Vec<Typist> = (0..4).map(|i| Typist::new(&format!("p{i}"), &format!("pgdown-{}", i % 2))).collect();
    let (stop, tasks) = start_typing(typists, addr, seed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(common::http_get(addr, "/readyz").await.0, 200);

    pg.stop();
    let down = Instant::now();
    // /readyz says not ready (it probes at most once a second).
    loop {
        if common::http_get(addr, "/readyz").await.0 == 503 {
            break;
        }
        assert!(down.elapsed() < Duration::from_secs(10), "/readyz kept saying ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, _, body) = common::http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let errors = common::metric(&String::from_utf8_lossy(&body), "doc_server_storage_errors_total");
    eprintln!("postgres down: {errors} storage errors counted, /readyz 503 after {:?}", down.elapsed());

    pg.launch();
    let up = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut typists = stop_typing(stop, tasks).await;
    for typist in &typists {
        assert!(typist.record.disconnects >= 1, "{}: the outage closed its connection", typist.client.name);
        let last = typist.record.last_ack.expect("acks");
        assert!(last > up, "{}: acknowledged again after the database came back", typist.client.name);
    }
    assert_eq!(common::http_get(addr, "/readyz").await.0, 200, "ready again without a restart");
    check_converged(&mut typists, addr, addr).await;
    drop(member);
}

/// One browser session (the wasm client's `Session`, natively) typing `typed` characters into
/// `doc` through `addr`, one every 50 ms, reconnecting on any close like the page does.
async fn browser_session(addr: SocketAddr, doc: String, mark: char, typed: usize, stop: Arc<AtomicBool>) -> String {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use wasm_client::session::Session;

    let mut session = Session::new(crdt_core::ReplicaId::random());
    let user = || crdt_core::protocol::UserInfo { name: format!("browser {mark}"), color: "#3366cc".into() };
    let mut made = 0;
    let mut backoff = Duration::from_millis(50);
    loop {
        let done = made == typed && session.pending_len() == 0;
        if done && stop.load(Ordering::Relaxed) {
            return session.body();
        }
        let Ok(mut ws) = common::client::connect_ws(addr, &doc).await else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(800));
            continue;
        };
        backoff = Duration::from_millis(50);
        if ws.send(Message::Binary(session.hello(user(), "").into())).await.is_err() {
            session.disconnected();
            continue;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let code = loop {
            while let Some(frame) = session.next_frame() {
                if ws.send(Message::Binary(frame.into())).await.is_err() {
                    break;
                }
            }
            if made == typed && session.pending_len() == 0 && stop.load(Ordering::Relaxed) {
                return session.body();
            }
            tokio::select! {
                _ = tick.tick() => {
                    if made < typed {
                        let end = session.body().encode_utf16().count();
                        session.edit(end, end, &mark.to_string()).expect("a local edit");
                        made += 1;
                    }
                }
                message = ws.next() => match message {
                    Some(Ok(Message::Binary(bytes))) => {
                        session.receive(&bytes).expect("a frame the session reads");
                    }
                    Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break None,
                },
            }
        };
        session.disconnected_with(code);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_session_rides_through_a_kill_9_of_its_documents_owner() {
    let dir = common::tmp_dir("cluster-session");
    let Some(pg) = Postgres::start(&dir) else { return };
    let url = pg.create_db("sessions");
    let mut members: Vec<Member> = (0..3).map(|n| Member::start(&dir, n, &url)).collect();
    let addrs: Vec<SocketAddr> = members.iter().map(Member::addr).collect();
    let Some(nginx) = Nginx::start(&dir, &addrs) else { return };
    let doc = "session-doc".to_owned();
    let (typed, marks) = (80, ['a', 'b', 'c']);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = marks
        .iter()
        .map(|&mark| tokio::spawn(browser_session(nginx.addr, doc.clone(), mark, typed, Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let owner = lease_owner(&url, &doc).expect("the document has an owner");
    let victim = members.iter().position(|m| owner.starts_with(&format!("{}#", m.listen))).expect("owner is a member");
    members[victim].server.take().expect("running").kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    members[victim].restart(&url);
    stop.store(true, Ordering::Relaxed);
    let mut bodies = Vec::new();
    for task in tasks {
        bodies.push(tokio::time::timeout(Duration::from_secs(60), task).await.expect("sessions settle").unwrap());
    }
    let (status, _, text) = common::http_get(nginx.addr, &format!("/docs/{doc}/text")).await;
    assert_eq!(status, 200);
    let stored = String::from_utf8(text).unwrap();
    for mark in marks {
        assert_eq!(stored.matches(mark).count(), typed, "every keystroke of {mark} once, none lost or doubled");
    }
    for (body, mark) in bodies.iter().zip(marks) {
        // A session may not have every other's last keystroke yet; its own are all there.
        assert_eq!(body.matches(mark).count(), typed, "session {mark} has its own keystrokes once");
        assert!(body.len() <= stored.len());
    }
    assert_eq!(stored.len(), typed * marks.len());
}

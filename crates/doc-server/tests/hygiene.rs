//! Connection hygiene of the real binary: bad frames, slow consumers, heartbeats, slow headers,
//! idle connection cost, and metrics that move.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{converge, Client, Event, Server, WAIT};
use crdt_core::codec::FORMAT_VERSION;
use crdt_core::protocol::{AuthorSecret, ClientMsg, Selection, ServerMsg, UserInfo, PROTOCOL_VERSION};
use crdt_core::{Anchor, ReplicaId, VersionVector};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

fn hello(protocol: u16) -> ClientMsg {
    ClientMsg::Hello {
        protocol,
        replica: ReplicaId::random(),
        author: AuthorSecret::random(),
        version: VersionVector::new(),
        user: UserInfo { name: "tester".into(), color: "#000".into() },
        token: String::new(),
    }
}

fn binary(message: &ClientMsg) -> Message {
    Message::Binary(message.encode().into())
}

/// Reads until the server closes; returns the error message it sent first and the close code.
async fn error_then_close<S>(ws: &mut WebSocketStream<S>) -> (String, Option<u16>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut error = None;
    loop {
        let next = tokio::time::timeout(WAIT, ws.next()).await.expect("the server answers");
        match next {
            Some(Ok(Message::Binary(bytes))) => {
                if let ServerMsg::Error { message } = ServerMsg::decode(&bytes).unwrap() {
                    error = Some(message);
                }
            }
            Some(Ok(Message::Close(frame))) => {
                let message = error.expect("an Error message before the close");
                return (message, frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("connection failed before the close ({e}); error so far: {error:?}"),
            None => panic!("connection ended without a close; error so far: {error:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_own_connection() {
    let dir = common::tmp_dir("bad-frames");
    let server = Server::start(&dir, &["--max-message-bytes", "65536"]);
    let mut rng = StdRng::seed_from_u64(common::seed("bad-frames"));
    let mut alice = Client::new("alice");
    let mut bob = Client::new("bob");
    alice.connect(server.addr, "shared").await.unwrap();
    bob.connect(server.addr, "shared").await.unwrap();

    let random = loop {
        let bytes: Vec<u8> = (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect();
        if ClientMsg::decode(&bytes).is_err() {
            break bytes;
        }
    };
    let good_hello = hello(PROTOCOL_VERSION).encode();
    let mut wrong_version = good_hello.clone();
    wrong_version[0] = FORMAT_VERSION + 1;
    let changes_first = ClientMsg::Changes { seq: 1, changes: Vec::new() };
    // (what to send after connecting, whether a valid hello goes first, expected close code)
    let cases: Vec<(&str, Vec<Message>, u16)> = vec![
        ("random bytes", vec![Message::Binary(random.into())], 1007),
        ("truncated", vec![Message::Binary(good_hello[..good_hello.len() / 2].to_vec().into())], 1007),
        ("empty", vec![Message::Binary(Vec::new().into())], 1007),
        ("oversized", vec![Message::Binary(vec![7u8; 100_000].into())], 1009),
        ("wrong format version", vec![Message::Binary(wrong_version.into())], 1007),
        ("wrong protocol version", vec![binary(&hello(PROTOCOL_VERSION + 1))], 1002),
        ("text frame", vec![Message::Text("hello".into())], 1003),
        ("changes before hello", vec![binary(&changes_first)], 1002),
        ("second hello", vec![binary(&hello(PROTOCOL_VERSION)), binary(&hello(PROTOCOL_VERSION))], 1002),
    ];
    let count = cases.len();
    for (name, messages, code) in cases {
        let mut ws = common::client::connect_ws(server.addr, "shared").await.unwrap();
        for message in messages {
            ws.send(message).await.unwrap();
        }
        let (message, closed_with) = error_then_close(&mut ws).await;
        assert_eq!(closed_with, Some(code), "{name}: {message}");
        // Everyone else carries on: the good clients keep editing between bad connections.
        alice.edit(&mut rng);
        bob.edit(&mut rng);
        alice.settle().await.unwrap();
        bob.settle().await.unwrap();
    }
    let mut clients = vec![alice, bob];
    converge(&server, "shared", &mut clients).await;
    assert_eq!(clients[0].acked_own, count as u64);
    assert_eq!(server.metric("doc_server_rejected_frames_total").await, count as f64);
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_and_memory_stays_bounded() {
    const SLOW: usize = 4;
    const AFTER_KICK: u64 = 50_000;
    let dir = common::tmp_dir("slow-consumer");
    // Presence is the flood here, so its rate limit is off: this test is about the queues.
    let server = Server::start(
        &dir,
        &["--send-queue-bytes", "65536", "--heartbeat-interval", "60s", "--presence-per-second", "0"],
    );
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "busy").await.unwrap();
    let change = alice.doc.insert_text("body", 0, "some text to point into").unwrap();
    alice.queue(change);
    alice.settle().await.unwrap();

    // A reader that keeps up must not be cut off. It counts alice's presence messages so that
    // alice never runs more than a window ahead of it.
    let mut bob = Client::new("bob");
    bob.connect(server.addr, "busy").await.unwrap();
    let alice_conn = alice.connection;
    let seen = Arc::new(AtomicU64::new(0));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let reader = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return bob,
                    event = bob.next_event() => match event {
                        // Alice's updates (the presence after bob's welcome has no selection).
                        Ok(Event::Presence(peer)) if peer.connection == alice_conn && peer.selection.is_some() => {
                            seen.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Closed(code)) => panic!("bob was closed ({code:?})"),
                        Ok(_) => {}
                        Err(e) => panic!("bob failed: {e}"),
                    },
                }
            }
        })
    };

    // Slow clients with tiny receive buffers join and never read again.
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(server.addr).await.unwrap();
        let url = format!("ws://{}/ws/busy", server.addr);
        let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        ws.send(binary(&hello(PROTOCOL_VERSION))).await.unwrap();
        slow.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = server.rss_kib();

    // Presence is not stored, so the document does not grow: any memory growth would be
    // messages held for the slow clients.
    let rga = alice.doc.rga("body").unwrap();
    let anchors: Vec<Anchor> = (0..20).map(|pos| rga.anchor_at(pos)).collect();
    let long_field = "f".repeat(250);
    let mut sent = 0u64;
    let mut kicked_after = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent < 500_000 {
        let selection = Selection {
            field: long_field.clone(),
            anchor: anchors[(sent % 20) as usize],
            head: Anchor { after: None },
        };
        alice.send_presence(Some(selection)).await.unwrap();
        sent += 1;
        while sent > seen.load(Ordering::Relaxed) + 32 {
            assert!(Instant::now() < deadline, "bob stopped receiving");
            tokio::task::yield_now().await;
        }
        if sent.is_multiple_of(2000) {
            let kicked = server.metric("doc_server_slow_consumer_disconnects_total").await;
            if kicked as usize >= SLOW && kicked_after.is_none() {
                kicked_after = Some(sent);
            }
            if kicked_after.is_some_and(|at| sent >= at + AFTER_KICK) {
                break;
            }
            assert!(Instant::now() < deadline, "slow clients were not disconnected");
        }
    }
    let kicked_after = kicked_after.expect("every slow client disconnected");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = server.rss_kib();
    let _ = stop.send(());
    let mut bob = reader.await.unwrap();
    let presence_seen = seen.load(Ordering::Relaxed);
    eprintln!(
        "slow clients kicked after {kicked_after} presence messages; {sent} sent; \
         bob saw {presence_seen}; server RSS {rss_before} KiB -> {rss_after} KiB"
    );
    assert_eq!(server.metric("doc_server_slow_consumer_disconnects_total").await, SLOW as f64);
    // A kicked connection takes up to a second to give up on its goodbye (its socket is full).
    let deadline = Instant::now() + WAIT;
    while server.metric("doc_server_connections").await != 2.0 {
        assert!(Instant::now() < deadline, "the slow connections stayed open; alice and bob remain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 50,000 more messages of ~300 bytes went out after the kicks: 15 MB held had they been
    // queued for the slow clients (frames are shared between queues, so once for all of them).
    // The allowance is for allocator noise.
    assert!(rss_after < rss_before + 4 * 1024, "server memory grew from {rss_before} KiB to {rss_after} KiB");
    // Each slow client finds its connection closed once it reads what the kernel buffered.
    for mut ws in slow {
        let ended = tokio::time::timeout(WAIT, async {
            while let Some(Ok(message)) = ws.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "a slow client's connection stayed open");
    }
    bob.pump_until(WAIT, |c| c.peers.len() == 1).await.unwrap();
    assert_eq!(presence_seen, sent, "bob saw every presence update");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_misses_a_pong_is_closed_by_the_next_ping() {
    let dir = common::tmp_dir("heartbeat");
    let server = Server::start(&dir, &["--heartbeat-interval", "200ms"]);
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "beat").await.unwrap();

    let mut mute = common::client::connect_ws(server.addr, "beat").await.unwrap();
    mute.send(binary(&hello(PROTOCOL_VERSION))).await.unwrap();
    let welcome = mute.next().await.unwrap().unwrap();
    let Ok(ServerMsg::Welcome { connection, .. }) = ServerMsg::decode(&welcome.into_data()) else {
        panic!("expected a welcome");
    };
    // `mute` never reads again, so it never answers a ping.
    let started = Instant::now();
    alice.pump_until(WAIT, |c| c.peers.contains_key(&connection)).await.unwrap();
    alice.pump_until(WAIT, |c| !c.peers.contains_key(&connection)).await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
    // Alice answers pings (her client reads), so she stays through many intervals.
    let quiet = tokio::time::timeout(Duration::from_millis(1500), alice.next_event()).await;
    assert!(quiet.is_err(), "alice got {quiet:?}");
    assert!(alice.is_connected());
    assert_eq!(server.metric("doc_server_heartbeat_timeouts_total").await, 1.0);
    drop(mute);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_do_not_arrive_in_time_are_cut_off() {
    let dir = common::tmp_dir("header-timeout");
    let server = Server::start(&dir, &["--header-read-timeout", "1s"]);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buffer)).await;
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "the connection stayed open");
    assert!(!String::from_utf8_lossy(&buffer).contains("200 OK"));
    assert!(elapsed >= Duration::from_millis(800), "closed too early: {elapsed:?}");
    // A complete request is still served.
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_cheap() {
    // 500 rather than 1,000 so that both processes stay under a 1,024 file descriptor limit.
    const CONNECTIONS: usize = 500;
    let dir = common::tmp_dir("idle-connections");
    // All from one address: its connection limit (256 by default) is off here.
    let server = Server::start(&dir, &["--max-connections-per-address", "0"]);
    // Warm up: one connection and document, so one-time allocations are not counted.
    let mut warm = common::client::connect_ws(server.addr, "warm").await.unwrap();
    warm.send(binary(&hello(PROTOCOL_VERSION))).await.unwrap();
    warm.next().await.unwrap().unwrap();
    let before = server.rss_kib();
    let mut sockets = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut ws = common::client::connect_ws(server.addr, &format!("d{}", i % 50)).await.unwrap();
        ws.send(binary(&hello(PROTOCOL_VERSION))).await.unwrap();
        sockets.push(ws);
    }
    let deadline = Instant::now() + WAIT;
    while server.metric("doc_server_connections").await < (CONNECTIONS + 1) as f64 {
        assert!(Instant::now() < deadline, "connections did not all open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = server.rss_kib();
    let per_connection = (after.saturating_sub(before)) * 1024 / CONNECTIONS as u64;
    eprintln!(
        "{CONNECTIONS} idle connections: {before} KiB -> {after} KiB, {per_connection} bytes each \
         ({} MB per 1,000)",
        per_connection * 1000 / 1_000_000
    );
    assert!(per_connection < 48 * 1024, "{per_connection} bytes per idle connection");
    drop(sockets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_while_clients_edit() {
    let dir = common::tmp_dir("metrics");
    let server = Server::start(&dir, &[]);
    let (status, content_type, body) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    let page = String::from_utf8(body).unwrap();
    for name in [
        "doc_server_connections",
        "doc_server_open_documents",
        "doc_server_changes_applied_total",
        "doc_server_ops_applied_total",
        "doc_server_bytes_in_total",
        "doc_server_bytes_out_total",
        "doc_server_slow_consumer_disconnects_total",
        "doc_server_apply_latency_seconds_count",
        "doc_server_commit_latency_seconds_count",
    ] {
        assert_eq!(common::metric(&page, name), 0.0, "{name} starts at 0");
    }

    let mut rng = StdRng::seed_from_u64(common::seed("metrics"));
    let mut alice = Client::new("alice");
    let mut bob = Client::new("bob");
    alice.connect(server.addr, "counted").await.unwrap();
    bob.connect(server.addr, "counted").await.unwrap();
    let mut batches = 0;
    for _ in 0..20 {
        alice.edit(&mut rng);
        alice.edit(&mut rng);
        alice.settle().await.unwrap();
        bob.edit(&mut rng);
        bob.settle().await.unwrap();
        batches += 2;
    }
    let page = String::from_utf8(server.get("/metrics").await.2).unwrap();
    let m = |name| common::metric(&page, name);
    let moved: Vec<&str> = page.lines().filter(|l| !l.starts_with('#') && !l.contains("_bucket")).collect();
    eprintln!("/metrics after 60 edits from two clients:\n{}", moved.join("\n"));
    assert_eq!(m("doc_server_connections"), 2.0);
    assert_eq!(m("doc_server_open_documents"), 1.0);
    assert_eq!(m("doc_server_changes_applied_total"), 60.0);
    assert_eq!(m("doc_server_ops_applied_total"), 180.0, "three operations per edit");
    assert_eq!(m("doc_server_batches_applied_total"), batches as f64);
    assert_eq!(m("doc_server_apply_latency_seconds_count"), batches as f64);
    let commits = m("doc_server_commit_latency_seconds_count");
    assert!((1.0..=batches as f64).contains(&commits), "{commits} commits");
    assert!(m("doc_server_bytes_in_total") > 1000.0);
    assert!(m("doc_server_bytes_out_total") > m("doc_server_bytes_in_total"), "broadcasts");
    converge(&server, "counted", &mut [alice, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_latency_is_measured() {
    const ROUNDS: usize = 200;
    let dir = common::tmp_dir("latency");
    let server = Server::start(&dir, &[]);
    let mut alice = Client::new("alice");
    let mut bob = Client::new("bob");
    alice.connect(server.addr, "fast").await.unwrap();
    bob.connect(server.addr, "fast").await.unwrap();
    let mut rng = StdRng::seed_from_u64(common::seed("latency"));
    let mut broadcast = Vec::with_capacity(ROUNDS);
    let mut acked = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        alice.edit(&mut rng);
        let target = alice.doc.version().clone();
        let started = Instant::now();
        alice.flush().await.unwrap();
        bob.reach(&target).await.unwrap();
        broadcast.push(started.elapsed());
        alice.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
        acked.push(started.elapsed());
    }
    let percentile = |samples: &mut Vec<Duration>, p: usize| {
        samples.sort();
        samples[(samples.len() * p / 100).min(samples.len() - 1)]
    };
    let (b50, b99) = (percentile(&mut broadcast, 50), percentile(&mut broadcast, 99));
    let (a50, a99) = (percentile(&mut acked, 50), percentile(&mut acked, 99));
    eprintln!("broadcast latency p50 {b50:?} p99 {b99:?}; send-to-ack p50 {a50:?} p99 {a99:?} (fsync included)");
    // Generous bounds for a shared 2-core machine; without TCP_NODELAY p50 was ~40 ms.
    assert!(b50 < Duration::from_millis(30), "broadcast p50 {b50:?}");
    converge(&server, "fast", &mut [alice, bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_hello_is_closed() {
    let dir = common::tmp_dir("hello-timeout");
    let server = Server::start(&dir, &["--hello-timeout", "300ms"]);
    let mut ws = common::client::connect_ws(server.addr, "quiet").await.unwrap();
    let started = Instant::now();
    let (message, code) = error_then_close(&mut ws).await;
    assert_eq!(code, Some(1008), "{message}");
    assert!(message.contains("Hello"), "{message}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(server.metric("doc_server_open_documents").await, 0.0, "no document was loaded");
}

/// A fast honest writer is not a slow consumer: one change per message, as fast as it can send,
/// without reading, while another client watches. The server answers a round's batches of one
/// connection with one ack and one broadcast, so neither connection's queue overflows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_flooding_single_keystrokes_and_its_observer_stay_connected() {
    const KEYSTROKES: u64 = 5000;
    let dir = common::tmp_dir("flood");
    let server = Server::start(&dir, &[]);
    let mut writer = Client::new("writer");
    let mut observer = Client::new("observer");
    writer.connect(server.addr, "flooded").await.unwrap();
    observer.connect(server.addr, "flooded").await.unwrap();
    let author = writer.replica();
    let watching = tokio::spawn(async move {
        let seen = observer.pump_until(Duration::from_secs(60), |c| c.doc.version().get(author) == KEYSTROKES).await;
        (seen, observer)
    });
    let started = Instant::now();
    for i in 0..KEYSTROKES {
        let change = writer.doc.insert_text("body", i as usize, "x").unwrap();
        writer.send_batch(vec![change]).await.unwrap();
    }
    let sent = started.elapsed();
    writer.pump_until(Duration::from_secs(60), |c| c.inflight() == 0).await.unwrap();
    let acked = started.elapsed();
    let (seen, observer) = watching.await.unwrap();
    seen.unwrap();
    eprintln!("{KEYSTROKES} single-keystroke messages sent in {sent:?}, all acknowledged after {acked:?}");
    assert!(writer.is_connected() && observer.is_connected());
    assert_eq!(observer.doc.text("body"), writer.doc.text("body"));
    assert_eq!(server.metric("doc_server_slow_consumer_disconnects_total").await, 0.0);
    let commits = server.metric("doc_server_commit_latency_seconds_count").await;
    assert!(commits < KEYSTROKES as f64, "{commits} commits: the group commit shares them");
    converge(&server, "flooded", &mut [writer, observer]).await;
}

//! The limits of issue 18 against the real binary: a connection's change and presence rates,
//! connections and new documents per address, a document's fields, field names and text, the
//! open-files limit and accept back-off, and a bad batch refused without a reload. Each test
//! sets small limits through the flags the production defaults come from.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Client, Event, Server, WAIT};
use crdt_core::protocol::{
    reject, AuthorSecret, ClientMsg, Selection, ServerMsg, UserInfo, WireNames, PROTOCOL_VERSION,
};
use crdt_core::{Anchor, Document, Op, ReplicaId, RgaOp, VersionVector};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// The second address of the loopback network: another client, as far as the server knows.
const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

async fn tcp_from(local: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((local, 0))).unwrap();
    socket.connect(server).await.unwrap()
}

/// A WebSocket to `doc` from `local`, with its `Hello` sent as `doc` (a fresh replica).
async fn hello_from(local: Ipv4Addr, server: SocketAddr, doc: &Document, id: &str) -> (Ws, WireNames) {
    let stream = tcp_from(local, server).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{server}/ws/{id}"), stream).await.unwrap();
    let mut names = WireNames::new();
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica: doc.replica(),
        author: AuthorSecret::random(),
        version: VersionVector::new(),
        user: UserInfo { name: "tester".into(), color: "#000".into() },
        token: String::new(),
    };
    ws.send(Message::Binary(hello.encode_on(&mut names).into())).await.unwrap();
    (ws, names)
}

/// Reads until the first protocol message: `Ok` for a `Welcome`, otherwise the `Error` message
/// and the close code that followed it.
async fn welcomed(ws: &mut Ws) -> Result<(), (String, Option<u16>)> {
    let mut error = String::new();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("the server answers") {
            Some(Ok(Message::Binary(bytes))) => match ServerMsg::decode(&bytes).unwrap() {
                ServerMsg::Welcome { .. } => return Ok(()),
                ServerMsg::Error { message } => error = message,
                other => panic!("before the welcome: {other:?}"),
            },
            Some(Ok(Message::Close(frame))) => return Err((error, frame.map(|f| u16::from(f.code)))),
            Some(Ok(_)) => {}
            other => panic!("the connection ended without a close: {other:?} ({error})"),
        }
    }
}

/// GET `path` from `local`; the status code and body.
async fn get_from(local: Ipv4Addr, server: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tcp_from(local, server).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.expect("an answer in time").unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|code| code.parse().ok()).expect("a status line");
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

/// A metric, read from the other address (so a full first address does not matter).
async fn metric(server: &Server, name: &str) -> f64 {
    let (status, body) = get_from(OTHER, server.addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    common::metric(&body, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_over_the_rate_are_slowed_down_and_every_one_is_acknowledged() {
    // 200 changes a second, 1,000 at once: 1,200 single-change messages take a second or more.
    const CHANGES: u64 = 1200;
    let dir = common::tmp_dir("limits-rate");
    let server = Server::start(&dir, &["--changes-per-second", "200"]);
    let mut writer = Client::new("writer");
    let mut observer = Client::new("observer");
    writer.connect(server.addr, "rated").await.unwrap();
    observer.connect(server.addr, "rated").await.unwrap();
    let started = Instant::now();
    for i in 0..CHANGES {
        let change = writer.doc.insert_text("body", i as usize, "x").unwrap();
        writer.send_batch(vec![change]).await.unwrap();
    }
    writer.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    let elapsed = started.elapsed();
    let author = writer.replica();
    observer.pump_until(WAIT, |c| c.doc.version().get(author) == CHANGES).await.unwrap();
    eprintln!("{CHANGES} changes at 200/s with a burst of 1,000 acknowledged after {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(900), "200 changes beyond the burst at 200/s take a second");
    assert!(metric(&server, "doc_server_throttled_messages_total").await > 0.0);
    assert_eq!(metric(&server, "doc_server_flood_closes_total").await, 0.0, "throttled, not closed");
    assert!(writer.rejected.is_empty() && writer.is_connected());
    common::converge(&server, "rated", &mut [writer, observer]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stays_over_its_rate_is_closed_with_4005_and_others_carry_on() {
    let dir = common::tmp_dir("limits-flood");
    let server = Server::start(&dir, &["--changes-per-second", "50", "--flood-close-after", "1s"]);
    let mut honest = Client::new("honest");
    honest.connect(server.addr, "flooded").await.unwrap();
    let mut flooder = Document::new(ReplicaId::random());
    let (mut ws, mut names) = hello_from(Ipv4Addr::LOCALHOST, server.addr, &flooder, "flooded").await;
    welcomed(&mut ws).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let sender = tokio::spawn(async move {
        let mut sent = 0u64;
        for seq in 1.. {
            let change = flooder.insert_text("body", 0, "f").unwrap();
            let frame = ClientMsg::Changes { seq, changes: vec![change] }.encode_on(&mut names);
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let (mut error, mut code) = (String::new(), None);
    while code.is_none() {
        match tokio::time::timeout(WAIT, stream.next()).await.expect("closed in time") {
            Some(Ok(Message::Binary(bytes))) => {
                if let ServerMsg::Error { message } = ServerMsg::decode(&bytes).unwrap() {
                    error = message;
                }
            }
            Some(Ok(Message::Close(frame))) => code = Some(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            other => panic!("ended without a close: {other:?}"),
        }
    }
    sender.abort();
    assert_eq!(code, Some(Some(4005)), "{error}");
    assert!(error.contains("slow down"), "{error}");
    assert_eq!(metric(&server, "doc_server_flood_closes_total").await, 1.0);
    // The honest writer on the same document never noticed.
    let change = honest.doc.insert_text("title", 0, "still here").unwrap();
    honest.queue(change);
    honest.settle().await.unwrap();
    assert!(honest.rejected.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_over_its_rate_is_coalesced_and_the_latest_position_arrives() {
    const UPDATES: usize = 200;
    let dir = common::tmp_dir("limits-presence");
    let server = Server::start(&dir, &["--presence-per-second", "5"]);
    let mut alice = Client::new("alice");
    let mut bob = Client::new("bob");
    alice.connect(server.addr, "cursors").await.unwrap();
    let typed = alice.doc.insert_text("body", 0, "some text to point into").unwrap();
    alice.queue(typed);
    alice.settle().await.unwrap();
    bob.connect(server.addr, "cursors").await.unwrap();
    let anchors: Vec<Anchor> = {
        let rga = alice.doc.rga("body").unwrap();
        (0..20).map(|pos| rga.anchor_at(pos)).collect()
    };
    for i in 0..UPDATES {
        let field = if i + 1 == UPDATES { "last" } else { "body" };
        let selection = Selection { field: field.into(), anchor: anchors[i % 20], head: anchors[i % 20] };
        alice.send_presence(Some(selection)).await.unwrap();
    }
    let from_alice = alice.connection;
    let mut seen = 0;
    let mut last = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while last.as_deref() != Some("last") {
        match tokio::time::timeout_at(deadline, bob.next_event()).await.expect("the latest update in time") {
            Ok(Event::Presence(peer)) if peer.connection == from_alice => {
                seen += 1;
                last = peer.selection.map(|selection| selection.field);
            }
            Ok(Event::Closed(code)) => panic!("bob was closed ({code:?})"),
            Ok(_) => {}
            Err(error) => panic!("{error}"),
        }
    }
    eprintln!("{UPDATES} presence updates sent, {seen} forwarded");
    assert!(seen < UPDATES / 2, "{seen} of {UPDATES} forwarded at 5 a second");
    assert!(metric(&server, "doc_server_presence_coalesced_total").await > 0.0);
    assert!(alice.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_beyond_its_connections_gets_429_and_other_addresses_do_not() {
    let dir = common::tmp_dir("limits-address");
    let server = Server::start(&dir, &["--max-connections-per-address", "4"]);
    // Two WebSockets (they outlive the HTTP connection they were upgraded from) and two
    // connections that say nothing.
    let mut sockets = Vec::new();
    for name in ["one", "two"] {
        let mut client = Client::new(name);
        client.connect(server.addr, "held").await.unwrap();
        sockets.push(client);
    }
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The server counts a connection when it accepts it: wait until all four are counted.
    let deadline = Instant::now() + WAIT;
    let (status, body) = loop {
        let answer = get_from(Ipv4Addr::LOCALHOST, server.addr, "/healthz").await;
        if answer.0 == 429 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too many connections"), "{body}");
    assert_eq!(get_from(OTHER, server.addr, "/healthz").await.0, 200, "another address is not limited");
    assert!(metric(&server, "doc_server_address_refusals_total").await >= 1.0);
    // One closes: a new connection from the first address is served again.
    sockets.pop();
    let deadline = Instant::now() + WAIT;
    while get_from(Ipv4Addr::LOCALHOST, server.addr, "/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "the closed connection was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_creates_at_most_its_new_documents_a_minute() {
    let dir = common::tmp_dir("limits-new-docs");
    let server = Server::start(&dir, &["--new-documents-per-minute", "3"]);
    let mut clients = Vec::new();
    for id in ["new-1", "new-2", "new-3"] {
        let mut client = Client::new(id);
        client.connect(server.addr, id).await.unwrap();
        clients.push(client);
    }
    let (mut ws, _) = hello_from(Ipv4Addr::LOCALHOST, server.addr, &Document::new(ReplicaId::random()), "new-4").await;
    let (error, code) = welcomed(&mut ws).await.unwrap_err();
    assert_eq!(code, Some(4006), "{error}");
    assert!(error.contains("new documents"), "{error}");
    // Opening a document that exists is not creating one; another address has its own count.
    let (mut ws, _) = hello_from(Ipv4Addr::LOCALHOST, server.addr, &Document::new(ReplicaId::random()), "new-1").await;
    welcomed(&mut ws).await.unwrap();
    let (mut ws, _) = hello_from(OTHER, server.addr, &Document::new(ReplicaId::random()), "new-4").await;
    welcomed(&mut ws).await.unwrap();
    assert_eq!(metric(&server, "doc_server_new_document_refusals_total").await, 1.0);
    assert_eq!(metric(&server, "doc_server_open_documents").await, 4.0, "new-4 was never loaded for the refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_beyond_a_documents_limits_are_rejected_with_codes_7_8_and_9() {
    let dir = common::tmp_dir("limits-doc");
    let args = ["--max-fields", "3", "--max-field-name-bytes", "16", "--max-text-chars", "20"];
    let server = Server::start(&dir, &args);
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "bounded").await.unwrap();
    let edits = [
        alice.doc.insert_text("body", 0, "fifteen letters").unwrap(),
        alice.doc.increment("likes", 1),
        alice.doc.add_to_set("tags", "x".into()),
    ];
    for change in edits {
        alice.queue(change);
    }
    alice.settle().await.unwrap();
    assert!(alice.rejected.is_empty(), "{:?}", alice.rejected);
    let before = server.get("/docs/bounded").await.2;
    // Each refused change comes from a client of its own: a refused change is gone for good,
    // and whatever its replica made after it could never be accepted.
    type Edit = fn(&mut Document) -> crdt_core::Change;
    let attempts: [(&str, Edit, u16); 3] = [
        ("fourth field", |doc| doc.set_register("title", "one field too many".into()), reject::TOO_MANY_FIELDS),
        ("long name", |doc| doc.increment("a-name-of-seventeen", 1), reject::FIELD_NAME_TOO_LONG),
        ("more text", |doc| doc.insert_text("body", 0, "six more").unwrap(), reject::TEXT_TOO_LARGE),
    ];
    for (name, edit, code) in attempts {
        let mut client = Client::new(name);
        client.connect(server.addr, "bounded").await.unwrap();
        let change = edit(&mut client.doc);
        client.queue(change);
        client.settle().await.unwrap();
        assert_eq!(client.rejected_codes, [code], "{name}: {:?}", client.rejected);
        assert!(client.is_connected(), "a rejected batch does not close the connection");
    }
    assert_eq!(server.get("/docs/bounded").await.2, before, "nothing of the refused batches applied");
    assert_eq!(metric(&server, "doc_server_limit_rejections_total").await, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_an_invalid_change_is_refused_without_reloading_the_document() {
    let dir = common::tmp_dir("limits-validate");
    let server = Server::start(&dir, &[]);
    let mut alice = Client::new("alice");
    alice.connect(server.addr, "checked").await.unwrap();
    let typed = alice.doc.insert_text("body", 0, "kept").unwrap();
    alice.queue(typed);
    alice.settle().await.unwrap();
    let mut mallory = Client::new("mallory");
    mallory.connect(server.addr, "checked").await.unwrap();
    let valid = mallory.doc.insert_text("body", 0, "never ").unwrap();
    let mut invalid = mallory.doc.delete_text("body", 0, 1).unwrap().unwrap();
    let Op::Text(RgaOp::Delete { ranges }) = &mut invalid.ops[0].op else { panic!("a delete") };
    ranges[0].start.counter += 1000;
    mallory.send_batch(vec![valid, invalid]).await.unwrap();
    mallory.pump_until(WAIT, |c| c.inflight() == 0).await.unwrap();
    assert_eq!(mallory.rejected_codes, [reject::DOES_NOT_FIT], "{:?}", mallory.rejected);
    assert!(mallory.rejected[0].starts_with("change 1 does not fit"), "{:?}", mallory.rejected);
    assert_eq!(metric(&server, "doc_server_document_rebuilds_total").await, 0.0, "checked, not reloaded");
    let value: serde_json::Value = serde_json::from_slice(&server.get("/docs/checked").await.2).unwrap();
    assert_eq!(value["body"], "kept", "the valid first change was not applied either");
}

/// CPU time (user + system) the process has used, from `/proc/<pid>/stat`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_files_limit_is_raised_and_running_out_pauses_accepting() {
    let dir = common::tmp_dir("limits-nofile");
    // A soft limit of 64 under a hard limit of 128: the server raises itself to 128.
    let wrapper = ["prlimit", "--nofile=64:128", "--"];
    let args = ["--open", "--max-connections-per-address", "0"];
    let server = Server::start_wrapped(&dir, &wrapper, &args, "info,doc_server=debug");
    assert_eq!(metric(&server, "doc_server_open_files_limit").await, 128.0);
    // Hold more connections than the process may have descriptors.
    let mut held = Vec::new();
    for _ in 0..160 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let deadline = Instant::now() + WAIT;
    let accept_errors = |log: String| log.matches("accept failed").count();
    while accept_errors(server.log_text()) == 0 {
        assert!(Instant::now() < deadline, "accepting never ran out of descriptors");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Out of descriptors, the loop pauses between tries instead of spinning on a core, and
    // logs the failures at most once a second.
    let (ticks, logged) = (cpu_ticks(server.pid()), accept_errors(server.log_text()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(server.pid()) - ticks;
    assert!(used < 50, "the server used {used} ticks of CPU in 2 s while out of descriptors");
    let more = accept_errors(server.log_text()) - logged;
    assert!((1..=3).contains(&more), "{more} accept failures logged in 2 s");
    drop(held);
    // Once the connections close it serves again.
    let deadline = Instant::now() + WAIT;
    while get_from(OTHER, server.addr, "/healthz").await.0 != 200 {
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&server, "doc_server_accept_errors_total").await > 0.0);
}

//! The fallback transport against the real binary (PROTOCOL.md section 1a): a client speaking
//! Server-Sent Events plus POSTs gets its welcome, acks after commit, the others' changes (and
//! they its own), resumes from its version on a new session, is kept alive by answering pings
//! and closed when it does not, and meets the same token check and message limit as a
//! WebSocket. `--no-websocket` answers upgrades 403.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::server::{http_get, tmp_dir, Server};
use common::WAIT;
use crdt_core::protocol::{
    AckStatus, AuthorSecret, Catchup, ClientMsg, ServerMsg, UserInfo, WireNames, PROTOCOL_VERSION,
};
use crdt_core::{Document, ReplicaId};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One fallback session: the event stream, read by hand (HTTP/1.1, chunked), and POSTs.
struct Fallback {
    addr: SocketAddr,
    doc_id: String,
    stream: BufReader<TcpStream>,
    /// Event-stream text read but not yet split into events.
    pending: String,
    session: String,
    names: WireNames,
}

/// One event of the stream.
#[derive(Debug, PartialEq)]
enum Event {
    Frame(ServerMsg),
    Ping,
    Close(u16),
    /// The stream ended.
    End,
}

impl Fallback {
    async fn open(addr: SocketAddr, doc_id: &str) -> Fallback {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET /ws/{doc_id}/sse HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send request");
        let mut stream = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.expect("read headers");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
        assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
        let mut fallback = Fallback {
            addr,
            doc_id: doc_id.to_owned(),
            stream,
            pending: String::new(),
            session: String::new(),
            names: WireNames::new(),
        };
        let (name, data) = fallback.raw_event().await.expect("the session event");
        assert_eq!(name, "session");
        assert_eq!(data.len(), 32, "128 random bits in hex: {data}");
        fallback.session = data;
        fallback
    }

    /// The next `event:`/`data:` block, or `None` at the end of the stream.
    async fn raw_event(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                return Some((name, data));
            }
            // One chunk: its size in hex, then the bytes, then CRLF.
            let mut size = String::new();
            self.stream.read_line(&mut size).await.ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            if size == 0 {
                return None;
            }
            let mut chunk = vec![0; size + 2];
            self.stream.read_exact(&mut chunk).await.ok()?;
            chunk.truncate(size);
            self.pending.push_str(&String::from_utf8(chunk).expect("event streams are text"));
        }
    }

    async fn next(&mut self) -> Event {
        let event = tokio::time::timeout(WAIT, self.raw_event()).await.expect("an event in time");
        match event {
            None => Event::End,
            Some((name, data)) => match name.as_str() {
                "message" => {
                    let bytes = STANDARD.decode(data).expect("base64");
                    Event::Frame(ServerMsg::decode(&bytes).expect("a server frame"))
                }
                "ping" => Event::Ping,
                "close" => Event::Close(data.split(' ').next().and_then(|code| code.parse().ok()).expect("a code")),
                other => panic!("unexpected event {other}"),
            },
        }
    }

    /// The close code that ends the session, skipping the frames before it (its `Error`).
    async fn closed(&mut self) -> u16 {
        loop {
            match self.next().await {
                Event::Close(code) => return code,
                Event::End => panic!("the stream ended without a close event"),
                _ => {}
            }
        }
    }

    /// The next frame, answering pings on the way.
    async fn frame(&mut self) -> ServerMsg {
        loop {
            match self.next().await {
                Event::Frame(message) => return message,
                Event::Ping => assert_eq!(self.post(&[]).await, 204),
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// POSTs `frames` (each length-prefixed); returns the status code.
    async fn post(&self, frames: &[Vec<u8>]) -> u16 {
        let mut body = Vec::new();
        for frame in frames {
            body.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            body.extend_from_slice(frame);
        }
        post(self.addr, &format!("/ws/{}/sse/{}", self.doc_id, self.session), &body).await
    }

    async fn send(&mut self, message: &ClientMsg) -> u16 {
        let frame = message.encode_on(&mut self.names);
        self.post(&[frame]).await
    }
}

/// A POST of `body`; returns the status code.
async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    // A body the server refuses may be cut short by its answer.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.expect("answer in time");
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).and_then(|code| code.parse().ok()).expect("status code")
}

fn hello(doc: &Document, author: AuthorSecret, token: &str) -> ClientMsg {
    ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica: doc.replica(),
        author,
        version: doc.version().clone(),
        user: UserInfo { name: "fallback".into(), color: "#123456".into() },
        token: token.to_owned(),
    }
}

#[tokio::test]
async fn a_fallback_client_gets_acks_broadcasts_and_resumes_from_its_version() {
    let dir = tmp_dir("fallback-sync");
    let server = Server::start(&dir, &["--no-websocket", "--heartbeat-interval", "300ms"]);
    let addr = server.addr;
    let author = AuthorSecret::random();
    let mut doc = Document::new(ReplicaId::random());

    // A second fallback client sees what the first sends.
    let mut other = Fallback::open(addr, "shared").await;
    let other_doc = Document::new(ReplicaId::random());
    assert_eq!(other.send(&hello(&other_doc, AuthorSecret::random(), "")).await, 204);
    assert!(matches!(other.frame().await, ServerMsg::Welcome { .. }));

    let mut fallback = Fallback::open(addr, "shared").await;
    assert_eq!(fallback.send(&hello(&doc, author, "")).await, 204);
    let ServerMsg::Welcome { version, .. } = fallback.frame().await else { panic!("welcome first") };
    assert!(version.is_empty());
    // The other one hears of the newcomer.
    assert!(matches!(other.frame().await, ServerMsg::Presence(_)));

    // Two batches in one POST: both acknowledged (the later ack may cover both), in order.
    let first = doc.insert_text("body", 0, "hello").unwrap();
    let second = doc.insert_text("body", 5, " world").unwrap();
    let frames = vec![
        ClientMsg::Changes { seq: 1, changes: vec![first] }.encode_on(&mut fallback.names),
        ClientMsg::Changes { seq: 2, changes: vec![second] }.encode_on(&mut fallback.names),
    ];
    assert_eq!(fallback.post(&frames).await, 204);
    let mut acked = 0;
    while acked < 2 {
        match fallback.frame().await {
            ServerMsg::Ack { seq, status: AckStatus::Applied, hash, .. } => {
                acked = seq;
                if seq == 2 {
                    assert_eq!(hash, doc.state_hash(), "the same state as the server");
                }
            }
            // Those already in the document follow the welcome.
            ServerMsg::Presence(_) => {}
            other => panic!("expected acks, got {other:?}"),
        }
    }
    let (status, _, body) = http_get(addr, "/docs/shared").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("hello world"), "acknowledged means stored");
    let mut seen = String::new();
    let mut mirror = Document::new(ReplicaId::random());
    while !seen.contains("hello world") {
        if let ServerMsg::Relay { changes, .. } = other.frame().await {
            for change in changes {
                mirror.apply_change(change).unwrap();
            }
            seen = mirror.text("body").unwrap_or_default();
        }
    }

    // A WebSocket client is refused (403); the fallback sessions go on. Its change, made by a
    // client over the fallback too, reaches the first.
    assert!(common::client::connect_ws(addr, "shared").await.unwrap_err().contains("403"));
    let theirs = mirror.insert_text("body", 0, ">> ").unwrap();
    let mut names = std::mem::take(&mut other.names);
    let frame = ClientMsg::Changes { seq: 1, changes: vec![theirs] }.encode_on(&mut names);
    other.names = names;
    // `other` wrote its hello as `other_doc`'s replica; it writes as `mirror`'s, which its
    // author secret registers now (a new replica of the same connection).
    assert_eq!(other.post(&[frame]).await, 204);
    loop {
        if let ServerMsg::Relay { changes, .. } = fallback.frame().await {
            for change in changes {
                doc.apply_change(change).unwrap();
            }
            break;
        }
    }
    assert_eq!(doc.text("body").as_deref(), Some(">> hello world"));

    // Resume: the first client goes away; edits happen meanwhile; a new session with its
    // version gets exactly what it lacks.
    drop(fallback);
    let more = mirror.insert_text("body", mirror.text("body").unwrap().chars().count(), "!").unwrap();
    let frame = ClientMsg::Changes { seq: 2, changes: vec![more] }.encode_on(&mut other.names);
    assert_eq!(other.post(&[frame]).await, 204);
    while !matches!(other.frame().await, ServerMsg::Ack { seq: 2, .. }) {}
    let mut fallback = Fallback::open(addr, "shared").await;
    assert_eq!(fallback.send(&hello(&doc, author, "")).await, 204);
    let ServerMsg::Welcome { catchup: Catchup::Changes(missing), .. } = fallback.frame().await else {
        panic!("a welcome with the changes it lacks")
    };
    assert_eq!(missing.len(), 1, "only the change made while it was away");
    for change in missing {
        doc.apply_change(change).unwrap();
    }
    assert_eq!(doc.text("body").as_deref(), Some(">> hello world!"));
}

#[tokio::test]
async fn heartbeats_keep_a_session_that_answers_and_close_one_that_does_not() {
    let dir = tmp_dir("fallback-heartbeat");
    let server = Server::start(&dir, &["--heartbeat-interval", "200ms"]);
    let doc = Document::new(ReplicaId::random());

    let mut answering = Fallback::open(server.addr, "beat").await;
    assert_eq!(answering.send(&hello(&doc, AuthorSecret::random(), "")).await, 204);
    assert!(matches!(answering.frame().await, ServerMsg::Welcome { .. }));
    let mut silent = Fallback::open(server.addr, "beat").await;
    let silent_doc = Document::new(ReplicaId::random());
    assert_eq!(silent.send(&hello(&silent_doc, AuthorSecret::random(), "")).await, 204);

    // Meanwhile the answering one answers every ping, and stays (more than ten intervals).
    let answer = async {
        let until = tokio::time::Instant::now() + Duration::from_millis(2500);
        let mut pings = 0;
        while tokio::time::Instant::now() < until {
            match tokio::time::timeout(Duration::from_millis(300), answering.next()).await {
                Ok(Event::Ping) => {
                    assert_eq!(answering.post(&[]).await, 204);
                    pings += 1;
                }
                Ok(Event::Frame(_)) | Err(_) => {}
                Ok(other) => panic!("the answering session ended: {other:?}"),
            }
        }
        pings
    };
    // The silent one never answers a ping: closed with 4001 within two intervals or so.
    let silence = async {
        let started = tokio::time::Instant::now();
        assert_eq!(silent.closed().await, 4001);
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(silent.next().await, Event::End);
        // The session is forgotten once its goodbye is over (a second at most).
        let mut status = 0;
        for _ in 0..30 {
            status = silent.post(&[]).await;
            if status == 404 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 404, "the session is gone");
    };
    let (pings, ()) = tokio::join!(answer, silence);
    assert!(pings >= 8, "pinged every 200 ms: {pings}");
}

#[tokio::test]
async fn the_fallback_checks_tokens_and_the_message_limit_like_a_websocket() {
    let dir = tmp_dir("fallback-limits");
    let server = Server::start_exactly(&dir, &["--max-message-bytes", "4096"], "info,doc_server=debug");
    let doc = Document::new(ReplicaId::random());

    // No token: closed with 4003, as a WebSocket hello would be.
    let mut refused = Fallback::open(server.addr, "guarded").await;
    assert_eq!(refused.send(&hello(&doc, AuthorSecret::random(), "")).await, 204);
    assert_eq!(refused.closed().await, 4003);

    // A frame above the limit: 413, and the session closes with 1009.
    let mut big = Fallback::open(server.addr, "guarded").await;
    assert_eq!(big.post(&[vec![0; 5000]]).await, 413);
    assert_eq!(big.closed().await, 1009);

    // A POST to a session that does not exist, or of another document: 404.
    let session = Fallback::open(server.addr, "guarded").await;
    assert_eq!(post(server.addr, &format!("/ws/other/sse/{}", session.session), &[]).await, 404);
    assert_eq!(post(server.addr, "/ws/guarded/sse/00112233445566778899aabbccddeeff", &[]).await, 404);
    // Malformed framing reaches the decoder, which refuses it (1007).
    let mut garbled = session;
    assert_eq!(post(server.addr, &format!("/ws/guarded/sse/{}", garbled.session), &[0, 0, 0, 9, 1]).await, 204);
    assert_eq!(garbled.closed().await, 1007);
}

#[tokio::test]
async fn the_rate_limits_slow_a_fallback_client_down_by_answering_its_posts_later() {
    let dir = tmp_dir("fallback-rate");
    // 20 changes a second, 100 at once.
    let server = Server::start(&dir, &["--changes-per-second", "20"]);
    let mut doc = Document::new(ReplicaId::random());
    let mut fallback = Fallback::open(server.addr, "rated").await;
    assert_eq!(fallback.send(&hello(&doc, AuthorSecret::random(), "")).await, 204);
    assert!(matches!(fallback.frame().await, ServerMsg::Welcome { .. }));

    // 150 batches of one change in one POST: the session takes 100 at once, then 20 a second;
    // the POST is answered once all are handed over (16 may wait in the session's inbox).
    let frames: Vec<Vec<u8>> = (0..150u64)
        .map(|seq| {
            let change = doc.insert_text("body", seq as usize, "x").unwrap();
            ClientMsg::Changes { seq: seq + 1, changes: vec![change] }.encode_on(&mut fallback.names)
        })
        .collect();
    let started = tokio::time::Instant::now();
    assert_eq!(fallback.post(&frames).await, 204);
    let waited = started.elapsed();
    assert!(waited > Duration::from_millis(1000), "throttled: answered after {waited:?}");
    loop {
        if let ServerMsg::Ack { seq: 150, status, .. } = fallback.frame().await {
            assert_eq!(status, AckStatus::Applied);
            break;
        }
    }
    assert!(server.metric("doc_server_throttled_messages_total").await > 0.0);
}

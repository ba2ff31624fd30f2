//! What the real binary writes to its data directory while one person types a long document, and
//! how fast that document loads again after `kill -9` (issue 17, must-show 4). A measurement,
//! not a check that runs with the others:
//!
//! ```sh
//! cargo test -p doc-server --release --test writes -- --ignored --nocapture
//! ```
//!
//! The client replays automerge-paper (from `../shared/traces` or `$TRACES_DIR`) through the
//! WebSocket, one change per patch and one `Changes` batch per keystroke (`BATCH` changes per
//! batch if set), all sent at once as the page sends keystrokes (`WINDOW=n`: at most n batches
//! unacknowledged; `SERVER_ARGS` passes arguments to the server). Written bytes are `write_bytes` of `/proc/<pid>/io`: every page of the
//! page cache the server dirtied, from its start to the kill, which is what reaches the disk
//! (ext4's journal, written by the kernel's own thread, is not in it). `wchar`, the bytes the
//! server passed to `write`, is printed beside it. The load time is the server's own
//! (`doc_server_load_seconds`: snapshot read, decoded, log suffix replayed).
//!
//! Then the same with 500 page opens: a fresh replica and a new connection per 1/500 of the
//! trace, each waiting for its acknowledgements before the page is closed (`OPENS=1` or
//! `OPENS=500` runs one of the two).

mod common;

use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client::connect_ws, Server};
use crdt_core::protocol::WireNames;
use crdt_core::protocol::{AckStatus, AuthorSecret, Catchup, ClientMsg, ServerMsg, UserInfo, PROTOCOL_VERSION};
use crdt_core::{codec, Change, Document, ReplicaId};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

const TRACE: &str = "automerge-paper";
const FIELD: &str = "body";
/// The issue's bounds.
const MAX_WRITTEN_RATIO: f64 = 20.0;
const MAX_LOAD: Duration = Duration::from_millis(20);

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTrace {
    end_content: String,
    txns: Vec<RawTxn>,
}

#[derive(serde::Deserialize)]
struct RawTxn {
    patches: Vec<(usize, usize, String)>,
}

/// The patches of the trace (positions in characters) and its final text.
fn load_trace() -> (Vec<(usize, usize, String)>, String) {
    let dir = std::env::var_os("TRACES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces"));
    let path = dir.join(format!("{TRACE}.json.gz"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e} (set TRACES_DIR)", path.display()));
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(file).read_to_end(&mut json).expect("gunzip the trace");
    let raw: RawTrace = serde_json::from_slice(&json).expect("a sequential trace");
    (raw.txns.into_iter().flat_map(|txn| txn.patches).collect(), raw.end_content)
}

/// The changes of one typist, one per patch, grouped by page open (a fresh replica each).
fn type_trace(patches: &[(usize, usize, String)], opens: usize) -> (Vec<Vec<Change>>, Document) {
    let mut doc = Document::new(ReplicaId::random());
    let mut pages = Vec::with_capacity(opens);
    let n = patches.len();
    for page in 0..opens {
        if page > 0 {
            doc.set_replica(ReplicaId::random());
        }
        let mut changes = Vec::new();
        for (pos, del, ins) in &patches[page * n / opens..(page + 1) * n / opens] {
            let change = doc
                .transact(|tx| {
                    if *del > 0 {
                        tx.delete_text(FIELD, *pos, *del)?;
                    }
                    if !ins.is_empty() {
                        tx.insert_text(FIELD, *pos, ins)?;
                    }
                    Ok(())
                })
                .expect("the trace's patches are in bounds");
            changes.extend(change);
        }
        pages.push(changes);
    }
    (pages, doc)
}

/// Extra arguments for the server (`SERVER_ARGS`, split at spaces), e.g. `--snapshot-every 1000`.
/// The change and byte rates are off: the trace is replayed as fast as the server takes it.
fn server_args() -> Vec<String> {
    let args = std::env::var("SERVER_ARGS").unwrap_or_default();
    let unlimited = "--changes-per-second 0 --bytes-per-second 0";
    unlimited.split_whitespace().chain(args.split_whitespace()).map(str::to_owned).collect()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Opens one page: hello as `doc`'s replica at `doc`'s version, then every change of `changes`
/// in batches of `batch`, at most `window` unacknowledged; returns once all are acknowledged.
async fn open_page(server: &Server, doc: &Document, changes: &[Change], batch: usize, window: usize) {
    let mut ws = connect_ws(server.addr, "paper").await.expect("connect");
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica: doc.replica(),
        author: AuthorSecret::random(),
        version: doc.version().clone(),
        user: UserInfo { name: "typist".into(), color: "#3366cc".into() },
        token: String::new(),
    };
    // Names (replica ids, field names) are given once per connection, as the real client does.
    let mut names = WireNames::new();
    ws.send(Message::Binary(hello.encode_on(&mut names).into())).await.expect("send hello");
    let frames: VecDeque<Vec<u8>> = changes
        .chunks(batch)
        .enumerate()
        .map(|(i, chunk)| ClientMsg::Changes { seq: i as u64 + 1, changes: chunk.to_vec() }.encode_on(&mut names))
        .collect();
    let total = frames.len();
    let (mut sink, mut stream) = ws.split();
    // No window (0): every batch is sent at once, as the page sends keystrokes.
    let slots = Arc::new(Semaphore::new(if window == 0 { Semaphore::MAX_PERMITS / 2 } else { window }));
    let reader = {
        let slots = Arc::clone(&slots);
        tokio::spawn(async move {
            let mut acked = 0;
            while acked < total {
                let bytes = match stream.next().await {
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("connection ended after {acked} acks: {other:?}"),
                };
                match ServerMsg::decode(&bytes).expect("a server frame") {
                    ServerMsg::Ack { seq, status, .. } => {
                        // An ack acknowledges every batch up to its seq.
                        assert_eq!(status, AckStatus::Applied);
                        let seq = seq as usize;
                        assert!(seq > acked && seq <= total, "ack {seq} after {acked} of {total}");
                        slots.add_permits(seq - acked);
                        acked = seq;
                    }
                    ServerMsg::Welcome { catchup, .. } => {
                        assert!(matches!(catchup, Catchup::Changes(ref c) if c.is_empty()), "nothing to catch up")
                    }
                    ServerMsg::Error { message } => panic!("server error: {message}"),
                    _ => {}
                }
            }
            stream
        })
    };
    for frame in frames {
        slots.acquire().await.expect("open semaphore").forget();
        sink.send(Message::Binary(frame.into())).await.expect("send a batch");
    }
    let stream = reader.await.expect("reader");
    let mut ws = sink.reunite(stream).expect("same socket");
    let _ = ws.close(None).await;
}

/// Kills the server, restarts it on the same data and opens the document as a new replica;
/// returns the server's load time and the welcome's time, after checking the text.
async fn reload(server: &mut Server, dir: &std::path::Path, end: &str) -> (Server, Duration, Duration) {
    server.kill();
    let args = server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The load's own log line says how many changes it replayed from the log.
    let restarted = Server::start_logging(dir, &args, "warn,doc_server::doc_actor=info");
    let started = Instant::now();
    let mut ws = connect_ws(restarted.addr, "paper").await.expect("connect");
    let replica = ReplicaId::random();
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica,
        author: AuthorSecret::random(),
        version: Default::default(),
        user: UserInfo { name: "reader".into(), color: "#cc3366".into() },
        token: String::new(),
    };
    ws.send(Message::Binary(hello.encode().into())).await.expect("send hello");
    let welcome = loop {
        if let Some(Ok(Message::Binary(bytes))) = ws.next().await {
            break ServerMsg::decode(&bytes).expect("a server frame");
        }
    };
    let welcomed = started.elapsed();
    let ServerMsg::Welcome { catchup, .. } = welcome else { panic!("expected Welcome") };
    let mut doc = Document::new(replica);
    match catchup {
        Catchup::Snapshot(bytes) => doc.merge(&codec::decode_snapshot(&bytes, replica).expect("snapshot")),
        Catchup::Changes(changes) => {
            for change in changes {
                doc.apply_change(change).expect("a catch-up change");
            }
        }
    }
    assert_eq!(doc.text(FIELD).as_deref(), Some(end), "the reloaded text");
    let _ = ws.close(None).await;
    let load = Duration::from_secs_f64(restarted.metric("doc_server_load_seconds_sum").await);
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    if let Some(line) = log.lines().rev().find(|line| line.contains("document loaded")) {
        println!("  {}", line.split_once("document loaded").map_or(line, |(_, rest)| rest).trim());
    }
    (restarted, load, welcomed)
}

async fn measure(opens: usize) -> bool {
    let (patches, end) = load_trace();
    let (pages, typed) = type_trace(&patches, opens);
    assert_eq!(typed.text(FIELD).as_deref(), Some(end.as_str()));
    let compact = codec::encode_snapshot(&typed).len();
    let batch = env_usize("BATCH", 1);
    let window = env_usize("WINDOW", 0);
    let changes: usize = pages.iter().map(Vec::len).sum();

    let dir = common::tmp_dir(&format!("writes-{opens}"));
    let args = server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start_logging(&dir, &args, "warn");
    let mut doc = Document::new(typed.replica());
    let started = Instant::now();
    for page in &pages {
        if let Some(first) = page.first() {
            doc.set_replica(first.replica);
        }
        open_page(&server, &doc, page, batch, window).await;
        for change in page {
            doc.apply_change(change.clone()).expect("own change");
        }
    }
    let typing = started.elapsed();
    let metric = |name: &'static str| {
        let server = &server;
        async move { server.metric(name).await }
    };
    let (log_bytes, snapshot_bytes) =
        (metric("doc_server_log_bytes_total").await, metric("doc_server_snapshot_bytes_total").await);
    let commits = metric("doc_server_commit_latency_seconds_count").await;
    let snapshots = metric("doc_server_snapshots_written_total").await;
    let written = server.io("write_bytes");
    let wchar = server.io("wchar");
    let on_disk: u64 = std::fs::read_dir(dir.join("data"))
        .expect("data dir")
        .flatten()
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();

    // The history view's first look (issue 22): the outline, then the text at its last point.
    let started = Instant::now();
    let (status, _, outline) = server.get("/docs/paper/history").await;
    let outline_time = started.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&outline));
    let outline: serde_json::Value = serde_json::from_slice(&outline).expect("the outline");
    let points = outline["points"].as_array().expect("points").clone();
    assert!(outline["last"]["passages"].is_array(), "the outline brings the last version");
    let last = points.last().and_then(|p| p["upto"].as_u64()).unwrap_or(0);
    let started = Instant::now();
    let (status, _, passages) = server.get(&format!("/docs/paper/history/{last}")).await;
    let version_time = started.elapsed();
    assert_eq!(status, 200);
    let version: serde_json::Value = serde_json::from_slice(&passages).expect("a version");
    let text: String =
        version["passages"].as_array().expect("passages").iter().filter_map(|p| p["text"].as_str()).collect();
    assert_eq!(text, end, "the last version is the text");

    let mut loads = Vec::new();
    for _ in 0..3 {
        let (restarted, load, welcomed) = reload(&mut server, &dir, &end).await;
        loads.push((load, welcomed));
        server = restarted;
    }
    server.kill();

    let ratio = written as f64 / compact as f64;
    let load = loads.iter().map(|(load, _)| *load).min().unwrap_or_default();
    println!("{TRACE}, {opens} page open(s), {changes} changes in batches of {batch}, window {window}:");
    println!(
        "  typed in {:.2} s ({:.0} changes/s acknowledged), {commits} commits, {snapshots} snapshots",
        typing.as_secs_f64(),
        changes as f64 / typing.as_secs_f64()
    );
    println!("  final compact encoding (encode_snapshot): {compact} bytes");
    println!(
        "  written to the data dir (write_bytes): {written} bytes = {ratio:.1}x the compact encoding (bound {MAX_WRITTEN_RATIO}x)"
    );
    println!(
        "  handed to write(): {wchar} bytes; log entries {log_bytes} + snapshots {snapshot_bytes} bytes; files at the kill {on_disk} bytes"
    );
    println!(
        "  history view: outline of {} points with the last version {:.0} ms; a version alone {:.0} ms ({:.0} ms together)",
        points.len(),
        outline_time.as_secs_f64() * 1e3,
        version_time.as_secs_f64() * 1e3,
        (outline_time + version_time).as_secs_f64() * 1e3
    );
    for (i, (load, welcomed)) in loads.iter().enumerate() {
        println!(
            "  reload {} after kill -9: load {:.2} ms, connect to Welcome {:.2} ms",
            i + 1,
            load.as_secs_f64() * 1e3,
            welcomed.as_secs_f64() * 1e3
        );
    }
    ratio <= MAX_WRITTEN_RATIO && load <= MAX_LOAD
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: cargo test -p doc-server --release --test writes -- --ignored --nocapture"]
async fn typing_automerge_paper_writes_little_and_reloads_fast() {
    let opens = std::env::var("OPENS").unwrap_or_else(|_| "1,500".into());
    let mut met = true;
    for opens in opens.split(',').filter_map(|n| n.trim().parse().ok()) {
        met &= measure(opens).await;
    }
    assert!(met, "a bound of issue 17 (must-show 4) is not met: see the figures above");
}

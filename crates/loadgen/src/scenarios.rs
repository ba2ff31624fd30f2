//! The measurements of issue 20 beyond steady typing, each against a fresh server process of
//! each kind, the same way:
//!
//! - **idle**: N connections over M documents, each through its handshake and then only
//!   answering pings; the server's anonymous resident memory per connection (`RssAnon` with
//!   them minus before them, ÷ N).
//! - **big**: the typing shape on documents that already hold 1 MB of text, beside the same
//!   shape on empty ones (run by [`crate::run::run_preloaded`]); the cost of a commit must not
//!   grow with the document.
//! - **join**: a long trace (automerge-paper) loaded into one document by one client, in
//!   batches; then J clients join at once, each timed until its copy holds the whole text; the
//!   server's memory with the document loaded (beside the document's compact size), per
//!   joined connection, and after everyone left and the document was unloaded.
//! - **burst**: one writer sends K single-keystroke messages as fast as its socket takes
//!   them, without waiting for anything, while an observer reads the same document; neither
//!   may be closed, the observer must see every keystroke and the writer's acks must arrive.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crdt_core::protocol::{AckStatus, ClientMsg, ServerMsg};
use crdt_core::{codec, Change};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Text, Transact};

use crate::client::{next_binary, Incoming, Protocol, Ws};
use crate::ours::Ours;
use crate::server::{status_kib, Programs, ServerProcess, Target};
use crate::typist::Typist;
use crate::yjs::Yjs;

mod table;

pub use table::{scenarios, ScenarioPlan};

/// What the scenarios measure (flags of `loadgen scenarios`).
#[derive(Clone, Debug)]
pub struct Scenarios {
    /// Idle connections.
    pub idle: usize,
    /// Documents they spread over.
    pub idle_docs: usize,
    /// The trace loaded for the join scenario (`None`: skipped).
    pub trace: Option<PathBuf>,
    /// Clients joining it at once.
    pub joiners: usize,
    /// Keystrokes of the burst.
    pub burst: usize,
    /// Runs of each side of the big-document comparison (medians).
    pub big_runs: usize,
}

/// Connections opened at once.
const CONNECTING_AT_ONCE: usize = 64;

/// Anonymous resident memory of a process in KiB (its heap and stacks: what connections and
/// documents cost; not the pages of its program and libraries, which the first use of a code
/// path maps in for good), after a pause for it to settle.
async fn rss_after(pid: Option<u32>, pause: Duration) -> Option<u64> {
    tokio::time::sleep(pause).await;
    status_kib(pid, "RssAnon")
}

/// Connects one client of `target` to `doc` and completes its handshake.
async fn connect(target: Target, addr: &str, doc: &str) -> Result<(Ws, Box<dyn Protocol>), String> {
    Ok(match target {
        Target::Ours => {
            let (ws, ours) = Ours::connect(addr, doc, "scenario").await?;
            (ws, Box::new(ours))
        }
        Target::Yjs => {
            let (ws, yjs) = Yjs::connect(addr, doc).await?;
            (ws, Box::new(yjs))
        }
    })
}

/// Reads (and so answers pings) until `stop`; returns why the connection ended early, if it did.
async fn hold(mut ws: Ws, stop: CancellationToken) -> Option<String> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return None;
            }
            message = ws.next() => match message {
                None => return Some("connection ended".into()),
                Some(Err(e)) => return Some(format!("read: {e}")),
                Some(Ok(WsMessage::Close(frame))) => return Some(format!("closed: {frame:?}")),
                Some(Ok(_)) => {}
            }
        }
    }
}

/// The idle scenario's result.
#[derive(Clone, Debug)]
pub struct IdleReport {
    pub connections: usize,
    pub before_kib: u64,
    pub with_kib: u64,
    pub closed: usize,
}

impl IdleReport {
    /// Resident bytes per connection.
    pub fn per_connection(&self) -> f64 {
        (self.with_kib.saturating_sub(self.before_kib)) as f64 * 1024.0 / self.connections.max(1) as f64
    }
}

/// Opens `connections` idle connections over `docs` documents and measures the server's memory.
pub async fn idle(target: Target, programs: &Programs, connections: usize, docs: usize) -> Result<IdleReport, String> {
    let server = ServerProcess::start(target, programs)?;
    let pid = server.endpoint.pid;
    let before_kib = rss_after(pid, Duration::from_secs(1)).await.ok_or("no server memory")?;
    let permits = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let stop = CancellationToken::new();
    let mut connecting = JoinSet::new();
    for client in 0..connections {
        let permits = Arc::clone(&permits);
        let addr = server.endpoint.addr.clone();
        let doc = format!("idle-d{}", client % docs.max(1));
        connecting.spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let (ws, _protocol) = connect(target, &addr, &doc).await?;
            Ok::<_, String>(ws)
        });
    }
    let mut holders = JoinSet::new();
    while let Some(joined) = connecting.join_next().await {
        let ws = joined.map_err(|e| format!("a connecting task failed: {e}"))??;
        holders.spawn(hold(ws, stop.clone()));
    }
    // Presence and awareness of the joins settle, then the memory is read.
    let with_kib = rss_after(pid, Duration::from_secs(3)).await.ok_or("no server memory")?;
    stop.cancel();
    let mut closed = 0;
    while let Some(joined) = holders.join_next().await {
        if joined.map_err(|e| e.to_string())?.is_some() {
            closed += 1;
        }
    }
    Ok(IdleReport { connections, before_kib, with_kib, closed })
}

/// A sequential editing trace, ASCII only (the `ascii_only` copies): positions are characters,
/// bytes and UTF-16 units alike.
pub struct Trace {
    pub name: String,
    /// `(pos, deleted, inserted)`.
    pub patches: Vec<(usize, usize, String)>,
    pub end: String,
}

impl Trace {
    /// Reads a `.json.gz` trace.
    pub fn load(path: &Path) -> Result<Trace, String> {
        let file = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(BufReader::new(file))
            .read_to_end(&mut json)
            .map_err(|e| format!("gunzip {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_slice(&json).map_err(|e| format!("{}: {e}", path.display()))?;
        let end = value["endContent"].as_str().ok_or("no endContent")?.to_owned();
        if !end.is_ascii() {
            return Err(format!("{} is not ASCII: use the ascii_only copy", path.display()));
        }
        let mut patches = Vec::new();
        for txn in value["txns"].as_array().ok_or("no txns")? {
            for patch in txn["patches"].as_array().ok_or("no patches")? {
                let field = |i: usize| patch.get(i).ok_or_else(|| format!("a short patch {patch}"));
                let pos = field(0)?.as_u64().ok_or("bad position")? as usize;
                let del = field(1)?.as_u64().ok_or("bad delete")? as usize;
                let ins = field(2)?.as_str().ok_or("bad insert")?.to_owned();
                patches.push((pos, del, ins));
            }
        }
        let name =
            path.file_name().map_or("trace".into(), |n| n.to_string_lossy().trim_end_matches(".json.gz").to_owned());
        Ok(Trace { name, patches, end })
    }
}

/// The join scenario's result.
#[derive(Clone, Debug)]
pub struct JoinReport {
    /// Loading the trace (batched), until the server had all of it.
    pub load: Duration,
    /// The document's compact size: doc-server's snapshot, Yjs's state as one update.
    pub compact_bytes: usize,
    pub baseline_kib: u64,
    /// With the document loaded and its loader connected.
    pub loaded_kib: u64,
    /// Each joiner's time to the whole text, sorted.
    pub joins: Vec<Duration>,
    /// With the joiners connected too.
    pub joined_kib: u64,
    /// After everyone left and (doc-server) the document was unloaded.
    pub after_kib: u64,
    /// After each of three more documents of the same trace was loaded and unloaded too.
    pub after_again_kib: Vec<u64>,
    pub joiners: usize,
}

/// Patches per batch while loading a text (doc-server: one message of that many changes;
/// Yjs: one transaction's update), and the most text one batch inserts.
const LOAD_BATCH: usize = 1000;
const LOAD_BATCH_BYTES: usize = 256 << 10;

/// `patches` in batches of at most [`LOAD_BATCH`] patches and about [`LOAD_BATCH_BYTES`].
fn batches(patches: &[(usize, usize, String)]) -> impl Iterator<Item = &[(usize, usize, String)]> {
    let mut rest = patches;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut take = 0;
        while take < rest.len() && take < LOAD_BATCH && (take == 0 || bytes + rest[take].2.len() <= LOAD_BATCH_BYTES) {
            bytes += rest[take].2.len();
            take += 1;
        }
        let (batch, after) = rest.split_at(take);
        rest = after;
        Some(batch)
    })
}

/// Applies `patches` to document `doc` as one client, in batches, and waits until the server
/// has them all; returns the connection (y-websocket keeps a document while someone is
/// connected) and the document's compact size.
pub async fn load_patches(
    target: Target,
    addr: &str,
    doc: &str,
    patches: &[(usize, usize, String)],
    end: &str,
) -> Result<(Ws, usize), String> {
    match target {
        Target::Ours => {
            let (mut ws, mut ours) = Ours::connect(addr, doc, "loader").await?;
            let mut seq = 0;
            for batch in batches(patches) {
                let mut changes: Vec<Change> = Vec::with_capacity(batch.len());
                for (pos, del, ins) in batch {
                    let document = ours.document_mut();
                    if *del > 0 {
                        changes.extend(document.delete_text("body", *pos, *del).map_err(|e| e.to_string())?);
                    }
                    if !ins.is_empty() {
                        changes.push(document.insert_text("body", *pos, ins).map_err(|e| e.to_string())?);
                    }
                }
                seq += 1;
                let frame = ours.encode(ClientMsg::Changes { seq, changes });
                ws.send(WsMessage::Binary(frame.into())).await.map_err(|e| format!("send: {e}"))?;
            }
            // Acks name the latest batch: wait for the last one.
            if seq > 0 {
                loop {
                    let frame = next_binary(&mut ws).await?;
                    match ServerMsg::decode(&frame).map_err(|e| e.to_string())? {
                        ServerMsg::Ack { seq: acked, status: AckStatus::Applied, .. } if acked == seq => break,
                        ServerMsg::Ack { status: AckStatus::Rejected { reason, .. }, .. } => {
                            return Err(format!("the text was refused: {reason}"))
                        }
                        _ => {}
                    }
                }
            }
            if ours.text() != end {
                return Err("the loader's text is not the expected one".into());
            }
            Ok((ws, codec::encode_snapshot(ours.document_mut()).len()))
        }
        Target::Yjs => {
            let (mut ws, mut yjs) = Yjs::connect(addr, doc).await?;
            let (ydoc, text) = yjs.parts();
            for batch in batches(patches) {
                let mut txn = ydoc.transact_mut();
                for (pos, del, ins) in batch {
                    if *del > 0 {
                        text.remove_range(&mut txn, *pos as u32, *del as u32);
                    }
                    if !ins.is_empty() {
                        text.insert(&mut txn, *pos as u32, ins);
                    }
                }
                let frame = Message::Sync(SyncMessage::Update(txn.encode_update_v1())).encode_v1();
                drop(txn);
                ws.send(WsMessage::Binary(frame.into())).await.map_err(|e| format!("send: {e}"))?;
            }
            // y-websocket handles a connection's messages in order: its answer to a step 1
            // sent now comes after every update above was applied.
            let step1 = Message::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1();
            ws.send(WsMessage::Binary(step1.into())).await.map_err(|e| format!("send: {e}"))?;
            loop {
                let frame = next_binary(&mut ws).await?;
                if frame.starts_with(&[0, 1]) {
                    break; // sync step 2
                }
            }
            if yjs.text() != end {
                return Err("the loader's text is not the expected one".into());
            }
            let compact = yjs.parts().0.transact().encode_state_as_update_v1(&StateVector::default()).len();
            Ok((ws, compact))
        }
    }
}

/// `chars` characters of ASCII prose, appended in pieces of 64 KiB, as patches.
pub fn prose(chars: usize) -> (Vec<(usize, usize, String)>, String) {
    const LINE: &str = "The quick brown fox jumps over the lazy dog while the editor keeps every keystroke. ";
    let text: String = LINE.chars().cycle().take(chars).collect();
    let patches = text
        .as_bytes()
        .chunks(64 << 10)
        .scan(0, |at, piece| {
            let patch = (*at, 0, String::from_utf8_lossy(piece).into_owned());
            *at += piece.len();
            Some(patch)
        })
        .collect();
    (patches, text)
}

/// Loads `trace`, lets `joiners` clients join at once, and measures time and memory.
pub async fn join(target: Target, programs: &Programs, trace: &Trace, joiners: usize) -> Result<JoinReport, String> {
    let mut programs = programs.clone();
    if target == Target::Ours {
        // The loader sends a trace at once: no per-connection rate; the document unloads two
        // seconds after everyone left (the default is a minute).
        programs
            .doc_server_args
            .extend(["--changes-per-second", "0", "--bytes-per-second", "0", "--idle-unload", "2s"].map(String::from));
    }
    let server = ServerProcess::start(target, &programs)?;
    let (pid, addr) = (server.endpoint.pid, server.endpoint.addr.clone());
    // A first small document, joined and left (and unloaded), so that the baseline holds
    // what any used server holds (its store's caches, its threads), not only a fresh one.
    let (warm_patches, warm_text) = prose(1000);
    let (warm, _) = load_patches(target, &addr, "warm-up", &warm_patches, &warm_text).await?;
    let (second, _) = connect(target, &addr, "warm-up").await?;
    for mut ws in [warm, second] {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    }
    let baseline_kib = rss_after(pid, Duration::from_secs(6)).await.ok_or("no server memory")?;
    let started = Instant::now();
    let (loader, compact_bytes) = load_patches(target, &addr, "paper", &trace.patches, &trace.end).await?;
    let load = started.elapsed();
    let stop = CancellationToken::new();
    let loader = tokio::spawn(hold(loader, stop.clone()));
    // Snapshots written after the load settle first.
    let loaded_kib = rss_after(pid, Duration::from_secs(3)).await.ok_or("no server memory")?;

    let started = Instant::now();
    let mut joining = JoinSet::new();
    for _ in 0..joiners {
        let addr = addr.clone();
        let want = trace.end.len();
        joining.spawn(async move {
            let (ws, protocol) = connect(target, &addr, "paper").await?;
            let took = started.elapsed();
            let got = protocol.text().len();
            if got != want {
                return Err(format!("a joiner got {got} characters of {want}"));
            }
            Ok::<_, String>((ws, took))
        });
    }
    let mut joins = Vec::with_capacity(joiners);
    let mut held = Vec::with_capacity(joiners);
    while let Some(joined) = joining.join_next().await {
        let (ws, took) = joined.map_err(|e| format!("a joining task failed: {e}"))??;
        joins.push(took);
        held.push(tokio::spawn(hold(ws, stop.clone())));
    }
    joins.sort();
    let joined_kib = rss_after(pid, Duration::from_secs(1)).await.ok_or("no server memory")?;
    stop.cancel();
    let _ = loader.await;
    for task in held {
        let _ = task.await;
    }
    // doc-server unloads two seconds after the last connection left; y-websocket without
    // persistence keeps every document for as long as it runs.
    // (and tokio's idle blocking threads, which held their stacks, end after 10 s).
    let after_kib = rss_after(pid, Duration::from_secs(12)).await.ok_or("no server memory")?;
    // The same trace into three more documents, each unloaded in turn: what an
    // unload leaves behind must not add up document after document.
    let mut after_again_kib = Vec::new();
    for doc in ["paper-2", "paper-3", "paper-4"] {
        let (mut again, _) = load_patches(target, &addr, doc, &trace.patches, &trace.end).await?;
        let _ = tokio::time::timeout(Duration::from_secs(1), again.close(None)).await;
        after_again_kib.push(rss_after(pid, Duration::from_secs(14)).await.ok_or("no server memory")?);
    }
    drop(server);
    Ok(JoinReport {
        load,
        compact_bytes,
        baseline_kib,
        loaded_kib,
        joins,
        joined_kib,
        after_kib,
        after_again_kib,
        joiners,
    })
}

/// The burst scenario's result.
#[derive(Clone, Debug)]
pub struct BurstReport {
    pub keystrokes: usize,
    /// The writer's sending, start to the last message handed to the socket.
    pub send: Duration,
    /// Keystrokes the observer saw, and when it had all of them (from the first send).
    pub seen: usize,
    pub all_seen: Option<Duration>,
    /// The writer's highest acknowledged batch and when the last one was acknowledged.
    pub acked: Option<u64>,
    pub all_acked: Option<Duration>,
    /// Why the writer or the observer was closed, if one was.
    pub writer_closed: Option<String>,
    pub observer_closed: Option<String>,
}

/// The next binary frame from `stream` before `deadline`; `Err(None)` when the deadline
/// passed, `Err(Some(why))` when the connection ended.
async fn binary_before<S>(stream: &mut S, deadline: tokio::time::Instant) -> Result<Vec<u8>, Option<String>>
where
    S: futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(None),
            Ok(None) => return Err(Some("connection ended".to_owned())),
            Ok(Some(Err(e))) => return Err(Some(format!("read: {e}"))),
            Ok(Some(Ok(WsMessage::Close(frame)))) => return Err(Some(format!("closed: {frame:?}"))),
            Ok(Some(Ok(WsMessage::Binary(bytes)))) => return Ok(bytes.into()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// How long a burst may take to arrive everywhere before it counts as lost.
const BURST_DEADLINE: Duration = Duration::from_secs(60);

/// One writer sends `keystrokes` single-keystroke messages back to back; an observer reads.
pub async fn burst(target: Target, programs: &Programs, keystrokes: usize) -> Result<BurstReport, String> {
    let server = ServerProcess::start(target, programs)?;
    let addr = server.endpoint.addr.clone();
    let (observer_ws, mut observer) = connect(target, &addr, "burst").await?;
    let (writer_ws, mut writer) = connect(target, &addr, "burst").await?;
    // The writer's keystrokes, typed ahead, so the sending loop only sends.
    let mut typist = Typist::new(5000);
    let mut frames = Vec::with_capacity(keystrokes);
    let mut stamps = HashSet::with_capacity(keystrokes);
    for _ in 0..keystrokes {
        let out = writer.keystroke(typist.next())?;
        stamps.insert(out.stamp);
        frames.push(out.frame);
    }
    let last_batch = keystrokes as u64;
    let started = Instant::now();

    let observe = tokio::spawn(async move {
        let mut ws = observer_ws;
        let mut incoming = Incoming::default();
        let mut seen = 0;
        let deadline = tokio::time::Instant::now() + BURST_DEADLINE;
        while seen < stamps.len() {
            let frame = match binary_before(&mut ws, deadline).await {
                Ok(frame) => frame,
                Err(ended) => return (seen, None, ended),
            };
            if let Err(e) = observer.receive(&frame, &mut incoming) {
                return (seen, None, Some(e));
            }
            seen += incoming.seen.drain(..).filter(|stamp| stamps.contains(stamp)).count();
            incoming.replies.clear();
        }
        (seen, Some(started.elapsed()), None)
    });

    let (mut sink, mut stream) = writer_ws.split();
    // Reads acks (y-websocket acknowledges nothing, but relays the writer's own updates back:
    // they are read so that its socket keeps flowing).
    let acks = tokio::spawn(async move {
        let mut incoming = Incoming::default();
        let mut acked = None;
        let deadline = tokio::time::Instant::now() + BURST_DEADLINE;
        loop {
            let frame = match binary_before(&mut stream, deadline).await {
                Ok(frame) => frame,
                Err(ended) => return (acked, None, ended),
            };
            if let Err(e) = writer.receive(&frame, &mut incoming) {
                return (acked, None, Some(e));
            }
            incoming.replies.clear();
            if let Some(batch) = incoming.acked.take() {
                acked = Some(batch);
                if batch >= last_batch {
                    return (acked, Some(started.elapsed()), None);
                }
            }
        }
    });
    let mut writer_closed = None;
    for frame in frames {
        if let Err(e) = sink.send(WsMessage::Binary(frame.into())).await {
            writer_closed = Some(format!("send: {e}"));
            break;
        }
    }
    let send = started.elapsed();
    let (seen, all_seen, observer_closed) = observe.await.map_err(|e| e.to_string())?;
    let (acked, all_acked, ack_closed) = if target == Target::Ours {
        acks.await.map_err(|e| e.to_string())?
    } else {
        acks.abort();
        (None, None, None)
    };
    Ok(BurstReport {
        keystrokes,
        send,
        seen,
        all_seen,
        acked,
        all_acked,
        writer_closed: writer_closed.or(ack_closed),
        observer_closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_at_most_a_thousand_patches_or_about_256_kib() {
        let small: Vec<(usize, usize, String)> = (0..2500).map(|i| (i, 0, "x".to_owned())).collect();
        let sizes: Vec<usize> = batches(&small).map(<[_]>::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let (large, text) = prose(1_000_000);
        assert_eq!(text.len(), 1_000_000);
        assert_eq!(large.len(), 16, "64 KiB pieces");
        assert_eq!(large.iter().map(|p| p.2.as_str()).collect::<String>(), text);
        assert!(large.windows(2).all(|w| w[1].0 == w[0].0 + w[0].2.len()), "each piece appends");
        let sizes: Vec<usize> = batches(&large).map(<[_]>::len).collect();
        assert_eq!(sizes, [4, 4, 4, 4]);
        assert_eq!(batches(&[]).count(), 0);
    }

    #[test]
    fn a_loaded_text_is_what_the_patches_make() {
        let (patches, text) = prose(200_000);
        let mut doc = crdt_core::Document::new(crdt_core::ReplicaId::from_u128(1));
        for (pos, _, ins) in &patches {
            doc.insert_text("body", *pos, ins).unwrap();
        }
        assert_eq!(doc.text("body").unwrap(), text);
    }
}

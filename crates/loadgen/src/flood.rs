//! `loadgen flood` (issue 18, must-show 3): honest typists with and without two attackers on
//! one doc-server with its production limits.
//!
//! - The *change flooder* sends single-change messages at `--flood-rate` changes/s (open
//!   loop, 10,000 by default) on a document of its own, from 127.0.0.2.
//! - The *connection flooder* opens `--flood-connections` WebSockets (2,000 by default) from
//!   127.0.0.3, says hello on each and holds them.
//!
//! Both start a few seconds before the honest run and keep going through it. The honest
//! clients (127.0.0.1) type on their own documents; what counts is their edit → ack p99 next
//! to a run without the attackers, the attackers' fate (changes acknowledged per second,
//! closes and their codes, connections refused with 429) and the server's peak resident memory.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crdt_core::protocol::{AckStatus, AuthorSecret, ClientMsg, ServerMsg, UserInfo, WireNames, PROTOCOL_VERSION};
use crdt_core::{Document, ReplicaId, VersionVector};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::run::{run, RunReport};
use crate::schedule::Shape;
use crate::server::{status_kib, Programs, ServerProcess, Target};

/// The attack.
#[derive(Clone, Copy, Debug)]
pub struct Attack {
    /// Changes per second the change flooder offers.
    pub rate: f64,
    /// Connections the connection flooder opens.
    pub connections: usize,
    /// How long the attack runs before the honest run starts.
    pub lead: Duration,
}

/// What the change flooder saw.
#[derive(Debug, Default)]
pub struct FlooderOutcome {
    /// Changes handed to its socket.
    pub sent: u64,
    /// Changes the server acknowledged as applied.
    pub acked: u64,
    /// The close code, if the server closed it.
    pub closed: Option<u16>,
    /// How long it ran.
    pub elapsed: Duration,
}

/// What the connection flooder saw.
#[derive(Debug, Default)]
pub struct ConnectionsOutcome {
    /// Connections welcomed (upgraded, hello answered).
    pub welcomed: u64,
    /// Upgrades answered 429.
    pub refused_429: u64,
    /// Anything else that failed, and the first reason.
    pub failed: u64,
    /// The first other failure.
    pub first_failure: Option<String>,
}

/// Both runs and the attackers' outcomes.
pub struct FloodReport {
    /// The honest clients alone.
    pub baseline: RunReport,
    /// The honest clients under attack.
    pub attacked: RunReport,
    /// The change flooder.
    pub flooder: FlooderOutcome,
    /// The connection flooder.
    pub connections: ConnectionsOutcome,
    /// The server's peak resident memory (VmHWM) at the end, in KiB.
    pub peak_rss_kib: Option<u64>,
    /// Its resident memory under attack, in KiB: anonymous (heap, stacks) and file-backed.
    pub rss_anon_file_kib: (Option<u64>, Option<u64>),
    /// Lines of the server's `/metrics` about limits, read at the end.
    pub limit_metrics: Vec<String>,
}

/// A WebSocket to `/ws/{doc}` of `server` from the loopback address `local`.
async fn ws_from(
    local: Ipv4Addr,
    server: SocketAddr,
    doc: &str,
) -> Result<WebSocketStream<TcpStream>, tungstenite::Error> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((local, 0)))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{server}/ws/{doc}"), stream).await?;
    Ok(ws)
}

fn hello(replica: ReplicaId, names: &mut WireNames) -> Message {
    let hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica,
        author: AuthorSecret::random(),
        version: VersionVector::new(),
        user: UserInfo { name: "attacker".into(), color: "#ff0000".into() },
        token: String::new(),
    };
    Message::Binary(hello.encode_on(names).into())
}

/// Waits for the welcome; `Err` with the reason otherwise.
async fn welcome(ws: &mut WebSocketStream<TcpStream>) -> Result<(), String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => {
                return match ServerMsg::decode(&bytes) {
                    Ok(ServerMsg::Welcome { .. }) => Ok(()),
                    other => Err(format!("instead of a welcome: {other:?}")),
                }
            }
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.to_string()),
            None => return Err("ended".into()),
        }
    }
}

/// The change flooder: one change per message at `rate` a second until `stop` or the server
/// closes it.
async fn flood_changes(server: SocketAddr, rate: f64, stop: CancellationToken) -> Result<FlooderOutcome, String> {
    let started = Instant::now();
    let mut ws = ws_from(Ipv4Addr::new(127, 0, 0, 2), server, "flood-changes").await.map_err(|e| e.to_string())?;
    let mut doc = Document::new(ReplicaId::random());
    let mut names = WireNames::new();
    ws.send(hello(doc.replica(), &mut names)).await.map_err(|e| e.to_string())?;
    welcome(&mut ws).await?;
    let (mut sink, mut stream) = ws.split();
    let acked = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(Mutex::new(None));
    let reader = {
        let (acked, closed) = (Arc::clone(&acked), Arc::clone(&closed));
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                match message {
                    Message::Binary(bytes) => {
                        // One change per batch: an applied ack's seq counts the changes.
                        if let Ok(ServerMsg::Ack { seq, status: AckStatus::Applied, .. }) = ServerMsg::decode(&bytes) {
                            acked.fetch_max(seq, Ordering::Relaxed);
                        }
                    }
                    Message::Close(frame) => {
                        *closed.lock().await = Some(frame.map_or(1005, |f| u16::from(f.code)));
                        return;
                    }
                    _ => {}
                }
            }
        })
    };
    // Open loop in 1 ms ticks: each tick sends what is due by then.
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    'flood: loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let change = doc.insert_text("body", 0, "x").map_err(|e| e.to_string())?;
            let frame = ClientMsg::Changes { seq: sent + 1, changes: vec![change] }.encode_on(&mut names);
            let send = sink.send(Message::Binary(frame.into()));
            let result = tokio::select! {
                _ = stop.cancelled() => break 'flood,
                result = send => result,
            };
            if result.is_err() {
                break 'flood;
            }
            sent += 1;
        }
        if reader.is_finished() {
            break;
        }
    }
    let elapsed = started.elapsed();
    reader.abort();
    let closed = *closed.lock().await;
    Ok(FlooderOutcome { sent, acked: acked.load(Ordering::Relaxed), closed, elapsed })
}

/// The connection flooder: opens `count` WebSockets (64 at a time) and holds the welcomed ones
/// until `stop`.
async fn flood_connections(server: SocketAddr, count: usize, stop: CancellationToken) -> ConnectionsOutcome {
    let outcome = Arc::new(Mutex::new(ConnectionsOutcome::default()));
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { break };
        let (outcome, stop) = (Arc::clone(&outcome), stop.clone());
        tasks.spawn(async move {
            let attempt = async {
                let mut ws = ws_from(Ipv4Addr::new(127, 0, 0, 3), server, "flood-connections").await?;
                let mut names = WireNames::new();
                ws.send(hello(ReplicaId::random(), &mut names)).await?;
                Ok::<_, tungstenite::Error>(ws)
            };
            let mut ws = match attempt.await {
                Ok(ws) => ws,
                Err(tungstenite::Error::Http(response)) if response.status() == 429 => {
                    outcome.lock().await.refused_429 += 1;
                    return;
                }
                Err(error) => {
                    let mut outcome = outcome.lock().await;
                    outcome.failed += 1;
                    outcome.first_failure.get_or_insert(error.to_string());
                    return;
                }
            };
            match welcome(&mut ws).await {
                Ok(()) => outcome.lock().await.welcomed += 1,
                Err(error) => {
                    let mut outcome = outcome.lock().await;
                    outcome.failed += 1;
                    outcome.first_failure.get_or_insert(error);
                    return;
                }
            }
            drop(permit);
            // Hold it, reading (so pings are answered), until the end.
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = async { while let Some(Ok(_)) = ws.next().await {} } => {}
            }
        });
    }
    stop.cancelled().await;
    while tasks.join_next().await.is_some() {}
    Arc::try_unwrap(outcome).map(Mutex::into_inner).unwrap_or_default()
}

/// `GET /metrics`, the lines about limits and connections.
async fn limit_metrics(server: SocketAddr) -> Vec<String> {
    let fetch = async {
        let mut stream = TcpStream::connect(server).await?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(10), fetch).await.ok().and_then(Result::ok).unwrap_or_default();
    let wanted = [
        "doc_server_connections ",
        "doc_server_throttled_messages_total",
        "doc_server_flood_closes_total",
        "doc_server_address_refusals_total",
        "doc_server_new_document_refusals_total",
        "doc_server_changes_applied_total",
        "doc_server_accept_errors_total",
        "doc_server_document_memory_bytes",
        "doc_server_open_documents",
    ];
    body.lines().filter(|line| wanted.iter().any(|name| line.starts_with(name))).map(str::to_owned).collect()
}

/// Runs `shape` alone, then again under `attack`, against one fresh doc-server.
pub async fn flood(programs: &Programs, shape: &Shape, attack: Attack) -> Result<FloodReport, String> {
    let server = ServerProcess::start(Target::Ours, programs)?;
    let endpoint = server.endpoint.clone();
    let addr: SocketAddr = endpoint.addr.parse().map_err(|e| format!("server address: {e}"))?;
    let baseline = run(&endpoint, shape).await?;

    let stop = CancellationToken::new();
    let flooder = tokio::spawn(flood_changes(addr, attack.rate, stop.clone()));
    let connections = tokio::spawn(flood_connections(addr, attack.connections, stop.clone()));
    tokio::time::sleep(attack.lead).await;
    let attacked = run(&endpoint, shape).await;
    let limit_metrics = limit_metrics(addr).await;
    let rss_anon_file_kib = (status_kib(endpoint.pid, "RssAnon"), status_kib(endpoint.pid, "RssFile"));
    stop.cancel();
    let flooder = flooder.await.map_err(|e| e.to_string())??;
    let connections = connections.await.map_err(|e| e.to_string())?;
    let peak_rss_kib = status_kib(endpoint.pid, "VmHWM");
    Ok(FloodReport {
        baseline,
        attacked: attacked?,
        flooder,
        connections,
        peak_rss_kib,
        rss_anon_file_kib,
        limit_metrics,
    })
}

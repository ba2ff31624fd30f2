//! One run: connect every client, type on schedule, drain, and add up what the clients and
//! `/proc` measured into a [`RunReport`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{drive, Seat, Ws};
use crate::ledger::{Ledger, Progress, Tally};
use crate::ours::Ours;
use crate::schedule::{spawn_scheduler, Shape, Window};
use crate::server::{cpu_seconds, status_kib, Endpoint, Target};
use crate::stats::Summary;
use crate::typist::Typist;
use crate::yjs::Yjs;

/// Connections opened at once while a run sets up.
const CONNECTING_AT_ONCE: usize = 32;

/// Everything one run measured.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The server driven.
    pub target: Target,
    /// The load.
    pub shape: Shape,
    /// Due → seen by each other client of the document, over the measured keystrokes.
    pub seen: Summary,
    /// Due → acknowledged (doc-server only).
    pub ack: Option<Summary>,
    /// Due → handed to the socket: the load generator's own lateness.
    pub lag: Summary,
    /// Measured keystrokes sent per second.
    pub offered: f64,
    /// Keystrokes per second that reached the other clients of their document during the
    /// measured window (deliveries seen in it ÷ peers per keystroke ÷ its length).
    pub delivered: f64,
    /// Server CPU over the measured window, in % of one core.
    pub server_cpu: Option<f64>,
    /// Server resident memory at the end of the measured window, in KiB.
    pub server_rss_kib: Option<u64>,
    /// The load generator's CPU over the measured window, in % of one core.
    pub loadgen_cpu: f64,
    /// Connections that ended before the run did, and the first reason.
    pub closed: usize,
    /// Why the first one ended.
    pub first_close: Option<String>,
    /// Measured keystrokes never acknowledged.
    pub unacked: u64,
    /// Documents whose clients' texts differ at the end (checked when the drain completed).
    pub diverged: Option<usize>,
}

impl RunReport {
    /// Whether the run is clean: nothing closed, lost, unacknowledged or diverged.
    pub fn healthy(&self) -> bool {
        self.closed == 0 && self.seen.lost == 0 && self.unacked == 0 && self.diverged == Some(0)
    }

    /// Whether it holds `bar_ms` at p99 (edit → seen by another client) while healthy.
    pub fn meets(&self, bar_ms: f64) -> bool {
        self.healthy() && self.seen.p99.is_some_and(|p99| p99 <= bar_ms)
    }
}

/// Documents are named per run, so that runs on one server never share one.
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

/// A client after its handshake (boxed: the two protocols' states differ a lot in size).
enum Connected {
    Ours(Ws, Box<Ours>),
    Yjs(Ws, Box<Yjs>),
}

/// Drives `shape` against `endpoint` and reports.
pub async fn run(endpoint: &Endpoint, shape: &Shape) -> Result<RunReport, String> {
    run_preloaded(endpoint, shape, 0).await
}

/// [`run`] on documents that hold `preload` characters of text before anyone connects
/// (written by one client that then leaves).
pub async fn run_preloaded(endpoint: &Endpoint, shape: &Shape, preload: usize) -> Result<RunReport, String> {
    let run_id = format!("load{}r{}", std::process::id(), NEXT_RUN.fetch_add(1, Ordering::Relaxed));
    if preload > 0 {
        let (patches, text) = crate::scenarios::prose(preload);
        for doc in 0..shape.docs {
            let doc = format!("{run_id}-d{doc}");
            let (mut ws, _) =
                crate::scenarios::load_patches(endpoint.target, &endpoint.addr, &doc, &patches, &text).await?;
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        }
    }
    let ledgers: Vec<Arc<Ledger>> = (0..shape.docs).map(|_| Arc::default()).collect();
    let progress = Arc::new(Progress::default());

    let connected = connect_all(endpoint, shape, &run_id).await?;
    let window = Window::new(shape, Instant::now() + Duration::from_millis(100));
    let stop = CancellationToken::new();
    let mut senders = Vec::with_capacity(shape.clients);
    let mut tasks = JoinSet::new();
    for (client, connection) in connected.into_iter().enumerate() {
        let (tx, ticks) = tokio::sync::mpsc::unbounded_channel();
        senders.push(tx);
        let doc = shape.doc_of(client);
        let seat = Seat {
            index: client as u32,
            ledger: Arc::clone(&ledgers[doc]),
            progress: Arc::clone(&progress),
            window,
            peers: shape.members(doc) as u64 - 1,
            typist: Typist::new(shape.seed ^ (client as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        };
        let stop = stop.clone();
        match connection {
            Connected::Ours(ws, ours) => {
                tasks.spawn(async move { (client, drive(ws, *ours, seat, ticks, stop).await) })
            }
            Connected::Yjs(ws, yjs) => tasks.spawn(async move { (client, drive(ws, *yjs, seat, ticks, stop).await) }),
        };
    }
    let scheduler = spawn_scheduler(shape, window, senders);

    tokio::time::sleep_until(window.measure_from.into()).await;
    let (server_from, own_from) = (cpu_seconds(endpoint.pid), cpu_seconds(None));
    tokio::time::sleep_until(window.measure_to.into()).await;
    let (server_to, own_to) = (cpu_seconds(endpoint.pid), cpu_seconds(None));
    let server_rss_kib = endpoint.pid.and_then(|pid| status_kib(Some(pid), "VmRSS"));
    let seconds = shape.duration.as_secs_f64();
    let percent = |from: Option<f64>, to: Option<f64>| Some((to? - from?) / seconds * 100.0);

    let deadline = window.measure_to + shape.drain;
    while !progress.settled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let settled = progress.settled();
    // The schedule ended with the measured window; this only reaps the thread.
    let _ = tokio::task::spawn_blocking(move || scheduler.join()).await;
    stop.cancel();

    let mut tallies: Vec<(usize, Tally)> = Vec::with_capacity(shape.clients);
    while let Some(joined) = tasks.join_next().await {
        tallies.push(joined.map_err(|e| format!("a client task failed: {e}"))?);
    }
    tallies.sort_by_key(|(client, _)| *client);

    let expected = progress.expected.load(Ordering::Relaxed);
    let observed = progress.observed.load(Ordering::Relaxed);
    let sent: u64 = tallies.iter().map(|(_, t)| t.sent_measured).sum();
    let seen_in_window: u64 = tallies.iter().map(|(_, t)| t.seen_in_window).sum();
    let fan_out = if sent > 0 { expected as f64 / sent as f64 } else { 0.0 };
    let closed: Vec<&str> = tallies.iter().filter_map(|(_, t)| t.closed.as_deref()).collect();
    let diverged = settled.then(|| {
        let mut texts: HashMap<usize, &str> = HashMap::new();
        let mut diverged = vec![false; shape.docs];
        for (client, tally) in &tallies {
            let doc = shape.doc_of(*client);
            if *texts.entry(doc).or_insert(&tally.text) != tally.text {
                diverged[doc] = true;
            }
        }
        diverged.iter().filter(|&&d| d).count()
    });
    Ok(RunReport {
        target: endpoint.target,
        shape: shape.clone(),
        seen: Summary::of(
            tallies.iter().flat_map(|(_, t)| t.seen_us.iter().copied()).collect(),
            expected - observed.min(expected),
        ),
        ack: (endpoint.target == Target::Ours)
            .then(|| Summary::of(tallies.iter().flat_map(|(_, t)| t.ack_us.iter().copied()).collect(), 0)),
        lag: Summary::of(tallies.iter().flat_map(|(_, t)| t.lag_us.iter().copied()).collect(), 0),
        offered: sent as f64 / seconds,
        delivered: if fan_out > 0.0 { seen_in_window as f64 / fan_out / seconds } else { 0.0 },
        server_cpu: percent(server_from, server_to),
        server_rss_kib,
        loadgen_cpu: percent(own_from, own_to).unwrap_or(0.0),
        closed: closed.len(),
        first_close: closed.first().map(|s| s.to_string()),
        unacked: tallies.iter().map(|(_, t)| t.unacked).sum(),
        diverged,
    })
}

/// Opens every client's connection (a few at a time) and completes its handshake.
async fn connect_all(endpoint: &Endpoint, shape: &Shape, run_id: &str) -> Result<Vec<Connected>, String> {
    let permits = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut connecting = JoinSet::new();
    for client in 0..shape.clients {
        let permits = Arc::clone(&permits);
        let addr = endpoint.addr.clone();
        let doc = format!("{run_id}-d{}", shape.doc_of(client));
        let target = endpoint.target;
        connecting.spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let connected = match target {
                Target::Ours => {
                    let (ws, ours) = Ours::connect(&addr, &doc, &format!("typist {client}")).await?;
                    Connected::Ours(ws, Box::new(ours))
                }
                Target::Yjs => {
                    let (ws, yjs) = Yjs::connect(&addr, &doc).await?;
                    Connected::Yjs(ws, Box::new(yjs))
                }
            };
            Ok::<_, String>((client, connected))
        });
    }
    let mut connected: Vec<Option<Connected>> = (0..shape.clients).map(|_| None).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(joined) = tokio::time::timeout_at(deadline.into(), connecting.join_next())
        .await
        .map_err(|_| "clients did not connect within 60 s".to_owned())?
    {
        let (client, connection) = joined.map_err(|e| format!("a connecting task failed: {e}"))??;
        connected[client] = Some(connection);
    }
    Ok(connected.into_iter().flatten().collect())
}

//! A protocol client written from PROTOCOL.md alone: hello, catch-up, batches with sequence
//! numbers, acknowledgements with the divergence check, resending after a reconnect, presence.
//!
//! Its bookkeeping is what a real client keeps: the document, the batches in flight (`seq` and
//! the highest own change they carry), how many of its own changes the server has
//! acknowledged (`acked_own`), which the durability tests compare with the server after a crash,
//! and the relays not yet durable, which it gives back to a server that lost them (section 5b).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crdt_core::codec;
use crdt_core::protocol::{
    AckStatus, AuthorSecret, Catchup, ClientMsg, Peer, RelayTag, Selection, ServerMsg, UserInfo, WireNames,
    PROTOCOL_VERSION,
};
use crdt_core::{ApplyOutcome, Change, ChangeId, Document, ReplicaId, VersionVector};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest batch a client sends, in changes (keeps frames far below the 1 MiB limit).
const MAX_BATCH: usize = 200;

/// Opens a WebSocket to document `doc` (TCP_NODELAY on, as a browser does).
pub async fn connect_ws(addr: SocketAddr, doc: &str) -> Result<Ws, String> {
    let url = format!("ws://{addr}/ws/{doc}");
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(url, None, true).await.map_err(|e| format!("connect: {e}"))?;
    Ok(ws)
}

/// What one server message was.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Changes(usize),
    Ack {
        seq: u64,
        applied: bool,
    },
    Presence(Peer),
    PresenceGone(u64),
    /// The server's error message (a close follows).
    Error(String),
    /// The server closed, with the close code.
    Closed(Option<u16>),
}

/// One replica speaking to the server; see the module docs.
pub struct Client {
    pub name: String,
    pub doc: Document,
    /// The secret that proves this client authors as its replicas (one per client, so two
    /// clients are two authors).
    pub author: AuthorSecret,
    /// The access token its hellos present (empty: none, for a server in `--open` mode).
    pub token: String,
    ws: Option<Ws>,
    /// What this connection's frames have named.
    names: WireNames,
    /// The server's version as this connection was told it (the welcome's, with every ack's
    /// entries set over it).
    pub told: VersionVector,
    /// How many version entries the last ack carried.
    pub last_ack_entries: usize,
    next_seq: u64,
    inflight: VecDeque<(u64, u64)>,
    unsent: Vec<Change>,
    /// How many of this replica's own changes the server has acknowledged (a prefix).
    pub acked_own: u64,
    /// This connection's id, from `Welcome`.
    pub connection: u64,
    pub peers: BTreeMap<u64, Peer>,
    /// The version of the last `Welcome`.
    pub welcome_version: VersionVector,
    /// Whether the last `Welcome` carried a snapshot.
    pub caught_up_by_snapshot: bool,
    /// How many times an ack's or welcome's hash was compared with ours.
    pub hash_checks: u64,
    /// Reasons of rejected batches.
    pub rejected: Vec<String>,
    /// Codes of rejected batches (`crdt_core::protocol::reject`), in the same order.
    pub rejected_codes: Vec<u16>,
    /// Relays not known durable: their number, changes and tag (kept across connections until
    /// a welcome shows whether the server has them).
    kept: VecDeque<(u64, Vec<Change>, RelayTag)>,
    /// Relays given back after a welcome that lacked them.
    pub given_back: usize,
}

impl Client {
    pub fn new(name: &str) -> Client {
        Client {
            names: WireNames::new(),
            told: VersionVector::new(),
            last_ack_entries: 0,
            name: name.to_owned(),
            doc: Document::new(ReplicaId::random()),
            author: AuthorSecret::random(),
            token: String::new(),
            ws: None,
            next_seq: 1,
            inflight: VecDeque::new(),
            unsent: Vec::new(),
            acked_own: 0,
            connection: 0,
            peers: BTreeMap::new(),
            welcome_version: VersionVector::new(),
            caught_up_by_snapshot: false,
            hash_checks: 0,
            rejected: Vec::new(),
            rejected_codes: Vec::new(),
            kept: VecDeque::new(),
            given_back: 0,
        }
    }

    pub fn replica(&self) -> ReplicaId {
        self.doc.replica()
    }

    pub fn is_connected(&self) -> bool {
        self.ws.is_some()
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Connects, says hello, applies the catch-up, then sends every change the server lacks
    /// (the client's unacknowledged ones, and anything else the server's version misses).
    pub async fn connect(&mut self, addr: SocketAddr, doc: &str) -> Result<(), String> {
        self.ws = Some(connect_ws(addr, doc).await?);
        self.names = WireNames::new();
        self.next_seq = 1;
        self.inflight.clear();
        self.unsent.clear();
        self.peers.clear();
        let hello = ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            replica: self.replica(),
            author: self.author,
            version: self.doc.version().clone(),
            user: UserInfo { name: self.name.clone(), color: "#3366cc".into() },
            token: self.token.clone(),
        };
        self.send(&hello).await?;
        let welcome =
            tokio::time::timeout(super::WAIT, self.read()).await.map_err(|_| "no welcome in time".to_owned())??;
        let ServerMsg::Welcome { connection, catchup, version, hash, peers } = welcome else {
            return Err(format!("expected Welcome, got {welcome:?}"));
        };
        self.connection = connection;
        self.peers = peers.into_iter().map(|p| (p.connection, p)).collect();
        self.caught_up_by_snapshot = matches!(catchup, Catchup::Snapshot(_));
        match catchup {
            Catchup::Changes(changes) => self.apply_all(changes)?,
            Catchup::Snapshot(bytes) => {
                let snapshot = codec::decode_snapshot(&bytes, self.replica()).map_err(|e| e.to_string())?;
                self.doc.merge(&snapshot);
            }
        }
        self.check_hash(&version, hash)?;
        // Own changes the server already has were stored before an ack could reach us (the ack
        // was lost with the old connection): the welcome's version acknowledges them.
        self.acked_own = self.acked_own.max(version.get(self.replica()).min(self.doc.version().get(self.replica())));
        let missing = self.doc.ops_since(&version).ok_or("the server lacks history this client cannot supply")?;
        // Relays the server lacks go back as they came, each where its first change is in
        // causal order; the rest goes in batches.
        let lacked = |changes: &[Change]| changes.iter().any(|c| c.seq > version.get(c.replica));
        let owed: Vec<(Vec<Change>, RelayTag)> =
            self.kept.drain(..).filter(|(_, changes, _)| lacked(changes)).map(|(_, c, t)| (c, t)).collect();
        let relay_of: std::collections::HashMap<ChangeId, usize> = owed
            .iter()
            .enumerate()
            .flat_map(|(index, (changes, _))| changes.iter().map(move |c| (c.id(), index)))
            .collect();
        self.welcome_version = version.clone();
        self.told = version;
        let mut given = vec![false; owed.len()];
        let mut batch = Vec::new();
        for change in missing {
            match relay_of.get(&change.id()) {
                Some(&index) if !given[index] => {
                    given[index] = true;
                    for chunk in std::mem::take(&mut batch).chunks(MAX_BATCH) {
                        self.send_batch(chunk.to_vec()).await?;
                    }
                    let (changes, tag) = owed[index].clone();
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.inflight.push_back((seq, 0));
                    self.given_back += 1;
                    self.send(&ClientMsg::GiveBack { seq, changes, tag }).await?;
                }
                Some(_) => {}
                None => batch.push(change),
            }
        }
        for chunk in batch.chunks(MAX_BATCH) {
            self.send_batch(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// Closes the connection (as a network drop would: no goodbye).
    pub fn disconnect(&mut self) {
        self.ws = None;
        self.inflight.clear();
    }

    /// One random edit: text insert or delete, plus a token `name-seq` in the set `tokens` and an
    /// increment of `edits`, all in one change. Queued until [`flush`](Self::flush).
    pub fn edit(&mut self, rng: &mut impl Rng) {
        let own = self.doc.version().get(self.replica()) + 1;
        let token = format!("{}-{own}", self.name);
        let len = self.doc.rga("body").map_or(0, |rga| rga.len());
        let delete = len > 0 && rng.gen_bool(0.3);
        let pos = rng.gen_range(0..=len);
        let word: String = (0..rng.gen_range(1..6)).map(|_| rng.gen_range(b'a'..=b'z') as char).collect();
        let change = self
            .doc
            .transact(|tx| {
                if delete {
                    let at = pos.min(len - 1);
                    tx.delete_text("body", at, (len - at).min(3))?;
                } else {
                    tx.insert_text("body", pos, &word)?;
                }
                tx.add_to_set("tokens", token);
                tx.increment("edits", 1);
                Ok(())
            })
            .expect("a valid local edit")
            .expect("a non-empty change");
        self.unsent.push(change);
    }

    /// Queues an arbitrary local change made on `self.doc` (e.g. by `insert_text`).
    pub fn queue(&mut self, change: Change) {
        self.unsent.push(change);
    }

    /// Sends the queued changes as one batch.
    pub async fn flush(&mut self) -> Result<(), String> {
        if self.unsent.is_empty() || self.ws.is_none() {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.unsent);
        self.send_batch(changes).await
    }

    /// Sends `changes` as batch `next_seq`, remembering the highest own change it carries.
    pub async fn send_batch(&mut self, changes: Vec<Change>) -> Result<(), String> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let own = self.replica();
        let high = changes.iter().filter(|c| c.replica == own).map(|c| c.seq).max().unwrap_or(0);
        self.inflight.push_back((seq, high));
        self.send(&ClientMsg::Changes { seq, changes }).await
    }

    pub async fn send_presence(&mut self, selection: Option<Selection>) -> Result<(), String> {
        self.send(&ClientMsg::Presence { selection }).await
    }

    pub async fn send(&mut self, message: &ClientMsg) -> Result<(), String> {
        let frame = message.encode_on(&mut self.names);
        self.send_raw(Message::Binary(frame.into())).await
    }

    pub async fn send_raw(&mut self, message: Message) -> Result<(), String> {
        let ws = self.ws.as_mut().ok_or("not connected")?;
        ws.send(message).await.map_err(|e| format!("send: {e}"))
    }

    /// Reads the next server message (control frames are handled by tungstenite).
    async fn read(&mut self) -> Result<ServerMsg, String> {
        let ws = self.ws.as_mut().ok_or("not connected")?;
        loop {
            match ws.next().await {
                None => return Err("connection ended".into()),
                Some(Err(e)) => return Err(format!("read: {e}")),
                Some(Ok(Message::Binary(bytes))) => {
                    return ServerMsg::decode(&bytes).map_err(|e| format!("bad server frame: {e}"))
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f: CloseFrame| u16::from(f.code));
                    return Err(format!("closed by the server with {code:?}"));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads and handles one message. Cancel-safe: the only await is the read.
    pub async fn next_event(&mut self) -> Result<Event, String> {
        let ws = self.ws.as_mut().ok_or("not connected")?;
        let message = loop {
            match ws.next().await {
                None => {
                    self.ws = None;
                    return Ok(Event::Closed(None));
                }
                Some(Err(e)) => {
                    self.ws = None;
                    return Err(format!("read: {e}"));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    break ServerMsg::decode(&bytes).map_err(|e| format!("bad server frame: {e}"))?
                }
                Some(Ok(Message::Close(frame))) => {
                    self.ws = None;
                    return Ok(Event::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(_)) => {}
            }
        };
        match message {
            ServerMsg::Relay { changes, tag, number, durable } => {
                while self.kept.front().is_some_and(|(kept, _, _)| *kept <= durable) {
                    self.kept.pop_front();
                }
                if number > durable {
                    self.kept.push_back((number, changes.clone(), tag));
                }
                let n = changes.len();
                self.apply_all(changes)?;
                Ok(Event::Changes(n))
            }
            ServerMsg::Changes { changes } => {
                let n = changes.len();
                self.apply_all(changes)?;
                Ok(Event::Changes(n))
            }
            ServerMsg::Ack { seq, status, version, hash } => {
                let applied = status == AckStatus::Applied;
                // An Applied ack covers every earlier batch in flight; a Rejected one is its own.
                loop {
                    let (expected, high) = self.inflight.pop_front().ok_or("ack with nothing in flight")?;
                    if expected > seq || (!applied && expected != seq) {
                        return Err(format!("ack for batch {seq}, expected {expected}"));
                    }
                    if applied {
                        self.acked_own = self.acked_own.max(high);
                    }
                    if expected == seq {
                        break;
                    }
                }
                if let AckStatus::Rejected { code, reason } = status {
                    self.rejected.push(reason);
                    self.rejected_codes.push(code);
                }
                // The ack names the entries that changed since the welcome or the last ack.
                self.last_ack_entries = version.len();
                self.told.merge(&version);
                let told = self.told.clone();
                self.check_hash(&told, hash)?;
                Ok(Event::Ack { seq, applied })
            }
            ServerMsg::Presence(peer) => {
                self.peers.insert(peer.connection, peer.clone());
                Ok(Event::Presence(peer))
            }
            ServerMsg::PresenceGone { connection } => {
                self.peers.remove(&connection);
                Ok(Event::PresenceGone(connection))
            }
            ServerMsg::Error { message } => Ok(Event::Error(message)),
            ServerMsg::Welcome { .. } => Err("a second Welcome".into()),
        }
    }

    /// The divergence check of PROTOCOL.md: at the server's exact version, hashes must agree.
    fn check_hash(&mut self, version: &VersionVector, hash: u64) -> Result<(), String> {
        if self.doc.version() == version {
            self.hash_checks += 1;
            if self.doc.state_hash() != hash {
                return Err(format!("{}: diverged from the server at {version:?}", self.name));
            }
        }
        Ok(())
    }

    fn apply_all(&mut self, changes: Vec<Change>) -> Result<(), String> {
        for change in changes {
            match self.doc.apply_change(change) {
                Ok(ApplyOutcome::Applied { .. } | ApplyOutcome::Duplicate) => {}
                Ok(ApplyOutcome::Buffered) => return Err("the server sent a change out of causal order".into()),
                Err(e) => return Err(format!("the server sent a change that does not apply: {e}")),
            }
        }
        Ok(())
    }

    /// Handles messages until `done` holds (checked before each read), failing after `within`.
    pub async fn pump_until(&mut self, within: Duration, mut done: impl FnMut(&Client) -> bool) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Err(_) => return Err(format!("{}: condition not reached within {within:?}", self.name)),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Event::Error(e))) => return Err(format!("server error: {e}")),
                Ok(Ok(Event::Closed(code))) => return Err(format!("closed by the server ({code:?})")),
                Ok(Ok(_)) => {}
            }
        }
        Ok(())
    }

    /// Flushes and waits until every batch in flight is acknowledged.
    pub async fn settle(&mut self) -> Result<(), String> {
        self.flush().await?;
        self.pump_until(super::WAIT, |c| c.inflight.is_empty()).await
    }

    /// Waits until this client has seen at least `version`.
    pub async fn reach(&mut self, version: &VersionVector) -> Result<(), String> {
        let version = version.clone();
        self.pump_until(super::WAIT, move |c| version.le(c.doc.version())).await
    }

    /// Edits at random intervals, flushing each time, and handles incoming messages, for
    /// `duration` or until the connection fails (the kill tests end it by killing the server).
    pub async fn storm(&mut self, rng: &mut impl Rng, duration: Duration) -> Result<(), String> {
        let end = tokio::time::Instant::now() + duration;
        let mut next_edit = tokio::time::Instant::now();
        loop {
            let now = tokio::time::Instant::now();
            if now >= end {
                return Ok(());
            }
            if now >= next_edit {
                for _ in 0..rng.gen_range(1..4) {
                    self.edit(rng);
                }
                self.flush().await?;
                next_edit = now + Duration::from_millis(rng.gen_range(1..12));
            }
            match tokio::time::timeout_at(next_edit.min(end), self.next_event()).await {
                Err(_) => {}
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Event::Closed(code))) => return Err(format!("closed ({code:?})")),
                Ok(Ok(Event::Error(e))) => return Err(e),
                Ok(Ok(_)) => {}
            }
        }
    }
}

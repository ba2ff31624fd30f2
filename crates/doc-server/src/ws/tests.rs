//! Tests of `ws.rs`: the byte examples of PROTOCOL.md, and a session driven through channels
//! (the connection loop is generic over `Sink`/`Stream`) against an in-memory store.

use std::sync::Arc;

use axum::extract::ws::Message;
use crdt_core::protocol::{
    AckStatus, AuthorSecret, Catchup, ClientMsg, ServerMsg, UserInfo, WireNames, PROTOCOL_VERSION,
};
use crdt_core::{Change, Document, ReplicaId, VersionVector};
use futures_util::stream;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::{close_code, serve_socket};
use crate::storage::MemoryStore;
use crate::{AppState, Config, DocId};

fn replica_bytes() -> Vec<u8> {
    let mut bytes = vec![0x10];
    bytes.extend([0u8; 15]);
    bytes.push(1);
    bytes
}

fn hello() -> ClientMsg {
    ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica: ReplicaId::from_u128(1),
        author: secret(),
        version: VersionVector::new(),
        user: UserInfo { name: "ann".into(), color: "#f00".into() },
        token: String::new(),
    }
}

/// The author secret of PROTOCOL.md's example: bytes 0, 1, ..., 31.
fn secret() -> AuthorSecret {
    AuthorSecret(std::array::from_fn(|i| i as u8))
}

fn names_after_hello() -> WireNames {
    let mut names = WireNames::new();
    names.name_replica(ReplicaId::from_u128(1)).unwrap();
    names
}

#[test]
fn protocol_md_byte_examples_are_right() {
    let r = replica_bytes();
    let mut expected = vec![0x02, 0x10, 0x03, 0x05];
    expected.extend(&r);
    expected.extend(0..32u8);
    expected.extend([0x00, 0x03, b'a', b'n', b'n', 0x04, b'#', b'f', b'0', b'0', 0x00]);
    let mut names = WireNames::new();
    assert_eq!(hello().encode_on(&mut names), expected, "Hello");

    // The batch on the same connection: the Hello named the replica (number 1).
    let mut doc = Document::new(ReplicaId::from_u128(1));
    let change = doc.insert_text("t", 0, "hi").unwrap();
    let batch = ClientMsg::Changes { seq: 1, changes: vec![change] };
    let expected = vec![
        0x02, 0x10, 0x01, 0x01, 0x0f, 0x01, 0x01, 0x01, 0x00, 0x01, 0x00, 0x01, b't', 0x00, 0x00, 0x00, 0x00, 0x02,
        b'h', b'i',
    ];
    assert_eq!(batch.encode_on(&mut names), expected, "Changes");
    assert_eq!(ClientMsg::decode_on(&expected, 1 << 20, &mut names_after_hello()), Ok(batch));

    assert_eq!(doc.state_hash(), 0x2572_6fb0_30eb_2e3f, "the hash quoted in PROTOCOL.md");
    let ack =
        ServerMsg::Ack { seq: 1, status: AckStatus::Applied, version: doc.version().clone(), hash: doc.state_hash() };
    let mut expected = vec![0x02, 0x11, 0x01, 0x01, 0x00, 0x01];
    expected.extend(&r);
    expected.extend([0x01, 0xfd, 0x3f, 0x2e, 0xeb, 0x30, 0xb0, 0x6f, 0x72, 0x25]);
    assert_eq!(ack.encode(), expected, "Ack");

    // A refusal of batch 2: code 5 (NOT_OWNER), reason "no", nothing moved.
    let refusal = ServerMsg::Ack {
        seq: 2,
        status: AckStatus::Rejected { code: crdt_core::protocol::reject::NOT_OWNER, reason: "no".into() },
        version: VersionVector::new(),
        hash: doc.state_hash(),
    };
    let expected = vec![
        0x02, 0x11, 0x01, 0x02, 0x01, 0x05, 0x02, b'n', b'o', 0x00, 0xfd, 0x3f, 0x2e, 0xeb, 0x30, 0xb0, 0x6f, 0x72,
        0x25,
    ];
    assert_eq!(refusal.encode(), expected, "Rejected ack");
}

type Incoming = Result<Message, std::io::Error>;

/// Starts a session on channels; returns the client's ends.
fn start(state: &AppState) -> (mpsc::Sender<Incoming>, mpsc::Receiver<Message>, tokio::task::JoinHandle<()>) {
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(16);
    let (out_tx, out_rx) = mpsc::channel::<Message>(64);
    let incoming =
        Box::pin(stream::unfold(in_rx, |mut rx| async move { rx.recv().await.map(|message| (message, rx)) }));
    let session = serve_socket(PollSender::new(out_tx), incoming, DocId::parse("t").unwrap(), state.clone(), None);
    (in_tx, out_rx, tokio::spawn(session))
}

async fn next_server_msg(out: &mut mpsc::Receiver<Message>) -> ServerMsg {
    loop {
        match out.recv().await.expect("a message") {
            Message::Binary(bytes) => return ServerMsg::decode(&bytes).unwrap(),
            Message::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// One client frame, encoded with the connection's names as a client does.
fn binary(names: &mut WireNames, message: &ClientMsg) -> Incoming {
    Ok(Message::Binary(message.encode_on(names).into()))
}

#[tokio::test]
async fn a_session_through_channels_syncs_and_closes_on_bad_input() {
    let dir = std::env::temp_dir().join("doc-server-ws-unit");
    let state = AppState::new(open_config(dir), Arc::new(MemoryStore::default()));
    let (input, mut output, session) = start(&state);

    let mut names = WireNames::new();
    input.send(binary(&mut names, &hello())).await.unwrap();
    let ServerMsg::Welcome { catchup, version, .. } = next_server_msg(&mut output).await else {
        panic!("welcome first");
    };
    assert_eq!(catchup, Catchup::Changes(Vec::new()));
    assert!(version.is_empty());

    let mut doc = Document::new(ReplicaId::from_u128(1));
    let change = doc.insert_text("t", 0, "hi").unwrap();
    input.send(binary(&mut names, &ClientMsg::Changes { seq: 1, changes: vec![change.clone()] })).await.unwrap();
    let ack = next_server_msg(&mut output).await;
    assert_eq!(
        ack,
        ServerMsg::Ack { seq: 1, status: AckStatus::Applied, version: doc.version().clone(), hash: doc.state_hash() }
    );
    // The same batch again is a no-op, acknowledged as applied.
    input.send(binary(&mut names, &ClientMsg::Changes { seq: 2, changes: vec![change] })).await.unwrap();
    let ServerMsg::Ack { seq: 2, status: AckStatus::Applied, version, .. } = next_server_msg(&mut output).await else {
        panic!("ack of the duplicate");
    };
    assert!(version.is_empty(), "nothing moved since the last ack: {version:?}");
    let stored = state.store.load(&DocId::parse("t").unwrap()).unwrap();
    assert_eq!(stored.log.len(), 1, "the duplicate was not logged again");

    input.send(Ok(Message::Text("nope".into()))).await.unwrap();
    let ServerMsg::Error { message } = next_server_msg(&mut output).await else {
        panic!("an error before the close");
    };
    assert!(message.contains("text frames"), "{message}");
    match output.recv().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, close_code::UNSUPPORTED_DATA),
        other => panic!("expected a close, got {other:?}"),
    }
    drop(input); // The client's side of the close handshake: the stream ends.
    session.await.unwrap();
    assert_eq!(state.metrics.rejected_frames.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(state.metrics.connections.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A store whose appends and registrations fail while `failing` is set, whose registrations
/// alone fail while `failing_registrations` is, and whose snapshot writes take a second while
/// `slow_snapshots` is.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: std::sync::atomic::AtomicBool,
    failing_registrations: std::sync::atomic::AtomicBool,
    slow_snapshots: std::sync::atomic::AtomicBool,
    /// Each append takes this long first (then fails if `failing`).
    slow_appends_ms: std::sync::atomic::AtomicU64,
    snapshots: std::sync::atomic::AtomicU64,
}

impl crate::storage::Store for FlakyStore {
    fn load(&self, doc: &DocId) -> Result<crate::storage::StoredDoc, crate::storage::StoreError> {
        self.inner.load(doc)
    }
    fn append(&self, doc: &DocId, epoch: u64, bytes: &[u8]) -> Result<u64, crate::storage::StoreError> {
        let slow = self.slow_appends_ms.load(std::sync::atomic::Ordering::Relaxed);
        if slow > 0 {
            std::thread::sleep(std::time::Duration::from_millis(slow));
        }
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(crate::storage::StoreError::Io(std::io::Error::other("disk full")));
        }
        self.inner.append(doc, epoch, bytes)
    }
    fn write_snapshot(
        &self,
        doc: &DocId,
        epoch: u64,
        snapshot: &[u8],
        through: u64,
    ) -> Result<(), crate::storage::StoreError> {
        if self.slow_snapshots.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        self.snapshots.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.write_snapshot(doc, epoch, snapshot, through)
    }
    fn register_authors(
        &self,
        doc: &DocId,
        authors: &[(ReplicaId, crate::storage::AuthorHash)],
    ) -> Result<(), crate::storage::StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed)
            || self.failing_registrations.load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(crate::storage::StoreError::Io(std::io::Error::other("disk full")));
        }
        self.inner.register_authors(doc, authors)
    }
    fn list(&self) -> Result<Vec<crate::storage::DocSummary>, crate::storage::StoreError> {
        self.inner.list()
    }
    fn summary(&self, doc: &DocId) -> Result<Option<crate::storage::DocSummary>, crate::storage::StoreError> {
        self.inner.summary(doc)
    }
    fn set_title(&self, doc: &DocId, title: &str) -> Result<(), crate::storage::StoreError> {
        self.inner.set_title(doc, title)
    }
    fn set_names(&self, doc: &DocId, names: &[(ReplicaId, String)]) -> Result<(), crate::storage::StoreError> {
        self.inner.set_names(doc, names)
    }
    fn exists(&self, doc: &DocId) -> Result<bool, crate::storage::StoreError> {
        self.inner.exists(doc)
    }
    fn probe(&self) -> Result<(), crate::storage::StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(crate::storage::StoreError::Io(std::io::Error::other("disk full")));
        }
        self.inner.probe()
    }
}

#[tokio::test]
async fn a_failed_commit_is_never_acknowledged() {
    let store = Arc::new(FlakyStore::default());
    let dir = std::env::temp_dir().join("doc-server-ws-unit-flaky");
    let state = AppState::new(open_config(dir), store.clone());
    let (input, mut output, session) = start(&state);
    let mut names = WireNames::new();
    input.send(binary(&mut names, &hello())).await.unwrap();
    assert!(matches!(next_server_msg(&mut output).await, ServerMsg::Welcome { .. }));

    store.failing.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut doc = Document::new(ReplicaId::from_u128(1));
    let change = doc.insert_text("t", 0, "lost?").unwrap();
    input.send(binary(&mut names, &ClientMsg::Changes { seq: 1, changes: vec![change.clone()] })).await.unwrap();
    let ServerMsg::Error { message } = next_server_msg(&mut output).await else {
        panic!("an error, not an ack");
    };
    assert!(message.contains("could not store"), "{message}");
    match output.recv().await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, close_code::INTERNAL_ERROR),
        other => panic!("expected a close, got {other:?}"),
    }
    drop(input);
    session.await.unwrap();

    // The document reloads from the store, which never got the change: the client resends it.
    store.failing.store(false, std::sync::atomic::Ordering::Relaxed);
    let (input, mut output, _session) = start(&state);
    let mut names = WireNames::new();
    input.send(binary(&mut names, &hello())).await.unwrap();
    let ServerMsg::Welcome { version, .. } = next_server_msg(&mut output).await else {
        panic!("welcome");
    };
    assert!(version.is_empty(), "nothing unacknowledged was kept");
    input.send(binary(&mut names, &ClientMsg::Changes { seq: 1, changes: vec![change] })).await.unwrap();
    let ServerMsg::Ack { status: AckStatus::Applied, version, .. } = next_server_msg(&mut output).await else {
        panic!("ack");
    };
    assert_eq!(&version, doc.version());
}

/// A `Hello` as replica `n` with author secret `n` (any version: the server sends a catch-up).
fn hello_as(n: u8) -> ClientMsg {
    ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica: ReplicaId::from_u128(n.into()),
        author: AuthorSecret([n; 32]),
        version: VersionVector::new(),
        user: UserInfo { name: format!("user {n}"), color: "#0f0".into() },
        token: String::new(),
    }
}

/// A session joined as replica `n` (see [`hello_as`]), its welcome read: the client's ends,
/// its wire names and the session task.
async fn joined(
    state: &AppState,
    n: u8,
) -> (mpsc::Sender<Incoming>, mpsc::Receiver<Message>, WireNames, tokio::task::JoinHandle<()>) {
    let (input, mut output, session) = start(state);
    let mut names = WireNames::new();
    input.send(binary(&mut names, &hello_as(n))).await.unwrap();
    assert!(matches!(next_server_msg(&mut output).await, ServerMsg::Welcome { .. }));
    (input, output, names, session)
}

async fn next_unless_presence(out: &mut mpsc::Receiver<Message>) -> ServerMsg {
    loop {
        match next_server_msg(out).await {
            ServerMsg::Presence(_) | ServerMsg::PresenceGone { .. } => {}
            other => return other,
        }
    }
}

async fn next_relay(out: &mut mpsc::Receiver<Message>) -> (Vec<Change>, crdt_core::protocol::RelayTag) {
    loop {
        if let ServerMsg::Relay { changes, tag, .. } = next_server_msg(out).await {
            return (changes, tag);
        }
    }
}

/// PROTOCOL.md 5b: a change relayed before its commit, which then fails, comes back from the
/// peer that got the relay (its author never returns), on the relay's tag alone; an altered
/// tag or list is refused with code 1.
#[tokio::test]
async fn a_relay_the_server_lost_is_given_back_by_a_peer_on_its_tag() {
    let store = Arc::new(FlakyStore::default());
    let dir = std::env::temp_dir().join("doc-server-ws-unit-give-back");
    let state = AppState::new(open_config(dir), store.clone());
    let (ann_in, mut ann_out, mut ann_names, _ann) = joined(&state, 1).await;
    let (bob_in, mut bob_out, _, _bob) = joined(&state, 2).await;

    // Ann's first change registers her (durably, before its relay) and is committed.
    let mut ann = Document::new(ReplicaId::from_u128(1));
    let first = ann.insert_text("t", 0, "!").unwrap();
    ann_in.send(binary(&mut ann_names, &ClientMsg::Changes { seq: 1, changes: vec![first.clone()] })).await.unwrap();
    assert!(matches!(next_unless_presence(&mut ann_out).await, ServerMsg::Ack { status: AckStatus::Applied, .. }));
    assert_eq!(next_relay(&mut bob_out).await.0, vec![first]);

    // The commit fails, but only after bob read the relay (a connection the actor closes
    // right away may not get to write what was queued for it).
    store.failing.store(true, std::sync::atomic::Ordering::Relaxed);
    store.slow_appends_ms.store(300, std::sync::atomic::Ordering::Relaxed);
    let lost = ann.insert_text("t", 0, "only bob has this").unwrap();
    ann_in.send(binary(&mut ann_names, &ClientMsg::Changes { seq: 2, changes: vec![lost.clone()] })).await.unwrap();
    let (relayed, tag) = next_relay(&mut bob_out).await;
    assert_eq!(relayed, vec![lost.clone()], "relayed before the commit");
    assert!(matches!(next_unless_presence(&mut ann_out).await, ServerMsg::Error { .. }), "never acknowledged");
    drop((ann_in, bob_in));

    store.failing.store(false, std::sync::atomic::Ordering::Relaxed);
    store.slow_appends_ms.store(0, std::sync::atomic::Ordering::Relaxed);
    let (bob_in, mut bob_out, _bob) = start(&state);
    let mut bob_names = WireNames::new();
    bob_in.send(binary(&mut bob_names, &hello_as(2))).await.unwrap();
    let ServerMsg::Welcome { version, .. } = next_server_msg(&mut bob_out).await else { panic!("welcome") };
    assert_eq!(version.get(ReplicaId::from_u128(1)), 1, "the store never got the second");
    // Another document's tag, then an altered list: refused for good.
    let mut forged = tag;
    forged[0] ^= 1;
    let mut altered = lost.clone();
    altered.ops = ann.clone().insert_text("t", 0, "x").unwrap().ops;
    for (seq, changes, tag) in [(1, vec![lost.clone()], forged), (2, vec![altered], tag)] {
        bob_in.send(binary(&mut bob_names, &ClientMsg::GiveBack { seq, changes, tag })).await.unwrap();
        let ServerMsg::Ack { status: AckStatus::Rejected { code, .. }, .. } = next_unless_presence(&mut bob_out).await
        else {
            panic!("refused");
        };
        assert_eq!(code, crdt_core::protocol::reject::INVALID);
    }
    // Bob's own change builds on ann's: the give-back goes first, then it is ready.
    let mut bob = ann.clone();
    bob.set_replica(ReplicaId::from_u128(2));
    let own = bob.insert_text("t", 0, "> ").unwrap();
    bob_in.send(binary(&mut bob_names, &ClientMsg::GiveBack { seq: 3, changes: vec![lost], tag })).await.unwrap();
    bob_in.send(binary(&mut bob_names, &ClientMsg::Changes { seq: 4, changes: vec![own] })).await.unwrap();
    let ServerMsg::Ack { seq: 4, status: AckStatus::Applied, .. } = next_unless_presence(&mut bob_out).await else {
        panic!("applied");
    };
    let value = state.registry.open(&DocId::parse("t").unwrap()).unwrap().value().await.unwrap();
    let value = String::from_utf8(value).unwrap();
    assert!(value.contains("> only bob has this!"), "{value}");
    assert_eq!(state.metrics.give_backs.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_round_never_waits_for_a_snapshot_being_written() {
    let store = Arc::new(FlakyStore::default());
    let dir = std::env::temp_dir().join("doc-server-ws-unit-slow-snapshot");
    let config = Config { snapshot_every: 1, ..open_config(dir) };
    let state = AppState::new(config, store.clone());
    let (input, mut output, _session) = start(&state);
    let mut names = WireNames::new();
    input.send(binary(&mut names, &hello())).await.unwrap();
    assert!(matches!(next_server_msg(&mut output).await, ServerMsg::Welcome { .. }));

    store.slow_snapshots.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut doc = Document::new(ReplicaId::from_u128(1));
    for seq in 1..=3 {
        // Every batch makes a snapshot due (`snapshot_every` 1); each write takes a second.
        let change = doc.insert_text("t", 0, "x").unwrap();
        let sent = std::time::Instant::now();
        input.send(binary(&mut names, &ClientMsg::Changes { seq, changes: vec![change] })).await.unwrap();
        let ServerMsg::Ack { seq: acked, status: AckStatus::Applied, .. } = next_server_msg(&mut output).await else {
            panic!("ack");
        };
        assert_eq!(acked, seq);
        assert!(sent.elapsed() < std::time::Duration::from_millis(500), "batch {seq} waited {:?}", sent.elapsed());
    }
    // The first snapshot is still being written; the next one starts when it is done.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(store.snapshots.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_document_that_goes_quiet_after_a_burst_is_measured_at_its_size() {
    let dir = std::env::temp_dir().join("doc-server-ws-unit-memory-gauge");
    let state = AppState::new(open_config(dir), Arc::new(MemoryStore::default()));
    let (input, mut output, _session) = start(&state);
    let mut names = WireNames::new();
    input.send(binary(&mut names, &hello())).await.unwrap();
    assert!(matches!(next_server_msg(&mut output).await, ServerMsg::Welcome { .. }));
    // One large change right after the join (within a second of the first measure), then
    // nothing: the gauge must still come to hold it.
    let mut doc = Document::new(ReplicaId::from_u128(1));
    let change = doc.insert_text("t", 0, &"x".repeat(200_000)).unwrap();
    input.send(binary(&mut names, &ClientMsg::Changes { seq: 1, changes: vec![change] })).await.unwrap();
    assert!(matches!(next_server_msg(&mut output).await, ServerMsg::Ack { status: AckStatus::Applied, .. }));
    let gauge = || state.metrics.document_memory.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while gauge() < 200_000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gauge() >= 200_000, "the gauge says {} bytes", gauge());
}

#[tokio::test]
async fn an_owner_is_registered_durably_before_the_ack_or_nothing_is_acknowledged() {
    use crate::storage::Store;
    let store = Arc::new(FlakyStore::default());
    let dir = std::env::temp_dir().join("doc-server-ws-unit-owners");
    let state = AppState::new(open_config(dir), store.clone());
    let id = DocId::parse("t").unwrap();
    let (input, mut output, session) = start(&state);
    let mut names = WireNames::new();
    input.send(binary(&mut names, &hello())).await.unwrap();
    assert!(matches!(next_server_msg(&mut output).await, ServerMsg::Welcome { .. }));

    // The registration fails: the change is not acknowledged, nor logged.
    store.failing_registrations.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut doc = Document::new(ReplicaId::from_u128(1));
    let change = doc.insert_text("t", 0, "mine").unwrap();
    input.send(binary(&mut names, &ClientMsg::Changes { seq: 1, changes: vec![change.clone()] })).await.unwrap();
    let ServerMsg::Error { message } = next_server_msg(&mut output).await else {
        panic!("an error, not an ack");
    };
    assert!(message.contains("could not store"), "{message}");
    drop(input);
    session.await.unwrap();
    let stored = store.load(&id).unwrap();
    assert!(stored.log.is_empty() && stored.authors.is_empty(), "nothing of the round was stored");

    // It works: the change is acknowledged once the store holds the secret's hash (never the
    // secret itself) for the replica.
    store.failing_registrations.store(false, std::sync::atomic::Ordering::Relaxed);
    let (input, mut output, _session) = start(&state);
    let mut names = WireNames::new();
    input.send(binary(&mut names, &hello())).await.unwrap();
    assert!(matches!(next_server_msg(&mut output).await, ServerMsg::Welcome { .. }));
    input.send(binary(&mut names, &ClientMsg::Changes { seq: 1, changes: vec![change] })).await.unwrap();
    let ServerMsg::Ack { status: AckStatus::Applied, .. } = next_server_msg(&mut output).await else {
        panic!("ack");
    };
    let authors = store.load(&id).unwrap().authors;
    assert_eq!(authors.get(&ReplicaId::from_u128(1)), Some(&crate::doc_actor::author_hash(&secret())));
    assert_ne!(authors[&ReplicaId::from_u128(1)], secret().0);

    // Another author cannot write as that replica.
    let (other_in, mut other_out, _other) = start(&state);
    let mut other_names = WireNames::new();
    let other_hello = ClientMsg::Hello {
        protocol: PROTOCOL_VERSION,
        replica: ReplicaId::from_u128(2),
        author: AuthorSecret([9; 32]),
        version: VersionVector::new(),
        user: UserInfo { name: "eve".into(), color: "#000".into() },
        token: String::new(),
    };
    other_in.send(binary(&mut other_names, &other_hello)).await.unwrap();
    assert!(matches!(next_server_msg(&mut other_out).await, ServerMsg::Welcome { .. }));
    let forged = doc.insert_text("t", 0, "not ").unwrap();
    other_in.send(binary(&mut other_names, &ClientMsg::Changes { seq: 1, changes: vec![forged] })).await.unwrap();
    loop {
        match next_server_msg(&mut other_out).await {
            ServerMsg::Ack { status: AckStatus::Rejected { code, .. }, .. } => {
                assert_eq!(code, crdt_core::protocol::reject::NOT_OWNER);
                break;
            }
            ServerMsg::Presence(_) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

/// The defaults, without access tokens (these tests are about the session).
fn open_config(dir: std::path::PathBuf) -> Config {
    Config { open: true, ..Config::with_data_dir(dir) }
}

/// A long history sent at once (here 8 batches of 1,000 keystrokes, while commits are slow) is
/// taken a few thousand changes at a time: every relay holds at most one round's changes,
/// [`crate::doc_actor::MAX_ROUND_CHANGES`] and the batch that reached it. Taken whole, such a
/// history was one round, with all of its changes decoded at once.
#[tokio::test]
async fn a_long_history_sent_at_once_is_taken_a_bounded_number_of_changes_at_a_time() {
    const BATCHES: u64 = 8;
    const BATCH: usize = 1000;
    let store = Arc::new(FlakyStore::default());
    store.slow_appends_ms.store(30, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join("doc-server-ws-unit-long-history");
    let config = Config { changes_per_second: 0, bytes_per_second: 0, ..open_config(dir) };
    let state = AppState::new(config, store.clone());
    let (ann_in, mut ann_out, mut ann_names, _ann) = joined(&state, 1).await;
    let (_bob_in, mut bob_out, _, _bob) = joined(&state, 2).await;

    let mut ann = Document::new(ReplicaId::from_u128(1));
    let batches: Vec<Vec<Change>> =
        (0..BATCHES).map(|_| (0..BATCH).map(|i| ann.insert_text("t", i, "x").unwrap()).collect()).collect();
    let sender = tokio::spawn(async move {
        for (seq, changes) in (1..).zip(batches) {
            ann_in.send(binary(&mut ann_names, &ClientMsg::Changes { seq, changes })).await.unwrap();
        }
        ann_in
    });
    let (mut seen, mut relays) = (0, 0);
    while seen < BATCHES as usize * BATCH {
        let (changes, _) = next_relay(&mut bob_out).await;
        assert!(
            changes.len() < crate::doc_actor::MAX_ROUND_CHANGES + BATCH,
            "a relay of {} changes: one round took more than it may",
            changes.len()
        );
        seen += changes.len();
        relays += 1;
    }
    assert!(relays >= 2, "{relays} relays");
    loop {
        match next_unless_presence(&mut ann_out).await {
            ServerMsg::Ack { seq: BATCHES, status: AckStatus::Applied, .. } => break,
            ServerMsg::Ack { status: AckStatus::Applied, .. } => {}
            other => panic!("expected acks, got {other:?}"),
        }
    }
    drop(sender.await.unwrap());
}

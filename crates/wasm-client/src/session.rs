//! [`Session`]: one browser replica's side of the sync protocol, as plain Rust (no `JsValue`).
//!
//! A session owns the [`Document`] and everything the page needs to keep it in sync:
//!
//! - `pending`: every change the server is not known to have, in causal order. Local edits
//!   are applied at once and appended here; a change leaves only when an `Ack` (or a `Welcome`)
//!   shows that the server's version covers it. Changes received from other tabs of the same
//!   browser go here too (once applied here), so whichever tab reconnects first delivers them.
//! - `server_version`: what the server is known to have (from `Welcome` and `Ack` versions).
//! - `unsaved`: the changes the document took in (local, from the server, from other tabs)
//!   since the page last took them for storage ([`Session::take_unsaved`]). The page appends
//!   them to IndexedDB as small records and stores a compacted state ([`Session::compact`])
//!   only when idle, so a keystroke never costs a write of the whole document.
//! - write-ahead, for a page that saves ([`Session::with_storage`]): an own change leaves the
//!   page (to the server through [`Session::next_frame`], to other tabs as a record) only once
//!   the page has reported it stored ([`Session::mark_saved`]). So a page that reopens the
//!   document as the same replica never mints again a change number that someone else has.
//! - the link: down, joining (hello sent, waiting for `Welcome`) or up. On an up link, the
//!   first `sent` pending changes have been sent on this connection; the rest go out with
//!   [`Session::next_frame`]. Batch numbers (`seq`) restart at 1 on every connection. A batch
//!   the server refuses as not ready (`reject::NOT_READY`: its causal past is missing there)
//!   stalls the connection: nothing is dropped, and the next connection offers the same
//!   changes again. A batch refused for good (any other code: authored as a replica another
//!   author owns, an id the server holds with other content, ...) would be refused on every
//!   connection: its changes and those that depend on them are discarded, the next connection
//!   rebuilds the document from the server's copy, and if the current replica is among them
//!   the session edits as a new one. So a refusal never stalls the session for ever.
//! - ownership: every `Hello` carries the session's [`AuthorSecret`], which the server
//!   registers for each replica the session writes as. When the server refuses the replica of
//!   a `Hello` (another live connection uses it: close code [`CLOSE_REPLICA_REFUSED`]), the
//!   session mints a new replica id ([`Session::disconnected_with`]); its pending changes keep
//!   their own replica ids and are still delivered, since the same secret owns those too.
//! - edits of any size: an edit inserting more than 256 KiB (`MAX_INSERT_BYTES`) or
//!   deleting more than 65,536 units (`MAX_DELETE_UNITS`) is made as several changes, each small enough for one
//!   frame, and frames stay below the server's message limit; a change no frame can carry (or,
//!   after closes for a message too big, none the server takes) is dropped like a refusal for
//!   good and [`Session::take_notice`] says so. So no frame is ever sent again and again
//!   (PROTOCOL.md section 10a).
//! - the other people in the document (presence), with their selections as [`Anchor`](crdt_core::Anchor)s that
//!   follow their characters.
//!
//! All positions in and out are UTF-16 code units, as JavaScript and CodeMirror count them.
//!
//! # Invariants
//! - `pending` holds no change covered by `server_version`, and no change twice;
//!   `pending_seqs` holds exactly the `(replica, seq)` of the pending changes.
//! - On an up link, `sent <= pending.len()`.
//! - Every pending change is applied in the document, and `pending` is in causal order.
//! - With storage, no own change whose *ordinal* is above `saved_through` is in a frame
//!   [`Session::next_frame`] returned. An own change's ordinal is its `seq` plus the base of its
//!   replica: 0 for the replica the session started with, and for each replica minted since,
//!   the ordinal of the last change of the one before (`minted`). So ordinals only grow, and
//!   equal `seq`s for a session that never minted a new replica.
//!
//! Every per-keystroke cost is independent of the number of pending and past changes: a local
//! edit appends to `pending` and `unsaved`; an acknowledgement removes covered changes from
//! the front (the oldest are acknowledged first) and scans the rest only if `pending_seqs`
//! shows that some other one is covered; a change from another tab is appended without a sort
//! when it applied at once (so it is causally after everything already pending).
//!
//! This module makes no CRDT decision of its own: merging, ordering and buffering are the
//! document's; the session only decides what to send and when a change may be forgotten.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crdt_core::protocol::{
    reject, AckStatus, AuthorSecret, Catchup, ClientMsg, Peer, RelayTag, ServerMsg, UserInfo, WireNames,
    CLOSE_REPLICA_REFUSED, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_TEXT_CHARS, PROTOCOL_VERSION,
};
use crdt_core::{
    codec, ApplyOutcome, Change, ChangeId, DecodeError, Document, EditError, ReplicaId, TextDelta, VersionVector,
};

use crate::event::{Delta, Event, EventKind, PeerView};
use crate::saved::{Saved, SavedChanges, SavedRef};

/// The text field the editor edits.
pub const BODY: &str = "body";
/// The document's title (LWW register).
pub const TITLE: &str = "title";
/// The document's tags (OR-Set).
pub const TAGS: &str = "tags";
/// Likes (PN-Counter: a like adds one, an unlike takes it back).
pub const LIKES: &str = "likes";
/// Views (G-Counter: one per page open).
pub const VIEWS: &str = "views";

/// At most this many changes go into one `Changes` frame, so that a long offline session is
/// sent as several frames well under the server's message limit.
const MAX_BATCH: usize = 256;

/// The WebSocket close code of a message above the server's size limit.
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// A frame is kept this far below the server's message limit, for its header and the varints
/// that a batch's sizes are estimated without.
const FRAME_SLACK: usize = 1 << 10;

/// At most this many changes go into one storage record ([`Session::take_unsaved`]), so that
/// a record stays far below the decoder's size limit however long the page went unsaved.
const MAX_RECORD: usize = 4096;

/// The state of the WebSocket link, as far as the protocol is concerned.
#[derive(Debug)]
enum Link {
    Down,
    /// `Hello` sent; waiting for `Welcome`.
    Joining,
    Up {
        connection: u64,
        next_seq: u64,
        /// How many of the first pending changes have been sent on this connection.
        sent: usize,
        /// The batches sent and not acknowledged yet: their `seq` and the ids of their changes
        /// (so that a refusal names exactly what was refused).
        inflight: VecDeque<(u64, Vec<ChangeId>)>,
        /// The server refused a batch: send nothing more on this connection (later changes
        /// most likely depend on the refused ones). They stay pending for the next one.
        stalled: bool,
        /// The server's version as this connection was told it: the `Welcome`'s, with every
        /// `Ack`'s entries set over it.
        told: VersionVector,
        /// The largest frame sent on this connection, in bytes: if the server closes it for a
        /// message too big, frames from then on stay below half of it.
        largest: usize,
    },
}

/// One replica's document plus its sync bookkeeping; see the module docs.
#[derive(Debug)]
pub struct Session {
    doc: Document,
    pending: VecDeque<Change>,
    /// Per replica, the `seq`s of its pending changes.
    pending_seqs: HashMap<ReplicaId, BTreeSet<u64>>,
    /// Changes taken in since the last [`Session::take_unsaved`] or [`Session::compact`].
    unsaved: Vec<Change>,
    /// The document took in state that no change describes (a merged snapshot): the next save
    /// must be a compacted state.
    needs_compaction: bool,
    /// With storage: own changes up to this `seq` are stored. `None`: the page does not save.
    saved_through: Option<u64>,
    /// The highest own `seq` in what [`Session::take_unsaved`] or [`Session::compact`] returned.
    taken_through: u64,
    server_version: VersionVector,
    link: Link,
    peers: BTreeMap<u64, Peer>,
    /// Changes from other tabs that this document has buffered, not applied: they join
    /// `pending` once applied.
    from_tabs: Vec<Change>,
    /// What this connection's frames have named (replica ids, field names), so that each is
    /// sent in full once per connection.
    names: WireNames,
    /// The next `Welcome` replaces the document (divergence recovery).
    resyncing: bool,
    /// Proves to the server that this session authors as its replicas.
    author: AuthorSecret,
    /// The replicas this session edited as before the current one, each with its ordinal
    /// base (see the module invariants); and the current replica's base.
    minted: Vec<(ReplicaId, u64)>,
    base: u64,
    /// The largest frame [`Session::next_frame`] returns, in bytes: below the server's default
    /// message limit, halved at every close for a message too big.
    frame_limit: usize,
    /// The size limit of the document's text that [`Session::text_room`] checks against.
    max_text_chars: u64,
    /// What to tell the person about changes this session dropped because they can never be
    /// sent (larger than a frame may be), until the page takes it ([`Session::take_notice`]).
    notice: Option<String>,
    /// Relays kept until durable, and what a restarted server lacked of them (`relays.rs`).
    relays: relays::Relays,
}

impl Session {
    /// An empty document edited as a fresh replica.
    pub fn new(replica: ReplicaId) -> Session {
        Session {
            doc: Document::new(replica),
            pending: VecDeque::new(),
            pending_seqs: HashMap::new(),
            unsaved: Vec::new(),
            needs_compaction: false,
            saved_through: None,
            taken_through: 0,
            server_version: VersionVector::new(),
            link: Link::Down,
            peers: BTreeMap::new(),
            from_tabs: Vec::new(),
            names: WireNames::new(),
            resyncing: false,
            author: AuthorSecret::random(),
            minted: Vec::new(),
            base: 0,
            frame_limit: DEFAULT_MAX_MESSAGE_BYTES - FRAME_SLACK,
            max_text_chars: DEFAULT_MAX_TEXT_CHARS,
            notice: None,
            relays: Default::default(),
        }
    }

    /// The secret this session proves its authorship with (drawn at random by
    /// [`Session::new`]; a page that saves keeps one per document and sets it with
    /// [`Session::set_author`]).
    pub fn author(&self) -> &AuthorSecret {
        &self.author
    }

    /// Authors as `author` from the next connection on: the secret the browser keeps for this
    /// document, which owns the replicas its earlier pages edited as.
    pub fn set_author(&mut self, author: AuthorSecret) {
        self.author = author;
    }

    /// Edits as `replica` from now on (a fresh id: see [`Document::set_replica`]). The changes
    /// made as the earlier replica stay pending under its id; write-ahead still holds for them.
    pub fn remint(&mut self, replica: ReplicaId) {
        let old = self.doc.replica();
        if replica == old {
            return;
        }
        let next_base = self.base + self.doc.version().get(old);
        self.minted.push((old, self.base));
        self.base = next_base;
        self.doc.set_replica(replica);
    }

    /// The ordinal of `change` if this session made it (see the module invariants).
    fn own_ordinal(&self, change: &Change) -> Option<u64> {
        ordinal(change, self.doc.replica(), self.base, &self.minted)
    }

    /// A session restored from [`Session::export`] bytes, edited as `replica`.
    ///
    /// `replica` should be fresh unless storage guarantees write-ahead (see
    /// [`Session::with_storage`]): two sessions restoring the same saved state as one replica
    /// would mint the same ids. The pending changes of the earlier replica are still sent.
    pub fn load(bytes: &[u8], replica: ReplicaId) -> Result<Session, DecodeError> {
        let saved = Saved::decode(bytes)?;
        let doc = codec::decode_snapshot(&saved.snapshot, replica)?;
        // The pending changes a compact state leaves out are in its history.
        let derived = doc.ops_since(&saved.server_version).unwrap_or_default();
        let mut session = Session::new(replica);
        session.doc = doc;
        session.server_version = saved.server_version;
        session.add_pending(saved.pending);
        session.add_pending(derived);
        session.sort_unsent();
        Ok(session)
    }

    /// The document state and the pending changes, for browser storage. The pending changes
    /// are left out when the history holds them all (every change after the server's known
    /// version): loading takes them from there, so an offline session's state stays the size
    /// of the compact document.
    pub fn export(&self) -> Vec<u8> {
        let derivable = self.doc.history_base().le(&self.server_version);
        let none = VecDeque::new();
        SavedRef {
            snapshot: codec::encode_snapshot(&self.doc),
            pending: if derivable { &none } else { &self.pending },
            server_version: &self.server_version,
        }
        .encode()
    }

    /// Merges state saved by another tab (or an earlier session) into this one.
    pub fn merge_saved(&mut self, bytes: &[u8]) -> Result<Event, DecodeError> {
        let saved = Saved::decode(bytes)?;
        let other = codec::decode_snapshot(&saved.snapshot, self.doc.replica())?;
        let derived = other.ops_since(&saved.server_version).unwrap_or_default();
        let before = self.body();
        self.doc.merge(&other);
        self.needs_compaction = true;
        self.server_version.merge(&saved.server_version);
        self.add_pending(saved.pending);
        self.add_pending(derived);
        self.adopt_tab_changes(false);
        self.sort_unsent();
        self.prune();
        let mut event = Event::new(EventKind::Merged);
        event.reset = self.body() != before;
        event.changed = true;
        Ok(event)
    }

    /// The document.
    pub fn doc(&self) -> &Document {
        &self.doc
    }

    /// The editor's text.
    pub fn body(&self) -> String {
        self.doc.text(BODY).unwrap_or_default()
    }

    /// How many changes the server has not acknowledged yet.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// `"down"`, `"joining"` or `"up"`.
    pub fn link_state(&self) -> &'static str {
        match self.link {
            Link::Down => "down",
            Link::Joining => "joining",
            Link::Up { .. } => "up",
        }
    }

    // ---- The protocol. ----

    /// Starts a connection: the `Hello` frame to send first. Forgets the previous
    /// connection's batches; their changes are still pending and are sent again. `token` is
    /// the access token of the page's link (empty for none).
    pub fn hello(&mut self, user: UserInfo, token: &str) -> Vec<u8> {
        self.link = Link::Joining;
        self.peers.clear();
        let version = if self.resyncing { VersionVector::new() } else { self.doc.version().clone() };
        // A new connection: nothing is named on it yet.
        self.names = WireNames::new();
        ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            replica: self.doc.replica(),
            author: self.author,
            version,
            user,
            token: token.to_owned(),
        }
        .encode_on(&mut self.names)
    }

    /// The connection is gone.
    pub fn disconnected(&mut self) {
        self.link = Link::Down;
        self.peers.clear();
    }

    /// The connection is gone with the WebSocket close `code` (if one came). Returns whether
    /// the session now edits as a new replica: the server refused its replica id
    /// ([`CLOSE_REPLICA_REFUSED`]: another live connection uses it, such as this page's own
    /// previous socket that the server has not seen die yet). Connect again then; the pending
    /// changes of the old id are delivered on the new connection.
    ///
    /// A close for a message too big ([`CLOSE_MESSAGE_TOO_BIG`]: the server's limit is lower
    /// than this session assumed) halves the frame size from then on, below the largest frame
    /// the connection sent; a change that does not fit even alone is then dropped as refused
    /// for good ([`Session::next_frame`]). So the same frame is never sent again, and the limit
    /// reaches any server's after a few closes.
    pub fn disconnected_with(&mut self, code: Option<u16>) -> bool {
        if let (Some(CLOSE_MESSAGE_TOO_BIG), Link::Up { largest, .. }) = (code, &self.link) {
            self.frame_limit = self.frame_limit.min(*largest) / 2;
        }
        self.disconnected();
        if code == Some(CLOSE_REPLICA_REFUSED) {
            self.remint(ReplicaId::random());
            return true;
        }
        false
    }

    /// The next `Changes` frame to send, if the link is up and some pending changes have not
    /// been sent on it yet. Call until it returns `None`.
    ///
    /// A frame holds at most [`MAX_BATCH`] changes and stays below the frame limit (the
    /// server's default message limit, or less after a close for a message too big). A change
    /// too large for a frame by itself (one made before edits were split, restored from
    /// storage; or a server with a lower limit) can never be delivered: it is dropped like a
    /// change the server refused for good, with what depends on it, the next connection
    /// rebuilds the document from the server's copy, and [`Session::take_notice`] says so.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        let Link::Up { sent, stalled: false, .. } = &self.link else {
            return None;
        };
        let sent = *sent;
        let mut end = self.pending.len().min(sent + MAX_BATCH);
        // Relays a restarted server lacked go back first, each in its place (`relays.rs`).
        match self.next_give_back(sent) {
            Ok(frame) => return Some(frame),
            Err(Some(before)) => end = end.min(sent + before),
            Err(None) => {}
        }
        if let Some(saved) = self.saved_through {
            // Write-ahead: stop at the first own change that is not stored yet.
            let (me, base, minted) = (self.doc.replica(), self.base, &self.minted);
            let unsaved = self
                .pending
                .range(sent..end)
                .position(|c| ordinal(c, me, base, minted).is_some_and(|ordinal| ordinal > saved));
            if let Some(offset) = unsaved {
                end = sent + offset;
            }
        }
        // Each change's size alone, with every name in full, bounds what it adds to the frame.
        let mut bytes = 0;
        for (offset, change) in self.pending.range(sent..end).enumerate() {
            let size = ClientMsg::Changes { seq: 0, changes: vec![change.clone()] }.encode().len();
            if size > self.frame_limit && offset == 0 {
                self.drop_unsendable(change.id(), size);
                return None;
            }
            if bytes + size > self.frame_limit {
                end = sent + offset;
                break;
            }
            bytes += size;
        }
        if sent >= end {
            return None;
        }
        let changes: Vec<Change> = self.pending.range(sent..end).cloned().collect();
        let Link::Up { next_seq, sent, inflight, largest, .. } = &mut self.link else {
            return None;
        };
        let seq = *next_seq;
        *next_seq += 1;
        *sent = end;
        inflight.push_back((seq, changes.iter().map(Change::id).collect()));
        let frame = ClientMsg::Changes { seq, changes }.encode_on(&mut self.names);
        *largest = (*largest).max(frame.len());
        Some(frame)
    }

    /// Drops the pending change `id`, which no frame can carry, and what depends on it: as a
    /// refusal for good (see [`Session::next_frame`]).
    fn drop_unsendable(&mut self, id: ChangeId, size: usize) {
        let dropped = self.discard(&[id]);
        if let Link::Up { stalled, sent, .. } = &mut self.link {
            *stalled = true;
            *sent = 0;
        }
        self.start_resync();
        self.notice = Some(format!(
            "An edit was too large to send ({} KB; the server takes at most about {} KB at once). It was removed \
             from this page, with {} later edit(s) that built on it; everything else keeps syncing.",
            size / 1000,
            self.frame_limit / 1000,
            dropped.saturating_sub(1)
        ));
    }

    /// What to tell the person about edits this session dropped since the last call, if
    /// anything; the page then reconnects, so that the document is rebuilt from the server's
    /// copy without them.
    pub fn take_notice(&mut self) -> Option<String> {
        self.notice.take()
    }

    /// Handles one frame from the server.
    pub fn receive(&mut self, frame: &[u8]) -> Result<Event, DecodeError> {
        Ok(match ServerMsg::decode(frame)? {
            ServerMsg::Welcome { connection, catchup, version, hash, peers } => {
                self.welcome(connection, catchup, version, hash, peers)
            }
            ServerMsg::Ack { seq, status, version, hash } => self.ack(seq, status, version, hash),
            ServerMsg::Relay { changes, tag, number, durable } => self.relay(changes, tag, number, durable),
            // (Protocol 4.) Like a relay already durable: nothing to keep.
            ServerMsg::Changes { changes } => self.relay(changes, [0; 16], 0, 0),
            ServerMsg::Presence(peer) => {
                let mut event = Event::new(EventKind::Presence);
                if !matches!(self.link, Link::Up { connection, .. } if connection == peer.connection) {
                    self.peers.insert(peer.connection, peer);
                    event.peers_changed = true;
                }
                event
            }
            ServerMsg::PresenceGone { connection } => {
                let mut event = Event::new(EventKind::Presence);
                event.peers_changed = self.peers.remove(&connection).is_some();
                event
            }
            ServerMsg::Error { message } => {
                let mut event = Event::new(EventKind::Error);
                event.message = Some(message);
                event
            }
        })
    }

    /// Applies changes another tab of this browser made (sent over a `BroadcastChannel`).
    /// The server may not have them yet, so they join the pending changes.
    ///
    /// `bytes` are encoded changes (what a local edit returns) or a storage record (what
    /// [`Session::take_unsaved`] returns there, sent once stored), whose knowledge of the
    /// server is taken too.
    pub fn receive_from_tab(&mut self, bytes: &[u8]) -> Result<Event, DecodeError> {
        let changes = if bytes.get(1) == Some(&crate::saved::KIND_SAVED_CHANGES) {
            let record = SavedChanges::decode(bytes)?;
            self.server_version.merge(&record.server_version);
            codec::decode_changes(&record.changes)?
        } else {
            codec::decode_changes(bytes)?
        };
        self.from_tabs.extend(changes.iter().cloned());
        let mut event = self.apply_changes(changes, EventKind::Changes);
        event.acked = self.prune();
        Ok(event)
    }

    /// Moves the changes from other tabs that the document has now applied into `pending`.
    /// One still buffered here waits: its causal past is missing, so the server would refuse
    /// a batch holding it.
    ///
    /// `applied_in_order`: each of them was applied as it arrived, none released from the
    /// document's buffer; then they are causally after every pending change and in causal
    /// order among themselves, and need no sort.
    fn adopt_tab_changes(&mut self, applied_in_order: bool) {
        if self.from_tabs.is_empty() {
            return;
        }
        let version = self.doc.version();
        let (ready, waiting): (Vec<Change>, Vec<Change>) =
            std::mem::take(&mut self.from_tabs).into_iter().partition(|c| c.seq <= version.get(c.replica));
        self.from_tabs = waiting;
        if self.add_pending(ready) && !applied_in_order {
            self.sort_unsent();
        }
    }

    fn welcome(
        &mut self,
        connection: u64,
        catchup: Catchup,
        version: VersionVector,
        hash: u64,
        peers: Vec<Peer>,
    ) -> Event {
        let mut event = Event::new(EventKind::Welcome);
        if self.resyncing {
            self.resyncing = false;
            // The document becomes the server's copy: relays it lacks are no longer here to
            // give back either (their authors still hold them).
            self.relays = Default::default();
            self.rebuild_from(catchup, &mut event);
        } else {
            self.catch_up(catchup, &mut event);
        }
        self.server_version.merge(&version);
        self.relays_welcome(&version);
        event.diverged = self.diverged(&version, hash);
        self.link = Link::Up {
            connection,
            next_seq: 1,
            sent: 0,
            inflight: VecDeque::new(),
            stalled: false,
            told: version,
            largest: 0,
        };
        event.acked = self.prune();
        self.peers = peers
            .into_iter()
            .filter(|peer| peer.connection != connection)
            .map(|peer| (peer.connection, peer))
            .collect();
        event.peers_changed = true;
        event
    }

    /// Applies a `Welcome`'s catch-up to the document.
    fn catch_up(&mut self, catchup: Catchup, event: &mut Event) -> bool {
        match catchup {
            Catchup::Changes(changes) => {
                self.apply_into(changes, event);
                true
            }
            Catchup::Snapshot(bytes) => match codec::decode_snapshot(&bytes, self.doc.replica()) {
                Ok(other) => {
                    let before = self.body();
                    self.doc.merge(&other);
                    self.needs_compaction = true;
                    self.adopt_tab_changes(false);
                    event.reset |= self.body() != before;
                    event.changed = true;
                    true
                }
                Err(error) => {
                    event.message = Some(format!("bad snapshot from the server: {error}"));
                    false
                }
            },
        }
    }

    /// Divergence recovery (PROTOCOL.md section 6): the document becomes the server's state
    /// (the catch-up of a hello with an empty version) plus the changes the server does not
    /// have yet, re-applied on top. The editor rereads the whole text.
    fn rebuild_from(&mut self, catchup: Catchup, event: &mut Event) {
        let before = self.body();
        let fresh = Document::new(self.doc.replica());
        let old = std::mem::replace(&mut self.doc, fresh);
        if !self.catch_up(catchup, event) {
            self.doc = old;
            return;
        }
        let mut own: Vec<Change> = self.pending.iter().cloned().collect();
        own.extend(self.from_tabs.iter().cloned());
        let mut ignored = Event::new(EventKind::Welcome);
        self.apply_into(own, &mut ignored);
        // The stored state may still hold changes that were discarded: replace it.
        self.needs_compaction = true;
        event.deltas.clear();
        event.reset = self.body() != before;
        event.changed = true;
    }

    /// After a divergence: the next `hello` asks the server for the whole document, and its
    /// `Welcome` rebuilds this one (see [`Session::receive`]); pending changes are kept.
    pub fn start_resync(&mut self) {
        self.resyncing = true;
    }

    fn apply_changes(&mut self, changes: Vec<Change>, kind: EventKind) -> Event {
        let mut event = Event::new(kind);
        self.apply_into(changes, &mut event);
        event
    }

    fn apply_into(&mut self, changes: Vec<Change>, event: &mut Event) {
        let mut in_order = true;
        for change in changes {
            let copy = change.clone();
            match self.doc.apply_change(change) {
                Ok(ApplyOutcome::Applied { changes, deltas }) => {
                    self.unsaved.push(copy);
                    in_order &= changes == 1;
                    event.changed = true;
                    event.deltas.extend(
                        deltas.into_iter().filter(|(field, _)| field == BODY).map(|(_, delta)| Delta::from(delta)),
                    );
                }
                // A buffered change is stored too: it applies on reload once its past arrives.
                Ok(ApplyOutcome::Buffered) => self.unsaved.push(copy),
                Ok(ApplyOutcome::Duplicate) => {}
                Err(error) => event.message = Some(format!("a change was refused: {error}")),
            }
        }
        self.adopt_tab_changes(in_order);
    }
}

/// The ordinal of `change` if it is an own change of a session whose current replica is `me`
/// (with ordinal base `base`) and whose earlier replicas are `minted`.
fn ordinal(change: &Change, me: ReplicaId, base: u64, minted: &[(ReplicaId, u64)]) -> Option<u64> {
    if change.replica == me {
        return Some(base + change.seq);
    }
    minted.iter().find(|(replica, _)| *replica == change.replica).map(|(_, base)| base + change.seq)
}

impl From<TextDelta> for Delta {
    fn from(delta: TextDelta) -> Delta {
        match delta {
            TextDelta::Insert { pos_utf16, text, .. } => Delta::Insert { pos: pos_utf16, text },
            TextDelta::Delete { pos_utf16, len_utf16, .. } => Delta::Delete { pos: pos_utf16, len: len_utf16 },
        }
    }
}

mod acks;
mod edits;
#[cfg(test)]
mod large_tests;
mod pending;
mod presence;
mod relays;
mod storage;
#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;

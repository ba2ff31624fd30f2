//! Durable storage of documents: the [`Store`] trait, an in-memory [`MemoryStore`] for tests,
//! and the embedded SQLite default ([`SqliteStore`], in `storage/sqlite.rs`).
//!
//! A stored document is a *snapshot* (an encoded document, with its history) plus an *op log*
//! suffix: entries appended after the snapshot, each one group commit's changes encoded with
//! [`crdt_core::codec::encode_changes`]. Loading decodes the snapshot and re-applies the log in
//! order. The store only moves bytes; encoding and decoding belong to the document actor.
//!
//! Next to them the store keeps the *authors* of a document: per replica, the SHA-256 of the
//! author secret that first used it (see `doc_actor/authors.rs`). A registration is never
//! changed or removed.
//!
//! Log entries are numbered by an index that only grows (per store, not per document), and a
//! snapshot records the last index it includes, so a crash between any two statements leaves a
//! loadable document: the snapshot and the deletion of the log prefix it covers are one
//! transaction.
//!
//! # Invariants
//! - [`Store::append`] returns only once the entry is durable (an fsync'd commit for SQLite).
//! - A snapshot never replaces a newer one: [`Store::write_snapshot`] with an index at or below
//!   the stored snapshot's does nothing, so an older writer cannot resurrect a truncated prefix.
//! - `load` returns the log entries after the snapshot's index, in index order.
//! - [`Store::register_authors`] returns only once the registrations are durable, and never
//!   replaces the hash of a replica already registered.
//!
//! **Leases** (stores several servers share: [`PgStore`]). A server serves a document only
//! while it holds the document's lease: [`Store::claim`] takes it (when nobody holds it, or the
//! holder let it expire) and bumps its *epoch*; [`Store::renew`] extends every lease the server
//! holds; [`Store::release`] gives one up. Every append and snapshot carries the epoch it was
//! made under, and the store checks it in the same transaction as the write: once another
//! server has claimed the document, a write of an older epoch is refused
//! ([`StoreError::Fenced`]) and never acknowledged. ARCHITECTURE.md has the protocol with a
//! timeline. A store that only one process ever opens (SQLite, memory) grants every claim at
//! epoch 0 and checks nothing.
//!
//! The methods block (SQLite and the PostgreSQL client are synchronous): async callers run them
//! on `tokio::task::spawn_blocking`.

mod group;
mod postgres;
mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub use postgres::{PgStore, PgStoreOptions};
pub use sqlite::SqliteStore;

use crdt_core::ReplicaId;

use crate::DocId;

/// The SHA-256 of an author secret: what the server keeps of it.
pub type AuthorHash = [u8; 32];

/// The epoch of a document's lease: grows by one at every claim (0 where there are no leases).
pub type Epoch = u64;

/// The answer to [`Store::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This server holds the lease now, at this epoch.
    Owned(Epoch),
    /// Another server holds a live lease (its id): it has been asked to hand the document over.
    Elsewhere(String),
}

/// What [`Store::renew`] found: the documents this server still holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Renewal {
    /// Per document, the epoch held and whether another server asked for it.
    pub held: HashMap<DocId, (Epoch, bool)>,
}

/// What a store failed at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The SQLite database refused an operation.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused an operation, or the connection to it failed.
    #[error("postgres: {}", postgres_detail(.0))]
    Postgres(#[from] ::postgres::Error),
    /// The write was made under a lease epoch that is no longer current: another server owns
    /// the document now. Nothing was written.
    #[error("fenced: document {doc} is owned by another server now (our epoch {epoch} is stale)")]
    Fenced {
        /// The document.
        doc: String,
        /// The stale epoch the write carried.
        epoch: Epoch,
    },
    /// The data directory could not be created or opened.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The store's settings are wrong (for example an unparsable `--store` URL).
    #[error("{0}")]
    Config(String),
    /// A lock was poisoned by a panic in another thread.
    #[error("storage lock poisoned by an earlier panic")]
    Poisoned,
    /// This store does not keep that kind of record.
    #[error("this store does not keep {0}")]
    Unsupported(&'static str),
    /// The group commit that held this append failed (the first error, as text: every append
    /// of that commit gets it).
    #[error("group commit failed: {0}")]
    GroupCommit(String),
}

/// One op log entry: the changes of one group commit, encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Position in the log (grows with every append, never reused).
    pub index: u64,
    /// `codec::encode_changes` of the changes.
    pub bytes: Vec<u8>,
}

/// A document as stored: the latest snapshot and the log after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredDoc {
    /// `codec::encode_snapshot` bytes and the last log index they include.
    pub snapshot: Option<(Vec<u8>, u64)>,
    /// The entries after the snapshot, in order.
    pub log: Vec<LogEntry>,
    /// Who owns each replica that ever wrote (or claimed) the document.
    pub authors: BTreeMap<ReplicaId, AuthorHash>,
    /// The name each replica's person gave when it last connected (for the history view).
    pub names: BTreeMap<ReplicaId, String>,
}

/// One row of `GET /docs`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DocSummary {
    /// The document id.
    pub id: String,
    /// When it last changed (milliseconds since the Unix epoch).
    pub updated_ms: u64,
    /// Its title as last recorded ([`Store::set_title`]); `None` before it had one.
    pub title: Option<String>,
}

/// A webhook registered over HTTP (`webhooks.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWebhook {
    /// Its id (`wh_...`).
    pub id: String,
    /// The document it is called for; `None` for every document.
    pub doc: Option<String>,
    /// The `http://` URL it calls.
    pub url: String,
    /// The secret its calls are signed with.
    pub secret: String,
    /// When it was registered (milliseconds since the Unix epoch).
    pub created_ms: u64,
}

/// Durable storage of documents; see the module docs.
pub trait Store: Send + Sync + 'static {
    /// The stored document; an empty [`StoredDoc`] for an id never written.
    fn load(&self, doc: &DocId) -> Result<StoredDoc, StoreError>;

    /// Appends one log entry and makes it durable before returning; returns its index. Refused
    /// ([`StoreError::Fenced`]) unless `epoch` is the current epoch of this server's lease.
    fn append(&self, doc: &DocId, epoch: Epoch, bytes: &[u8]) -> Result<u64, StoreError>;

    /// Stores `snapshot` as including every log entry up to `through`, and deletes those
    /// entries, in one transaction. Does nothing if the stored snapshot is as recent. Fenced
    /// like [`Store::append`].
    fn write_snapshot(&self, doc: &DocId, epoch: Epoch, snapshot: &[u8], through: u64) -> Result<(), StoreError>;

    /// Takes `doc`'s lease if nobody holds a live one (the epoch grows by one), or says who
    /// holds it (and asks that server to hand it over). Without leases: always `Owned(0)`.
    fn claim(&self, _doc: &DocId) -> Result<Claim, StoreError> {
        Ok(Claim::Owned(0))
    }

    /// Extends every lease this server holds; `None` for a store without leases.
    fn renew(&self) -> Result<Option<Renewal>, StoreError> {
        Ok(None)
    }

    /// Gives up `doc`'s lease of `epoch` (if still held): to the server that last asked for it
    /// (with a new epoch), else to whoever claims it next.
    fn release(&self, _doc: &DocId, _epoch: Epoch) -> Result<(), StoreError> {
        Ok(())
    }

    /// Gives back what the store caches in memory, after a document unloaded: a load fills
    /// caches (SQLite's pages) that the documents still loaded do not need. Best effort.
    fn trim_memory(&self) {}

    /// Records the owner of each replica in `authors` that has none yet (a replica already
    /// registered keeps its owner), durably before returning.
    fn register_authors(&self, doc: &DocId, authors: &[(ReplicaId, AuthorHash)]) -> Result<(), StoreError>;

    /// Every stored document, by id.
    fn list(&self) -> Result<Vec<DocSummary>, StoreError>;

    /// The summary of `doc`, if anything was ever stored for it.
    fn summary(&self, doc: &DocId) -> Result<Option<DocSummary>, StoreError>;

    /// Records the names people gave for their replicas of `doc` (the latest wins), for the
    /// history view. Cosmetic like the title: not part of the acknowledged history.
    fn set_names(&self, doc: &DocId, names: &[(ReplicaId, String)]) -> Result<(), StoreError>;

    /// Records `doc`'s title for listings (not part of the document's durable history, which
    /// holds the title itself: a lost update only shows an older title in a list).
    fn set_title(&self, doc: &DocId, title: &str) -> Result<(), StoreError>;

    /// Whether anything was ever stored for `doc`.
    fn exists(&self, doc: &DocId) -> Result<bool, StoreError>;

    /// Commits a small write durably, the way an append is committed: an error when the store
    /// cannot take writes now (disk full, read-only, a failing disk). What `/readyz` asks.
    fn probe(&self) -> Result<(), StoreError>;

    /// Every registered webhook, in registration order. By default none (a store that keeps
    /// none refuses [`Store::add_webhook`]).
    fn webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        Ok(Vec::new())
    }

    /// Stores a new webhook, durably before returning.
    fn add_webhook(&self, _webhook: &StoredWebhook) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("webhooks"))
    }

    /// Removes webhook `id` of `doc` (`None`: a global one); whether it was there.
    fn remove_webhook(&self, _doc: Option<&DocId>, _id: &str) -> Result<bool, StoreError> {
        Err(StoreError::Unsupported("webhooks"))
    }
}

/// A PostgreSQL error with the server's code and message (its `Display` says only "db error").
fn postgres_detail(error: &::postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A [`Store`] in memory, for unit tests and experiments. Durable only as long as the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    next_index: u64,
    docs: HashMap<DocId, (StoredDoc, u64)>,
    titles: HashMap<DocId, String>,
    webhooks: Vec<StoredWebhook>,
}

impl Store for MemoryStore {
    fn load(&self, doc: &DocId) -> Result<StoredDoc, StoreError> {
        let inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(inner.docs.get(doc).map(|(d, _)| d.clone()).unwrap_or_default())
    }

    fn append(&self, doc: &DocId, _epoch: Epoch, bytes: &[u8]) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        inner.next_index += 1;
        let index = inner.next_index;
        let (stored, updated) = inner.docs.entry(doc.clone()).or_default();
        stored.log.push(LogEntry { index, bytes: bytes.to_vec() });
        *updated = now_ms();
        Ok(index)
    }

    fn write_snapshot(&self, doc: &DocId, _epoch: Epoch, snapshot: &[u8], through: u64) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        let (stored, updated) = inner.docs.entry(doc.clone()).or_default();
        if stored.snapshot.as_ref().is_some_and(|(_, at)| *at >= through) {
            return Ok(());
        }
        stored.snapshot = Some((snapshot.to_vec(), through));
        stored.log.retain(|entry| entry.index > through);
        *updated = now_ms();
        Ok(())
    }

    fn register_authors(&self, doc: &DocId, authors: &[(ReplicaId, AuthorHash)]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        let (stored, _) = inner.docs.entry(doc.clone()).or_default();
        for (replica, hash) in authors {
            stored.authors.entry(*replica).or_insert(*hash);
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<DocSummary>, StoreError> {
        let inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        let mut docs: Vec<DocSummary> = inner
            .docs
            .iter()
            .map(|(id, (_, updated_ms))| DocSummary {
                id: id.to_string(),
                updated_ms: *updated_ms,
                title: inner.titles.get(id).cloned(),
            })
            .collect();
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(docs)
    }

    fn summary(&self, doc: &DocId) -> Result<Option<DocSummary>, StoreError> {
        let inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(inner.docs.get(doc).map(|(_, updated_ms)| DocSummary {
            id: doc.to_string(),
            updated_ms: *updated_ms,
            title: inner.titles.get(doc).cloned(),
        }))
    }

    fn set_title(&self, doc: &DocId, title: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        inner.titles.insert(doc.clone(), title.to_owned());
        Ok(())
    }

    fn set_names(&self, doc: &DocId, names: &[(ReplicaId, String)]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        let (stored, _) = inner.docs.entry(doc.clone()).or_default();
        stored.names.extend(names.iter().cloned());
        Ok(())
    }

    fn exists(&self, doc: &DocId) -> Result<bool, StoreError> {
        let inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(inner.docs.contains_key(doc))
    }

    fn probe(&self) -> Result<(), StoreError> {
        self.inner.lock().map(drop).map_err(|_| StoreError::Poisoned)
    }

    fn webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        Ok(self.inner.lock().map_err(|_| StoreError::Poisoned)?.webhooks.clone())
    }

    fn add_webhook(&self, webhook: &StoredWebhook) -> Result<(), StoreError> {
        self.inner.lock().map_err(|_| StoreError::Poisoned)?.webhooks.push(webhook.clone());
        Ok(())
    }

    fn remove_webhook(&self, doc: Option<&DocId>, id: &str) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Poisoned)?;
        let before = inner.webhooks.len();
        let doc = doc.map(DocId::to_string);
        inner.webhooks.retain(|hook| !(hook.id == id && hook.doc == doc));
        Ok(inner.webhooks.len() < before)
    }
}

/// The contract every [`Store`] must keep, run against each implementation by its tests
/// (`tests/store_conformance.rs` runs it on SQLite and PostgreSQL). Panics where it is broken.
/// `store` must be empty.
#[doc(hidden)]
pub fn check_store_contract(store: &dyn Store) {
    let a = DocId::parse("a").unwrap();
    let b = DocId::parse("b").unwrap();
    assert_eq!(store.load(&a).unwrap(), StoredDoc::default());
    assert!(!store.exists(&a).unwrap());
    let Claim::Owned(ea) = store.claim(&a).unwrap() else { panic!("nobody holds a") };
    let Claim::Owned(eb) = store.claim(&b).unwrap() else { panic!("nobody holds b") };

    let first = store.append(&a, ea, b"one").unwrap();
    let second = store.append(&a, ea, b"two").unwrap();
    let other = store.append(&b, eb, b"bee").unwrap();
    assert!(first < second && second < other, "indexes only grow");
    assert!(store.exists(&a).unwrap());

    store.write_snapshot(&a, ea, b"snap-1", first).unwrap();
    let loaded = store.load(&a).unwrap();
    assert_eq!(loaded.snapshot, Some((b"snap-1".to_vec(), first)));
    assert_eq!(loaded.log, vec![LogEntry { index: second, bytes: b"two".to_vec() }]);

    // An older snapshot never replaces a newer one.
    store.write_snapshot(&a, ea, b"snap-2", second).unwrap();
    store.write_snapshot(&a, ea, b"stale", first).unwrap();
    let loaded = store.load(&a).unwrap();
    assert_eq!(loaded.snapshot, Some((b"snap-2".to_vec(), second)));
    assert!(loaded.log.is_empty());

    // Appends after a snapshot that truncated the whole log keep growing.
    let third = store.append(&a, ea, b"three").unwrap();
    assert!(third > other);
    assert_eq!(store.load(&a).unwrap().log.len(), 1);

    let ids: Vec<String> = store.list().unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["a", "b"]);

    // Titles: recorded for listings, the latest wins.
    assert_eq!(store.summary(&a).unwrap().unwrap().title, None);
    store.set_title(&a, "First").unwrap();
    store.set_title(&a, "Second").unwrap();
    assert_eq!(store.summary(&a).unwrap().unwrap().title.as_deref(), Some("Second"));
    assert_eq!(store.list().unwrap()[0].title.as_deref(), Some("Second"));
    assert_eq!(store.summary(&DocId::parse("never").unwrap()).unwrap(), None);

    // Authors: registered once, never replaced, per document.
    let (r1, r2) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
    store.register_authors(&a, &[(r1, [1; 32]), (r2, [2; 32])]).unwrap();
    store.register_authors(&a, &[(r1, [9; 32])]).unwrap();
    let authors = store.load(&a).unwrap().authors;
    assert_eq!(authors, BTreeMap::from([(r1, [1; 32]), (r2, [2; 32])]));
    assert!(store.load(&b).unwrap().authors.is_empty());
    assert_eq!(store.load(&a).unwrap().snapshot, Some((b"snap-2".to_vec(), second)), "the rest is untouched");
    assert_eq!(store.load(&b).unwrap().log[0].bytes, b"bee");

    // Names: per replica, the latest wins.
    store.set_names(&a, &[(r1, "Ann".into()), (r2, "Bo".into())]).unwrap();
    store.set_names(&a, &[(r1, "Anne".into())]).unwrap();
    assert_eq!(store.load(&a).unwrap().names, BTreeMap::from([(r1, "Anne".to_owned()), (r2, "Bo".to_owned())]));

    // Webhooks: kept in order, removed only under their own document.
    let hook = |id: &str, doc: Option<&str>| StoredWebhook {
        id: id.into(),
        doc: doc.map(str::to_owned),
        url: format!("http://127.0.0.1:1/{id}"),
        secret: format!("whsec_{id}"),
        created_ms: 7,
    };
    store.add_webhook(&hook("w1", Some("a"))).unwrap();
    store.add_webhook(&hook("w2", None)).unwrap();
    assert_eq!(store.webhooks().unwrap(), [hook("w1", Some("a")), hook("w2", None)]);
    assert!(!store.remove_webhook(Some(&b), "w1").unwrap(), "another document's");
    assert!(!store.remove_webhook(None, "w1").unwrap(), "not a global one");
    assert!(store.remove_webhook(Some(&a), "w1").unwrap());
    assert_eq!(store.webhooks().unwrap(), [hook("w2", None)]);
    // The probe commits while the store takes writes.
    store.probe().unwrap();
}

/// The lease contract of a store several servers share: `one` and `two` are two servers'
/// handles on the same empty store, whose leases last `ttl`. Panics where it is broken.
#[doc(hidden)]
pub fn check_lease_contract(one: &dyn Store, two: &dyn Store, ttl: std::time::Duration) {
    let doc = DocId::parse("leased").unwrap();
    let Claim::Owned(first) = one.claim(&doc).unwrap() else { panic!("nobody held the lease") };
    assert!(matches!(two.claim(&doc).unwrap(), Claim::Elsewhere(_)), "a live lease is not taken");
    let renewal = one.renew().unwrap().expect("a shared store has leases");
    assert_eq!(renewal.held.get(&doc), Some(&(first, true)), "the holder renews and learns it is wanted");
    assert!(two.renew().unwrap().unwrap().held.is_empty());
    let kept = one.append(&doc, first, b"kept").unwrap();

    // A release lets the other take it at once, with a new epoch that fences the old one.
    one.release(&doc, first).unwrap();
    let Claim::Owned(second) = two.claim(&doc).unwrap() else { panic!("a released lease is free") };
    assert!(second > first, "every claim moves the epoch on");
    assert!(matches!(one.append(&doc, first, b"stale").unwrap_err(), StoreError::Fenced { .. }));
    assert!(matches!(one.write_snapshot(&doc, first, b"stale", kept).unwrap_err(), StoreError::Fenced { .. }));
    assert!(one.renew().unwrap().unwrap().held.is_empty(), "the old holder holds nothing");
    let taken = two.append(&doc, second, b"taken").unwrap();

    // An expired lease is taken without a release (the holder froze or died).
    std::thread::sleep(ttl + std::time::Duration::from_millis(200));
    let Claim::Owned(third) = one.claim(&doc).unwrap() else { panic!("an expired lease is free") };
    assert!(third > second);
    assert!(matches!(two.append(&doc, second, b"late").unwrap_err(), StoreError::Fenced { .. }));
    let log: Vec<Vec<u8>> = one.load(&doc).unwrap().log.into_iter().map(|entry| entry.bytes).collect();
    assert_eq!(log, [b"kept".to_vec(), b"taken".to_vec()], "only writes under the current epoch were kept");
    assert!(taken > kept);
    one.write_snapshot(&doc, third, b"snap", taken).unwrap();
    assert_eq!(two.load(&doc).unwrap().snapshot, Some((b"snap".to_vec(), taken)));
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_keeps_the_contract() {
        super::check_store_contract(&super::MemoryStore::default());
    }
}

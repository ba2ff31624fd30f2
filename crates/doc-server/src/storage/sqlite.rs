//! [`SqliteStore`]: the embedded durable [`Store`], one SQLite file in the data directory.
//!
//! The database runs in WAL mode with `synchronous = FULL`: every committed transaction is
//! fsync'd to the write-ahead log before `COMMIT` returns, which is what lets the server
//! acknowledge a batch as soon as [`Store::append`] returns. One connection behind a mutex
//! serves every document; its statements are short (one insert per document per group
//! commit), and the callers run them on blocking threads. Appends of all documents that arrive
//! while a commit is in flight share the next one (`group.rs`).
//!
//! Schema (version 5, in `PRAGMA user_version`):
//!
//! ```sql
//! docs      (id TEXT PRIMARY KEY, updated_ms INTEGER, title TEXT)  -- title since version 4
//! log       (idx INTEGER PRIMARY KEY, doc TEXT, bytes BLOB)  -- the op log, indexed by (doc, idx)
//! snapshots (doc TEXT PRIMARY KEY, through INTEGER, bytes BLOB)
//! authors   (doc TEXT, replica BLOB, hash BLOB, PRIMARY KEY (doc, replica))  -- since version 3
//! probe     (id INTEGER PRIMARY KEY, at_ms INTEGER)  -- one row, rewritten by `/readyz`
//! names     (doc TEXT, replica BLOB, name TEXT, PRIMARY KEY (doc, replica))  -- since version 4
//! webhooks  (id TEXT PRIMARY KEY, doc TEXT NULL, url TEXT, secret TEXT, created_ms INTEGER)  -- since 5
//! ```
//!
//! A commit is paid in pages: each page a transaction changes is one more frame (page size
//! plus 24 bytes) in the WAL, and the disk is written a page at a time. So pages are 1 KiB
//! (for databases created since issue 17), and an append changes as few pages as it can: the log's last leaf and its index's. Log indexes come from a counter
//! kept in memory (the next index is above every logged index and every snapshot's `through`,
//! read once at open), not from `AUTOINCREMENT`, which would rewrite `sqlite_sequence` on every
//! insert; a log index is still never reused, which a snapshot's `through` relies on. And
//! `docs.updated_ms` moves only when it is a second or more behind, not on every commit.
//!
//! Version 1 (the log in `ops`, with `AUTOINCREMENT`) is converted when the database is opened.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use super::group::{Append, GroupCommit};
use super::{now_ms, AuthorHash, DocSummary, Epoch, LogEntry, Store, StoreError, StoredDoc, StoredWebhook};
use crate::DocId;
use crdt_core::ReplicaId;

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "docs.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, updated_ms INTEGER NOT NULL, title TEXT);
CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, doc TEXT NOT NULL, bytes BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS log_by_doc ON log (doc, idx);
CREATE TABLE IF NOT EXISTS snapshots (
    doc TEXT PRIMARY KEY,
    through INTEGER NOT NULL,
    bytes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS names (
    doc TEXT NOT NULL,
    replica BLOB NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (doc, replica)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS authors (
    doc TEXT NOT NULL,
    replica BLOB NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (doc, replica)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    doc TEXT,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
";

/// Moves a version 1 log (`ops`, `AUTOINCREMENT`) into `log`, keeping its indexes.
const FROM_VERSION_1: &str = "
INSERT INTO log (idx, doc, bytes) SELECT idx, doc, bytes FROM ops;
DROP TABLE ops;
";

/// How far behind `docs.updated_ms` may fall before a commit moves it (milliseconds).
const UPDATED_PRECISION_MS: i64 = 1000;

/// The SQLite [`Store`]; see the module docs.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The index the next appended entry gets; only grows.
    next_index: Mutex<u64>,
    /// Appends of every document share commits (see `group.rs`).
    group: GroupCommit,
}

impl SqliteStore {
    /// Opens (or creates) the database in `data_dir`, creating the directory if needed.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let mut conn = Connection::open(data_dir.join(DB_FILE))?;
        // Small pages make a commit's WAL frames small (a group commit changes two or three
        // pages); a snapshot spills into overflow pages whatever their size. Only a new
        // database takes this; an existing one keeps its page size.
        conn.execute_batch("PRAGMA page_size = 1024")?;
        // WAL lets readers proceed during a write; FULL makes every commit fsync the WAL, so a
        // returned COMMIT survives power loss, not just a process crash.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "sqlite refused WAL mode; running with its default journal");
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA)?;
        // Above every index ever handed out: the log's, the snapshots' and, for a version 1
        // database, the AUTOINCREMENT counter (its highest rows may have been truncated).
        let mut last: i64 = tx.query_row(
            "SELECT max(coalesce((SELECT max(idx) FROM log), 0), coalesce((SELECT max(through) FROM snapshots), 0))",
            [],
            |row| row.get(0),
        )?;
        if version < 2 {
            let had_ops: bool = tx.query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'ops'",
                [],
                |row| row.get(0),
            )?;
            if had_ops {
                let sequence: i64 = tx.query_row(
                    "SELECT max(coalesce((SELECT max(idx) FROM ops), 0), \
                     coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'ops'), 0))",
                    [],
                    |row| row.get(0),
                )?;
                last = last.max(sequence);
                tx.execute_batch(FROM_VERSION_1)?;
            }
        }
        if version < 4 {
            // Version 3 added `authors`, which SCHEMA creates; version 4 the listing title.
            let has_title: bool =
                tx.query_row("SELECT count(*) > 0 FROM pragma_table_info('docs') WHERE name = 'title'", [], |row| {
                    row.get(0)
                })?;
            if !has_title {
                tx.execute_batch("ALTER TABLE docs ADD COLUMN title TEXT")?;
            }
            tx.execute_batch("PRAGMA user_version = 4")?;
        }
        if version < 5 {
            // Version 5 added `webhooks`, which SCHEMA creates.
            tx.execute_batch("PRAGMA user_version = 5")?;
        }
        tx.commit()?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            next_index: Mutex::new(to_u64(last) + 1),
            group: GroupCommit::default(),
        })
    }

    /// Writes `batch` (the appends of one group commit, see `group.rs`) in one fsync'd
    /// transaction; returns their log indexes in order.
    fn commit_appends(&self, batch: &[Append]) -> Result<Vec<Option<u64>>, StoreError> {
        let mut conn = self.conn()?;
        // Taken while the connection is held, so indexes are handed out in commit order.
        let mut next_index = self.next_index.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction()?;
        let mut indexes = Vec::with_capacity(batch.len());
        let mut index = *next_index;
        let now = to_i64(now_ms());
        for append in batch {
            tx.prepare_cached("INSERT INTO log (idx, doc, bytes) VALUES (?1, ?2, ?3)")?.execute(params![
                to_i64(index),
                append.doc.as_str(),
                append.bytes
            ])?;
            indexes.push(Some(index));
            index += 1;
        }
        let mut docs: Vec<&str> = batch.iter().map(|append| append.doc.as_str()).collect();
        docs.sort_unstable();
        docs.dedup();
        for doc in docs {
            tx.prepare_cached(
                "INSERT INTO docs (id, updated_ms) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET updated_ms = excluded.updated_ms
                 WHERE docs.updated_ms <= excluded.updated_ms - ?3",
            )?
            .execute(params![doc, now, UPDATED_PRECISION_MS])?;
        }
        tx.commit()?;
        *next_index = index;
        Ok(indexes)
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Store for SqliteStore {
    fn trim_memory(&self) {
        // The page cache a load or a burst of appends filled; the pages are in the OS's cache
        // for whoever needs them next.
        if let Ok(conn) = self.conn() {
            if let Err(error) = conn.execute_batch("PRAGMA shrink_memory") {
                tracing::debug!(%error, "shrink_memory failed");
            }
        }
    }

    fn load(&self, doc: &DocId) -> Result<StoredDoc, StoreError> {
        let mut conn = self.conn()?;
        // One read transaction, so the snapshot and the log are from the same moment.
        let tx = conn.transaction()?;
        let snapshot = tx
            .query_row("SELECT bytes, through FROM snapshots WHERE doc = ?1", params![doc.as_str()], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, to_u64(row.get(1)?)))
            })
            .optional()?;
        let after = snapshot.as_ref().map_or(0, |(_, through)| *through);
        let log = {
            let mut statement =
                tx.prepare_cached("SELECT idx, bytes FROM log WHERE doc = ?1 AND idx > ?2 ORDER BY idx")?;
            let rows = statement.query_map(params![doc.as_str(), to_i64(after)], |row| {
                Ok(LogEntry { index: to_u64(row.get(0)?), bytes: row.get(1)? })
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let authors = {
            let mut statement = tx.prepare_cached("SELECT replica, hash FROM authors WHERE doc = ?1")?;
            let rows = statement
                .query_map(params![doc.as_str()], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?)))?;
            let mut authors = std::collections::BTreeMap::new();
            for row in rows {
                let (replica, hash) = row?;
                // Only this store writes the table; a row of another shape is skipped (its
                // replica is then unowned, as it was before ownership existed).
                let (Ok(replica), Ok(hash)) = (<[u8; 16]>::try_from(replica), AuthorHash::try_from(hash)) else {
                    tracing::warn!(doc = doc.as_str(), "skipping a malformed authors row");
                    continue;
                };
                authors.insert(ReplicaId::from_u128(u128::from_be_bytes(replica)), hash);
            }
            authors
        };
        let names = {
            let mut statement = tx.prepare_cached("SELECT replica, name FROM names WHERE doc = ?1")?;
            let rows = statement
                .query_map(params![doc.as_str()], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?)))?;
            let mut names = std::collections::BTreeMap::new();
            for row in rows {
                let (replica, name) = row?;
                if let Ok(replica) = <[u8; 16]>::try_from(replica) {
                    names.insert(ReplicaId::from_u128(u128::from_be_bytes(replica)), name);
                }
            }
            names
        };
        tx.commit()?;
        Ok(StoredDoc { snapshot, log, authors, names })
    }

    fn append(&self, doc: &DocId, _epoch: Epoch, bytes: &[u8]) -> Result<u64, StoreError> {
        // One process owns the database (leases are for stores several servers share).
        self.group.append(doc, 0, bytes, |batch| self.commit_appends(batch))
    }

    fn write_snapshot(&self, doc: &DocId, _epoch: Epoch, snapshot: &[u8], through: u64) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let stored: Option<i64> = tx
            .query_row("SELECT through FROM snapshots WHERE doc = ?1", params![doc.as_str()], |row| row.get(0))
            .optional()?;
        if stored.is_some_and(|at| to_u64(at) >= through) {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO snapshots (doc, through, bytes) VALUES (?1, ?2, ?3)
             ON CONFLICT (doc) DO UPDATE SET through = excluded.through, bytes = excluded.bytes",
            params![doc.as_str(), to_i64(through), snapshot],
        )?;
        tx.execute("DELETE FROM log WHERE doc = ?1 AND idx <= ?2", params![doc.as_str(), to_i64(through)])?;
        tx.execute(
            "INSERT INTO docs (id, updated_ms) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
            params![doc.as_str(), to_i64(now_ms())],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn register_authors(&self, doc: &DocId, authors: &[(ReplicaId, AuthorHash)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        // One transaction, fsync'd at commit (synchronous = FULL) like every other.
        let tx = conn.transaction()?;
        for (replica, hash) in authors {
            tx.prepare_cached("INSERT INTO authors (doc, replica, hash) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")?
                .execute(params![doc.as_str(), replica.uuid().as_bytes().as_slice(), hash.as_slice()])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<DocSummary>, StoreError> {
        let conn = self.conn()?;
        let mut statement = conn.prepare_cached("SELECT id, updated_ms, title FROM docs ORDER BY id")?;
        let rows = statement.query_map([], |row| {
            Ok(DocSummary { id: row.get(0)?, updated_ms: to_u64(row.get(1)?), title: row.get(2)? })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn summary(&self, doc: &DocId) -> Result<Option<DocSummary>, StoreError> {
        let conn = self.conn()?;
        let summary = conn
            .prepare_cached("SELECT updated_ms, title FROM docs WHERE id = ?1")?
            .query_row(params![doc.as_str()], |row| {
                Ok(DocSummary { id: doc.to_string(), updated_ms: to_u64(row.get(0)?), title: row.get(1)? })
            })
            .optional()?;
        Ok(summary)
    }

    fn set_names(&self, doc: &DocId, names: &[(ReplicaId, String)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        for (replica, name) in names {
            tx.prepare_cached(
                "INSERT INTO names (doc, replica, name) VALUES (?1, ?2, ?3)
                 ON CONFLICT (doc, replica) DO UPDATE SET name = excluded.name",
            )?
            .execute(params![doc.as_str(), replica.uuid().as_bytes().as_slice(), name])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn set_title(&self, doc: &DocId, title: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT INTO docs (id, updated_ms, title) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET title = excluded.title",
        )?
        .execute(params![doc.as_str(), to_i64(now_ms()), title])?;
        Ok(())
    }

    fn probe(&self) -> Result<(), StoreError> {
        // A committed write through the connection every commit uses, fsync'd like them.
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO probe (id, at_ms) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
            params![to_i64(now_ms())],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn exists(&self, doc: &DocId) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let found = conn.query_row("SELECT 1 FROM docs WHERE id = ?1", params![doc.as_str()], |_| Ok(())).optional()?;
        Ok(found.is_some())
    }

    fn webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        let conn = self.conn()?;
        let mut statement =
            conn.prepare_cached("SELECT id, doc, url, secret, created_ms FROM webhooks ORDER BY rowid")?;
        let rows = statement.query_map([], |row| {
            Ok(StoredWebhook {
                id: row.get(0)?,
                doc: row.get(1)?,
                url: row.get(2)?,
                secret: row.get(3)?,
                created_ms: to_u64(row.get(4)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn add_webhook(&self, webhook: &StoredWebhook) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached("INSERT INTO webhooks (id, doc, url, secret, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![webhook.id, webhook.doc, webhook.url, webhook.secret, to_i64(webhook.created_ms)])?;
        Ok(())
    }

    fn remove_webhook(&self, doc: Option<&DocId>, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let removed = conn
            .prepare_cached("DELETE FROM webhooks WHERE id = ?1 AND doc IS ?2")?
            .execute(params![id, doc.map(DocId::as_str)])?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("doc-server-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn sqlite_store_keeps_the_contract() {
        let dir = temp_dir("sqlite-contract");
        let store = SqliteStore::open(&dir).unwrap();
        super::super::check_store_contract(&store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_probe_commits_while_writes_work_and_fails_when_they_do_not() {
        let dir = temp_dir("sqlite-probe");
        let store = SqliteStore::open(&dir).unwrap();
        store.probe().unwrap();
        store.probe().unwrap();
        // A store that cannot take writes any more (as on a read-only or failing disk).
        store.conn().unwrap().execute_batch("PRAGMA query_only = 1").unwrap();
        assert!(store.probe().is_err());
        assert!(store.append(&DocId::parse("a").unwrap(), 0, b"x").is_err(), "the probe says what an append meets");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn runs_in_wal_mode_with_full_sync_and_survives_reopening() {
        let dir = temp_dir("sqlite-reopen");
        let doc = DocId::parse("d").unwrap();
        {
            let store = SqliteStore::open(&dir).unwrap();
            let conn = store.conn().unwrap();
            let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
            let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
            assert_eq!(mode, "wal");
            assert_eq!(sync, 2, "synchronous = FULL");
            drop(conn);
            store.append(&doc, 0, b"x").unwrap();
        }
        let store = SqliteStore::open(&dir).unwrap();
        assert_eq!(store.load(&doc).unwrap().log[0].bytes, b"x");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_version_1_database_is_converted_and_never_reuses_an_index() {
        let dir = temp_dir("sqlite-v1");
        let doc = DocId::parse("old").unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        {
            let conn = Connection::open(dir.join(DB_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE docs (id TEXT PRIMARY KEY, updated_ms INTEGER NOT NULL);
                 CREATE TABLE ops (idx INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL, bytes BLOB NOT NULL);
                 CREATE INDEX ops_by_doc ON ops (doc, idx);
                 CREATE TABLE snapshots (doc TEXT PRIMARY KEY, through INTEGER NOT NULL, bytes BLOB NOT NULL);
                 PRAGMA user_version = 1;
                 INSERT INTO docs VALUES ('old', 5);
                 INSERT INTO ops (doc, bytes) VALUES ('old', x'01'), ('old', x'02'), ('old', x'03');
                 INSERT INTO snapshots VALUES ('old', 1, x'aa');
                 DELETE FROM ops WHERE idx = 3;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&dir).unwrap();
        let loaded = store.load(&doc).unwrap();
        assert_eq!(loaded.snapshot, Some((vec![0xaa], 1)));
        assert_eq!(loaded.log, vec![LogEntry { index: 2, bytes: vec![2] }]);
        assert_eq!(store.append(&doc, 0, b"new").unwrap(), 4, "index 3 was handed out before");
        drop(store);
        let store = SqliteStore::open(&dir).unwrap();
        assert_eq!(store.append(&doc, 0, b"newer").unwrap(), 5);
        assert_eq!(store.load(&doc).unwrap().log.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

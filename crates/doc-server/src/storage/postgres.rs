//! [`PgStore`]: the [`Store`] several doc-servers share, in PostgreSQL (`--store postgres://…`).
//!
//! The tables mirror SQLite's (`sqlite.rs`), plus `leases`, one row per document ever claimed:
//!
//! ```sql
//! docs      (id TEXT PRIMARY KEY, updated_ms BIGINT, title TEXT)
//! log       (idx BIGSERIAL PRIMARY KEY, doc TEXT, bytes BYTEA)   -- indexed by (doc, idx)
//! snapshots (doc TEXT PRIMARY KEY, through BIGINT, bytes BYTEA)
//! authors   (doc TEXT, replica BYTEA, hash BYTEA, PRIMARY KEY (doc, replica))
//! names     (doc TEXT, replica BYTEA, name TEXT, PRIMARY KEY (doc, replica))
//! leases    (doc TEXT PRIMARY KEY, owner TEXT, epoch BIGINT, expires_at TIMESTAMPTZ,
//!            wanted_at TIMESTAMPTZ, wanted_by TEXT)   -- who asked for it last
//! probe     (owner TEXT PRIMARY KEY, at_ms BIGINT)              -- one row per server, for /readyz
//! webhooks  (seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE, doc TEXT, url TEXT, secret TEXT, created_ms BIGINT)
//! ```
//!
//! **Durability.** Every session runs with `synchronous_commit = on`, so `COMMIT` returns only
//! once the commit record is flushed to PostgreSQL's WAL; an append returns (and the server
//! acknowledges) only after its `COMMIT` returned. A commit whose outcome is unknown (the
//! connection broke during it) is an error: not acknowledged; the client resends and the
//! change, if it did commit, is a duplicate the document ignores.
//!
//! **Dead holders.** Every session of a server carries its id as `application_name`. A claim
//! treats a lease whose holder has no session left in `pg_stat_activity` as expired: a killed
//! server's connections are closed by its kernel at once, so its documents move in well under
//! a second instead of a lease time. A frozen or cut-off server keeps its sessions until TCP
//! gives up, so its leases run out first; the fence covers both.
//!
//! **Fencing.** An append transaction first reads the lease rows of its documents `FOR KEY
//! SHARE` and writes only the entries whose epoch is the one this server holds; a claim reads
//! the row `FOR UPDATE`, which waits for those transactions and makes them wait. So an append
//! either commits before a takeover (and the new owner's load, which starts after its claim
//! commits, sees it) or sees the new epoch and writes nothing. Renewals only update
//! `expires_at` (a `NO KEY UPDATE`), which never waits for appends nor makes them wait.
//!
//! **Connections.** A few synchronous clients (the `postgres` crate) behind mutexes, one per
//! caller at a time; a client whose connection broke is dropped and the next use connects
//! again, so service resumes by itself when PostgreSQL comes back. Statements time out after
//! [`STATEMENT_TIMEOUT`], so a stalled database shows as errors, not as a silent hang.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ::postgres::{Client, Config as PgConfig, IsolationLevel, NoTls, Transaction};

use super::group::{Append, GroupCommit};
use super::{
    now_ms, AuthorHash, Claim, DocSummary, Epoch, LogEntry, Renewal, Store, StoreError, StoredDoc, StoredWebhook,
};
use crate::DocId;
use crdt_core::ReplicaId;

/// The longest any statement may run before it fails.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest server id: PostgreSQL keeps 63 bytes of `application_name`.
pub const MAX_OWNER_LEN: usize = 63;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How far behind `docs.updated_ms` may fall before a commit moves it (milliseconds).
const UPDATED_PRECISION_MS: i64 = 1000;

/// Any constant key: schema creation holds this advisory lock, so servers starting together do
/// not race on `CREATE TABLE IF NOT EXISTS`.
const SCHEMA_LOCK: i64 = 0x646f_6373;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, updated_ms BIGINT NOT NULL, title TEXT);
CREATE TABLE IF NOT EXISTS log (idx BIGSERIAL PRIMARY KEY, doc TEXT NOT NULL, bytes BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS log_by_doc ON log (doc, idx);
CREATE TABLE IF NOT EXISTS snapshots (doc TEXT PRIMARY KEY, through BIGINT NOT NULL, bytes BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS authors (
    doc TEXT NOT NULL, replica BYTEA NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (doc, replica)
);
CREATE TABLE IF NOT EXISTS names (
    doc TEXT NOT NULL, replica BYTEA NOT NULL, name TEXT NOT NULL, PRIMARY KEY (doc, replica)
);
CREATE TABLE IF NOT EXISTS leases (
    doc TEXT PRIMARY KEY,
    owner TEXT,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    wanted_at TIMESTAMPTZ,
    wanted_by TEXT
);
CREATE INDEX IF NOT EXISTS leases_by_owner ON leases (owner);
CREATE TABLE IF NOT EXISTS probe (owner TEXT PRIMARY KEY, at_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS webhooks (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    doc TEXT,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
";

/// How to open a [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgStoreOptions {
    /// `postgres://user:password@host:port/database` (or the key=value form).
    pub url: String,
    /// This server's id in `leases.owner`: unique per running process.
    pub owner: String,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// Clients kept open.
    pub connections: usize,
}

/// The PostgreSQL [`Store`]; see the module docs.
pub struct PgStore {
    config: PgConfig,
    owner: String,
    ttl_ms: i64,
    pool: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
    group: GroupCommit,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("owner", &self.owner).field("connections", &self.pool.len()).finish()
    }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn replica_bytes(replica: &ReplicaId) -> Vec<u8> {
    replica.uuid().as_bytes().to_vec()
}

fn replica_from(bytes: &[u8]) -> Option<ReplicaId> {
    Some(ReplicaId::from_u128(u128::from_be_bytes(<[u8; 16]>::try_from(bytes).ok()?)))
}

impl PgStore {
    /// Connects, creates the tables if missing, and keeps `options.connections` clients.
    pub fn open(options: PgStoreOptions) -> Result<PgStore, StoreError> {
        let mut config: PgConfig = options
            .url
            .parse()
            .map_err(|error: ::postgres::Error| StoreError::Config(format!("--store {}: {error}", options.url)))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(5));
        // Every session of this server carries its id, so a claim can see that a lease's
        // holder has no session left (it died) and need not wait for the lease to expire.
        if options.owner.is_empty() || options.owner.len() > MAX_OWNER_LEN {
            return Err(StoreError::Config(format!(
                "a server id must be 1 to {MAX_OWNER_LEN} bytes (PostgreSQL's application_name): {:?}",
                options.owner
            )));
        }
        config.application_name(&options.owner);
        let store = PgStore {
            config,
            owner: options.owner,
            ttl_ms: i64::try_from(options.lease_ttl.as_millis()).unwrap_or(i64::MAX),
            pool: (0..options.connections.max(2)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            group: GroupCommit::default(),
        };
        store.with_client(|client| {
            // DDL on tables in use waits for their writers: skipped when the schema is there.
            let made: bool = client.query_one("SELECT to_regclass('webhooks') IS NOT NULL", &[])?.get(0);
            if made {
                return Ok(());
            }
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(SCHEMA)?;
            tx.commit()
        })?;
        Ok(store)
    }

    /// This server's id in `leases.owner`.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self.config.connect(NoTls)?;
        client.batch_execute(&format!(
            "SET synchronous_commit = on; SET statement_timeout = {}",
            STATEMENT_TIMEOUT.as_millis()
        ))?;
        Ok(client)
    }

    /// Runs `work` on a pooled client (connecting it if needed); a client whose connection
    /// broke is dropped, so the next use connects afresh.
    fn with_client<T>(&self, work: impl FnOnce(&mut Client) -> Result<T, ::postgres::Error>) -> Result<T, StoreError> {
        let mut slot = self.slot()?;
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(self.connect()?);
        }
        let Some(client) = slot.as_mut() else { return Err(StoreError::Poisoned) };
        let result = work(client);
        if result.is_err() && client.is_closed() {
            *slot = None;
        }
        Ok(result?)
    }

    /// A free pooled slot if there is one, else waits for the next in turn.
    fn slot(&self) -> Result<MutexGuard<'_, Option<Client>>, StoreError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for offset in 0..self.pool.len() {
            if let Ok(slot) = self.pool[(start + offset) % self.pool.len()].try_lock() {
                return Ok(slot);
            }
        }
        self.pool[start % self.pool.len()].lock().map_err(|_| StoreError::Poisoned)
    }

    /// Writes `batch` in one transaction: only the entries whose epoch is current (see the
    /// module docs); `None` for the others.
    fn commit_appends(&self, batch: &[Append]) -> Result<Vec<Option<u64>>, StoreError> {
        let mut docs: Vec<&str> = batch.iter().map(|append| append.doc.as_str()).collect();
        docs.sort_unstable();
        docs.dedup();
        let now = to_i64(now_ms());
        self.with_client(|client| {
            let mut tx = client.transaction()?;
            let held: HashMap<String, i64> = tx
                .query(
                    "SELECT doc, epoch FROM leases WHERE doc = ANY($1) AND owner = $2 ORDER BY doc FOR KEY SHARE",
                    &[&docs, &self.owner],
                )?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            let insert = tx.prepare("INSERT INTO log (doc, bytes) VALUES ($1, $2) RETURNING idx")?;
            let mut indexes = Vec::with_capacity(batch.len());
            let mut written: Vec<&str> = Vec::new();
            for append in batch {
                if held.get(append.doc.as_str()).copied() != Some(to_i64(append.epoch)) {
                    indexes.push(None);
                    continue;
                }
                let row = tx.query_one(&insert, &[&append.doc.as_str(), &append.bytes])?;
                indexes.push(Some(to_u64(row.get(0))));
                written.push(append.doc.as_str());
            }
            written.dedup();
            for doc in written {
                tx.execute(
                    "INSERT INTO docs (id, updated_ms) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET updated_ms = excluded.updated_ms
                     WHERE docs.updated_ms <= excluded.updated_ms - $3",
                    &[&doc, &now, &UPDATED_PRECISION_MS],
                )?;
            }
            tx.commit()?;
            Ok(indexes)
        })
    }

    /// Whether this server holds `doc`'s lease at `epoch`, locking the row against a claim
    /// until `tx` ends.
    fn holds(&self, tx: &mut Transaction<'_>, doc: &DocId, epoch: Epoch) -> Result<bool, ::postgres::Error> {
        let row = tx.query_opt(
            "SELECT epoch FROM leases WHERE doc = $1 AND owner = $2 FOR KEY SHARE",
            &[&doc.as_str(), &self.owner],
        )?;
        Ok(row.is_some_and(|row| row.get::<_, i64>(0) == to_i64(epoch)))
    }
}

impl Store for PgStore {
    fn load(&self, doc: &DocId) -> Result<StoredDoc, StoreError> {
        self.with_client(|client| {
            // One snapshot of the database, so the snapshot and the log are from one moment.
            let mut tx =
                client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
            let snapshot = tx
                .query_opt("SELECT bytes, through FROM snapshots WHERE doc = $1", &[&doc.as_str()])?
                .map(|row| (row.get::<_, Vec<u8>>(0), to_u64(row.get(1))));
            let after = to_i64(snapshot.as_ref().map_or(0, |(_, through)| *through));
            let log = tx
                .query("SELECT idx, bytes FROM log WHERE doc = $1 AND idx > $2 ORDER BY idx", &[&doc.as_str(), &after])?
                .into_iter()
                .map(|row| LogEntry { index: to_u64(row.get(0)), bytes: row.get(1) })
                .collect();
            let mut authors = std::collections::BTreeMap::new();
            for row in tx.query("SELECT replica, hash FROM authors WHERE doc = $1", &[&doc.as_str()])? {
                let (replica, hash): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
                match (replica_from(&replica), AuthorHash::try_from(hash)) {
                    (Some(replica), Ok(hash)) => {
                        authors.insert(replica, hash);
                    }
                    _ => tracing::warn!(doc = doc.as_str(), "skipping a malformed authors row"),
                }
            }
            let mut names = std::collections::BTreeMap::new();
            for row in tx.query("SELECT replica, name FROM names WHERE doc = $1", &[&doc.as_str()])? {
                if let Some(replica) = replica_from(row.get::<_, &[u8]>(0)) {
                    names.insert(replica, row.get::<_, String>(1));
                }
            }
            tx.commit()?;
            Ok(StoredDoc { snapshot, log, authors, names })
        })
    }

    fn append(&self, doc: &DocId, epoch: Epoch, bytes: &[u8]) -> Result<u64, StoreError> {
        self.group.append(doc, epoch, bytes, |batch| self.commit_appends(batch))
    }

    fn write_snapshot(&self, doc: &DocId, epoch: Epoch, snapshot: &[u8], through: u64) -> Result<(), StoreError> {
        let fenced = self.with_client(|client| {
            let mut tx = client.transaction()?;
            if !self.holds(&mut tx, doc, epoch)? {
                return Ok(true);
            }
            let stored = tx.query_opt("SELECT through FROM snapshots WHERE doc = $1", &[&doc.as_str()])?;
            if stored.is_some_and(|row| to_u64(row.get(0)) >= through) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO snapshots (doc, through, bytes) VALUES ($1, $2, $3)
                 ON CONFLICT (doc) DO UPDATE SET through = excluded.through, bytes = excluded.bytes",
                &[&doc.as_str(), &to_i64(through), &snapshot],
            )?;
            tx.execute("DELETE FROM log WHERE doc = $1 AND idx <= $2", &[&doc.as_str(), &to_i64(through)])?;
            tx.execute(
                "INSERT INTO docs (id, updated_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                &[&doc.as_str(), &to_i64(now_ms())],
            )?;
            tx.commit()?;
            Ok(false)
        })?;
        if fenced {
            return Err(StoreError::Fenced { doc: doc.to_string(), epoch });
        }
        Ok(())
    }

    fn claim(&self, doc: &DocId) -> Result<Claim, StoreError> {
        self.with_client(|client| {
            let mut tx = client.transaction()?;
            tx.execute(
                "INSERT INTO leases (doc, owner, epoch, expires_at) VALUES ($1, NULL, 0, now())
                 ON CONFLICT (doc) DO NOTHING",
                &[&doc.as_str()],
            )?;
            // FOR UPDATE: waits for appends under the current epoch to commit (they hold the row
            // FOR KEY SHARE), and keeps new ones out until this claim commits. A holder with no
            // session left (killed: the kernel closed its connections) is as good as expired;
            // a frozen or cut-off one keeps its sessions, and its lease runs out.
            let row = tx.query_one(
                "SELECT owner, expires_at <= now()
                        OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = leases.owner)
                 FROM leases WHERE doc = $1 FOR UPDATE",
                &[&doc.as_str()],
            )?;
            let (owner, expired): (Option<String>, bool) = (row.get(0), row.get(1));
            let claim = match owner {
                Some(holder) if !expired && holder != self.owner => {
                    tx.execute(
                        "UPDATE leases SET wanted_at = now(), wanted_by = $2 WHERE doc = $1",
                        &[&doc.as_str(), &self.owner],
                    )?;
                    Claim::Elsewhere(holder)
                }
                _ => {
                    let row = tx.query_one(
                        "UPDATE leases SET owner = $2, epoch = epoch + 1,
                             expires_at = now() + $3::float8 * interval '1 millisecond',
                             wanted_at = NULL, wanted_by = NULL
                         WHERE doc = $1 RETURNING epoch",
                        &[&doc.as_str(), &self.owner, &(self.ttl_ms as f64)],
                    )?;
                    Claim::Owned(to_u64(row.get(0)))
                }
            };
            tx.commit()?;
            Ok(claim)
        })
    }

    fn renew(&self) -> Result<Option<Renewal>, StoreError> {
        let rows = self.with_client(|client| {
            client.query(
                "UPDATE leases SET expires_at = now() + $2::float8 * interval '1 millisecond'
                 WHERE owner = $1 RETURNING doc, epoch, wanted_at IS NOT NULL",
                &[&self.owner, &(self.ttl_ms as f64)],
            )
        })?;
        let mut held = HashMap::with_capacity(rows.len());
        for row in rows {
            if let Ok(doc) = DocId::parse(row.get::<_, &str>(0)) {
                held.insert(doc, (to_u64(row.get(1)), row.get::<_, bool>(2)));
            }
        }
        Ok(Some(Renewal { held }))
    }

    fn release(&self, doc: &DocId, epoch: Epoch) -> Result<(), StoreError> {
        // Straight to the server that asked for it, if one did (with a new epoch): so the
        // connections this server still gets for the document (a proxy that disagrees for a
        // moment) wait for it rather than take it back at once.
        self.with_client(|client| {
            client.execute(
                "UPDATE leases SET owner = wanted_by,
                     epoch = CASE WHEN wanted_by IS NULL THEN epoch ELSE epoch + 1 END,
                     expires_at = CASE WHEN wanted_by IS NULL THEN now()
                                  ELSE now() + $4::float8 * interval '1 millisecond' END,
                     wanted_at = NULL, wanted_by = NULL
                 WHERE doc = $1 AND owner = $2 AND epoch = $3",
                &[&doc.as_str(), &self.owner, &to_i64(epoch), &(self.ttl_ms as f64)],
            )
        })?;
        Ok(())
    }

    fn register_authors(&self, doc: &DocId, authors: &[(ReplicaId, AuthorHash)]) -> Result<(), StoreError> {
        self.with_client(|client| {
            let mut tx = client.transaction()?;
            for (replica, hash) in authors {
                tx.execute(
                    "INSERT INTO authors (doc, replica, hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&doc.as_str(), &replica_bytes(replica), &hash.as_slice()],
                )?;
            }
            tx.commit()
        })
    }

    fn list(&self) -> Result<Vec<DocSummary>, StoreError> {
        let rows =
            self.with_client(|client| client.query("SELECT id, updated_ms, title FROM docs ORDER BY id", &[]))?;
        Ok(rows
            .into_iter()
            .map(|row| DocSummary { id: row.get(0), updated_ms: to_u64(row.get(1)), title: row.get(2) })
            .collect())
    }

    fn summary(&self, doc: &DocId) -> Result<Option<DocSummary>, StoreError> {
        let row = self.with_client(|client| {
            client.query_opt("SELECT updated_ms, title FROM docs WHERE id = $1", &[&doc.as_str()])
        })?;
        Ok(row.map(|row| DocSummary { id: doc.to_string(), updated_ms: to_u64(row.get(0)), title: row.get(1) }))
    }

    fn set_names(&self, doc: &DocId, names: &[(ReplicaId, String)]) -> Result<(), StoreError> {
        self.with_client(|client| {
            let mut tx = client.transaction()?;
            for (replica, name) in names {
                tx.execute(
                    "INSERT INTO names (doc, replica, name) VALUES ($1, $2, $3)
                     ON CONFLICT (doc, replica) DO UPDATE SET name = excluded.name",
                    &[&doc.as_str(), &replica_bytes(replica), name],
                )?;
            }
            tx.commit()
        })
    }

    fn set_title(&self, doc: &DocId, title: &str) -> Result<(), StoreError> {
        self.with_client(|client| {
            client.execute(
                "INSERT INTO docs (id, updated_ms, title) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title",
                &[&doc.as_str(), &to_i64(now_ms()), &title],
            )
        })?;
        Ok(())
    }

    fn exists(&self, doc: &DocId) -> Result<bool, StoreError> {
        let row = self.with_client(|client| client.query_opt("SELECT 1 FROM docs WHERE id = $1", &[&doc.as_str()]))?;
        Ok(row.is_some())
    }

    fn probe(&self) -> Result<(), StoreError> {
        self.with_client(|client| {
            let mut tx = client.transaction()?;
            tx.execute(
                "INSERT INTO probe (owner, at_ms) VALUES ($1, $2)
                 ON CONFLICT (owner) DO UPDATE SET at_ms = excluded.at_ms",
                &[&self.owner, &to_i64(now_ms())],
            )?;
            tx.commit()
        })
    }

    fn webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        let rows = self.with_client(|client| {
            client.query("SELECT id, doc, url, secret, created_ms FROM webhooks ORDER BY seq", &[])
        })?;
        Ok(rows
            .into_iter()
            .map(|row| StoredWebhook {
                id: row.get(0),
                doc: row.get(1),
                url: row.get(2),
                secret: row.get(3),
                created_ms: to_u64(row.get(4)),
            })
            .collect())
    }

    fn add_webhook(&self, webhook: &StoredWebhook) -> Result<(), StoreError> {
        self.with_client(|client| {
            client.execute(
                "INSERT INTO webhooks (id, doc, url, secret, created_ms) VALUES ($1, $2, $3, $4, $5)",
                &[&webhook.id, &webhook.doc, &webhook.url, &webhook.secret, &to_i64(webhook.created_ms)],
            )
        })?;
        Ok(())
    }

    fn remove_webhook(&self, doc: Option<&DocId>, id: &str) -> Result<bool, StoreError> {
        let removed = self.with_client(|client| {
            client.execute(
                "DELETE FROM webhooks WHERE id = $1 AND doc IS NOT DISTINCT FROM $2",
                &[&id, &doc.map(DocId::as_str)],
            )
        })?;
        Ok(removed > 0)
    }
}

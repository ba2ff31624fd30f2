//! The same Store conformance suite (`doc_server::storage::check_store_contract`) against every
//! store: memory, SQLite and PostgreSQL; and the lease contract (claims, epochs, fencing,
//! hand-over, expiry) against PostgreSQL, shared by two servers' handles.
//!
//! PostgreSQL is a server of the test's own (`common::cluster::Postgres`); without it installed
//! the PostgreSQL tests are skipped, unless `DOC_SERVER_REQUIRE_CLUSTER=1`.

mod common;

use std::time::Duration;

use common::cluster::Postgres;
use doc_server::storage::{
    check_lease_contract, check_store_contract, MemoryStore, PgStore, PgStoreOptions, SqliteStore, Store,
};

fn pg_store(url: &str, owner: &str, ttl: Duration) -> PgStore {
    PgStore::open(PgStoreOptions { url: url.to_owned(), owner: owner.to_owned(), lease_ttl: ttl, connections: 2 })
        .expect("open the PostgreSQL store")
}

#[test]
fn memory_store_keeps_the_contract() {
    check_store_contract(&MemoryStore::default());
}

#[test]
fn sqlite_store_keeps_the_contract() {
    let dir = common::tmp_dir("conformance-sqlite");
    check_store_contract(&SqliteStore::open(&dir.join("data")).unwrap());
}

#[test]
fn postgres_store_keeps_the_contract_and_the_leases() {
    let dir = common::tmp_dir("conformance-postgres");
    let Some(pg) = Postgres::start(&dir) else { return };
    let url = pg.create_db("contract");
    check_store_contract(&pg_store(&url, "server-a", Duration::from_secs(30)));

    // Two servers sharing one database: leases, epochs and the fence.
    let url = pg.create_db("leases");
    let ttl = Duration::from_millis(800);
    let (one, two) = (pg_store(&url, "server-one", ttl), pg_store(&url, "server-two", ttl));
    check_lease_contract(&one, &two, ttl);

    // Opening the schema again (a second server starting) keeps what is stored.
    let again = pg_store(&url, "server-three", ttl);
    assert_eq!(again.list().unwrap().len(), 1);
}

#[test]
fn postgres_store_fails_while_the_database_is_down_and_recovers_by_itself() {
    let dir = common::tmp_dir("conformance-postgres-down");
    let Some(mut pg) = Postgres::start(&dir) else { return };
    let store = pg_store(&pg.url(), "server-a", Duration::from_secs(30));
    let doc = doc_server::DocId::parse("d").unwrap();
    let doc_server::storage::Claim::Owned(epoch) = store.claim(&doc).unwrap() else { panic!("free lease") };
    store.append(&doc, epoch, b"before").unwrap();
    store.probe().unwrap();

    pg.stop();
    assert!(store.append(&doc, epoch, b"while down").is_err(), "no append succeeds without the database");
    assert!(store.probe().is_err(), "/readyz asks the probe: not ready");

    pg.launch();
    // The pooled connections broke with the database; each is replaced on its next use.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.probe().is_err() {
        assert!(std::time::Instant::now() < deadline, "the store did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut appended = None;
    for _ in 0..4 {
        if let Ok(index) = store.append(&doc, epoch, b"after") {
            appended = Some(index);
            break;
        }
    }
    assert!(appended.is_some(), "appends work again without reopening the store");
    let log: Vec<Vec<u8>> = store.load(&doc).unwrap().log.into_iter().map(|e| e.bytes).collect();
    assert_eq!(log, [b"before".to_vec(), b"after".to_vec()], "the failed append left nothing");
}

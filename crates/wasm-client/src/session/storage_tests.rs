//! Tests of saving: records of changes, compacted states, write-ahead, one replica per browser.

use super::tests::{connect, flush, FakeServer};
use super::*;

/// What a page keeps for one document: the compacted state and the records after it.
#[derive(Default)]
struct Stored {
    state: Option<Vec<u8>>,
    records: Vec<Vec<u8>>,
}

impl Stored {
    /// Appends every record the session has, as the page does on each animation frame, and
    /// reports them stored.
    fn save(&mut self, session: &mut Session) {
        while let Some(record) = session.take_unsaved() {
            self.records.push(record);
        }
        session.mark_saved(session.taken_through());
    }

    /// Replaces everything by a compacted state, as the page does when idle.
    fn compact(&mut self, session: &mut Session) {
        self.state = Some(session.compact());
        self.records.clear();
        session.mark_saved(session.taken_through());
    }

    /// Opens the document as `replica`, as a page load does.
    fn open(&self, replica: ReplicaId) -> Session {
        let mut session = Session::with_storage(replica);
        if let Some(state) = &self.state {
            session.restore_state(state).expect("state loads");
        }
        for record in &self.records {
            session.restore_changes(record).expect("record loads");
        }
        session.restored();
        session
    }
}

const ME: ReplicaId = ReplicaId::from_u128(1);

#[test]
fn a_compacted_state_plus_records_restores_exactly() {
    let mut stored = Stored::default();
    let mut session = Session::with_storage(ME);
    session.replace(0, 0, "hello").unwrap();
    stored.save(&mut session);
    stored.compact(&mut session);
    session.replace(5, 5, " wörld 👋").unwrap();
    session.set_title("Greeting");
    session.replace(0, 1, "H").unwrap();
    stored.save(&mut session);
    assert_eq!(stored.records.len(), 1, "one record for everything since the last save");
    assert!(session.take_unsaved().is_none());

    let reopened = stored.open(ME);
    assert_eq!(reopened.body(), "Hello wörld 👋");
    assert_eq!(reopened.doc().register(TITLE), Some("Greeting"));
    assert_eq!(reopened.doc().version(), session.doc().version());
    assert_eq!(reopened.doc().state_hash(), session.doc().state_hash());
    assert_eq!(reopened.pending_len(), session.pending_len());
}

#[test]
fn own_changes_reach_the_server_only_once_stored() {
    let mut server = FakeServer::new();
    let mut stored = Stored::default();
    let mut session = Session::with_storage(ME);
    connect(&mut session, &mut server);
    session.replace(0, 0, "abc").unwrap();
    assert!(session.next_frame().is_none(), "not stored yet");
    let record = session.take_unsaved().expect("a record");
    session.replace(3, 3, "d").unwrap();
    stored.records.push(record);
    session.mark_saved(1);
    // Only the stored change goes out; the later one waits for its own write.
    flush(&mut session, &mut server);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("abc"));
    assert_eq!(session.pending_len(), 1);
    stored.save(&mut session);
    flush(&mut session, &mut server);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("abcd"));
    assert_eq!(session.pending_len(), 0);
}

#[test]
fn a_hundred_reopenings_leave_one_version_entry() {
    let mut server = FakeServer::new();
    let mut stored = Stored::default();
    for round in 0..100 {
        let mut session = stored.open(ME);
        connect(&mut session, &mut server);
        let end = session.body().encode_utf16().count();
        session.replace(end, end, "x").unwrap();
        stored.save(&mut session);
        flush(&mut session, &mut server);
        if round % 10 == 9 {
            stored.compact(&mut session);
        }
    }
    let reopened = stored.open(ME);
    assert_eq!(reopened.body(), "x".repeat(100));
    assert_eq!(server.doc.version().len(), 1, "one replica for all the page opens");
    assert_eq!(server.doc.version().get(ME), 100);
    assert_eq!(reopened.doc().version(), server.doc.version());
}

#[test]
fn records_keep_remote_changes_and_what_the_server_has() {
    let mut server = FakeServer::new();
    let mut other = Session::new(ReplicaId::from_u128(5));
    connect(&mut other, &mut server);
    other.replace(0, 0, "remote ").unwrap();
    flush(&mut other, &mut server);

    let mut stored = Stored::default();
    let mut tab_a = Session::with_storage(ME);
    connect(&mut tab_a, &mut server);
    tab_a.replace(7, 7, "local").unwrap();
    stored.save(&mut tab_a);
    flush(&mut tab_a, &mut server);
    let record = tab_a.take_unsaved();
    assert!(record.is_none(), "an acknowledgement alone is not a record");

    // The record carries both changes and the server's version when it was taken.
    let reopened = stored.open(ReplicaId::from_u128(2));
    assert_eq!(reopened.body(), "remote local");
    // Another tab (offline) gets the record: it holds only what the server did not have then.
    let mut tab_b = Session::with_storage(ReplicaId::from_u128(3));
    tab_b.receive_from_tab(&stored.records[0]).unwrap();
    assert_eq!(tab_b.body(), "remote local");
    assert_eq!(tab_b.pending_len(), 1, "tab a's change was not acknowledged when the record was taken");
}

#[test]
fn a_merged_state_is_saved_compacted() {
    let mut tab_b = Session::new(ReplicaId::from_u128(2));
    tab_b.replace(0, 0, "b").unwrap();
    let mut session = Session::with_storage(ME);
    assert!(!session.needs_compaction());
    session.merge_saved(&tab_b.export()).unwrap();
    assert!(session.needs_compaction());
    let mut stored = Stored::default();
    stored.compact(&mut session);
    assert!(!session.needs_compaction());
    assert_eq!(stored.open(ME).body(), "b");
}

#[test]
fn a_buffered_change_is_recorded_and_applies_on_reload() {
    let mut tab_a = Session::new(ReplicaId::from_u128(2));
    let first = tab_a.replace(0, 0, "a").unwrap();
    let second = tab_a.replace(1, 1, "b").unwrap();
    let mut session = Session::with_storage(ME);
    session.receive_from_tab(&codec::encode_changes(&second)).unwrap();
    let mut stored = Stored::default();
    stored.save(&mut session);
    session.receive_from_tab(&codec::encode_changes(&first)).unwrap();
    stored.save(&mut session);
    let reopened = stored.open(ME);
    assert_eq!(reopened.body(), "ab");
    assert_eq!(reopened.pending_len(), 2);
}

/// Prints the cost per keystroke over 200,000 offline keystrokes at random places (every 64,
/// a record is taken and stored, and another tab takes it, types and sends its own record
/// back): the figures stay flat as `pending` grows (about 8-12 µs each at the test profile's
/// opt-level 1, from the first 10,000 to the last). A benchmark, not a check: `cargo test -p wasm-client --release -- --ignored --nocapture flat`.
#[test]
#[ignore]
fn keystroke_cost_stays_flat_as_pending_grows() {
    let mut stored = Stored::default();
    let mut session = Session::with_storage(ME);
    let mut other = Session::with_storage(ReplicaId::from_u128(2));
    let mut len = 0usize;
    let mut x: u64 = 12345;
    for chunk in 0..20 {
        let start = std::time::Instant::now();
        for i in 0..10_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let pos = if len == 0 { 0 } else { (x >> 33) as usize % (len + 1) };
            if x.is_multiple_of(4) && len > 0 {
                let at = pos.min(len - 1);
                session.replace(at, at + 1, "").unwrap();
                len -= 1;
            } else {
                session.replace(pos, pos, "a").unwrap();
                len += 1;
            }
            if i % 64 == 63 {
                stored.save(&mut session);
                for record in &stored.records {
                    other.receive_from_tab(record).unwrap();
                }
                other.take_unsaved();
                other.replace(0, 0, "o").unwrap();
                len += 1;
                let record = other.take_unsaved().unwrap();
                session.receive_from_tab(&record).unwrap();
                stored.records.clear();
            }
        }
        let per = start.elapsed() / 10_000;
        println!(
            "keystrokes {:>6}..{:>6}: {per:?} each, {} pending",
            chunk * 10_000,
            (chunk + 1) * 10_000,
            session.pending_len()
        );
    }
}

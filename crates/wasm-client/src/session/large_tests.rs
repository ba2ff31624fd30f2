//! Edits of any size: large edits leave as several changes that each fit a frame, a change no
//! frame can carry is dropped and said, and a close for a message too big never makes the
//! session send the same frame again.

use super::edits::{MAX_DELETE_UNITS, MAX_INSERT_BYTES};
use super::tests::{connect, flush, FakeServer};
use super::*;

/// `n` bytes of text with two- and four-byte characters mixed in, so that pieces must end on
/// character boundaries.
fn text_of(n: usize) -> String {
    let mut text = String::with_capacity(n + 4);
    let mut i = 0u32;
    while text.len() < n {
        text.push(match i % 97 {
            0 => 'é',
            1 => '🙂',
            2 => '\n',
            k => char::from(b'a' + (k % 26) as u8),
        });
        i += 1;
    }
    text
}

/// Every frame the session has to send on this connection (without acking them).
fn frames(session: &mut Session) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| session.next_frame()).collect()
}

#[test]
fn a_five_megabyte_paste_goes_out_as_frames_below_the_message_limit() {
    let mut server = FakeServer::new();
    let mut session = Session::new(ReplicaId::from_u128(1));
    connect(&mut session, &mut server);
    session.replace(0, 0, "[]").unwrap();
    let paste = text_of(5_000_000);
    let made = session.replace(1, 1, &paste).unwrap();
    let pieces = paste.len().div_ceil(MAX_INSERT_BYTES);
    assert!((pieces..=pieces + 1).contains(&made.len()), "one change per piece of 256 KiB at most: {}", made.len());
    assert_eq!(session.body(), format!("[{paste}]"));

    let mut sent = 0;
    while let Some(frame) = session.next_frame() {
        assert!(frame.len() <= DEFAULT_MAX_MESSAGE_BYTES, "a frame of {} bytes", frame.len());
        let (ack, _) = server.handle(session.doc().replica(), &frame);
        session.receive(&ack).unwrap();
        sent += 1;
    }
    assert!(sent >= 5, "5 MB need at least five frames of 1 MiB: {sent}");
    assert_eq!(session.pending_len(), 0, "every piece acknowledged");
    assert_eq!(server.doc.text(BODY), Some(format!("[{paste}]")));
}

#[test]
fn a_long_delete_goes_out_in_pieces_and_a_small_edit_stays_one_change() {
    let mut server = FakeServer::new();
    let mut session = Session::new(ReplicaId::from_u128(1));
    connect(&mut session, &mut server);
    let text = "ab".repeat(MAX_DELETE_UNITS + 10);
    session.replace(0, 0, &text).unwrap();
    flush(&mut session, &mut server);
    // Keep the first and last character: 2 * MAX + 18 characters deleted, in three changes.
    let made = session.replace(1, text.len() - 1, "xy").unwrap();
    assert_eq!(made.len(), 4, "three deletes and an insert");
    assert_eq!(session.body(), "axyb");
    flush(&mut session, &mut server);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("axyb"));

    let made = session.replace(1, 3, "q").unwrap();
    assert_eq!(made.len(), 1, "a replace below the limits is one change, as before");
    assert_eq!(made[0].ops.len(), 2);
    // A range inside a surrogate pair is refused whole, as for a small edit.
    session.replace(3, 3, "🙂").unwrap();
    let long = "z".repeat(MAX_INSERT_BYTES + 1);
    assert!(session.replace(4, 4, &long).is_err());
    assert_eq!(session.body(), "aqb🙂");
}

#[test]
fn text_room_counts_deleted_characters_like_the_server() {
    let mut session = Session::new(ReplicaId::from_u128(1));
    assert_eq!(session.text_room(), DEFAULT_MAX_TEXT_CHARS);
    session.set_max_text_chars(10);
    session.replace(0, 0, "héllo").unwrap();
    session.replace(0, 5, "").unwrap();
    assert_eq!(session.text_room(), 5, "the five deleted characters still count");
    session.replace(0, 0, "1234567").unwrap();
    assert_eq!(session.text_room(), 0, "never below zero");
}

#[test]
fn a_change_no_frame_can_carry_is_dropped_with_what_depends_on_it_and_said() {
    let mut server = FakeServer::new();
    let first = ReplicaId::from_u128(1);
    let mut session = Session::new(first);
    connect(&mut session, &mut server);
    session.replace(0, 0, "kept ").unwrap();
    flush(&mut session, &mut server);
    // A change made whole before edits were split (as an old page stored it): 2 MB.
    let stuck = session.doc.insert_text(BODY, 5, &"x".repeat(2_000_000)).unwrap();
    session.record_local(stuck);
    session.replace(0, 0, "later ").unwrap();
    assert_eq!(session.pending_len(), 2);

    assert!(session.next_frame().is_none(), "nothing is sent");
    let notice = session.take_notice().expect("the person is told");
    assert!(notice.contains("too large to send"), "{notice}");
    assert!(session.take_notice().is_none(), "once");
    assert_eq!(session.pending_len(), 0, "the change and the later one built on it are gone");
    assert_ne!(session.doc().replica(), first, "the old replica's next seq can never be accepted");

    // The next connection rebuilds from the server's copy, and editing goes on.
    session.disconnected();
    let event = connect(&mut session, &mut server);
    assert!(event.reset);
    assert_eq!(session.body(), "kept ");
    assert!(session.needs_compaction(), "the stored state that held the change is replaced");
    session.replace(5, 5, "and more").unwrap();
    flush(&mut session, &mut server);
    assert_eq!(server.doc.text(BODY).as_deref(), Some("kept and more"));
}

#[test]
fn closes_for_a_message_too_big_shrink_frames_until_the_change_is_dropped() {
    let mut server = FakeServer::new();
    let mut session = Session::new(ReplicaId::from_u128(1));
    connect(&mut session, &mut server);
    // Three pieces of 200 KB: one frame under the default limit.
    for _ in 0..3 {
        let end = session.body().len();
        session.replace(end, end, &"y".repeat(200_000)).unwrap();
    }
    let first = frames(&mut session);
    assert_eq!(first.len(), 1);
    let mut connections = 1;
    let mut largest_seen = vec![first[0].len()];
    // A server whose limit is 100 KB closes every connection that sends more, with 1009.
    loop {
        session.disconnected_with(Some(CLOSE_MESSAGE_TOO_BIG));
        connect(&mut session, &mut server);
        connections += 1;
        let sent = frames(&mut session);
        if sent.is_empty() {
            break;
        }
        let largest = sent.iter().map(Vec::len).max().unwrap();
        assert!(largest <= largest_seen.last().unwrap() / 2, "each close halves the frames");
        largest_seen.push(largest);
        assert!(connections < 10, "bounded");
    }
    assert_eq!(largest_seen.len(), 2, "one frame of three, then three of one: {largest_seen:?}");
    assert!(session.take_notice().unwrap().contains("too large to send"));
    assert_eq!(session.pending_len(), 0, "dropped, never sent again");
    assert!(frames(&mut session).is_empty());
}

#[test]
fn a_refusal_for_good_is_said_in_plain_words() {
    let words = super::acks::refusal_words(reject::TEXT_TOO_LARGE, "change 0 inserts text beyond", 3);
    assert!(words.contains("beyond the size the server allows"), "{words}");
    assert!(words.contains("3 edits") && words.contains("everything else keeps syncing"), "{words}");
}

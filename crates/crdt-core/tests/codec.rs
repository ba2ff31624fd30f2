//! The wire format: round trips, header errors, hostile length prefixes, and a fuzz-style
//! property test that decoding arbitrary or corrupted bytes never panics.

use std::sync::OnceLock;

use crdt_core::codec::{
    decode_changes, decode_message, decode_message_with_limit, decode_snapshot, encode_changes, encode_message,
    encode_snapshot, encode_snapshot_without_history, FORMAT_VERSION, KIND_CHANGES, KIND_SNAPSHOT, MAX_MESSAGE_LEN,
};
use crdt_core::{Change, DecodeError, Document, ReplicaId, VersionVector};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const A: ReplicaId = ReplicaId::from_u128(0xA);
const B: ReplicaId = ReplicaId::from_u128(0xB);
const C: ReplicaId = ReplicaId::from_u128(0xC);

/// Two replicas' edits on all five field kinds, synced; and the changes, in order.
fn sample() -> (Document, Vec<Change>) {
    let mut a = Document::new(A);
    let mut b = Document::new(B);
    let mut changes = vec![
        a.insert_text("body", 0, "héllo 🦀").unwrap(),
        a.set_register("title", "Draft".into()),
        a.add_to_set("tags", "x".into()),
    ];
    for change in &changes {
        b.apply_change(change.clone()).unwrap();
    }
    let from_b = vec![
        b.delete_text("body", 1, 2).unwrap().unwrap(),
        b.remove_from_set("tags", "x").unwrap().unwrap(),
        b.decrement("votes", 3),
        b.increment_gcounter("views", 2),
        b.transact(|tx| {
            tx.insert_text("title", 0, "t")?;
            tx.add_to_set("tags", "y".into());
            Ok(())
        })
        .unwrap()
        .unwrap(),
    ];
    for change in &from_b {
        a.apply_change(change.clone()).unwrap();
    }
    changes.extend(from_b);
    (a, changes)
}

/// Valid encodings to corrupt.
fn valid_encodings() -> &'static [Vec<u8>] {
    static ENCODINGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ENCODINGS.get_or_init(|| {
        let (doc, changes) = sample();
        vec![
            encode_changes(&changes),
            encode_changes(&changes[..1]),
            encode_changes(&changes[3..5]),
            encode_snapshot(&doc),
            encode_snapshot_without_history(&doc),
            encode_snapshot(&Document::new(C)),
        ]
    })
}

#[test]
fn changes_round_trip() {
    let (_, changes) = sample();
    let bytes = encode_changes(&changes);
    assert_eq!(&bytes[..2], &[FORMAT_VERSION, KIND_CHANGES]);
    assert_eq!(decode_changes(&bytes).unwrap(), changes);
    assert_eq!(decode_changes(&encode_changes(&[])).unwrap(), Vec::<Change>::new());
}

#[test]
fn snapshots_round_trip() {
    let (doc, _) = sample();
    let bytes = encode_snapshot(&doc);
    assert_eq!(&bytes[..2], &[FORMAT_VERSION, KIND_SNAPSHOT]);
    let decoded = decode_snapshot(&bytes, C).unwrap();
    assert_eq!(decoded, doc);
    assert_eq!(decoded.replica(), C);
    decoded.check_invariants();
    let light = decode_snapshot(&encode_snapshot_without_history(&doc), C).unwrap();
    assert_eq!(light.value(), doc.value());
    assert_eq!(light.history_base(), doc.version());
    assert!(light.history().is_empty());
    // Encoding is deterministic.
    assert_eq!(encode_snapshot(&decoded), bytes);
}

#[test]
fn messages_round_trip() {
    let message = (String::from("hello"), vec![1u64, 300, u64::MAX]);
    let bytes = encode_message(40, &message);
    assert_eq!(decode_message::<(String, Vec<u64>)>(40, &bytes), Ok(message));
}

#[test]
fn header_errors() {
    let bytes = encode_changes(&sample().1);
    assert_eq!(decode_changes(&[]), Err(DecodeError::Empty));
    assert!(matches!(decode_changes(&[1]), Err(DecodeError::Malformed(_))));
    assert_eq!(
        decode_changes(&[9, KIND_CHANGES, 0]),
        Err(DecodeError::UnsupportedVersion { found: 9, supported: FORMAT_VERSION })
    );
    assert_eq!(
        decode_snapshot(&bytes, C),
        Err(DecodeError::WrongKind { found: KIND_CHANGES, expected: KIND_SNAPSHOT })
    );
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(&[0, 0, 0]);
    assert_eq!(decode_changes(&trailing), Err(DecodeError::TrailingBytes(3)));
    assert!(matches!(decode_changes(&bytes[..bytes.len() - 1]), Err(DecodeError::Malformed(_))));
    assert_eq!(
        decode_message_with_limit::<Vec<Change>>(KIND_CHANGES, &bytes, 10),
        Err(DecodeError::TooLarge { len: bytes.len(), limit: 10 })
    );
    let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
    assert!(matches!(decode_changes(&huge), Err(DecodeError::TooLarge { .. })));
}

#[test]
fn invalid_content_is_rejected() {
    let (_, changes) = sample();
    let mut bad = changes[0].clone();
    bad.seq = 0;
    assert!(matches!(decode_changes(&encode_changes(&[bad])), Err(DecodeError::Invalid(_))));
    // Hand-made snapshot payloads: (fields, version, history_base, history).
    let no_fields: Vec<(String, ())> = Vec::new();
    let a_at = |seq: u64| -> VersionVector { [(A, seq)].into_iter().collect() };
    let gap = (&no_fields, a_at(2), VersionVector::new(), vec![changes[1].clone()]);
    let overclaim = (&no_fields, a_at(5), VersionVector::new(), Vec::<Change>::new());
    let consistent = (&no_fields, a_at(5), a_at(5), Vec::<Change>::new());
    for (payload, ok) in [(gap, false), (overclaim, false), (consistent, true)] {
        let decoded = decode_snapshot(&encode_message(KIND_SNAPSHOT, &payload), C);
        assert_eq!(decoded.is_ok(), ok, "{decoded:?}");
        if !ok {
            assert!(matches!(decoded, Err(DecodeError::Invalid(_))));
        }
    }
}

/// Frames whose length prefix claims about 2^36 elements or bytes. Without an allocation limit,
/// bincode would try to reserve that much memory and abort the process.
#[test]
fn huge_length_prefixes_are_errors_not_aborts() {
    let claim = 1u64 << 36;
    let mut varint = vec![0xFD];
    varint.extend_from_slice(&claim.to_le_bytes());
    let u32_claim = [0xFC, 0xFF, 0xFF, 0xFF, 0xFF];
    let mut frames: Vec<(u8, Vec<u8>)> = Vec::new();
    for prefix in [&varint[..], &u32_claim[..]] {
        // A Vec<Change> of 2^36 changes; one change whose replica is a 2^36-byte string; a
        // snapshot whose first field name is a 2^36-byte string.
        frames.push((KIND_CHANGES, [&[1, KIND_CHANGES][..], prefix].concat()));
        frames.push((KIND_CHANGES, [&[1, KIND_CHANGES, 1][..], prefix].concat()));
        frames.push((KIND_SNAPSHOT, [&[1, KIND_SNAPSHOT, 1][..], prefix].concat()));
        frames.push((7, [&[1, 7][..], prefix].concat()));
    }
    // The literal 9-byte frame: header, a 0xFC (u32) length prefix, and nothing behind it.
    frames.push((KIND_CHANGES, vec![1, 1, 0xFC, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00]));
    for (kind, frame) in &frames {
        match *kind {
            KIND_CHANGES => assert!(decode_changes(frame).is_err(), "{frame:?}"),
            KIND_SNAPSHOT => assert!(decode_snapshot(frame, C).is_err(), "{frame:?}"),
            _ => {
                assert!(decode_message::<String>(*kind, frame).is_err(), "{frame:?}");
                assert!(decode_message::<Vec<u8>>(*kind, frame).is_err(), "{frame:?}");
                assert!(decode_message::<Vec<String>>(*kind, frame).is_err(), "{frame:?}");
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Overwrite(usize, u8),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), prop::sample::select(vec![0u8, 1, 0x7F, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF]))
            .prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Flip(i, bit) if len > 0 => bytes[i % len] ^= 1 << bit,
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Overwrite(i, b) if len > 0 => bytes[i % len] = b,
            Mutation::Truncate(i) => bytes.truncate(i % (len + 1)),
            _ => {}
        }
    }
    bytes
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    let count = valid_encodings().len();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|tail| {
            let kind = tail.first().map_or(KIND_CHANGES, |b| 1 + b % 2);
            [&[FORMAT_VERSION, kind][..], &tail].concat()
        }),
        (0..count, prop::collection::vec(mutation(), 1..4))
            .prop_map(|(i, ms)| mutate(valid_encodings()[i].clone(), &ms)),
    ]
}

/// Whatever decodes must be usable: applying, reading and re-encoding never panic.
fn exercise(bytes: &[u8]) {
    if let Ok(changes) = decode_changes(bytes) {
        let mut fresh = Document::new(C);
        let mut synced = sample().0;
        for change in changes {
            let _ = fresh.apply_change(change.clone());
            let _ = synced.apply_change(change);
        }
        fresh.check_invariants();
        synced.check_invariants();
        let _ = (fresh.value(), synced.state_hash());
    }
    if let Ok(doc) = decode_snapshot(bytes, C) {
        doc.check_invariants();
        let _ = (doc.value(), doc.state_hash());
        let again = decode_snapshot(&encode_snapshot(&doc), C).expect("re-encoding decodes");
        assert_eq!(again, doc);
        let mut merged = Document::new(C);
        merged.merge(&doc);
        assert_eq!(merged.value(), doc.value());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::with_cases(10_000)
    })]

    #[test]
    fn decoding_never_panics(bytes in input()) {
        exercise(&bytes);
    }
}

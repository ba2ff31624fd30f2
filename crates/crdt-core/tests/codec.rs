//! The wire format: round trips, header errors, hostile length prefixes, and a fuzz-style
//! property test that decoding arbitrary or corrupted bytes never panics.

use std::sync::OnceLock;

use crdt_core::codec::{
    as_the_browser_writes, decode_changes, decode_message, decode_message_with_limit, decode_snapshot, encode_changes,
    encode_message, encode_snapshot, encode_snapshot_without_history, LegacyChange, FORMAT_VERSION, KIND_CHANGES,
    KIND_SNAPSHOT, LEGACY_FORMAT_VERSION, MAX_MESSAGE_LEN,
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

/// The browser's form (stored deflate streams) and the server's (compressed) decode to the
/// same document; only the server's is compressed.
#[test]
fn browser_and_server_forms_decode_alike() {
    let (mut doc, _) = sample();
    for i in 0..300 {
        doc.insert_text("body", 0, if i % 3 == 0 { "the same words again " } else { "and again " }).unwrap();
    }
    let server = encode_snapshot(&doc);
    let browser = as_the_browser_writes(|| encode_snapshot(&doc));
    assert!(server.len() < browser.len(), "{} bytes compressed, {} stored", server.len(), browser.len());
    // Outside the closure, this build compresses again.
    assert_eq!(encode_snapshot(&doc), server);
    for bytes in [&server, &browser] {
        let back = decode_snapshot(bytes, C).unwrap();
        assert_eq!(back.value(), doc.value());
        assert_eq!(back.version(), doc.version());
        assert_eq!(back.state_hash(), doc.state_hash());
        assert_eq!(back.ops_since(&VersionVector::new()).unwrap(), doc.ops_since(&VersionVector::new()).unwrap());
    }
}

/// bincode's errors become readable messages (not its `Debug` output).
#[test]
fn bincode_errors_are_named() {
    let malformed = |result: Result<(String, Vec<u64>), DecodeError>| match result {
        Err(DecodeError::Malformed(message)) => message,
        other => panic!("expected a malformed payload, got {other:?}"),
    };
    let bytes = encode_message(40, &(String::from("hello"), vec![1u64, 300]));
    assert_eq!(malformed(decode_message(40, &bytes[..bytes.len() - 1])), "input ends 1 bytes early");
    let mut not_utf8 = bytes.clone();
    not_utf8[3] = 0xff;
    assert_eq!(malformed(decode_message(40, &not_utf8)), "a string is not UTF-8");
    // serde's own message, as it wrote it.
    let option = encode_message(41, &5u8);
    match decode_message::<Option<u8>>(41, &option) {
        Err(DecodeError::Malformed(message)) => assert!(message.contains("5"), "{message}"),
        other => panic!("expected a malformed payload, got {other:?}"),
    }
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
    // Hand-made snapshot payloads: (fields, version, history_base, log), the log empty: no
    // replicas, no texts, no spans, columns as they are (10 empty columns).
    let no_fields: Vec<(String, ())> = Vec::new();
    let a_at = |seq: u64| -> VersionVector { [(A, seq)].into_iter().collect() };
    let empty_log: Vec<u8> = [0, 0, 0, 0, 10].into_iter().chain([0; 10]).collect();
    let overclaim = (&no_fields, a_at(5), VersionVector::new(), empty_log.clone());
    let consistent = (&no_fields, a_at(5), a_at(5), empty_log.clone());
    // Format 1: the history was a list of changes with whole version vectors.
    let legacy = |change: &Change| LegacyChange {
        replica: change.replica,
        seq: change.seq,
        deps: a_at(change.seq - 1),
        ops: change.ops.to_vec(),
    };
    let mut gap =
        encode_message(KIND_SNAPSHOT, &(&no_fields, a_at(2), VersionVector::new(), vec![legacy(&changes[1])]));
    gap[0] = LEGACY_FORMAT_VERSION;
    let mut frames = vec![(gap, false)];
    for (payload, ok) in [(overclaim, false), (consistent, true)] {
        frames.push((encode_message(KIND_SNAPSHOT, &payload), ok));
    }
    for (bytes, ok) in frames {
        let decoded = decode_snapshot(&bytes, C);
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

// ---------------------------------------------------------------------------------------------
// The packed text state inside a snapshot (`rga/pack.rs`, format 2).

use std::io::{Read, Write};

use crdt_core::Rga;

/// A snapshot written by format 1 of `rga/pack.rs` (before the predicted columns): two
/// replicas typing, deleting and inserting concurrently in one text field.
const FORMAT_1_SNAPSHOT: &str = "01020104626f64790002100000000000000000000000000000000a100000000000000000000000000000000b64015f00a0ff021d68c3a96c6c6f2077c3b6726c642c2068656c6c6f20776f726c6478797a0e20f09fa6802074686572653e3e200701000001000100100f0403302904030203030305130000010000000000010f000001000208010a032b0229010104010002100000000000000000000000000000000a03100000000000000000000000000000000b020005100000000000000000000000000000000a01000104626f64790000100000000000000000000000000000000a0000001a68c3a96c6c6f2077c3b6726c642c2068656c6c6f20776f726c64100000000000000000000000000000000a0201100000000000000000000000000000000a010104626f6479000101100000000000000000000000000000000a0203100000000000000000000000000000000b0101100000000000000000000000000000000a010104626f64790000100000000000000000000000000000000b0001100000000000000000000000000000000a0401100000000000000000000000000000000a050b20f09fa680207468657265100000000000000000000000000000000b0202100000000000000000000000000000000a01100000000000000000000000000000000b010104626f64790000100000000000000000000000000000000b080001100000000000000000000000000000000a00033e3e20100000000000000000000000000000000a0302100000000000000000000000000000000a02100000000000000000000000000000000b020104626f64790000100000000000000000000000000000000a1801100000000000000000000000000000000b0201100000000000000000000000000000000b030378797a";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn format_1_snapshots_still_load() {
    let doc = decode_snapshot(&unhex(FORMAT_1_SNAPSHOT), C).unwrap();
    doc.check_invariants();
    assert_eq!(
        format!("{:?}", doc.value()),
        r#"DocValue { entries: {"body": Text(">> hé 🦀 xyzthere wörld, hello world")} }"#
    );
    // Written again in format 2, it reads back the same.
    let again = decode_snapshot(&encode_snapshot(&doc), C).unwrap();
    assert_eq!(again, doc);
}

/// The first byte of the packed text state as written now (format 4: format 3's layout with a
/// model byte before the runs' columns).
const TAG_V4: u8 = 0xF6;

fn rga_bytes(rga: &Rga) -> Vec<u8> {
    bincode::serde::encode_to_vec(rga, bincode::config::standard()).unwrap()
}

fn rga_from(bytes: &[u8]) -> Result<Rga, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard().with_limit::<{ 1 << 24 }>()).map(|(r, _)| r)
}

/// The serde form of an `Rga` is `(replicas, packed bytes)`.
fn split_wire(bytes: &[u8]) -> (Vec<ReplicaId>, Vec<u8>) {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).unwrap().0
}

fn join_wire(replicas: &[ReplicaId], packed: &[u8]) -> Vec<u8> {
    bincode::serde::encode_to_vec((replicas, packed), bincode::config::standard()).unwrap()
}

/// The two inflated streams of format-4 packed bytes: (text literals, structure).
fn open_streams(packed: &[u8]) -> (Vec<u8>, Vec<u8>) {
    assert_eq!(packed[0], TAG_V4);
    let (mut len, mut shift, mut at) = (0usize, 0, 1);
    loop {
        let b = packed[at];
        at += 1;
        len |= ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b < 0x80 {
            break;
        }
    }
    let inflate = |data: &[u8]| {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    };
    (inflate(&packed[at..at + len]), inflate(&packed[at + len..]))
}

fn close_streams(literals: &[u8], structure: &[u8]) -> Vec<u8> {
    let deflate = |data: &[u8]| {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    };
    let first = deflate(literals);
    let mut out = vec![TAG_V4];
    let mut n = first.len();
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&first);
    out.extend_from_slice(&deflate(structure));
    out
}

/// Texts that repeat, so the long-range pass finds references (one overlapping).
const PIECES: [&str; 5] = [
    "a sentence long enough to be found again by the long-range pass, ",
    "ababababababababababababababababababababababababababababababab",
    "é🦀 ünïcödé tëxt thät ïs löng énöügh tö bé répéätéd, 🦀🦀🦀 ",
    "x",
    "\n",
];

#[derive(Clone, Debug)]
enum Edit {
    Insert { replica: usize, at: usize, piece: usize },
    Delete { replica: usize, at: usize, len: usize },
    Sync { from: usize, to: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0..3usize, any::<usize>(), 0..PIECES.len()).prop_map(|(replica, at, piece)| Edit::Insert { replica, at, piece }),
        2 => (0..3usize, any::<usize>(), 1..30usize).prop_map(|(replica, at, len)| Edit::Delete { replica, at, len }),
        1 => (0..3usize, 0..3usize).prop_map(|(from, to)| Edit::Sync { from, to }),
    ]
}

/// Three replicas editing concurrently with occasional merges; returns them merged into one.
fn concurrent(edits: &[Edit]) -> Rga {
    let mut rgas: Vec<Rga> = (0..3).map(|i| Rga::new(ReplicaId::from_u128(0x10 + i))).collect();
    for e in edits {
        match *e {
            Edit::Insert { replica, at, piece } => {
                let r = &mut rgas[replica];
                r.insert(at % (r.len() + 1), PIECES[piece]).unwrap();
            }
            Edit::Delete { replica, at, len } => {
                let r = &mut rgas[replica];
                if !r.is_empty() {
                    let at = at % r.len();
                    r.delete(at, len.min(r.len() - at)).unwrap();
                }
            }
            Edit::Sync { from, to } if from != to => {
                let source = rgas[from].clone();
                rgas[to].merge(&source);
            }
            Edit::Sync { .. } => {}
        }
    }
    let mut all = rgas[0].clone();
    all.merge(&rgas[1]);
    all.merge(&rgas[2]);
    all
}

#[derive(Clone, Debug)]
enum StreamMutation {
    Literals(Mutation),
    Structure(Mutation),
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::with_cases(128)
    })]

    /// Concurrent edits of several replicas (origins the single-replica model does not predict)
    /// and repeated text (the long-range pass) round-trip exactly.
    #[test]
    fn concurrent_texts_round_trip(edits in prop::collection::vec(edit(), 1..40)) {
        let rga = concurrent(&edits);
        let bytes = rga_bytes(&rga);
        prop_assert_eq!(split_wire(&bytes).1[0], TAG_V4);
        let back = rga_from(&bytes).unwrap();
        back.check_invariants();
        prop_assert_eq!(back.value(), rga.value());
        prop_assert_eq!(&back, &rga);
        prop_assert_eq!(rga_bytes(&back), bytes, "encoding is deterministic");
    }

    /// Corrupting the inflated streams (where deflate's own checks do not help) gives an error or
    /// a text that works; never a panic.
    #[test]
    fn corrupted_streams_never_panic(
        edits in prop::collection::vec(edit(), 1..30),
        mutations in prop::collection::vec(
            prop_oneof![
                mutation().prop_map(StreamMutation::Literals),
                mutation().prop_map(StreamMutation::Structure),
            ],
            1..4,
        ),
    ) {
        let rga = concurrent(&edits);
        let (replicas, packed) = split_wire(&rga_bytes(&rga));
        let (mut literals, mut structure) = open_streams(&packed);
        for m in &mutations {
            match m {
                StreamMutation::Literals(m) => literals = mutate(literals, std::slice::from_ref(m)),
                StreamMutation::Structure(m) => structure = mutate(structure, std::slice::from_ref(m)),
            }
        }
        if let Ok(back) = rga_from(&join_wire(&replicas, &close_streams(&literals, &structure))) {
            back.check_invariants();
            let _ = back.value();
            let again = rga_from(&rga_bytes(&back)).expect("re-encoding decodes");
            prop_assert_eq!(&again, &back);
        }
    }
}

/// Three replicas inserting, deleting and syncing: a state with runs of every kind.
fn mixed_edits() -> Vec<Edit> {
    (0..40)
        .map(|i| match i % 5 {
            0 | 1 => Edit::Insert { replica: i % 3, at: i * 7, piece: i % PIECES.len() },
            2 => Edit::Delete { replica: i % 3, at: i * 3, len: 4 },
            3 => Edit::Sync { from: i % 3, to: (i + 1) % 3 },
            _ => Edit::Insert { replica: (i + 1) % 3, at: i, piece: 0 },
        })
        .collect()
}

#[test]
fn truncated_packed_bytes_are_errors() {
    let rga = concurrent(&mixed_edits());
    let (replicas, packed) = split_wire(&rga_bytes(&rga));
    assert_eq!(&rga_from(&join_wire(&replicas, &packed)).unwrap(), &rga);
    for len in 0..packed.len() {
        assert!(rga_from(&join_wire(&replicas, &packed[..len])).is_err(), "truncated to {len} bytes");
    }
    // Streams cut short or given trailing bytes, re-deflated so that only our checks can see it.
    let (literals, structure) = open_streams(&packed);
    for cut in [1, 2, 5, structure.len() / 2] {
        let short = close_streams(&literals, &structure[..structure.len() - cut]);
        assert!(rga_from(&join_wire(&replicas, &short)).is_err(), "structure cut by {cut}");
    }
    let long = close_streams(&literals, &[&structure[..], &[0]].concat());
    assert!(rga_from(&join_wire(&replicas, &long)).is_err(), "trailing byte");
    let short = close_streams(&literals[1..], &structure);
    assert!(rga_from(&join_wire(&replicas, &short)).is_err(), "a literal byte missing");
    // A replica table that disagrees with the packed state.
    assert!(rga_from(&join_wire(&replicas[1..], &packed)).is_err());
    // An inflated size far beyond the packed size is refused before it is allocated.
    let bomb = close_streams(&vec![b'a'; 8 << 20], &structure);
    assert!(rga_from(&join_wire(&replicas, &bomb)).is_err());
}

/// The packer stores the structure stream; format 2 as first written deflated it. Both load.
#[test]
fn compressed_structure_still_loads() {
    let rga = concurrent(&mixed_edits());
    let (replicas, packed) = split_wire(&rga_bytes(&rga));
    let (literals, structure) = open_streams(&packed);
    // One stored block: its five-byte header, then the bytes as they are.
    assert!(packed.ends_with(&structure), "stored, not compressed");
    // `close_streams` deflates both streams, as the first writer of format 2 did.
    let compressed = close_streams(&literals, &structure);
    assert!(compressed.len() < packed.len());
    assert_eq!(&rga_from(&join_wire(&replicas, &compressed)).unwrap(), &rga);
}

/// Text that compresses beyond what unpacking accepts is stored instead, so it still loads.
#[test]
#[cfg_attr(feature = "check-invariants", ignore = "the invariant checks are quadratic on a 2 MB text")]
fn extremely_repetitive_text_still_loads() {
    let mut rga = Rga::new(A);
    let line = "the same line, pasted again and again and again\n".repeat(2000);
    for _ in 0..20 {
        rga.insert(0, &line).unwrap();
    }
    let bytes = rga_bytes(&rga);
    assert!(bytes.len() > 1 << 20, "stored, not compressed: {} bytes", bytes.len());
    let back = rga_from(&bytes).unwrap();
    assert_eq!(back.value(), rga.value());
}

/// Edits at scattered places leave about one run per character, which turns the id index
/// dense; a remote replica, a saved and loaded copy, and later edits on both must agree.
#[test]
fn scattered_edits_save_load_and_merge() {
    let mut a = Rga::new(ReplicaId::from_u128(1));
    let mut b = Rga::new(ReplicaId::from_u128(2));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    for i in 0..6_000 {
        let op = if !a.is_empty() && i % 10 == 0 {
            a.delete(rand(a.len()), 1).unwrap().into_op()
        } else {
            Some(a.insert(rand(a.len() + 1), "x").unwrap().to_op())
        };
        if let Some(op) = op {
            b.apply(&op).unwrap();
        }
        if i % 1_000 == 0 {
            a.check_invariants();
            b.check_invariants();
        }
    }
    a.check_invariants();
    b.check_invariants();
    assert_eq!(a, b);
    let mut loaded = rga_from(&rga_bytes(&a)).unwrap();
    loaded.check_invariants();
    assert_eq!(loaded, a);
    // Both go on editing at scattered places and exchange their operations.
    for _ in 0..500 {
        let op = a.insert(rand(a.len() + 1), "y").unwrap().to_op();
        loaded.apply(&op).unwrap();
        let op = loaded.insert(rand(loaded.len() + 1), "z").unwrap().to_op();
        a.apply(&op).unwrap();
    }
    a.check_invariants();
    loaded.check_invariants();
    assert_eq!(a.value(), loaded.value());
}

/// A snapshot written before the text state's format 3 (its texts in format 2, tag 0xE6, two
/// replicas with concurrent edits) still loads to the same value and state hash.
#[test]
fn text_states_of_format_2_still_load() {
    const SNAPSHOT: &str = "02020204626f647900021000000000000000000000000000000001100000000000000000000000000000000233e615cb48cdc9c95728cf2fca49d15148494d2c52540400011700e8ff02110200050004010103080c0c04000018010000040101057469746c650101011000000000000000000000000000000001017402100000000000000000000000000000000103100000000000000000000000000000000202005b0200000000000000000000000000000001000000000000000000000000000000020104626f647905013e635550d011e46361000226460606666e3626467920838d9181919191418e91519ab524b324279591518001153032960000";
    let doc = decode_snapshot(&unhex(SNAPSHOT), C).unwrap();
    doc.check_invariants();
    assert_eq!(doc.text("body").as_deref(), Some("ello, dear world!!"));
    assert_eq!(doc.register("title"), Some("t"));
    // The state hash as defined since 2026-12 (texts by their polynomial hash).
    assert_eq!(doc.state_hash(), 0x6143_1d0f_fcb5_2d72);
    let again = decode_snapshot(&encode_snapshot(&doc), C).unwrap();
    assert_eq!(again, doc);
}

/// A snapshot written before the text state's format 4 (its text in format 3, tag 0xEE, four
/// replicas: two by turns, one concurrent, one after the merge; the version stored whole)
/// still loads to the same value and state hash, and is written again in format 4.
#[test]
fn text_states_of_format_3_still_load() {
    const SNAPSHOT: &str = "02020204626f64790004100000000000000000000000000000000110000000000000000000000000000000021000000000000000000000000000000003100000000000000000000000000000000456ee1ccb48cdc9c95728cf2fca49d15148494d2c5254b43bbcf2c3fc650d00013300ccff040b0801060008020100020301000101010001010102030404040c0c0400000000000000000401000205010001050100010101057469746c650101011000000000000000000000000000000004017404100000000000000000000000000000000101100000000000000000000000000000000203100000000000000000000000000000000301100000000000000000000000000000000402008304000000000000000000000000000000010000000000000000000000000000000200000000000000000000000000000003000000000000000000000000000000040104626f64790701496357d01154b0d161626300036646266606166e36262646614606066e20666464646264606290636494662dc92cc9496564146040052c8c2500";
    let doc = decode_snapshot(&unhex(SNAPSHOT), C).unwrap();
    doc.check_invariants();
    assert_eq!(doc.text("body").as_deref(), Some(">elé🦀lo, dear world!!"));
    assert_eq!(doc.register("title"), Some("t"));
    assert_eq!(doc.state_hash(), 0x3f1f_3f07_89cc_76f2);
    assert_eq!(doc.version().len(), 4);
    let bytes = encode_snapshot(&doc);
    assert!(bytes.len() < SNAPSHOT.len() / 2, "the version is no longer stored");
    let again = decode_snapshot(&bytes, C).unwrap();
    assert_eq!(again, doc);
    assert_eq!(again.version(), doc.version());
}

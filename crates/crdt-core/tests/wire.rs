//! The protocol's compact change lists: what a client encodes on a connection decodes to the
//! same changes on the server's side of it, frame after frame, whatever the replicas, fields
//! and operations; and mutated frames are errors, never panics.

use crdt_core::protocol::{self, AuthorSecret, ClientMsg, ServerMsg, UserInfo, WireNames, PROTOCOL_VERSION};
use crdt_core::{Change, Document, ReplicaId, VersionVector};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Changes of several replicas editing several fields, exchanged so that origins and deletes
/// name other replicas' characters.
fn changes(seed: u64) -> Vec<Change> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut docs: Vec<Document> = (0..3).map(|i| Document::new(ReplicaId::from_u128(seed as u128 * 4 + i))).collect();
    let mut all = Vec::new();
    for _ in 0..rng.gen_range(1..40) {
        let i = rng.gen_range(0..3);
        let field = ["body", "notes"][rng.gen_range(0..2)];
        let len = docs[i].rga(field).map_or(0, |r| r.len());
        let change = match rng.gen_range(0..6) {
            0 | 1 => docs[i].insert_text(field, rng.gen_range(0..=len), ["a", "bc", "é✓"][rng.gen_range(0..3)]).ok(),
            2 if len > 0 => docs[i].delete_text(field, rng.gen_range(0..len), 1).unwrap(),
            3 => Some(docs[i].set_register("title", "t".into())),
            4 => Some(docs[i].increment("likes", 2)),
            _ => {
                let j = rng.gen_range(0..3);
                for c in docs[j].ops_since(docs[i].version()).unwrap_or_default() {
                    docs[i].apply_change(c).unwrap();
                }
                None
            }
        };
        all.extend(change);
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(500) })]

    /// Frames encoded on one connection decode on the other end of it, in order.
    #[test]
    fn a_connection_round_trips_its_frames(seed in any::<u64>(), split in 1usize..6) {
        let all = changes(seed);
        let hello = ClientMsg::Hello {
            protocol: PROTOCOL_VERSION,
            replica: ReplicaId::from_u128(seed as u128 * 4),
            author: AuthorSecret([7; 32]),
            version: VersionVector::new(),
            user: UserInfo { name: "a".into(), color: "#000".into() },
            token: String::new(),
        };
        let (mut sender, mut receiver) = (WireNames::new(), WireNames::new());
        let frame = hello.encode_on(&mut sender);
        prop_assert_eq!(ClientMsg::decode_on(&frame, 1 << 20, &mut receiver).unwrap(), hello);
        for (i, chunk) in all.chunks(split).enumerate() {
            let message = ClientMsg::Changes { seq: i as u64 + 1, changes: chunk.to_vec() };
            let frame = message.encode_on(&mut sender);
            prop_assert_eq!(ClientMsg::decode_on(&frame, 1 << 20, &mut receiver).unwrap(), message);
        }
        // The server's frames stand alone.
        let message = ServerMsg::Changes { changes: all.clone() };
        prop_assert_eq!(ServerMsg::decode(&message.encode()).unwrap(), message);
        // A relay is its tagged list as the server encoded it; given back on a connection
        // that named other replicas already, the list still names everything in full.
        let tag = [seed as u8; 16];
        let list = protocol::change_list_bytes(&all);
        let relay = ServerMsg::Relay { changes: all.clone(), tag, number: seed, durable: seed / 2 };
        prop_assert_eq!(protocol::relay_frame(&list, &tag, seed, seed / 2), relay.encode());
        prop_assert_eq!(ServerMsg::decode(&relay.encode()).unwrap(), relay);
        let back = ClientMsg::GiveBack { seq: 99, changes: all.clone(), tag };
        let frame = back.encode_on(&mut sender);
        prop_assert_eq!(ClientMsg::decode_on(&frame, 1 << 20, &mut receiver).unwrap(), back);
    }

    /// Mutated and truncated frames are errors or decode to something; never a panic.
    #[test]
    fn mutated_frames_never_panic(seed in any::<u64>(), at in any::<usize>(), byte in any::<u8>(), cut in any::<bool>()) {
        let message = ClientMsg::Changes { seq: 1, changes: changes(seed) };
        let mut frame = message.encode();
        let i = at % frame.len();
        if cut { frame.truncate(i) } else { frame[i] = byte }
        let _ = ClientMsg::decode_on(&frame, 1 << 20, &mut WireNames::new());
        let _ = ServerMsg::decode(&frame);
    }
}

/// A number not named yet, and a name written in full twice, are errors.
#[test]
fn names_must_be_consistent() {
    let mut doc = Document::new(ReplicaId::from_u128(9));
    let change = doc.insert_text("body", 0, "x").unwrap();
    let message = ClientMsg::Changes { seq: 1, changes: vec![change] };
    let mut sender = WireNames::new();
    sender.name_replica(ReplicaId::from_u128(9)).unwrap();
    let numbered = message.encode_on(&mut sender);
    // The receiver never saw the Hello: replica number 1 is unknown.
    assert!(ClientMsg::decode_on(&numbered, 1 << 20, &mut WireNames::new()).is_err());
    // In full, after a Hello named it: named twice.
    let mut receiver = WireNames::new();
    receiver.name_replica(ReplicaId::from_u128(9)).unwrap();
    assert!(ClientMsg::decode_on(&message.encode(), 1 << 20, &mut receiver).is_err());
}

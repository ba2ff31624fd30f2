//! The text against plain models: one replica equals a `String` under random edits (in
//! characters and in UTF-16 units), replicas converge under random delivery, and the serialized
//! form reads back to the same state.

use crdt_core::{ApplyError, EditError, ReplicaId, Rga, RgaOp, TextDelta};
use proptest::prelude::*;

/// Text pieces mixing ASCII, accents, CJK, emoji (astral) and combining marks.
fn piece() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::char::range('a', 'z'),
            1 => Just('é'),
            1 => Just('中'),
            1 => Just('😀'),
            1 => Just('\u{0301}'),
            1 => Just('𝄞'),
        ],
        1..6,
    )
    .prop_map(|v| v.into_iter().collect())
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    InsertUtf16(usize, String),
    DeleteUtf16(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), piece()).prop_map(|(p, s)| Edit::Insert(p, s)),
        2 => (any::<usize>(), 0usize..8).prop_map(|(p, n)| Edit::Delete(p, n)),
        2 => (any::<usize>(), piece()).prop_map(|(p, s)| Edit::InsertUtf16(p, s)),
        1 => (any::<usize>(), 0usize..8).prop_map(|(p, n)| Edit::DeleteUtf16(p, n)),
    ]
}

fn utf16_to_char(model: &[char], pos16: usize) -> Option<usize> {
    let mut u = 0;
    for (i, c) in model.iter().enumerate() {
        if u == pos16 {
            return Some(i);
        }
        if u > pos16 {
            return None;
        }
        u += c.len_utf16();
    }
    (u == pos16).then_some(model.len())
}

/// Applies `edit` to the text and the model; positions are reduced into range so most edits are
/// valid; an edit at a UTF-16 position inside a surrogate pair must be refused.
fn apply(rga: &mut Rga, model: &mut Vec<char>, edit: &Edit) -> Option<RgaOp> {
    let len = model.len();
    let len16: usize = model.iter().map(|c| c.len_utf16()).sum();
    match edit {
        Edit::Insert(p, s) => {
            let p = p % (len + 1);
            model.splice(p..p, s.chars());
            Some(rga.insert(p, s).unwrap().to_op())
        }
        Edit::Delete(p, n) => {
            let p = p % (len + 1);
            let n = (*n).min(len - p);
            model.drain(p..p + n);
            rga.delete(p, n).unwrap().into_op()
        }
        Edit::InsertUtf16(p, s) => {
            let p16 = p % (len16 + 1);
            match utf16_to_char(model, p16) {
                Some(p) => {
                    model.splice(p..p, s.chars());
                    Some(rga.insert_utf16(p16, s).unwrap().to_op())
                }
                None => {
                    assert_eq!(rga.insert_utf16(p16, s), Err(EditError::SplitsSurrogate(p16)));
                    None
                }
            }
        }
        Edit::DeleteUtf16(p, n) => {
            let p16 = p % (len16 + 1);
            let n16 = (*n).min(len16 - p16);
            match (utf16_to_char(model, p16), utf16_to_char(model, p16 + n16)) {
                (Some(a), Some(b)) => {
                    model.drain(a..b);
                    rga.delete_utf16(p16, n16).unwrap().into_op()
                }
                _ => {
                    assert!(matches!(rga.delete_utf16(p16, n16), Err(EditError::SplitsSurrogate(_))));
                    None
                }
            }
        }
    }
}

/// `Rga::text_hash` computed from scratch: the polynomial of `rga/text_hash.rs` over the bytes.
fn plain_hash(text: &str) -> u64 {
    const B: u64 = 0x9E37_79B9_7F4A_7C15;
    text.bytes().fold(0u64, |h, b| h.wrapping_mul(B).wrapping_add(u64::from(b)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn one_replica_equals_a_string(edits in prop::collection::vec(edit(), 1..60)) {
        let mut rga = Rga::new(ReplicaId::from_u128(1));
        let mut model: Vec<char> = Vec::new();
        let mut remote = Rga::new(ReplicaId::from_u128(2));
        let mut mirrored: Vec<char> = Vec::new();
        for e in &edits {
            if let Some(op) = apply(&mut rga, &mut model, e) {
                // The deltas a remote replica reports replay the edit on a plain string.
                let mut deltas = Vec::new();
                remote.apply_with_deltas(&op, &mut deltas).unwrap();
                for d in deltas {
                    match d {
                        TextDelta::Insert { pos, text, .. } => { mirrored.splice(pos..pos, text.chars()); }
                        TextDelta::Delete { pos, len, .. } => { mirrored.drain(pos..pos + len); }
                    }
                }
            }
            let s: String = model.iter().collect();
            prop_assert_eq!(rga.value(), s.clone());
            prop_assert_eq!(rga.len(), model.len());
            prop_assert_eq!(rga.len_utf16(), s.encode_utf16().count());
            prop_assert_eq!(mirrored.iter().collect::<String>(), s.clone());
            // The hash kept per leaf follows every edit, local and remote.
            prop_assert_eq!(rga.text_hash(), plain_hash(&s));
            prop_assert_eq!(remote.text_hash(), plain_hash(&s));
        }
        for pos in 0..=model.len() {
            let p16: usize = model[..pos].iter().map(|c| c.len_utf16()).sum();
            prop_assert_eq!(rga.char_to_utf16(pos), Ok(p16));
            prop_assert_eq!(rga.utf16_to_char(p16), Ok(pos));
        }
        rga.check_invariants();
        remote.check_invariants();
        prop_assert_eq!(&rga, &remote);
    }

    #[test]
    fn replicas_converge_in_any_order(
        edits in prop::collection::vec((0usize..4, edit()), 1..80),
        seed in any::<u64>(),
    ) {
        let mut peers: Vec<Rga> = (1..=4).map(|i| Rga::new(ReplicaId::from_u128(i))).collect();
        let mut models: Vec<Vec<char>> = vec![Vec::new(); 4];
        let mut log: Vec<RgaOp> = Vec::new();
        let mut rng = seed;
        let mut step = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        for (who, e) in &edits {
            // Sometimes catch up on a random prefix of others' ops first (a partition healing).
            if step() % 3 == 0 {
                for op in &log {
                    peers[*who].apply(op).ok();
                }
                models[*who] = peers[*who].value().chars().collect();
            }
            if let Some(op) = apply(&mut peers[*who], &mut models[*who], e) {
                log.push(op);
            }
        }
        // Deliver everything to everyone in a random order with duplicates, retrying ops whose
        // dependencies are missing.
        for (i, peer) in peers.iter_mut().enumerate() {
            let mut pending: Vec<&RgaOp> = log.iter().chain(log.iter().take(i * 3)).collect();
            while !pending.is_empty() {
                let before = pending.len();
                let mut k = 0;
                while k < pending.len() {
                    let j = (step() as usize) % pending.len();
                    match peer.apply(pending[j]) {
                        Ok(_) => {
                            pending.swap_remove(j);
                            prop_assert_eq!(peer.text_hash(), plain_hash(&peer.value()));
                        }
                        Err(ApplyError::UnknownId { .. } | ApplyError::OutOfOrder { .. }) => k += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                if pending.len() == before {
                    // Random picks missed; try every op in order once.
                    pending.retain(|op| peer.apply(op).is_err());
                    prop_assert!(pending.len() < before, "stuck");
                }
            }
            peer.check_invariants();
        }
        let mut merged = Rga::new(ReplicaId::from_u128(9));
        for p in &peers {
            merged.merge(p);
        }
        merged.check_invariants();
        for p in &peers[1..] {
            prop_assert_eq!(p.value(), peers[0].value());
            prop_assert_eq!(p, &peers[0]);
        }
        prop_assert_eq!(&merged, &peers[0]);
    }

    #[test]
    fn snapshot_reads_back(edits in prop::collection::vec(edit(), 1..60)) {
        let mut rga = Rga::new(ReplicaId::from_u128(1));
        let mut model = Vec::new();
        for e in &edits {
            apply(&mut rga, &mut model, e);
        }
        let bytes = bincode::serde::encode_to_vec(&rga, bincode::config::standard()).unwrap();
        let (back, _): (Rga, usize) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard().with_limit::<{ 1 << 20 }>()).unwrap();
        back.check_invariants();
        prop_assert_eq!(&back, &rga);
        prop_assert_eq!(back.value(), rga.value());
    }

    /// A loaded text builds its id index only when first needed: local edits before that
    /// (leaf splits included) must leave it right, and both sides must converge after.
    #[test]
    fn loaded_copy_edits_then_merges(
        base in prop::collection::vec(edit(), 1..150),
        theirs in prop::collection::vec(edit(), 0..40),
        ours in prop::collection::vec(edit(), 0..200),
    ) {
        let mut a = Rga::new(ReplicaId::from_u128(1));
        let mut model = Vec::new();
        for e in &base {
            apply(&mut a, &mut model, e);
        }
        let bytes = bincode::serde::encode_to_vec(&a, bincode::config::standard()).unwrap();
        let (mut b, _): (Rga, usize) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard().with_limit::<{ 1 << 20 }>()).unwrap();
        b.set_replica(ReplicaId::from_u128(2));
        let anchor = a.anchor_at(model.len() / 2);
        let mut b_model: Vec<char> = model.clone();
        prop_assert_eq!(b.text_hash(), plain_hash(&b.value()));
        let from_b: Vec<RgaOp> = ours
            .iter()
            .filter_map(|e| {
                let op = apply(&mut b, &mut b_model, e);
                assert_eq!(b.text_hash(), plain_hash(&b.value()), "after a local edit of a loaded text");
                op
            })
            .collect();
        b.check_invariants();
        // Through `&self` first: an anchor looks up an id before any remote op does.
        let c = b.clone();
        prop_assert_eq!(c.anchor_position(&anchor).is_some(), true);
        let from_a: Vec<RgaOp> = theirs.iter().filter_map(|e| apply(&mut a, &mut model, e)).collect();
        for op in &from_a {
            b.apply(op).unwrap();
        }
        for op in &from_b {
            a.apply(op).unwrap();
        }
        a.check_invariants();
        b.check_invariants();
        prop_assert_eq!(a.value(), b.value());
        prop_assert_eq!(a.anchor_position(&anchor), b.anchor_position(&anchor));
    }
}

#[test]
fn anchors_stay_on_their_character() {
    let mut a = Rga::new(ReplicaId::from_u128(1));
    a.insert(0, "hello world").unwrap();
    let anchor = a.anchor_at(6); // just after "hello "
    a.insert(0, ">> ").unwrap();
    assert_eq!(a.anchor_position(&anchor), Some(9));
    a.delete(3, 6).unwrap(); // "hello " gone: the anchor falls back to where it was
    assert_eq!(a.value(), ">> world");
    assert_eq!(a.anchor_position(&anchor), Some(3));
}

#[test]
fn utf16_positions_with_emoji_and_combining_marks() {
    let mut a = Rga::new(ReplicaId::from_u128(1));
    a.insert(0, "a😀e\u{301}中").unwrap();
    assert_eq!(a.len(), 5);
    assert_eq!(a.len_utf16(), 6);
    assert_eq!(a.utf16_to_char(3), Ok(2));
    assert_eq!(a.utf16_to_char(2), Err(EditError::SplitsSurrogate(2)));
    a.insert_utf16(3, "!").unwrap();
    assert_eq!(a.value(), "a😀!e\u{301}中");
    a.delete_utf16(1, 2).unwrap();
    assert_eq!(a.value(), "a!e\u{301}中");
    assert_eq!(a.insert(0, ""), Err(EditError::EmptyText));
    assert!(matches!(a.delete(3, 9), Err(EditError::OutOfBounds { .. })));
}

/// A selection delete over many runs and the tombstones between them (one sweep per leaf),
/// checked against a string, against a replica applying the op, and for a tidy run list.
#[test]
fn selection_delete_over_runs_and_tombstones() {
    let mut a = Rga::new(ReplicaId::from_u128(1));
    let mut b = Rga::new(ReplicaId::from_u128(2));
    let mut model = String::new();
    // Words typed at alternating ends make many runs; deleting every third character of the
    // middle leaves tombstones between them.
    for i in 0..300 {
        let word = format!("w{i} ");
        let at = if i % 2 == 0 { 0 } else { model.chars().count() };
        b.apply(&a.insert(at, &word).unwrap().to_op()).unwrap();
        let byte = model.char_indices().nth(at).map_or(model.len(), |(p, _)| p);
        model.insert_str(byte, &word);
    }
    for k in (100..900).step_by(3).rev() {
        if let Some(op) = a.delete(k, 1).unwrap().into_op() {
            b.apply(&op).unwrap();
        }
        let byte = model.char_indices().nth(k).unwrap().0;
        model.remove(byte);
    }
    // Partly into a run, across hundreds of runs and tombstones, partly into another.
    let (pos, len) = (37, 500);
    let op = a.delete(pos, len).unwrap().into_op().unwrap();
    b.apply(&op).unwrap();
    let start = model.char_indices().nth(pos).unwrap().0;
    let end = model.char_indices().nth(pos + len).unwrap().0;
    model.replace_range(start..end, "");
    assert_eq!(a.value(), model);
    assert_eq!(b.value(), model);
    a.check_invariants();
    b.check_invariants();
    assert_eq!(a, b);
    // And everything that is left, in one call.
    let n = a.len();
    a.delete(0, n).unwrap();
    assert_eq!(a.value(), "");
    a.check_invariants();
}

#[test]
fn the_text_hash_of_long_runs_comes_from_prefixes_and_stays_right() {
    // A 200 KB paste is one run; typing and deleting inside it splits it in every way, on one
    // replica and on a second that receives everything.
    let paste: String = "lorem ipsum dolor sit amet, consectetur — ünïcödé 😀 ".chars().cycle().take(200_000).collect();
    let mut rga = Rga::new(ReplicaId::from_u128(1));
    let mut other = Rga::new(ReplicaId::from_u128(2));
    let mut ops = vec![rga.insert(0, &paste).unwrap().to_op()];
    for (i, pos) in [100_000usize, 3, 198_000, 512, 513, 77_777].into_iter().enumerate() {
        ops.push(rga.insert(pos, "x").unwrap().to_op());
        assert_eq!(rga.text_hash(), plain_hash(&rga.value()), "after typing at {pos}");
        if i % 2 == 0 {
            ops.push(rga.delete(pos + 2, 700).unwrap().into_op().unwrap());
            assert_eq!(rga.text_hash(), plain_hash(&rga.value()), "after deleting at {pos}");
        }
    }
    for op in ops {
        other.apply(&op).unwrap();
    }
    assert_eq!(other.value(), rga.value());
    assert_eq!(other.text_hash(), rga.text_hash());
    rga.check_invariants();
    other.check_invariants();
}

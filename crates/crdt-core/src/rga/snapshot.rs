//! The serialized form of an [`Rga`]: its full history, validated when read back.
//!
//! Logically (the bytes are packed into columns and deflated, see `pack.rs`):
//!
//! ```text
//! RgaState {
//!     replicas: [ReplicaId],            // index i stands for replicas[i] below
//!     text:     [String],               // per replica: every character it inserted, in counter order
//!     runs:     [StateRun],             // the sequence, in document order, tombstones included
//! }
//! StateRun { replica: u32, counter: u32, len: u32,
//!            origin_left: Option<(u32, u32)>, origin_right: Option<(u32, u32)>, deleted: bool }
//! ```
//!
//! Characters are stored once, in the per-replica text; runs only point into it. Reading back
//! checks that the runs cover every inserted character exactly once and that every origin names
//! an inserted character, so a decoded text never panics later. A decoded `Rga` edits as a fresh
//! random replica until [`Rga::set_replica`] says otherwise.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::content::CharBuf;
use super::node::Run;
use super::{Id, Rga};
use crate::codec::Bytes;
use crate::ReplicaId;

pub(super) struct RgaState {
    pub replicas: Vec<ReplicaId>,
    pub text: Vec<String>,
    pub runs: Vec<StateRun>,
}

pub(super) struct StateRun {
    pub replica: u32,
    pub counter: u32,
    pub len: u32,
    pub origin_left: Option<(u32, u32)>,
    pub origin_right: Option<(u32, u32)>,
    pub deleted: bool,
}

/// What serde sees: the replica table, then the packed state (see `pack.rs`) as one byte string.
#[derive(Serialize)]
struct Wire {
    replicas: Vec<ReplicaId>,
    packed: Bytes,
}

impl Rga {
    fn to_state(&self) -> RgaState {
        // Replicas that never inserted anything (a loaded copy's own id, say) are left out.
        let mut remap = vec![u32::MAX; self.content.len()];
        let mut kept = 0;
        for (i, buf) in self.content.iter().enumerate() {
            if buf.chars() > 0 {
                remap[i] = kept;
                kept += 1;
            }
        }
        let to_pair = |id: Id| (!id.is_none()).then(|| (remap[id.replica as usize], id.counter));
        let mut runs: Vec<StateRun> = Vec::new();
        let mut leaf = self.tree.first_leaf;
        while leaf != super::node::NIL {
            for run in &self.tree.leaves[leaf as usize].runs {
                let replica_index = remap[run.id.replica as usize];
                match runs.last_mut() {
                    Some(StateRun { replica, counter, len, origin_right, deleted, .. })
                        if *replica == replica_index
                            && *counter + *len == run.id.counter
                            && to_pair(run.origin_left) == Some((*replica, *counter + *len - 1))
                            && *origin_right == to_pair(run.origin_right)
                            && *deleted == run.deleted =>
                    {
                        *len += run.len
                    }
                    _ => runs.push(StateRun {
                        replica: replica_index,
                        counter: run.id.counter,
                        len: run.len,
                        origin_left: to_pair(run.origin_left),
                        origin_right: to_pair(run.origin_right),
                        deleted: run.deleted,
                    }),
                }
            }
            leaf = self.tree.leaves[leaf as usize].next;
        }
        let kept = |i: &usize| remap[*i] != u32::MAX;
        RgaState {
            replicas: self.replicas.iter().enumerate().filter(|(i, _)| kept(i)).map(|(_, r)| r).collect(),
            text: self
                .content
                .iter()
                .enumerate()
                .filter(|(i, _)| kept(i))
                .map(|(_, b)| b.as_str().to_owned())
                .collect(),
            runs,
        }
    }

    /// The text of `replicas` with per replica `content` and the sequence `runs`, checked (as
    /// `pack::unpack` returns them).
    fn from_state(replicas: Vec<ReplicaId>, content: Vec<CharBuf>, mut runs: Vec<Run>) -> Result<Rga, &'static str> {
        if content.len() != replicas.len() {
            return Err("one text per replica");
        }
        let mut rga = Rga::new(ReplicaId::random());
        // `new` registered the random replica as index 0; rebuild the table in the stored order.
        rga.replicas = Default::default();
        rga.content.clear();
        for r in &replicas {
            if rga.replicas.lookup(*r).is_some() {
                return Err("a replica is listed twice");
            }
            rga.ensure_replica(*r);
        }
        rga.content = content;
        // A run that continues the one before is never in what `pack` writes, which joins
        // them; only when there is one does a second pass join them in place.
        let joinable = runs.windows(2).any(|w| w[0].can_append(&w[1]));
        if joinable {
            let mut kept = 0usize;
            for i in 0..runs.len() {
                let run = runs[i];
                match kept.checked_sub(1).map(|k| &mut runs[k]) {
                    Some(last) if last.can_append(&run) => last.len += run.len,
                    _ => {
                        runs[kept] = run;
                        kept += 1;
                    }
                }
            }
            runs.truncate(kept);
        }
        rga.tree = super::node::Tree::from_runs(runs, &rga.content);
        // The id index is built on first use (`Rga::ids`): showing the text needs none of it.
        rga.ids = std::sync::OnceLock::new();
        let random = ReplicaId::random();
        rga.set_replica(random);
        Ok(rga)
    }
}

/// [`Wire`] as read back: the packed bytes borrowed from the input where the format allows.
#[derive(Deserialize)]
struct WireIn<'a> {
    replicas: Vec<ReplicaId>,
    #[serde(borrow)]
    packed: BytesIn<'a>,
}

/// The packed byte string, borrowed when the deserializer has it in memory (bincode reading a
/// slice), copied otherwise.
struct BytesIn<'a>(std::borrow::Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for BytesIn<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BytesIn<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<BytesIn<'de>, E> {
                Ok(BytesIn(v.into()))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<BytesIn<'de>, E> {
                Ok(BytesIn(v.to_vec().into()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<BytesIn<'de>, E> {
                Ok(BytesIn(v.into()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<BytesIn<'de>, A::Error> {
                Ok(BytesIn(Bytes::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?.0.into()))
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

impl Serialize for Rga {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let state = self.to_state();
        Wire { packed: Bytes(super::pack::pack(&state)), replicas: state.replicas }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Rga {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(deserializer)?;
        let (content, runs) =
            super::pack::unpack(&wire.packed.0, wire.replicas.len()).map_err(serde::de::Error::custom)?;
        drop(wire.packed);
        Rga::from_state(wire.replicas, content, runs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_from_a_slice_and_from_a_reader() {
        let mut rga = Rga::new(ReplicaId::from_u128(7));
        rga.insert(0, &"héllo wörld 😀 ".repeat(40)).unwrap();
        rga.delete(3, 50).unwrap();
        let bytes = bincode::serde::encode_to_vec(&rga, bincode::config::standard()).unwrap();
        // A slice lends the packed bytes; a reader hands over an owned buffer.
        let (borrowed, _): (Rga, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        let owned: Rga = bincode::serde::decode_from_std_read(&mut &bytes[..], bincode::config::standard()).unwrap();
        assert_eq!(borrowed.value(), rga.value());
        assert_eq!(owned.value(), rga.value());
    }

    /// Each check of a loaded state, on a state `pack` writes as it is: the error, not a panic
    /// or a text that breaks later.
    #[test]
    fn states_that_break_a_rule_are_errors() {
        let run = |counter, len, origin_left, origin_right| StateRun {
            replica: 0,
            counter,
            len,
            origin_left,
            origin_right,
            deleted: false,
        };
        let cases = [
            ("never inserted", vec![run(0, 4, None, Some((0, 9)))]),
            ("never inserted", vec![run(0, 2, None, None), run(2, 2, Some((0, 7)), None)]),
            ("exactly once", vec![run(2, 2, None, None), run(0, 3, None, None)]),
            ("exactly once", vec![run(0, 3, None, None)]),
            ("past the replica's text", vec![run(0, 5, None, None)]),
        ];
        for (want, runs) in cases {
            let state = RgaState { replicas: vec![ReplicaId::from_u128(5)], text: vec!["abcd".to_owned()], runs };
            let wire = Wire { packed: Bytes(super::super::pack::pack(&state)), replicas: state.replicas };
            let bytes = bincode::serde::encode_to_vec(&wire, bincode::config::standard()).unwrap();
            let got = bincode::serde::decode_from_slice::<Rga, _>(&bytes, bincode::config::standard());
            let error = got.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(want), "expected an error with {want:?}, got {error:?}");
        }
    }

    /// Both counter models of format 4 read back what they wrote, whichever `pack` would pick:
    /// replicas typing by turns (the global model's case) and interleaved (the other's).
    #[test]
    fn both_counter_models_round_trip() {
        use super::super::pack::{columns, pack_with};
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for turns in [true, false] {
            let mut rgas: Vec<Rga> = (1..=3).map(|r| Rga::new(ReplicaId::from_u128(r))).collect();
            for step in 0..400 {
                let who = if turns { step / 134 } else { next(3) };
                let r = &mut rgas[who];
                if r.len() > 8 && next(4) == 0 {
                    let at = next(r.len() - 4);
                    r.delete(at, 1 + next(3)).unwrap();
                } else {
                    let at = if next(3) == 0 { next(r.len() + 1) } else { r.len() };
                    r.insert(at, ["a", "bc", "déf", "😀g"][next(4)]).unwrap();
                }
                if turns || next(5) == 0 {
                    let source = rgas[who].clone();
                    for other in rgas.iter_mut() {
                        other.merge(&source);
                    }
                }
            }
            let mut all = rgas[0].clone();
            all.merge(&rgas[1]);
            all.merge(&rgas[2]);
            let state = all.to_state();
            for model in [columns::GLOBAL, columns::PER_REPLICA] {
                let wire = Wire { packed: Bytes(pack_with(&state, Some(model))), replicas: state.replicas.clone() };
                let bytes = bincode::serde::encode_to_vec(&wire, bincode::config::standard()).unwrap();
                let (loaded, _): (Rga, usize) =
                    bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
                loaded.check_invariants();
                assert_eq!(loaded, all, "model {model}, turns {turns}");
            }
        }
    }

    /// `pack` never writes a run that continues the one before; a state that has one (written
    /// by hand here) still loads, the two joined.
    #[test]
    fn runs_that_continue_each_other_are_joined() {
        let replica = ReplicaId::from_u128(3);
        let run = |counter, len, origin_left| StateRun {
            replica: 0,
            counter,
            len,
            origin_left,
            origin_right: None,
            deleted: false,
        };
        let state = RgaState {
            replicas: vec![replica],
            text: vec!["abcd".to_owned()],
            runs: vec![run(0, 2, None), run(2, 2, Some((0, 1)))],
        };
        let wire = Wire { packed: Bytes(super::super::pack::pack(&state)), replicas: state.replicas };
        let bytes = bincode::serde::encode_to_vec(&wire, bincode::config::standard()).unwrap();
        let (loaded, _): (Rga, usize) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        loaded.check_invariants();
        assert_eq!(loaded.tree.leaves[loaded.tree.first_leaf as usize].runs.len(), 1, "joined");
        let mut typed = Rga::new(replica);
        typed.insert(0, "abcd").unwrap();
        assert_eq!(loaded, typed);
    }
}

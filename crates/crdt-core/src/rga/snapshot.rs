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

use super::node::Run;
use super::{Id, Rga};
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
#[derive(Serialize, Deserialize)]
struct Wire {
    replicas: Vec<ReplicaId>,
    packed: Bytes,
}

/// A byte string that serde hands to the format as bytes, not as a sequence of numbers.
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
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

    fn from_state(state: RgaState) -> Result<Rga, &'static str> {
        let n = state.replicas.len();
        if state.text.len() != n {
            return Err("one text per replica");
        }
        let mut rga = Rga::new(ReplicaId::random());
        // `new` registered the random replica as index 0; rebuild the table in the stored order.
        rga.replicas = Default::default();
        rga.content.clear();
        for (r, text) in state.replicas.iter().zip(&state.text) {
            if rga.replicas.lookup(*r).is_some() {
                return Err("a replica is listed twice");
            }
            let i = rga.ensure_replica(*r);
            if text.chars().count() >= u32::MAX as usize {
                return Err("text too long");
            }
            rga.content[i as usize].push_str(text);
        }
        let chars: Vec<u32> = rga.content.iter().map(|b| b.chars()).collect();
        let known = |p: Option<(u32, u32)>| match p {
            None => Ok(Id::NONE),
            Some((r, c)) if (r as usize) < n && c < chars[r as usize] => Ok(Id::new(r, c)),
            Some(_) => Err("an origin names a character that was never inserted"),
        };
        let mut ranges: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n];
        for s in &state.runs {
            if s.replica as usize >= n || s.len == 0 {
                return Err("run of an unknown replica or empty");
            }
            let end = s.counter.checked_add(s.len).ok_or("run past the replica's text")?;
            if end > chars[s.replica as usize] {
                return Err("run past the replica's text");
            }
            ranges[s.replica as usize].push((s.counter, end));
        }
        for (r, mut list) in ranges.into_iter().enumerate() {
            list.sort_unstable();
            let mut at = 0;
            for (start, end) in list {
                if start != at {
                    return Err("runs do not cover each inserted character exactly once");
                }
                at = end;
            }
            if at != chars[r] {
                return Err("runs do not cover each inserted character exactly once");
            }
        }
        let mut runs: Vec<Run> = Vec::with_capacity(state.runs.len());
        for s in state.runs {
            let run = Run {
                id: Id::new(s.replica, s.counter),
                len: s.len,
                origin_left: known(s.origin_left)?,
                origin_right: known(s.origin_right)?,
                deleted: s.deleted,
            };
            match runs.last_mut() {
                Some(last) if last.can_append(&run) => last.len += run.len,
                _ => runs.push(run),
            }
        }
        let (tree, leaf_of) = super::node::Tree::from_runs(runs, &rga.content);
        let ranges = leaf_of
            .iter()
            .enumerate()
            .map(|(i, leaf)| {
                let run = tree.leaves[*leaf as usize].runs[i - *leaf as usize * (super::node::LEAF_CAP / 2)];
                (run.id.replica, run.id.counter, run.id.counter + run.len, *leaf)
            })
            .collect();
        rga.ids = super::id::IdIndex::from_ranges(n, ranges);
        rga.tree = tree;
        let random = ReplicaId::random();
        rga.set_replica(random);
        Ok(rga)
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
        let wire = Wire::deserialize(deserializer)?;
        let (text, runs) =
            super::pack::unpack(&wire.packed.0, wire.replicas.len()).map_err(serde::de::Error::custom)?;
        Rga::from_state(RgaState { replicas: wire.replicas, text, runs }).map_err(serde::de::Error::custom)
    }
}

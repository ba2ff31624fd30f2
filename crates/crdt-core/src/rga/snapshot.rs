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

    /// The text of `replicas` with per replica `text` and the sequence `runs` (as `pack.rs`
    /// decodes them, unchecked).
    fn from_state(replicas: Vec<ReplicaId>, text: Vec<String>, mut runs: Vec<Run>) -> Result<Rga, &'static str> {
        let n = replicas.len();
        if text.len() != n {
            return Err("one text per replica");
        }
        let mut rga = Rga::new(ReplicaId::random());
        // `new` registered the random replica as index 0; rebuild the table in the stored order.
        rga.replicas = Default::default();
        rga.content.clear();
        for (r, text) in replicas.iter().zip(text) {
            if rga.replicas.lookup(*r).is_some() {
                return Err("a replica is listed twice");
            }
            let i = rga.ensure_replica(*r);
            // A character takes at least a byte, so only a text this long can overflow a counter.
            if text.len() >= u32::MAX as usize && text.chars().count() >= u32::MAX as usize {
                return Err("text too long");
            }
            rga.content[i as usize] = CharBuf::from_string(text);
        }
        let chars: Vec<u32> = rga.content.iter().map(|b| b.chars()).collect();
        let known = |id: Id| id.is_none() || ((id.replica as usize) < n && id.counter < chars[id.replica as usize]);
        // Check every run, and join the ones that continue the run before (in place).
        let mut kept = 0usize;
        for i in 0..runs.len() {
            let run = runs[i];
            if run.id.replica as usize >= n || run.len == 0 {
                return Err("run of an unknown replica or empty");
            }
            let end = run.id.counter.checked_add(run.len).ok_or("run past the replica's text")?;
            if end > chars[run.id.replica as usize] {
                return Err("run past the replica's text");
            }
            if !known(run.origin_left) || !known(run.origin_right) {
                return Err("an origin names a character that was never inserted");
            }
            match kept.checked_sub(1).map(|k| &mut runs[k]) {
                Some(last) if last.can_append(&run) => last.len += run.len,
                _ => {
                    if kept != i {
                        runs[kept] = run;
                    }
                    kept += 1;
                }
            }
        }
        runs.truncate(kept);
        let by_id = id_ranges(&runs, &chars, super::node::LOAD_FILL)?;
        rga.tree = super::node::Tree::from_runs(runs, &rga.content);
        // Already in order, which the index's sort sees in one pass.
        rga.ids = super::id::IdIndex::from_sorted(by_id, &chars);
        let random = ReplicaId::random();
        rga.set_replica(random);
        Ok(rga)
    }
}

/// Per replica, `(start, leaf)` of its runs in id order (each ending where the next starts),
/// neighbours in one leaf joined: what [`IdIndex::from_sorted`](super::id::IdIndex::from_sorted)
/// takes.
type IdRanges = Vec<Vec<(u32, u32)>>;

/// Checks that `runs` cover each replica's counters `0 .. chars[replica]` exactly once, without
/// sorting: a bitmap of run starts gives each run its rank among its replica's runs, which is
/// its place in id order. Returns each replica's runs in id order, where run `i` is in leaf
/// `i / per_leaf` (as [`Tree::from_runs`](super::node::Tree::from_runs) lays them out).
fn id_ranges(runs: &[Run], chars: &[u32], per_leaf: usize) -> Result<IdRanges, &'static str> {
    const NOT_COVERED: &str = "runs do not cover each inserted character exactly once";
    // Per replica: where its words start in `starts` (and, last, the end of the words).
    let mut word_base = Vec::with_capacity(chars.len() + 1);
    let mut words = 0usize;
    for c in chars {
        word_base.push(words);
        words += (*c as usize).div_ceil(64);
    }
    word_base.push(words);
    let mut starts = vec![0u64; words];
    for run in runs {
        let bit = run.id.counter as usize;
        let word = &mut starts[word_base[run.id.replica as usize] + bit / 64];
        if *word & (1 << (bit % 64)) != 0 {
            return Err(NOT_COVERED);
        }
        *word |= 1 << (bit % 64);
    }
    // Runs before each word, counted over all replicas in order: a run's place in id order.
    let mut before = Vec::with_capacity(words + 1);
    let mut count = 0u32;
    for w in &starts {
        before.push(count);
        count += w.count_ones();
    }
    before.push(count);
    // Distinct starts, so the places are a permutation of `0 .. runs.len()`.
    let mut by_id = vec![(0, 0, 0); runs.len()];
    for (i, run) in runs.iter().enumerate() {
        let bit = run.id.counter as usize;
        let word = word_base[run.id.replica as usize] + bit / 64;
        let place = before[word] + (starts[word] & ((1u64 << (bit % 64)) - 1)).count_ones();
        by_id[place as usize] = (run.id.counter, run.id.counter + run.len, (i / per_leaf) as u32);
    }
    // In id order, each run of a replica must start where the one before ended (the first at
    // 0), and the last end at the replica's character count.
    let mut per_replica = Vec::with_capacity(chars.len());
    for (r, &c) in chars.iter().enumerate() {
        let places = before[word_base[r]] as usize..before[word_base[r + 1]] as usize;
        let mut joined: Vec<(u32, u32)> = Vec::with_capacity(places.len());
        let mut at = 0;
        for &(start, end, leaf) in &by_id[places] {
            if start != at {
                return Err(NOT_COVERED);
            }
            at = end;
            if joined.last().is_none_or(|(_, l)| *l != leaf) {
                joined.push((start, leaf));
            }
        }
        if at != c {
            return Err(NOT_COVERED);
        }
        per_replica.push(joined);
    }
    Ok(per_replica)
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
        let (text, runs) =
            super::pack::unpack(&wire.packed.0, wire.replicas.len()).map_err(serde::de::Error::custom)?;
        drop(wire.packed);
        Rga::from_state(wire.replicas, text, runs).map_err(serde::de::Error::custom)
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
}

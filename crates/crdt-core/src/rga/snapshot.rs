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
        // Check every run; note whether one continues the run before (never in what `pack`
        // writes, which joins them: only then does a second pass join them in place).
        let mut cover = Cover::new(&chars);
        let mut joinable = false;
        let mut prev: Option<&Run> = None;
        for run in &runs {
            if run.id.replica as usize >= n || run.len == 0 {
                return Err("run of an unknown replica or empty");
            }
            let end = run.id.counter.checked_add(run.len).ok_or("run past the replica's text")?;
            if end > chars[run.id.replica as usize] {
                return Err("run past the replica's text");
            }
            cover.add(run.id.replica, run.id.counter, end)?;
            if !known(run.origin_left) || !known(run.origin_right) {
                return Err("an origin names a character that was never inserted");
            }
            joinable |= prev.is_some_and(|p| p.can_append(run));
            prev = Some(run);
        }
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
        cover.finish()?;
        rga.tree = super::node::Tree::from_runs(runs, &rga.content);
        // The id index is built on first use (`Rga::ids`): showing the text needs none of it.
        rga.ids = std::sync::OnceLock::new();
        let random = ReplicaId::random();
        rga.set_replica(random);
        Ok(rga)
    }
}

/// Checks that runs, each inside its replica's counters `0 .. chars[replica]`, cover every
/// counter exactly once: no two overlap (a bitmap of every character, one bit each), and their
/// lengths add up to all the characters.
struct Cover {
    /// Per replica: its first bit in `seen`.
    base: Vec<usize>,
    seen: Vec<u64>,
    left: u64,
}

const NOT_COVERED: &str = "runs do not cover each inserted character exactly once";

impl Cover {
    fn new(chars: &[u32]) -> Cover {
        let mut base = Vec::with_capacity(chars.len());
        let mut words = 0usize;
        for c in chars {
            base.push(words * 64);
            words += (*c as usize).div_ceil(64);
        }
        Cover { base, seen: vec![0; words], left: chars.iter().map(|c| *c as u64).sum() }
    }

    /// Marks counters `start .. end` (not empty, within the replica's) of `replica` covered.
    #[inline(always)]
    fn add(&mut self, replica: u32, start: u32, end: u32) -> Result<(), &'static str> {
        let base = self.base[replica as usize];
        let (start, end) = (base + start as usize, base + end as usize);
        let (first, last) = (start / 64, (end - 1) / 64);
        let head = !0u64 << (start % 64);
        let tail = !0u64 >> (63 - (end - 1) % 64);
        let seen = &mut self.seen;
        let overlap = if first == last {
            let o = seen[first] & head & tail;
            seen[first] |= head & tail;
            o
        } else {
            let mut o = seen[first] & head | seen[last] & tail;
            seen[first] |= head;
            seen[last] |= tail;
            for w in &mut seen[first + 1..last] {
                o |= *w;
                *w = !0;
            }
            o
        };
        if overlap != 0 {
            return Err(NOT_COVERED);
        }
        self.left -= (end - start) as u64;
        Ok(())
    }

    fn finish(self) -> Result<(), &'static str> {
        if self.left == 0 {
            Ok(())
        } else {
            Err(NOT_COVERED)
        }
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

//! Changes as the protocol carries them: compact, with replica ids and field names sent in full
//! once per connection and by number after that.
//!
//! A [`WireNames`] is what one direction of a connection has named so far. Both ends keep one
//! (the sender encodes with it, the receiver decodes with it) and both add to it in the same
//! order, as names are first mentioned; a new connection starts both empty. A name is written
//! as a varint: `0` followed by the name in full (16 bytes for a replica, a varint length and
//! UTF-8 for a field), which appends it to the table, or `k >= 1` for the table's entry `k - 1`.
//! A `Hello` names its replica first, so a client's own changes cost one byte for their author.
//!
//! ```text
//! changes    varint n, n × change
//! change     replica, varint seq, varint d, d × (replica, varint seq), varint k, k × op
//! op         field, then one of
//!   0  text insert: varint counter, left, right, varint n, n bytes of UTF-8
//!        left: 0 none | 1 the author's character counter - 1 | 2 replica, varint counter
//!        right: 0 none | 2 replica, varint counter
//!   1  text delete: varint r, r × (replica, varint counter, varint len)
//!   2  any other operation: varint n, n bytes of its bincode encoding (`Op`)
//! ```
//!
//! The insert's id is the change's replica with `counter`: an insert always mints ids of its
//! own change's replica (anything else is refused by [`Change::validate`] anyway, so it is not
//! representable here and goes as "other").
//!
//! Decoding is bounded like the rest of the codec: counts never exceed the bytes left, each
//! table holds at most [`MAX_NAMES`] names, and errors are messages, never panics.

use std::collections::HashMap;

use crate::document::{Change, ChangeId, FieldName, FieldOp, Op};
use crate::varint::{put, Reader};
use crate::{codec, IdRange, InlineVec, OpId, ReplicaId, RgaOp, SmolStr};

/// The most replica ids, and the most field names, one direction of a connection may name.
pub const MAX_NAMES: usize = 1 << 16;

/// The names one direction of a connection has exchanged; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct WireNames {
    replicas: Vec<ReplicaId>,
    replica_index: HashMap<ReplicaId, u32>,
    fields: Vec<FieldName>,
    field_index: HashMap<FieldName, u32>,
}

impl WireNames {
    /// An empty table, as every connection starts.
    pub fn new() -> WireNames {
        WireNames::default()
    }

    /// Adds `replica` if it is not named yet (what a `Hello` does).
    pub fn name_replica(&mut self, replica: ReplicaId) -> Result<(), &'static str> {
        if !self.replica_index.contains_key(&replica) {
            if self.replicas.len() >= MAX_NAMES {
                return Err("too many replica ids on one connection");
            }
            self.replica_index.insert(replica, self.replicas.len() as u32);
            self.replicas.push(replica);
        }
        Ok(())
    }

    fn put_replica(&mut self, out: &mut Vec<u8>, replica: ReplicaId) {
        match self.replica_index.get(&replica) {
            Some(i) => put(out, *i as u64 + 1),
            None => {
                out.push(0);
                out.extend_from_slice(replica.uuid().as_bytes());
                // The decoder refuses a table past its limit; the encoder still writes in full.
                let _ = self.name_replica(replica);
            }
        }
    }

    fn read_replica(&mut self, rd: &mut Reader<'_>) -> Result<ReplicaId, &'static str> {
        match rd.varint()? {
            0 => {
                let bytes: [u8; 16] = rd.bytes(16)?.try_into().map_err(|_| "replica id is not 16 bytes")?;
                let replica = ReplicaId::from(uuid::Uuid::from_bytes(bytes));
                if self.replica_index.contains_key(&replica) {
                    return Err("replica id named twice on one connection");
                }
                self.name_replica(replica)?;
                Ok(replica)
            }
            k => self.replicas.get(k as usize - 1).copied().ok_or("unknown replica number"),
        }
    }

    fn put_field(&mut self, out: &mut Vec<u8>, field: &FieldName) {
        match self.field_index.get(field) {
            Some(i) => put(out, *i as u64 + 1),
            None => {
                out.push(0);
                put(out, field.len() as u64);
                out.extend_from_slice(field.as_bytes());
                if self.fields.len() < MAX_NAMES {
                    self.field_index.insert(field.clone(), self.fields.len() as u32);
                    self.fields.push(field.clone());
                }
            }
        }
    }

    fn read_field(&mut self, rd: &mut Reader<'_>) -> Result<FieldName, &'static str> {
        match rd.varint()? {
            0 => {
                let n = rd.count()?;
                let name = std::str::from_utf8(rd.bytes(n)?).map_err(|_| "field name is not UTF-8")?;
                if self.field_index.contains_key(name) {
                    return Err("field named twice on one connection");
                }
                if self.fields.len() >= MAX_NAMES {
                    return Err("too many field names on one connection");
                }
                let name = FieldName::new(name);
                self.field_index.insert(name.clone(), self.fields.len() as u32);
                self.fields.push(name.clone());
                Ok(name)
            }
            k => self.fields.get(k as usize - 1).cloned().ok_or("unknown field number"),
        }
    }
}

const INSERT: u8 = 0;
const DELETE: u8 = 1;
const OTHER: u8 = 2;
const NONE: u8 = 0;
const PREVIOUS: u8 = 1;
const EXPLICIT: u8 = 2;

/// Appends `changes` to `out`, naming what `names` has not named yet.
pub(crate) fn encode_changes(changes: &[Change], names: &mut WireNames, out: &mut Vec<u8>) {
    put(out, changes.len() as u64);
    for change in changes {
        names.put_replica(out, change.replica);
        put(out, change.seq);
        put(out, change.deps.len() as u64);
        for dep in &change.deps {
            names.put_replica(out, dep.replica);
            put(out, dep.seq);
        }
        put(out, change.ops.len() as u64);
        for FieldOp { field, op } in &change.ops {
            names.put_field(out, field);
            match op {
                Op::Text(RgaOp::Insert { id, origin_left, origin_right, text }) if id.replica == change.replica => {
                    out.push(INSERT);
                    put(out, id.counter);
                    match origin_left {
                        None => out.push(NONE),
                        Some(o) if o.replica == id.replica && o.counter.checked_add(1) == Some(id.counter) => {
                            out.push(PREVIOUS)
                        }
                        Some(o) => put_origin(names, out, o),
                    }
                    match origin_right {
                        None => out.push(NONE),
                        Some(o) => put_origin(names, out, o),
                    }
                    put(out, text.len() as u64);
                    out.extend_from_slice(text.as_bytes());
                }
                Op::Text(RgaOp::Delete { ranges }) => {
                    out.push(DELETE);
                    put(out, ranges.len() as u64);
                    for range in ranges {
                        names.put_replica(out, range.start.replica);
                        put(out, range.start.counter);
                        put(out, range.len);
                    }
                }
                other => {
                    out.push(OTHER);
                    let mut bytes = Vec::new();
                    codec::encode_value(other, &mut bytes);
                    put(out, bytes.len() as u64);
                    out.extend_from_slice(&bytes);
                }
            }
        }
    }
}

fn put_origin(names: &mut WireNames, out: &mut Vec<u8>, origin: &OpId) {
    out.push(EXPLICIT);
    names.put_replica(out, origin.replica);
    put(out, origin.counter);
}

/// Reads changes written by [`encode_changes`] from `rd`, learning the names they introduce.
/// Checks the encoding only: whether each change is valid is for the document to decide.
pub(crate) fn decode_changes(rd: &mut Reader<'_>, names: &mut WireNames) -> Result<Vec<Change>, &'static str> {
    let n = rd.count()?;
    let mut changes = Vec::with_capacity(n);
    for _ in 0..n {
        let replica = names.read_replica(rd)?;
        let seq = rd.varint()?;
        let d = rd.count()?;
        let mut deps = Vec::with_capacity(d);
        for _ in 0..d {
            deps.push(ChangeId { replica: names.read_replica(rd)?, seq: rd.varint()? });
        }
        let k = rd.count()?;
        let mut ops = InlineVec::new();
        for _ in 0..k {
            let field = names.read_field(rd)?;
            let op = match rd.bytes(1)?[0] {
                INSERT => {
                    let counter = rd.varint()?;
                    let origin_left = match rd.bytes(1)?[0] {
                        NONE => None,
                        PREVIOUS => Some(OpId::new(replica, counter.checked_sub(1).ok_or("no character before 0")?)),
                        EXPLICIT => Some(OpId::new(names.read_replica(rd)?, rd.varint()?)),
                        _ => return Err("unknown origin tag"),
                    };
                    let origin_right = match rd.bytes(1)?[0] {
                        NONE => None,
                        EXPLICIT => Some(OpId::new(names.read_replica(rd)?, rd.varint()?)),
                        _ => return Err("unknown origin tag"),
                    };
                    let len = rd.count()?;
                    let text = std::str::from_utf8(rd.bytes(len)?).map_err(|_| "inserted text is not UTF-8")?;
                    let id = OpId::new(replica, counter);
                    Op::Text(RgaOp::Insert { id, origin_left, origin_right, text: SmolStr::new(text) })
                }
                DELETE => {
                    let r = rd.count()?;
                    let mut ranges = InlineVec::new();
                    for _ in 0..r {
                        let start = OpId::new(names.read_replica(rd)?, rd.varint()?);
                        ranges.push(IdRange { start, len: rd.varint()? });
                    }
                    Op::Text(RgaOp::Delete { ranges })
                }
                OTHER => {
                    let len = rd.count()?;
                    codec::decode_value(rd.bytes(len)?).map_err(|_| "undecodable operation")?
                }
                _ => return Err("unknown operation tag"),
            };
            ops.push(FieldOp { field, op });
        }
        changes.push(Change { replica, seq, deps, ops });
    }
    Ok(changes)
}

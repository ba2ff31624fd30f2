//! crdt-core's [`Rga`] in the driver.
//!
//! Encoding reported: the serde form through bincode 2, which is what `codec.rs` stores.

use bincode::config;
use crdt_core::{ReplicaId, Rga, RgaOp};

use crate::driver::{Encode, Merge, Peer, Remote};
use crate::trace::Patch;

/// Decoding limit: far above any trace, but a limit, as `codec.rs` always sets one.
const DECODE_LIMIT: usize = 1 << 30;

pub struct Ours {
    pub rga: Rga,
    log: Option<Vec<RgaOp>>,
}

fn replica(n: u64) -> ReplicaId {
    ReplicaId::from_u128(n as u128)
}

impl Peer for Ours {
    fn empty(n: u64) -> Self {
        Ours { rga: Rga::new(replica(n)), log: None }
    }

    fn apply_txn(&mut self, patches: &[Patch], offset: usize) {
        for p in patches {
            if p.del > 0 {
                let deleted = self.rga.delete(p.pos + offset, p.del).expect("delete in bounds");
                if let (Some(log), Some(op)) = (&mut self.log, deleted.into_op()) {
                    log.push(op);
                }
            }
            if !p.ins.is_empty() {
                let inserted = self.rga.insert(p.pos + offset, &p.ins).expect("insert in bounds");
                if let Some(log) = &mut self.log {
                    log.push(inserted.to_op());
                }
            }
        }
    }

    fn text(&mut self) -> String {
        self.rga.value()
    }
}

impl Remote for Ours {
    type Ops = Vec<RgaOp>;
    type Prepared = Vec<RgaOp>;

    fn set_recording(&mut self, on: bool) {
        self.log = on.then(Vec::new);
    }

    fn take_ops(&mut self) -> Vec<RgaOp> {
        self.log.take().unwrap_or_default()
    }

    fn prepare(ops: &Vec<RgaOp>) -> Vec<RgaOp> {
        ops.clone()
    }

    fn integrate(n: u64, ops: &mut Vec<RgaOp>) -> Self {
        let mut rga = Rga::new(replica(n));
        for op in ops.iter() {
            rga.apply(op).expect("recorded ops apply in order");
        }
        Ours { rga, log: None }
    }
}

impl Merge for Ours {
    type Input = ();

    fn fork(&mut self, n: u64) -> Self {
        let mut rga = self.rga.clone();
        rga.set_replica(replica(n));
        Ours { rga, log: None }
    }

    fn merge_input(_: &mut Self, _: &mut Self) {}

    fn merge(into: &mut Self, from: &mut Self, _: ()) {
        into.rga.merge(&from.rga);
    }
}

pub fn encode_bincode(rga: &Rga) -> Vec<u8> {
    bincode::serde::encode_to_vec(rga, config::standard()).expect("an Rga always encodes")
}

pub fn decode_bincode(bytes: &[u8]) -> Rga {
    let (rga, _) = bincode::serde::decode_from_slice(bytes, config::standard().with_limit::<DECODE_LIMIT>())
        .expect("our own encoding decodes");
    rga
}

impl Encode for Ours {
    /// The serde form through bincode 2, as `codec.rs` stores it (since crdt-core 845bc67 that
    /// form is itself packed into columns and deflated, see `rga/pack.rs`).
    fn encodings(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        vec![("bincode (packed, deflate)", encode_bincode(&self.rga))]
    }

    fn load(_: &str, bytes: &[u8], n: u64) -> Self {
        let mut rga = decode_bincode(bytes);
        rga.set_replica(replica(n));
        Ours { rga, log: None }
    }
}

/// Mirror of the wire form in `rga/snapshot.rs` (`Wire { replicas, packed }`): bincode writes a
/// byte string exactly as it writes a `Vec<u8>`, and reads fields by position, not by name.
#[derive(serde::Deserialize)]
struct Wire {
    _replicas: Vec<ReplicaId>,
    packed: Vec<u8>,
}

/// Size-only experiments on the shipped encoding, for choosing a compressor: the packed columns
/// are inflated and compressed again other ways. None of this is loadable; it is evidence for a
/// change in `rga/pack.rs`, labelled as such in the report.
pub fn size_experiments(rga: &Rga) -> Vec<(&'static str, usize)> {
    use std::io::{Read, Write};
    let shipped = encode_bincode(rga);
    let (wire, _): (Wire, _) =
        bincode::serde::decode_from_slice(&shipped, config::standard().with_limit::<DECODE_LIMIT>())
            .expect("the wire form matches its mirror");
    let mut raw = Vec::new();
    flate2::read::DeflateDecoder::new(&wire.packed[..]).read_to_end(&mut raw).expect("inflates");
    let deflate_best = {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&raw).expect("in memory");
        enc.finish().expect("in memory").len()
    };
    let zstd = |data: &[u8], level: i32| zstd::bulk::compress(data, level).expect("zstd compresses").len();
    // The per-replica texts come first: varint count, then (varint length, bytes) each.
    let mut at = 0;
    let varint = |at: &mut usize| {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = raw[*at];
            *at += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    };
    for _ in 0..varint(&mut at) {
        at += varint(&mut at) as usize;
    }
    let overhead = shipped.len() - wire.packed.len();
    vec![
        ("columns before compression", raw.len() + overhead),
        ("shipped: deflate, default level", shipped.len()),
        ("deflate, best level", deflate_best + overhead),
        ("zstd level 19", zstd(&raw, 19) + overhead),
        ("zstd level 22", zstd(&raw, 22) + overhead),
        ("of which the texts alone, zstd 19", zstd(&raw[..at], 19)),
        ("of which the run columns alone, zstd 19", zstd(&raw[at..], 19)),
    ]
}

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
    /// The serde form through bincode 2, as `codec.rs` stores it (since crdt-core format 2 of
    /// `rga/pack.rs`: predicted run columns and texts with long repeats taken out, deflated).
    fn encodings(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        vec![("bincode (packed v2, deflate)", encode_bincode(&self.rga))]
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

fn varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*at];
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Size-only experiments on the shipped encoding (format 2 of `rga/pack.rs`), for choosing a
/// compressor: its two deflate streams (text literals, deflated; structure = text lengths,
/// repeats and run columns, stored) are inflated and compressed again other ways, and the texts are rebuilt to see
/// what the long-range repeat pass saves. None of this is loadable; it is evidence for a change
/// in `rga/pack.rs`, labelled as such in the report.
pub fn size_experiments(rga: &Rga) -> Vec<(&'static str, usize)> {
    use std::io::{Read, Write};
    let shipped = encode_bincode(rga);
    let (wire, _): (Wire, _) =
        bincode::serde::decode_from_slice(&shipped, config::standard().with_limit::<DECODE_LIMIT>())
            .expect("the wire form matches its mirror");
    let packed = &wire.packed[..];
    assert_eq!(packed[0], 0xE6, "format 2 of rga/pack.rs");
    let mut at = 1;
    let first = varint(packed, &mut at) as usize;
    let (literals_z, structure_z) = (&packed[at..at + first], &packed[at + first..]);
    let inflate = |data: &[u8]| {
        let mut raw = Vec::new();
        flate2::read::DeflateDecoder::new(data).read_to_end(&mut raw).expect("inflates");
        raw
    };
    let deflate_best = |data: &[u8]| {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).expect("in memory");
        enc.finish().expect("in memory").len()
    };
    let zstd = |data: &[u8]| zstd::bulk::compress(data, 19).expect("zstd compresses").len();
    let (literals, structure) = (inflate(literals_z), inflate(structure_z));
    // The structure starts with the text lengths and the repeats: rebuild the texts.
    let mut at = 0;
    let mut total = 0;
    for _ in 0..varint(&structure, &mut at) {
        total += varint(&structure, &mut at) as usize;
    }
    let mut texts = Vec::with_capacity(total);
    let mut lit = 0;
    for _ in 0..varint(&structure, &mut at) {
        let n = varint(&structure, &mut at) as usize;
        let distance = varint(&structure, &mut at) as usize;
        let len = varint(&structure, &mut at) as usize;
        texts.extend_from_slice(&literals[lit..lit + n]);
        lit += n;
        for _ in 0..len {
            texts.push(texts[texts.len() - distance]);
        }
    }
    texts.extend_from_slice(&literals[lit..]);
    assert_eq!(texts.len(), total);
    let overhead = shipped.len() - literals_z.len() - structure_z.len();
    vec![
        ("shipped: literals deflated by libdeflate, level 9 + structure stored", shipped.len()),
        ("both streams zstd 19 instead", zstd(&literals) + zstd(&structure) + overhead),
        ("texts before the repeat pass", texts.len()),
        ("texts, zlib best, no repeat pass", deflate_best(&texts)),
        ("texts, zstd 19, no repeat pass", zstd(&texts)),
        ("text literals after the repeat pass", literals.len()),
        ("text literals, libdeflate level 9 (shipped)", literals_z.len()),
        ("text literals, zlib best (shipped before)", deflate_best(&literals)),
        ("text literals, zstd 19", zstd(&literals)),
        ("structure as shipped (stored deflate blocks)", structure_z.len()),
        ("structure, zlib best (not shipped: slower to load)", deflate_best(&structure)),
        ("structure, zstd 19", zstd(&structure)),
    ]
}

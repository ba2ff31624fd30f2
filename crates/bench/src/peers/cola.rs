//! cola in the driver. A cola `Replica` tracks positions only; the text lives in a rope beside it
//! (jumprope, as in cola's own examples), and both are timed together, because a user needs both.
//! Its operations carry no text, so the inserted text travels beside each `Insertion`.

use cola::{Deletion, EncodedReplica, Insertion, Replica};
use jumprope::JumpRope;

use crate::driver::{Encode, Merge, Peer, Remote, REPLICA_A};
use crate::trace::Patch;

#[derive(Clone)]
pub enum ColaOp {
    Insert(Insertion, String),
    Delete(Deletion),
}

pub struct Cola {
    replica: Replica,
    rope: JumpRope,
    log: Option<Vec<ColaOp>>,
}

impl Cola {
    fn integrate_op(&mut self, op: &ColaOp) {
        match op {
            ColaOp::Insert(ins, text) => {
                if let Some(at) = self.replica.integrate_insertion(ins) {
                    self.rope.insert(at, text);
                }
            }
            ColaOp::Delete(del) => {
                // Ranges come sorted and disjoint: remove from the back so earlier ones stay put.
                for range in self.replica.integrate_deletion(del).into_iter().rev() {
                    self.rope.remove(range);
                }
            }
        }
    }
}

impl Peer for Cola {
    fn empty(replica: u64) -> Self {
        Cola { replica: Replica::new(replica, 0), rope: JumpRope::new(), log: None }
    }

    fn apply_txn(&mut self, patches: &[Patch], offset: usize) {
        for p in patches {
            let pos = p.pos + offset;
            if p.del > 0 {
                let del = self.replica.deleted(pos..pos + p.del);
                self.rope.remove(pos..pos + p.del);
                if let Some(log) = &mut self.log {
                    log.push(ColaOp::Delete(del));
                }
            }
            if !p.ins.is_empty() {
                let ins = self.replica.inserted(pos, p.ins_chars);
                self.rope.insert(pos, &p.ins);
                if let Some(log) = &mut self.log {
                    log.push(ColaOp::Insert(ins, p.ins.clone()));
                }
            }
        }
    }

    fn text(&mut self) -> String {
        self.rope.to_string()
    }
}

impl Remote for Cola {
    type Ops = Vec<ColaOp>;
    type Prepared = Vec<ColaOp>;

    fn set_recording(&mut self, on: bool) {
        self.log = on.then(Vec::new);
    }

    fn take_ops(&mut self) -> Vec<ColaOp> {
        self.log.take().unwrap_or_default()
    }

    fn prepare(ops: &Vec<ColaOp>) -> Vec<ColaOp> {
        ops.clone()
    }

    /// cola peers must descend from one `Replica::new` (a document's creator); the recorded ops
    /// come from an empty document created by replica A, so the fresh replica is its fork.
    fn integrate(replica: u64, ops: &mut Vec<ColaOp>) -> Self {
        let mut doc = Cola { replica: Replica::new(REPLICA_A, 0).fork(replica), rope: JumpRope::new(), log: None };
        for op in ops.iter() {
            doc.integrate_op(op);
        }
        doc
    }
}

impl Merge for Cola {
    type Input = ();

    fn fork(&mut self, replica: u64) -> Self {
        Cola { replica: self.replica.fork(replica), rope: JumpRope::from(self.rope.to_string()), log: None }
    }

    fn record_for_merge(&mut self) {
        self.log = Some(Vec::new());
    }

    fn merge_input(_: &mut Self, _: &mut Self) {}

    /// cola has no state merge: A integrates every operation B recorded, as B's peers would.
    fn merge(into: &mut Self, from: &mut Self, _: ()) {
        for op in from.log.as_deref().unwrap_or_default() {
            into.integrate_op(op);
        }
    }
}

impl Encode for Cola {
    /// cola's encoded replica holds no text, so the current text is appended after it (length
    /// first): together they are what a peer needs to load the document.
    fn encodings(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        let encoded = self.replica.encode();
        let text = self.rope.to_string();
        let mut bytes = Vec::with_capacity(8 + encoded.as_bytes().len() + text.len());
        bytes.extend_from_slice(&(encoded.as_bytes().len() as u64).to_le_bytes());
        bytes.extend_from_slice(encoded.as_bytes());
        bytes.extend_from_slice(text.as_bytes());
        vec![("replica + text", bytes)]
    }

    fn load(_: &str, bytes: &[u8], replica: u64) -> Self {
        let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let encoded = EncodedReplica::from_bytes(&bytes[8..8 + len]);
        let text = std::str::from_utf8(&bytes[8 + len..]).expect("utf-8 text");
        let replica = Replica::decode(replica, &encoded).expect("cola decodes its own encoding");
        Cola { replica, rope: JumpRope::from(text), log: None }
    }
}

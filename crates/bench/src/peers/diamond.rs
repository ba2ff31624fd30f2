//! diamond-types in the driver: a `ListCRDT` (operation log plus one checked-out branch), indexed
//! by code point. Deletes go through `delete_without_content`, diamond-types' fastest path.

use diamond_types::list::encoding::{EncodeOptions, ENCODE_FULL};
use diamond_types::list::{ListCRDT, OpLog};
use diamond_types::AgentId;

use crate::driver::{Encode, Merge, Peer, Remote};
use crate::trace::Patch;

pub struct Diamond {
    doc: ListCRDT,
    agent: AgentId,
}

impl Diamond {
    fn with_doc(mut doc: ListCRDT, replica: u64) -> Self {
        let agent = doc.get_or_create_agent_id(&format!("replica-{replica}"));
        Diamond { doc, agent }
    }

    /// Brings the branch up to the operation log's latest version.
    fn fast_forward(&mut self) {
        let ListCRDT { branch, oplog } = &mut self.doc;
        branch.merge(oplog, oplog.local_version_ref());
    }
}

impl Peer for Diamond {
    fn empty(replica: u64) -> Self {
        Diamond::with_doc(ListCRDT::new(), replica)
    }

    fn apply_txn(&mut self, patches: &[Patch], offset: usize) {
        for p in patches {
            let pos = p.pos + offset;
            if p.del > 0 {
                self.doc.delete_without_content(self.agent, pos..pos + p.del);
            }
            if !p.ins.is_empty() {
                self.doc.insert(self.agent, pos, &p.ins);
            }
        }
    }

    fn text(&mut self) -> String {
        self.doc.branch.content().to_string()
    }
}

impl Remote for Diamond {
    type Ops = OpLog;
    type Prepared = OpLog;

    fn set_recording(&mut self, _: bool) {}

    fn take_ops(&mut self) -> OpLog {
        self.doc.oplog.clone()
    }

    fn prepare(ops: &OpLog) -> OpLog {
        ops.clone()
    }

    fn integrate(replica: u64, ops: &mut OpLog) -> Self {
        let mut doc = Diamond::empty(replica);
        doc.doc.oplog.add_missing_operations_from(ops);
        doc.fast_forward();
        doc
    }
}

impl Merge for Diamond {
    type Input = ();

    fn fork(&mut self, replica: u64) -> Self {
        Diamond::with_doc(self.doc.clone(), replica)
    }

    fn merge_input(_: &mut Self, _: &mut Self) {}

    fn merge(into: &mut Self, from: &mut Self, _: ()) {
        into.doc.oplog.add_missing_operations_from(&from.doc.oplog);
        into.fast_forward();
    }
}

impl Encode for Diamond {
    fn encodings(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        let raw = EncodeOptions { compress_content: false, ..ENCODE_FULL };
        vec![("oplog, lz4", self.doc.oplog.encode(ENCODE_FULL)), ("oplog, raw", self.doc.oplog.encode(raw))]
    }

    fn load(_: &str, bytes: &[u8], replica: u64) -> Self {
        Diamond::with_doc(ListCRDT::load_from(bytes).expect("diamond-types loads its own encoding"), replica)
    }
}

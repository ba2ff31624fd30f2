//! loro in the driver: one `LoroText`, indexed by code point, committed once per trace
//! transaction. Operations travel as loro's exported update blobs.

use loro::{ExportMode, LoroDoc, LoroText};

use crate::driver::{Encode, Merge, Peer, Remote};
use crate::trace::Patch;

pub struct Loro {
    doc: LoroDoc,
    text: LoroText,
}

impl Loro {
    fn with_doc(doc: LoroDoc, replica: u64) -> Self {
        doc.set_peer_id(replica).expect("peer id");
        let text = doc.get_text("text");
        Loro { doc, text }
    }
}

impl Peer for Loro {
    fn empty(replica: u64) -> Self {
        Loro::with_doc(LoroDoc::new(), replica)
    }

    fn apply_txn(&mut self, patches: &[Patch], offset: usize) {
        for p in patches {
            if p.del > 0 {
                self.text.delete(p.pos + offset, p.del).expect("delete in bounds");
            }
            if !p.ins.is_empty() {
                self.text.insert(p.pos + offset, &p.ins).expect("insert in bounds");
            }
        }
        self.doc.commit();
    }

    fn text(&mut self) -> String {
        self.text.to_string()
    }
}

impl Remote for Loro {
    /// Every change, as one update blob (loro's natural way to send a history).
    type Ops = Vec<u8>;
    type Prepared = Vec<u8>;

    fn set_recording(&mut self, _: bool) {}

    fn take_ops(&mut self) -> Vec<u8> {
        self.doc.export(ExportMode::all_updates()).expect("export")
    }

    fn prepare(ops: &Vec<u8>) -> Vec<u8> {
        ops.clone()
    }

    fn integrate(replica: u64, ops: &mut Vec<u8>) -> Self {
        let doc = Loro::empty(replica);
        doc.doc.import(ops).expect("import");
        doc
    }
}

impl Merge for Loro {
    type Input = Vec<u8>;

    fn fork(&mut self, replica: u64) -> Self {
        Loro::with_doc(self.doc.fork(), replica)
    }

    fn merge_input(from: &mut Self, into: &mut Self) -> Vec<u8> {
        from.doc.export(ExportMode::updates(&into.doc.oplog_vv())).expect("export")
    }

    fn merge(into: &mut Self, _: &mut Self, input: Vec<u8>) {
        into.doc.import(&input).expect("import");
    }
}

impl Encode for Loro {
    fn encodings(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        vec![("snapshot", self.doc.export(ExportMode::Snapshot).expect("export"))]
    }

    fn load(_: &str, bytes: &[u8], replica: u64) -> Self {
        let doc = Loro::empty(replica);
        doc.doc.import(bytes).expect("import");
        doc
    }
}

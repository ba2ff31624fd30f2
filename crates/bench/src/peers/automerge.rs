//! automerge in the driver: an `AutoCommit` document with one text object at the root, indexed by
//! code point, committed once per trace transaction.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ObjId, ObjType, ReadDoc, TextEncoding, ROOT};

use crate::driver::{Encode, Merge, Peer, Remote};
use crate::trace::Patch;

pub struct Automerge {
    doc: AutoCommit,
    text: ObjId,
}

fn actor(replica: u64) -> ActorId {
    ActorId::from(replica.to_be_bytes().to_vec())
}

fn blank(replica: u64) -> AutoCommit {
    AutoCommit::new_with_encoding(TextEncoding::UnicodeCodePoint).with_actor(actor(replica))
}

/// The text object of a document made by [`Peer::empty`] (after a load or a sync).
fn text_of(doc: &AutoCommit) -> ObjId {
    let (_, id) = doc.get(ROOT, "text").expect("readable").expect("a text object");
    id
}

impl Peer for Automerge {
    fn empty(replica: u64) -> Self {
        let mut doc = blank(replica);
        let text = doc.put_object(ROOT, "text", ObjType::Text).expect("put text");
        doc.commit();
        Automerge { doc, text }
    }

    fn apply_txn(&mut self, patches: &[Patch], offset: usize) {
        for p in patches {
            self.doc.splice_text(&self.text, p.pos + offset, p.del as isize, &p.ins).expect("splice in bounds");
        }
        self.doc.commit();
    }

    fn text(&mut self) -> String {
        self.doc.text(&self.text).expect("text")
    }
}

impl Remote for Automerge {
    type Ops = Vec<Change>;
    type Prepared = Vec<Change>;

    fn set_recording(&mut self, _: bool) {}

    fn take_ops(&mut self) -> Vec<Change> {
        self.doc.get_changes(&[])
    }

    fn prepare(ops: &Vec<Change>) -> Vec<Change> {
        ops.clone()
    }

    fn integrate(replica: u64, ops: &mut Vec<Change>) -> Self {
        let mut doc = blank(replica);
        doc.apply_changes(std::mem::take(ops)).expect("changes apply");
        let text = text_of(&doc);
        Automerge { doc, text }
    }
}

impl Merge for Automerge {
    type Input = ();

    fn fork(&mut self, replica: u64) -> Self {
        let doc = self.doc.fork().with_actor(actor(replica));
        Automerge { text: self.text.clone(), doc }
    }

    fn merge_input(_: &mut Self, _: &mut Self) {}

    fn merge(into: &mut Self, from: &mut Self, _: ()) {
        into.doc.merge(&mut from.doc).expect("merge");
    }
}

impl Encode for Automerge {
    fn encodings(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        vec![("save", self.doc.save())]
    }

    fn load(_: &str, bytes: &[u8], replica: u64) -> Self {
        let doc = AutoCommit::load(bytes).expect("automerge loads its own save").with_actor(actor(replica));
        let text = text_of(&doc);
        Automerge { doc, text }
    }
}

//! yrs (the Rust port of Yjs) in the driver. Positions are UTF-16 code units (`OffsetKind::Utf16`,
//! yrs has no code-point mode), read from the trace's precomputed `pos16`/`del16`.

use yrs::block::ClientID;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact, Update};

use crate::driver::{Encode, Merge, Peer, Remote};
use crate::trace::Patch;

pub struct Yrs {
    doc: Doc,
    text: TextRef,
    log: Option<Vec<Vec<u8>>>,
}

fn decode_v1(bytes: &[u8]) -> Update {
    Update::decode_v1(bytes).expect("yrs decodes its own update")
}

impl Peer for Yrs {
    fn empty(replica: u64) -> Self {
        let options = Options { offset_kind: OffsetKind::Utf16, ..Options::with_client_id(ClientID::new(replica)) };
        let doc = Doc::with_options(options);
        let text = doc.get_or_insert_text("text");
        Yrs { doc, text, log: None }
    }

    fn apply_txn(&mut self, patches: &[Patch], offset: usize) {
        let mut txn = self.doc.transact_mut();
        for p in patches {
            if p.del16 > 0 {
                self.text.remove_range(&mut txn, (p.pos16 + offset) as u32, p.del16 as u32);
            }
            if !p.ins.is_empty() {
                self.text.insert(&mut txn, (p.pos16 + offset) as u32, &p.ins);
            }
        }
        if let Some(log) = &mut self.log {
            log.push(txn.encode_update_v1());
        }
    }

    fn text(&mut self) -> String {
        self.text.get_string(&self.doc.transact())
    }
}

impl Remote for Yrs {
    /// One v1 update per transaction, as a Yjs provider sends them.
    type Ops = Vec<Vec<u8>>;
    type Prepared = Vec<Update>;

    fn set_recording(&mut self, on: bool) {
        self.log = on.then(Vec::new);
    }

    fn take_ops(&mut self) -> Vec<Vec<u8>> {
        self.log.take().unwrap_or_default()
    }

    fn prepare(ops: &Vec<Vec<u8>>) -> Vec<Update> {
        ops.iter().map(|b| decode_v1(b)).collect()
    }

    fn integrate(replica: u64, ops: &mut Vec<Update>) -> Self {
        let doc = Yrs::empty(replica);
        {
            let mut txn = doc.doc.transact_mut();
            for update in ops.drain(..) {
                txn.apply_update(update).expect("update applies");
            }
        }
        doc
    }
}

impl Merge for Yrs {
    type Input = Update;

    fn fork(&mut self, replica: u64) -> Self {
        let state = self.doc.transact().encode_state_as_update_v1(&StateVector::default());
        let copy = Yrs::empty(replica);
        copy.doc.transact_mut().apply_update(decode_v1(&state)).expect("state applies");
        copy
    }

    fn merge_input(from: &mut Self, into: &mut Self) -> Update {
        let version = into.doc.transact().state_vector();
        decode_v1(&from.doc.transact().encode_state_as_update_v1(&version))
    }

    fn merge(into: &mut Self, _: &mut Self, input: Update) {
        into.doc.transact_mut().apply_update(input).expect("update applies");
    }
}

impl Encode for Yrs {
    fn encodings(&mut self) -> Vec<(&'static str, Vec<u8>)> {
        let txn = self.doc.transact();
        vec![
            ("update v2", txn.encode_state_as_update_v2(&StateVector::default())),
            ("update v1", txn.encode_state_as_update_v1(&StateVector::default())),
        ]
    }

    fn load(label: &str, bytes: &[u8], replica: u64) -> Self {
        let update = match label {
            "update v2" => Update::decode_v2(bytes).expect("yrs decodes its own update"),
            _ => decode_v1(bytes),
        };
        let doc = Yrs::empty(replica);
        doc.doc.transact_mut().apply_update(update).expect("update applies");
        doc
    }
}

//! A plain rope with no CRDT at all (jumprope): the floor for local edits.

use jumprope::JumpRope;

use crate::driver::Peer;
use crate::trace::Patch;

pub struct Rope(JumpRope);

impl Peer for Rope {
    fn empty(_: u64) -> Self {
        Rope(JumpRope::new())
    }

    fn apply_txn(&mut self, patches: &[Patch], offset: usize) {
        for p in patches {
            let pos = p.pos + offset;
            if p.del > 0 {
                self.0.remove(pos..pos + p.del);
            }
            if !p.ins.is_empty() {
                self.0.insert(pos, &p.ins);
            }
        }
    }

    fn text(&mut self) -> String {
        self.0.to_string()
    }
}

//! [`Rga`]: a replicated text sequence (RGA with YjsMod/FugueMax ordering) stored as a B-tree of
//! runs.
//!
//! # The ordering rule
//!
//! Every inserted character gets a unique id and remembers two neighbours from the moment it was
//! typed: its *left origin* (the character just before it) and its *right origin* (the item just
//! after it, deleted or not). A remote insert goes after its left origin and before its right
//! origin; when other characters were inserted concurrently between the same two points, it scans
//! them from left to right (see `integrate.rs`):
//!
//! | the scanned item `o`                                      | what the scan does            |
//! |-----------------------------------------------------------|-------------------------------|
//! | `o`'s left origin is left of ours                         | stop: insert here             |
//! | same left origin, `o`'s right origin is left of ours      | skip `o`, tentatively         |
//! | same left origin, same right origin, our replica is lower | stop: insert here             |
//! | same left origin, same right origin, our replica higher   | skip `o` and what it skipped  |
//! | same left origin, `o`'s right origin is right of ours     | skip `o` and what it skipped  |
//! | `o`'s left origin is right of ours (`o` is inside a run)  | skip `o`                      |
//!
//! "Tentatively" means: if the scan later stops while still in that state, the insert lands where
//! the tentative stretch began. Using the right origin as well as the left one is what keeps two
//! people typing at the same spot from interleaving, even when each types backwards:
//!
//! ```text
//!   A types "abc" backwards at the end of "X" (c, then b before c, then a before b);
//!   B concurrently types "xyz" backwards at the same spot.
//!   Plain RGA (left origin only):   X a x b y c z   (scrambled)
//!   With both origins (this crate): X a b c x y z   (or X x y z a b c, the same everywhere)
//! ```
//!
//! # Storage
//!
//! Characters typed one after another by one replica form a *run*, stored as one entry of a leaf
//! of a B-tree whose nodes count characters three ways (all, visible, visible UTF-16 units), so a
//! position is found in O(log n). Deleted characters stay in the tree as tombstones (they are the
//! anchors of concurrent inserts). The text itself lives in one buffer per replica, indexed by
//! counter. See `rga/node.rs`, `rga/id.rs` and `rga/content.rs`.
//!
//! Positions in the API count Unicode scalar values (`char`s); the `_utf16` methods take UTF-16
//! code units, as JavaScript and editors do.

mod chunked;
mod content;
mod id;
mod integrate;
mod node;
mod op;
pub(crate) mod pack;
mod place;
mod run;
mod snapshot;
mod store;
mod text_hash;
mod walk;

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

pub(crate) use content::char_count;
use content::CharBuf;
use id::{Id, IdIndex, Replicas};
use node::{Cursor, Metric, Run, Tree};
pub use op::{Anchor, IdRange, LocalDelete, LocalInsert, RgaOp, TextDelta};

use crate::{Applied, ApplyError, EditError, OpId, ReplicaId, SmolStr, VersionVector};

/// A replicated text; see the module docs.
#[derive(Clone)]
pub struct Rga {
    /// The replica local edits are made as.
    replica: ReplicaId,
    /// `replica`'s index in `replicas`.
    local: u32,
    replicas: Replicas,
    /// Per replica index: every character it inserted, in counter order.
    content: Vec<CharBuf>,
    /// Which leaf holds each id. A loaded text builds it from the tree on first use (see
    /// [`Rga::ids`]): showing a document needs none of it, and edits made before then need
    /// not keep it up to date.
    ids: OnceLock<IdIndex>,
    tree: Tree,
    /// Position (in characters) and place of the last character the last local insert typed,
    /// while nothing else has changed since: the next keystroke usually goes right after it.
    typing: Option<(u32, Cursor)>,
    /// The last character the last remote insert placed, and where, while nothing else has
    /// changed since: the next remote operation usually continues it or deletes it.
    placed: Option<(Id, Cursor)>,
}

impl Rga {
    /// An empty text whose local edits are made as `replica`.
    pub fn new(replica: ReplicaId) -> Self {
        let mut rga = Rga {
            replica,
            local: 0,
            replicas: Replicas::default(),
            content: Vec::new(),
            ids: OnceLock::from(IdIndex::default()),
            tree: Tree::default(),
            typing: None,
            placed: None,
        };
        rga.local = rga.ensure_replica(replica);
        rga
    }

    /// The replica local edits are made as.
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// Makes later local edits as `replica` (used after loading a snapshot).
    pub fn set_replica(&mut self, replica: ReplicaId) {
        self.replica = replica;
        self.local = self.ensure_replica(replica);
    }

    /// Length in characters (Unicode scalar values).
    pub fn len(&self) -> usize {
        self.tree.total().chars as usize
    }

    /// Length in UTF-16 code units.
    pub fn len_utf16(&self) -> usize {
        self.tree.total().utf16 as usize
    }

    /// True if no visible character is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The visible text.
    pub fn value(&self) -> String {
        // Gathered as bytes (each run's text is whole characters, so the joined bytes are UTF-8;
        // one check at the end costs less than a boundary check per run).
        let chars = self.len();
        let slack = if self.content.iter().all(CharBuf::is_ascii) { 0 } else { chars / 4 };
        let mut out: Vec<u8> = Vec::with_capacity(chars + slack);
        let mut leaf = self.tree.first_leaf;
        while leaf != node::NIL {
            for run in &self.tree.leaves[leaf as usize].runs {
                if !run.deleted {
                    out.extend_from_slice(self.content[run.id.replica as usize].slice_bytes(run.id.counter, run.len));
                }
            }
            leaf = self.tree.leaves[leaf as usize].next;
        }
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// A 64-bit hash of [`value`](Self::value)'s UTF-8 bytes that does not depend on how the
    /// text is stored, for convergence checks: after an edit it costs the leaves the edit
    /// changed, not the whole text (see `rga/text_hash.rs`). Leading zero bytes add nothing:
    /// hash the length too.
    pub fn text_hash(&self) -> u64 {
        self.text_hashed().hash
    }

    fn text_hashed(&self) -> text_hash::Hashed {
        let tree = &self.tree;
        let leaves = std::iter::successors(Some(tree.first_leaf), |&leaf| {
            Some(tree.leaves[leaf as usize].next).filter(|&next| next != node::NIL)
        });
        tree.hashes.combine(tree.leaves.len(), leaves, |leaf| self.leaf_hashed(leaf))
    }

    /// The hash of one leaf's visible text.
    fn leaf_hashed(&self, leaf: u32) -> text_hash::Hashed {
        self.tree.leaves[leaf as usize]
            .runs
            .iter()
            .filter(|run| !run.deleted)
            .fold(text_hash::Hashed::EMPTY, |h, run| {
                h.then(self.content[run.id.replica as usize].slice_hashed(run.id.counter, run.len))
            })
    }

    /// The counter the next character inserted by `replica` will have.
    pub fn next_counter(&self, replica: ReplicaId) -> u64 {
        self.replicas.lookup(replica).map_or(0, |r| self.content[r as usize].chars() as u64)
    }

    /// How many characters this text holds, deleted ones included.
    pub fn inserted_chars(&self) -> u64 {
        self.tree.total().all as u64
    }

    /// How many characters each replica has inserted (deleted ones included).
    pub fn version(&self) -> VersionVector {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| (r, self.content[i].chars() as u64))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Inserts `text` at character position `pos`; returns what it did, from which
    /// [`LocalInsert::to_op`] makes the operation to send to others.
    pub fn insert<'t>(&mut self, pos: usize, text: &'t str) -> Result<LocalInsert<'t>, EditError> {
        if text.is_empty() {
            return Err(EditError::EmptyText);
        }
        let len = self.len();
        if pos > len {
            return Err(EditError::OutOfBounds { pos, len });
        }
        let n = self.room_for(text)?;
        let counter = self.content[self.local as usize].chars();
        self.placed = None;
        // The text first (nothing below fails): reading it can overlap with finding the place.
        self.content[self.local as usize].push_str(text);
        let after = match self.typing.take() {
            _ if pos == 0 => None,
            Some((last, cur)) if last + 1 == pos as u32 => Some(cur),
            _ => self.tree.seek_cached(pos as u32 - 1, Metric::Chars, &self.content),
        };
        let origin_left = after.map_or(Id::NONE, |c| self.id_at(c));
        let next = match after {
            None => self.tree.seek(0, Metric::All, &self.content),
            Some(c) => self.tree.next_char(c),
        };
        let origin_right = next.map_or(Id::NONE, |c| self.id_at(c));
        let run = Run { id: Id::new(self.local, counter), len: n as u32, origin_left, origin_right, deleted: false };
        let at = self.place_after(after, run);
        self.typing = Some(((pos + n) as u32 - 1, Cursor { offset: at.offset + n as u32 - 1, ..at }));
        self.after_edit();
        Ok(LocalInsert {
            id: OpId::new(self.replica, counter as u64),
            origin_left: self.replicas.to_op_id(origin_left),
            origin_right: self.replicas.to_op_id(origin_right),
            text,
        })
    }

    /// Deletes `len` characters from position `pos`; returns the ids it deleted, from which
    /// [`LocalDelete::into_op`] makes the operation to send (none when `len` is 0).
    pub fn delete(&mut self, pos: usize, len: usize) -> Result<LocalDelete, EditError> {
        let total = self.len();
        if pos.checked_add(len).is_none_or(|end| end > total) {
            return Err(EditError::OutOfBounds { pos: pos.saturating_add(len), len: total });
        }
        self.typing = None;
        self.placed = None;
        let mut deleted = LocalDelete::default();
        if len == 0 {
            return Ok(deleted);
        }
        let mut remaining = len as u32;
        while remaining > 0 {
            let Some(cur) = self.tree.seek_cached(pos as u32, Metric::Chars, &self.content) else { break };
            let run = self.tree.leaves[cur.leaf as usize].runs[cur.run];
            // A delete past the end of this run: whole runs in one sweep.
            if cur.offset == 0 && run.len < remaining && self.delete_whole_runs(cur, &mut remaining, &mut deleted) > 0 {
                continue;
            }
            let take = remaining.min(run.len - cur.offset);
            let start = self.replicas.to_op_id(run.id.plus(cur.offset)).expect("a run has an id");
            self.mark_deleted(cur, take);
            deleted.push(start, take as u64);
            remaining -= take;
        }
        self.after_edit();
        Ok(deleted)
    }

    /// Deletes `len` characters from position `pos` and inserts `text` there (if it is not
    /// empty): what an editor does when text is typed or pasted over a selection. Everything is
    /// checked first, so on an error nothing has changed. The insert is made exactly as
    /// [`insert`](Self::insert) would make it after the [`delete`](Self::delete).
    pub fn replace<'t>(
        &mut self,
        pos: usize,
        len: usize,
        text: &'t str,
    ) -> Result<(LocalDelete, Option<LocalInsert<'t>>), EditError> {
        let total = self.len();
        if pos.checked_add(len).is_none_or(|end| end > total) {
            return Err(EditError::OutOfBounds { pos: pos.saturating_add(len), len: total });
        }
        if !text.is_empty() {
            self.room_for(text)?;
        }
        // An empty delete would still end the typing run the insert may continue.
        let deleted = if len > 0 { self.delete(pos, len)? } else { LocalDelete::default() };
        let inserted = if text.is_empty() { None } else { Some(self.insert(pos, text)?) };
        Ok((deleted, inserted))
    }

    /// [`replace`](Self::replace) of `len16` UTF-16 code units from UTF-16 position `pos16`.
    pub fn replace_utf16<'t>(
        &mut self,
        pos16: usize,
        len16: usize,
        text: &'t str,
    ) -> Result<(LocalDelete, Option<LocalInsert<'t>>), EditError> {
        let start = self.utf16_to_char(pos16)?;
        let end = self.utf16_to_char(
            pos16.checked_add(len16).ok_or(EditError::OutOfBounds { pos: usize::MAX, len: self.len_utf16() })?,
        )?;
        self.replace(start, end - start, text)
    }

    /// The length of `text` in characters, if this replica may still insert that many: its
    /// counters must stay below `u32::MAX`.
    fn room_for(&self, text: &str) -> Result<usize, EditError> {
        let n = content::char_count(text);
        let counter = self.content[self.local as usize].chars();
        if n as u64 + counter as u64 >= u32::MAX as u64 {
            return Err(EditError::Overflow);
        }
        Ok(n)
    }

    /// [`insert`](Self::insert) at a UTF-16 position.
    pub fn insert_utf16<'t>(&mut self, pos16: usize, text: &'t str) -> Result<LocalInsert<'t>, EditError> {
        let pos = self.utf16_to_char(pos16)?;
        self.insert(pos, text)
    }

    /// [`delete`](Self::delete) of `len16` UTF-16 code units from UTF-16 position `pos16`.
    pub fn delete_utf16(&mut self, pos16: usize, len16: usize) -> Result<LocalDelete, EditError> {
        let start = self.utf16_to_char(pos16)?;
        let end = self.utf16_to_char(
            pos16.checked_add(len16).ok_or(EditError::OutOfBounds { pos: usize::MAX, len: self.len_utf16() })?,
        )?;
        self.delete(start, end - start)
    }

    /// The character position of UTF-16 position `pos16`.
    pub fn utf16_to_char(&self, pos16: usize) -> Result<usize, EditError> {
        let total = self.tree.total();
        if pos16 > total.utf16 as usize {
            return Err(EditError::OutOfBounds { pos: pos16, len: total.utf16 as usize });
        }
        if pos16 == total.utf16 as usize {
            return Ok(total.chars as usize);
        }
        let cur = self.tree.seek(pos16 as u32, Metric::Utf16, &self.content).expect("pos16 < total");
        let at = self.tree.position(cur, &self.content);
        if at.utf16 as usize != pos16 {
            return Err(EditError::SplitsSurrogate(pos16));
        }
        Ok(at.chars as usize)
    }

    /// The UTF-16 position of character position `pos`.
    pub fn char_to_utf16(&self, pos: usize) -> Result<usize, EditError> {
        let total = self.tree.total();
        if pos > total.chars as usize {
            return Err(EditError::OutOfBounds { pos, len: total.chars as usize });
        }
        if pos == total.chars as usize {
            return Ok(total.utf16 as usize);
        }
        let cur = self.tree.seek(pos as u32, Metric::Chars, &self.content).expect("pos < total");
        Ok(self.tree.position(cur, &self.content).utf16 as usize)
    }

    /// Applies a remote operation. A duplicate (or an insert already merged) changes nothing.
    pub fn apply(&mut self, op: &RgaOp) -> Result<Applied, ApplyError> {
        self.apply_inner(op, None)
    }

    /// Like [`apply`](Self::apply), and appends the visible edits it made, in order, to `deltas`
    /// (what an editor must do to show the new text without reloading it).
    pub fn apply_with_deltas(&mut self, op: &RgaOp, deltas: &mut Vec<TextDelta>) -> Result<Applied, ApplyError> {
        self.apply_inner(op, Some(deltas))
    }

    /// Checks that `op` could be applied if each replica in `extra` had inserted that many more
    /// characters than this text has seen; for an insert, adds its new characters to `extra`.
    /// Lets a batch of operations be validated before any of it is applied.
    pub fn validate_op(&self, op: &RgaOp, extra: &mut HashMap<ReplicaId, u64>) -> Result<(), ApplyError> {
        let known = |id: OpId, extra: &HashMap<ReplicaId, u64>| {
            id.counter < self.next_counter(id.replica) + extra.get(&id.replica).copied().unwrap_or(0)
        };
        let unknown = |id: OpId| ApplyError::UnknownId { replica: id.replica, counter: id.counter };
        match op {
            RgaOp::Insert { id, origin_left, origin_right, text } => {
                let len = content::char_count(text) as u64;
                if len == 0 {
                    return Err(ApplyError::Invalid("empty insert"));
                }
                let end = id.counter.checked_add(len).filter(|e| *e < u32::MAX as u64);
                let end = end.ok_or(ApplyError::Invalid("counter overflow"))?;
                let next = self.next_counter(id.replica) + extra.get(&id.replica).copied().unwrap_or(0);
                if end <= next {
                    return Ok(());
                }
                if id.counter > next {
                    return Err(ApplyError::OutOfOrder { replica: id.replica, expected: next, found: id.counter });
                }
                for origin in [origin_left, origin_right].into_iter().flatten() {
                    if !known(*origin, extra) {
                        return Err(unknown(*origin));
                    }
                }
                *extra.entry(id.replica).or_default() += end - next;
                Ok(())
            }
            RgaOp::Delete { ranges } => {
                for r in ranges {
                    let last = r.start.counter.checked_add(r.len).filter(|_| r.len > 0).map(|e| e - 1);
                    let last = last.ok_or(ApplyError::Invalid("empty or overflowing delete range"))?;
                    if !known(OpId::new(r.start.replica, last), extra) {
                        return Err(unknown(OpId::new(r.start.replica, last)));
                    }
                }
                Ok(())
            }
        }
    }

    /// The insert operation that made the `len` characters from `id` on, rebuilt from what the
    /// text keeps of them (their characters, deleted or not, and their origins); `None` unless
    /// all of them are in this text. This is how a document's history serves inserts without
    /// storing their text a second time.
    pub(crate) fn insert_op(&self, id: OpId, len: u32) -> Option<RgaOp> {
        let start = self.known_id(id)?;
        let buf = &self.content[start.replica as usize];
        if len == 0 || start.counter.checked_add(len)? > buf.chars() {
            return None;
        }
        let cur = self.cursor_of(start)?;
        let run = &self.tree.leaves[cur.leaf as usize].runs[cur.run];
        let origin_left = if cur.offset == 0 { run.origin_left } else { Id::new(start.replica, start.counter - 1) };
        Some(RgaOp::Insert {
            id,
            origin_left: self.replicas.to_op_id(origin_left),
            origin_right: self.replicas.to_op_id(run.origin_right),
            text: SmolStr::new(buf.slice(start.counter, len)),
        })
    }

    /// A position that stays on its character while the text around it changes: it names the
    /// character just before `pos` (`pos` is clamped to the length).
    pub fn anchor_at(&self, pos: usize) -> Anchor {
        let pos = pos.min(self.len());
        if pos == 0 {
            return Anchor { after: None };
        }
        let cur = self.tree.seek(pos as u32 - 1, Metric::Chars, &self.content).expect("pos <= len");
        Anchor { after: self.replicas.to_op_id(self.id_at(cur)) }
    }

    /// Where `anchor` is now, in characters; `None` if it names a character this text has not seen.
    pub fn anchor_position(&self, anchor: &Anchor) -> Option<usize> {
        let Some(after) = anchor.after else { return Some(0) };
        let cur = self.cursor_of(self.known_id(after)?)?;
        let visible = !self.tree.leaves[cur.leaf as usize].runs[cur.run].deleted;
        Some(self.tree.position(cur, &self.content).chars as usize + visible as usize)
    }

    /// Bytes of heap this text uses (for memory reports).
    pub fn heap_size(&self) -> usize {
        self.tree.heap_size()
            + self.content.iter().map(CharBuf::heap_size).sum::<usize>()
            + self.ids.get().map_or(0, IdIndex::heap_size)
            + self.replicas.len() * 40
    }

    /// Panics if an internal invariant does not hold (see the `rga/*.rs` module docs).
    pub fn check_invariants(&self) {
        self.replicas.check_invariants();
        // Not built yet (a loaded text): check what building it now would give, without
        // keeping it, so that the lazy state is what later edits see.
        let built;
        let ids = match self.ids.get() {
            Some(ids) => ids,
            None => {
                built = self.build_ids();
                &built
            }
        };
        ids.check_invariants();
        assert_eq!(self.content.len(), self.replicas.len(), "one buffer per replica");
        assert_eq!(self.replicas.lookup(self.replica), Some(self.local), "local replica index");
        for buf in &self.content {
            buf.check_invariants();
        }
        self.tree.check_invariants(&self.content);
        // Every cached leaf hash is that leaf's, and together they hash the text.
        for (leaf, cached) in self.tree.hashes.entries().into_iter().enumerate() {
            if let Some(cached) = cached {
                assert_eq!(cached, self.leaf_hashed(leaf as u32), "stale hash cached for leaf {leaf}");
            }
        }
        let hashed = self.text_hashed();
        assert_eq!(hashed, text_hash::Hashed::EMPTY.extend(self.value().as_bytes()), "text hash");
        if let Some((pos, cur)) = self.typing {
            let run = self.tree.leaves[cur.leaf as usize].runs[cur.run];
            assert!(cur.offset < run.len && !run.deleted, "typing cursor on a visible character");
            assert_eq!(self.tree.position(cur, &self.content).chars, pos, "typing cursor position");
        }
        if let Some((id, cur)) = self.placed {
            assert_eq!(self.id_at(cur), id, "last placed character's cursor");
        }
        let mut seen = vec![0u64; self.content.len()];
        let mut leaf = self.tree.first_leaf;
        while leaf != node::NIL {
            for run in &self.tree.leaves[leaf as usize].runs {
                seen[run.id.replica as usize] += run.len as u64;
                for k in [0, run.len - 1] {
                    assert_eq!(ids.leaf_of(run.id.plus(k)), Some(leaf), "id index points at the run's leaf");
                }
            }
            leaf = self.tree.leaves[leaf as usize].next;
        }
        for (i, buf) in self.content.iter().enumerate() {
            assert_eq!(seen[i], buf.chars() as u64, "every inserted character is in the tree once");
        }
        let indexed: u64 = ids.entries().map(|(_, s, e, _)| (e - s) as u64).sum();
        assert_eq!(indexed, seen.iter().sum::<u64>(), "id index covers exactly the inserted ids");
    }

    // ---- internals shared by the submodules ----

    fn ensure_replica(&mut self, replica: ReplicaId) -> u32 {
        let r = self.replicas.get_or_insert(replica);
        while self.content.len() <= r as usize {
            self.content.push(CharBuf::default());
        }
        if let Some(ids) = self.ids.get_mut() {
            ids.ensure_replica(r);
        }
        r
    }

    /// The id index, built from the tree first if this text was loaded and has not needed it yet.
    fn ids(&self) -> &IdIndex {
        self.ids.get_or_init(|| self.build_ids())
    }

    /// The id index of the tree as it is.
    #[cold]
    fn build_ids(&self) -> IdIndex {
        let chars: Vec<u32> = self.content.iter().map(CharBuf::chars).collect();
        IdIndex::from_tree(&self.tree, &chars)
    }

    fn id_at(&self, cur: Cursor) -> Id {
        self.tree.leaves[cur.leaf as usize].runs[cur.run].id.plus(cur.offset)
    }

    /// The local id of a public id this text has seen.
    fn known_id(&self, id: OpId) -> Option<Id> {
        let r = self.replicas.lookup(id.replica)?;
        (id.counter < self.content[r as usize].chars() as u64).then(|| Id::new(r, id.counter as u32))
    }

    /// [`cursor_of`](Self::cursor_of), looking first in the run of a known character and its
    /// neighbours.
    fn cursor_near(&self, id: Id, hint: Option<(Id, Cursor)>) -> Option<Cursor> {
        if let Some((_, c)) = hint {
            // That run or a neighbour: backspacing moves one run back, typing on one forward.
            let runs = &self.tree.leaves[c.leaf as usize].runs;
            for run in [c.run, c.run.wrapping_sub(1), c.run + 1] {
                if let Some(r) = runs.get(run).filter(|r| r.contains(id)) {
                    return Some(Cursor { leaf: c.leaf, run, offset: id.counter - r.id.counter });
                }
            }
        }
        self.cursor_of(id)
    }

    fn cursor_of(&self, id: Id) -> Option<Cursor> {
        let leaf = self.ids().leaf_of(id)?;
        let runs = &self.tree.leaves[leaf as usize].runs;
        let run = runs.iter().position(|r| r.contains(id))?;
        Some(Cursor { leaf, run, offset: id.counter - runs[run].id.counter })
    }

    fn after_edit(&self) {
        #[cfg(feature = "check-invariants")]
        self.check_invariants();
    }
}

impl fmt::Debug for Rga {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rga")
            .field("replica", &self.replica)
            .field("value", &self.value())
            .field("runs", &self.pieces().len())
            .finish()
    }
}

impl PartialEq for Rga {
    /// Equal when both hold the same characters (deleted ones included) in the same order with
    /// the same origins: the replicated state, whatever the local replica or run layout.
    fn eq(&self, other: &Self) -> bool {
        self.version() == other.version() && self.pieces() == other.pieces()
    }
}

//! The nodes and leaves of the run tree, as stored.
//!
//! A [`Leaf`] holds its runs inline, after its links and length; a [`Node`] holds its children
//! and their widths inline. So what a seek reads next is one allocation, not a header and then
//! the array it points to: finding a position in a large document costs one cache miss per
//! level fewer.

use std::ops::{Deref, DerefMut, Index, IndexMut};

use super::id::Id;
use super::node::NIL;
use super::run::{Run, Width};

/// Most runs in one leaf between edits: a leaf over this is split.
pub(crate) const LEAF_CAP: usize = 64;
/// Room for the runs of a full leaf plus what one edit adds before the split (deleting from
/// the middle of a run cuts it in three).
const ROOM: usize = LEAF_CAP + 2;

/// Most children of one internal node between edits: a node over this is split.
pub(crate) const NODE_CAP: usize = 32;

const EMPTY: Run = Run { id: Id::NONE, len: 0, origin_left: Id::NONE, origin_right: Id::NONE, deleted: false };

/// A list of at most `LEAF_CAP + 2` runs, stored inline.
#[derive(Clone)]
#[repr(C)]
pub(crate) struct Runs {
    len: u32,
    /// Puts `items` at offset 32 of a [`Leaf`], so no run straddles two cache lines.
    _pad: [u32; 5],
    items: [Run; ROOM],
}

impl Runs {
    const EMPTY: Runs = Runs { len: 0, _pad: [0; 5], items: [EMPTY; ROOM] };

    /// Appends `runs`. Panics past [`ROOM`](Runs) runs.
    pub fn extend_from_slice(&mut self, runs: &[Run]) {
        let len = self.len as usize;
        self.items[len..len + runs.len()].copy_from_slice(runs);
        self.len += runs.len() as u32;
    }

    /// Keeps the first `len` runs.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len as u32);
    }

    /// Inserts `run` at `index`, shifting the runs after it. Panics when full (a leaf is split
    /// after every edit that takes it over [`LEAF_CAP`]).
    pub fn insert(&mut self, index: usize, run: Run) {
        let len = self.len as usize;
        assert!(index <= len && len < ROOM, "run list full or index past its end");
        self.items.copy_within(index..len, index + 1);
        self.items[index] = run;
        self.len += 1;
    }

    /// Inserts `a` and then `b` at `index`, shifting the runs after them once.
    pub fn insert_pair(&mut self, index: usize, a: Run, b: Run) {
        let len = self.len as usize;
        assert!(index <= len && len + 2 <= ROOM, "run list full or index past its end");
        self.items.copy_within(index..len, index + 2);
        self.items[index] = a;
        self.items[index + 1] = b;
        self.len += 2;
    }

    pub fn remove(&mut self, index: usize) -> Run {
        let run = self[index];
        self.remove_range(index, index + 1);
        run
    }

    /// Removes runs `from..to`.
    pub fn remove_range(&mut self, from: usize, to: usize) {
        let len = self.len as usize;
        assert!(from <= to && to <= len, "range past the end of the run list");
        self.items.copy_within(to..len, from);
        self.len -= (to - from) as u32;
    }
}

impl Deref for Runs {
    type Target = [Run];
    #[inline]
    fn deref(&self) -> &[Run] {
        // `len <= ROOM` always holds, so this never panics; `get_unchecked` would save a compare.
        &self.items[..self.len as usize]
    }
}

impl DerefMut for Runs {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Run] {
        &mut self.items[..self.len as usize]
    }
}

impl<'a> IntoIterator for &'a Runs {
    type Item = &'a Run;
    type IntoIter = std::slice::Iter<'a, Run>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A leaf of the run tree: its parent node, the next leaf in document order and its runs.
///
/// Aligned to a cache line, with the links and the run count in the first half of the first
/// line and the first run in the second half: a scan from the start touches one line to begin.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub(crate) struct Leaf {
    pub parent: u32,
    pub next: u32,
    pub runs: Runs,
}

const _: () = assert!(std::mem::offset_of!(Leaf, runs) + std::mem::offset_of!(Runs, items) == 32);

impl Leaf {
    /// A leaf holding a copy of `runs`, built in its box: a leaf is 2 KB, and one put together
    /// on the stack and then moved in is written twice (loading writes every leaf).
    pub fn boxed(runs: &[Run], parent: u32, next: u32) -> Box<Leaf> {
        const EMPTY_LEAF: Leaf = Leaf { parent: NIL, next: NIL, runs: Runs::EMPTY };
        let mut leaf = Box::new(EMPTY_LEAF);
        leaf.parent = parent;
        leaf.next = next;
        leaf.runs.extend_from_slice(runs);
        leaf
    }
}

/// The leaves of one tree, numbered from 0, each in its own allocation: the table of pointers
/// is small enough to stay in cache (8 bytes a leaf, against 2 KB of runs), a leaf is never
/// copied as the document grows, and no slack is held beyond the table's.
#[derive(Clone, Debug, Default)]
#[allow(clippy::vec_box)] // Boxed on purpose: see above.
pub(crate) struct Leaves(Vec<Box<Leaf>>);

impl Leaves {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn push(&mut self, leaf: Box<Leaf>) {
        self.0.push(leaf);
    }

    /// Heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<Box<Leaf>>() + self.0.len() * std::mem::size_of::<Leaf>()
    }
}

/// An internal node: up to [`NODE_CAP`] children (nodes, or leaves when `height == 1`) and
/// the width of each.
#[derive(Clone)]
#[repr(C, align(64))]
pub(crate) struct Node {
    pub parent: u32,
    pub height: u8,
    len: u8,
    widths: [Width; NODE_CAP + 1],
    children: [u32; NODE_CAP + 1],
}

impl Node {
    /// A node of `height` over `children`, with their widths (at most `NODE_CAP + 1`).
    pub fn new(children: &[u32], widths: &[Width], parent: u32, height: u8) -> Node {
        assert!(children.len() == widths.len() && children.len() <= NODE_CAP + 1, "node overfilled");
        let mut n = Node {
            parent,
            height,
            len: children.len() as u8,
            widths: [Width::default(); NODE_CAP + 1],
            children: [NIL; NODE_CAP + 1],
        };
        n.widths[..widths.len()].copy_from_slice(widths);
        n.children[..children.len()].copy_from_slice(children);
        n
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn children(&self) -> &[u32] {
        &self.children[..self.len as usize]
    }

    pub fn widths(&self) -> &[Width] {
        &self.widths[..self.len as usize]
    }

    pub fn widths_mut(&mut self) -> &mut [Width] {
        &mut self.widths[..self.len as usize]
    }

    /// The sum of the children's widths.
    pub fn total(&self) -> Width {
        self.widths().iter().fold(Width::default(), |a, w| a.add(*w))
    }

    /// Inserts `child` of width `width` at `index`. Panics when full (a node is split after
    /// every insert that takes it over [`NODE_CAP`]).
    pub fn insert(&mut self, index: usize, child: u32, width: Width) {
        let len = self.len as usize;
        assert!(index <= len && len <= NODE_CAP, "node full or index past its end");
        self.children.copy_within(index..len, index + 1);
        self.widths.copy_within(index..len, index + 1);
        self.children[index] = child;
        self.widths[index] = width;
        self.len += 1;
    }

    /// Moves children `at..` into a new node with the same parent and height.
    pub fn split_off(&mut self, at: usize) -> Node {
        let moved = Node::new(&self.children()[at..], &self.widths()[at..], self.parent, self.height);
        self.len = at as u8;
        moved
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("parent", &self.parent)
            .field("height", &self.height)
            .field("children", &self.children())
            .field("widths", &self.widths())
            .finish()
    }
}

impl Index<usize> for Leaves {
    type Output = Leaf;
    #[inline]
    fn index(&self, i: usize) -> &Leaf {
        &self.0[i]
    }
}

impl IndexMut<usize> for Leaves {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Leaf {
        &mut self.0[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: u32) -> Run {
        Run { id: Id::new(0, c), len: 1, ..EMPTY }
    }

    /// The inline list behaves as a `Vec` under random inserts, removes and splits.
    #[test]
    fn runs_behave_like_a_vec() {
        let mut rand = crate::rga::chunked::xorshift(7);
        for _ in 0..50 {
            let mut ours = Runs::EMPTY;
            let mut model: Vec<Run> = Vec::new();
            for step in 0..400u32 {
                let len = model.len();
                match rand(5) {
                    0 if len < ROOM => {
                        let at = rand(len as u32 + 1) as usize;
                        ours.insert(at, run(step));
                        model.insert(at, run(step));
                    }
                    1 if len + 2 <= ROOM => {
                        let at = rand(len as u32 + 1) as usize;
                        ours.insert_pair(at, run(step), run(step + 1000));
                        model.splice(at..at, [run(step), run(step + 1000)]);
                    }
                    2 if len > 0 => {
                        let from = rand(len as u32) as usize;
                        let to = from + rand((len - from) as u32 + 1) as usize;
                        ours.remove_range(from, to);
                        model.drain(from..to);
                    }
                    3 if len > 0 => {
                        let at = rand(len as u32) as usize;
                        assert_eq!(ours.remove(at), model.remove(at));
                    }
                    _ if len > ROOM / 2 => {
                        let at = rand(len as u32) as usize;
                        let mut moved = Runs::EMPTY;
                        moved.extend_from_slice(&ours[at..]);
                        ours.truncate(at);
                        assert_eq!(&moved[..], &model.split_off(at)[..]);
                    }
                    _ => {}
                }
                assert_eq!(&ours[..], &model[..]);
            }
        }
    }

    #[test]
    fn leaves_are_numbered_in_order() {
        let mut leaves = Leaves::default();
        for i in 0..100u32 {
            leaves.push(Leaf::boxed(&[run(i)], i, i + 1));
        }
        assert_eq!(leaves.len(), 100);
        for i in 0..leaves.len() {
            assert_eq!(leaves[i].parent, i as u32);
            assert_eq!(leaves[i].runs[0].id.counter, i as u32);
        }
        leaves[33].next = 7;
        assert_eq!(leaves[33].next, 7);
        assert!(leaves.heap_size() >= leaves.len() * std::mem::size_of::<Leaf>());
    }
}

//! The sequence's storage: a B-tree of runs, counted by three widths.
//!
//! A [`Run`] (see `run.rs`) is a stretch of characters inserted by one replica with consecutive
//! counters. Runs live in [`Leaf`]s of at most [`LEAF_CAP`] runs; internal
//! [`Node`]s hold up to [`NODE_CAP`] children and the [`Width`] of each child, so a position is
//! found by descending from the root in O(log n), and the position of a leaf is found by walking
//! up its parents. How leaves and nodes are laid out in memory is `store.rs`'s business.
//!
//! Leaves are chained by `next` in document order. Runs are never removed (deleted text stays as
//! tombstones), so leaves only split, never merge.
//!
//! # Invariants
//! - Every node's `widths[i]` is the total width of `children[i]`.
//! - `parent` pointers are the inverse of `children`; the root has `parent == NIL`.
//! - All leaves are at the same depth; `height == 1` means the children are leaves.
//! - Only the sole leaf of an empty sequence is empty; every run has `len > 0`.
//! - Following `next` from the first leaf visits leaves in tree order.

use super::content::CharBuf;
use super::run::metric_width;
pub(crate) use super::run::{Metric, Run, Width};
pub(crate) use super::store::LEAF_CAP;
pub(crate) use super::store::NODE_CAP;
use super::store::{Leaf, Leaves, Node};
use super::text_hash::LeafHashes;

/// Runs per leaf when a tree is built from a list (a loaded document): full leaves, the fewest
/// to allocate and write. An edit in a leaf splits it once (into two halves with room to spare),
/// and most of a large document's leaves are never edited after it is loaded.
pub(crate) const LOAD_FILL: usize = LEAF_CAP;
/// No node / no leaf.
pub(crate) const NIL: u32 = u32::MAX;

/// Where a character is: leaf, run index in that leaf, offset in that run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub leaf: u32,
    pub run: usize,
    pub offset: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Tree {
    pub leaves: Leaves,
    pub nodes: Vec<Node>,
    pub root: u32,
    pub first_leaf: u32,
    /// Where the last seek ended: typing goes on where it was, so most seeks start there.
    cache: Option<SeekCache>,
    /// The width of the whole sequence (the sum of the root's widths).
    total: Width,
    /// The hash of each leaf's visible text, computed on demand (see `text_hash.rs`).
    pub hashes: LeafHashes,
}

/// Deepest tree the seek cache keeps a path for (a tree this deep holds over 16^8 leaves).
const MAX_DEPTH: usize = 8;

/// The leaf and run the last [`Tree::seek_cached`] ended in.
///
/// Valid while nothing before `leaf` changes width (any other leaf changing clears the cache)
/// and the tree keeps its shape (a split clears it). `run`/`run_before` are a hint: they stay
/// right while no run before `run` in the leaf changes ([`Tree::runs_changed`] resets them).
#[derive(Clone, Copy, Debug)]
struct SeekCache {
    leaf: u32,
    /// The width of all leaves before `leaf`.
    before: Width,
    /// A run of `leaf`, and the width of the runs before it in `hint_metric`.
    run: usize,
    run_before: u32,
    hint_metric: Metric,
    /// `(node, child index)` from the root down to `leaf`'s parent; `depth` entries are used
    /// (0: no path known).
    path: [(u32, u8); MAX_DEPTH],
    depth: u8,
}

impl Default for Tree {
    fn default() -> Self {
        let mut leaves = Leaves::default();
        leaves.push(Leaf::boxed(&[], 0, NIL));
        Tree {
            leaves,
            nodes: vec![Node::new(&[0], &[Width::default()], NIL, 1)],
            root: 0,
            first_leaf: 0,
            cache: None,
            total: Width::default(),
            hashes: LeafHashes::default(),
        }
    }
}

impl Tree {
    /// Total width of the sequence.
    pub fn total(&self) -> Width {
        self.total
    }

    /// The leaf holding unit `pos` (which must be `< total`), `pos`'s offset inside it, and the
    /// width of everything before that leaf.
    pub fn seek_leaf(&self, pos: u32, metric: Metric) -> Option<(u32, u32, Width)> {
        self.seek_leaf_path(pos, metric, &mut [(0, 0); MAX_DEPTH]).map(|(leaf, rem, before, _)| (leaf, rem, before))
    }

    /// [`seek_leaf`](Self::seek_leaf) that also records the path taken, and returns its depth
    /// (0 if the tree is deeper than `path`).
    fn seek_leaf_path(
        &self,
        mut pos: u32,
        metric: Metric,
        path: &mut [(u32, u8); MAX_DEPTH],
    ) -> Option<(u32, u32, Width, u8)> {
        let mut node = self.root;
        let mut before = Width::default();
        let mut depth = 0usize;
        loop {
            let n = &self.nodes[node as usize];
            let mut child = None;
            for (i, w) in n.widths().iter().enumerate() {
                let m = w.get(metric);
                if pos < m {
                    child = Some(i);
                    break;
                }
                pos -= m;
                before = before.add(*w);
            }
            let i = child?;
            if depth < MAX_DEPTH {
                path[depth] = (node, i as u8);
            }
            depth += 1;
            if n.height == 1 {
                let depth = if depth <= MAX_DEPTH { depth as u8 } else { 0 };
                return Some((n.children()[i], pos, before, depth));
            }
            node = n.children()[i];
        }
    }

    /// The character at unit `pos` in `metric` (`pos < total`). For [`Metric::Utf16`] the offset
    /// returned is in characters and `pos` must not split a surrogate pair (the caller checks).
    pub fn seek(&self, pos: u32, metric: Metric, bufs: &[CharBuf]) -> Option<Cursor> {
        let (leaf, rem, _) = self.seek_leaf(pos, metric)?;
        self.seek_in_leaf(leaf, rem, metric, bufs, 0, 0).map(|(cur, _)| cur)
    }

    /// [`seek`](Self::seek) for edits: starts from where the previous edit was (the same run or
    /// one near it, most of the time) and remembers where it ends.
    pub fn seek_cached(&mut self, pos: u32, metric: Metric, bufs: &[CharBuf]) -> Option<Cursor> {
        if let Some(c) = &self.cache {
            let start = c.before.get(metric);
            // Inside the cached leaf, as far as its recorded width tells (without a path, the
            // scan finds out).
            let inside = |rem: u32| {
                c.depth == 0 || {
                    let (node, i) = c.path[c.depth as usize - 1];
                    rem < self.nodes[node as usize].widths()[i as usize].get(metric)
                }
            };
            if pos >= start && inside(pos - start) {
                let rem = pos - start;
                let hinted = c.hint_metric == metric && c.run < self.leaves[c.leaf as usize].runs.len();
                let (from, from_before) =
                    if hinted { self.hint_start(c.leaf, c.run, c.run_before, rem, metric, bufs) } else { (0, 0) };
                if let Some((cur, run_before)) = self.seek_in_leaf(c.leaf, rem, metric, bufs, from, from_before) {
                    let cache = self.cache.as_mut().expect("checked above");
                    cache.run = cur.run;
                    cache.run_before = run_before;
                    cache.hint_metric = metric;
                    return Some(cur);
                }
            }
        }
        let mut path = [(0, 0); MAX_DEPTH];
        let (leaf, rem, before, depth) = self.seek_leaf_path(pos, metric, &mut path)?;
        let (cur, run_before) = self.seek_in_leaf(leaf, rem, metric, bufs, 0, 0)?;
        self.cache = Some(SeekCache { leaf, before, run: cur.run, run_before, hint_metric: metric, path, depth });
        Some(cur)
    }

    /// Where to start scanning `leaf` for offset `rem`, knowing that run `run` starts at
    /// `run_before`: that run, or an earlier one found by stepping back.
    fn hint_start(
        &self,
        leaf: u32,
        mut run: usize,
        mut run_before: u32,
        rem: u32,
        metric: Metric,
        bufs: &[CharBuf],
    ) -> (usize, u32) {
        let runs = &self.leaves[leaf as usize].runs;
        while rem < run_before && run > 0 {
            run -= 1;
            run_before -= metric_width(&runs[run], metric, bufs);
        }
        if rem < run_before {
            (0, 0)
        } else {
            (run, run_before)
        }
    }

    /// Finds offset `rem` of `leaf`, scanning from run `from` (which starts at offset
    /// `from_before <= rem`). Returns the cursor and the width before its run.
    fn seek_in_leaf(
        &self,
        leaf: u32,
        rem: u32,
        metric: Metric,
        bufs: &[CharBuf],
        from: usize,
        from_before: u32,
    ) -> Option<(Cursor, u32)> {
        let runs = &self.leaves[leaf as usize].runs;
        // One loop per metric, so the loop tests no metric.
        let (i, rem, before, w) = match metric {
            Metric::All => scan_runs(runs, from, rem, from_before, |r| r.len),
            Metric::Chars => scan_runs(runs, from, rem, from_before, |r| if r.deleted { 0 } else { r.len }),
            Metric::Utf16 => scan_runs(runs, from, rem, from_before, |r| r.width(bufs).utf16),
        }?;
        let run = &runs[i];
        let offset = if metric == Metric::Utf16 && w != run.len {
            utf16_to_char_offset(bufs[run.id.replica as usize].slice(run.id.counter, run.len), rem)
        } else {
            rem
        };
        Some((Cursor { leaf, run: i, offset }, before))
    }

    /// Tells the seek cache that run `from` of `leaf` grew by deleted characters taken from
    /// the run after it: only positions counting deleted characters moved.
    pub fn hidden_moved(&mut self, leaf: u32, from: usize) {
        if self.cache.is_some_and(|c| c.hint_metric == Metric::All) {
            self.runs_changed(leaf, from);
        }
    }

    /// Tells the seek cache that runs `from..` of `leaf` were inserted, removed or resized.
    pub fn runs_changed(&mut self, leaf: u32, from: usize) {
        self.hashes.forget(leaf);
        if let Some(c) = self.cache.as_mut() {
            if c.leaf == leaf && from < c.run {
                c.run = 0;
                c.run_before = 0;
            }
        }
    }

    /// The width of everything before `leaf`.
    pub fn leaf_start(&self, leaf: u32) -> Width {
        let mut acc = Width::default();
        let mut child = leaf;
        let mut node = self.leaves[leaf as usize].parent;
        while node != NIL {
            let n = &self.nodes[node as usize];
            for (c, w) in n.children().iter().zip(n.widths()) {
                if *c == child {
                    break;
                }
                acc = acc.add(*w);
            }
            child = node;
            node = n.parent;
        }
        acc
    }

    /// The width of everything before the character at `cur`.
    pub fn position(&self, cur: Cursor, bufs: &[CharBuf]) -> Width {
        let mut acc = self.leaf_start(cur.leaf);
        let runs = &self.leaves[cur.leaf as usize].runs;
        for run in &runs[..cur.run] {
            acc = acc.add(run.width(bufs));
        }
        if cur.offset > 0 {
            let run = &runs[cur.run];
            let mut head = *run;
            head.len = cur.offset;
            acc = acc.add(head.width(bufs));
        }
        acc
    }

    pub fn leaf_width(&self, leaf: u32, bufs: &[CharBuf]) -> Width {
        self.leaves[leaf as usize].runs.iter().fold(Width::default(), |a, r| a.add(r.width(bufs)))
    }

    fn child_index(&self, node: u32, child: u32) -> usize {
        let n = &self.nodes[node as usize];
        n.children().iter().position(|c| *c == child).unwrap_or(usize::MAX)
    }

    /// Propagates a change of `leaf`'s width from `old` to `new` up to the root.
    #[inline]
    pub fn update_width(&mut self, leaf: u32, old: Width, new: Width) {
        self.hashes.forget(leaf);
        if old == new {
            return;
        }
        self.total = self.total.sub(old).add(new);
        match &self.cache {
            // The usual case: the leaf the last seek ended in, with its path known.
            Some(c) if c.leaf == leaf && c.depth > 0 => {
                for &(node, i) in &c.path[..c.depth as usize] {
                    let w = &mut self.nodes[node as usize].widths_mut()[i as usize];
                    *w = w.sub(old).add(new);
                }
            }
            _ => self.update_width_up(leaf, old, new),
        }
    }

    /// [`update_width`](Self::update_width) without a cached path: walks up from `leaf`.
    #[inline(never)]
    fn update_width_up(&mut self, leaf: u32, old: Width, new: Width) {
        // Walk up, and make `leaf` the cached one (with its path and start): the next change is
        // most likely in the same leaf again.
        let mut path = [(0u32, 0u8); MAX_DEPTH];
        let mut depth = 0;
        let mut before = Width::default();
        let mut child = leaf;
        let mut node = self.leaves[leaf as usize].parent;
        while node != NIL {
            let i = self.child_index(node, child);
            let n = &mut self.nodes[node as usize];
            before = n.widths()[..i].iter().fold(before, |a, w| a.add(*w));
            let w = &mut n.widths_mut()[i];
            *w = w.sub(old).add(new);
            if depth < MAX_DEPTH {
                path[depth] = (node, i as u8);
            }
            depth += 1;
            child = node;
            node = n.parent;
        }
        self.cache = (depth <= MAX_DEPTH).then(|| {
            path[..depth].reverse();
            SeekCache { leaf, before, run: 0, run_before: 0, hint_metric: Metric::Chars, path, depth: depth as u8 }
        });
    }

    /// The width `leaf` has as recorded in its parent.
    pub fn recorded_width(&self, leaf: u32) -> Width {
        let parent = self.leaves[leaf as usize].parent;
        let i = self.child_index(parent, leaf);
        self.nodes[parent as usize].widths()[i]
    }

    /// Splits `leaf` in two if it is over capacity. Returns the new right leaf and the runs moved
    /// there, so the caller can re-point their ids.
    pub fn split_leaf_if_full(&mut self, leaf: u32, bufs: &[CharBuf]) -> Option<u32> {
        if self.leaves[leaf as usize].runs.len() <= LEAF_CAP {
            return None;
        }
        self.cache = None;
        self.hashes.forget(leaf);
        let old_recorded = self.recorded_width(leaf);
        let half = self.leaves[leaf as usize].runs.len() / 2;
        let new_leaf = self.leaves.len() as u32;
        let old = &mut self.leaves[leaf as usize];
        let moved = Leaf::boxed(&old.runs[half..], old.parent, old.next);
        old.runs.truncate(half);
        let parent = old.parent;
        self.leaves.push(moved);
        self.leaves[leaf as usize].next = new_leaf;
        let left_w = self.leaf_width(leaf, bufs);
        let right_w = old_recorded.sub(left_w);
        let i = self.child_index(parent, leaf);
        let p = &mut self.nodes[parent as usize];
        p.widths_mut()[i] = left_w;
        p.insert(i + 1, new_leaf, right_w);
        self.split_node_if_full(parent);
        Some(new_leaf)
    }

    fn split_node_if_full(&mut self, node: u32) {
        if self.nodes[node as usize].len() <= NODE_CAP {
            return;
        }
        let half = self.nodes[node as usize].len() / 2;
        let moved = self.nodes[node as usize].split_off(half);
        let height = moved.height;
        let new_node = self.nodes.len() as u32;
        for c in moved.children() {
            if height == 1 {
                self.leaves[*c as usize].parent = new_node;
            } else {
                self.nodes[*c as usize].parent = new_node;
            }
        }
        let left_w = self.nodes[node as usize].total();
        let right_w = moved.total();
        let parent = moved.parent;
        self.nodes.push(moved);
        if parent == NIL {
            let new_root = self.nodes.len() as u32;
            self.nodes.push(Node::new(&[node, new_node], &[left_w, right_w], NIL, height + 1));
            self.nodes[node as usize].parent = new_root;
            self.nodes[new_node as usize].parent = new_root;
            self.root = new_root;
        } else {
            let i = self.child_index(parent, node);
            let p = &mut self.nodes[parent as usize];
            p.widths_mut()[i] = left_w;
            p.insert(i + 1, new_node, right_w);
            self.split_node_if_full(parent);
        }
    }

    /// The character after `cur` (across leaves), if any.
    #[inline]
    pub fn next_char(&self, cur: Cursor) -> Option<Cursor> {
        let runs = &self.leaves[cur.leaf as usize].runs;
        if cur.offset + 1 < runs[cur.run].len {
            return Some(Cursor { offset: cur.offset + 1, ..cur });
        }
        self.next_run(cur.leaf, cur.run)
    }

    /// The start of the run after run `run` of `leaf`, if any.
    #[inline]
    pub fn next_run(&self, leaf: u32, run: usize) -> Option<Cursor> {
        if run + 1 < self.leaves[leaf as usize].runs.len() {
            return Some(Cursor { leaf, run: run + 1, offset: 0 });
        }
        let mut l = self.leaves[leaf as usize].next;
        while l != NIL {
            if !self.leaves[l as usize].runs.is_empty() {
                return Some(Cursor { leaf: l, run: 0, offset: 0 });
            }
            l = self.leaves[l as usize].next;
        }
        None
    }

    /// Heap bytes used, for memory reports.
    pub fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>() + self.leaves.heap_size()
    }
}

impl Tree {
    /// A tree holding `runs` in order, built bottom-up in O(n): leaves full (see
    /// [`LOAD_FILL`]), nodes half full. Run `i` goes into leaf `i / LOAD_FILL`.
    pub fn from_runs(runs: Vec<Run>, bufs: &[CharBuf]) -> Tree {
        if runs.is_empty() {
            return Tree::default();
        }
        let per_leaf = LOAD_FILL;
        let mut leaves = Leaves::default();
        // (child, width) of the level being grouped; leaves first, their widths summed from the
        // runs as they are copied in (not read back from the leaves).
        let mut level: Vec<(u32, Width)> = Vec::with_capacity(runs.len().div_ceil(per_leaf));
        for (i, chunk) in runs.chunks(per_leaf).enumerate() {
            leaves.push(Leaf::boxed(chunk, NIL, i as u32 + 1));
            level.push((i as u32, chunk.iter().fold(Width::default(), |a, r| a.add(r.width(bufs)))));
        }
        let last = leaves.len() - 1;
        leaves[last].next = NIL;
        let mut tree = Tree {
            leaves,
            nodes: Vec::new(),
            root: 0,
            first_leaf: 0,
            cache: None,
            total: Width::default(),
            hashes: LeafHashes::default(),
        };
        let mut height = 1u8;
        loop {
            let per_node = if level.len() <= NODE_CAP { NODE_CAP } else { NODE_CAP / 2 };
            let mut next_level = Vec::with_capacity(level.len().div_ceil(per_node));
            for group in level.chunks(per_node) {
                let id = tree.nodes.len() as u32;
                for (child, _) in group {
                    if height == 1 {
                        tree.leaves[*child as usize].parent = id;
                    } else {
                        tree.nodes[*child as usize].parent = id;
                    }
                }
                let total = group.iter().fold(Width::default(), |a, (_, w)| a.add(*w));
                let children: Vec<u32> = group.iter().map(|(c, _)| *c).collect();
                let widths: Vec<Width> = group.iter().map(|(_, w)| *w).collect();
                tree.nodes.push(Node::new(&children, &widths, NIL, height));
                next_level.push((id, total));
            }
            if next_level.len() == 1 {
                tree.root = next_level[0].0;
                tree.total = next_level[0].1;
                return tree;
            }
            level = next_level;
            height += 1;
        }
    }
}

impl Tree {
    /// Panics unless the invariants in the module docs hold.
    pub fn check_invariants(&self, bufs: &[CharBuf]) {
        let mut leaves_in_order = Vec::new();
        self.check_node(self.root, NIL, bufs, &mut leaves_in_order);
        let mut chained = Vec::new();
        let mut l = self.first_leaf;
        while l != NIL {
            chained.push(l);
            l = self.leaves[l as usize].next;
        }
        assert_eq!(chained, leaves_in_order, "leaf chain follows tree order");
        let root = &self.nodes[self.root as usize];
        assert_eq!(self.total, root.total(), "total width");
        if let Some(c) = self.cache {
            assert_eq!(c.before, self.leaf_start(c.leaf), "seek cache: width before its leaf");
            let runs = &self.leaves[c.leaf as usize].runs;
            if c.run < runs.len() {
                let before: u32 = runs[..c.run].iter().map(|r| metric_width(r, c.hint_metric, bufs)).sum();
                assert_eq!(c.run_before, before, "seek cache: width before its run");
            }
            let mut child = c.leaf;
            let mut node = self.leaves[c.leaf as usize].parent;
            for &(n, i) in c.path[..c.depth as usize].iter().rev() {
                assert_eq!((n, self.nodes[n as usize].children()[i as usize]), (node, child), "seek cache: path");
                child = node;
                node = self.nodes[node as usize].parent;
            }
        }
        for &l in &leaves_in_order {
            let runs = &self.leaves[l as usize].runs;
            assert!(runs.len() <= LEAF_CAP, "leaf over capacity");
            assert!(runs.iter().all(|r| r.len > 0), "empty run");
            assert!(!runs.is_empty() || leaves_in_order.len() == 1, "only a lone leaf may be empty");
        }
    }

    fn check_node(&self, node: u32, parent: u32, bufs: &[CharBuf], leaves: &mut Vec<u32>) -> (Width, u8) {
        let n = &self.nodes[node as usize];
        assert_eq!(n.parent, parent, "node parent pointer");
        assert!(n.len() > 0 && n.len() <= NODE_CAP, "node fill");
        let mut total = Width::default();
        for (c, w) in n.children().iter().zip(n.widths()) {
            let actual = if n.height == 1 {
                assert_eq!(self.leaves[*c as usize].parent, node, "leaf parent pointer");
                leaves.push(*c);
                self.leaf_width(*c, bufs)
            } else {
                let (w, h) = self.check_node(*c, node, bufs, leaves);
                assert_eq!(h + 1, n.height, "all leaves at one depth");
                w
            };
            assert_eq!(actual, *w, "recorded width matches the child");
            total = total.add(actual);
        }
        (total, n.height)
    }
}

/// Scans `runs` from run `from` (which starts at `from_before <= rem`) for the one holding unit
/// `rem` when each run is `width` wide: its index, the offset inside it, the width before it
/// and its own width.
#[inline(always)]
fn scan_runs(
    runs: &[Run],
    from: usize,
    rem: u32,
    from_before: u32,
    width: impl Fn(&Run) -> u32,
) -> Option<(usize, u32, u32, u32)> {
    let mut rem = rem - from_before;
    let mut before = from_before;
    for (i, run) in runs.iter().enumerate().skip(from) {
        let w = width(run);
        if rem < w {
            return Some((i, rem, before, w));
        }
        rem -= w;
        before += w;
    }
    None
}

/// The character offset of UTF-16 unit `units` inside `s` (which must not split a pair).
pub(crate) fn utf16_to_char_offset(s: &str, units: u32) -> u32 {
    let mut u = 0;
    for (i, c) in s.chars().enumerate() {
        if u >= units {
            return i as u32;
        }
        u += c.len_utf16() as u32;
    }
    s.chars().count() as u32
}

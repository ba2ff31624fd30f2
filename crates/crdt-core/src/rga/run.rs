//! A run: a stretch of characters one replica inserted with consecutive counters, where each
//! character's left origin is the one before it and all share one right origin (what one person
//! typing produces), stored as one entry of the tree in `node.rs`; and the widths it is counted
//! by.

use super::content::CharBuf;
use super::id::Id;

/// A run of characters; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// Id of the first character; character `k` has id `id.plus(k)`.
    pub id: Id,
    pub len: u32,
    /// Left origin of the first character ([`Id::NONE`] = start of document).
    pub origin_left: Id,
    /// Right origin of every character ([`Id::NONE`] = end of document).
    pub origin_right: Id,
    pub deleted: bool,
}

impl Run {
    /// The last character's id.
    pub fn last(&self) -> Id {
        self.id.plus(self.len - 1)
    }

    pub fn contains(&self, id: Id) -> bool {
        id.replica == self.id.replica && id.counter >= self.id.counter && id.counter < self.id.counter + self.len
    }

    /// Splits off and returns the part from offset `at` on; `self` keeps `0..at`.
    pub fn split(&mut self, at: u32) -> Run {
        debug_assert!(at > 0 && at < self.len);
        let right = Run {
            id: self.id.plus(at),
            len: self.len - at,
            origin_left: self.id.plus(at - 1),
            origin_right: self.origin_right,
            deleted: self.deleted,
        };
        self.len = at;
        right
    }

    /// True if `next` continues this run exactly (so the two can be stored as one).
    pub fn can_append(&self, next: &Run) -> bool {
        next.id.replica == self.id.replica
            && next.id.counter == self.id.counter + self.len
            && next.origin_left == self.last()
            && next.origin_right == self.origin_right
            && next.deleted == self.deleted
    }

    pub fn width(&self, bufs: &[CharBuf]) -> Width {
        if self.deleted {
            Width { all: self.len, chars: 0, utf16: 0 }
        } else {
            let utf16 = bufs[self.id.replica as usize].utf16_len(self.id.counter, self.len);
            Width { all: self.len, chars: self.len, utf16 }
        }
    }
}

/// Which count a position is measured in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Metric {
    /// Every character ever inserted, deleted ones included.
    All,
    /// Visible characters (Unicode scalar values).
    Chars,
    /// Visible UTF-16 code units.
    Utf16,
}

/// The size of a subtree in each [`Metric`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Width {
    pub all: u32,
    pub chars: u32,
    pub utf16: u32,
}

impl Width {
    pub fn get(&self, metric: Metric) -> u32 {
        match metric {
            Metric::All => self.all,
            Metric::Chars => self.chars,
            Metric::Utf16 => self.utf16,
        }
    }

    /// Wrapping arithmetic: a width is updated by `- old + new`, and the true result always fits.
    pub fn add(self, o: Width) -> Width {
        Width {
            all: self.all.wrapping_add(o.all),
            chars: self.chars.wrapping_add(o.chars),
            utf16: self.utf16.wrapping_add(o.utf16),
        }
    }

    pub fn sub(self, o: Width) -> Width {
        Width {
            all: self.all.wrapping_sub(o.all),
            chars: self.chars.wrapping_sub(o.chars),
            utf16: self.utf16.wrapping_sub(o.utf16),
        }
    }
}

/// `run`'s width in `metric`.
pub(crate) fn metric_width(run: &Run, metric: Metric, bufs: &[CharBuf]) -> u32 {
    match metric {
        Metric::All => run.len,
        Metric::Chars if run.deleted => 0,
        Metric::Chars => run.len,
        Metric::Utf16 => run.width(bufs).utf16,
    }
}

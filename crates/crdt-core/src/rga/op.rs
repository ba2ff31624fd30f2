//! The operations an [`Rga`](super::Rga) sends and receives, and the edits it reports back.

use serde::{Deserialize, Serialize};

use crate::{InlineVec, OpId, SmolStr};

/// One text operation, as sent between replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RgaOp {
    /// Insert `text` between `origin_left` and `origin_right`. Character `k` of `text` gets id
    /// `(id.replica, id.counter + k)` and, for `k > 0`, the left origin `(id.replica,
    /// id.counter + k - 1)`. All characters share `origin_right`.
    Insert {
        /// Id of the first character.
        id: OpId,
        /// The character immediately left of the insertion when it was made (`None` = start).
        origin_left: Option<OpId>,
        /// The item immediately right of it, deleted or not (`None` = end).
        origin_right: Option<OpId>,
        /// The inserted text; never empty.
        text: SmolStr,
    },
    /// Delete the characters with these ids (deleting twice is harmless).
    Delete {
        /// Runs of ids: `len` consecutive counters of one replica from `start`.
        ranges: InlineVec<IdRange>,
    },
}

/// `len` consecutive ids of one replica, from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// The first id.
    pub start: OpId,
    /// How many.
    pub len: u64,
}

/// What a local insert did, without copying its text: [`to_op`](Self::to_op) makes the
/// operation to send to other replicas when the caller needs one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalInsert<'t> {
    /// Id of the first inserted character.
    pub id: OpId,
    /// The character just left of the insertion (`None` = start).
    pub origin_left: Option<OpId>,
    /// The item just right of it, deleted or not (`None` = end).
    pub origin_right: Option<OpId>,
    /// The inserted text.
    pub text: &'t str,
}

impl LocalInsert<'_> {
    /// The operation other replicas apply to make the same insert.
    #[inline]
    pub fn to_op(&self) -> RgaOp {
        RgaOp::Insert {
            id: self.id,
            origin_left: self.origin_left,
            origin_right: self.origin_right,
            // `new_inline` is inlined here: a keystroke's text is copied without a call into
            // `SmolStr::new` (which also looks for a run of whitespace it could share).
            text: if self.text.len() <= SmolStr::INLINE_CAP {
                SmolStr::new_inline(self.text)
            } else {
                SmolStr::new(self.text)
            },
        }
    }
}

/// What a local delete did: the id ranges it deleted, in document order (none for an empty
/// delete). The first range is kept inline: most deletes touch one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalDelete {
    first: Option<IdRange>,
    rest: Vec<IdRange>,
}

impl LocalDelete {
    /// True if nothing was deleted.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The deleted id ranges.
    pub fn ranges(&self) -> impl Iterator<Item = &IdRange> {
        self.first.iter().chain(&self.rest)
    }

    /// The operation other replicas apply to make the same delete (`None` if nothing was
    /// deleted).
    #[inline]
    pub fn into_op(self) -> Option<RgaOp> {
        let first = self.first?;
        let ranges = if self.rest.is_empty() {
            InlineVec::one(first)
        } else {
            let mut ranges = Vec::with_capacity(1 + self.rest.len());
            ranges.push(first);
            ranges.extend(self.rest);
            InlineVec::from(ranges)
        };
        Some(RgaOp::Delete { ranges })
    }

    /// Adds `len` ids from `start`, joining the last range when they continue it.
    pub(super) fn push(&mut self, start: OpId, len: u64) {
        let Some(first) = self.first.as_mut() else {
            self.first = Some(IdRange { start, len });
            return;
        };
        let last = self.rest.last_mut().unwrap_or(first);
        if last.start.replica == start.replica && last.start.counter + last.len == start.counter {
            last.len += len;
        } else {
            self.rest.push(IdRange { start, len });
        }
    }
}

/// A change to the visible text, in the order it happened, for updating an editor in place.
///
/// Positions are those of the text just before this delta is applied, in characters and in
/// UTF-16 code units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextDelta {
    /// `text` appeared at `pos`.
    Insert {
        /// Position in characters.
        pos: usize,
        /// Position in UTF-16 code units.
        pos_utf16: usize,
        /// What appeared.
        text: String,
    },
    /// `len` characters (`len_utf16` units) at `pos` went away.
    Delete {
        /// Position in characters.
        pos: usize,
        /// Position in UTF-16 code units.
        pos_utf16: usize,
        /// Length in characters.
        len: usize,
        /// Length in UTF-16 code units.
        len_utf16: usize,
    },
}

/// A position in the text that moves with the text: it names the character just before it.
///
/// A cursor placed after character `X` stays after `X` whatever is inserted or deleted around
/// it; if `X` itself is deleted, the cursor stays where `X` was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Anchor {
    /// The character before the position; `None` means the start of the text.
    pub after: Option<OpId>,
}

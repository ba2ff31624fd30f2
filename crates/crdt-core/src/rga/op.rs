//! The operations an [`Rga`](super::Rga) sends and receives, and the edits it reports back.

use serde::{Deserialize, Serialize};

use crate::OpId;

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
        text: String,
    },
    /// Delete the characters with these ids (deleting twice is harmless).
    Delete {
        /// Runs of ids: `len` consecutive counters of one replica from `start`.
        ranges: Vec<IdRange>,
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

//! Local edits: each is applied to the document at once and queued for the server (and for
//! this browser's storage).

use super::*;

/// The largest insert made as one change, in bytes of UTF-8: a paste above it becomes several
/// changes, so that each frame stays well below the server's message limit (1 MiB by default).
pub const MAX_INSERT_BYTES: usize = 256 << 10;

/// The longest delete made as one change: a delete of more UTF-16 units becomes deletes of at
/// most this many characters each. A delete's operation lists one range per run of consecutive
/// ids, at most one per character and a few bytes each, so even text typed by many people in
/// turns fits a frame.
pub const MAX_DELETE_UNITS: usize = 64 << 10;

/// `text` cut into consecutive pieces of at most `max` bytes, each ending on a character
/// boundary (`max` is at least 4, the longest character).
fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

impl Session {
    /// Replaces the UTF-16 range `from..to` of the body by `text`, as one editor change
    /// reports it. Returns the change made: one (a delete, then an insert, as the range and
    /// `text` ask), or none if the range is empty and so is `text`.
    pub fn replace(&mut self, from: usize, to: usize, text: &str) -> Result<Vec<Change>, EditError> {
        let mut made = Vec::new();
        self.replace_into(from, to, text, Some(&mut made))?;
        Ok(made)
    }

    /// [`Session::replace`] without a copy of the changes made: a page that saves sends them
    /// to other tabs as stored records, so a keystroke needs nothing back.
    pub fn edit(&mut self, from: usize, to: usize, text: &str) -> Result<(), EditError> {
        self.replace_into(from, to, text, None)
    }

    pub(super) fn replace_into(
        &mut self,
        from: usize,
        to: usize,
        text: &str,
        made: Option<&mut Vec<Change>>,
    ) -> Result<(), EditError> {
        if to < from {
            return Err(EditError::OutOfBounds { pos: from, len: to });
        }
        if text.len() > MAX_INSERT_BYTES || to - from > MAX_DELETE_UNITS {
            return self.replace_in_pieces(from, to, text, made);
        }
        // One change, checked whole before anything is applied: a failed edit leaves nothing.
        if let Some(change) = self.doc.replace_text_utf16(BODY, from, to - from, text)? {
            if let Some(made) = made {
                made.push(change.clone());
            }
            self.record_local(change);
        }
        Ok(())
    }

    /// A large edit (a paste of megabytes, a delete of a long selection) as several changes,
    /// each small enough for one frame: deletes of at most [`MAX_DELETE_UNITS`] characters,
    /// then inserts of at most [`MAX_INSERT_BYTES`] bytes, one after the other. Each is its
    /// own change with its own acknowledgement; others may see the edit arrive in pieces, and
    /// a refusal (a server with a lower size limit) may keep the first pieces and refuse the
    /// rest. The range is checked before anything is applied, so a failed edit leaves nothing.
    fn replace_in_pieces(
        &mut self,
        from: usize,
        to: usize,
        text: &str,
        mut made: Option<&mut Vec<Change>>,
    ) -> Result<(), EditError> {
        let (start, end) = match self.doc.rga(BODY) {
            Some(rga) => (rga.utf16_to_char(from)?, rga.utf16_to_char(to)?),
            None if to == 0 => (0, 0),
            None => return Err(EditError::OutOfBounds { pos: to, len: 0 }),
        };
        let mut changes = Vec::new();
        let mut left = end - start;
        while left > 0 {
            let len = left.min(MAX_DELETE_UNITS);
            changes.extend(self.doc.delete_text(BODY, start, len)?);
            left -= len;
        }
        let mut pos = start;
        for piece in pieces(text, MAX_INSERT_BYTES) {
            changes.push(self.doc.insert_text(BODY, pos, piece)?);
            pos += piece.chars().count();
        }
        for change in changes {
            if let Some(made) = made.as_deref_mut() {
                made.push(change.clone());
            }
            self.record_local(change);
        }
        Ok(())
    }

    /// How many more characters the body may take in before the document reaches the size
    /// limit the page knows (`DEFAULT_MAX_TEXT_CHARS` unless set): deleted characters count,
    /// as the server counts them. The page refuses an edit inserting more, before applying it.
    pub fn text_room(&self) -> u64 {
        self.max_text_chars.saturating_sub(self.doc.text_chars())
    }

    /// The size limit [`Session::text_room`] checks against, in characters.
    pub fn max_text_chars(&self) -> u64 {
        self.max_text_chars
    }

    /// Sets the size limit [`Session::text_room`] checks against (a page learns it from its
    /// server's configuration; the default is the server's default).
    pub fn set_max_text_chars(&mut self, max: u64) {
        self.max_text_chars = max;
    }

    /// Records a change made through the document's own edit methods: pending for the server,
    /// unsaved for storage.
    pub(super) fn record_local(&mut self, change: Change) {
        self.pending_seqs.entry(change.replica).or_default().insert(change.seq);
        self.pending.push_back(change.clone());
        self.unsaved.push(change);
    }

    /// [`Session::record_local`], returning the change.
    pub(super) fn local(&mut self, change: Change) -> Change {
        self.record_local(change.clone());
        change
    }

    /// Sets the title.
    pub fn set_title(&mut self, title: &str) -> Change {
        let change = self.doc.set_register(TITLE, title.to_owned());
        self.local(change)
    }

    /// Adds a tag.
    pub fn add_tag(&mut self, tag: &str) -> Change {
        let change = self.doc.add_to_set(TAGS, tag.to_owned());
        self.local(change)
    }

    /// Removes a tag (as this replica has seen it); `None` if it is not there.
    pub fn remove_tag(&mut self, tag: &str) -> Result<Option<Change>, EditError> {
        Ok(self.doc.remove_from_set(TAGS, tag)?.map(|change| self.local(change)))
    }

    /// Adds one like (`+1`) or takes one back (`-1`).
    pub fn like(&mut self, liked: bool) -> Change {
        let change = if liked { self.doc.increment(LIKES, 1) } else { self.doc.decrement(LIKES, 1) };
        self.local(change)
    }

    /// Counts one view.
    pub fn add_view(&mut self) -> Change {
        let change = self.doc.increment_gcounter(VIEWS, 1);
        self.local(change)
    }
}

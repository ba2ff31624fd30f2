//! Local edits: each is applied to the document at once and queued for the server (and for
//! this browser's storage).

use super::*;

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
        // One change, checked whole before anything is applied: a failed edit leaves nothing.
        if let Some(change) = self.doc.replace_text_utf16(BODY, from, to - from, text)? {
            if let Some(made) = made {
                made.push(change.clone());
            }
            self.record_local(change);
        }
        Ok(())
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

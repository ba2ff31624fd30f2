//! [`CharBuf`]: every character one replica ever inserted into one `Rga`, in counter order.
//!
//! Runs in the sequence refer to their text by `(replica, counter, len)`, so the tree itself holds
//! no strings. Deleted text stays here: it is part of the history that a snapshot carries.
//!
//! # Invariants
//! - `marks[i]` is the byte offset of character `i * MARK_EVERY`; while the text is ASCII there are
//!   no marks (character `c` is byte `c`).
//! - `ascii` is true iff `text` is ASCII; `astral` is true iff `text` has a character outside the
//!   Basic Multilingual Plane (two UTF-16 units).

use super::text_hash::{Hashed, PrefixHashes};

/// One checkpoint per this many characters keeps char → byte lookups to a short scan.
const MARK_EVERY: u32 = 64;

/// Characters in `s`, without a call for the usual keystroke (a one-byte string is one ASCII
/// character).
#[inline]
pub(crate) fn char_count(s: &str) -> usize {
    if s.len() == 1 {
        1
    } else {
        s.chars().count()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CharBuf {
    text: String,
    chars: u32,
    marks: Vec<u32>,
    ascii: bool,
    astral: bool,
    /// Prefix hashes of `text`, for hashing long runs (`Rga::text_hash`); filled on demand.
    prefixes: PrefixHashes,
}

impl Default for CharBuf {
    fn default() -> Self {
        CharBuf::from_string(String::new())
    }
}

impl CharBuf {
    /// A buffer holding `text`, taken over without a copy: one pass sets the flags and marks.
    pub fn from_string(text: String) -> CharBuf {
        let bytes = text.as_bytes();
        if bytes.is_ascii() {
            let chars = bytes.len() as u32;
            return CharBuf {
                chars,
                text,
                marks: Vec::new(),
                ascii: true,
                astral: false,
                prefixes: Default::default(),
            };
        }
        let block = MARK_EVERY as usize;
        let mut marks = Vec::with_capacity(bytes.len() / block + 1);
        let (mut chars, mut astral, mut at) = (0u32, false, 0usize);
        while at < bytes.len() {
            let end = (at + block).min(bytes.len());
            if end - at == block && bytes[at..end].is_ascii() {
                // `block` one-byte characters: exactly one of them starts a mark.
                let next_mark = chars.next_multiple_of(MARK_EVERY);
                marks.push((at + (next_mark - chars) as usize) as u32);
                chars += MARK_EVERY;
            } else {
                // A character starts at every byte that is not a continuation byte.
                for (i, &b) in bytes[at..end].iter().enumerate() {
                    if b & 0xC0 != 0x80 {
                        if chars.is_multiple_of(MARK_EVERY) {
                            marks.push((at + i) as u32);
                        }
                        chars += 1;
                        astral |= b >= 0xF0;
                    }
                }
            }
            at = end;
        }
        CharBuf { text, chars, marks, ascii: false, astral, prefixes: Default::default() }
    }

    /// Number of characters held (the next counter of this replica).
    pub fn chars(&self) -> u32 {
        self.chars
    }

    pub fn push_str(&mut self, s: &str) {
        if let [b] = s.as_bytes() {
            if *b < 0x80 && self.ascii {
                // One typed ASCII character, the most common push by far.
                self.text.push(*b as char);
                self.chars += 1;
                return;
            }
        }
        if s.is_ascii() && self.ascii {
            // Character `c` is byte `c`: no marks needed until the first non-ASCII character.
            self.text.push_str(s);
            self.chars += s.len() as u32;
        } else if s.is_ascii() {
            // Inside an ASCII append, character `c` sits at byte `len_before + (c - start)`.
            let start = self.chars;
            let len_before = self.text.len() as u32;
            let end = start + s.len() as u32;
            let mut next_mark = start.div_ceil(MARK_EVERY) * MARK_EVERY;
            while next_mark < end {
                self.marks.push(len_before + (next_mark - start));
                next_mark += MARK_EVERY;
            }
            self.text.push_str(s);
            self.chars = end;
        } else {
            if self.ascii {
                // Leaving ASCII: the marks of everything so far, where byte = character.
                self.marks.extend((0..self.chars.div_ceil(MARK_EVERY)).map(|m| m * MARK_EVERY));
            }
            self.ascii = false;
            // A character starts at every byte that is not a continuation byte (0b10xx_xxxx);
            // one starting with 0b1111_0xxx is outside the BMP.
            let base = self.text.len() as u32;
            let mut chars = self.chars;
            for (i, &b) in s.as_bytes().iter().enumerate() {
                if b & 0xC0 != 0x80 {
                    if chars.is_multiple_of(MARK_EVERY) {
                        self.marks.push(base + i as u32);
                    }
                    chars += 1;
                    self.astral |= b >= 0xF0;
                }
            }
            self.text.push_str(s);
            self.chars = chars;
        }
    }

    /// Byte offset of character `c` (`c == chars()` gives the end).
    #[inline]
    fn byte_of(&self, c: u32) -> usize {
        if self.ascii {
            return c as usize;
        }
        if c >= self.chars {
            return self.text.len();
        }
        let mark = (c / MARK_EVERY) as usize;
        let start = self.marks[mark] as usize;
        let skip = (c % MARK_EVERY) as usize;
        // A block whose characters are all one byte (most of them, in most texts): no scan.
        let block_end = self.marks.get(mark + 1).map_or(self.text.len(), |m| *m as usize);
        let block_chars = MARK_EVERY.min(self.chars - mark as u32 * MARK_EVERY) as usize;
        if block_end - start == block_chars {
            return start + skip;
        }
        self.scan_from(start, skip)
    }

    /// Byte offset of the character `skip` characters after the one at byte `start`.
    #[inline(never)]
    fn scan_from(&self, start: usize, skip: usize) -> usize {
        match self.text[start..].char_indices().nth(skip) {
            Some((i, _)) => start + i,
            None => self.text.len(),
        }
    }

    /// True while every character is one byte.
    pub fn is_ascii(&self) -> bool {
        self.ascii
    }

    /// Bytes from character `from` to the end.
    pub fn byte_len(&self, from: u32) -> usize {
        self.text.len() - self.byte_of(from)
    }

    /// Makes room for `bytes` more bytes of text.
    pub fn reserve(&mut self, bytes: usize) {
        self.text.reserve(bytes);
    }

    /// The bytes of characters `start .. start + len`.
    #[inline]
    pub fn slice_bytes(&self, start: u32, len: u32) -> &[u8] {
        &self.text.as_bytes()[self.byte_of(start)..self.byte_of(start + len)]
    }

    /// The hash of the bytes of characters `start .. start + len`, in time independent of
    /// `len` (see [`PrefixHashes`]).
    #[inline]
    pub fn slice_hashed(&self, start: u32, len: u32) -> Hashed {
        self.prefixes.slice(self.text.as_bytes(), self.byte_of(start), self.byte_of(start + len))
    }

    /// The text of characters `start .. start + len`.
    pub fn slice(&self, start: u32, len: u32) -> &str {
        let a = self.byte_of(start);
        let b = self.byte_of(start + len);
        &self.text[a..b]
    }

    /// Number of UTF-16 code units in characters `start .. start + len`.
    #[inline]
    pub fn utf16_len(&self, start: u32, len: u32) -> u32 {
        if !self.astral {
            return len;
        }
        self.utf16_len_astral(start, len)
    }

    /// A character outside the BMP is two UTF-16 units and starts with a byte `0xF0..=0xF4`;
    /// every other character is one unit: so the units are the characters plus those bytes.
    fn utf16_len_astral(&self, start: u32, len: u32) -> u32 {
        len + self.slice(start, len).bytes().filter(|b| *b >= 0xF0).count() as u32
    }

    /// Heap bytes used, for memory reports.
    pub fn heap_size(&self) -> usize {
        self.text.capacity() + self.marks.capacity() * 4 + self.prefixes.heap_size()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn check_invariants(&self) {
        assert_eq!(self.text.chars().count() as u32, self.chars, "char count");
        assert_eq!(self.ascii, self.text.is_ascii(), "ascii flag");
        assert_eq!(self.astral, self.text.chars().any(|c| c as u32 > 0xFFFF), "astral flag");
        for (i, m) in self.marks.iter().enumerate() {
            let expect = self.text.char_indices().nth(i * MARK_EVERY as usize).map(|(b, _)| b);
            assert_eq!(Some(*m as usize), expect, "mark {i}");
        }
        let marks = if self.ascii { 0 } else { self.chars.div_ceil(MARK_EVERY) };
        assert_eq!(self.marks.len() as u32, marks, "mark count (none while ASCII)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_appends_keep_marks_right() {
        let mut b = CharBuf::default();
        let mut model = String::new();
        for i in 0..300 {
            let s = match i % 4 {
                0 => "ab".to_string(),
                1 => "é😀".to_string(),
                2 => "x".repeat(70),
                _ => "中".to_string(),
            };
            b.push_str(&s);
            model.push_str(&s);
        }
        b.check_invariants();
        let whole = CharBuf::from_string(model.clone());
        whole.check_invariants();
        assert_eq!(whole.marks, b.marks);
        let chars: Vec<char> = model.chars().collect();
        for (start, len) in [(0, 5), (63, 3), (64, 100), (1000, 17)] {
            let want: String = chars[start..start + len].iter().collect();
            assert_eq!(b.slice(start as u32, len as u32), want);
            let want16: usize = want.chars().map(char::len_utf16).sum();
            assert_eq!(b.utf16_len(start as u32, len as u32) as usize, want16);
        }
    }
}

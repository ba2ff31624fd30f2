//! The typing model: what one person's next keystroke is, whatever protocol carries it.
//!
//! A typist mostly continues where they last typed: the caret follows their last character
//! (an anchor, not a number, so others' edits elsewhere do not move it off). Now and then they
//! jump to a random place in the text, and now and then they backspace over a character they
//! just typed. A backspace only ever deletes the typist's own character from the current run
//! (typed since the last jump), so no two clients delete the same character, and every
//! keystroke, insert or delete, has an identity its author alone gives it.
//!
//! **Invariant:** [`Typist::next`] never asks for a backspace when the current run is empty.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a typist types, over and over (ASCII, so characters, bytes and UTF-16 units agree).
const PASSAGE: &str = "It was the best of times, it was the worst of times, it was the age of wisdom, \
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity. ";

/// The chance that a keystroke starts somewhere else in the text (about once a sentence).
const JUMP: f64 = 0.02;
/// The chance that a keystroke is a backspace, when there is a character of the run to delete.
const BACKSPACE: f64 = 0.06;

/// One keystroke.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Key {
    /// Insert this character at the caret; the caret moves past it.
    Type(char),
    /// Delete the character before the caret, the typist's own latest one.
    Backspace,
}

/// A keystroke, and whether the caret jumps before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// `Some(f)`: first put the caret at `f` (in `0.0..1.0`) of the text's length.
    pub jump: Option<f64>,
    /// The keystroke at the caret.
    pub key: Key,
}

/// One person's typing, from a seed.
pub struct Typist {
    rng: StdRng,
    /// Where in [`PASSAGE`] the next typed character comes from.
    next_char: usize,
    /// Characters typed since the last jump and not backspaced.
    run: usize,
}

impl Typist {
    /// A typist starting at a random place of the passage, at the start of a run (the caret
    /// jumps before the first keystroke).
    pub fn new(seed: u64) -> Typist {
        let mut rng = StdRng::seed_from_u64(seed);
        let next_char = rng.gen_range(0..PASSAGE.len());
        Typist { rng, next_char, run: usize::MAX }
    }

    /// The next keystroke.
    pub fn next(&mut self) -> Step {
        let jump = (self.run == usize::MAX || self.rng.gen_bool(JUMP)).then(|| self.rng.gen::<f64>());
        if jump.is_some() {
            self.run = 0;
        }
        if self.run > 0 && self.rng.gen_bool(BACKSPACE) {
            self.run -= 1;
            return Step { jump, key: Key::Backspace };
        }
        let c = PASSAGE.as_bytes()[self.next_char] as char;
        self.next_char = (self.next_char + 1) % PASSAGE.len();
        self.run += 1;
        Step { jump, key: Key::Type(c) }
    }
}

/// The character position a jump to fraction `f` lands on in a text of `len` characters.
pub fn jump_position(f: f64, len: usize) -> usize {
    ((f * (len + 1) as f64) as usize).min(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_a_jump_and_never_backspaces_past_the_run() {
        let mut typist = Typist::new(7);
        let first = typist.next();
        assert!(first.jump.is_some());
        assert!(matches!(first.key, Key::Type(_)));
        let mut run = 1usize;
        let (mut jumps, mut backspaces) = (0, 0);
        for _ in 0..100_000 {
            let step = typist.next();
            if step.jump.is_some() {
                run = 0;
                jumps += 1;
            }
            match step.key {
                Key::Type(_) => run += 1,
                Key::Backspace => {
                    assert!(run > 0, "a backspace with nothing of the run left");
                    run -= 1;
                    backspaces += 1;
                }
            }
        }
        assert!((1_000..3_000).contains(&jumps), "{jumps} jumps");
        assert!((3_000..8_000).contains(&backspaces), "{backspaces} backspaces");
    }

    #[test]
    fn jumps_land_inside_the_text() {
        assert_eq!(jump_position(0.0, 0), 0);
        assert_eq!(jump_position(0.999, 0), 0);
        assert_eq!(jump_position(0.999, 10), 10);
        assert_eq!(jump_position(0.5, 10), 5);
    }
}

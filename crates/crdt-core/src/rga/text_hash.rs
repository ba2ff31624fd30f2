//! The hash of the visible text, kept per leaf so that hashing a long text after a keystroke
//! costs the leaves that changed, not the text.
//!
//! The hash is a polynomial over the text's UTF-8 bytes, `H(s) = Σ s[i] · B^(n-1-i)` in
//! wrapping 64-bit arithmetic, which concatenates: `H(xy) = H(x) · B^|y| + H(y)`. So it is the
//! same however the text is cut into leaves and runs (two replicas with the same text lay it
//! out differently), and the tree combines one `(H, B^len)` pair per leaf, cached until that
//! leaf changes. [`Tree::update_width`](super::node::Tree) and the other places that change a
//! leaf's runs drop its entry; every change of a leaf's visible text changes its width (an
//! insert adds to `all`, a delete takes from `chars`), so none is missed.
//!
//! Leading zero bytes add nothing, so the document's state hash takes the length too. The hash
//! tells texts apart, it does not resist an adversary: `B` is odd, so no power of it
//! vanishes, and two texts that differ in one place, or by two characters swapped fewer than
//! 2^60 bytes apart, never collide.

use std::sync::{Mutex, PoisonError};

/// The base: odd (so its powers never become 0 modulo 2^64) and with well mixed bits.
const B: u64 = 0x9E37_79B9_7F4A_7C15;

/// `B^k` for `k` in `0..=8`.
const POWERS: [u64; 9] = {
    let mut p = [1u64; 9];
    let mut k = 1;
    while k < 9 {
        p[k] = p[k - 1].wrapping_mul(B);
        k += 1;
    }
    p
};

/// A hash and the power of `B` that shifts it: `(H(s), B^|s|)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hashed {
    pub hash: u64,
    pub shift: u64,
}

impl Hashed {
    /// The hash of the empty string.
    pub const EMPTY: Hashed = Hashed { hash: 0, shift: 1 };

    /// The hash of this string followed by `bytes`.
    pub fn extend(self, bytes: &[u8]) -> Hashed {
        let (mut hash, mut shift) = (self.hash, self.shift);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            // Eight bytes at a time: one multiplication on the dependency chain, not eight.
            let mut part = 0u64;
            for (i, &byte) in c.iter().enumerate() {
                part = part.wrapping_add(u64::from(byte).wrapping_mul(POWERS[7 - i]));
            }
            hash = hash.wrapping_mul(POWERS[8]).wrapping_add(part);
            shift = shift.wrapping_mul(POWERS[8]);
        }
        for &byte in chunks.remainder() {
            hash = hash.wrapping_mul(B).wrapping_add(u64::from(byte));
            shift = shift.wrapping_mul(B);
        }
        Hashed { hash, shift }
    }

    /// The hash of this string followed by the one `next` hashes.
    pub fn then(self, next: Hashed) -> Hashed {
        Hashed {
            hash: self.hash.wrapping_mul(next.shift).wrapping_add(next.hash),
            shift: self.shift.wrapping_mul(next.shift),
        }
    }
}

/// `B^n`, by squaring: what shifts a hash past `n` bytes.
pub(crate) fn power(mut n: u64) -> u64 {
    let (mut result, mut base) = (1u64, B);
    while n > 0 {
        if n & 1 == 1 {
            result = result.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        n >>= 1;
    }
    result
}

/// Hashes of the prefixes of an append-only byte string (one replica's inserted text) at
/// every [`PrefixHashes::STEP`] bytes, computed the first time a long slice is hashed and
/// extended as the string grows. The hash of a slice is then a difference of two prefixes,
/// `H(x[a..b]) = H(x[..b]) - H(x[..a]) · B^(b-a)`: at most two steps of bytes hashed and a
/// power, however long the slice. So a keystroke beside a long run (a pasted megabyte is one
/// run) rehashes its leaf in microseconds, not the run (it was a quarter of the server's CPU
/// with 1 MB documents). Memory: 8 bytes per step of text, only for texts with long runs.
#[derive(Debug, Default)]
pub(crate) struct PrefixHashes(Mutex<Vec<u64>>);

impl Clone for PrefixHashes {
    fn clone(&self) -> Self {
        PrefixHashes(Mutex::new(self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()))
    }
}

impl PrefixHashes {
    /// Bytes between two stored prefixes.
    pub const STEP: usize = 256;

    /// The hash of `text[a..b]`, where `text` is the whole string (it only ever grew since
    /// the prefixes were computed).
    pub fn slice(&self, text: &[u8], a: usize, b: usize) -> Hashed {
        if b - a <= 2 * Self::STEP {
            return Hashed::EMPTY.extend(&text[a..b]);
        }
        let mut prefixes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if prefixes.is_empty() {
            prefixes.push(0);
        }
        while prefixes.len() <= b / Self::STEP {
            let k = prefixes.len();
            let previous = Hashed { hash: prefixes[k - 1], shift: 1 };
            prefixes.push(previous.extend(&text[(k - 1) * Self::STEP..k * Self::STEP]).hash);
        }
        let prefix = |end: usize| {
            let k = end / Self::STEP;
            Hashed { hash: prefixes[k], shift: 1 }.extend(&text[k * Self::STEP..end]).hash
        };
        let shift = power((b - a) as u64);
        Hashed { hash: prefix(b).wrapping_sub(prefix(a).wrapping_mul(shift)), shift }
    }

    /// Heap bytes used.
    pub fn heap_size(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).capacity() * 8
    }
}

/// Per leaf, the hash of its visible text, once computed and until the leaf changes. Read
/// through `&self` (hashing is a query), so behind a lock that edits, holding `&mut`, skip.
#[derive(Debug, Default)]
pub(crate) struct LeafHashes(Mutex<Vec<Option<Hashed>>>);

impl Clone for LeafHashes {
    fn clone(&self) -> Self {
        LeafHashes(Mutex::new(self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()))
    }
}

impl LeafHashes {
    /// Forgets the hash of `leaf`, whose runs changed.
    #[inline]
    pub fn forget(&mut self, leaf: u32) {
        let cached = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = cached.get_mut(leaf as usize) {
            *entry = None;
        }
    }

    /// The combined hash of `leaves` in order, computing the hash of each leaf not cached
    /// with `hash_leaf` (and caching it). `count` is the number of leaves of the tree.
    pub fn combine(
        &self,
        count: usize,
        leaves: impl Iterator<Item = u32>,
        mut hash_leaf: impl FnMut(u32) -> Hashed,
    ) -> Hashed {
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.len() < count {
            cached.resize(count, None);
        }
        leaves.fold(Hashed::EMPTY, |acc, leaf| acc.then(*cached[leaf as usize].get_or_insert_with(|| hash_leaf(leaf))))
    }

    /// The cached entries, for the invariant checks.
    pub fn entries(&self) -> Vec<Option<Hashed>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_does_not_depend_on_how_the_text_is_cut() {
        let text = "héllo wörld, 😀 the quick brown fox jumps over the lazy dog".as_bytes();
        let whole = Hashed::EMPTY.extend(text);
        for cut in 0..=text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(Hashed::EMPTY.extend(a).extend(b), whole);
            assert_eq!(Hashed::EMPTY.extend(a).then(Hashed::EMPTY.extend(b)), whole);
        }
        let mut byte_at_a_time = Hashed::EMPTY;
        for byte in text {
            byte_at_a_time = Hashed { hash: byte_at_a_time.hash.wrapping_mul(B) + u64::from(*byte), ..byte_at_a_time };
        }
        assert_eq!(byte_at_a_time.hash, whole.hash);
    }

    #[test]
    fn slices_hash_the_same_from_prefixes_as_byte_by_byte() {
        let mut text: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let prefixes = PrefixHashes::default();
        for (a, b) in [(0, 5000), (1, 4999), (255, 257), (256, 1024), (3, 600), (700, 4000), (4999, 5000), (10, 10)] {
            assert_eq!(prefixes.slice(&text, a, b), Hashed::EMPTY.extend(&text[a..b]), "{a}..{b}");
        }
        // The string grows after prefixes were stored: they stay right and extend.
        text.extend((0..3000u32).map(|i| (i % 13) as u8));
        for (a, b) in [(0, 8000), (4000, 7999), (5000, 5600)] {
            assert_eq!(prefixes.slice(&text, a, b), Hashed::EMPTY.extend(&text[a..b]), "{a}..{b}");
        }
        assert_eq!(power(0), 1);
        assert_eq!(power(9), POWERS[8].wrapping_mul(B));
    }

    #[test]
    fn texts_that_differ_hash_differently() {
        let base = b"abcdefghijklmnopqrstuvwxyz0123456789".to_vec();
        let hash = Hashed::EMPTY.extend(&base).hash;
        for i in 0..base.len() {
            for j in i + 1..base.len() {
                let mut swapped = base.clone();
                swapped.swap(i, j);
                assert_ne!(Hashed::EMPTY.extend(&swapped).hash, hash, "swap {i} {j}");
            }
            let mut dropped = base.clone();
            dropped.remove(i);
            assert_ne!(Hashed::EMPTY.extend(&dropped).hash, hash, "drop {i}");
        }
    }
}

//! [`InlineVec`]: a list that keeps a single element inline, for the lists that almost always
//! hold one (a change's operations, a delete's id ranges).
//!
//! A keystroke makes one change of one operation; with a `Vec` each would cost an allocation and
//! a free, which is most of what a local edit costs beyond the text itself. An `InlineVec` holds
//! one element without allocating and turns into a `Vec` only at the second. It reads as a slice
//! (`Deref<Target = [T]>`), and serde sees a sequence exactly as it sees a `Vec`, so the encoded
//! bytes are those of a `Vec`.
//!
//! # Invariants
//! - None beyond the slice's: a `Vec` of one element and the inline form are equal (compared,
//!   hashed and encoded as slices), so either may hold a single element.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// A list that holds one element without allocating; see the module docs.
#[derive(Clone)]
pub struct InlineVec<T>(Repr<T>);

#[derive(Clone)]
enum Repr<T> {
    One(T),
    /// Empty, or two elements and more (a single element may be here too, from a `Vec`).
    Many(Vec<T>),
}

impl<T> InlineVec<T> {
    /// An empty list (no allocation).
    pub const fn new() -> InlineVec<T> {
        InlineVec(Repr::Many(Vec::new()))
    }

    /// A list of `value` alone (no allocation).
    pub const fn one(value: T) -> InlineVec<T> {
        InlineVec(Repr::One(value))
    }

    /// The elements as a slice.
    pub fn as_slice(&self) -> &[T] {
        match &self.0 {
            Repr::One(value) => std::slice::from_ref(value),
            Repr::Many(values) => values,
        }
    }

    /// The elements as a mutable slice.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.0 {
            Repr::One(value) => std::slice::from_mut(value),
            Repr::Many(values) => values,
        }
    }

    /// Appends `value`; allocates only when the list already holds an element.
    pub fn push(&mut self, value: T) {
        if let Repr::Many(values) = &mut self.0 {
            if !values.is_empty() {
                values.push(value);
                return;
            }
        }
        self.0 = match std::mem::replace(&mut self.0, Repr::Many(Vec::new())) {
            Repr::One(first) => Repr::Many(vec![first, value]),
            Repr::Many(_) => Repr::One(value),
        };
    }

    /// The elements as a `Vec` (allocates for a single inline element).
    pub fn into_vec(self) -> Vec<T> {
        match self.0 {
            Repr::One(value) => vec![value],
            Repr::Many(values) => values,
        }
    }
}

impl<T> Default for InlineVec<T> {
    fn default() -> Self {
        InlineVec::new()
    }
}

impl<T> Deref for InlineVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> DerefMut for InlineVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: fmt::Debug> fmt::Debug for InlineVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl<T: PartialEq> PartialEq for InlineVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq> Eq for InlineVec<T> {}

impl<T: std::hash::Hash> std::hash::Hash for InlineVec<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<T> From<Vec<T>> for InlineVec<T> {
    fn from(values: Vec<T>) -> Self {
        InlineVec(Repr::Many(values))
    }
}

impl<T, const N: usize> From<[T; N]> for InlineVec<T> {
    fn from(values: [T; N]) -> Self {
        values.into_iter().collect()
    }
}

impl<T> FromIterator<T> for InlineVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let Some(first) = iter.next() else { return InlineVec::new() };
        let Some(second) = iter.next() else { return InlineVec::one(first) };
        let mut values = Vec::with_capacity(2 + iter.size_hint().0);
        values.push(first);
        values.push(second);
        values.extend(iter);
        InlineVec(Repr::Many(values))
    }
}

impl<T> Extend<T> for InlineVec<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            self.push(value);
        }
    }
}

/// The owned elements of an [`InlineVec`], in order.
pub struct IntoIter<T>(IterRepr<T>);

enum IterRepr<T> {
    One(std::option::IntoIter<T>),
    Many(std::vec::IntoIter<T>),
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.0 {
            IterRepr::One(iter) => iter.next(),
            IterRepr::Many(iter) => iter.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::One(iter) => iter.size_hint(),
            IterRepr::Many(iter) => iter.size_hint(),
        }
    }
}

impl<T> DoubleEndedIterator for IntoIter<T> {
    fn next_back(&mut self) -> Option<T> {
        match &mut self.0 {
            IterRepr::One(iter) => iter.next_back(),
            IterRepr::Many(iter) => iter.next_back(),
        }
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}

impl<T> IntoIterator for InlineVec<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter(match self.0 {
            Repr::One(value) => IterRepr::One(Some(value).into_iter()),
            Repr::Many(values) => IterRepr::Many(values.into_iter()),
        })
    }
}

impl<'a, T> IntoIterator for &'a InlineVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<'a, T> IntoIterator for &'a mut InlineVec<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_mut_slice().iter_mut()
    }
}

/// Serialized as a sequence, exactly as a `Vec<T>` is.
impl<T: Serialize> Serialize for InlineVec<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.as_slice())
    }
}

/// Read from a sequence, as a `Vec<T>` is. Like serde's `Vec`, it never reserves more than a
/// little ahead of the elements actually read: a length claimed by the input is not trusted.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for InlineVec<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
            type Value = InlineVec<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InlineVec<T>, A::Error> {
                let mut values = InlineVec::new();
                while let Some(value) = seq.next_element()? {
                    values.push(value);
                }
                Ok(values)
            }
        }

        deserializer.deserialize_seq(SeqVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_element_stays_inline_and_the_second_spills() {
        let mut list = InlineVec::new();
        assert!(list.is_empty());
        list.push(1);
        assert!(matches!(list.0, Repr::One(1)));
        list.push(2);
        list.push(3);
        assert_eq!(list.as_slice(), &[1, 2, 3]);
        assert_eq!(list.into_iter().rev().collect::<Vec<_>>(), vec![3, 2, 1]);
    }

    #[test]
    fn a_vec_of_one_equals_the_inline_form() {
        assert_eq!(InlineVec::from(vec![7]), InlineVec::one(7));
        assert_eq!(InlineVec::<u8>::from(vec![]), InlineVec::new());
        assert_eq!([4, 5].into_iter().collect::<InlineVec<_>>().as_slice(), &[4, 5]);
    }

    #[test]
    fn encodes_as_a_vec() {
        let config = bincode::config::standard();
        for values in [vec![], vec![9u64], vec![1, 300, 70_000]] {
            let ours = bincode::serde::encode_to_vec(InlineVec::from(values.clone()), config).expect("encodes");
            let vec = bincode::serde::encode_to_vec(&values, config).expect("encodes");
            assert_eq!(ours, vec);
            let (back, _): (InlineVec<u64>, _) = bincode::serde::decode_from_slice(&vec, config).expect("decodes");
            assert_eq!(back.as_slice(), values.as_slice());
        }
    }

    #[test]
    fn a_claimed_length_is_not_reserved() {
        // A varint claiming 2^60 elements and no element: refused, without reserving anything.
        let bytes = [0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
        let config = bincode::config::standard().with_limit::<1024>();
        assert!(bincode::serde::decode_from_slice::<InlineVec<u64>, _>(&bytes, config).is_err());
    }
}

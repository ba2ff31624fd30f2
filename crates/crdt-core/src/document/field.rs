//! The five kinds of field a [`Document`](crate::Document) holds, and the operations on them.
//!
//! A field is named by `(name, kind)`: `("title", Text)` and `("title", Register)` are two
//! different fields that never interact, so a change can never hit a field "of the wrong kind".
//! [`Op`] wraps the operation of each CRDT; its kind selects the field it applies to.
//!
//! # Invariants
//! - A [`Field`]'s kind is the kind of its key in the document.
//! - A text field's [`Rga`] uses the document's replica for local inserts.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::{
    Applied, ApplyError, GCounter, GCounterOp, LwwOp, LwwRegister, OrSet, OrSetOp, PnCounter, PnCounterOp, ReplicaId,
    Rga, RgaOp, SmolStr, TextDelta,
};

/// The kind of a field. The order of the variants is the order of fields with the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FieldKind {
    /// Collaborative text ([`Rga`]).
    Text,
    /// A last-writer-wins string ([`LwwRegister<String>`]).
    Register,
    /// An observed-remove set of strings ([`OrSet<String>`]).
    Set,
    /// A counter that goes up and down ([`PnCounter`]).
    Counter,
    /// A grow-only counter ([`GCounter`]).
    GCounter,
}

impl FieldKind {
    /// All kinds, in order.
    pub const ALL: [FieldKind; 5] =
        [FieldKind::Text, FieldKind::Register, FieldKind::Set, FieldKind::Counter, FieldKind::GCounter];

    /// The lowercase name used in error messages and in [`DocValue`](crate::DocValue) keys:
    /// `text`, `register`, `set`, `counter` or `gcounter`.
    pub const fn name(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Register => "register",
            FieldKind::Set => "set",
            FieldKind::Counter => "counter",
            FieldKind::GCounter => "gcounter",
        }
    }

    /// A one-byte tag, used by the state hash.
    pub(crate) const fn tag(self) -> u8 {
        match self {
            FieldKind::Text => 0,
            FieldKind::Register => 1,
            FieldKind::Set => 2,
            FieldKind::Counter => 3,
            FieldKind::GCounter => 4,
        }
    }
}

/// The name of a field: a string that is cheap to copy (up to 23 bytes inline, longer ones
/// shared), since every operation names its field. Compared, ordered and hashed as the `str` it
/// holds, and serialized exactly as a `String`.
///
/// A document compares names on every edit (to find the field, and to extend the history's
/// span), so each name also carries its first [`KEY_BYTES`] bytes and its length packed in one
/// integer: two names of up to that many bytes are equal exactly when their keys are, and names
/// whose first bytes differ are ordered by their keys, without reading the strings.
#[derive(Clone, Default)]
pub struct FieldName {
    key: u64,
    name: SmolStr,
}

/// How many leading bytes of a name its key holds (the last byte of the key is the length).
const KEY_BYTES: usize = 7;

/// The key of `name`: its first [`KEY_BYTES`] bytes, big-endian and zero-padded (so that keys
/// order as the bytes do), then its length (capped at 255).
#[inline]
fn key_of(name: &[u8]) -> u64 {
    let mut key = [0u8; 8];
    let head = name.len().min(KEY_BYTES);
    key[..head].copy_from_slice(&name[..head]);
    key[KEY_BYTES] = name.len().min(255) as u8;
    u64::from_be_bytes(key)
}

impl FieldName {
    /// The name `name`.
    pub fn new(name: &str) -> FieldName {
        FieldName { key: key_of(name.as_bytes()), name: SmolStr::new(name) }
    }

    /// The name as a string.
    #[inline]
    pub fn as_str(&self) -> &str {
        self.name.as_str()
    }

    /// Whether the key alone says what the name is.
    #[inline]
    fn short(&self) -> bool {
        (self.key & 0xff) as usize <= KEY_BYTES
    }
}

impl Serialize for FieldName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SmolStr::deserialize(deserializer).map(FieldName::from)
    }
}

impl Deref for FieldName {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for FieldName {
    #[inline]
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for FieldName {
    #[inline]
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for FieldName {
    fn from(name: &str) -> Self {
        FieldName::new(name)
    }
}

impl From<String> for FieldName {
    fn from(name: String) -> Self {
        FieldName::from(SmolStr::from(name))
    }
}

impl From<SmolStr> for FieldName {
    fn from(name: SmolStr) -> Self {
        FieldName { key: key_of(name.as_bytes()), name }
    }
}

impl fmt::Debug for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_str().fmt(f)
    }
}

// Equal keys of short names mean equal names; keys that differ before the length byte order
// the names. Only long names with the same first bytes are compared byte by byte. The results
// are exactly `str`'s.
impl PartialEq for FieldName {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && (self.short() || self.as_bytes() == other.as_bytes())
    }
}

impl Eq for FieldName {}

impl PartialEq<str> for FieldName {
    #[inline]
    fn eq(&self, other: &str) -> bool {
        self.key == key_of(other.as_bytes()) && (self.short() || self.as_bytes() == other.as_bytes())
    }
}

impl PartialEq<&str> for FieldName {
    #[inline]
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl Ord for FieldName {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        if self.key >> 8 != other.key >> 8 {
            (self.key >> 8).cmp(&(other.key >> 8))
        } else if self.short() && other.short() {
            (self.key & 0xff).cmp(&(other.key & 0xff))
        } else {
            self.as_bytes().cmp(other.as_bytes())
        }
    }
}

impl PartialOrd for FieldName {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for FieldName {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// One operation on one field, as carried by a [`Change`](crate::Change).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// An edit of a text field.
    Text(RgaOp),
    /// A write to a register field.
    Register(LwwOp<String>),
    /// An add to or remove from a set field.
    Set(OrSetOp<String>),
    /// An increment or decrement of a counter field.
    Counter(PnCounterOp),
    /// An increment of a grow-only counter field.
    GCounter(GCounterOp),
}

impl Op {
    /// The kind of field this operation applies to.
    pub fn kind(&self) -> FieldKind {
        match self {
            Op::Text(_) => FieldKind::Text,
            Op::Register(_) => FieldKind::Register,
            Op::Set(_) => FieldKind::Set,
            Op::Counter(_) => FieldKind::Counter,
            Op::GCounter(_) => FieldKind::GCounter,
        }
    }
}

/// An operation addressed to the field `(field, op.kind())`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldOp {
    /// The field's name.
    pub field: FieldName,
    /// The operation; its kind completes the field's key.
    pub op: Op,
}

impl FieldOp {
    /// The key of the field this operation applies to.
    pub fn kind(&self) -> FieldKind {
        self.op.kind()
    }
}

/// The state of one field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Field {
    /// Boxed: an `Rga` is several times the size of the other states.
    Text(Box<Rga>),
    Register(LwwRegister<String>),
    Set(OrSet<String>),
    Counter(PnCounter),
    GCounter(GCounter),
}

impl Field {
    /// Bytes of heap the state uses: exact for texts, an estimate of the small kinds.
    pub fn heap_size(&self) -> usize {
        match self {
            Field::Text(rga) => std::mem::size_of::<Rga>() + rga.heap_size(),
            _ => std::mem::size_of::<Field>() + 64,
        }
    }

    /// An empty field of `kind`; a text field makes its local inserts as `replica`.
    pub fn new(kind: FieldKind, replica: ReplicaId) -> Field {
        match kind {
            FieldKind::Text => Field::Text(Box::new(Rga::new(replica))),
            FieldKind::Register => Field::Register(LwwRegister::default()),
            FieldKind::Set => Field::Set(OrSet::default()),
            FieldKind::Counter => Field::Counter(PnCounter::default()),
            FieldKind::GCounter => Field::GCounter(GCounter::default()),
        }
    }

    pub fn kind(&self) -> FieldKind {
        match self {
            Field::Text(_) => FieldKind::Text,
            Field::Register(_) => FieldKind::Register,
            Field::Set(_) => FieldKind::Set,
            Field::Counter(_) => FieldKind::Counter,
            Field::GCounter(_) => FieldKind::GCounter,
        }
    }

    /// Makes local text inserts use `replica` (a no-op for the other kinds).
    pub fn set_replica(&mut self, replica: ReplicaId) {
        if let Field::Text(rga) = self {
            rga.set_replica(replica);
        }
    }

    /// Applies a remote operation, appending the visible text edits of a text field to `deltas`.
    pub fn apply(&mut self, op: &Op, deltas: &mut Vec<TextDelta>) -> Result<Applied, ApplyError> {
        match (self, op) {
            (Field::Text(rga), Op::Text(op)) => rga.apply_with_deltas(op, deltas),
            (Field::Register(register), Op::Register(op)) => register.apply(op),
            (Field::Set(set), Op::Set(op)) => set.apply(op),
            (Field::Counter(counter), Op::Counter(op)) => counter.apply(op),
            (Field::GCounter(counter), Op::GCounter(op)) => counter.apply(op),
            // Fields are keyed by kind, so the document never pairs a field with an operation of
            // another kind; the error keeps this function total.
            (field, op) => Err(ApplyError::FieldKind {
                field: String::new(),
                expected: field.kind().name(),
                found: op.kind().name(),
            }),
        }
    }

    /// State-merges `other` into this field. Fields of different kinds are left alone (the
    /// document never merges those).
    pub fn merge(&mut self, other: &Field) {
        match (self, other) {
            (Field::Text(a), Field::Text(b)) => a.merge(b),
            (Field::Register(a), Field::Register(b)) => a.merge(b),
            (Field::Set(a), Field::Set(b)) => a.merge(b),
            (Field::Counter(a), Field::Counter(b)) => a.merge(b),
            (Field::GCounter(a), Field::GCounter(b)) => a.merge(b),
            _ => debug_assert!(false, "merge of fields of different kinds"),
        }
    }

    /// Checks the state of a field that came from untrusted bytes.
    pub fn validate(&self) -> Result<(), &'static str> {
        match self {
            // A deserialized `Rga` has already been validated by its `Deserialize` impl.
            Field::Text(_) => Ok(()),
            Field::Register(register) => register.validate(),
            Field::Set(set) => set.validate(),
            Field::Counter(counter) => counter.validate(),
            Field::GCounter(counter) => counter.validate(),
        }
    }

    /// Panics if the field's own invariants are broken.
    pub fn check_invariants(&self) {
        match self {
            Field::Text(rga) => rga.check_invariants(),
            Field::Register(register) => register.check_invariants(),
            Field::Set(set) => set.check_invariants(),
            Field::Counter(counter) => counter.check_invariants(),
            Field::GCounter(counter) => counter.check_invariants(),
        }
    }
}

/// The elements of a set, in ascending order.
pub(crate) fn set_elements(set: &OrSet<String>) -> Vec<String> {
    set.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::FieldName;

    #[test]
    fn names_compare_and_encode_as_strings() {
        let names = [
            "",
            "a",
            "ab",
            "ab\0",
            "ab\0x",
            "b",
            "body",
            "bodz",
            "title",
            "é",
            "abcdefg",
            "abcdefg\0",
            "abcdefgh",
            "abcdefgz",
            "abcdefgaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "a longer name than twenty-three bytes",
        ];
        for a in names {
            for b in names {
                let (x, y) = (FieldName::new(a), FieldName::new(b));
                assert_eq!(x.cmp(&y), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(x == y, a == b);
                assert_eq!(x == b, a == b);
            }
            let config = bincode::config::standard();
            let ours = bincode::serde::encode_to_vec(FieldName::new(a), config).expect("encodes");
            assert_eq!(ours, bincode::serde::encode_to_vec(a.to_owned(), config).expect("encodes"));
        }
    }

    proptest! {
        // Keys decide most comparisons: they must agree with `str`'s for names that share
        // prefixes, hold NULs, or run past the key's bytes.
        #[test]
        fn names_compare_as_their_strings(a in "[ab\\x00]{0,12}", b in "[ab\\x00]{0,12}") {
            let (x, y) = (FieldName::new(&a), FieldName::new(&b));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(x == y, a == b);
            prop_assert_eq!(x == b.as_str(), a == b);
            prop_assert_eq!(FieldName::from(a.clone()).cmp(&y), a.cmp(&b));
        }
    }
}

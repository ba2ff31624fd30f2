//! Plain values of a document: [`DocValue`] (serializes as a JSON object) and the state hash.
//!
//! Keys: a field's name, except when one name exists with several kinds; then the first kind in
//! [`FieldKind`] order keeps the bare name and the others are keyed `name#kind` (for example
//! `title` for the text and `title#register` for the register). Should that key be taken by a
//! field really named so, `#kind` is appended again until the key is free. Fields are visited in
//! `(name, kind)` order, so the keys are the same on every replica that has the same fields.
//!
//! The state hash is FNV-1a (64 bit) over a canonical byte encoding of the values (not of the
//! CRDT metadata), in key order, where a text is its length in characters and
//! [`Rga::text_hash`](crate::Rga::text_hash) (a polynomial hash of its bytes that the text keeps
//! per leaf, so that hashing after a keystroke does not read the whole text): two documents
//! with equal values have equal hashes on every platform and in every build. It is a cheap
//! convergence check, not a cryptographic digest.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::field::{Field, FieldKind, FieldName};

/// The plain value of one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    /// A text field's text (serialized as a string).
    Text(String),
    /// A register's value (a string, or `null` when never set).
    Register(Option<String>),
    /// A set's elements in ascending order (an array of strings).
    Set(Vec<String>),
    /// A counter's value (a number).
    Counter(i64),
    /// A grow-only counter's value (a number).
    GCounter(u64),
}

impl FieldValue {
    pub(crate) fn of(field: &Field) -> FieldValue {
        match field {
            Field::Text(rga) => FieldValue::Text(rga.value()),
            Field::Register(register) => FieldValue::Register(register.value().cloned()),
            Field::Set(set) => FieldValue::Set(super::field::set_elements(set)),
            Field::Counter(counter) => FieldValue::Counter(counter.value()),
            Field::GCounter(counter) => FieldValue::GCounter(counter.value()),
        }
    }
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::Text(text) => serializer.serialize_str(text),
            FieldValue::Register(Some(value)) => serializer.serialize_str(value),
            FieldValue::Register(None) => serializer.serialize_none(),
            FieldValue::Set(elements) => {
                let mut seq = serializer.serialize_seq(Some(elements.len()))?;
                for element in elements {
                    seq.serialize_element(element)?;
                }
                seq.end()
            }
            FieldValue::Counter(value) => serializer.serialize_i64(*value),
            FieldValue::GCounter(value) => serializer.serialize_u64(*value),
        }
    }
}

/// The plain value of a whole document: field key → [`FieldValue`]. See the module docs for
/// the keys. Serializes as a map (a JSON object).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocValue {
    entries: BTreeMap<String, FieldValue>,
}

impl DocValue {
    pub(crate) fn of(fields: &BTreeMap<(FieldName, FieldKind), Field>) -> DocValue {
        let mut entries = BTreeMap::new();
        let mut previous_name: Option<&str> = None;
        for ((name, kind), field) in fields {
            let mut key =
                if previous_name == Some(name.as_str()) { format!("{name}#{}", kind.name()) } else { name.to_string() };
            while entries.contains_key(&key) {
                key.push('#');
                key.push_str(kind.name());
            }
            entries.insert(key, FieldValue::of(field));
            previous_name = Some(name);
        }
        DocValue { entries }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.entries.get(key)
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.entries.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the document has no field.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for DocValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, value) in &self.entries {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// FNV-1a, 64 bit: stable across platforms and Rust versions, unlike std's `DefaultHasher`.
struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    /// A length-prefixed string, so that `("ab", "c")` and `("a", "bc")` differ.
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }
}

/// The state hash of a document's fields; see the module docs.
pub(crate) fn state_hash(fields: &BTreeMap<(FieldName, FieldKind), Field>) -> u64 {
    let mut hash = Fnv1a(Fnv1a::OFFSET);
    hash.u64(fields.len() as u64);
    for ((name, kind), field) in fields {
        hash.str(name);
        hash.bytes(&[kind.tag()]);
        if let Field::Text(rga) = field {
            // The text's own hash, kept up to date per leaf: a keystroke does not make the
            // next state hash read the whole text.
            hash.u64(rga.len() as u64);
            hash.u64(rga.text_hash());
            continue;
        }
        match FieldValue::of(field) {
            // Text fields were hashed above.
            FieldValue::Text(text) => hash.str(&text),
            FieldValue::Register(None) => hash.bytes(&[0]),
            FieldValue::Register(Some(value)) => {
                hash.bytes(&[1]);
                hash.str(&value);
            }
            FieldValue::Set(elements) => {
                hash.u64(elements.len() as u64);
                for element in &elements {
                    hash.str(element);
                }
            }
            FieldValue::Counter(value) => hash.bytes(&value.to_le_bytes()),
            FieldValue::GCounter(value) => hash.u64(value),
        }
    }
    hash.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        let mut empty = Fnv1a(Fnv1a::OFFSET);
        empty.bytes(b"");
        assert_eq!(empty.0, 0xcbf2_9ce4_8422_2325);
        let mut a = Fnv1a(Fnv1a::OFFSET);
        a.bytes(b"a");
        assert_eq!(a.0, 0xaf63_dc4c_8601_ec8c);
        let mut foobar = Fnv1a(Fnv1a::OFFSET);
        foobar.bytes(b"foobar");
        assert_eq!(foobar.0, 0x8594_4171_f739_67e8);
    }
}

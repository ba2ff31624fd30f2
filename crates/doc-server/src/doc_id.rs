//! [`DocId`]: the name of a document, as it appears in URLs and in the store.
//!
//! # Invariants
//! - A `DocId` is 1 to 64 characters from `[A-Za-z0-9_-]`, so it is safe in a URL path, a file
//!   name, a log line and an SQL parameter without escaping.

use std::fmt;

/// The longest document id accepted.
pub const MAX_DOC_ID_LEN: usize = 64;

/// A validated document id; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(String);

/// A string that is not a valid [`DocId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid document id {0:?}: use 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")]
pub struct InvalidDocId(pub String);

impl DocId {
    /// Checks `id` against the rule in the module docs.
    pub fn parse(id: &str) -> Result<DocId, InvalidDocId> {
        let valid = !id.is_empty()
            && id.len() <= MAX_DOC_ID_LEN
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(DocId(id.to_owned()))
        } else {
            // Echo at most a prefix of what was sent, so a huge id does not flood the logs.
            Err(InvalidDocId(id.chars().take(80).collect()))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for id in ["a", "Doc_1-x", &"z".repeat(64)] {
            assert_eq!(DocId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for id in ["", "a b", "../etc", "é", "a/b", "a.b", &"z".repeat(65)] {
            assert!(DocId::parse(id).is_err(), "{id:?} should be refused");
        }
    }
}

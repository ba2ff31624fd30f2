//! The error types of crdt-core, one small enum per boundary.
//!
//! - [`DecodeError`]: bytes from outside could not be turned into values (wire format).
//! - [`ApplyError`]: a well-formed operation cannot be applied because it breaks an invariant (it
//!   names ids that do not exist, or reuses ids with other content).
//! - [`EditError`]: a local edit was asked for at a position that does not exist.
//!
//! Merging is infallible, and an operation whose causal dependencies are missing is buffered by
//! [`crate::Document`] rather than rejected, so none of these is a "try again later" signal.

use thiserror::Error;

/// Bytes could not be decoded. The input is untrusted; nothing was changed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input was empty.
    #[error("empty input: expected a format version byte")]
    Empty,
    /// The first byte names a format this build does not know.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The second byte names a different kind of payload than the one asked for.
    #[error("wrong payload kind {found} (expected {expected})")]
    WrongKind {
        /// The kind byte found.
        found: u8,
        /// The kind expected.
        expected: u8,
    },
    /// The input is larger than the caller's limit.
    #[error("input of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not valid for the format (truncated, bad tags, lengths that exceed the input).
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// Bytes were left over after a complete payload.
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),
    /// The payload decoded but describes something impossible (e.g. an empty insert).
    #[error("invalid content: {0}")]
    Invalid(&'static str),
}

/// A well-formed operation that cannot be applied to this state.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyError {
    /// The operation names an id this replica has never seen, and it is not a buffering case
    /// (the causal history of the sender says it should have been there).
    #[error("operation refers to an unknown id (replica {replica}, counter {counter})")]
    UnknownId {
        /// The replica of the unknown id.
        replica: crate::ReplicaId,
        /// Its counter.
        counter: u64,
    },
    /// Ids from one replica must arrive in order: this one skips ahead.
    #[error("operation ids from replica {replica} skip from {expected} to {found}")]
    OutOfOrder {
        /// The replica.
        replica: crate::ReplicaId,
        /// The next counter this replica expected.
        expected: u64,
        /// The counter the operation starts at.
        found: u64,
    },
    /// A change touches a field with an operation of another kind than the field has.
    #[error("field {field:?} is a {expected}, not a {found}")]
    FieldKind {
        /// Field name.
        field: String,
        /// The kind the field has.
        expected: &'static str,
        /// The kind of the operation.
        found: &'static str,
    },
    /// The operation is structurally invalid (empty insert, counter overflow).
    #[error("invalid operation: {0}")]
    Invalid(&'static str),
}

/// A local edit at a position that does not exist.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EditError {
    /// The position (or the end of the range) is past the end of the text.
    #[error("position {pos} is out of bounds for a text of length {len}")]
    OutOfBounds {
        /// The position asked for.
        pos: usize,
        /// The text's length in the same unit.
        len: usize,
    },
    /// A UTF-16 position falls between the two halves of a surrogate pair.
    #[error("utf-16 position {0} splits a surrogate pair")]
    SplitsSurrogate(usize),
    /// The field exists with another kind.
    #[error("field {field:?} is a {expected}, not a {found}")]
    FieldKind {
        /// Field name.
        field: String,
        /// The kind the field has.
        expected: &'static str,
        /// The kind asked for.
        found: &'static str,
    },
    /// An insert of no text: there is no operation to make.
    #[error("nothing to insert")]
    EmptyText,
    /// The replica has used up its id space in this text (about four billion characters).
    #[error("this replica has inserted too many characters into this text")]
    Overflow,
}

/// What an `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The state changed (or may have changed).
    Changed,
    /// The operation had already been applied (or was superseded): nothing changed.
    Duplicate,
}

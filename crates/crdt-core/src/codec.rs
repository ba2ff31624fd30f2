//! The versioned wire format: changes, snapshots and other messages as bytes.
//!
//! This is the only serialized surface of crdt-core. Every frame starts with two bytes:
//!
//! ```text
//! byte 0      FORMAT_VERSION (currently 1); other values: DecodeError::UnsupportedVersion
//! byte 1      kind: KIND_CHANGES = 1, KIND_SNAPSHOT = 2; other values are free for the
//!             messages of the server and the client (encode_message / decode_message)
//! bytes 2..   the payload, bincode 2 with the standard config, and nothing after it
//! ```
//!
//! bincode's standard config writes:
//! - unsigned integers as varints: a value `< 251` is one byte; otherwise a marker byte
//!   `251`/`252`/`253` followed by the value as little-endian `u16`/`u32`/`u64`; signed
//!   integers are zigzag-encoded first (`0, -1, 1, -2, …` → `0, 1, 2, 3, …`);
//! - `bool` as one byte `0`/`1`; `Option` as `0` (none) or `1` followed by the value;
//! - strings and byte strings as a varint length and the UTF-8 bytes;
//! - sequences and maps as a varint count and the items (maps in key order for `BTreeMap`);
//! - structs and tuples as their fields in declaration order, without names or count;
//! - enums as the varint variant index (declaration order, from 0) followed by the fields;
//! - a `ReplicaId` as a byte string of length 16 (`0x10` and the UUID's 16 bytes);
//! - a `VersionVector` as a map `ReplicaId → u64` without zero entries.
//!
//! Payloads:
//!
//! ```text
//! KIND_CHANGES   Vec<Change>
//!   Change       { replica: ReplicaId, seq: u64, deps: VersionVector, ops: Vec<FieldOp> }
//!   FieldOp      { field: String, op: Op }
//!   Op           enum { 0 Text(RgaOp), 1 Register(LwwOp<String>), 2 Set(OrSetOp<String>),
//!                       3 Counter(PnCounterOp), 4 GCounter(GCounterOp) }
//! KIND_SNAPSHOT  { fields: Vec<(String, Field)>, version: VersionVector,
//!                  history_base: VersionVector, history: Vec<Change> }
//!   Field        enum { 0 Text(Rga), 1 Register(LwwRegister<String>), 2 Set(OrSet<String>),
//!                       3 Counter(PnCounter), 4 GCounter(GCounter) }
//! ```
//!
//! The operations and states inside are those of the CRDT modules, serialized with serde.
//!
//! # Untrusted input
//! Decoding never panics and never allocates much more than the input warrants: inputs above
//! a length limit are refused ([`DecodeError::TooLarge`]), and bincode runs with a limit of
//! eight times the input length (rounded up to a tier) on the bytes it may allocate, so that a
//! few bytes claiming a gigantic string are an error rather than an aborting allocation. Eight
//! bytes per input byte is the most a well-formed payload needs: a one-byte varint becomes an
//! eight-byte `u64`. After decoding, everything is validated ([`Change::validate`], each field
//! state's own checks, and the history against the version); a failure is
//! [`DecodeError::Invalid`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::document::Field;
use crate::{Change, DecodeError, Document, ReplicaId, VersionVector};

/// The format version written in byte 0 of every frame.
pub const FORMAT_VERSION: u8 = 1;
/// Kind byte of a list of changes ([`encode_changes`]).
pub const KIND_CHANGES: u8 = 1;
/// Kind byte of a document snapshot ([`encode_snapshot`]).
pub const KIND_SNAPSHOT: u8 = 2;
/// The longest input [`decode_changes`] and [`decode_message`] accept (32 MiB).
pub const MAX_MESSAGE_LEN: usize = 32 << 20;
/// The longest input [`decode_snapshot`] accepts (256 MiB).
pub const MAX_SNAPSHOT_LEN: usize = 256 << 20;

/// The allocation limits bincode may run with, smallest first. The largest bounds the input
/// length to an eighth of it, [`MAX_SNAPSHOT_LEN`].
const TIERS: [usize; 5] = [64 << 10, 1 << 20, 16 << 20, 256 << 20, 2 << 30];

/// Encodes changes (typically one, or the answer to [`Document::ops_since`]).
pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    encode_message(KIND_CHANGES, changes)
}

/// Decodes and structurally validates changes (see [`Change::validate`]). Whether their
/// operations fit a document is checked when they are applied.
pub fn decode_changes(bytes: &[u8]) -> Result<Vec<Change>, DecodeError> {
    let changes: Vec<Change> = decode_message(KIND_CHANGES, bytes)?;
    for change in &changes {
        change.validate().map_err(DecodeError::Invalid)?;
    }
    Ok(changes)
}

/// Encodes a document's state and its full history, so that the decoded document can serve
/// [`Document::ops_since`] for everything this one can.
pub fn encode_snapshot(doc: &Document) -> Vec<u8> {
    encode_message(KIND_SNAPSHOT, &SnapshotRef::new(doc, doc.history_base(), doc.history()))
}

/// Encodes a document's state without its history: smaller, but the decoded document's
/// history starts at its version (`history_base == version`), so it can only serve replicas
/// that are at least that far.
pub fn encode_snapshot_without_history(doc: &Document) -> Vec<u8> {
    encode_message(KIND_SNAPSHOT, &SnapshotRef::new(doc, doc.version(), &[]))
}

/// Decodes and validates a snapshot into a document that makes its local edits as `replica`.
pub fn decode_snapshot(bytes: &[u8], replica: ReplicaId) -> Result<Document, DecodeError> {
    let snapshot: SnapshotOwned = decode_frame(KIND_SNAPSHOT, bytes, MAX_SNAPSHOT_LEN)?;
    let SnapshotOwned { fields, version, history_base, history } = snapshot;
    Document::from_parts(replica, fields, version, history_base, history).map_err(DecodeError::Invalid)
}

/// Encodes any serde value as a frame of kind `kind`. The server and the client use it for
/// their own messages, with kinds other than [`KIND_CHANGES`] and [`KIND_SNAPSHOT`].
///
/// # Panics
/// If `value`'s `Serialize` impl fails or serializes a sequence without a length, which bincode
/// cannot encode. No type of crdt-core does either; a panic here is a bug in the value's type.
pub fn encode_message<T: Serialize + ?Sized>(kind: u8, value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION, kind];
    if let Err(error) = bincode::serde::encode_into_std_write(value, &mut out, config()) {
        panic!("value cannot be encoded with bincode: {error}");
    }
    out
}

/// Decodes a frame of kind `kind` made by [`encode_message`], refusing inputs longer than
/// [`MAX_MESSAGE_LEN`].
pub fn decode_message<T: DeserializeOwned>(kind: u8, bytes: &[u8]) -> Result<T, DecodeError> {
    decode_frame(kind, bytes, MAX_MESSAGE_LEN)
}

/// [`decode_message`] with the caller's input length limit (itself capped at
/// [`MAX_SNAPSHOT_LEN`]).
pub fn decode_message_with_limit<T: DeserializeOwned>(
    kind: u8,
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    decode_frame(kind, bytes, max_len)
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn decode_frame<T: DeserializeOwned>(kind: u8, bytes: &[u8], max_len: usize) -> Result<T, DecodeError> {
    let limit = max_len.min(MAX_SNAPSHOT_LEN);
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge { len: bytes.len(), limit });
    }
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    let (&found, payload) = rest.split_first().ok_or_else(|| DecodeError::Malformed("missing the kind byte".into()))?;
    if found != kind {
        return Err(DecodeError::WrongKind { found, expected: kind });
    }
    let (value, used) = decode_limited::<T>(payload)?;
    match payload.len() - used {
        0 => Ok(value),
        trailing => Err(DecodeError::TrailingBytes(trailing)),
    }
}

/// Runs bincode with the smallest allocation limit of at least eight bytes per input byte.
fn decode_limited<T: DeserializeOwned>(payload: &[u8]) -> Result<(T, usize), DecodeError> {
    let need = payload.len().saturating_mul(8);
    // The limit is a const generic, hence one call per tier.
    let result = match TIERS.iter().position(|tier| need <= *tier) {
        Some(0) => decode_with::<T, { TIERS[0] }>(payload),
        Some(1) => decode_with::<T, { TIERS[1] }>(payload),
        Some(2) => decode_with::<T, { TIERS[2] }>(payload),
        Some(3) => decode_with::<T, { TIERS[3] }>(payload),
        Some(_) => decode_with::<T, { TIERS[4] }>(payload),
        None => return Err(DecodeError::TooLarge { len: payload.len(), limit: TIERS[4] / 8 }),
    };
    result.map_err(|error| DecodeError::Malformed(error.to_string()))
}

fn decode_with<T: DeserializeOwned, const LIMIT: usize>(
    payload: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(payload, config().with_limit::<LIMIT>())
}

/// The snapshot payload, borrowed for encoding.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    fields: Vec<(&'a str, &'a Field)>,
    version: &'a VersionVector,
    history_base: &'a VersionVector,
    history: &'a [Change],
}

impl<'a> SnapshotRef<'a> {
    fn new(doc: &'a Document, history_base: &'a VersionVector, history: &'a [Change]) -> Self {
        SnapshotRef {
            fields: doc.fields_map().iter().map(|((name, _), field)| (name.as_str(), field)).collect(),
            version: doc.version(),
            history_base,
            history,
        }
    }
}

/// The snapshot payload, owned for decoding; the same layout as [`SnapshotRef`].
#[derive(Deserialize)]
struct SnapshotOwned {
    fields: Vec<(String, Field)>,
    version: VersionVector,
    history_base: VersionVector,
    history: Vec<Change>,
}

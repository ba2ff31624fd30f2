//! The versioned wire format: changes, snapshots and other messages as bytes.
//!
//! This is the only serialized surface of crdt-core. Every frame starts with two bytes:
//!
//! ```text
//! byte 0      FORMAT_VERSION (currently 2; changes and snapshots of version 1 are still
//!             read and converted); other values: DecodeError::UnsupportedVersion
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
//!   Change       { replica: ReplicaId, seq: u64, deps: Vec<ChangeId>, ops: Vec<FieldOp> }
//!   ChangeId     { replica: ReplicaId, seq: u64 }
//!   FieldOp      { field: String, op: Op }
//!   Op           enum { 0 Text(RgaOp), 1 Register(LwwOp<String>), 2 Set(OrSetOp<String>),
//!                       3 Counter(PnCounterOp), 4 GCounter(GCounterOp) }
//! KIND_SNAPSHOT  { fields: Vec<(String, Field)>, version: VersionVector,
//!                  history_base: VersionVector, log: bytes }
//!   log          the history after `history_base`, as the compact log of
//!                `document/log_codec.rs` (inserts are not stored again: the texts hold them)
//!   Field        enum { 0 Text(Rga), 1 Register(LwwRegister<String>), 2 Set(OrSet<String>),
//!                       3 Counter(PnCounter), 4 GCounter(GCounter) }
//! ```
//!
//! The operations and states inside are those of the CRDT modules, serialized with serde.
//!
//! Format 1 differed in one type: a change's `deps` was the whole `VersionVector` its replica
//! had seen, and a snapshot's history a `Vec` of such changes. [`decode_changes`] and
//! [`decode_snapshot`] still read it, turning each `deps` into the change's direct dependencies
//! (exactly, where the changes they name are in the same list; otherwise every entry of the
//! vector, one dependency too many being harmless).
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

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::document::{Field, FieldOp, History};
use crate::varint::Reader;
use crate::{Change, ChangeId, DecodeError, Document, FieldName, ReplicaId, VersionVector};

/// The format version written in byte 0 of every frame.
pub const FORMAT_VERSION: u8 = 2;
/// The first format version, whose changes and snapshots are still read (and converted).
pub const LEGACY_FORMAT_VERSION: u8 = 1;
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
/// operations fit a document is checked when they are applied. Reads format 1 too.
pub fn decode_changes(bytes: &[u8]) -> Result<Vec<Change>, DecodeError> {
    let (version, payload) = split_frame(KIND_CHANGES, bytes, MAX_MESSAGE_LEN)?;
    let changes = if version == LEGACY_FORMAT_VERSION {
        from_legacy(decode_payload::<Vec<LegacyChange>>(payload)?)
    } else {
        decode_payload::<Vec<Change>>(payload)?
    };
    for change in &changes {
        change.validate().map_err(DecodeError::Invalid)?;
    }
    Ok(changes)
}

/// Encodes a document's state and its full history, so that the decoded document can serve
/// [`Document::ops_since`] for everything this one can. The history is the compact log: its
/// size follows the document's, not the number of its changes times their replicas.
pub fn encode_snapshot(doc: &Document) -> Vec<u8> {
    let mut log = Vec::new();
    crate::document::encode_log(doc.history_log(), doc.fields_map(), &mut log);
    encode_message(KIND_SNAPSHOT, &SnapshotRef::new(doc, doc.history_base(), log))
}

/// Runs `f` with this build encoding as the browser build (wasm32) always does: the deflate
/// streams of text states and history logs stored, not compressed. The browser's snapshots stay
/// on its device, and a compressor would be code that every first open downloads (issue 21);
/// every decoder reads both forms. For checks that compare the bytes of the two builds.
pub fn as_the_browser_writes<R>(f: impl FnOnce() -> R) -> R {
    crate::rga::pack::as_the_browser_writes(f)
}

/// Inflates a raw deflate stream (RFC 1951, no header) of at most [`MAX_SNAPSHOT_LEN`]
/// bytes. The browser keeps its stored snapshots deflated by the platform's
/// `CompressionStream` and reads them back through this inflater, which it carries anyway.
pub fn inflate(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    crate::rga::pack::inflate_limited(bytes, MAX_SNAPSHOT_LEN)
        .map_err(|_| DecodeError::Malformed("not a deflate stream of a snapshot's size".into()))
}

/// Encodes a document's state without its history: smaller, but the decoded document's
/// history starts at its version (`history_base == version`), so it can only serve replicas
/// that are at least that far.
pub fn encode_snapshot_without_history(doc: &Document) -> Vec<u8> {
    let mut log = Vec::new();
    crate::document::encode_log(&History::starting_at(doc.version().clone()), doc.fields_map(), &mut log);
    encode_message(KIND_SNAPSHOT, &SnapshotRef::new(doc, doc.version(), log))
}

/// Decodes and validates a snapshot into a document that makes its local edits as `replica`.
/// Reads format 1 snapshots too (their history is converted to the compact log).
pub fn decode_snapshot(bytes: &[u8], replica: ReplicaId) -> Result<Document, DecodeError> {
    let (version, payload) = split_frame(KIND_SNAPSHOT, bytes, MAX_SNAPSHOT_LEN)?;
    if version == LEGACY_FORMAT_VERSION {
        let LegacySnapshot { fields, version, history_base, history } = decode_payload(payload)?;
        let fields = Document::check_fields(replica, fields).map_err(DecodeError::Invalid)?;
        let changes = from_legacy(history);
        let (history, _) = History::from_changes(history_base, &changes, &fields).map_err(DecodeError::Invalid)?;
        return Document::from_parts(replica, fields, version, history).map_err(DecodeError::Invalid);
    }
    let SnapshotOwned { fields, version, history_base, log } = decode_payload(payload)?;
    let fields = Document::check_fields(replica, fields).map_err(DecodeError::Invalid)?;
    let mut rd = Reader { buf: &log, at: 0 };
    let history = crate::document::decode_log(&mut rd, history_base, &fields).map_err(DecodeError::Invalid)?;
    // Written empty: the version is where the history reaches (snapshots written before that
    // choice hold it, checked against the history).
    let version = if version.is_empty() { history.reached() } else { version };
    Document::from_parts(replica, fields, version, history).map_err(DecodeError::Invalid)
}

/// Encodes any serde value as a frame of kind `kind`. The server and the client use it for
/// their own messages, with kinds other than [`KIND_CHANGES`] and [`KIND_SNAPSHOT`].
///
/// # Panics
/// If `value`'s `Serialize` impl fails or serializes a sequence without a length, which bincode
/// cannot encode. No type of crdt-core does either; a panic here is a bug in the value's type.
pub fn encode_message<T: Serialize + ?Sized>(kind: u8, value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION, kind];
    encode_value(value, &mut out);
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

/// Decodes a frame of kind `kind` written in format 1 ([`LEGACY_FORMAT_VERSION`]), for stores
/// that convert what an earlier release saved (a current frame is refused: decode it with
/// [`decode_message_with_limit`]).
pub fn decode_legacy_message<T: DeserializeOwned>(kind: u8, bytes: &[u8], max_len: usize) -> Result<T, DecodeError> {
    match split_frame(kind, bytes, max_len)? {
        (LEGACY_FORMAT_VERSION, payload) => decode_payload(payload),
        (found, _) => Err(DecodeError::UnsupportedVersion { found, supported: LEGACY_FORMAT_VERSION }),
    }
}

/// The format version byte of a frame, if it has one.
pub fn frame_version(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn decode_frame<T: DeserializeOwned>(kind: u8, bytes: &[u8], max_len: usize) -> Result<T, DecodeError> {
    match split_frame(kind, bytes, max_len)? {
        (FORMAT_VERSION, payload) => decode_payload(payload),
        (found, _) => Err(DecodeError::UnsupportedVersion { found, supported: FORMAT_VERSION }),
    }
}

/// Checks a frame's length, version (current or legacy) and kind; returns the version and the
/// payload.
fn split_frame(kind: u8, bytes: &[u8], max_len: usize) -> Result<(u8, &[u8]), DecodeError> {
    let limit = max_len.min(MAX_SNAPSHOT_LEN);
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge { len: bytes.len(), limit });
    }
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != FORMAT_VERSION && version != LEGACY_FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
    }
    let (&found, payload) = rest.split_first().ok_or_else(|| DecodeError::Malformed("missing the kind byte".into()))?;
    if found != kind {
        return Err(DecodeError::WrongKind { found, expected: kind });
    }
    Ok((version, payload))
}

/// Decodes a whole payload: nothing may be left after the value.
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    let (value, used) = decode_limited::<T>(payload)?;
    match payload.len() - used {
        0 => Ok(value),
        trailing => Err(DecodeError::TrailingBytes(trailing)),
    }
}

/// Appends `value`'s bincode encoding (no frame header) to `out`.
///
/// # Panics
/// As [`encode_message`]. The panic names bincode's error only by its kind: its `Display` is
/// its derived `Debug`, which would bring io errors' and system times' formatting into the wasm.
pub(crate) fn encode_value<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    use bincode::error::EncodeError;
    use bincode::serde::EncodeError as SerdeError;
    match bincode::serde::encode_into_std_write(value, out, config()) {
        Ok(_) => {}
        Err(EncodeError::Serde(SerdeError::SequenceMustHaveLength)) => {
            panic!("bincode cannot encode a sequence without a length")
        }
        Err(EncodeError::OtherString(message)) => panic!("value cannot be encoded with bincode: {message}"),
        Err(_) => panic!("value cannot be encoded with bincode"),
    }
}

/// Decodes a value [`encode_value`] wrote, bounded like every decode here.
pub(crate) fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_payload(bytes)
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
    result.map_err(malformed)
}

/// bincode's error as our message. Its `Display` is its derived `Debug`, whose formatting of
/// every field type (durations, io errors, escaped strings) costs the wasm client about 2 KB
/// (issue 21); this names the cases bincode's serde decoder reports.
fn malformed(error: bincode::error::DecodeError) -> DecodeError {
    use bincode::error::DecodeError as Bincode;
    DecodeError::Malformed(match error {
        // serde's own messages ("invalid value: …, expected …").
        Bincode::OtherString(message) => message,
        Bincode::Other(message) => message.into(),
        Bincode::UnexpectedEnd { additional } => format!("input ends {additional} bytes early"),
        Bincode::LimitExceeded => "the allocation limit is exceeded".into(),
        Bincode::Utf8 { .. } => "a string is not UTF-8".into(),
        Bincode::InvalidCharEncoding(_) => "a char is not a Unicode scalar value".into(),
        Bincode::InvalidBooleanValue(value) => format!("{value} is not a boolean"),
        Bincode::OutsideUsizeRange(value) => format!("{value} is beyond usize"),
        Bincode::UnexpectedVariant { type_name, found, .. } => format!("{type_name} has no variant {found}"),
        _ => "bincode refused it".into(),
    })
}

fn decode_with<T: DeserializeOwned, const LIMIT: usize>(
    payload: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(payload, config().with_limit::<LIMIT>())
}

/// The snapshot payload, borrowed for encoding.
/// The version a snapshot stores: none, see [`decode_snapshot`].
static EMPTY_VERSION: VersionVector = VersionVector::new();

#[derive(Serialize)]
struct SnapshotRef<'a> {
    fields: Vec<(&'a str, &'a Field)>,
    version: &'a VersionVector,
    history_base: &'a VersionVector,
    log: Vec<u8>,
}

impl<'a> SnapshotRef<'a> {
    fn new(doc: &'a Document, history_base: &'a VersionVector, log: Vec<u8>) -> Self {
        SnapshotRef {
            fields: doc.fields_map().iter().map(|((name, _), field)| (name.as_str(), field)).collect(),
            // The history says it: `history_base` plus the changes of the log.
            version: &EMPTY_VERSION,
            history_base,
            log,
        }
    }
}

/// The snapshot payload, owned for decoding; the same layout as [`SnapshotRef`].
#[derive(Deserialize)]
struct SnapshotOwned {
    fields: Vec<(FieldName, Field)>,
    version: VersionVector,
    history_base: VersionVector,
    log: Vec<u8>,
}

/// The document as format 1 wrote it: its history as changes whose deps are the whole version
/// their replica had seen. For tests of the conversion (and of stores that hold such data);
/// nothing writes format 1 any more.
pub fn encode_legacy_snapshot(doc: &Document) -> Vec<u8> {
    let mut seen: HashMap<(ReplicaId, u64), VersionVector> = HashMap::new();
    let mut history = Vec::new();
    for change in doc.history() {
        let mut deps = seen.get(&(change.replica, change.seq - 1)).cloned().unwrap_or_default();
        deps.set(change.replica, change.seq - 1);
        for dep in &change.deps {
            if let Some(of_dep) = seen.get(&(dep.replica, dep.seq)) {
                deps.merge(of_dep);
            }
            deps.set(dep.replica, deps.get(dep.replica).max(dep.seq));
        }
        let mut closure = deps.clone();
        closure.set(change.replica, change.seq);
        seen.insert((change.replica, change.seq), closure);
        history.push(LegacyChange { replica: change.replica, seq: change.seq, deps, ops: change.ops.into_vec() });
    }
    let fields: Vec<(&str, &Field)> =
        doc.fields_map().iter().map(|((name, _), field)| (name.as_str(), field)).collect();
    let mut out = encode_message(KIND_SNAPSHOT, &(fields, doc.version(), doc.history_base(), history));
    out[0] = LEGACY_FORMAT_VERSION;
    out
}

/// A format 1 snapshot.
#[derive(Deserialize)]
struct LegacySnapshot {
    fields: Vec<(FieldName, Field)>,
    version: VersionVector,
    history_base: VersionVector,
    history: Vec<LegacyChange>,
}

/// A format 1 change: `deps` was the whole version its replica had seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LegacyChange {
    /// The replica that made it.
    pub replica: ReplicaId,
    /// Its number among `replica`'s changes.
    pub seq: u64,
    /// The version `replica` had seen just before making it.
    pub deps: VersionVector,
    /// The operations.
    pub ops: Vec<FieldOp>,
}

/// Converts format 1 changes: each `deps` vector becomes the change's direct dependencies,
/// leaving out what its own previous change, or another dependency, already depends on (where
/// that change is in `changes`, whose vectors tell).
pub fn from_legacy(changes: Vec<LegacyChange>) -> Vec<Change> {
    let index: HashMap<(ReplicaId, u64), usize> =
        changes.iter().enumerate().map(|(i, change)| ((change.replica, change.seq), i)).collect();
    let seen_by = |replica: ReplicaId, seq: u64| index.get(&(replica, seq)).map(|i| &changes[*i].deps);
    let mut out = Vec::with_capacity(changes.len());
    for change in &changes {
        let previous = seen_by(change.replica, change.seq.saturating_sub(1));
        let candidates: Vec<ChangeId> = change
            .deps
            .iter()
            .filter(|(replica, seq)| {
                *replica != change.replica && *seq > 0 && previous.is_none_or(|p| p.get(*replica) < *seq)
            })
            .map(|(replica, seq)| ChangeId { replica, seq })
            .collect();
        let deps = candidates
            .iter()
            .filter(|dep| {
                !candidates.iter().any(|other| {
                    other.replica != dep.replica
                        && seen_by(other.replica, other.seq).is_some_and(|v| v.get(dep.replica) >= dep.seq)
                })
            })
            .copied()
            .collect();
        out.push(Change { replica: change.replica, seq: change.seq, deps, ops: change.ops.clone().into() });
    }
    out
}

/// A byte string that serde hands to the format as bytes, not as a sequence of numbers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

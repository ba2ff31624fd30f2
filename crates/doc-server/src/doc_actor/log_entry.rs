//! The bytes of one op log entry: the changes of one group commit, packed.
//!
//! A packed entry is the tag byte [`PACKED`], then a raw deflate stream of, for each change, its
//! encoding's length (LEB128) and its encoding (`codec::encode_changes` of that one change)
//! minus the previous change's encoding, byte by byte (wrapping; the first change and any bytes
//! past the end of the previous encoding are taken minus zero). Consecutive keystrokes encode
//! to frames of one layout that differ in a few bytes (the seq, the counters, the character),
//! and by the same amounts from one keystroke to the next, so deflate turns a typing run into
//! about 2–3 bytes per change where the frames take about 85. Each change is still decoded by
//! `codec::decode_changes`: this module knows nothing of the encoding but its bytes.
//!
//! A stream of at most 256 bytes (a commit of two or three keystrokes) is stored as it is,
//! after the tag byte [`PLAIN`]: deflating it cost more CPU than the bytes it saved.
//!
//! Entries written before issue 17 are plain `codec::encode_changes` frames. Those start with
//! a codec format version (1 or 2, far below [`PACKED`]), so [`unpack`] reads both.
//!
//! # Invariants
//! - [`pack`] never makes an entry [`unpack`] refuses: an entry holds at most
//!   [`codec::MAX_MESSAGE_LEN`] bytes of change encodings ([`split`] cuts rounds that hold more).
//! - [`unpack`] inflates at most [`codec::MAX_MESSAGE_LEN`] bytes, whatever the entry claims.

use std::io::{Read, Write};

use crdt_core::{codec, Change, DecodeError};
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;

/// First byte of a packed entry (never a codec format version).
pub(super) const PACKED: u8 = 0xD0;
/// First byte of a small entry: the same stream as [`PACKED`], not deflated.
pub(super) const PLAIN: u8 = 0xD1;
/// Streams up to this size are stored as they are: setting up a deflate stream (zlib-rs
/// clears its tables) cost about 9 % of the server's CPU when most commits held two or three
/// keystrokes, and deflate saves little on so few bytes while a commit writes whole pages.
const PLAIN_UP_TO: usize = 256;

/// Encodes each change alone, as a packed entry stores it.
pub(super) fn encode_each(changes: &[&Change]) -> Vec<Vec<u8>> {
    changes.iter().map(|change| codec::encode_changes(std::slice::from_ref(*change))).collect()
}

/// Cuts `frames` (from [`encode_each`]) into runs that each fit one entry.
pub(super) fn split(frames: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, frame) in frames.iter().enumerate() {
        let size = frame.len() + 10;
        if i > start && bytes + size > codec::MAX_MESSAGE_LEN {
            runs.push(&frames[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < frames.len() {
        runs.push(&frames[start..]);
    }
    runs
}

/// Packs the frames of one entry; see the module docs.
pub(super) fn pack(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = Vec::with_capacity(frames.iter().map(|frame| frame.len() + 3).sum());
    let mut previous: &[u8] = &[];
    for frame in frames {
        write_varint(&mut stream, frame.len() as u64);
        stream
            .extend(frame.iter().enumerate().map(|(i, byte)| byte.wrapping_sub(previous.get(i).copied().unwrap_or(0))));
        previous = frame;
    }
    if stream.len() <= PLAIN_UP_TO {
        stream.insert(0, PLAIN);
        return stream;
    }
    let mut out = DeflateEncoder::new(vec![PACKED], Compression::default());
    // Writing to a Vec cannot fail.
    let _ = out.write_all(&stream);
    out.finish().unwrap_or_default()
}

/// Decodes an entry, packed or a plain frame of an earlier server.
pub(super) fn unpack(entry: &[u8]) -> Result<Vec<Change>, DecodeError> {
    let limit = codec::MAX_MESSAGE_LEN as u64;
    let mut inflated = Vec::new();
    let stream: &[u8] = match entry.first() {
        Some(&PLAIN) => &entry[1..],
        Some(&PACKED) => {
            DeflateDecoder::new(&entry[1..])
                .take(limit + 1)
                .read_to_end(&mut inflated)
                .map_err(|error| DecodeError::Malformed(format!("log entry: {error}")))?;
            &inflated
        }
        _ => return codec::decode_changes(entry),
    };
    if stream.len() as u64 > limit {
        return Err(DecodeError::TooLarge { len: stream.len(), limit: codec::MAX_MESSAGE_LEN });
    }
    let mut changes = Vec::new();
    let mut previous: Vec<u8> = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let len = read_varint(&mut rest).ok_or_else(|| DecodeError::Malformed("log entry: bad length".into()))?;
        let len = usize::try_from(len).ok().filter(|len| *len <= rest.len());
        let len = len.ok_or_else(|| DecodeError::Malformed("log entry: length past the end".into()))?;
        let frame: Vec<u8> = rest[..len]
            .iter()
            .enumerate()
            .map(|(i, byte)| byte.wrapping_add(previous.get(i).copied().unwrap_or(0)))
            .collect();
        rest = &rest[len..];
        let mut decoded = codec::decode_changes(&frame)?;
        if decoded.len() != 1 {
            return Err(DecodeError::Invalid("log entry: a frame holds other than one change"));
        }
        changes.append(&mut decoded);
        previous = frame;
    }
    Ok(changes)
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt_core::{Document, ReplicaId};

    fn typing(n: usize) -> Vec<Change> {
        let mut doc = Document::new(ReplicaId::from_u128(7));
        let mut changes = Vec::new();
        for i in 0..n {
            let end = doc.text("body").map_or(0, |text| text.chars().count());
            changes.push(doc.insert_text("body", end, "é").unwrap());
            if i % 10 == 9 {
                changes.extend(doc.delete_text("body", i / 2, 1).unwrap());
            }
        }
        changes.push(doc.set_register("title", "a title".into()));
        changes
    }

    #[test]
    fn packed_entries_round_trip_and_are_small() {
        let changes = typing(500);
        let refs: Vec<&Change> = changes.iter().collect();
        let frames = encode_each(&refs);
        let plain: usize = frames.iter().map(Vec::len).sum();
        let entry = pack(&frames);
        assert_eq!(unpack(&entry).unwrap(), changes);
        assert!(entry.len() * 10 < plain, "{} packed bytes for {plain} plain", entry.len());
    }

    #[test]
    fn small_entries_are_stored_without_deflate_and_round_trip() {
        let changes = typing(2);
        let refs: Vec<&Change> = changes.iter().collect();
        let entry = pack(&encode_each(&refs[..2]));
        assert_eq!(entry[0], PLAIN, "{} bytes", entry.len());
        assert_eq!(unpack(&entry).unwrap(), changes[..2]);
        for cut in 0..entry.len() {
            let _ = unpack(&entry[..cut]);
        }
        let changes = typing(20);
        let refs: Vec<&Change> = changes.iter().collect();
        let entry = pack(&encode_each(&refs));
        assert_eq!(entry[0], PACKED, "{} bytes", entry.len());
    }

    #[test]
    fn plain_entries_of_earlier_servers_are_read() {
        let changes = typing(20);
        assert_eq!(unpack(&codec::encode_changes(&changes)).unwrap(), changes);
    }

    #[test]
    fn bad_entries_are_errors_not_panics() {
        let changes = typing(50);
        let refs: Vec<&Change> = changes.iter().collect();
        let entry = pack(&encode_each(&refs));
        for cut in 0..entry.len() {
            let _ = unpack(&entry[..cut]);
        }
        for i in 1..entry.len() {
            let mut bad = entry.clone();
            bad[i] ^= 0x5a;
            let _ = unpack(&bad);
        }
        assert!(unpack(&pack(&[])).unwrap().is_empty());
        assert!(unpack(&[PACKED]).is_err(), "a deflate stream without its final block");
    }

    #[test]
    fn rounds_above_the_message_limit_are_split() {
        let big = vec![vec![0u8; codec::MAX_MESSAGE_LEN / 3]; 7];
        let runs = split(&big);
        assert_eq!(runs.iter().map(|run| run.len()).collect::<Vec<_>>(), [2, 2, 2, 1]);
        assert_eq!(split(&[]).len(), 0);
    }
}

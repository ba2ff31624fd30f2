//! The deflate streams of a packed state, written and read back.
//!
//! Every build writes with flate2's zlib-rs, so a document encodes to the same bytes on the
//! server and in the browser. Native builds read the text literals back with libdeflate (faster
//! to inflate); the browser reads everything with zlib-rs. Each reads any deflate stream.

use std::io::Write;

/// `data` deflated by flate2 at `level`.
pub(super) fn deflate(data: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::with_capacity(data.len() / 3), level);
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// The text literals deflated, by flate2's zlib-rs at its best level in every build: an encoder
/// must write the same bytes natively and in the browser (a snapshot's bytes are compared, and
/// hashed, across them), so the literals no longer go through libdeflate on the way in; they
/// still come back out through it natively (see [`inflate_literals`]).
pub(super) fn deflate_literals(data: &[u8]) -> Vec<u8> {
    deflate(data, flate2::Compression::best())
}

/// Inflates the text literals after what `out` holds, to `total` bytes in all: any other length
/// is an error. Native builds use libdeflate (see
/// [`deflate_literals`]); both read any deflate stream.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn inflate_literals(stream: &[u8], out: &mut Vec<u8>, total: usize) -> Result<(), &'static str> {
    let at = out.len();
    out.resize(total, 0);
    match libdeflater::Decompressor::new().deflate_decompress(stream, &mut out[at..]) {
        Ok(len) if at + len == out.len() => Ok(()),
        Ok(_) | Err(libdeflater::DecompressionError::InsufficientSpace) => Err(SHORT),
        Err(libdeflater::DecompressionError::BadData) => Err(NOT_DEFLATE),
    }
}

#[cfg(target_arch = "wasm32")]
pub(super) fn inflate_literals(stream: &[u8], out: &mut Vec<u8>, total: usize) -> Result<(), &'static str> {
    // Into the spare capacity (`total` bytes were reserved): nothing is zeroed first.
    let status = flate2::Decompress::new(false)
        .decompress_vec(stream, out, flate2::FlushDecompress::Finish)
        .map_err(|_| NOT_DEFLATE)?;
    // Short of the capacity, or stopped at it before the stream's end.
    if status != flate2::Status::StreamEnd || out.len() != total {
        return Err(SHORT);
    }
    Ok(())
}

const NOT_DEFLATE: &str = "text state is not valid deflate data";
/// The literals and repeats do not make up the texts' lengths.
const SHORT: &str = "texts do not add up to their lengths";

/// Inflates `data`, refusing to produce more than `limit` bytes.
///
/// Decompresses into the spare capacity of one buffer (nothing is zeroed first): a first guess
/// at the size, grown (only for data that expands more than that) to twice as large, up to
/// `limit`.
pub(super) fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(2).saturating_add(4096).min(limit));
    let mut dec = flate2::Decompress::new(false);
    loop {
        let read = dec.total_in() as usize;
        let status =
            dec.decompress_vec(&data[read..], &mut out, flate2::FlushDecompress::Finish).map_err(|_| NOT_DEFLATE)?;
        match status {
            flate2::Status::StreamEnd if out.len() <= limit => return Ok(out),
            flate2::Status::StreamEnd => return Err("text state inflates too much"),
            // Stopped with room left: the stream ends early.
            _ if out.len() < out.capacity() => return Err(NOT_DEFLATE),
            _ if out.len() >= limit => return Err("text state inflates too much"),
            _ => out.reserve_exact(out.len().min(limit - out.len())),
        }
    }
}

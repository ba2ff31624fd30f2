//! The deflate streams of a packed state, written and read back.
//!
//! Native builds (the server) compress with flate2's zlib-rs. The browser build (wasm32) writes
//! stored (uncompressed) streams only: what it writes stays on the device (IndexedDB, the
//! other tabs), and a compressor is about 8 KB of the brotli-compressed wasm that every first
//! open downloads (issue 21). Every reader accepts both. [`as_the_browser_writes`] makes a
//! native build write what the browser build writes, so that `web/test/determinism.test.mjs`
//! can compare the two byte for byte. Stored streams are written here, block by block. Native
//! builds read the text literals back with libdeflate (faster to inflate); everything else is
//! read with miniz_oxide, the inflater the browser carries.

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    /// Set inside [`as_the_browser_writes`].
    static BROWSER_FORM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this build writing stored streams where it would compress, as the browser
/// build always does (the browser build just runs `f`).
pub fn as_the_browser_writes<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(not(target_arch = "wasm32"))]
    {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                BROWSER_FORM.with(|form| form.set(self.0));
            }
        }
        let _reset = Reset(BROWSER_FORM.with(|form| form.replace(true)));
        f()
    }
    #[cfg(target_arch = "wasm32")]
    f()
}

/// `data` deflated at zlib's best level; `None` where this build writes stored streams (the
/// browser, see the module docs).
pub(super) fn deflate_best(data: &[u8]) -> Option<Vec<u8>> {
    #[cfg(not(target_arch = "wasm32"))]
    if !BROWSER_FORM.with(|form| form.get()) {
        use std::io::Write;
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::with_capacity(data.len() / 3), flate2::Compression::best());
        encoder.write_all(data).expect("writing to a Vec cannot fail");
        return Some(encoder.finish().expect("writing to a Vec cannot fail"));
    }
    let _ = data;
    None
}

/// `data` as one deflate stream of stored (uncompressed) blocks: five bytes a block of up to
/// 65,535 bytes, and one empty final block for empty data.
pub(super) fn stored(data: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = u16::MAX as usize;
    let mut out = Vec::with_capacity(data.len() + 5 * (data.len() / MAX_BLOCK + 1));
    let mut blocks = data.chunks(MAX_BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        // BFINAL in bit 0, block type 00 (stored) in bits 1-2; the rest of the byte is padding.
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

/// Inflates the text literals after what `out` holds, to `total` bytes in all: any other length
/// is an error. Native builds use libdeflate (faster: about two thirds of zlib-rs' time); both
/// read any deflate stream.
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
pub(super) use self::inflate_literals_portable as inflate_literals;

/// [`inflate_literals`] with miniz_oxide: what the browser runs (and native tests check).
#[cfg(any(target_arch = "wasm32", test))]
pub(super) fn inflate_literals_portable(stream: &[u8], out: &mut Vec<u8>, total: usize) -> Result<(), &'static str> {
    use miniz_oxide::inflate::{decompress_slice_iter_to_slice, TINFLStatus};
    let at = out.len();
    out.resize(total, 0);
    match decompress_slice_iter_to_slice(&mut out[at..], std::iter::once(stream), false, true) {
        Ok(len) if at + len == total => Ok(()),
        Ok(_) | Err(TINFLStatus::HasMoreOutput) => Err(SHORT),
        Err(_) => Err(NOT_DEFLATE),
    }
}

const NOT_DEFLATE: &str = "text state is not valid deflate data";
/// The literals and repeats do not make up the texts' lengths.
const SHORT: &str = "texts do not add up to their lengths";

/// Inflates `data`, refusing to produce more than `limit` bytes.
pub(super) fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, &'static str> {
    use miniz_oxide::inflate::{decompress_to_vec_with_limit, TINFLStatus};
    decompress_to_vec_with_limit(data, limit).map_err(|error| match error.status {
        TINFLStatus::HasMoreOutput => "text state inflates too much",
        _ => NOT_DEFLATE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8 ^ (i / 300) as u8).collect()
    }

    #[test]
    fn stored_streams_inflate_back() {
        for len in [0, 1, 65_534, 65_535, 65_536, 200_000] {
            let data = sample(len);
            let stream = stored(&data);
            assert_eq!(stream.len(), data.len() + 5 * data.len().div_ceil(65_535).max(1), "{len}");
            assert_eq!(inflate(&stream, len).unwrap(), data, "{len}");
            // A compressed stream of the same data reads back through both literal readers.
            let deflated = deflate_best(&data).unwrap();
            for read in [inflate_literals, inflate_literals_portable] {
                let mut out = vec![9, 9];
                read(&deflated, &mut out, len + 2).unwrap();
                assert_eq!(out[2..], data[..], "{len}");
                let mut out = vec![9, 9];
                read(&stream, &mut out, len + 2).unwrap();
                assert_eq!(out[2..], data[..], "{len}");
            }
        }
    }

    #[test]
    fn the_browser_form_is_stored() {
        let data = sample(5000);
        assert!(deflate_best(&data).is_some());
        assert_eq!(as_the_browser_writes(|| deflate_best(&data)), None);
        // Unwinding out of it restores the native form.
        let _ = std::panic::catch_unwind(|| as_the_browser_writes(|| panic!("inside")));
        assert!(deflate_best(&data).is_some());
    }

    #[test]
    fn wrong_lengths_and_bad_data_are_errors() {
        let data = sample(5000);
        let deflated = deflate_best(&data).unwrap();
        assert!(deflated.len() < data.len());
        for read in [inflate_literals, inflate_literals_portable] {
            assert_eq!(read(&deflated, &mut Vec::new(), 4999), Err(SHORT));
            assert_eq!(read(&deflated, &mut Vec::new(), 5001), Err(SHORT));
            assert!(read(&deflated[..deflated.len() / 2], &mut Vec::new(), 5000).is_err());
            assert_eq!(read(&[0xff; 40], &mut Vec::new(), 5000), Err(NOT_DEFLATE));
        }
        assert_eq!(inflate(&deflated, 4999), Err("text state inflates too much"));
        assert_eq!(inflate(&deflated, 5000).unwrap(), data);
        assert_eq!(inflate(&deflated[..deflated.len() / 2], 5000), Err(NOT_DEFLATE));
    }
}

//! The compact byte form of an [`RgaState`](super::snapshot): columns of varints, deflated.
//!
//! ```text
//! deflate(
//!   varint replica count R, then R × (varint byte length, UTF-8 text)  // per-replica text
//!   varint run count N, then five columns of N entries each:
//!     replica      varint index
//!     counter      zigzag varint, the difference to the previous run's counter
//!     len          varint
//!     deleted      one byte, 0 or 1
//!     origins      left:  0 none | 1 the run's own previous id (counter - 1, same replica)
//!                         | 2 + replica index, then zigzag (origin counter - run counter)
//!                  right: 0 none | 1 + replica index, then zigzag (origin counter - run counter)
//! )
//! ```
//!
//! Typing produces runs whose left origin is the run's own previous character and whose ids
//! are close to their neighbours', so most entries are one small byte and deflate does the rest
//! (the text itself is most of what remains).
//!
//! Unpacking is bounded: the inflated size is capped (a zip bomb is an error, not an
//! allocation), and every count is checked against the bytes left before anything is reserved.

use std::io::{Read, Write};

use super::snapshot::{RgaState, StateRun};

/// The most an unpacked state may inflate to, relative to the packed bytes, plus a floor.
const MAX_RATIO: usize = 64;
const MAX_FLOOR: usize = 1 << 20;

pub(super) fn pack(state: &RgaState) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, state.text.len() as u64);
    for text in &state.text {
        put(&mut out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
    }
    let runs = &state.runs;
    put(&mut out, runs.len() as u64);
    for r in runs {
        put(&mut out, r.replica as u64);
    }
    let mut prev = 0i64;
    for r in runs {
        put(&mut out, zigzag(r.counter as i64 - prev));
        prev = r.counter as i64;
    }
    for r in runs {
        put(&mut out, r.len as u64);
    }
    out.extend(runs.iter().map(|r| r.deleted as u8));
    for r in runs {
        match r.origin_left {
            None => put(&mut out, 0),
            Some((rep, c)) if rep == r.replica && r.counter > 0 && c == r.counter - 1 => put(&mut out, 1),
            Some((rep, c)) => {
                put(&mut out, 2 + rep as u64);
                put(&mut out, zigzag(c as i64 - r.counter as i64));
            }
        }
        match r.origin_right {
            None => put(&mut out, 0),
            Some((rep, c)) => {
                put(&mut out, 1 + rep as u64);
                put(&mut out, zigzag(c as i64 - r.counter as i64));
            }
        }
    }
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&out).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

pub(super) fn unpack(packed: &[u8], replicas: usize) -> Result<(Vec<String>, Vec<StateRun>), &'static str> {
    let cap = packed.len().saturating_mul(MAX_RATIO).saturating_add(MAX_FLOOR);
    let mut raw = Vec::new();
    let mut dec = flate2::read::DeflateDecoder::new(packed).take(cap as u64 + 1);
    dec.read_to_end(&mut raw).map_err(|_| "text state is not valid deflate data")?;
    if raw.len() > cap {
        return Err("text state inflates too much");
    }
    let mut rd = Reader { buf: &raw, at: 0 };
    let n = rd.count()?;
    if n != replicas {
        return Err("one text per replica");
    }
    let mut text = Vec::with_capacity(n);
    for _ in 0..n {
        let len = rd.count()?;
        let bytes = rd.bytes(len)?;
        text.push(std::str::from_utf8(bytes).map_err(|_| "text is not UTF-8")?.to_owned());
    }
    let count = rd.count()?;
    let mut runs: Vec<StateRun> = Vec::with_capacity(count);
    for _ in 0..count {
        let replica = rd.u32()?;
        runs.push(StateRun { replica, counter: 0, len: 0, origin_left: None, origin_right: None, deleted: false });
    }
    let mut prev = 0i64;
    for r in runs.iter_mut() {
        prev = prev.checked_add(unzigzag(rd.varint()?)).ok_or("counter out of range")?;
        r.counter = u32::try_from(prev).map_err(|_| "counter out of range")?;
    }
    for r in runs.iter_mut() {
        r.len = rd.u32()?;
    }
    for r in runs.iter_mut() {
        r.deleted = match rd.bytes(1)?[0] {
            0 => false,
            1 => true,
            _ => return Err("deleted flag is not 0 or 1"),
        };
    }
    for r in runs.iter_mut() {
        r.origin_left = match rd.varint()? {
            0 => None,
            1 => Some((r.replica, r.counter.checked_sub(1).ok_or("origin before the first id")?)),
            code => Some((u32::try_from(code - 2).map_err(|_| "bad replica")?, rd.relative(r.counter)?)),
        };
        r.origin_right = match rd.varint()? {
            0 => None,
            code => Some((u32::try_from(code - 1).map_err(|_| "bad replica")?, rd.relative(r.counter)?)),
        };
    }
    if rd.at != raw.len() {
        return Err("trailing bytes in text state");
    }
    Ok((text, runs))
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.at).ok_or("text state ends early")?;
            self.at += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.varint()?).map_err(|_| "number out of range")
    }

    /// A count of things still to read: never more than the bytes left, so a lying count
    /// cannot make us reserve memory.
    fn count(&mut self) -> Result<usize, &'static str> {
        let n = self.varint()?;
        if n > (self.buf.len() - self.at) as u64 {
            return Err("count larger than the data");
        }
        Ok(n as usize)
    }

    fn bytes(&mut self, len: usize) -> Result<&[u8], &'static str> {
        let end = self.at.checked_add(len).filter(|e| *e <= self.buf.len()).ok_or("text state ends early")?;
        let b = &self.buf[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn relative(&mut self, base: u32) -> Result<u32, &'static str> {
        let v = (base as i64).checked_add(unzigzag(self.varint()?)).ok_or("counter out of range")?;
        u32::try_from(v).map_err(|_| "counter out of range")
    }
}

//! Format 1 of the packed state: one deflate stream of plain columns, written before format 2
//! and still read. Nothing in it is predicted, so every run is checked on its own afterwards.

use super::columns::{Cover, NEVER_INSERTED};
use super::flate::inflate;
use super::{buffers, cap};
use crate::rga::content::CharBuf;
use crate::rga::id::Id;
use crate::rga::node::Run;
use crate::varint::{unzigzag, Reader};

pub(super) fn unpack_v1(packed: &[u8], replicas: usize) -> Result<(Vec<CharBuf>, Vec<Run>), &'static str> {
    let raw = inflate(packed, cap(packed.len()))?;
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
    let mut runs: Vec<Run> = Vec::with_capacity(count);
    for _ in 0..count {
        let replica = rd.u32()?;
        runs.push(Run {
            id: Id::new(replica, 0),
            len: 0,
            origin_left: Id::NONE,
            origin_right: Id::NONE,
            deleted: false,
        });
    }
    let mut prev = 0i64;
    for r in runs.iter_mut() {
        prev = prev.checked_add(unzigzag(rd.varint()?)).ok_or("counter out of range")?;
        r.id.counter = u32::try_from(prev).map_err(|_| "counter out of range")?;
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
    // An origin's replica must be a listed one (so no origin reads as `Id::NONE` by accident).
    let listed = |replica: u64| match u32::try_from(replica) {
        Ok(r) if (r as usize) < replicas => Ok(r),
        _ => Err("bad replica"),
    };
    for r in runs.iter_mut() {
        let counter = r.id.counter;
        r.origin_left = match rd.varint()? {
            0 => Id::NONE,
            1 => Id::new(r.id.replica, counter.checked_sub(1).ok_or("origin before the first id")?),
            code => Id::new(listed(code - 2)?, rd.relative(counter)?),
        };
        r.origin_right = match rd.varint()? {
            0 => Id::NONE,
            code => Id::new(listed(code - 1)?, rd.relative(counter)?),
        };
    }
    if rd.at != raw.len() {
        return Err("trailing bytes in text state");
    }
    let content = buffers(text)?;
    let chars: Vec<u32> = content.iter().map(CharBuf::chars).collect();
    check_runs(&runs, &chars)?;
    Ok((content, runs))
}

/// The checks of [`unpack`](super::unpack), for runs read from format 1 (where nothing was predicted).
fn check_runs(runs: &[Run], chars: &[u32]) -> Result<(), &'static str> {
    let n = chars.len();
    let known = |id: Id| id.is_none() || ((id.replica as usize) < n && id.counter < chars[id.replica as usize]);
    let mut cover = Cover::new(chars);
    for run in runs {
        if run.id.replica as usize >= n || run.len == 0 {
            return Err("run of an unknown replica or empty");
        }
        let end = run.id.counter.checked_add(run.len).ok_or("run past the replica's text")?;
        if end > chars[run.id.replica as usize] {
            return Err("run past the replica's text");
        }
        cover.add(run.id.replica, run.id.counter, end)?;
        if !known(run.origin_left) || !known(run.origin_right) {
            return Err(NEVER_INSERTED);
        }
    }
    cover.finish()
}

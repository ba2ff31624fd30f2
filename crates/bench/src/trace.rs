//! Loading the editing traces (`../shared/traces/*.json.gz`) into one flat list of patches.
//!
//! A trace is `{startContent, endContent, txns: [{patches: [[pos, del, ins]]}]}` with positions in
//! Unicode code points. Every library is fed the same [`Patch`]es; a library that counts in
//! UTF-16 code units (yrs) reads `pos16`/`del16`, which are computed here once, outside any timing.
//!
//! # Invariants
//! - `txns` partitions `patches`: the ranges are contiguous, non-empty and cover every patch.
//! - Applying the patches in order to `""` gives `end`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use jumprope::JumpRope;
use serde::Deserialize;

/// One splice: delete `del` characters at `pos`, then insert `ins` there.
#[derive(Clone, Debug)]
pub struct Patch {
    /// Position in characters (code points).
    pub pos: usize,
    /// Characters deleted.
    pub del: usize,
    /// Position in UTF-16 code units.
    pub pos16: usize,
    /// UTF-16 code units deleted.
    pub del16: usize,
    /// Inserted text (may be empty).
    pub ins: String,
    /// Characters in `ins`.
    pub ins_chars: usize,
}

/// A whole trace, ready to replay.
pub struct Trace {
    pub name: String,
    pub patches: Vec<Patch>,
    /// Each transaction's range of `patches` (one user action: a keystroke, a paste, a multi-cursor
    /// edit). Libraries with transactions commit once per entry.
    pub txns: Vec<Range<usize>>,
    /// The expected final text.
    pub end: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTrace {
    start_content: String,
    end_content: String,
    txns: Vec<RawTxn>,
}

#[derive(Deserialize)]
struct RawTxn {
    patches: Vec<(usize, usize, String)>,
}

impl Trace {
    /// Reads and checks `path` (a `.json.gz` sequential trace).
    pub fn load(path: &Path) -> Result<Trace, String> {
        let name = name(path).ok_or_else(|| format!("bad trace file name {}", path.display()))?;
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut json = Vec::new();
        GzDecoder::new(BufReader::new(file))
            .read_to_end(&mut json)
            .map_err(|e| format!("cannot gunzip {}: {e}", path.display()))?;
        let raw: RawTrace =
            serde_json::from_slice(&json).map_err(|e| format!("{} is not a sequential trace: {e}", path.display()))?;
        if !raw.start_content.is_empty() {
            return Err(format!("{}: startContent is not empty", path.display()));
        }
        let mut patches = Vec::new();
        let mut txns = Vec::with_capacity(raw.txns.len());
        for txn in raw.txns {
            let start = patches.len();
            for (pos, del, ins) in txn.patches {
                let ins_chars = ins.chars().count();
                patches.push(Patch { pos, del, pos16: pos, del16: del, ins, ins_chars });
            }
            if patches.len() > start {
                txns.push(start..patches.len());
            }
        }
        let mut trace = Trace { name, patches, txns, end: raw.end_content };
        trace.fill_utf16_and_check()?;
        Ok(trace)
    }

    /// Replays the trace once in a plain rope to compute UTF-16 positions and to check that it
    /// really ends at `end`.
    fn fill_utf16_and_check(&mut self) -> Result<(), String> {
        let ascii = self.patches.iter().all(|p| p.ins.is_ascii());
        let mut rope = JumpRope::new();
        for p in &mut self.patches {
            if p.pos + p.del > rope.len_chars() {
                return Err(format!("{}: patch out of bounds", self.name));
            }
            if !ascii {
                p.pos16 = rope.chars_to_wchars(p.pos);
                p.del16 = rope.chars_to_wchars(p.pos + p.del) - p.pos16;
            }
            if p.del > 0 {
                rope.remove(p.pos..p.pos + p.del);
            }
            if !p.ins.is_empty() {
                rope.insert(p.pos, &p.ins);
            }
        }
        if rope.to_string() != self.end {
            return Err(format!("{}: replay does not give endContent", self.name));
        }
        Ok(())
    }
}

/// The trace's name: its file name without `.json.gz`.
pub fn name(path: &Path) -> Option<String> {
    path.file_name().and_then(|n| n.to_str()).map(|n| n.trim_end_matches(".json.gz").to_owned())
}

/// The `.json.gz` files directly in `dir`, sorted by name.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read traces dir {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.to_str().is_some_and(|s| s.ends_with(".json.gz")))
        .collect();
    files.sort();
    Ok(files)
}

//! Shared helpers for the integration tests: reading the editing traces of `../shared/traces`.
//!
//! The traces are never copied into this repository. They are read from `$TRACES_DIR` if set,
//! else from `../shared/traces` beside the repository (where CI puts them).

use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

/// One patch: at character `pos`, delete `del` characters, then insert `ins`.
#[derive(Debug, Clone, Deserialize)]
pub struct Patch(pub usize, pub usize, pub String);

#[derive(Debug, Deserialize)]
struct Txn {
    patches: Vec<Patch>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceFile {
    start_content: String,
    end_content: String,
    txns: Vec<Txn>,
}

/// A sequential editing trace.
#[derive(Debug)]
pub struct Trace {
    /// File name without `.json.gz`.
    pub name: String,
    /// Text before the first patch.
    pub start: String,
    /// Text after the last patch.
    pub end: String,
    /// Every patch of every transaction, in order.
    pub patches: Vec<Patch>,
}

/// Where the traces are.
pub fn traces_dir() -> PathBuf {
    match std::env::var_os("TRACES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces"),
    }
}

/// Reads every `*.json.gz` trace (not the `ascii_only` copies), sorted by name. Panics with a
/// clear message if the directory is missing: the trace tests must not pass vacuously.
pub fn load_traces() -> Vec<Trace> {
    let dir = traces_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read traces at {} ({e}); set TRACES_DIR", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no traces in {}", dir.display());
    paths.iter().map(|p| load_trace(p)).collect()
}

fn load_trace(path: &std::path::Path) -> Trace {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut json = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut json).expect("gzip");
    let parsed: TraceFile = serde_json::from_str(&json).expect("trace json");
    let name = path.file_name().unwrap().to_string_lossy().trim_end_matches(".json.gz").to_string();
    Trace {
        name,
        start: parsed.start_content,
        end: parsed.end_content,
        patches: parsed.txns.into_iter().flat_map(|t| t.patches).collect(),
    }
}

//! The libraries under test, each a thin adapter to the driver's traits (one file each), and the
//! list that says which measurements each one takes part in.

pub mod automerge;
pub mod cola;
pub mod diamond;
pub mod loro;
pub mod ours;
pub mod rope;
pub mod yrs;

use std::time::Duration;

use crate::driver::{self, Encoded, Runs, Timing};
use crate::trace::Trace;

/// One library in the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    Ours,
    Rope,
    Diamond,
    Cola,
    Loro,
    Automerge,
    Yrs,
}

/// Everything measured for one library on one trace (`None`: not applicable to that library).
pub struct LibResult {
    pub library: Library,
    pub local: Timing,
    pub heap: usize,
    pub remote: Option<Timing>,
    pub merge: Option<Timing>,
    pub encodings: Vec<Encoded>,
    /// Size-only encoding experiments (ours only), labelled.
    pub experiments: Vec<(&'static str, usize)>,
}

impl Library {
    pub const ALL: [Library; 7] = [
        Library::Ours,
        Library::Rope,
        Library::Diamond,
        Library::Cola,
        Library::Loro,
        Library::Automerge,
        Library::Yrs,
    ];

    pub fn parse(s: &str) -> Result<Library, String> {
        Library::ALL
            .into_iter()
            .find(|l| l.key() == s)
            .ok_or_else(|| format!("unknown library {s} (one of ours, rope, dt, cola, loro, automerge, yrs)"))
    }

    /// The short name `--libs` takes.
    pub fn key(self) -> &'static str {
        match self {
            Library::Ours => "ours",
            Library::Rope => "rope",
            Library::Diamond => "dt",
            Library::Cola => "cola",
            Library::Loro => "loro",
            Library::Automerge => "automerge",
            Library::Yrs => "yrs",
        }
    }

    /// The name and version shown in the tables (versions as locked in Cargo.lock).
    pub fn title(self) -> &'static str {
        match self {
            Library::Ours => "**ours** (crdt-core Rga)",
            Library::Rope => "plain rope, no CRDT (jumprope 1.1)",
            Library::Diamond => "diamond-types 1.0",
            Library::Cola => "cola 0.5 + jumprope",
            Library::Loro => "loro 1.17",
            Library::Automerge => "automerge 0.12",
            Library::Yrs => "yrs 0.28",
        }
    }

    /// One local apply of this library (see [`driver::local_interleaved`]).
    pub fn local_once(self, trace: &Trace) -> (Duration, usize) {
        let name = self.key();
        match self {
            Library::Ours => driver::local_once::<ours::Ours>(name, trace),
            Library::Rope => driver::local_once::<rope::Rope>(name, trace),
            Library::Diamond => driver::local_once::<diamond::Diamond>(name, trace),
            Library::Cola => driver::local_once::<cola::Cola>(name, trace),
            Library::Loro => driver::local_once::<loro::Loro>(name, trace),
            Library::Automerge => driver::local_once::<automerge::Automerge>(name, trace),
            Library::Yrs => driver::local_once::<yrs::Yrs>(name, trace),
        }
    }

    /// Everything but local apply (measured beforehand, interleaved with the other libraries),
    /// and for ours but remote apply (measured in the same rounds, `ours_remote`).
    pub fn measure(
        self,
        trace: &Trace,
        runs: Runs,
        (local, heap): (Timing, usize),
        ours_remote: Option<Timing>,
    ) -> LibResult {
        let name = self.key();
        eprintln!("   {name}");
        match self {
            Library::Ours => {
                let mut result = full::<ours::Ours>(self, trace, runs, local, heap, ours_remote);
                let mut doc = <ours::Ours as driver::Peer>::empty(driver::REPLICA_A);
                driver::replay(&mut doc, trace, 0);
                result.experiments = ours::size_experiments(&doc.rga);
                result
            }
            Library::Rope => LibResult {
                library: self,
                local,
                heap,
                remote: None,
                merge: None,
                encodings: Vec::new(),
                experiments: Vec::new(),
            },
            Library::Diamond => full::<diamond::Diamond>(self, trace, runs, local, heap, None),
            Library::Cola => full::<cola::Cola>(self, trace, runs, local, heap, None),
            Library::Loro => full::<loro::Loro>(self, trace, runs, local, heap, None),
            Library::Automerge => full::<automerge::Automerge>(self, trace, runs, local, heap, None),
            Library::Yrs => full::<yrs::Yrs>(self, trace, runs, local, heap, None),
        }
    }
}

fn full<P: driver::Remote + driver::Merge + driver::Encode>(
    library: Library,
    trace: &Trace,
    runs: Runs,
    local: Timing,
    heap: usize,
    remote: Option<Timing>,
) -> LibResult {
    let name = library.key();
    let remote = Some(remote.unwrap_or_else(|| driver::remote::<P>(name, trace, runs)));
    let merge = Some(driver::merge::<P>(name, trace, runs));
    let encodings = driver::encode::<P>(name, trace, runs);
    LibResult { library, local, heap, remote, merge, encodings, experiments: Vec::new() }
}

//! Side-by-side benchmark of crdt-core's `Rga` against yrs, automerge, loro, diamond-types, cola
//! and a plain rope, on the real editing traces in `../shared/traces`.
//!
//! ```text
//! cargo run -p bench --release -- [--traces DIR] [--runs 5] [--only NAME] [--libs ours,dt,...]
//!                                 [--budget SECS] [--no-scaling] [--smoke] [--in-process]
//! cargo run -p bench --release -- --document [--traces DIR] [--runs 5] [--only NAME] [--smoke]
//! ```
//!
//! Each trace, and then the scaling table, is measured in a fresh process (this binary run again
//! with an internal `--child-trace FILE` or `--child-scaling`): what automerge or yrs leave in the
//! allocator after one trace must not slow down every library on the next.
//!
//! Every library goes through the same driver (`driver.rs`), every result is checked against the
//! trace's `endContent`, and the output is a markdown report: one table per trace, the ratios
//! ours ÷ each peer, the issue's goals marked met or not, and a scaling table.
//!
//! `--document` measures instead what the `Document` an editor uses costs next to the bare `Rga`
//! (`document.rs`): local apply, heap, snapshot size and load, page opens, wire bytes per change.
//! With `--smoke` it runs one small trace once.

mod alloc;
mod document;
mod driver;
mod peers;
mod report;
mod scaling;
mod trace;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use driver::Runs;
use peers::ours::Ours;
use peers::Library;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// The trace `--smoke` runs: the smallest of the four.
const SMOKE_TRACE: &str = "sveltecomponent";
const SCALING_SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

/// Where this process stands in a run.
#[derive(Clone, PartialEq)]
enum Mode {
    /// Runs each trace, then the scaling table, in a child process and prints the whole report.
    Parent,
    /// Measures everything in this process (`--in-process`).
    InProcess,
    /// Internal: measures the trace in this file and prints its part of the report.
    ChildTrace(PathBuf),
    /// Internal: measures the scaling table and prints it.
    ChildScaling,
}

struct Args {
    traces: PathBuf,
    runs: usize,
    only: Option<String>,
    libs: Vec<Library>,
    budget: Duration,
    scaling: bool,
    /// `--document`: the Document-level report instead of the side-by-side one.
    document: bool,
    mode: Mode,
}

impl Args {
    fn runs(&self) -> Runs {
        Runs { wanted: self.runs, budget: self.budget }
    }
}

fn usage() -> &'static str {
    "usage: bench [--traces DIR] [--runs N] [--only TRACE] [--libs ours,rope,dt,cola,loro,automerge,yrs] \
     [--budget SECS] [--no-scaling] [--smoke] [--in-process]\n\
     usage: bench --document [--traces DIR] [--runs N] [--only TRACE] [--budget SECS] [--smoke] [--in-process]\n\
     Prints a markdown report to stdout, progress to stderr. Each trace (and the scaling table) runs in a \
     fresh process unless --in-process."
}

fn parse_args() -> Result<Args, String> {
    let default_traces = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces");
    let mut args = Args {
        traces: default_traces,
        runs: 5,
        only: None,
        libs: Library::ALL.to_vec(),
        budget: Duration::from_secs(20),
        scaling: true,
        document: false,
        mode: Mode::Parent,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{}", usage()));
        match arg.as_str() {
            "--traces" => args.traces = PathBuf::from(value("--traces")?),
            "--runs" => args.runs = value("--runs")?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--only" => args.only = Some(value("--only")?),
            "--libs" => {
                args.libs = value("--libs")?.split(',').map(Library::parse).collect::<Result<_, _>>()?;
            }
            "--budget" => {
                args.budget = Duration::from_secs_f64(value("--budget")?.parse().map_err(|e| format!("--budget: {e}"))?)
            }
            "--no-scaling" => args.scaling = false,
            "--smoke" => {
                args.runs = 1;
                args.only = Some(SMOKE_TRACE.to_owned());
                args.scaling = false;
            }
            "--document" => args.document = true,
            "--in-process" => args.mode = Mode::InProcess,
            "--child-trace" => args.mode = Mode::ChildTrace(PathBuf::from(value("--child-trace")?)),
            "--child-scaling" => args.mode = Mode::ChildScaling,
            "--help" | "-h" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    Ok(args)
}

/// Measures the trace in `file` with every library in `args` and renders its part of the report.
fn trace_section(file: &Path, args: &Args) -> Result<String, String> {
    let runs = args.runs();
    let trace = trace::Trace::load(file)?;
    eprintln!("== {} ({} txns, {} patches)", trace.name, trace.txns.len(), trace.patches.len());
    eprintln!("   local apply, interleaved: {}", args.libs.iter().map(|l| l.key()).collect::<Vec<_>>().join(", "));
    let t = &trace;
    let mut once: Vec<Box<dyn FnMut() -> (Duration, usize)>> =
        args.libs.iter().map(|&lib| Box::new(move || lib.local_once(t)) as Box<dyn FnMut() -> _>).collect();
    // Our remote apply runs in the same rounds: the goal compares it with our local apply.
    let ours = args.libs.contains(&Library::Ours);
    if ours {
        eprintln!("   and ours remote apply");
        let ops = driver::record::<Ours>(t);
        once.push(Box::new(move || (driver::remote_once::<Ours>("ours", t, &ops), 0)));
    }
    let mut locals = driver::local_interleaved(runs, &mut once);
    drop(once);
    let ours_remote = if ours { locals.pop().map(|(timing, _)| timing) } else { None };
    let libs = args.libs.iter().zip(locals).map(|(lib, local)| lib.measure(&trace, runs, local, ours_remote)).collect();
    Ok(report::trace_section(&report::TraceResult::new(&trace, libs), args.runs))
}

fn scaling_section() -> String {
    eprintln!("== scaling");
    report::scaling_section(&scaling::run(&SCALING_SIZES))
}

/// Runs this binary again with `extra` and the measurement options of `args`, and returns what
/// it printed (its progress goes straight to our stderr).
fn child(args: &Args, extra: &[&OsStr]) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let libs = args.libs.iter().map(|l| l.key()).collect::<Vec<_>>().join(",");
    let output = Command::new(exe)
        .args(extra)
        .args(["--runs", &args.runs.to_string(), "--budget", &args.budget.as_secs_f64().to_string(), "--libs", &libs])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start a child bench process: {e}"))?;
    if !output.status.success() {
        return Err(format!("a child bench process failed ({})", output.status));
    }
    String::from_utf8(output.stdout).map_err(|_| "a child bench process printed invalid UTF-8".to_owned())
}

fn run(args: &Args) -> Result<String, String> {
    match &args.mode {
        Mode::ChildTrace(file) if args.document => return document::trace_section(file, args.runs()),
        Mode::ChildTrace(file) => return trace_section(file, args),
        Mode::ChildScaling => return Ok(scaling_section()),
        Mode::Parent | Mode::InProcess => {}
    }
    let files: Vec<PathBuf> = trace::list(&args.traces)?
        .into_iter()
        .filter(|f| args.only.as_ref().is_none_or(|o| trace::name(f).is_some_and(|n| n.contains(o.as_str()))))
        .collect();
    if files.is_empty() {
        return Err(format!("no trace matched in {}", args.traces.display()));
    }
    let fresh = args.mode == Mode::Parent;
    if args.document {
        let sections = files
            .iter()
            .map(|file| {
                if fresh {
                    child(args, &["--document".as_ref(), "--child-trace".as_ref(), file.as_os_str()])
                } else {
                    document::trace_section(file, args.runs())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(document::join(document::header(args.runs, args.budget, fresh), &sections));
    }
    let mut out = report::header(args.runs, args.budget, fresh);
    for file in &files {
        let section = if fresh {
            child(args, &["--child-trace".as_ref(), file.as_os_str()])?
        } else {
            trace_section(file, args)?
        };
        out.push_str(&section);
    }
    if args.scaling {
        out.push_str(&if fresh { child(args, &["--child-scaling".as_ref()])? } else { scaling_section() });
    }
    Ok(out)
}

fn main() -> ExitCode {
    let report = parse_args().and_then(|args| run(&args));
    match report {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

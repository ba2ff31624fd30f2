//! Side-by-side benchmark of crdt-core's `Rga` against yrs, automerge, loro, diamond-types, cola
//! and a plain rope, on the real editing traces in `../shared/traces`.
//!
//! ```text
//! cargo run -p bench --release -- [--traces DIR] [--runs 5] [--only NAME] [--libs ours,dt,...]
//!                                 [--budget SECS] [--no-scaling] [--smoke]
//! ```
//!
//! Every library goes through the same driver (`driver.rs`), every result is checked against the
//! trace's `endContent`, and the output is a markdown report: one table per trace, the ratios
//! ours ÷ each peer, the issue's goals marked met or not, and a scaling table.

mod alloc;
mod driver;
mod peers;
mod report;
mod scaling;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use driver::Runs;
use peers::ours::Ours;
use peers::Library;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// The trace `--smoke` runs: the smallest of the four.
const SMOKE_TRACE: &str = "sveltecomponent";
const SCALING_SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

struct Args {
    traces: PathBuf,
    runs: usize,
    only: Option<String>,
    libs: Vec<Library>,
    budget: Duration,
    scaling: bool,
}

fn usage() -> &'static str {
    "usage: bench [--traces DIR] [--runs N] [--only TRACE] [--libs ours,rope,dt,cola,loro,automerge,yrs] \
     [--budget SECS] [--no-scaling] [--smoke]"
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
            "--help" | "-h" => return Err(usage().to_owned()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let files = match trace::list(&args.traces) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runs = Runs { wanted: args.runs, budget: args.budget };
    let mut results = Vec::new();
    for file in files {
        let trace = match trace::Trace::load(&file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        if args.only.as_ref().is_some_and(|o| !trace.name.contains(o.as_str())) {
            continue;
        }
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
        let libs =
            args.libs.iter().zip(locals).map(|(lib, local)| lib.measure(&trace, runs, local, ours_remote)).collect();
        results.push(report::TraceResult::new(&trace, libs));
    }
    if results.is_empty() {
        eprintln!("no trace matched in {}", args.traces.display());
        return ExitCode::FAILURE;
    }
    let scaling = if args.scaling {
        eprintln!("== scaling");
        Some(scaling::run(&SCALING_SIZES))
    } else {
        None
    };
    print!("{}", report::render(&results, scaling.as_deref(), args.runs, args.budget));
    ExitCode::SUCCESS
}

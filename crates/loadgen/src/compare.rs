//! doc-server and y-websocket side by side: the same load shape against each, interleaved (a
//! fresh server process for every run), medians of the runs; then for each a short sweep of
//! the total keystroke rate to the highest one whose p99 edit → seen-by-peer stays under the
//! bar. Prints markdown.

use std::fmt::Write as _;
use std::time::Duration;

use crate::run::{run, RunReport};
use crate::schedule::Shape;
use crate::server::{Programs, ServerProcess, Target};
use crate::stats::{ms, spread, thousands};

/// The sweep: total keystrokes/s from `start`, doubling while the bar holds (up to `max`),
/// then `refine` bisections between the last rate that held and the first that did not.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The first total rate.
    pub start: f64,
    /// The highest total rate tried.
    pub max: f64,
    /// Bisection steps after the doubling.
    pub refine: usize,
    /// Clients per document (the documents grow with the clients, so that each keystroke
    /// reaches the same number of peers at every rate).
    pub per_doc: usize,
    /// The bar: p99 edit → seen by another client, in ms.
    pub bar_ms: f64,
    /// Warm-up, measured window and drain of each step.
    pub warmup: Duration,
    /// The measured window of each step.
    pub duration: Duration,
}

/// What to compare.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The servers' programs.
    pub programs: Programs,
    /// doc-server, y-websocket, or both (in this order on odd runs, reversed on even ones).
    pub targets: Vec<Target>,
    /// Runs of `shape` per target.
    pub runs: usize,
    /// The load shape of the main comparison.
    pub shape: Shape,
    /// The sweep, if any.
    pub sweep: Option<Sweep>,
}

/// A load generator whose p99 send lag is above this (ms) was itself short of CPU: its
/// latencies include its own lateness.
const LATE_MS: f64 = 10.0;

/// One server's sweep: every step's report, the fastest step that held the bar and the
/// slowest that did not, and the doubling steps left.
struct SweepResult {
    target: Target,
    steps: Vec<RunReport>,
    best: Option<usize>,
    first_miss: Option<usize>,
    refinements_left: usize,
}

impl SweepResult {
    fn rate(&self, step: Option<usize>) -> Option<f64> {
        step.map(|i| self.steps[i].shape.total_rate())
    }

    /// The next total rate to try: doubling until the bar fails (or `max`), then bisecting.
    fn next_rate(&self, sweep: &Sweep, base: &Shape) -> Option<f64> {
        let Some(miss) = self.rate(self.first_miss) else {
            let next = self.rate(self.best).map_or(sweep.start, |best| best * 2.0);
            return (next <= sweep.max).then_some(next);
        };
        let best = self.rate(self.best)?;
        let middle = sweep_shape(base, sweep, (best + miss) / 2.0).total_rate();
        (self.refinements_left > 0 && middle > best && middle < miss).then_some(middle)
    }

    fn record(&mut self, report: RunReport, bar_ms: f64) {
        let held = report.meets(bar_ms);
        let total = report.shape.total_rate();
        if self.first_miss.is_some() {
            self.refinements_left = self.refinements_left.saturating_sub(1);
        }
        self.steps.push(report);
        let index = Some(self.steps.len() - 1);
        if held && self.rate(self.best).is_none_or(|best| total > best) {
            self.best = index;
        }
        if !held && self.rate(self.first_miss).is_none_or(|miss| total < miss) {
            self.first_miss = index;
        }
    }
}

/// Runs the plan and returns the markdown report.
pub async fn compare(plan: &Plan) -> Result<String, String> {
    let mut runs: Vec<RunReport> = Vec::new();
    for round in 0..plan.runs {
        for target in in_turn(&plan.targets, round) {
            let report = measure(target, &plan.programs, &plan.shape).await?;
            eprintln!("run {}/{}: {}", round + 1, plan.runs, one_line(&report));
            runs.push(report);
        }
    }
    let mut sweeps = Vec::new();
    if let Some(sweep) = &plan.sweep {
        sweeps = run_sweeps(plan, sweep).await?;
    }
    Ok(render(plan, &runs, &sweeps))
}

/// `targets`, reversed on odd rounds, so that neither server always runs first.
fn in_turn(targets: &[Target], round: usize) -> Vec<Target> {
    let mut order = targets.to_vec();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// Starts a fresh server, drives `shape` against it, stops it.
pub async fn measure(target: Target, programs: &Programs, shape: &Shape) -> Result<RunReport, String> {
    let mut server = ServerProcess::start(target, programs)?;
    let report = run(&server.endpoint, shape).await;
    if !server.alive() {
        return Err(format!("{} exited during the run; log:\n{}", target.name(), server.log()));
    }
    report
}

/// Every target's sweep, in lockstep (one step of each in turn), so that both see the
/// shared machine in the same state.
async fn run_sweeps(plan: &Plan, sweep: &Sweep) -> Result<Vec<SweepResult>, String> {
    let mut sweeps: Vec<SweepResult> = plan
        .targets
        .iter()
        .map(|&target| SweepResult {
            target,
            steps: Vec::new(),
            best: None,
            first_miss: None,
            refinements_left: sweep.refine,
        })
        .collect();
    for round in 0.. {
        let mut stepped = false;
        for target in in_turn(&plan.targets, round) {
            let Some(state) = sweeps.iter_mut().find(|s| s.target == target) else { continue };
            let Some(total) = state.next_rate(sweep, &plan.shape) else { continue };
            let report = measure(target, &plan.programs, &sweep_shape(&plan.shape, sweep, total)).await?;
            eprintln!("sweep: {}", one_line(&report));
            state.record(report, sweep.bar_ms);
            stepped = true;
        }
        if !stepped {
            break;
        }
    }
    Ok(sweeps)
}

/// The sweep's shape at `total` keystrokes/s: `base`'s rate per client, `per_doc` clients a
/// document.
fn sweep_shape(base: &Shape, sweep: &Sweep, total: f64) -> Shape {
    let clients = ((total / base.rate).round() as usize).max(2);
    Shape {
        clients,
        docs: clients.div_ceil(sweep.per_doc),
        warmup: sweep.warmup,
        duration: sweep.duration,
        ..base.clone()
    }
}

/// One line per run, for progress on stderr and the details table.
fn one_line(r: &RunReport) -> String {
    format!(
        "{} {}: seen p50 {} p99 {} p99.9 {} max {}; ack p99 {}; {:.0}/{:.0} keystrokes/s; server CPU {}; RSS {}; loadgen CPU {:.0} %, lag p99 {}{}",
        r.target.name(),
        r.shape.label(),
        ms(r.seen.p50),
        ms(r.seen.p99),
        ms(r.seen.p999),
        ms(r.seen.max),
        r.ack.as_ref().map_or("–".into(), |a| ms(a.p99)),
        r.delivered,
        r.offered,
        percent(r.server_cpu),
        mib(r.server_rss_kib),
        r.loadgen_cpu,
        ms(r.lag.p99),
        problems(r),
    )
}

/// What went wrong in a run, if anything, as `; …` notes.
pub fn problems(r: &RunReport) -> String {
    let mut notes = String::new();
    if r.seen.lost > 0 {
        let _ = write!(notes, "; {} deliveries missing after the drain", thousands(r.seen.lost));
    }
    if r.unacked > 0 {
        let _ = write!(notes, "; {} keystrokes unacknowledged", thousands(r.unacked));
    }
    if r.closed > 0 {
        let _ = write!(notes, "; {} connections closed ({})", r.closed, r.first_close.as_deref().unwrap_or(""));
    }
    if r.lag.p99.is_some_and(|lag| lag > LATE_MS) {
        let _ = write!(notes, "; load generator late (send lag p99 {})", ms(r.lag.p99));
    }
    match r.diverged {
        Some(0) => {}
        Some(n) => {
            let _ = write!(notes, "; {n} documents DIVERGED");
        }
        None => notes.push_str("; convergence not checked (drain incomplete)"),
    }
    notes
}

fn percent(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.0} %"))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

/// Server CPU per delivered keystroke, in µs.
fn cpu_per_keystroke(r: &RunReport) -> Option<f64> {
    let cpu = r.server_cpu?;
    (r.offered > 0.0).then(|| cpu / 100.0 / r.offered * 1e6)
}

fn render(plan: &Plan, runs: &[RunReport], sweeps: &[SweepResult]) -> String {
    let mut out = String::new();
    let column = |target: Target| match target {
        Target::Ours => "doc-server (ack after fsync)",
        Target::Yjs => "y-websocket (`@y/websocket-server` 0.1.1, no ack, no durability)",
    };
    let _ = writeln!(out, "| | {} |", plan.targets.iter().map(|&t| column(t)).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(plan.targets.len()));
    let label = plan.shape.label();
    let of = |target: Target| runs.iter().filter(move |r| r.target == target);
    let mut row = |name: &str, cell: &dyn Fn(Target) -> String| {
        let cells: Vec<String> = plan.targets.iter().map(|&t| cell(t)).collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    };
    let latency =
        |pick: fn(&RunReport) -> Option<f64>| move |t: Target| spread(&of(t).map(pick).collect::<Vec<_>>(), ms);
    row(&format!("{label}: p50 edit → seen by another client"), &latency(|r| r.seen.p50));
    row("same: p99", &latency(|r| r.seen.p99));
    row("same: p99.9", &latency(|r| r.seen.p999));
    row("same: max", &latency(|r| r.seen.max));
    row("same: p50 / p99 edit → ack (fsync included)", &|t| match t {
        Target::Ours => format!(
            "{} / {}",
            spread(&of(t).map(|r| r.ack.as_ref().and_then(|a| a.p50)).collect::<Vec<_>>(), ms),
            spread(&of(t).map(|r| r.ack.as_ref().and_then(|a| a.p99)).collect::<Vec<_>>(), ms)
        ),
        Target::Yjs => "no ack".into(),
    });
    row("same: keystrokes/s delivered to every peer, of those offered", &|t| {
        let delivered: Vec<_> = of(t).map(|r| Some(r.delivered)).collect();
        let offered: Vec<_> = of(t).map(|r| Some(r.offered)).collect();
        format!("{} of {}", spread(&delivered, count), spread(&offered, count))
    });
    row("same: server CPU (% of one core)", &|t| spread(&of(t).map(|r| r.server_cpu).collect::<Vec<_>>(), percent));
    row("same: server CPU per keystroke", &|t| {
        spread(&of(t).map(cpu_per_keystroke).collect::<Vec<_>>(), |v| v.map_or("–".into(), |v| format!("{v:.0} µs")))
    });
    row("same: server RSS at the end", &|t| {
        spread(&of(t).map(|r| r.server_rss_kib.map(|k| k as f64)).collect::<Vec<_>>(), |v| mib(v.map(|v| v as u64)))
    });
    row("same: load generator CPU (% of one core)", &|t| {
        spread(&of(t).map(|r| Some(r.loadgen_cpu)).collect::<Vec<_>>(), percent)
    });
    if let Some(sweep) = &plan.sweep {
        row(&format!("highest load with p99 ≤ {} ms (sweep, one run a step)", sweep.bar_ms), &|t| {
            sweeps.iter().find(|s| s.target == t).map_or("–".into(), sweep_cell)
        });
        row("server CPU at that load, per keystroke", &|t| {
            sweeps.iter().find(|s| s.target == t).and_then(|s| s.best.map(|b| &s.steps[b])).map_or("–".into(), |r| {
                format!(
                    "{}, {}",
                    percent(r.server_cpu),
                    cpu_per_keystroke(r).map_or("–".into(), |v| format!("{v:.0} µs"))
                )
            })
        });
    }
    let unhealthy: Vec<&RunReport> = runs.iter().filter(|r| !r.healthy()).collect();
    if plan.runs > 1 {
        let _ = writeln!(out, "\nMedians of {} runs (min–max), interleaved, a fresh server process each.", plan.runs);
    } else {
        let _ = writeln!(out, "\nOne run each, a fresh server process each.");
    }
    for r in unhealthy {
        let _ = writeln!(out, "- {} run{}", r.target.name(), problems(r));
    }
    let _ = writeln!(out, "\nEvery run:\n");
    let _ = writeln!(out, "| server | load | seen p50 / p99 / p99.9 / max | ack p99 | delivered/offered keystrokes/s | server CPU | RSS | loadgen CPU, lag p99 | notes |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let all = runs.iter().map(|r| (r, "")).chain(sweeps.iter().flat_map(|s| s.steps.iter().map(|r| (r, "sweep"))));
    for (r, kind) in all {
        let _ = writeln!(
            out,
            "| {} | {}{} | {} / {} / {} / {} | {} | {:.0} / {:.0} | {} | {} | {:.0} %, {} | {} |",
            r.target.name(),
            if kind.is_empty() { String::new() } else { format!("{kind}: ") },
            r.shape.label(),
            ms(r.seen.p50),
            ms(r.seen.p99),
            ms(r.seen.p999),
            ms(r.seen.max),
            r.ack.as_ref().map_or("–".into(), |a| ms(a.p99)),
            r.delivered,
            r.offered,
            percent(r.server_cpu),
            mib(r.server_rss_kib),
            r.loadgen_cpu,
            ms(r.lag.p99),
            problems(r).trim_start_matches("; "),
        );
    }
    out
}

fn count(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| thousands(v.round() as u64))
}

fn sweep_cell(s: &SweepResult) -> String {
    let Some(best) = s.best.map(|b| &s.steps[b]) else {
        return match s.first_miss.map(|m| &s.steps[m]) {
            Some(miss) => format!(
                "below {} keystrokes/s (p99 {} there)",
                thousands(miss.shape.total_rate() as u64),
                ms(miss.seen.p99)
            ),
            None => "–".into(),
        };
    };
    let mut cell = format!("~{} keystrokes/s (p99 {}", thousands(best.shape.total_rate() as u64), ms(best.seen.p99));
    match s.first_miss.map(|m| &s.steps[m]) {
        Some(miss) => {
            let _ = write!(cell, "; {} at {})", ms(miss.seen.p99), thousands(miss.shape.total_rate() as u64));
            if !miss.healthy() {
                cell.push_str(&format!(" [{}]", problems(miss).trim_start_matches("; ")));
            }
        }
        None => cell.push_str("; the sweep's top)"),
    }
    cell
}

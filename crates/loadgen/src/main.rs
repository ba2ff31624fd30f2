//! `loadgen`: N clients × R keystrokes/s over M documents, against doc-server (our protocol,
//! PROTOCOL.md) or y-websocket (the Yjs sync protocol), measured open loop.
//!
//! Each client is one WebSocket and one local copy (a crdt-core `Document`, or a yrs `Doc`);
//! it types like a person (mostly continuing its previous insert, now and then jumping or
//! backspacing), one message per keystroke as the browser page sends. Measured: edit → ack
//! (doc-server only; y-websocket acknowledges nothing) and edit → seen by each other client of
//! the document (p50/p99/p99.9/max, from the time each keystroke was *due*), keystrokes/s
//! delivered, and the server process's CPU and resident memory from `/proc`.
//!
//! - `loadgen run`: one load shape against one server (one this tool starts, or one already
//!   running at `--addr`); exits non-zero if anything was lost, closed or diverged.
//! - `loadgen flood`: the same shape alone, then under a change flooder and a connection
//!   flooder (issue 18): honest ack latencies side by side, the attackers' fate, peak memory.
//! - `loadgen compare`: doc-server and y-websocket side by side (`scripts/load.sh` builds,
//!   installs and runs it): the same shape against each, interleaved, medians of `--runs`,
//!   then a short sweep to the highest rate with p99 ≤ 50 ms; prints a markdown table.
//!
//! Modules: `schedule` (the shape and the open-loop ticks), `typist` (what a keystroke is),
//! `client` (the per-connection loop, shared by both protocols), `ours` and `yjs` (the
//! protocols), `ledger` (who sent what when), `run` (one run), `compare` (side by side),
//! `server` (starting servers, `/proc`), `stats` (percentiles).

mod client;
mod compare;
mod flood;
mod ledger;
mod ours;
mod run;
mod scenarios;
mod schedule;
mod server;
mod stats;
mod typist;
mod yjs;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use compare::{compare, measure, problems, Plan, Sweep};
use schedule::Shape;
use server::{Endpoint, Programs, Target};
use stats::ms;

/// Load generator for doc-server and y-websocket: open-loop typing, latency percentiles, server
/// CPU and memory.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One load shape against one server; exits 1 if a keystroke was lost, a connection closed
    /// or two copies of a document differ at the end.
    Run(RunArgs),
    /// doc-server and y-websocket side by side; prints a markdown table (scripts/load.sh).
    Compare(CompareArgs),
    /// Honest typists alone, then beside a change flooder and a connection flooder, on one
    /// doc-server with its default limits; exits 1 if the honest clients' ack p99 more than
    /// doubled or anything of theirs was lost.
    Flood(FloodArgs),
    /// Idle connections, a big document, joins on a long one and a burst, against each server
    /// given (issue 20, must-shows 3–6); prints a markdown table.
    Scenarios(ScenarioArgs),
}

#[derive(Debug, Args)]
struct ScenarioArgs {
    #[command(flatten)]
    programs: ProgramArgs,
    /// Idle connections held at once (the process's open-file limit must allow them).
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Documents the idle connections spread over.
    #[arg(long, default_value_t = 100)]
    idle_docs: usize,
    /// The trace loaded for the joins (an ASCII `.json.gz` sequential trace).
    #[arg(long, default_value = "../shared/traces/ascii_only/automerge-paper.json.gz")]
    trace: PathBuf,
    /// Clients joining the loaded trace at once.
    #[arg(long, default_value_t = 20)]
    joiners: usize,
    /// Single-keystroke messages the burst's writer sends back to back.
    #[arg(long, default_value_t = 5000)]
    burst: usize,
    /// Characters each document holds before the big-document runs.
    #[arg(long, default_value_t = 1_000_000)]
    big_chars: usize,
    /// Runs of the typing shape on empty and on big documents (interleaved; medians).
    #[arg(long, default_value_t = 3)]
    big_runs: usize,
    /// Only these scenarios (comma-separated: idle, big, join, burst).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The typing shape of the big-document comparison.
    #[command(flatten)]
    shape: ShapeArgs,
}

#[derive(Debug, Args)]
struct FloodArgs {
    #[command(flatten)]
    programs: ProgramArgs,
    /// Changes per second the change flooder offers (one change per message).
    #[arg(long, default_value_t = 10_000.0)]
    flood_rate: f64,
    /// WebSockets the connection flooder opens and holds.
    #[arg(long, default_value_t = 2000)]
    flood_connections: usize,
    /// How long the attack runs before the honest clients start.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    lead: Duration,
    #[command(flatten)]
    shape: ShapeArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The protocol to speak.
    #[arg(long, value_enum)]
    target: Target,
    /// Drive a server already running at HOST:PORT instead of starting one.
    #[arg(long)]
    addr: Option<String>,
    /// With --addr: the server's process id, to measure its CPU and memory.
    #[arg(long, requires = "addr")]
    pid: Option<u32>,
    /// Characters each document holds before anyone types (written by one client first).
    #[arg(long, default_value_t = 0)]
    preload: usize,
    #[command(flatten)]
    programs: ProgramArgs,
    #[command(flatten)]
    shape: ShapeArgs,
}

#[derive(Debug, Args)]
struct CompareArgs {
    #[command(flatten)]
    programs: ProgramArgs,
    /// Runs of the load shape per server (interleaved; the table shows medians).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip the sweep for the highest rate under the bar.
    #[arg(long)]
    no_sweep: bool,
    /// The sweep's first total rate (keystrokes/s over all clients); it doubles from there.
    #[arg(long, default_value_t = 1000.0)]
    sweep_from: f64,
    /// The sweep's highest total rate.
    #[arg(long, default_value_t = 32000.0)]
    sweep_to: f64,
    /// Bisection steps after the doubling.
    #[arg(long, default_value_t = 2)]
    sweep_refine: usize,
    /// Clients per document in the sweep.
    #[arg(long, default_value_t = 10)]
    sweep_per_doc: usize,
    /// Measured seconds of each sweep step.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    sweep_duration: Duration,
    /// The sweep's bar: p99 edit → seen by another client, in ms.
    #[arg(long, default_value_t = 50.0)]
    bar_ms: f64,
    #[command(flatten)]
    shape: ShapeArgs,
}

#[derive(Debug, Args)]
struct ProgramArgs {
    /// The doc-server binary to start (a fresh data directory and a free port per run).
    #[arg(long)]
    doc_server: Option<PathBuf>,
    /// y-websocket's server script (`node_modules/@y/websocket-server/src/server.js`).
    #[arg(long)]
    y_websocket: Option<PathBuf>,
    /// The Node.js binary for y-websocket.
    #[arg(long, default_value = "node")]
    node: String,
}

#[derive(Debug, Args)]
struct ShapeArgs {
    /// Typing clients, one WebSocket each.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Keystrokes per second of each client.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Documents (client c types into document c mod docs).
    #[arg(long, default_value_t = 5)]
    docs: usize,
    /// Typing before the measured window (not measured).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// The measured window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// How long to wait after it for the measured keystrokes to arrive everywhere.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Seed of the typing and the schedule.
    #[arg(long, default_value_t = 20)]
    seed: u64,
    /// A few seconds: 10 clients × 20 keystrokes/s over 2 documents, 1 s warm-up, 3 s
    /// measured, one run, no sweep (overrides the shape flags).
    #[arg(long)]
    smoke: bool,
}

impl ShapeArgs {
    fn shape(&self) -> Result<Shape, String> {
        if self.smoke {
            let duration = Duration::from_secs(3);
            let warmup = Duration::from_secs(1);
            return Ok(Shape {
                clients: 10,
                rate: 20.0,
                docs: 2,
                warmup,
                duration,
                drain: warmup * 3,
                seed: self.seed,
            });
        }
        if self.clients < 2 * self.docs || self.docs == 0 {
            return Err("every document needs at least two clients (--clients ≥ 2 × --docs)".into());
        }
        if self.rate <= 0.0 || self.duration.is_zero() {
            return Err("--rate and --duration must be positive".into());
        }
        let ShapeArgs { clients, rate, docs, warmup, duration, drain, seed, .. } = *self;
        Ok(Shape { clients, rate, docs, warmup, duration, drain, seed })
    }
}

impl ProgramArgs {
    fn programs(&self) -> Programs {
        Programs {
            doc_server: self.doc_server.clone(),
            y_websocket: self.y_websocket.clone(),
            node: self.node.clone(),
            doc_server_args: Vec::new(),
        }
    }

    /// [`programs`](Self::programs) for a throughput measurement: every client connects from
    /// 127.0.0.1 (up to thousands in a sweep), which the per-address limits would refuse.
    fn programs_from_one_address(&self) -> Programs {
        let mut programs = self.programs();
        programs.doc_server_args =
            ["--max-connections-per-address", "0", "--new-documents-per-minute", "0"].map(String::from).to_vec();
        programs
    }
}

/// Parses `250ms`, `15s`, `2m` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(at);
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 250ms, 15s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "" | "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        _ => Err(format!("unknown unit {unit:?} in {text:?}: use ms, s or m")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_once(args).await,
        Command::Compare(args) => run_compare(args).await,
        Command::Flood(args) => run_flood(args).await,
        Command::Scenarios(args) => run_scenarios(args).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run_once(args: RunArgs) -> Result<bool, String> {
    let shape = args.shape.shape()?;
    let report = match &args.addr {
        Some(addr) => {
            let endpoint = Endpoint { target: args.target, addr: addr.clone(), pid: args.pid };
            run::run_preloaded(&endpoint, &shape, args.preload).await?
        }
        None if args.preload > 0 => {
            let programs = args.programs.programs_from_one_address();
            let server = server::ServerProcess::start(args.target, &programs)?;
            run::run_preloaded(&server.endpoint, &shape, args.preload).await?
        }
        None => measure(args.target, &args.programs.programs_from_one_address(), &shape).await?,
    };
    println!("{} — {}", report.target.name(), shape.label());
    println!(
        "edit → seen by another client: p50 {} p99 {} p99.9 {} max {} ({} deliveries)",
        ms(report.seen.p50),
        ms(report.seen.p99),
        ms(report.seen.p999),
        ms(report.seen.max),
        report.seen.count
    );
    if let Some(ack) = &report.ack {
        println!(
            "edit → ack: p50 {} p99 {} p99.9 {} max {} ({} acks)",
            ms(ack.p50),
            ms(ack.p99),
            ms(ack.p999),
            ms(ack.max),
            ack.count
        );
    }
    println!("keystrokes/s: {:.0} delivered to every peer, {:.0} offered", report.delivered, report.offered);
    if let (Some(cpu), Some(rss)) = (report.server_cpu, report.server_rss_kib) {
        println!("server: CPU {cpu:.1} % of one core, RSS {:.1} MiB", rss as f64 / 1024.0);
    }
    println!("load generator: CPU {:.0} % of one core, send lag p99 {}", report.loadgen_cpu, ms(report.lag.p99));
    let notes = problems(&report);
    println!("{}", if notes.is_empty() { "healthy: nothing lost, closed or diverged".into() } else { notes });
    Ok(report.healthy())
}

async fn run_flood(args: FloodArgs) -> Result<bool, String> {
    let shape = args.shape.shape()?;
    let attack = flood::Attack { rate: args.flood_rate, connections: args.flood_connections, lead: args.lead };
    let report = flood::flood(&args.programs.programs(), &shape, attack).await?;
    println!("doc-server under attack — honest: {}", shape.label());
    let ack_p99 = |run: &run::RunReport| run.ack.as_ref().and_then(|ack| ack.p99);
    let line = |name: &str, run: &run::RunReport| {
        let ack = run.ack.as_ref();
        println!(
            "{name}: edit → ack p50 {} p99 {} max {}; edit → seen p99 {}; server RSS {} MiB; {}",
            ms(ack.and_then(|a| a.p50)),
            ms(ack.and_then(|a| a.p99)),
            ms(ack.and_then(|a| a.max)),
            ms(run.seen.p99),
            run.server_rss_kib.map_or("?".into(), |kib| format!("{:.1}", kib as f64 / 1024.0)),
            if run.healthy() { "healthy".to_owned() } else { problems(run) },
        );
    };
    line("without attackers", &report.baseline);
    line("with attackers   ", &report.attacked);
    let ratio = ack_p99(&report.attacked).zip(ack_p99(&report.baseline)).map(|(a, b)| a / b);
    println!("ack p99 ratio (attacked / alone): {}", ratio.map_or("?".into(), |r| format!("{r:.2}")));
    let f = &report.flooder;
    let seconds = f.elapsed.as_secs_f64();
    println!(
        "change flooder: {} changes sent in {seconds:.1} s ({:.0}/s), {} acknowledged ({:.0}/s), closed: {}",
        f.sent,
        f.sent as f64 / seconds,
        f.acked,
        f.acked as f64 / seconds,
        f.closed.map_or("no".into(), |code| format!("code {code}")),
    );
    let c = &report.connections;
    println!(
        "connection flooder: {} welcomed, {} refused with 429, {} failed otherwise{}",
        c.welcomed,
        c.refused_429,
        c.failed,
        c.first_failure.as_deref().map_or(String::new(), |why| format!(" (first: {why})")),
    );
    let mib = |kib: Option<u64>| kib.map_or("?".into(), |kib| format!("{:.1}", kib as f64 / 1024.0));
    let (anon, file) = report.rss_anon_file_kib;
    println!(
        "server peak RSS (VmHWM): {} MiB; under attack {} MiB anonymous + {} MiB file-backed",
        mib(report.peak_rss_kib),
        mib(anon),
        mib(file)
    );
    for metric in &report.limit_metrics {
        println!("  {metric}");
    }
    let held = report.baseline.healthy() && report.attacked.healthy() && ratio.is_some_and(|r| r <= 2.0);
    Ok(held)
}

/// The servers `programs` can start: doc-server, y-websocket or both.
fn targets(programs: &Programs) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    if programs.doc_server.is_some() {
        targets.push(Target::Ours);
    }
    if programs.y_websocket.is_some() {
        targets.push(Target::Yjs);
    }
    if targets.is_empty() {
        return Err("give --doc-server, --y-websocket or both".into());
    }
    Ok(targets)
}

async fn run_compare(args: CompareArgs) -> Result<bool, String> {
    let programs = args.programs.programs_from_one_address();
    let targets = targets(&programs)?;
    let shape = args.shape.shape()?;
    let sweep = (!args.no_sweep && !args.shape.smoke).then(|| Sweep {
        start: args.sweep_from,
        max: args.sweep_to,
        refine: args.sweep_refine,
        per_doc: args.sweep_per_doc.max(2),
        bar_ms: args.bar_ms,
        warmup: shape.warmup,
        duration: args.sweep_duration,
    });
    let runs = if args.shape.smoke { 1 } else { args.runs.max(1) };
    let plan = Plan { programs, targets, runs, shape, sweep };
    let table = compare(&plan).await?;
    println!("{table}");
    Ok(true)
}

async fn run_scenarios(args: ScenarioArgs) -> Result<bool, String> {
    let programs = args.programs.programs_from_one_address();
    let targets = targets(&programs)?;
    let plan = scenarios::ScenarioPlan {
        programs,
        targets,
        scenarios: scenarios::Scenarios {
            idle: args.idle,
            idle_docs: args.idle_docs.max(1),
            trace: if args.trace.exists() {
                Some(args.trace)
            } else {
                eprintln!("loadgen: no trace at {}: the join scenario is skipped", args.trace.display());
                None
            },
            joiners: args.joiners,
            burst: args.burst,
            big_runs: args.big_runs,
        },
        shape: args.shape.shape()?,
        big_chars: args.big_chars,
        only: args.only,
    };
    println!("{}", scenarios::scenarios(&plan).await?);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("8s"), Ok(Duration::from_secs(8)));
        assert_eq!(parse_duration("8"), Ok(Duration::from_secs(8)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("s").is_err());
    }
}

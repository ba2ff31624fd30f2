//! `loadgen scenarios`: runs each scenario against each server and prints one markdown table,
//! a column per server.

use std::time::Duration;

use super::{burst, idle, join, Scenarios, Trace, LOAD_BATCH};
use crate::server::{Programs, ServerProcess, Target};

/// What `loadgen scenarios` runs, against which servers.
pub struct ScenarioPlan {
    pub programs: Programs,
    pub targets: Vec<Target>,
    pub scenarios: Scenarios,
    /// The typing shape of the big-document comparison, and the text each document holds.
    pub shape: crate::schedule::Shape,
    pub big_chars: usize,
    /// Which scenarios to run (`idle`, `big`, `join`, `burst`).
    pub only: Vec<String>,
}

impl ScenarioPlan {
    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Runs the plan's scenarios against each target, one after the other, and returns a
/// markdown table with a column per server.
pub async fn scenarios(plan: &ScenarioPlan) -> Result<String, String> {
    use crate::stats::{ms, spread};
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |label: String, cells: Vec<String>| rows.push((label, cells));
    let s = &plan.scenarios;
    if plan.wants("idle") {
        let mut cells = Vec::new();
        for &target in &plan.targets {
            eprintln!("==> idle: {} connections on {}", s.idle, target.name());
            let report = idle(target, &plan.programs, s.idle, s.idle_docs).await?;
            cells.push(format!(
                "{} ({} → {}{})",
                kib(report.per_connection()),
                mib(report.before_kib),
                mib(report.with_kib),
                if report.closed > 0 { format!("; {} closed", report.closed) } else { String::new() }
            ));
        }
        row(format!("3. {} idle connections over {} documents: server RSS per connection", s.idle, s.idle_docs), cells);
    }
    if plan.wants("big") {
        let shape = &plan.shape;
        let (mut empty, mut big, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for &target in &plan.targets {
            // Interleaved runs (a fresh server each), medians: one p99 of ten seconds moves
            // with whatever else the machine does.
            let mut reports: [Vec<crate::run::RunReport>; 2] = Default::default();
            for run in 0..s.big_runs.max(1) {
                for (slot, chars) in [0, plan.big_chars].into_iter().enumerate() {
                    eprintln!("==> big: run {} on {chars} characters per document, {}", run + 1, target.name());
                    let server = ServerProcess::start(target, &plan.programs)?;
                    reports[slot].push(crate::run::run_preloaded(&server.endpoint, shape, chars).await?);
                }
            }
            let p99 = |r: &crate::run::RunReport| r.ack.as_ref().and_then(|a| a.p99).or(r.seen.p99);
            let median = |values: Vec<Option<f64>>| {
                let mut values: Vec<f64> = values.into_iter().map(|v| v.unwrap_or(f64::INFINITY)).collect();
                values.sort_by(f64::total_cmp);
                values.get((values.len().max(1) - 1) / 2).copied().filter(|v| v.is_finite())
            };
            let mut medians = [None, None];
            for (slot, runs) in reports.iter().enumerate() {
                medians[slot] = median(runs.iter().map(p99).collect());
                let unhealthy: Vec<String> =
                    runs.iter().filter(|r| !r.healthy()).map(crate::compare::problems).collect();
                let ack = if target == Target::Ours {
                    format!(
                        ", ack p99 {}",
                        spread(&runs.iter().map(|r| r.ack.as_ref().and_then(|a| a.p99)).collect::<Vec<_>>(), ms)
                    )
                } else {
                    String::new()
                };
                let cell = format!(
                    "seen p99 {}{ack}, CPU {}{}",
                    spread(&runs.iter().map(|r| r.seen.p99).collect::<Vec<_>>(), ms),
                    spread(&runs.iter().map(|r| r.server_cpu).collect::<Vec<_>>(), |v| v
                        .map_or("?".into(), |v| format!("{v:.0} %"))),
                    if unhealthy.is_empty() { String::new() } else { format!("; {}", unhealthy.join("; ")) }
                );
                if slot == 0 {
                    empty.push(cell)
                } else {
                    big.push(cell)
                }
            }
            ratio.push(match medians {
                [Some(a), Some(b)] => format!("{:.2}×", b / a),
                _ => "–".into(),
            });
        }
        row(format!("4. {}: empty documents", shape.label()), empty);
        row(format!("4. same, each document holding {} characters first", plan.big_chars), big);
        row("4. median p99 (ack for doc-server, seen for y-websocket): big ÷ empty".into(), ratio);
    }
    if plan.wants("join") {
        if let Some(path) = &s.trace {
            let trace = Trace::load(path)?;
            let mut cells: [Vec<String>; 7] = Default::default();
            for &target in &plan.targets {
                eprintln!("==> join: {} then {} joiners on {}", trace.name, s.joiners, target.name());
                let r = join(target, &plan.programs, &trace, s.joiners).await?;
                let median = r.joins.get(r.joins.len() / 2).copied().unwrap_or_default();
                let last = r.joins.last().copied().unwrap_or_default();
                cells[0].push(secs(r.load));
                cells[1].push(format!("{} (median {})", secs(last), secs(median)));
                cells[2].push(format!("{:.0} KB", r.compact_bytes as f64 / 1000.0));
                let above = |kib: u64| kib.saturating_sub(r.baseline_kib);
                cells[3].push(format!(
                    "{} ({:.1}× the compact size)",
                    mib(above(r.loaded_kib)),
                    above(r.loaded_kib) as f64 * 1024.0 / r.compact_bytes.max(1) as f64
                ));
                cells[4].push(kib(r.joined_kib.saturating_sub(r.loaded_kib) as f64 * 1024.0 / r.joiners.max(1) as f64));
                cells[5].push(format!("{} above the {} before it", mib(above(r.after_kib)), mib(r.baseline_kib)));
                cells[6].push(
                    r.after_again_kib
                        .iter()
                        .map(|&kib| format!("{} above", mib(above(kib))))
                        .collect::<Vec<_>>()
                        .join(", then "),
                );
            }
            let [load, joins, compact, loaded, per, after, again] = cells;
            row(
                format!(
                    "5. {} ({} patches) loaded by one client in batches of {LOAD_BATCH}",
                    trace.name,
                    trace.patches.len()
                ),
                load,
            );
            row(format!("5. then {} clients join at once: time until the last has the whole text", s.joiners), joins);
            row("5. the document's compact size (snapshot / Yjs state update)".into(), compact);
            row("5. server memory with it loaded (its loader connected), above the server before it".into(), loaded);
            row("5. server memory per joined connection".into(), per);
            row("5. server memory after everyone left (doc-server unloads after 2 s)".into(), after);
            row("5. same, after each of three more such documents was loaded and left too".into(), again);
        }
    }
    if plan.wants("burst") {
        let mut cells: [Vec<String>; 3] = Default::default();
        for &target in &plan.targets {
            eprintln!("==> burst: {} keystrokes on {}", s.burst, target.name());
            let r = burst(target, &plan.programs, s.burst).await?;
            cells[0].push(format!(
                "{} of {} in {} (sent in {})",
                r.seen,
                r.keystrokes,
                r.all_seen.map_or("never".into(), secs),
                secs(r.send)
            ));
            cells[1].push(match (target, r.all_acked) {
                (Target::Yjs, _) => "no acks".into(),
                (_, Some(t)) => format!("all, the last after {}", secs(t)),
                (_, None) => format!("up to batch {} of {}", r.acked.unwrap_or(0), r.keystrokes),
            });
            let closed = |c: &Option<String>| c.clone().unwrap_or_else(|| "no".into());
            cells[2].push(format!("writer: {}; observer: {}", closed(&r.writer_closed), closed(&r.observer_closed)));
        }
        let [seen, acked, closed] = cells;
        row(format!("6. a writer sends {} single-keystroke messages back to back: the observer saw", s.burst), seen);
        row("6. the writer's acks".into(), acked);
        row("6. closed".into(), closed);
    }
    let mut table = String::from("| |");
    for target in &plan.targets {
        table.push_str(&format!(" {} |", target.name()));
    }
    table.push_str("\n|---|");
    table.push_str(&"---|".repeat(plan.targets.len()));
    for (label, cells) in rows {
        table.push_str(&format!("\n| {label} | {} |", cells.join(" | ")));
    }
    Ok(table)
}

//! The servers under load: starting doc-server or y-websocket on a free loopback port (each
//! run gets a fresh process, and doc-server a fresh data directory), and reading a process's
//! CPU time and memory from `/proc`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Which protocol a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// doc-server (PROTOCOL.md).
    Ours,
    /// y-websocket (the Yjs sync protocol).
    Yjs,
}

impl Target {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Ours => "doc-server",
            Target::Yjs => "y-websocket",
        }
    }
}

/// A server to drive: its protocol, `host:port`, and its process (to measure) if known.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Its protocol.
    pub target: Target,
    /// `host:port`.
    pub addr: String,
    /// Its process id, for CPU and memory.
    pub pid: Option<u32>,
}

/// Where the servers' programs are.
#[derive(Clone, Debug)]
pub struct Programs {
    /// The doc-server binary (a release build, for measurements).
    pub doc_server: Option<PathBuf>,
    /// y-websocket's `src/server.js` (`@y/websocket-server`).
    pub y_websocket: Option<PathBuf>,
    /// The Node.js binary that runs it.
    pub node: String,
    /// Flags added to doc-server's (the measurements of many clients from one address turn
    /// the per-address limits off; the flood measurement keeps every default).
    pub doc_server_args: Vec<String>,
}

/// A server process this tool started; killed (and its directory removed) when dropped.
pub struct ServerProcess {
    child: Child,
    dir: PathBuf,
    /// What to connect to.
    pub endpoint: Endpoint,
}

/// Scratch directories are numbered within this process.
static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

impl ServerProcess {
    /// Starts `target`'s server from `programs` on a free loopback port.
    pub fn start(target: Target, programs: &Programs) -> Result<ServerProcess, String> {
        let dir = std::env::temp_dir().join(format!(
            "loadgen-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let log = File::create(dir.join("server.log")).map_err(|e| format!("create the server log: {e}"))?;
        let mut command = match target {
            Target::Ours => {
                let binary = programs.doc_server.as_ref().ok_or("no --doc-server binary given")?;
                let mut command = Command::new(binary);
                command
                    .args(["--open", "--listen", "127.0.0.1:0", "--data-dir"])
                    .arg(dir.join("data"))
                    .arg("--web-dir")
                    .arg(dir.join("web"))
                    .args(&programs.doc_server_args)
                    .env("RUST_LOG", "warn");
                command
            }
            Target::Yjs => {
                let script = programs.y_websocket.as_ref().ok_or("no --y-websocket server.js given")?;
                let mut command = Command::new(&programs.node);
                command.arg(script).env("HOST", "127.0.0.1").env("PORT", free_port()?.to_string());
                command
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("start {}: {e}", target.name()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        // Reads the first line, then keeps reading so that the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            for _ in lines {}
        });
        let mut server =
            ServerProcess { endpoint: Endpoint { target, addr: String::new(), pid: Some(child.id()) }, child, dir };
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        server.endpoint.addr = parse_address(target, &line).ok_or_else(|| {
            let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
            format!("{} did not start (stdout {line:?}); log:\n{log}", target.name())
        })?;
        Ok(server)
    }

    /// The server's log (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `host:port` a server's first line of output announces: doc-server prints
/// `listening on 127.0.0.1:PORT`, y-websocket `running at '127.0.0.1' on port PORT`.
fn parse_address(target: Target, line: &str) -> Option<String> {
    match target {
        Target::Ours => line.trim().strip_prefix("listening on ").map(str::to_owned),
        Target::Yjs => {
            let port: u16 = line.trim().rsplit(' ').next()?.parse().ok()?;
            line.contains("running at").then(|| format!("127.0.0.1:{port}"))
        }
    }
}

/// A loopback port nothing listens on now (y-websocket takes its port from the environment).
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The kernel's clock ticks per second for `/proc/*/stat` times (`USER_HZ`, 100 on every
/// Linux architecture this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time (user + system) of process `pid` (this process for `None`) so far, in seconds.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(proc_path(pid, "stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`;
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// One `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: Option<u32>, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn proc_path(pid: Option<u32>, file: &str) -> PathBuf {
    match pid {
        Some(pid) => Path::new("/proc").join(pid.to_string()).join(file),
        None => Path::new("/proc/self").join(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_addresses() {
        assert_eq!(parse_address(Target::Ours, "listening on 127.0.0.1:4242\n").as_deref(), Some("127.0.0.1:4242"));
        assert_eq!(
            parse_address(Target::Yjs, "running at '127.0.0.1' on port 1234").as_deref(),
            Some("127.0.0.1:1234")
        );
        assert_eq!(parse_address(Target::Yjs, "Error: listen EADDRINUSE"), None);
    }

    #[test]
    fn reads_its_own_cpu_and_memory() {
        let spent = cpu_seconds(None).expect("/proc/self/stat");
        assert!(spent >= 0.0);
        assert!(status_kib(None, "VmRSS").expect("VmRSS") > 0);
        assert!(status_kib(None, "VmHWM").expect("VmHWM") > 0);
    }
}

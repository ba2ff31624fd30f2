//! Spawning the real binary, killing it (SIGKILL) or stopping it (SIGTERM), reading its memory,
//! and plain HTTP/1.1 requests without an HTTP client crate.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A fresh, empty directory for one test (kept after the test for its `server.log`; those of
/// earlier runs older than an hour are removed).
pub fn tmp_dir(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("doc-server-tests");
    if let Ok(entries) = std::fs::read_dir(&root) {
        let stale = |entry: &std::fs::DirEntry| {
            let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            entry.file_name().to_string_lossy().starts_with(&format!("{name}-"))
                && old.is_some_and(|age| age > Duration::from_secs(3600))
        };
        for entry in entries.flatten().filter(stale) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = root.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// A running `doc-server` process.
pub struct Server {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    /// Starts the binary on `127.0.0.1:0` with its database in `dir/data` and its log appended
    /// to `dir/server.log`; returns once it printed the address it listens on.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_logging(dir, extra, "info,doc_server=debug")
    }

    /// [`start`](Self::start) with the log filter `rust_log` (measurements use `warn`, so that
    /// the log file adds nothing to the bytes the process writes).
    pub fn start_logging(dir: &Path, extra: &[&str], rust_log: &str) -> Server {
        // Tests of sync and storage need no tokens; the authorization tests start it without.
        let mut args = vec!["--open"];
        args.extend_from_slice(extra);
        Server::start_exactly(dir, &args, rust_log)
    }

    /// Starts the binary with exactly `extra` after the listen address and directories (no
    /// `--open`: access tokens are required).
    pub fn start_exactly(dir: &Path, extra: &[&str], rust_log: &str) -> Server {
        Server::start_wrapped(dir, &[], extra, rust_log)
    }

    /// [`start_exactly`](Self::start_exactly) through `wrapper`, a command that execs the one
    /// after it (e.g. `prlimit --nofile=64:128 --`), so the process is still the server.
    pub fn start_wrapped(dir: &Path, wrapper: &[&str], extra: &[&str], rust_log: &str) -> Server {
        Server::start_full(dir, "127.0.0.1:0", wrapper, extra, rust_log)
    }

    /// [`start`](Self::start) listening on `listen` (a server restarted on its old port).
    pub fn start_at(dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--open"];
        args.extend_from_slice(extra);
        Server::start_full(dir, listen, &[], &args, "info,doc_server=debug")
    }

    fn start_full(dir: &Path, listen: &str, wrapper: &[&str], extra: &[&str], rust_log: &str) -> Server {
        let log = dir.join("server.log");
        let log_file = OpenOptions::new().create(true).append(true).open(&log).expect("open the server log");
        let binary = env!("CARGO_BIN_EXE_doc-server");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(["--listen", listen, "--data-dir"])
            .arg(dir.join("data"))
            .args(["--web-dir"])
            .arg(dir.join("web"))
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn doc-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send(line);
            stdout
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("doc-server did not start (stdout {line:?}); log:\n{log_text}");
        };
        let addr = addr.parse().expect("a socket address");
        let stdout = reader.join().expect("stdout reader");
        Server { child, _stdout: stdout, addr, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} failed");
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (at most `within`) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "doc-server did not exit within {within:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One counter of `/proc/<pid>/io`: `write_bytes` is every page of the page cache the
    /// process dirtied (what reaches the disk, counted once per dirtying), `wchar` the bytes it
    /// passed to `write` calls.
    pub fn io(&self, counter: &str) -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.pid())).unwrap_or_default();
        io.lines()
            .find_map(|line| line.strip_prefix(counter)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// GET `path`; returns the status code, the content type and the body.
    pub async fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        http_get(self.addr, path).await
    }

    /// The value of one metric line (`name` with its labels, if any).
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, _, body) = self.get("/metrics").await;
        metric(&String::from_utf8_lossy(&body), name)
    }

    /// The value of metric `name` once it is `expected`, or its last value after 5 s: for gauges
    /// that settle a little after what the test saw (a closed connection's task still saying
    /// goodbye).
    pub async fn metric_settled(&self, name: &str, expected: f64) -> f64 {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let value = self.metric(name).await;
            if value == expected || tokio::time::Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name` in a Prometheus text page (panics if absent).
pub fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("metric {name} not found in:\n{page}"))
}

/// A minimal HTTP/1.1 GET (one request per connection).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    http_request(addr, "GET", path, &[]).await
}

/// A minimal HTTP/1.1 request with no body and extra `headers` (one request per connection);
/// returns the status code, the content type and the body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let length = if method == "POST" { "Content-Length: 0\r\n" } else { "" };
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}{length}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut response = Vec::new();
    tokio::time::timeout(super::WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read response");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut body = response[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).expect("status code");
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    (status, header("content-type").unwrap_or_default(), body)
}

fn dechunk(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&input[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 || input.len() < end + 2 + size {
            return out;
        }
        out.extend_from_slice(&input[end + 2..end + 2 + size]);
        input = &input[(end + 4 + size).min(input.len())..];
    }
}

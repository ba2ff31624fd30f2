//! A cluster on loopback for the tests of several servers: a PostgreSQL instance of our own
//! (initdb in the test directory, a free port, stopped with the test) and nginx routing by
//! document id (`scripts/cluster/nginx.conf.in`, the config `scripts/cluster.sh` uses).
//!
//! Both come from Debian's packages. When their binaries are missing the cluster tests are
//! skipped with a message, unless `DOC_SERVER_REQUIRE_CLUSTER=1` (set by `scripts/test.sh`,
//! which installs them): then a missing binary fails the test.
//!
//! PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user (made by
//! Debian's package) through `setpriv`, which execs them, so the child is the server itself.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Runs `work` on a thread of its own: the synchronous PostgreSQL client starts a runtime of
/// its own, which may not happen on a thread of the test's runtime.
pub fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(work).join().expect("the PostgreSQL thread panicked"))
}

fn required() -> bool {
    std::env::var("DOC_SERVER_REQUIRE_CLUSTER").is_ok_and(|v| v == "1")
}

/// Says that `what` is missing: fails when the cluster tests are required, else skips.
fn missing(what: &str) {
    assert!(!required(), "{what} is missing and DOC_SERVER_REQUIRE_CLUSTER=1 (scripts/test.sh installs it)");
    eprintln!("SKIPPED: {what} is missing (apt-get install postgresql nginx-light, or run scripts/test.sh)");
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The directory of PostgreSQL's server programs (`initdb`, `postgres`), newest version first.
fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten().map(|e| e.path()).collect();
    versions.sort();
    versions.into_iter().rev().map(|v| v.join("bin")).find(|bin| bin.join("postgres").exists())
}

/// A PostgreSQL server of the test's own.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    as_postgres: bool,
    child: Option<Child>,
    log: PathBuf,
}

impl Postgres {
    /// initdb in `dir/pg` and start on a free loopback port; `None` (skipped) when PostgreSQL
    /// is not installed.
    pub fn start(dir: &Path) -> Option<Postgres> {
        let Some(bin) = pg_bin() else {
            missing("PostgreSQL (/usr/lib/postgresql/*/bin/postgres)");
            return None;
        };
        let data = dir.join("pg");
        let as_postgres = is_root();
        std::fs::create_dir_all(&data).expect("create the PostgreSQL directory");
        if as_postgres {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data).status().expect("chown");
            assert!(status.success(), "chown the PostgreSQL directory to postgres");
        }
        let mut pg = Postgres {
            bin,
            data: data.clone(),
            port: free_port(),
            as_postgres,
            child: None,
            log: dir.join("postgres.log"),
        };
        let output = pg
            .command("initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", "docs", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        pg.launch();
        Some(pg)
    }

    fn command(&self, program: &str) -> Command {
        if self.as_postgres {
            let mut command = Command::new("setpriv");
            command.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(self.bin.join(program));
            command
        } else {
            Command::new(self.bin.join(program))
        }
    }

    /// Starts the server (again) on the same port and data; returns once it takes connections.
    pub fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("postgres log");
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c"])
            .arg(format!("unix_socket_directories={}", self.data.display()))
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=300"])
            .args(["-c", "shared_buffers=64MB", "-c", "deadlock_timeout=200ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = self.url();
        while off_runtime(|| ::postgres::Client::connect(&url, ::postgres::NoTls).is_err()) {
            assert!(Instant::now() < deadline, "PostgreSQL did not start; see {}", self.log.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The URL of the `postgres` database as user `docs`.
    pub fn url(&self) -> String {
        format!("postgres://docs@127.0.0.1:{}/postgres", self.port)
    }

    /// A new empty database; its URL.
    pub fn create_db(&self, name: &str) -> String {
        let url = self.url();
        off_runtime(|| {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
            client.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        });
        format!("postgres://docs@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `query` on a plain client of database `url` (on a thread of its own).
    pub fn query<T: Send>(url: &str, query: impl FnOnce(&mut ::postgres::Client) -> T + Send) -> T {
        off_runtime(|| {
            let mut client =
                ::postgres::Client::connect(url, ::postgres::NoTls).expect("connect to the test PostgreSQL");
            query(&mut client)
        })
    }

    /// Immediate shutdown (SIGQUIT: no checkpoint, as a crash), then waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-QUIT", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// nginx in front of doc-servers, with the repository's config.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx on a free loopback port routing to `servers`; `None` (skipped) when nginx
    /// is not installed.
    pub fn start(dir: &Path, servers: &[SocketAddr]) -> Option<Nginx> {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists());
        let Some(binary) = binary else {
            missing("nginx (/usr/sbin/nginx)");
            return None;
        };
        let dir = dir.join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).expect("create the nginx directory");
        let template = include_str!("../../../../scripts/cluster/nginx.conf.in");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let upstreams: String = servers.iter().map(|s| format!("        server {s} max_fails=0;\n")).collect();
        let config = template
            .replace("@DIR@", &dir.display().to_string())
            .replace("@LISTEN@", &addr.to_string())
            .replace("@SERVERS@", upstreams.trim_end())
            .replace("@USER@", if is_root() { "user root;" } else { "" });
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).expect("write nginx.conf");
        let child = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start; see {}", dir.join("nginx-error.log").display());
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Nginx { child, addr })
    }
}

impl Drop for Nginx {
    /// SIGTERM (nginx's fast shutdown: the master stops its workers), then SIGKILL if it
    /// lingers. A SIGKILL alone would leave the worker running, listening, after the test.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

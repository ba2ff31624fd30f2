//! [`Config`]: every limit and interval of the server, as command-line flags.
//!
//! The defaults are the production values; tests pass short intervals and small limits through
//! the same flags, so the binary they run is the one that ships.
//!
//! Durations are written `250ms`, `15s`, `2m`, `1h` or a bare number of seconds.

use std::path::PathBuf;
use std::time::Duration;

/// The default of `--snapshot-every`.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 8192;

/// The server's settings (parsed from flags by `main`, built directly by unit tests).
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Directory of the embedded database (created if missing).
    #[arg(long, default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Directory of the built browser client (index.html, editor.html, assets/).
    #[arg(long, default_value = "web/dist")]
    pub web_dir: PathBuf,

    /// Largest WebSocket message (and frame) a client may send, in bytes.
    #[arg(long, default_value_t = crdt_core::protocol::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Bytes of outgoing messages queued per connection (each counts 32 bytes more for its
    /// handle; the message being written does not count) before it is closed as a slow
    /// consumer. Bytes, not messages: a burst of small messages is no sign of a slow reader.
    #[arg(long, default_value_t = 256 << 10)]
    pub send_queue_bytes: usize,

    /// WebSocket read and write buffer size per connection, in bytes. Each connection holds
    /// both for its lifetime, idle or not: typing frames are tens of bytes, and a larger
    /// message only takes more reads (a 1 MiB one about 4,000 at 256 bytes, a few ms). 10,000
    /// idle connections: 7.9 KiB each at 256 bytes, 8.6 at 512 (BENCHMARKS.md, issue 20).
    #[arg(long, default_value_t = 256)]
    pub ws_buffer_bytes: usize,

    /// Changes one connection may send per second, on average (0: no limit). Five seconds'
    /// worth pass at once; beyond that the server stops reading the connection until its
    /// bucket refills, which slows the client down through TCP (PROTOCOL.md section 10).
    #[arg(long, default_value_t = 1000)]
    pub changes_per_second: u32,

    /// Bytes of messages one connection may send per second, on average (0: no limit); five
    /// seconds' worth (at least one largest message) pass at once, as for changes.
    #[arg(long, default_value_t = 1 << 20)]
    pub bytes_per_second: u64,

    /// Presence updates one connection may send per second (0: no limit). Beyond it, the
    /// latest update waits for the rate and the ones it replaces are dropped.
    #[arg(long, default_value_t = 20)]
    pub presence_per_second: u32,

    /// A connection throttled on every message it sends for this long (or one message that
    /// would keep it waiting longer) is closed with code 4005.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub flood_close_after: Duration,

    /// TCP connections one client address may hold at once (0: no limit); the next ones get
    /// HTTP 429. Behind a reverse proxy every client has the proxy's address: raise it or use 0.
    #[arg(long, default_value_t = 256)]
    pub max_connections_per_address: u32,

    /// Documents one client address may create per minute, by opening an id that is not
    /// stored (0: no limit); the next one is refused with close code 4006.
    #[arg(long, default_value_t = 60)]
    pub new_documents_per_minute: u32,

    /// Fields (name and kind) one document may have; a batch creating more is rejected (code 7).
    #[arg(long, default_value_t = 1024)]
    pub max_fields: usize,

    /// Longest name of a new field, in bytes; a batch creating a longer one is rejected (code 8).
    #[arg(long, default_value_t = 256)]
    pub max_field_name_bytes: usize,

    /// Characters one document's text fields may hold, deleted ones included (the server keeps
    /// them); a batch inserting beyond it is rejected (code 9).
    #[arg(long, default_value_t = crdt_core::protocol::DEFAULT_MAX_TEXT_CHARS)]
    pub max_text_chars: u64,

    /// Interval between WebSocket pings; a connection whose ping is still unanswered when the
    /// next is due is closed, and the others see it leave (so within two intervals of a
    /// network drop).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// How long a new connection may take to send its hello.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hello_timeout: Duration,

    /// How long an HTTP client may take to send its request headers.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// A document with no connection for this long is snapshotted and unloaded.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_unload: Duration,

    /// Snapshot a document (and truncate its log) after this many logged changes at the latest,
    /// which bounds what a load replays (about 0.6 µs a change: 8,192 keep a reload after a crash
    /// near 10 ms on automerge-paper). It is snapshotted sooner when the
    /// log since the last snapshot outgrows that snapshot.
    #[arg(long, default_value_t = DEFAULT_SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: u64,

    /// Snapshot a document at the latest this long after its first unsnapshotted change.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub snapshot_interval: Duration,

    /// How long shutdown waits for connections and documents to finish before giving up.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Development mode: no access tokens; anyone who reaches the server reads, writes and
    /// lists every document and reads the metrics. Never use it where others can connect.
    #[arg(long)]
    pub open: bool,

    /// File holding the secret that signs access tokens (32 bytes or more). Default: the
    /// DOC_SERVER_SECRET environment variable, else `secret.key` in the data directory,
    /// generated at first start.
    #[arg(long, global = true)]
    pub secret_file: Option<PathBuf>,

    /// How long the links made for a new document stay valid.
    #[arg(long, default_value = "365d", value_parser = parse_duration)]
    pub link_ttl: Duration,

    /// Memory the loaded documents may use together (`512MiB`, `2GiB`, bytes). Opening a
    /// document beyond it first unloads the documents nobody has open, least recently used
    /// first; if that is not enough, the document is refused for now (close 1013, HTTP 503).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub memory_budget: u64,

    /// Refuse WebSocket upgrades (HTTP 403): clients use the fallback transport, Server-Sent
    /// Events plus POSTs under `/ws/{id}/sse` (PROTOCOL.md section 1a). For tests, and for
    /// networks whose proxies break WebSockets.
    #[arg(long)]
    pub no_websocket: bool,

    /// An origin (e.g. `https://app.example.com`) whose pages may open WebSockets and call the
    /// HTTP API, besides the server's own; repeat for several. `*` allows any origin.
    #[arg(long = "allow-origin")]
    pub allowed_origins: Vec<String>,

    /// Where documents are stored: `sqlite` (the default: `docs.sqlite3` in --data-dir, one
    /// server) or a PostgreSQL URL (`postgres://user@host:5432/db`) that several servers share
    /// behind a proxy routing by document id; each document is then served by the one server
    /// holding its lease (ARCHITECTURE.md, "Several servers").
    #[arg(long, default_value = "sqlite")]
    pub store: String,

    /// This server's id in the shared store's leases (default: its listen address, process id
    /// and a random number: unique per run, which a lease's owner must be).
    #[arg(long)]
    pub server_id: Option<String>,

    /// With a shared store: how long a document's lease lasts unless renewed (renewed every
    /// third of it). A server that dies or freezes keeps its documents this long at most.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub lease_ttl: Duration,

    /// With a shared store: how long a connection waits for another server to hand its document
    /// over before it is told to reconnect (close 4010).
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub claim_wait: Duration,
    /// A URL (`http://host:port/path`) called after any document changes (debounced, signed
    /// with the secret `doc-server webhook-secret --url URL` prints); repeat for several.
    #[arg(long = "webhook")]
    pub webhooks: Vec<String>,
}

impl Config {
    /// The defaults, with the database in `data_dir`.
    pub fn with_data_dir(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            web_dir: PathBuf::from("web/dist"),
            max_message_bytes: crdt_core::protocol::DEFAULT_MAX_MESSAGE_BYTES,
            send_queue_bytes: 256 << 10,
            ws_buffer_bytes: 256,
            changes_per_second: 1000,
            bytes_per_second: 1 << 20,
            presence_per_second: 20,
            flood_close_after: Duration::from_secs(60),
            max_connections_per_address: 256,
            new_documents_per_minute: 60,
            max_fields: 1024,
            max_field_name_bytes: 256,
            max_text_chars: crdt_core::protocol::DEFAULT_MAX_TEXT_CHARS,
            heartbeat_interval: Duration::from_secs(2),
            hello_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_unload: Duration::from_secs(60),
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            snapshot_interval: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            open: false,
            secret_file: None,
            link_ttl: Duration::from_secs(365 * 86_400),
            allowed_origins: Vec::new(),
            no_websocket: false,
            memory_budget: 1 << 30,
            store: "sqlite".into(),
            server_id: None,
            lease_ttl: Duration::from_secs(3),
            claim_wait: Duration::from_secs(8),
            webhooks: Vec::new(),
        }
    }
}

/// Parses `250ms`, `15s`, `2m`, `1h`, `7d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 250ms, 15s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(value.saturating_mul(3600))),
        "d" => Ok(Duration::from_secs(value.saturating_mul(86_400))),
        _ => Err(format!("unknown unit {unit:?} in {text:?}: use ms, s, m, h or d")),
    }
}

/// Parses a size: `4096`, `64KiB`, `512MiB`, `2GiB` (also `KB`/`MB`/`GB` as powers of 1,000).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(at);
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is not a size such as 512MiB or 2GiB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?} in {text:?}: use B, KiB, MiB or GiB")),
    };
    value.checked_mul(scale).ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64KiB"), Ok(65_536));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("3MB"), Ok(3_000_000));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("5TiB").is_err());
        assert!(parse_bytes("99999999999999GiB").is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("ms").is_err());
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("").is_err());
    }
}

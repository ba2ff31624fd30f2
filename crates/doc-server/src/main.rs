//! The `doc-server` binary: parses flags, sets up logging, opens the store, binds the listener,
//! prints `listening on ADDR` on stdout (tests and scripts read the port from it) and serves
//! until SIGTERM or SIGINT, then shuts down cleanly and exits 0.
//!
//! Logs go to stderr; their filter comes from `RUST_LOG` (for example
//! `RUST_LOG=info,doc_server=debug`), default `info`.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use doc_server::auth::Role;
use doc_server::storage::{PgStore, PgStoreOptions, SqliteStore, Store};
use doc_server::{AppState, Auth, Config, DocId};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// jemalloc, with a background thread that gives freed memory back to the system within a
/// second or two (`.cargo/config.toml`): glibc's allocator kept a past peak resident, and memory
/// must follow the open documents and connections, not their history.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Collaborative document server: one actor per document, durable op log, WebSocket sync.
///
/// Documents are reached through links that carry signed access tokens (read, write or
/// admin): `POST /docs` creates a document and answers its links, `doc-server token` mints
/// one from the command line. `--open` turns tokens off, for development only.
#[derive(Debug, Parser)]
#[command(name = "doc-server", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    #[command(flatten)]
    config: Config,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Prints an access token signed with this server's secret (same --data-dir or
    /// --secret-file as the server), and the link that carries it.
    Token {
        /// The document id, or `*` for every document (with `--role admin`: listing, metrics).
        #[arg(long)]
        doc: String,
        /// read (view link), write (edit link) or admin.
        #[arg(long, default_value = "write", value_parser = Role::parse)]
        role: Role,
        /// How long the token stays valid (`30d`, `12h`, ...).
        #[arg(long, default_value = "30d", value_parser = doc_server::config::parse_duration)]
        expires_in: std::time::Duration,
        /// The server's public address, for the printed link.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base_url: String,
    },
    /// Prints the secret that signs the calls of a `--webhook URL` flag (derived from this
    /// server's secret: same --data-dir or --secret-file as the server).
    WebhookSecret {
        /// The webhook's URL, exactly as given to `--webhook`.
        #[arg(long)]
        url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if let Some(Command::Token { doc, role, expires_in, base_url }) = &cli.command {
        return match mint_token(&cli.config, doc, *role, *expires_in, base_url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("doc-server token: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::WebhookSecret { url }) = &cli.command {
        return match server_auth(&cli.config) {
            Ok(auth) => {
                println!("{}", doc_server::webhooks::flag_secret(&auth, url));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("doc-server webhook-secret: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("doc-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("doc-server: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse().ok())
        .unwrap_or_else(|| "info".parse().unwrap_or_default());
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()))
        .with(filter)
        .init();
}

/// `doc-server token`: prints the token, then the link (for a single document).
fn mint_token(
    config: &Config,
    doc: &str,
    role: Role,
    expires_in: std::time::Duration,
    base_url: &str,
) -> Result<(), String> {
    if doc != doc_server::auth::ANY_DOC {
        DocId::parse(doc).map_err(|error| error.to_string())?;
    }
    let auth = server_auth(config)?;
    let token = auth.mint(doc, role, doc_server::auth::now_secs().saturating_add(expires_in.as_secs()));
    println!("{token}");
    if doc != doc_server::auth::ANY_DOC {
        println!("{}/d/{doc}#{token}", base_url.trim_end_matches('/'));
    }
    Ok(())
}

/// The server's token checker: its lasting secret, and `--open`.
fn server_auth(config: &Config) -> Result<Auth, String> {
    let secret = Auth::load_secret(config.secret_file.as_deref(), &config.data_dir)?;
    Auth::new(secret, config.open)
}

async fn serve(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let auth = server_auth(&cli.config)?;
    for url in &cli.config.webhooks {
        doc_server::webhooks::Target::parse(url).map_err(|error| format!("--webhook {url}: {error}"))?;
    }
    if auth.is_open() {
        let warning = "--open: ACCESS TOKENS ARE OFF. Anyone who can reach this server can read, change and list \
                       every document. Use it for development on a machine only you can reach.";
        tracing::warn!("{warning}");
        eprintln!("\n!!! {warning}\n");
    }
    let store: Arc<dyn Store> = if cli.config.store == "sqlite" {
        Arc::new(
            SqliteStore::open(&cli.config.data_dir)
                .map_err(|error| format!("cannot open the store in {}: {error}", cli.config.data_dir.display()))?,
        )
    } else if cli.config.store.starts_with("postgres://") || cli.config.store.starts_with("postgresql://") {
        let owner = cli.config.server_id.clone().unwrap_or_else(|| {
            let mut random = [0u8; 4];
            let _ = getrandom::fill(&mut random);
            format!("{}#{}-{:08x}", cli.listen, std::process::id(), u32::from_be_bytes(random))
        });
        let options = PgStoreOptions {
            url: cli.config.store.clone(),
            owner: owner.clone(),
            lease_ttl: cli.config.lease_ttl,
            connections: 8,
        };
        let store = tokio::task::spawn_blocking(move || PgStore::open(options))
            .await?
            .map_err(|error| format!("cannot open the PostgreSQL store: {error}"))?;
        tracing::info!(server_id = %owner, lease_ttl = ?cli.config.lease_ttl, "PostgreSQL store: serving documents whose lease this server holds");
        Arc::new(store)
    } else {
        return Err(format!("--store {}: use `sqlite` or a postgres:// URL", cli.config.store).into());
    };
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", cli.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, data_dir = %cli.config.data_dir.display(), "listening");
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {address}")?;
        stdout.flush()?;
    }
    let state = AppState::new(cli.config, store).with_auth(auth);
    doc_server::run(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown signal received");
}

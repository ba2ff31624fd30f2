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
use doc_server::storage::SqliteStore;
use doc_server::{AppState, Config};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Collaborative document server: one actor per document, durable op log, WebSocket sync.
#[derive(Debug, Parser)]
#[command(name = "doc-server", version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    #[command(flatten)]
    config: Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
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

async fn serve(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let store = SqliteStore::open(&cli.config.data_dir)
        .map_err(|error| format!("cannot open the store in {}: {error}", cli.config.data_dir.display()))?;
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
    let state = AppState::new(cli.config, Arc::new(store));
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

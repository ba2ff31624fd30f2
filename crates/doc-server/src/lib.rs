//! doc-server: the collaborative document server.
//!
//! Browsers (and any other client) connect one WebSocket per document and speak the protocol of
//! `crdt_core::protocol`, described for client writers in `PROTOCOL.md` at the repository root.
//! Each loaded document is owned by one actor task (`doc_actor`) that applies changes, appends
//! them to a durable op log, acknowledges them once the log is fsync'd, and rebroadcasts them to
//! the document's other connections.
//!
//! Layers, outside in:
//! - `serve`: the accept loop (hyper HTTP/1 with a header read timeout, `TCP_NODELAY`,
//!   graceful shutdown);
//! - `http`: the routes (static files of the browser client, `/docs`, `/healthz`, `/metrics`);
//! - `api`: the HTTP API of documents (JSON edits, text and past reads, SSE subscriptions,
//!   webhook registration), and `feed` + `webhooks`: who hears about committed changes;
//! - `ws`: the WebSocket upgrade and one loop per connection (framing, heartbeats, limits);
//! - `limits`: what one client may cost: token buckets per connection and per address, and
//!   the limits of one document;
//! - `registry` and `doc_actor`: the documents and their actors;
//! - `storage`: the `Store` trait, its SQLite implementation (one server) and its PostgreSQL
//!   one (several servers, with leases that fence a server that lost a document).
//!
//! **Architecture Invariant:** doc-server is the only crate that knows about WebSockets; the
//! message types themselves live in crdt-core so that the browser client shares them.

pub mod api;
pub mod auth;
pub mod config;
pub mod doc_actor;
pub mod doc_id;
pub mod error;
pub mod feed;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod registry;
pub mod relay;
pub mod serve;
pub mod sse;
pub mod static_files;
pub mod storage;
pub mod webhooks;
pub mod ws;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::Auth;
pub use config::Config;
pub use doc_id::DocId;
pub use error::ServerError;

use doc_actor::ActorContext;
use limits::AddressLimits;
use metrics::Metrics;
use registry::DocRegistry;
use storage::Store;

/// Everything a request handler or a connection needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The loaded documents.
    pub registry: Arc<DocRegistry>,
    /// Durable storage (for listings; documents go through their actors).
    pub store: Arc<dyn Store>,
    /// The server's metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and intervals.
    pub config: Arc<Config>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Tracks connection and actor tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// The next connection id.
    pub next_conn: Arc<AtomicU64>,
    /// Connections and new documents per client address.
    pub address_limits: Arc<AddressLimits>,
    /// The last `/readyz` probe.
    pub ready: Arc<tokio::sync::Mutex<Option<ReadyProbe>>>,
    /// Checks and mints access tokens.
    pub auth: Arc<Auth>,
    /// The listeners of committed changes: SSE subscribers and webhooks.
    pub feed: Arc<feed::ChangeFeed>,
    /// The open sessions of the fallback transport (SSE + POST, `sse.rs`).
    pub sse: Arc<sse::SseSessions>,
}

/// When `/readyz` last probed the store, and what the store said.
pub type ReadyProbe = (tokio::time::Instant, Result<(), String>);

impl AppState {
    /// A state with no document loaded, whose tokens are signed with a secret drawn now
    /// (`main` sets the server's lasting one with [`AppState::with_auth`]).
    pub fn new(config: Config, store: Arc<dyn Store>) -> AppState {
        let auth = Auth::ephemeral(config.open);
        let metrics = Arc::new(Metrics::default());
        let config = Arc::new(config);
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let address_limits = AddressLimits::new(&config);
        let feed = Arc::new(feed::ChangeFeed::new(Arc::new(webhooks::Webhooks::new(Arc::clone(&metrics)))));
        if let Err(error) = feed.webhooks().set_flag_hooks(&auth, &config.webhooks) {
            tracing::error!(%error, "a --webhook flag is not usable");
        }
        let registry = DocRegistry::new(ActorContext {
            store: Arc::clone(&store),
            metrics: Arc::clone(&metrics),
            config: Arc::clone(&config),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            feed: Arc::clone(&feed),
            relay: Arc::new(auth.relay_key()),
        });
        AppState {
            registry,
            store,
            metrics,
            config,
            shutdown,
            tracker,
            next_conn: Arc::new(AtomicU64::new(1)),
            address_limits,
            ready: Arc::default(),
            auth: Arc::new(auth),
            feed,
            sse: Arc::default(),
        }
    }

    /// The same state, checking and minting tokens with `auth`.
    pub fn with_auth(mut self, auth: Auth) -> AppState {
        if let Err(error) = self.feed.webhooks().set_flag_hooks(&auth, &self.config.webhooks) {
            tracing::error!(%error, "a --webhook flag is not usable");
        }
        // Before any document opens: the actors tag relays with the lasting secret's key.
        let mut ctx = self.registry.context().clone();
        ctx.relay = Arc::new(auth.relay_key());
        self.registry = DocRegistry::new(ctx);
        self.auth = Arc::new(auth);
        self
    }
}

/// Serves on `listener` until `shutdown` completes, then stops accepting, closes every
/// connection, writes a final snapshot of every loaded document and returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    state.start_webhooks().await?;
    let router = http::router(state.clone());
    state.tracker.spawn(Arc::clone(&state.registry).keep_leases());
    serve::serve(listener, router, state, shutdown).await
}

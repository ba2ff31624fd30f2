//! The accept loop: hyper's HTTP/1 server driven directly, because `axum::serve` has no
//! header read timeout.
//!
//! Each accepted socket gets `TCP_NODELAY` (small WebSocket frames must not wait for Nagle's
//! algorithm: without it broadcast latency was measured at 38 ms p50 instead of 5 ms) and a
//! connection task under the shared `TaskTracker`. A request whose headers do not arrive within
//! `--header-read-timeout` is closed. Upgrades are enabled for the WebSocket route. Every
//! request carries the peer's address as a [`ClientAddr`] extension.
//!
//! A socket from an address that already holds `--max-connections-per-address` connections is
//! answered `429 Too Many Requests` and closed, before any request is read. When accepting
//! fails because the process or the system is out of file descriptors (`EMFILE`, `ENFILE`),
//! the loop pauses [`ACCEPT_BACKOFF`] before it tries again (a failing accept returns at once,
//! so retrying without a pause would spin a core), and logs at most once a second. `main`
//! raises the descriptor limit to the hard limit first (`raise_open_files_limit`).
//!
//! Shutdown, in order: stop accepting (the listener is dropped), cancel the shutdown token
//! (WebSocket sessions close with 1001, HTTP connections finish their request and close,
//! document actors commit what is queued and write a final snapshot), then wait for every
//! tracked task, at most `--shutdown-timeout`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::limits::ConnectionPermit;
use crate::metrics::Metrics;
use crate::{AppState, ServerError};

/// How long the accept loop pauses after an accept failed for lack of file descriptors.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The client's address and its place in the per-address count, as a request extension
/// (`Option<Extension<ClientAddr>>` in a handler; absent when a test drives the router without
/// a socket). An upgraded connection outlives the HTTP connection task, so the WebSocket task
/// keeps a clone of `permit`: the address's count drops when both are gone.
#[derive(Clone, Debug)]
pub struct ClientAddr {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Counts the connection against its address until every clone is dropped.
    pub permit: Arc<ConnectionPermit>,
}

/// The router as a hyper service that adds [`ClientAddr`] to every request of one connection.
#[derive(Clone)]
struct WithClientAddr {
    inner: TowerToHyperService<Router>,
    addr: ClientAddr,
}

impl hyper::service::Service<Request<Incoming>> for WithClientAddr {
    type Response = <TowerToHyperService<Router> as hyper::service::Service<Request<Incoming>>>::Response;
    type Error = <TowerToHyperService<Router> as hyper::service::Service<Request<Incoming>>>::Error;
    type Future = <TowerToHyperService<Router> as hyper::service::Service<Request<Incoming>>>::Future;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.addr.clone());
        self.inner.call(request)
    }
}

/// What the client of a refused socket reads.
const TOO_MANY_CONNECTIONS: &str = "too many connections from your address: close some and try again\n";

/// Answers 429 on a socket refused for its address, then closes it. Reads (and drops) what the
/// client sent for a moment first, so that closing does not reset the connection under the
/// answer before the client has read it.
async fn refuse(mut socket: TcpStream) {
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 10\r\nconnection: close\r\n\r\n{TOO_MANY_CONNECTIONS}",
        TOO_MANY_CONNECTIONS.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        socket.write_all(response.as_bytes()).await?;
        socket.shutdown().await?;
        let mut sink = [0u8; 1024];
        while socket.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Raises the process's soft limit of open files (`RLIMIT_NOFILE`) to its hard limit, so that
/// a server started with the common soft limit of 1,024 is not starved of sockets by a few
/// hundred idle connections; returns the limit in force afterwards (`None`: unlimited). Raising
/// a soft limit up to the hard one needs no privilege. An unlimited hard limit is not a value
/// `setrlimit` accepts for files, so the soft limit is then raised to 2^20.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let target = limit.maximum.unwrap_or(1 << 20);
    if limit.current.is_some_and(|current| current < target) {
        let raised = Rlimit { current: Some(target), maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::info!(from = limit.current, to = target, "raised the open-files limit"),
            Err(error) => tracing::warn!(%error, limit = limit.current, "could not raise the open-files limit"),
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Whether an accept error concerns only the connection it would have returned (the next
/// accept may succeed at once), rather than the process or the system (out of file
/// descriptors, `EMFILE` / `ENFILE`, or memory).
fn concerns_one_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(error.kind(), ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted)
}

/// Serves `router` on `listener` until `shutdown` completes; see the module docs.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    tokio::pin!(shutdown);
    let files = raise_open_files_limit().map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
    state.metrics.open_files_limit.store(files, std::sync::atomic::Ordering::Relaxed);
    let header_timeout = state.config.header_read_timeout;
    let service = TowerToHyperService::new(router);
    // When an accept failure was last logged, and how many went unlogged since.
    let mut last_logged: Option<Instant> = None;
    let mut unlogged = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                Metrics::inc(&state.metrics.accept_errors);
                if last_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(%error, failures_since_last_report = unlogged, "accept failed");
                    last_logged = Some(Instant::now());
                    unlogged = 0;
                } else {
                    unlogged += 1;
                }
                // Out of descriptors (or memory), the same accept fails again at once until a
                // connection closes: pause instead of spinning. A connection reset before it
                // was accepted concerns that connection only.
                if !concerns_one_connection(&error) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        let Some(permit) = state.address_limits.admit(peer.ip()) else {
            Metrics::inc(&state.metrics.address_refusals);
            tracing::debug!(%peer, "connection refused: too many from this address");
            state.tracker.spawn(refuse(socket));
            continue;
        };
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let service =
            WithClientAddr { inner: service.clone(), addr: ClientAddr { addr: peer, permit: Arc::new(permit) } };
        let cancel = state.shutdown.clone();
        state.tracker.spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(socket), service)
                .with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = cancel.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no longer accepting connections");
    state.shutdown.cancel();
    state.tracker.close();
    if tokio::time::timeout(state.config.shutdown_timeout, state.tracker.wait()).await.is_err() {
        tracing::warn!("shutdown timed out; some connections or documents did not finish");
    }
    tracing::info!("shutdown complete");
    Ok(())
}

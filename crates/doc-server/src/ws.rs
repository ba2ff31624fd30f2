//! The WebSocket endpoint: the upgrade (with our size limits and small buffers) and one loop per
//! connection, generic over `Sink`/`Stream` so unit tests can drive it through channels.
//!
//! A connection goes through three phases:
//! 1. *hello*: the first message must be a `Hello` of our protocol version, within
//!    `--hello-timeout`;
//! 2. *join*: the document's actor is asked to add the connection; it answers once it has
//!    queued the `Welcome` (so after the document has loaded), or refuses a replica id that
//!    another connection uses or another author owns (close code 4002);
//! 3. *session*: a reader forwards `Changes` and `Presence` to the actor, and a writer drains
//!    the connection's bounded queue into the socket and sends a ping every heartbeat interval.
//!
//! The session ends at the first of: the client closes; bad input (an `Error` message and a
//! close frame with a code from PROTOCOL.md); the actor kicks the connection (slow consumer);
//! a send stalls for two heartbeat intervals (10 s at least); a ping is still unanswered when
//! the next is due; the client stays over its rate (4005); shutdown.
//!
//! Limits (`limits.rs`): before joining a document that is neither loaded nor stored, the
//! client's address must have a new document left this minute (otherwise close 4006). In the
//! session, each `Changes` message is charged to the connection's change and byte buckets;
//! when they run dry the reader forwards the message and then reads nothing more until the
//! debt is repaid, so the client is slowed down by TCP (its pings are not timed out meanwhile).
//! A `Presence` over its rate is held, replaced by any later one, and forwarded when a token
//! comes.
//!
//! # Invariants
//! - Every path out of the session tells the actor `Leave`, so presence never outlives a socket.
//! - Bad input affects only its own connection; nothing a client sends can panic the server.

use std::error::Error as StdError;
use std::fmt::Display;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use crdt_core::protocol::{ClientMsg, Selection, WireNames, MAX_TOKEN_BYTES, PROTOCOL_VERSION};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite;
use tracing::Instrument;

use crate::auth::{Auth, AuthError, Role};
use crate::doc_actor::{author_hash, ConnId, DocCommand, DocHandle, JoinRefused, JoinRequest, KickReason};
use crate::limits::{ConnectionRates, Verdict};
use crate::metrics::{GaugeGuard, Metrics};
use crate::outbox::{outbox, OutboxReceiver};
use crate::serve::ClientAddr;
use crate::{AppState, DocId, ServerError};

/// Longest user name, color or field name accepted in `Hello` and `Presence`, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;
/// The shortest time a send may make no progress before the connection counts as stalled.
const STALL_FLOOR: Duration = Duration::from_secs(10);
/// Frames written between two flushes at most.
const MAX_FRAMES_PER_FLUSH: usize = 64;

/// Close codes (see PROTOCOL.md).
pub mod close_code {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A message arrived out of order, or `Hello` named another protocol version.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A binary frame that does not decode (format version, kind, body).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// No hello in time, or a label above [`super::MAX_LABEL_BYTES`].
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message or frame above `--max-message-bytes`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The document could not be loaded or stored.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// Slow consumer, or the document is unavailable: reconnect later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// A ping went unanswered for a whole heartbeat interval.
    pub const HEARTBEAT_TIMEOUT: u16 = 4001;
    /// `Hello` named a replica that another connection uses or another author owns: connect
    /// as a new replica id. (4000, which closed the *other* connection, is no longer sent.)
    pub const REPLICA_REFUSED: u16 = crdt_core::protocol::CLOSE_REPLICA_REFUSED;
    /// `Hello` presented no access token, or one that does not let it read this document.
    pub const UNAUTHORIZED: u16 = crdt_core::protocol::CLOSE_UNAUTHORIZED;
    /// `Hello` presented an access token that expired.
    pub const TOKEN_EXPIRED: u16 = crdt_core::protocol::CLOSE_TOKEN_EXPIRED;
    /// The connection stayed over its change or byte rate for `--flood-close-after`.
    pub const RATE_LIMITED: u16 = 4005;
    /// The client's address created `--new-documents-per-minute` documents in the last minute.
    pub const TOO_MANY_NEW_DOCUMENTS: u16 = 4006;
    /// This server does not own the document (any more): another server of the cluster does.
    /// Reconnect at once (through the proxy) and resend what was not acknowledged.
    pub const MOVED: u16 = 4010;
}

/// `GET /ws/{id}`: upgrades to a WebSocket for document `id`.
pub async fn ws_route(
    Path(id): Path<String>,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    client: Option<Extension<ClientAddr>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ServerError> {
    // The WebSocket task holds the address's permit: the upgrade ends the HTTP connection task.
    let (client, permit) = client.map(|Extension(ClientAddr { addr, permit })| (addr.ip(), permit)).unzip();
    let doc_id = DocId::parse(&id)?;
    check_origin(&headers, &state)?;
    if state.config.no_websocket {
        // For tests of the fallback, and for deployments whose proxies break WebSockets
        // halfway: the page falls back to `/ws/{id}/sse` (sse.rs).
        let message = "WebSocket upgrades are turned off on this server (--no-websocket): use /ws/{id}/sse\n";
        return Ok((axum::http::StatusCode::FORBIDDEN, message).into_response());
    }
    let config = &state.config;
    let tracker = state.tracker.clone();
    Ok(upgrade
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes)
        .read_buffer_size(config.ws_buffer_bytes)
        .write_buffer_size(config.ws_buffer_bytes)
        .on_failed_upgrade(|error| tracing::debug!(%error, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            // The permit goes with the session's end (`map`, not an async block, which would
            // hold the session's arguments twice).
            tracker.track_future(serve_socket(sink, stream, doc_id, state, client).map(move |()| drop(permit)))
        }))
}

/// Refuses a request from a page of another site (an `Origin` that is neither ours nor on
/// `--allow-origin`). Browsers let any site's page open a WebSocket to us (cross-site WebSocket
/// hijacking), and post to us: only pages of our own origin and the listed ones may, whatever
/// token they hold.
pub(crate) fn check_origin(headers: &axum::http::HeaderMap, state: &AppState) -> Result<(), ServerError> {
    let header = |name| headers.get(name).and_then(|value: &axum::http::HeaderValue| value.to_str().ok());
    let origin = header(axum::http::header::ORIGIN);
    if !Auth::origin_allowed(origin, header(axum::http::header::HOST), &state.config.allowed_origins) {
        let error = AuthError::Origin(origin.unwrap_or_default().chars().take(100).collect());
        state.metrics.auth_refusal(&error);
        tracing::info!(%error, "websocket or fallback session refused");
        return Err(error.into());
    }
    Ok(())
}

/// How a session ended.
#[derive(Debug)]
enum Exit {
    /// The client sent a close frame or the stream ended.
    ClientClosed,
    /// The socket failed.
    Gone,
    /// The client sent something it must not.
    BadInput { code: u16, message: String },
    /// The actor closed the connection.
    Kicked(KickReason),
    /// A send did not complete within two heartbeat intervals.
    Stalled,
    /// A ping was still unanswered when the next was due.
    HeartbeatTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The document's actor stopped or kept unloading: try again.
    Unavailable(String),
    /// The document could not be loaded.
    Failed(String),
    /// The `Hello`'s replica id is in use by another connection or owned by another author.
    ReplicaRefused(String),
    /// The `Hello`'s access token does not let it read the document.
    Unauthorized(AuthError),
    /// The client stayed over its rate.
    Flood,
    /// The client's address has created too many documents this minute.
    TooManyNewDocuments,
}

fn bad(code: u16, message: impl Into<String>) -> Exit {
    Exit::BadInput { code, message: message.into() }
}

/// Serves one WebSocket connection to `doc_id` from `client` (`None`: an address is not known,
/// and not limited) until it ends; see the module docs.
///
/// Not an `async fn`: its future would hold the arguments a second time beside the session's
/// own future, and every idle connection's task keeps that room (BENCHMARKS.md, issue 20).
pub fn serve_socket<Si, St, E>(
    mut sink: Si,
    mut stream: St,
    doc_id: DocId,
    state: AppState,
    client: Option<IpAddr>,
) -> impl Future<Output = ()>
where
    Si: Sink<Message> + Unpin,
    Si::Error: Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: StdError + 'static,
{
    let conn = ConnId(state.next_conn.fetch_add(1, Ordering::Relaxed));
    let span = tracing::info_span!("conn", conn = conn.0, doc_id = %doc_id);
    async move {
        let _gauge = GaugeGuard::new(&state.metrics.connections);
        tracing::debug!("connected");
        let exit = session(&mut sink, &mut stream, conn, &doc_id, &state, client).await;
        match &exit {
            Exit::BadInput { message, .. } => {
                Metrics::inc(&state.metrics.rejected_frames);
                tracing::info!(%message, "closing connection on bad input");
            }
            Exit::Stalled => {
                Metrics::inc(&state.metrics.slow_consumer_disconnects);
                tracing::info!("closing connection: sends stalled");
            }
            Exit::HeartbeatTimeout => {
                Metrics::inc(&state.metrics.heartbeat_timeouts);
                tracing::info!("closing connection: heartbeat timeout");
            }
            Exit::Failed(reason) => tracing::error!(%reason, "closing connection: document unavailable"),
            Exit::Unauthorized(error) => {
                state.metrics.auth_refusal(error);
                tracing::info!(%error, "closing connection: not authorized");
            }
            Exit::Flood => {
                Metrics::inc(&state.metrics.flood_closes);
                tracing::info!("closing connection: over its rate for too long");
            }
            Exit::TooManyNewDocuments => {
                Metrics::inc(&state.metrics.new_document_refusals);
                tracing::info!(?client, "closing connection: too many new documents from this address");
            }
            other => tracing::debug!(exit = ?other, "connection ends"),
        }
        goodbye(&mut sink, &mut stream, &exit).await;
    }
    .instrument(span)
}

/// A connection that joined its document: what the session phase needs.
struct Joined {
    handle: DocHandle,
    out_rx: OutboxReceiver,
    kick_rx: oneshot::Receiver<KickReason>,
}

/// The three phases; returns why the connection ends. Tells the actor `Leave` if it joined.
async fn session<Si, St, E>(
    sink: &mut Si,
    stream: &mut St,
    conn: ConnId,
    doc_id: &DocId,
    state: &AppState,
    client: Option<IpAddr>,
) -> Exit
where
    Si: Sink<Message> + Unpin,
    Si::Error: Display,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: StdError + 'static,
{
    let missed_pongs = AtomicU32::new(0);
    // What the client has named on this connection (replica ids, field names): its changes
    // name each once, then by number.
    let mut names = WireNames::new();
    // Boxed: the hello and join phases' futures are large and short-lived, and every idle
    // connection's task would otherwise keep room for them (BENCHMARKS.md, issue 20).
    let joined = Box::pin(hello_and_join(stream, conn, doc_id, state, client, &missed_pongs, &mut names)).await;
    let Joined { handle, mut out_rx, mut kick_rx } = match joined {
        Ok(joined) => joined,
        Err(exit) => return exit,
    };

    let exit = {
        let throttled = AtomicBool::new(false);
        // Biased: the actor sends a kick before it drops the connection's queue, and the kick
        // carries the reason the client must hear, so it wins over the closed queue; shutdown
        // comes first because actors drop every queue when they shut down. The loops' futures
        // are made in place: bound to locals first, the task would keep room for them twice.
        tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => Exit::Shutdown,
            reason = &mut kick_rx => match reason {
                Ok(reason) => Exit::Kicked(reason),
                Err(_) => Exit::Unavailable("the document was unloaded".into()),
            },
            exit = read_loop(stream, &handle, conn, state, &missed_pongs, &throttled, &mut names) => exit,
            exit = write_loop(sink, &mut out_rx, state, &missed_pongs, &throttled) => exit,
        }
    };
    // Best effort: if the actor is gone, it has forgotten the connection anyway.
    if let Some(wait) = handle.send_or_wait(DocCommand::Leave { conn }) {
        let _ = wait.await;
    }
    exit
}

/// Phases 1 and 2: the `Hello`, then joining the document's actor.
async fn hello_and_join<St, E>(
    stream: &mut St,
    conn: ConnId,
    doc_id: &DocId,
    state: &AppState,
    client: Option<IpAddr>,
    missed_pongs: &AtomicU32,
    names: &mut WireNames,
) -> Result<Joined, Exit>
where
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: StdError + 'static,
{
    let hello = tokio::select! {
        next = timeout(state.config.hello_timeout, next_message(stream, state, missed_pongs, names)) => next,
        _ = state.shutdown.cancelled() => return Err(Exit::Shutdown),
    };
    let (replica, author, version, user, role) = match hello {
        Err(_) => return Err(bad(close_code::POLICY_VIOLATION, "no Hello within the hello timeout")),
        Ok(Err(exit)) => return Err(exit),
        Ok(Ok(ClientMsg::Hello { protocol, replica, author, version, user, token })) => {
            if protocol != PROTOCOL_VERSION {
                return Err(bad(
                    close_code::PROTOCOL_ERROR,
                    format!("protocol version {protocol} is not supported (this server speaks {PROTOCOL_VERSION})"),
                ));
            }
            if user.name.len() > MAX_LABEL_BYTES || user.color.len() > MAX_LABEL_BYTES {
                return Err(bad(close_code::POLICY_VIOLATION, "user name or color is too long"));
            }
            if token.len() > MAX_TOKEN_BYTES {
                return Err(bad(close_code::POLICY_VIOLATION, "the access token is too long"));
            }
            // Reading is the least a connection does; what it may send is decided per batch.
            let role = match state.auth.check(Some(&token), Some(doc_id), Role::Read) {
                Ok(role) => role,
                Err(error) => return Err(Exit::Unauthorized(error)),
            };
            (replica, author_hash(&author), version, user, role)
        }
        Ok(Ok(_)) => return Err(bad(close_code::PROTOCOL_ERROR, "the first message must be Hello")),
    };

    if let Some(address) = client {
        count_new_document(doc_id, address, state).await?;
    }

    for _attempt in 0..3 {
        let handle = match state.registry.open(doc_id) {
            Ok(handle) => handle,
            Err(ServerError::ShuttingDown) => return Err(Exit::Shutdown),
            Err(error @ ServerError::OverBudget) => return Err(Exit::Unavailable(error.to_string())),
            Err(error) => return Err(Exit::Failed(error.to_string())),
        };
        let (out, out_rx) = outbox(state.config.send_queue_bytes);
        let (kick, kick_rx) = oneshot::channel();
        let (reply, answer) = oneshot::channel();
        let join = JoinRequest {
            conn,
            replica,
            author,
            user: user.clone(),
            since: version.clone(),
            writable: role >= Role::Write,
            out,
            kick,
            reply,
        };
        if handle.send(DocCommand::Join(Box::new(join))).await.is_err() {
            continue; // The actor unloaded after we got its handle: open again.
        }
        let answer = tokio::select! {
            answer = answer => answer,
            _ = state.shutdown.cancelled() => return Err(Exit::Shutdown),
        };
        match answer {
            Ok(Ok(())) => {
                tracing::debug!(%replica, "joined");
                return Ok(Joined { handle, out_rx, kick_rx });
            }
            Ok(Err(JoinRefused::Unloading)) | Err(_) => continue,
            Ok(Err(JoinRefused::Failed(reason))) => return Err(Exit::Failed(reason)),
            Ok(Err(JoinRefused::Replica(reason))) => return Err(Exit::ReplicaRefused(reason)),
            Ok(Err(JoinRefused::Moved)) => return Err(Exit::Kicked(KickReason::Moved)),
        }
    }
    Err(Exit::Unavailable("the document kept unloading".into()))
}

/// Counts the opening of `doc_id` against `address`'s new documents when the document is
/// neither loaded nor stored (opening it would create it).
async fn count_new_document(doc_id: &DocId, address: IpAddr, state: &AppState) -> Result<(), Exit> {
    if state.config.new_documents_per_minute == 0 || state.registry.get(doc_id).is_some() {
        return Ok(());
    }
    let store = state.store.clone();
    let id = doc_id.clone();
    let stored = tokio::task::spawn_blocking(move || store.exists(&id)).await;
    match stored {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) if state.address_limits.allow_new_document(address, Instant::now()) => Ok(()),
        Ok(Ok(false)) => Err(Exit::TooManyNewDocuments),
        Ok(Err(error)) => Err(Exit::Failed(error.to_string())),
        Err(error) => Err(Exit::Failed(error.to_string())),
    }
}

/// Reads until the next protocol message, handling control frames on the way.
async fn next_message<St, E>(
    stream: &mut St,
    state: &AppState,
    missed_pongs: &AtomicU32,
    names: &mut WireNames,
) -> Result<ClientMsg, Exit>
where
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: StdError + 'static,
{
    next_frame(stream, state, missed_pongs, names).await.map(|(message, _)| message)
}

/// [`next_message`] with the size of its frame, in bytes. Cancel-safe: a message is taken from
/// the stream only when it is returned.
async fn next_frame<St, E>(
    stream: &mut St,
    state: &AppState,
    missed_pongs: &AtomicU32,
    names: &mut WireNames,
) -> Result<(ClientMsg, usize), Exit>
where
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: StdError + 'static,
{
    loop {
        let message = match stream.next().await {
            None => return Err(Exit::ClientClosed),
            Some(Err(error)) => return Err(read_error(&error)),
            Some(Ok(message)) => message,
        };
        match message {
            Message::Binary(bytes) => {
                Metrics::add(&state.metrics.bytes_in, bytes.len() as u64);
                let limit = state.config.max_message_bytes;
                return ClientMsg::decode_on(&bytes, limit, names)
                    .map(|message| (message, bytes.len()))
                    .map_err(|error| bad(close_code::INVALID_PAYLOAD, format!("undecodable message: {error}")));
            }
            Message::Text(_) => {
                return Err(bad(
                    close_code::UNSUPPORTED_DATA,
                    "text frames are not part of the protocol: send binary frames",
                ))
            }
            Message::Pong(_) => missed_pongs.store(0, Ordering::Relaxed),
            // The WebSocket layer answers pings by itself.
            Message::Ping(_) => {}
            Message::Close(_) => return Err(Exit::ClientClosed),
        }
    }
}

/// Classifies a read error: too large and protocol violations are the client's fault (and get
/// an error message); anything else means the socket is gone.
fn read_error(error: &(dyn StdError + 'static)) -> Exit {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(ws) = error.downcast_ref::<tungstenite::Error>() {
            return match ws {
                tungstenite::Error::Capacity(detail) => {
                    bad(close_code::MESSAGE_TOO_BIG, format!("message too large: {detail}"))
                }
                tungstenite::Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
                    Exit::Gone
                }
                tungstenite::Error::Protocol(detail) => {
                    bad(close_code::PROTOCOL_ERROR, format!("websocket protocol error: {detail}"))
                }
                tungstenite::Error::Utf8(_) => bad(close_code::INVALID_PAYLOAD, "invalid UTF-8 in a text frame"),
                _ => Exit::Gone,
            };
        }
        current = error.source();
    }
    Exit::Gone
}

/// Forwards the client's messages to the actor until the session ends, within the
/// connection's rates (see the module docs).
async fn read_loop<St, E>(
    stream: &mut St,
    handle: &DocHandle,
    conn: ConnId,
    state: &AppState,
    missed_pongs: &AtomicU32,
    throttled: &AtomicBool,
    names: &mut WireNames,
) -> Exit
where
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: StdError + 'static,
{
    let mut rates = ConnectionRates::new(&state.config, Instant::now());
    // A presence update over the rate, and when a token for it comes.
    let mut held: Option<(Option<Selection>, Instant)> = None;
    loop {
        let mut wait = Duration::ZERO;
        // In a block of its own: the frame and the command it makes are not kept in the task
        // across the waits below (an idle connection's task keeps room for every local that
        // lives across an await).
        let queued = {
            let next = match held {
                // The timers here and below are boxed: rarely needed, and large to keep room for.
                Some((_, due)) => tokio::select! {
                    next = next_frame(stream, state, missed_pongs, names) => Some(next),
                    _ = Box::pin(tokio::time::sleep_until(due)) => None,
                },
                None => Some(next_frame(stream, state, missed_pongs, names).await),
            };
            // A batch's changes and message bytes, for its room in the document's queue.
            let mut cost = None;
            let mut command = match next {
                None => {
                    let Some((selection, _)) = held.take() else { continue };
                    match rates.presence(Instant::now()) {
                        Ok(()) => DocCommand::Presence { conn, selection },
                        Err(wait) => {
                            held = Some((selection, Instant::now() + wait));
                            continue;
                        }
                    }
                }
                Some(Err(exit)) => return exit,
                Some(Ok((ClientMsg::Hello { .. }, _))) => {
                    return bad(close_code::PROTOCOL_ERROR, "Hello may be sent only once per connection")
                }
                Some(Ok((ClientMsg::Changes { seq, changes }, bytes))) => {
                    match rates.charge(changes.len(), bytes, Instant::now()) {
                        Verdict::Pass => {}
                        Verdict::Wait(debt) => wait = debt,
                        Verdict::Flood => return Exit::Flood,
                    }
                    cost = Some((changes.len(), bytes));
                    DocCommand::Changes { conn, seq, changes, room: None }
                }
                Some(Ok((ClientMsg::GiveBack { seq, changes, tag }, bytes))) => {
                    match rates.charge(changes.len(), bytes, Instant::now()) {
                        Verdict::Pass => {}
                        Verdict::Wait(debt) => wait = debt,
                        Verdict::Flood => return Exit::Flood,
                    }
                    cost = Some((changes.len(), bytes));
                    DocCommand::GiveBack { conn, seq, changes, tag, room: None }
                }
                Some(Ok((ClientMsg::Presence { selection }, _))) => {
                    if selection.as_ref().is_some_and(|s| s.field.len() > MAX_LABEL_BYTES) {
                        return bad(close_code::POLICY_VIOLATION, "selection field name is too long");
                    }
                    // A newer update replaces a held one: only the latest position matters.
                    if held.take().is_some() {
                        Metrics::inc(&state.metrics.presence_coalesced);
                    }
                    match rates.presence(Instant::now()) {
                        Ok(()) => DocCommand::Presence { conn, selection },
                        Err(wait) => {
                            held = Some((selection, Instant::now() + wait));
                            continue;
                        }
                    }
                }
            };
            // A batch takes its room in the document's queue first. Every wait is boxed: an idle
            // connection's task keeps room only for a pointer to it.
            match cost.map(|(changes, bytes)| handle.room_for(changes, bytes)) {
                None => handle.send_or_wait(command),
                Some(Ok(room)) => {
                    command.give_room(room);
                    handle.send_or_wait(command)
                }
                Some(Err(room)) => {
                    Metrics::inc(&state.metrics.queue_waits);
                    let handle = handle.clone();
                    let wait: BoxFuture<'_, Result<(), ServerError>> = Box::pin(async move {
                        command.give_room(room.await?);
                        handle.send(command).await
                    });
                    Some(wait)
                }
            }
        };
        if let Some(wait) = queued {
            if wait.await.is_err() {
                return Exit::Unavailable("the document was unloaded".into());
            }
        }
        if !wait.is_zero() {
            // Over the rate: read nothing until the debt is repaid, so the client's writes back
            // up in TCP and slow it down.
            Metrics::inc(&state.metrics.throttled_messages);
            throttled.store(true, Ordering::Relaxed);
            Box::pin(tokio::time::sleep(wait)).await;
            // The pongs that came meanwhile are still unread: the heartbeat starts afresh.
            missed_pongs.store(0, Ordering::Relaxed);
            throttled.store(false, Ordering::Relaxed);
        }
    }
}

/// Drains the connection's queue into the socket and sends heartbeats until the session ends.
async fn write_loop<Si>(
    sink: &mut Si,
    out_rx: &mut OutboxReceiver,
    state: &AppState,
    missed_pongs: &AtomicU32,
    throttled: &AtomicBool,
) -> Exit
where
    Si: Sink<Message> + Unpin,
    Si::Error: Display,
{
    let interval = state.config.heartbeat_interval;
    // A send may take longer than a heartbeat on a slow link (a large catch-up): it is a
    // stall only after two intervals, and never before STALL_FLOOR.
    let stall_limit = (interval * 2).max(STALL_FLOOR);
    let mut ticker = interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            frame = out_rx.recv() => {
                let Some(frame) = frame else {
                    return Exit::Unavailable("the document was unloaded".into());
                };
                // Boxed, like the ping's below: an idle connection's task keeps no room for them.
                let written = Box::pin(timeout(stall_limit, async {
                    let mut bytes = frame.len();
                    sink.feed(Message::Binary(frame)).await?;
                    for _ in 1..MAX_FRAMES_PER_FLUSH {
                        let Some(more) = out_rx.try_recv() else { break };
                        bytes += more.len();
                        sink.feed(Message::Binary(more)).await?;
                    }
                    sink.flush().await?;
                    Ok::<usize, Si::Error>(bytes)
                }))
                .await;
                match written {
                    Err(_) => return Exit::Stalled,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "send failed");
                        return Exit::Gone;
                    }
                    Ok(Ok(bytes)) => Metrics::add(&state.metrics.bytes_out, bytes as u64),
                }
            }
            _ = ticker.tick() => {
                // The previous ping is still unanswered a whole interval later: the peer is gone
                // (browsers answer pings from their network thread, however busy the page is).
                // Unless the connection is throttled: its pongs wait unread in the socket.
                if throttled.load(Ordering::Relaxed) {
                    missed_pongs.store(0, Ordering::Relaxed);
                } else if missed_pongs.fetch_add(1, Ordering::Relaxed) >= 1 {
                    return Exit::HeartbeatTimeout;
                }
                match Box::pin(timeout(stall_limit, sink.send(Message::Ping(Default::default())))).await {
                    Err(_) => return Exit::Stalled,
                    Ok(Err(_)) => return Exit::Gone,
                    Ok(Ok(())) => {}
                }
            }
        }
    }
}

mod goodbye;
use goodbye::goodbye;
#[cfg(test)]
mod tests;

//! The HTTP API of documents, for programs rather than the page (PROTOCOL.md, "HTTP API"):
//!
//! | route                                  | answer                                               | role  |
//! |----------------------------------------|------------------------------------------------------|-------|
//! | `GET /docs/{id}[?at=N\|?version=V]`    | the value as JSON, now or at a past version          | read  |
//! | `GET /docs/{id}/text[/{field}][?at=..]`| a text field (default `body`) as `text/plain`        | read  |
//! | `POST /docs/{id}/edits`                | `{"edits": [...]}` applied as one change, after commit | write |
//! | `GET /docs/{id}/events`                | Server-Sent Events: one per committed round          | read  |
//! | `GET/POST /docs/{id}/webhooks`         | the document's webhooks; register one                | admin |
//! | `DELETE /docs/{id}/webhooks/{hook}`    | removes one                                          | admin |
//! | `GET/POST /webhooks`, `DELETE /webhooks/{hook}` | global webhooks                             | admin `*` |
//!
//! Every route takes the same bearer tokens as the WebSocket (`http::authorize`); `--open`
//! needs none. Edits are made by the document's actor as the server's own replica, checked
//! against the document's limits like any batch, and answered only once committed. A past
//! version is replayed from the history on a blocking thread, off the actor (the actor only
//! copies the document).
//!
//! `at=N` is "after the first N changes in the order the server applied them" (what the
//! history view and an event's `changes` count); `version=` is a version vector written
//! `replica:seq,replica:seq` (what an edit's answer or an event carries), which must be
//! causally complete (every change it includes has its dependencies included).

pub mod edit;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use crdt_core::{Document, ReplicaId, VersionVector};

use crate::auth::Role;
use crate::doc_actor::{Committed, DocHandle, EditFailure, ServerEdit};
use crate::http::authorize;
use crate::{AppState, DocId, ServerError};
use edit::Edit;

/// How often an idle event stream gets a comment line (keeps proxies from closing it).
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The API's routes (merged into `http::router`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs/{id}/text", get(text_body))
        .route("/docs/{id}/text/{field}", get(text_field))
        .route("/docs/{id}/edits", post(edits))
        .route("/docs/{id}/events", get(events))
        .route("/docs/{id}/webhooks", get(list_doc_hooks).post(add_doc_hook))
        .route("/docs/{id}/webhooks/{hook}", delete(remove_doc_hook))
        .route("/webhooks", get(list_global_hooks).post(add_global_hook))
        .route("/webhooks/{hook}", delete(remove_global_hook))
}

/// A client error, as JSON `{"error": ...}` (and the edit at fault, for edits).
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    error: String,
    edit: Option<usize>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        #[derive(serde::Serialize)]
        struct Body {
            error: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            edit: Option<usize>,
        }
        (self.status, axum::Json(Body { error: self.error, edit: self.edit })).into_response()
    }
}

fn refusal(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal { status, error: message.into(), edit: None }
}

fn error(status: StatusCode, message: impl Into<String>, edit: Option<usize>) -> Response {
    Refusal { status, error: message.into(), edit }.into_response()
}

/// The version a read asks for.
#[derive(Debug, Default)]
pub struct At {
    /// After the first `at` changes of the history.
    at: Option<usize>,
    /// At this version vector (`replica:seq,...`).
    version: Option<String>,
}

impl At {
    fn is_now(&self) -> bool {
        self.at.is_none() && self.version.is_none()
    }

    /// `at=N` and `version=V` from a query string (other parameters are refused).
    fn parse(query: Option<&str>) -> Result<At, Refusal> {
        let mut at = At::default();
        for pair in query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| bad_query(format!("{key}: bad percent-encoding")))?;
            match key {
                "at" => at.at = Some(value.parse().map_err(|_| bad_query(format!("at={value} is not a count")))?),
                "version" => at.version = Some(value),
                other => return Err(bad_query(format!("unknown parameter {other:?}: use at=N or version=V"))),
            }
        }
        Ok(at)
    }
}

fn bad_query(reason: String) -> Refusal {
    refusal(StatusCode::BAD_REQUEST, reason)
}

/// `%XX` escapes and `+` (a space) decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A replica id as [`ReplicaId`] displays it (a UUID, hyphens optional).
fn parse_replica(text: &str) -> Option<ReplicaId> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok().map(ReplicaId::from_u128)
}

/// Parses `replica:seq,replica:seq` (empty: the empty version).
pub fn parse_version(text: &str) -> Result<VersionVector, String> {
    let mut version = VersionVector::new();
    for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (replica, seq) = entry.split_once(':').ok_or_else(|| format!("{entry:?} is not replica:seq"))?;
        let replica = parse_replica(replica).ok_or_else(|| format!("{replica:?} is not a replica id"))?;
        let seq: u64 = seq.parse().map_err(|_| format!("{seq:?} is not a count of changes"))?;
        version.set(replica, seq);
    }
    Ok(version)
}

/// A version vector as JSON: replica id → changes.
fn version_json(version: &VersionVector) -> BTreeMap<String, u64> {
    version.iter().map(|(replica, seq)| (replica.to_string(), seq)).collect()
}

/// `doc` as it was at `at` (replayed from its history), or why it cannot be.
fn past(doc: &Document, at: &At) -> Result<Document, Refusal> {
    if !doc.history_base().is_empty() {
        let reason = "this document's history before its oldest kept version is not available";
        return Err(refusal(StatusCode::CONFLICT, reason));
    }
    let history = doc.history();
    let mut past = Document::new(ReplicaId::random());
    let chosen: Vec<_> = match (at.at, at.version.as_deref()) {
        (Some(_), Some(_)) => return Err(refusal(StatusCode::BAD_REQUEST, "give either at or version, not both")),
        (Some(n), None) if n > history.len() => {
            let reason = format!("the history has {} changes, not {n}", history.len());
            return Err(refusal(StatusCode::NOT_FOUND, reason));
        }
        (Some(n), None) => history.into_iter().take(n).collect(),
        (None, Some(text)) => {
            let wanted = parse_version(text).map_err(|reason| refusal(StatusCode::BAD_REQUEST, reason))?;
            for (replica, seq) in wanted.iter() {
                if seq > doc.version().get(replica) {
                    let reason =
                        format!("the document has {} changes of {replica}, not {seq}", doc.version().get(replica));
                    return Err(refusal(StatusCode::NOT_FOUND, reason));
                }
            }
            history.into_iter().filter(|change| change.seq <= wanted.get(change.replica)).collect()
        }
        (None, None) => history,
    };
    for change in chosen {
        if let Err(failure) = past.apply_change(change) {
            tracing::error!(%failure, "replaying a stored history failed");
            return Err(refusal(StatusCode::INTERNAL_SERVER_ERROR, "the history could not be replayed"));
        }
    }
    if past.pending_count() > 0 {
        let reason = "that version is not causally complete: it includes changes without the changes they depend on";
        return Err(refusal(StatusCode::BAD_REQUEST, reason));
    }
    Ok(past)
}

/// Runs `read` on the document now, or on a past version replayed off the actor.
async fn read_at<T: Send + 'static>(
    handle: &DocHandle,
    at: At,
    read: impl FnOnce(&Document) -> T + Send + 'static,
) -> Result<Result<T, Refusal>, ServerError> {
    if at.is_now() {
        return Ok(Ok(handle.read(read).await?));
    }
    // The actor copies the document (cheap next to replaying it); the replay runs on a
    // blocking thread, so the document's other users do not wait for it.
    let copy = handle.read(Document::clone).await?;
    Ok(tokio::task::spawn_blocking(move || past(&copy, &at).map(|doc| read(&doc))).await?)
}

/// What a read route needs once the id, the token (read) and the query are checked: the
/// document's actor and the version asked for; `Err` is the answer for a bad query.
async fn read_target(
    state: &AppState,
    id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Result<(DocHandle, At), Response>, ServerError> {
    let id = DocId::parse(id)?;
    authorize(state, headers, Some(&id), Role::Read)?;
    let at = match At::parse(query) {
        Ok(at) => at,
        Err(refused) => return Ok(Err(refused.into_response())),
    };
    Ok(Ok((crate::http::stored_doc(state, &id).await?, at)))
}

/// `GET /docs/{id}[?at=N|?version=V]`: the document's value as JSON.
pub async fn doc_value(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let (handle, at) = match read_target(&state, &id, query.as_deref(), &headers).await? {
        Ok(target) => target,
        Err(refused) => return Ok(refused),
    };
    let json = |doc: &Document| serde_json::to_vec(&doc.value()).unwrap_or_else(|_| b"null".to_vec());
    Ok(match read_at(&handle, at, json).await? {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(refused) => refused.into_response(),
    })
}

async fn text_body(
    state: State<AppState>,
    Path(id): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    text(state, id, "body".to_owned(), query, headers).await
}

async fn text_field(
    state: State<AppState>,
    Path((id, field)): Path<(String, String)>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    text(state, id, field, query, headers).await
}

/// `GET /docs/{id}/text[/{field}]`: a text field as plain text (404 when the document has no
/// such text field).
async fn text(
    State(state): State<AppState>,
    id: String,
    field: String,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let (handle, at) = match read_target(&state, &id, query.as_deref(), &headers).await? {
        Ok(target) => target,
        Err(refused) => return Ok(refused),
    };
    let name = field.clone();
    Ok(match read_at(&handle, at, move |doc| doc.text(&name)).await? {
        Ok(Some(text)) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("the document has no text field {field:?}"), None),
        Err(refused) => refused.into_response(),
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EditsRequest {
    edits: Vec<Edit>,
}

/// What an applied edit request answers.
#[derive(serde::Serialize)]
struct EditsDone {
    /// The document's version once the change was committed.
    version: BTreeMap<String, u64>,
    /// The changes the document holds (an SSE event id, and a value for `?at=`).
    changes: u64,
    /// Whether the request changed anything.
    changed: bool,
}

/// `POST /docs/{id}/edits`: `{"edits": [...]}` (see `api/edit.rs`), applied as one change by
/// the server's own replica; `200` with the version once it is durable.
async fn edits(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ServerError> {
    let id = DocId::parse(&id)?;
    authorize(&state, &headers, Some(&id), Role::Write)?;
    if body.len() > state.config.max_message_bytes {
        let reason = format!("an edit request has at most {} bytes", state.config.max_message_bytes);
        return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, reason, None));
    }
    let request: EditsRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(parse) => return Ok(error(StatusCode::BAD_REQUEST, format!("not an edit request: {parse}"), None)),
    };
    if request.edits.len() > edit::MAX_EDITS {
        let reason = format!("at most {} edits per request", edit::MAX_EDITS);
        return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, reason, None));
    }
    apply(&state, &id, request.edits).await
}

/// Applies `edits` to document `id` and answers as `POST /docs/{id}/edits` does.
pub(crate) async fn apply(state: &AppState, id: &DocId, edits: Vec<Edit>) -> Result<Response, ServerError> {
    let handle = state.registry.open(id)?;
    Ok(match handle.edit(ServerEdit::Edits(edits)).await? {
        Ok(Committed { version, changed }) => {
            crate::metrics::Metrics::inc(&state.metrics.http_api.api_edits);
            let done = EditsDone { changes: version.total(), version: version_json(&version), changed };
            axum::Json(done).into_response()
        }
        Err(EditFailure::Refused(refused)) => {
            let status =
                if refused.over_limit { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::UNPROCESSABLE_ENTITY };
            error(status, refused.to_string(), Some(refused.index))
        }
        Err(EditFailure::Unavailable(reason)) => error(StatusCode::SERVICE_UNAVAILABLE, reason, None),
    })
}

/// What an event stream starts with: where the document is now.
#[derive(serde::Serialize)]
struct StreamStart {
    doc: String,
    version: BTreeMap<String, u64>,
    changes: u64,
}

/// `GET /docs/{id}/events`: Server-Sent Events. First a `state` event with the current version
/// (left out when `Last-Event-ID` already names it), then a `change` event per committed round
/// ([`crate::feed::ChangeEvent`]); event ids are the document's change counts. Comment lines
/// every [`HEARTBEAT`] keep an idle stream open.
async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let id = DocId::parse(&id)?;
    authorize(&state, &headers, Some(&id), Role::Read)?;
    // Subscribed before asking for the version, so no round falls between the two.
    let subscription = state.feed.subscribe(&id);
    let handle = state.registry.open(&id)?;
    let version = handle.read(|doc| doc.version().clone()).await?;
    let changes = version.total();
    let last_seen: Option<u64> =
        headers.get("last-event-id").and_then(|value| value.to_str().ok()).and_then(|value| value.trim().parse().ok());
    let start = (last_seen != Some(changes)).then(|| {
        let body = StreamStart { doc: id.to_string(), version: version_json(&version), changes };
        Event::default().event("state").id(changes.to_string()).json_data(body)
    });
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (subscription, start, changes, shutdown),
        |(mut subscription, mut start, mut told, shutdown)| async move {
            if let Some(first) = start.take() {
                return Some((first, (subscription, None, told, shutdown)));
            }
            loop {
                let received = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    received = subscription.receiver.recv() => received,
                };
                match received {
                    Ok(event) if event.changes > told => {
                        told = event.changes;
                        let sse = Event::default().event("change").id(event.changes.to_string()).json_data(&*event);
                        return Some((sse, (subscription, None, told, shutdown)));
                    }
                    // Already told (a round committed before the stream started).
                    Ok(_) => continue,
                    // Fell behind: the next event carries the whole version anyway.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = futures_util::StreamExt::map(stream, |event| {
        Ok::<Event, Infallible>(event.unwrap_or_else(|_| Event::default().comment("unserializable event")))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT)).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HookRequest {
    url: String,
}

/// What registering a webhook answers: the only time its secret is shown.
#[derive(serde::Serialize)]
struct HookCreated {
    id: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    doc: Option<String>,
    secret: String,
    created_ms: u64,
}

async fn add_hook(state: &AppState, doc: Option<DocId>, body: &Bytes) -> Result<Response, ServerError> {
    let request: HookRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(parse) => return Ok(error(StatusCode::BAD_REQUEST, format!("expected {{\"url\": ...}}: {parse}"), None)),
    };
    let webhooks = Arc::clone(state.feed.webhooks());
    let hook = match webhooks.prepare(doc.as_ref(), &request.url) {
        Ok(hook) => hook,
        Err(reason) => return Ok(error(StatusCode::BAD_REQUEST, reason, None)),
    };
    let store = Arc::clone(&state.store);
    let stored = hook.clone();
    tokio::task::spawn_blocking(move || store.add_webhook(&stored)).await??;
    webhooks.activate(&hook);
    tracing::info!(webhook = hook.id, doc = hook.doc, url = hook.url, "webhook registered");
    let created =
        HookCreated { id: hook.id, url: hook.url, doc: hook.doc, secret: hook.secret, created_ms: hook.created_ms };
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

async fn remove_hook(state: &AppState, doc: Option<DocId>, hook: &str) -> Result<Response, ServerError> {
    let store = Arc::clone(&state.store);
    let (lookup, id) = (doc.clone(), hook.to_owned());
    tokio::task::spawn_blocking(move || store.remove_webhook(lookup.as_ref(), &id)).await??;
    Ok(if state.feed.webhooks().remove(doc.as_ref(), hook) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no webhook {hook} here (flag webhooks cannot be removed)"), None)
    })
}

/// `POST /docs/{id}/webhooks` with `{"url": "http://..."}` (admin on the document).
async fn add_doc_hook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ServerError> {
    let id = DocId::parse(&id)?;
    authorize(&state, &headers, Some(&id), Role::Admin)?;
    add_hook(&state, Some(id), &body).await
}

async fn list_doc_hooks(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let id = DocId::parse(&id)?;
    authorize(&state, &headers, Some(&id), Role::Admin)?;
    Ok(axum::Json(state.feed.webhooks().list(Some(&id))).into_response())
}

async fn remove_doc_hook(
    State(state): State<AppState>,
    Path((id, hook)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let id = DocId::parse(&id)?;
    authorize(&state, &headers, Some(&id), Role::Admin)?;
    remove_hook(&state, Some(id), &hook).await
}

/// `POST /webhooks` with `{"url": "http://..."}` (admin `*`): called for every document.
async fn add_global_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ServerError> {
    authorize(&state, &headers, None, Role::Admin)?;
    add_hook(&state, None, &body).await
}

async fn list_global_hooks(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ServerError> {
    authorize(&state, &headers, None, Role::Admin)?;
    Ok(axum::Json(state.feed.webhooks().list(None)).into_response())
}

async fn remove_global_hook(
    State(state): State<AppState>,
    Path(hook): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    authorize(&state, &headers, None, Role::Admin)?;
    remove_hook(&state, None, &hook).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_replica_seq_lists() {
        let a = ReplicaId::from_u128(1);
        let version = parse_version(&format!("{a}:3, ")).unwrap();
        assert_eq!(version.get(a), 3);
        assert!(parse_version("").unwrap().iter().next().is_none());
        assert!(parse_version("x:1").is_err());
        assert!(parse_version(&format!("{a}:-1")).is_err());
        assert!(parse_version(&format!("{a}")).is_err());
        let at = At::parse(Some(&format!("version={}%3A2%2C", a))).unwrap();
        assert_eq!(parse_version(&at.version.unwrap()).unwrap().get(a), 2);
        assert_eq!(At::parse(Some("at=4")).unwrap().at, Some(4));
        assert!(At::parse(Some("at=x")).is_err() && At::parse(Some("when=1")).is_err());
        assert!(At::parse(None).unwrap().is_now());
    }

    #[test]
    fn a_past_version_is_replayed_from_the_history() {
        let mut doc = Document::new(ReplicaId::from_u128(1));
        doc.insert_text("body", 0, "ab").unwrap();
        doc.insert_text("body", 2, "cd").unwrap();
        let text = |at: At| past(&doc, &at).map(|d| d.text("body")).map_err(|r| r.status);
        assert_eq!(text(At { at: Some(1), version: None }), Ok(Some("ab".into())));
        assert_eq!(text(At { at: Some(0), version: None }), Ok(None));
        assert_eq!(text(At { at: Some(3), version: None }), Err(StatusCode::NOT_FOUND));
        let first = format!("{}:1", ReplicaId::from_u128(1));
        assert_eq!(text(At { at: None, version: Some(first) }), Ok(Some("ab".into())));
        let ahead = format!("{}:5", ReplicaId::from_u128(1));
        assert_eq!(text(At { at: None, version: Some(ahead) }), Err(StatusCode::NOT_FOUND));
    }
}

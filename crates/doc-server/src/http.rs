//! The HTTP routes: the browser client's files, the document listing and values, health and
//! metrics. The WebSocket route's handler lives in `ws.rs`.
//!
//! | route               | answer                                                        |
//! |---------------------|---------------------------------------------------------------|
//! | `GET /`             | `<web-dir>/index.html`                                        |
//! | `GET /d/{id}`       | `<web-dir>/editor.html` (the editor page for document `id`)   |
//! | `GET /assets/{*p}`  | a file under `<web-dir>/assets/`                              |
//! | `GET /sw.js`        | `<web-dir>/sw.js`, the service worker of the offline app shell |
//! | `GET /ws/{id}`      | the WebSocket of document `id` (PROTOCOL.md)                  |
//! | `GET /ws/{id}/sse`, `POST /ws/{id}/sse/{s}` | the same over SSE + POST (`sse.rs`)   |
//! | `POST /docs`        | a new document id and its edit and view links (anyone)        |
//! | `GET /docs`         | JSON `[{"id": ..., "updated_ms": ...}]` of stored documents (admin `*`) |
//! | `POST /docs/summaries` | title, last edit and people now of each document the given tokens open |
//! | `GET /docs/{id}`    | JSON value of document `id` (`Document::value()`), or 404 (read); `api.rs` |
//! | `GET /docs/{id}/history[/{n}]` | the history's outline, or the body after `n` changes (read) |
//! | `POST /docs/{id}/title` | `{"title": "..."}`: renames the document, as the server's own replica (write) |
//! | `POST /docs/{id}/links` | links of the caller's role and below (write)              |
//! | `GET /healthz`      | `ok`: the process answers (liveness)                          |
//! | `GET /readyz`       | `ready`, or 503 when the store refuses a durable write now    |
//! | `GET /metrics`      | Prometheus text format (admin `*`)                            |
//!
//! The HTTP API for programs (text, past versions, JSON edits, events, webhooks) is in
//! `api.rs`, merged into this router.
//!
//! The role in brackets is what the request's `Authorization: Bearer <token>` must grant (see
//! `auth.rs`; 401 without a valid token, 403 with one that does not reach); `--open` asks for
//! none. Pages of other origins get CORS headers only when `--allow-origin` names them.
//!
//! When the web bundle is not built, the HTML routes answer a short plain-text page saying so.
//! The client's files are served by `static_files.rs` (precompressed variants, ETags, caching
//! headers). Asset paths are confined to the assets directory: any `..`, absolute or
//! backslashed component is refused.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::auth::{now_secs, Auth, Role};
use crate::{static_files, AppState, DocId, ServerError};

const NOT_BUILT: &str = "doc-server is running, but the web client is not built.\n\
Build it (see the README) into the --web-dir directory (default web/dist), then reload.\n";

/// All routes, with `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/d/{id}", get(editor))
        .route("/assets/{*path}", get(asset))
        .route("/sw.js", get(service_worker))
        .route("/ws/{id}", get(crate::ws::ws_route))
        .route("/ws/{id}/sse", get(crate::sse::sse_route))
        .route("/ws/{id}/sse/{session}", post(crate::sse::sse_post))
        .route("/docs", get(list_docs).post(create_doc))
        .route("/docs/summaries", post(summaries))
        .route("/docs/{id}", get(crate::api::doc_value))
        .route("/docs/{id}/links", post(doc_links))
        .route("/docs/{id}/title", post(doc_title))
        .route("/docs/{id}/history", get(doc_history))
        .route("/docs/{id}/history/{at}", get(doc_history_at))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::api::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors))
        .with_state(state)
}

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The role the request's bearer token grants on `doc` (`None`: the server-wide routes), if
/// at least `need`; a refusal is counted and becomes 401 or 403.
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    doc: Option<&DocId>,
    need: Role,
) -> Result<Role, ServerError> {
    state.auth.check(bearer(headers), doc, need).map_err(|error| {
        state.metrics.auth_refusal(&error);
        tracing::debug!(%error, "request refused");
        ServerError::Unauthorized(error)
    })
}

/// CORS for pages of the origins `--allow-origin` names: their requests get
/// `Access-Control-Allow-Origin`, and their preflights an answer. Other origins get no CORS
/// headers, so their pages' browsers withhold the answers (same-origin pages need none).
async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let listed = origin.as_deref().filter(|origin| {
        state.config.allowed_origins.iter().any(|entry| entry == "*" || entry.trim_end_matches('/') == *origin)
    });
    let allow = listed.and_then(|origin| HeaderValue::from_str(origin).ok());
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        if allow.is_some() {
            StatusCode::NO_CONTENT.into_response()
        } else {
            StatusCode::FORBIDDEN.into_response()
        }
    } else {
        next.run(request).await
    };
    if let Some(allow) = allow {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        // Appended: the client's files already vary by Accept-Encoding.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if preflight {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE"));
            headers
                .insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
    }
    response
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    html_page(&state, "index.html", &headers).await
}

async fn editor(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if DocId::parse(&id).is_err() {
        return error_page(
            StatusCode::BAD_REQUEST,
            "No such document",
            "This address does not name a document: check the link you were given.",
        );
    }
    html_page(&state, "editor.html", &headers).await
}

async fn service_worker(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let path = state.config.web_dir.join("sw.js");
    static_files::serve(&path, &headers, false).await.unwrap_or_else(|| not_found_plain("no service worker"))
}

async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "Page not found", "There is nothing at this address.")
}

/// A small HTML page for people who followed a bad link (tools read the status).
fn error_page(status: StatusCode, title: &str, text: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body class=\"index\">\
         <header><h1>{title}</h1></header><main><p>{text}</p><p><a href=\"/\">Your documents</a></p></main>\
         </body></html>\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

async fn html_page(state: &AppState, name: &str, headers: &HeaderMap) -> Response {
    let path = state.config.web_dir.join(name);
    match static_files::serve(&path, headers, false).await {
        Some(response) => response,
        None => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], NOT_BUILT).into_response(),
    }
}

async fn asset(State(state): State<AppState>, Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(relative) = static_files::safe_relative_path(&path) else {
        return (StatusCode::BAD_REQUEST, "invalid asset path").into_response();
    };
    let full = state.config.web_dir.join("assets").join(&relative);
    let immutable = static_files::is_hashed(&relative);
    static_files::serve(&full, &headers, immutable).await.unwrap_or_else(|| not_found_plain("no such asset"))
}

fn not_found_plain(text: &'static str) -> Response {
    (StatusCode::NOT_FOUND, text).into_response()
}

/// A document as a list shows it.
#[derive(Debug, serde::Serialize)]
struct Listed {
    id: String,
    /// `None` before it has a title (or when it was never written).
    title: Option<String>,
    /// When it last changed (ms since the Unix epoch); 0 if it was never written.
    updated_ms: u64,
    /// Connections to it now.
    here: u64,
    /// Whether anything was ever written to it.
    exists: bool,
}

fn listed(state: &AppState, id: &DocId, summary: Option<crate::storage::DocSummary>) -> Listed {
    let here = state
        .registry
        .get(id)
        .map_or(0, |handle| handle.status().connections.load(std::sync::atomic::Ordering::Relaxed));
    Listed {
        id: id.to_string(),
        exists: summary.is_some(),
        title: summary.as_ref().and_then(|s| s.title.clone()),
        updated_ms: summary.map_or(0, |s| s.updated_ms),
        here,
    }
}

async fn list_docs(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ServerError> {
    authorize(&state, &headers, None, Role::Admin)?;
    let store = state.store.clone();
    let docs = tokio::task::spawn_blocking(move || store.list()).await??;
    let docs: Vec<Listed> = docs
        .into_iter()
        .filter_map(|summary| Some(listed(&state, &DocId::parse(&summary.id).ok()?, Some(summary))))
        .collect();
    Ok(axum::Json(docs).into_response())
}

/// The most tokens one `POST /docs/summaries` may carry.
const MAX_SUMMARIES: usize = 500;

#[derive(serde::Deserialize)]
struct SummariesRequest {
    tokens: Vec<String>,
}

/// `POST /docs/summaries` with `{"tokens": [...]}`: for each token that opens a document (read
/// or more; others are skipped), what a list shows of it. The page's document list sends the
/// links this browser holds, so it shows titles without an admin token.
async fn summaries(
    State(state): State<AppState>,
    axum::Json(request): axum::Json<SummariesRequest>,
) -> Result<Response, ServerError> {
    if request.tokens.len() > MAX_SUMMARIES {
        return Ok((StatusCode::PAYLOAD_TOO_LARGE, format!("at most {MAX_SUMMARIES} tokens at once")).into_response());
    }
    let ids: Vec<DocId> = request
        .tokens
        .iter()
        .filter_map(|token| {
            let grant = state.auth.verify(token).ok()?;
            DocId::parse(&grant.doc).ok()
        })
        .collect();
    let store = state.store.clone();
    let found = tokio::task::spawn_blocking(move || {
        ids.into_iter().map(|id| store.summary(&id).map(|summary| (id, summary))).collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let docs: Vec<Listed> = found.into_iter().map(|(id, summary)| listed(&state, &id, summary)).collect();
    Ok(axum::Json(docs).into_response())
}

/// `GET /docs/{id}/history`: the outline of the document's past (`[{"upto", "authors"}]`).
async fn doc_history(
    state: State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    history(state, id, None, headers).await
}

/// `GET /docs/{id}/history/{n}`: the body after the history's first `n` changes, as passages
/// (`[{"author", "text"}]`).
async fn doc_history_at(
    state: State<AppState>,
    Path((id, at)): Path<(String, usize)>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    history(state, id, Some(at), headers).await
}

#[derive(serde::Deserialize)]
struct TitleRequest {
    title: String,
}

/// `POST /docs/{id}/title`: sets the title as the server's own replica (a rename from the
/// document list); answers 204 once the change is durable, and everyone in the document sees it
/// like any edit. It is a JSON edit (`api.rs`), checked against the document's limits.
async fn doc_title(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Json(request): axum::Json<TitleRequest>,
) -> Result<Response, ServerError> {
    let id = DocId::parse(&id)?;
    authorize(&state, &headers, Some(&id), Role::Write)?;
    let edit = crate::api::edit::Edit::Set { field: "title".into(), value: request.title.trim().to_owned() };
    let answer = crate::api::apply(&state, &id, vec![edit]).await?;
    Ok(if answer.status().is_success() { StatusCode::NO_CONTENT.into_response() } else { answer })
}

/// The actor of a document that exists in the store, loading it if needed (a read never
/// creates a document: 404 for one never written).
pub(crate) async fn stored_doc(state: &AppState, id: &DocId) -> Result<crate::doc_actor::DocHandle, ServerError> {
    if let Some(handle) = state.registry.get(id) {
        return Ok(handle);
    }
    let store = state.store.clone();
    let lookup = id.clone();
    if !tokio::task::spawn_blocking(move || store.exists(&lookup)).await?? {
        return Err(ServerError::NotFound(id.to_string()));
    }
    state.registry.open(id)
}

async fn history(
    State(state): State<AppState>,
    id: String,
    at: Option<usize>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let id = DocId::parse(&id)?;
    authorize(&state, &headers, Some(&id), Role::Read)?;
    let handle = stored_doc(&state, &id).await?;
    Ok(match handle.history(at).await? {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(reason) => (StatusCode::CONFLICT, reason).into_response(),
    })
}

/// The links of a document: `/d/{id}#<token>` for each role, as the page wants them.
#[derive(Debug, serde::Serialize)]
struct Links {
    id: String,
    /// Edit link (write), when the caller may give one.
    #[serde(skip_serializing_if = "Option::is_none")]
    edit: Option<String>,
    /// View link (read).
    view: String,
    /// When the links stop working (milliseconds since the Unix epoch).
    expires_ms: u64,
}

fn links(auth: &Auth, id: &DocId, up_to: Role, ttl: std::time::Duration) -> Links {
    let expires = now_secs().saturating_add(ttl.as_secs());
    let link = |role| format!("/d/{id}#{}", auth.mint(id.as_str(), role, expires));
    Links {
        id: id.to_string(),
        edit: (up_to >= Role::Write).then(|| link(Role::Write)),
        view: link(Role::Read),
        expires_ms: expires.saturating_mul(1000),
    }
}

/// `POST /docs`: a new document (an unguessable id: 144 random bits) and its links. Nothing
/// is stored until someone writes through them.
async fn create_doc(State(state): State<AppState>) -> Result<Response, ServerError> {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).map_err(|error| ServerError::Task(format!("no random source: {error}")))?;
    let id = DocId::parse(&URL_SAFE_NO_PAD.encode(bytes))?;
    tracing::info!(doc_id = %id, "document created");
    Ok((StatusCode::CREATED, axum::Json(links(&state.auth, &id, Role::Write, state.config.link_ttl))).into_response())
}

/// `POST /docs/{id}/links`: new links of the caller's role and below (a write token gets an
/// edit and a view link, to share).
async fn doc_links(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    let id = DocId::parse(&id)?;
    let role = authorize(&state, &headers, Some(&id), Role::Write)?;
    Ok(axum::Json(links(&state.auth, &id, role, state.config.link_ttl)).into_response())
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the store commits a small write durably now ([`Store::probe`](crate::storage::Store::probe)),
/// which is what every acknowledgement needs: a full, read-only or failing disk makes it 503,
/// so a load balancer sends people elsewhere while `/healthz` still says the process lives.
/// One probe runs at a time, and a result younger than [`READY_FOR`] is reused, so probing
/// often costs the disk little.
async fn readyz(State(state): State<AppState>) -> Response {
    let mut last = state.ready.lock().await;
    let fresh = last.as_ref().filter(|(at, _)| at.elapsed() < READY_FOR).map(|(_, result)| result.clone());
    let result = match fresh {
        Some(result) => result,
        None => {
            let store = std::sync::Arc::clone(&state.store);
            let result = match tokio::task::spawn_blocking(move || store.probe()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = &result {
                tracing::warn!(%error, "not ready: the store refused a write");
            }
            *last = Some((tokio::time::Instant::now(), result.clone()));
            result
        }
    };
    match result {
        Ok(()) => "ready\n".into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: the store refused a write: {error}\n"))
            .into_response(),
    }
}

/// How long a `/readyz` answer is reused.
const READY_FOR: std::time::Duration = std::time::Duration::from_secs(1);

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ServerError> {
    authorize(&state, &headers, None, Role::Admin)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::storage::{AuthorHash, DocSummary, MemoryStore, Store, StoreError, StoredDoc};

    /// A store whose every operation fails, as on a dead disk.
    struct Broken;

    impl Store for Broken {
        fn load(&self, _: &DocId) -> Result<StoredDoc, StoreError> {
            Err(StoreError::Poisoned)
        }
        fn append(&self, _: &DocId, _: u64, _: &[u8]) -> Result<u64, StoreError> {
            Err(StoreError::Poisoned)
        }
        fn write_snapshot(&self, _: &DocId, _: u64, _: &[u8], _: u64) -> Result<(), StoreError> {
            Err(StoreError::Poisoned)
        }
        fn register_authors(&self, _: &DocId, _: &[(crdt_core::ReplicaId, AuthorHash)]) -> Result<(), StoreError> {
            Err(StoreError::Poisoned)
        }
        fn list(&self) -> Result<Vec<DocSummary>, StoreError> {
            Err(StoreError::Poisoned)
        }
        fn summary(&self, _: &DocId) -> Result<Option<DocSummary>, StoreError> {
            Err(StoreError::Poisoned)
        }
        fn set_title(&self, _: &DocId, _: &str) -> Result<(), StoreError> {
            Err(StoreError::Poisoned)
        }
        fn set_names(&self, _: &DocId, _: &[(crdt_core::ReplicaId, String)]) -> Result<(), StoreError> {
            Err(StoreError::Poisoned)
        }
        fn exists(&self, _: &DocId) -> Result<bool, StoreError> {
            Err(StoreError::Poisoned)
        }
        fn probe(&self) -> Result<(), StoreError> {
            Err(StoreError::Poisoned)
        }
    }

    #[tokio::test]
    async fn readyz_says_whether_the_store_takes_writes_and_healthz_only_that_we_live() {
        let config = || Config::with_data_dir(std::env::temp_dir());
        let good = AppState::new(config(), Arc::new(MemoryStore::default()));
        let bad = AppState::new(config(), Arc::new(Broken));
        assert_eq!(readyz(State(good)).await.status(), StatusCode::OK);
        let refused = readyz(State(bad.clone())).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Within a second the answer is reused, without probing again.
        assert_eq!(readyz(State(bad)).await.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(healthz().await, "ok\n");
    }
}

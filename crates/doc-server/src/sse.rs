//! The fallback transport: the same protocol (the same binary frames, PROTOCOL.md section 1a)
//! over Server-Sent Events from the server and HTTP POSTs from the client, for networks whose
//! proxies refuse WebSockets.
//!
//! - `GET /ws/{id}/sse` opens a *fallback session*: an event stream whose first event
//!   (`session`) names the session; then every server frame as a `data:` line in base64, a
//!   `ping` event at every heartbeat, and a `close` event (`data: <code> <reason>`) where a
//!   WebSocket would get its close frame.
//! - `POST /ws/{id}/sse/{session}` carries client frames, each preceded by its length (4 bytes,
//!   big-endian), in order; an empty body answers a `ping` (a WebSocket's pong). The answer is
//!   204 once the frames are handed to the session, in order (so a client sends its next POST
//!   after that: the session's rate limits slow it down by answering later), 404 for a session
//!   that is gone (connect again), 413 for a frame above `--max-message-bytes` (the session
//!   then closes with 1009, as a WebSocket would).
//!
//! One implementation of the session serves both transports: the stream and the POSTs are
//! turned into a `Sink`/`Stream` of WebSocket [`Message`]s, and [`crate::ws::serve_socket`]
//! runs on them exactly as on a socket (hello and token check, joining, acks, broadcasts,
//! rate limits, heartbeats, goodbye). Both routes sit under `/ws/{id}`, so a proxy routing by
//! document id sends them where the WebSocket goes.
//!
//! # Invariants
//! - A session's entry is removed when its connection ends; a POST to it then gets 404.
//! - The session id is 128 random bits, known only to the client that opened the stream: it is
//!   the POSTs' credential (the `Hello` in the first POST carries the access token, checked as
//!   on a WebSocket).
//! - Every buffer is bounded: a POST body by twice the message limit (at least 2 MiB), the
//!   frames waiting for the session by [`INBOX`], the frames waiting for the event stream by
//!   [`OUTBOX`] (beyond, the session's sends stall and it closes as a slow consumer).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::extract::ws::Message;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_util::sync::PollSender;

use crate::serve::ClientAddr;
use crate::ws::{check_origin, serve_socket};
use crate::{AppState, DocId, ServerError};

/// Client frames a session holds before a POST waits for it to read them.
const INBOX: usize = 16;
/// Server frames waiting for the event stream before the session's sends wait.
const OUTBOX: usize = 64;

type Inbound = Result<Message, tungstenite::Error>;

/// The open fallback sessions, by session id.
#[derive(Debug, Default)]
pub struct SseSessions {
    /// A `std` mutex: held for a map operation, never across an `.await`.
    sessions: Mutex<HashMap<String, (DocId, mpsc::Sender<Inbound>)>>,
}

impl SseSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (DocId, mpsc::Sender<Inbound>)>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many fallback sessions are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes a session's entry when its connection task ends, however it ends.
struct Registered<'a> {
    sessions: &'a SseSessions,
    id: String,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
    }
}

/// `GET /ws/{id}/sse`: opens a fallback session of document `id` (see the module docs).
pub async fn sse_route(
    Path(id): Path<String>,
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
) -> Result<Response, ServerError> {
    let doc_id = DocId::parse(&id)?;
    check_origin(&headers, &state)?;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| ServerError::Task(format!("no random source: {error}")))?;
    let session: String = bytes.iter().map(|b| format!("{b:02x}")).collect();

    let (inbox, inbox_rx) = mpsc::channel::<Inbound>(INBOX);
    let (outbox, outbox_rx) = mpsc::channel::<Message>(OUTBOX);
    state.sse.lock().insert(session.clone(), (doc_id.clone(), inbox));

    let (address, permit) = client.map(|Extension(ClientAddr { addr, permit })| (addr.ip(), permit)).unzip();
    let task_state = state.clone();
    let id = session.clone();
    state.tracker.spawn(async move {
        let _registered = Registered { sessions: &task_state.sse, id };
        let stream = futures_util::stream::unfold(inbox_rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        let sink = PollSender::new(outbox);
        serve_socket(sink, Box::pin(stream), doc_id, task_state.clone(), address).await;
        drop(permit);
    });

    let first = futures_util::stream::once(async move {
        Ok::<_, Infallible>(Bytes::from(format!("event: session\ndata: {session}\n\n")))
    });
    let events = futures_util::stream::unfold((outbox_rx, false), |(mut rx, closed)| async move {
        if closed {
            return None;
        }
        let message = rx.recv().await?;
        let (event, closed) = sse_event(message);
        Some((Ok::<_, Infallible>(event), (rx, closed)))
    });
    let body = Body::from_stream(first.chain(events));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache, no-transform"),
            // Proxies that buffer responses (nginx) must pass every event on at once.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response())
}

/// One server message as an event of the stream; and whether it is the last.
fn sse_event(message: Message) -> (Bytes, bool) {
    match message {
        Message::Binary(frame) => (Bytes::from(format!("data: {}\n\n", STANDARD.encode(&frame))), false),
        Message::Ping(_) => (Bytes::from_static(b"event: ping\ndata:\n\n"), false),
        Message::Close(frame) => {
            let (code, reason) = frame.map_or((1000, String::new()), |f| (f.code, f.reason.to_string()));
            // A reason never holds a line break (ours are short sentences); be sure anyway.
            let reason = reason.replace(['\r', '\n'], " ");
            (Bytes::from(format!("event: close\ndata: {code} {reason}\n\n")), true)
        }
        // The session sends nothing else; a comment keeps the stream well-formed if it did.
        _ => (Bytes::from_static(b": \n\n"), false),
    }
}

/// `POST /ws/{id}/sse/{session}`: hands the client frames in the body to the session, in order.
pub async fn sse_post(
    Path((id, session)): Path<(String, String)>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ServerError> {
    let doc_id = DocId::parse(&id)?;
    check_origin(&headers, &state)?;
    let inbox = state.sse.lock().get(&session).filter(|(doc, _)| *doc == doc_id).map(|(_, inbox)| inbox.clone());
    let Some(inbox) = inbox else {
        return Ok((StatusCode::NOT_FOUND, "no such session: open a new one\n").into_response());
    };
    let limit = state.config.max_message_bytes;
    let body_limit = (2 * limit).max(2 << 20) + 1024;
    let bytes = match axum::body::to_bytes(body, body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let _ = inbox.send(Err(too_long(body_limit + 1, limit))).await;
            return Ok((StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response());
        }
    };
    let gone = || (StatusCode::NOT_FOUND, "the session has ended: open a new one\n").into_response();
    if bytes.is_empty() {
        return Ok(if inbox.send(Ok(Message::Pong(Bytes::new()))).await.is_ok() {
            StatusCode::NO_CONTENT.into_response()
        } else {
            gone()
        });
    }
    for frame in split_frames(bytes) {
        let item = match frame {
            Frame::Whole(frame) if frame.len() > limit => Err(too_long(frame.len(), limit)),
            Frame::Whole(frame) => Ok(Message::Binary(frame)),
            // A length running past the body: the decoder refuses what is there (close 1007).
            Frame::Truncated(rest) => Ok(Message::Binary(rest)),
        };
        let refused = item.is_err();
        if inbox.send(item).await.is_err() {
            return Ok(gone());
        }
        if refused {
            return Ok(
                (StatusCode::PAYLOAD_TOO_LARGE, "a frame is larger than the server's message limit\n").into_response()
            );
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn too_long(size: usize, max_size: usize) -> tungstenite::Error {
    tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size })
}

/// One frame of a POST body.
#[derive(Debug, PartialEq)]
enum Frame {
    Whole(Bytes),
    /// The rest of the body, shorter than its length prefix says (or shorter than a prefix).
    Truncated(Bytes),
}

/// The frames of a POST body: each a 4-byte big-endian length, then that many bytes.
fn split_frames(mut body: Bytes) -> impl Iterator<Item = Frame> {
    std::iter::from_fn(move || {
        if body.is_empty() {
            return None;
        }
        let len = body.get(..4).map(|prefix| u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize);
        match len {
            Some(len) if body.len() - 4 >= len => {
                let frame = body.slice(4..4 + len);
                body = body.slice(4 + len..);
                Some(Frame::Whole(frame))
            }
            _ => Some(Frame::Truncated(std::mem::take(&mut body))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_splits_into_its_frames_and_a_short_one_is_kept_for_the_decoder() {
        let body = Bytes::from_static(&[0, 0, 0, 2, 7, 8, 0, 0, 0, 0, 0, 0, 0, 3, 9]);
        let frames: Vec<Frame> = split_frames(body).collect();
        assert_eq!(
            frames,
            [
                Frame::Whole(Bytes::from_static(&[7, 8])),
                Frame::Whole(Bytes::new()),
                Frame::Truncated(Bytes::from_static(&[0, 0, 0, 3, 9]))
            ]
        );
        assert_eq!(
            split_frames(Bytes::from_static(&[0, 1])).collect::<Vec<_>>(),
            [Frame::Truncated(Bytes::from_static(&[0, 1]))]
        );
    }

    #[test]
    fn server_messages_become_events() {
        let (event, last) = sse_event(Message::Binary(Bytes::from_static(&[2, 17, 0])));
        assert_eq!(&event[..], b"data: AhEA\n\n");
        assert!(!last);
        assert_eq!(&sse_event(Message::Ping(Bytes::new())).0[..], b"event: ping\ndata:\n\n");
        let close = axum::extract::ws::CloseFrame { code: 1009, reason: "too\nbig".into() };
        let (event, last) = sse_event(Message::Close(Some(close)));
        assert_eq!(&event[..], b"event: close\ndata: 1009 too big\n\n");
        assert!(last);
    }
}

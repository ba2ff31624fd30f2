//! The end of a WebSocket session: the error message and close frame its [`Exit`] calls for.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use crdt_core::protocol::{ServerMsg, CLOSE_REPLICA_REFUSED, CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::timeout;

use super::{close_code, Exit};
use crate::auth::AuthError;
use crate::doc_actor::KickReason;

/// How long the final error and close frames may take to go out.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends the error message and close frame that `exit` calls for, then waits briefly for the
/// client's close so that the socket is not reset under its unread error message.
pub(super) async fn goodbye<Si, St, E>(sink: &mut Si, stream: &mut St, exit: &Exit)
where
    Si: Sink<Message> + Unpin,
    St: Stream<Item = Result<Message, E>> + Unpin,
{
    let (code, message): (u16, Option<String>) = match exit {
        Exit::ClientClosed | Exit::Gone => return,
        Exit::BadInput { code, message } => (*code, Some(message.clone())),
        Exit::Kicked(KickReason::SlowConsumer) | Exit::Stalled => {
            (close_code::TRY_AGAIN_LATER, Some("too slow: the outgoing queue overflowed; reconnect and resync".into()))
        }
        Exit::ReplicaRefused(reason) => (CLOSE_REPLICA_REFUSED, Some(reason.clone())),
        Exit::Unauthorized(error @ AuthError::Expired) => (CLOSE_TOKEN_EXPIRED, Some(error.to_string())),
        Exit::Unauthorized(error) => (CLOSE_UNAUTHORIZED, Some(error.to_string())),
        Exit::Flood => {
            (close_code::RATE_LIMITED, Some("too many changes or bytes for too long: slow down, then reconnect".into()))
        }
        Exit::TooManyNewDocuments => (
            close_code::TOO_MANY_NEW_DOCUMENTS,
            Some("too many new documents from your address: wait a minute and try again".into()),
        ),
        Exit::Kicked(KickReason::StorageFailure) => {
            (close_code::INTERNAL_ERROR, Some("the server could not store the document; reconnect later".into()))
        }
        Exit::Kicked(KickReason::Moved) => {
            (close_code::MOVED, Some("another server owns this document now: reconnect".into()))
        }
        Exit::HeartbeatTimeout => (close_code::HEARTBEAT_TIMEOUT, None),
        Exit::Shutdown => (close_code::GOING_AWAY, None),
        Exit::Unavailable(reason) => (close_code::TRY_AGAIN_LATER, Some(reason.clone())),
        // The detail was logged; the client gets no internals.
        Exit::Failed(_) => {
            (close_code::INTERNAL_ERROR, Some("the server could not load this document; try again later".into()))
        }
    };
    let reason = match &message {
        Some(text) => truncate(text, 120),
        None => "closing".to_owned(),
    };
    let _ = timeout(GOODBYE_TIMEOUT, async {
        if let Some(message) = message {
            let frame = ServerMsg::Error { message }.encode();
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        let close = CloseFrame { code, reason: reason.into() };
        if sink.send(Message::Close(Some(close))).await.is_err() {
            return;
        }
        // Read until the client's close (or the end) so the close handshake completes.
        if !matches!(exit, Exit::BadInput { code: close_code::MESSAGE_TOO_BIG, .. }) {
            while let Some(Ok(_)) = stream.next().await {}
        } else {
            // The rest of the message too big is unread and cannot be skipped: closing the
            // socket now would reset it, and a browser would lose the close frame (and report
            // 1006, not 1009, so it could not know that resending cannot help). Keep it open
            // until the goodbye's time is up, so the client reads the close and closes first.
            tokio::time::sleep(GOODBYE_TIMEOUT).await;
        }
    })
    .await;
}

/// At most `max` bytes of `text`, cut at a character boundary (close reasons are limited to
/// 123 bytes).
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

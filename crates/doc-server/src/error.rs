//! [`ServerError`]: what can go wrong inside the server, and its conversion into HTTP responses.
//!
//! WebSocket errors never reach this type's `IntoResponse`: the connection loop turns bad input
//! into a `ServerMsg::Error` and a close frame (see `ws.rs`). HTTP handlers return
//! `Result<_, ServerError>`; the response carries a short public message and the detail goes to
//! the log, as in axum's `error-handling` example.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crdt_core::DecodeError;

use crate::auth::AuthError;
use crate::doc_id::InvalidDocId;
use crate::storage::StoreError;

/// An error of the server; see the module docs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A path named a document with an invalid id.
    #[error(transparent)]
    InvalidDocId(#[from] InvalidDocId),
    /// No such document is stored.
    #[error("no document {0}")]
    NotFound(String),
    /// Bytes from outside (a frame, a stored entry) could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored document could not be rebuilt from its snapshot and log.
    #[error("document {doc} could not be loaded: {reason}")]
    Load {
        /// The document.
        doc: String,
        /// What was wrong.
        reason: String,
    },
    /// The document's actor stopped (it unloaded, failed, or the server is shutting down).
    #[error("the document is not available right now")]
    ActorGone,
    /// Loading another document would exceed `--memory-budget`, and every loaded one is in use.
    #[error("the server is at its memory budget: try again later")]
    OverBudget,
    /// The server is shutting down and takes no new work.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// Socket or file IO failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The request's access token (or its page's origin) does not allow it.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
}

impl From<tokio::task::JoinError> for ServerError {
    fn from(error: tokio::task::JoinError) -> Self {
        ServerError::Task(error.to_string())
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let (status, public) = match &self {
            ServerError::Unauthorized(AuthError::Forbidden(_) | AuthError::Origin(_)) => {
                (StatusCode::FORBIDDEN, self.to_string())
            }
            ServerError::Unauthorized(_) => {
                let headers = [(axum::http::header::WWW_AUTHENTICATE, "Bearer")];
                return (StatusCode::UNAUTHORIZED, headers, self.to_string()).into_response();
            }
            ServerError::InvalidDocId(error) => (StatusCode::BAD_REQUEST, error.to_string()),
            ServerError::NotFound(_) => (StatusCode::NOT_FOUND, self.to_string()),
            ServerError::Decode(error) => (StatusCode::BAD_REQUEST, error.to_string()),
            ServerError::ActorGone | ServerError::ShuttingDown | ServerError::OverBudget => {
                (StatusCode::SERVICE_UNAVAILABLE, self.to_string())
            }
            ServerError::Store(_) | ServerError::Load { .. } | ServerError::Task(_) | ServerError::Io(_) => {
                tracing::error!(error = %self, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error (see the server log)".to_owned())
            }
        };
        (status, public).into_response()
    }
}

//! [`DocHandle`], the only way into a document actor, and [`ActorStatus`], what an actor
//! publishes about itself for the registry (memory budget, lease keeper).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crdt_core::Document;

use super::{Committed, DeferredRead, DocCommand, EditFailure, ServerEdit, COMMAND_QUEUE};
use crate::storage::now_ms;
use crate::ServerError;

/// What an actor tells the registry about itself without being asked (for the memory
/// budget): its size and whether anyone has it open.
#[derive(Debug, Default)]
pub struct ActorStatus {
    /// Heap bytes of the document, measured at most a second ago.
    pub memory: AtomicU64,
    /// Connections joined now.
    pub connections: AtomicU64,
    /// When the document was last used (milliseconds since the Unix epoch).
    pub last_used_ms: AtomicU64,
    /// The epoch of the lease the actor holds (0 until it holds one, or without leases).
    pub epoch: AtomicU64,
    /// When it claimed that lease (milliseconds since the Unix epoch).
    pub claimed_ms: AtomicU64,
}

/// The only way into a document actor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DocHandle {
    tx: mpsc::Sender<DocCommand>,
    generation: u64,
    status: Arc<ActorStatus>,
}

impl DocHandle {
    /// Queues a command; waits if the actor's queue is full. Fails if the actor has stopped.
    pub async fn send(&self, command: DocCommand) -> Result<(), ServerError> {
        self.tx.send(command).await.map_err(|_| ServerError::ActorGone)
    }

    /// Queues a command at once if the actor's queue has room, as it nearly always does, and
    /// returns `None`; otherwise returns the (boxed) wait for room, which fails if the actor has
    /// stopped. For connections: an `async` send would keep room for the command in the
    /// connection's task all its life, and an idle connection's task should be small (`ws.rs`).
    pub fn send_or_wait(&self, command: DocCommand) -> Option<BoxFuture<'_, Result<(), ServerError>>> {
        match self.tx.try_send(command) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Some(Box::pin(std::future::ready(Err(ServerError::ActorGone))))
            }
            Err(mpsc::error::TrySendError::Full(command)) => Some(Box::pin(self.send(command))),
        }
    }

    /// The document's value as JSON bytes.
    pub async fn value(&self) -> Result<Vec<u8>, ServerError> {
        let (reply, answer) = oneshot::channel();
        self.send(DocCommand::Value { reply }).await?;
        answer.await.map_err(|_| ServerError::ActorGone)
    }

    /// Makes `edit` as the server's own replica; returns once it is durable.
    pub async fn edit(&self, edit: ServerEdit) -> Result<Result<Committed, EditFailure>, ServerError> {
        let (reply, answer) = oneshot::channel();
        self.send(DocCommand::Edit { edit, reply }).await?;
        answer.await.map_err(|_| ServerError::ActorGone)
    }

    /// `read`'s answer, computed by the actor on the document once the current round is
    /// durable.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Document) -> T + Send + 'static,
    ) -> Result<T, ServerError> {
        let (reply, answer) = oneshot::channel();
        let run = move |doc: &Document| {
            let _ = reply.send(read(doc));
        };
        self.send(DocCommand::Read(DeferredRead(Box::new(run)))).await?;
        answer.await.map_err(|_| ServerError::ActorGone)
    }

    /// The history view's data as JSON (see `history.rs`), or why there is none.
    pub async fn history(&self, at: Option<usize>) -> Result<Result<Vec<u8>, String>, ServerError> {
        let (reply, answer) = oneshot::channel();
        self.send(DocCommand::History { at, reply }).await?;
        answer.await.map_err(|_| ServerError::ActorGone)
    }

    /// Which spawn of the document this handle belongs to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the actor has stopped taking commands.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// What the actor last said about itself.
    pub fn status(&self) -> &Arc<ActorStatus> {
        &self.status
    }

    /// Asks the actor to unload if nobody has the document open; never waits.
    pub(crate) fn request_unload(&self) -> bool {
        self.tx.try_send(DocCommand::Unload).is_ok()
    }

    /// Tells the actor its lease is lost or wanted elsewhere (see [`DocCommand::Lease`]).
    pub(crate) async fn lease_news(&self, lost: bool) {
        let _ = self.tx.send(DocCommand::Lease { lost }).await;
    }
}

/// Creates the channel of a new actor; the registry spawns [`run`] with the receiver.
pub(crate) fn channel(generation: u64) -> (DocHandle, mpsc::Receiver<DocCommand>) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let status = Arc::new(ActorStatus { last_used_ms: AtomicU64::new(now_ms()), ..ActorStatus::default() });
    (DocHandle { tx, generation, status }, rx)
}

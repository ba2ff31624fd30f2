//! [`DocHandle`], the only way into a document actor, and [`ActorStatus`], what an actor
//! publishes about itself for the registry (memory budget, lease keeper).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crdt_core::Document;

use super::{Committed, DeferredRead, DocCommand, EditFailure, ServerEdit, COMMAND_QUEUE};
use crate::storage::now_ms;
use crate::ServerError;

/// What an actor tells the registry about itself without being asked (for the memory
/// budget): its size and whether anyone has it open. It also holds the room in the actor's
/// queue ([`QUEUED_COST`]), which connections take from: in the same allocation, so that a
/// [`DocHandle`], which every connection's task holds, stays as small as it was.
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
    /// Room in the queue, [`QUEUED_COST`] units.
    queue_room: QueueBudget,
}

/// [`QUEUED_COST`] units of room in a queue.
#[derive(Debug)]
struct QueueBudget(Semaphore);

impl Default for QueueBudget {
    fn default() -> Self {
        QueueBudget(Semaphore::new(QUEUED_COST as usize))
    }
}

/// What a document's queue holds at most, decoded, from all its connections together, in
/// units of one change or [`QUEUED_BYTES_PER_UNIT`] bytes of the message that carried it (a
/// batch costs both). The queue's 1,024 commands alone do not bound its memory: 1,024
/// batches of 1,000 keystrokes (a long history sent at once, as the automerge-paper load
/// does) are 200 MB decoded, and 1,024 messages of the largest size (1 MiB by default) over a
/// GiB. Now the queue holds about 20 such batches (some 4 MB decoded), or two 1 MB pastes, or
/// one message over 2 MiB. A connection waits for room
/// before it queues a batch, reading nothing meanwhile, so its client is slowed down through
/// TCP; a batch that costs more than all of it waits for all of it.
pub const QUEUED_COST: u32 = 32_768;

/// See [`QUEUED_COST`].
pub const QUEUED_BYTES_PER_UNIT: usize = 64;

/// A batch's room in its document's queue (see [`QUEUED_COST`]): given back when the actor
/// takes the batch (drops the command).
#[derive(Debug)]
pub struct QueueRoom {
    status: Arc<ActorStatus>,
    units: u32,
}

impl Drop for QueueRoom {
    fn drop(&mut self) {
        self.status.queue_room.0.add_permits(self.units as usize);
    }
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

    /// Room in the queue for a batch of `changes` changes that came in a message of `bytes`: at
    /// once if there is, as there nearly always is, or else the (boxed, see
    /// [`DocHandle::send_or_wait`]) wait for it.
    pub fn room_for(
        &self,
        changes: usize,
        bytes: usize,
    ) -> Result<QueueRoom, BoxFuture<'static, Result<QueueRoom, ServerError>>> {
        let cost = changes.saturating_add(bytes / QUEUED_BYTES_PER_UNIT);
        let units = u32::try_from(cost).unwrap_or(u32::MAX).clamp(1, QUEUED_COST);
        let status = Arc::clone(&self.status);
        match self.status.queue_room.0.try_acquire_many(units) {
            Ok(permit) => {
                permit.forget();
                Ok(QueueRoom { status, units })
            }
            Err(_) => Err(Box::pin(async move {
                let permit = status.queue_room.0.acquire_many(units).await.map_err(|_| ServerError::ActorGone)?;
                permit.forget();
                Ok(QueueRoom { status, units })
            })),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_makes_the_next_batch_wait_until_the_actor_takes_one() {
        let (handle, _rx) = channel(1);
        let all = QUEUED_COST as usize;
        let Ok(full) = handle.room_for(all / 2, all / 2 * QUEUED_BYTES_PER_UNIT) else {
            panic!("room for a full queue")
        };
        let Err(wait) = handle.room_for(1, 10) else { panic!("no room left for one more change") };
        let waiting = tokio::spawn(wait);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "waits while the queue is full");
        drop(full);
        drop(waiting.await.unwrap().expect("room once the actor took the batch"));
        // One large message costs its bytes, and one over the whole budget takes all of it.
        let Ok(paste) = handle.room_for(1, 1_000_000) else { panic!("room for a 1 MB paste") };
        let Ok(second) = handle.room_for(1, 1_000_000) else { panic!("and for a second one") };
        assert!(handle.room_for(1, 1_000_000).is_err(), "not for a third");
        drop((paste, second));
        let Ok(huge) = handle.room_for(10 * all, 0) else { panic!("a batch over the budget takes all") };
        assert!(handle.room_for(1, 0).is_err());
        drop(huge);
        assert!(handle.room_for(all, 0).is_ok());
    }
}

//! A connection's outbox: the encoded frames its document's actor queued and its writer has not
//! sent yet.
//!
//! The actor never waits on a connection: it only [`OutboxSender::try_send`]s, and a full outbox
//! means the connection is kicked (a slow consumer, `doc_actor/peers.rs`). The writer drains it
//! with [`OutboxReceiver::recv`] and [`OutboxReceiver::try_recv`].
//!
//! The bound is in bytes, not frames (`--send-queue-bytes`): a burst of small frames (the
//! presence of everyone already in a document, after a `Welcome`) is no sign of a slow reader.
//! Each frame counts its length plus [`FRAME_COST`] for its handle, and the frame at the head
//! does not count: a large catch-up alone in the outbox is being written, and the next change
//! must not make its connection a slow consumer.
//!
//! Why not `tokio::sync::mpsc`: an idle connection's outbox is empty nearly all the time, and a
//! bounded mpsc channel keeps its first block of 32 slots (1 KiB), a second one once more than
//! 32 frames have gone through, and a 512-byte shared state: about 2.6 KiB of the 16 KiB each of
//! 10,000 idle connections cost (BENCHMARKS.md, issue 20). This outbox is one small allocation;
//! its queue holds memory only while frames wait, and gives it back once drained.
//!
//! # Invariants
//! - Frames come out in the order they went in; none is dropped while both ends live.
//! - Dropping the sender ends the receiver once it has drained what was queued; dropping the
//!   receiver makes every later `try_send` fail with [`Refused::Closed`] and frees what waited.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use axum::body::Bytes;
use futures_util::task::AtomicWaker;

/// What a queued frame costs beside its bytes: its handle in the queue.
pub const FRAME_COST: usize = std::mem::size_of::<Bytes>();

/// Creates an outbox holding at most `max_bytes` behind the frame at its head (see the module
/// docs).
pub fn outbox(max_bytes: usize) -> (OutboxSender, OutboxReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue { frames: VecDeque::new(), bytes: 0, sender: true, receiver: true }),
        max_bytes,
        waker: AtomicWaker::new(),
    });
    (OutboxSender { shared: shared.clone() }, OutboxReceiver { shared })
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    max_bytes: usize,
    /// The receiver's task, waiting for a frame or for the sender to go.
    waker: AtomicWaker,
}

#[derive(Debug)]
struct Queue {
    frames: VecDeque<Bytes>,
    /// What the frames behind the head cost (see [`FRAME_COST`]).
    bytes: usize,
    /// Whether the sender (receiver) still exists.
    sender: bool,
    receiver: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned one still holds a consistent queue.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why [`OutboxSender::try_send`] refused a frame (the frame is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The outbox holds its maximum: the connection does not keep up.
    Full,
    /// The connection is gone.
    Closed,
}

/// The actor's end.
#[derive(Debug)]
pub struct OutboxSender {
    shared: Arc<Shared>,
}

impl OutboxSender {
    /// Queues `frame` unless the outbox is full or its connection gone; never waits.
    pub fn try_send(&self, frame: Bytes) -> Result<(), Refused> {
        let mut queue = self.shared.lock();
        if !queue.receiver {
            return Err(Refused::Closed);
        }
        if !queue.frames.is_empty() {
            let bytes = queue.bytes + cost(&frame);
            if bytes > self.shared.max_bytes {
                return Err(Refused::Full);
            }
            queue.bytes = bytes;
        }
        queue.frames.push_back(frame);
        drop(queue);
        self.shared.waker.wake();
        Ok(())
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        self.shared.lock().sender = false;
        self.shared.waker.wake();
    }
}

/// The connection writer's end.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

/// What [`OutboxReceiver::take`] found.
enum Taken {
    Frame(Bytes),
    Empty,
    Ended,
}

impl OutboxReceiver {
    /// The next frame; `None` once the sender is gone and everything queued was taken.
    /// Cancel-safe: a frame leaves the outbox only when it is returned.
    pub async fn recv(&mut self) -> Option<Bytes> {
        poll_fn(|cx| {
            if let Taken::Frame(frame) = self.take() {
                return Poll::Ready(Some(frame));
            }
            // Registered before looking again, so a frame queued in between wakes us.
            self.shared.waker.register(cx.waker());
            match self.take() {
                Taken::Frame(frame) => Poll::Ready(Some(frame)),
                Taken::Ended => Poll::Ready(None),
                Taken::Empty => Poll::Pending,
            }
        })
        .await
    }

    /// The next frame if one is queued now.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        match self.take() {
            Taken::Frame(frame) => Some(frame),
            Taken::Empty | Taken::Ended => None,
        }
    }

    fn take(&self) -> Taken {
        let mut queue = self.shared.lock();
        match queue.frames.pop_front() {
            Some(frame) => {
                match queue.frames.front().map(cost) {
                    // The new head stops counting.
                    Some(head) => queue.bytes -= head,
                    // Drained: an idle connection keeps no queue.
                    None => queue.frames = VecDeque::new(),
                }
                Taken::Frame(frame)
            }
            None if queue.sender => Taken::Empty,
            None => Taken::Ended,
        }
    }
}

fn cost(frame: &Bytes) -> usize {
    frame.len() + FRAME_COST
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.receiver = false;
        queue.frames = VecDeque::new();
        queue.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(n: u8) -> Bytes {
        Bytes::from(vec![n])
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_the_end_follows_the_last() {
        let (tx, mut rx) = outbox(1024);
        for n in 0..5 {
            tx.try_send(frame(n)).unwrap();
        }
        drop(tx);
        for n in 0..5 {
            assert_eq!(rx.recv().await, Some(frame(n)));
        }
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn a_full_outbox_refuses_and_a_closed_one_says_so() {
        // Room for two one-byte frames behind the head.
        let (tx, mut rx) = outbox(2 * (1 + FRAME_COST));
        for n in 0..3 {
            tx.try_send(frame(n)).unwrap();
        }
        assert_eq!(tx.try_send(frame(3)), Err(Refused::Full));
        assert_eq!(rx.try_recv(), Some(frame(0)));
        tx.try_send(frame(3)).unwrap();
        assert_eq!(tx.try_send(frame(4)), Err(Refused::Full));
        drop(rx);
        assert_eq!(tx.try_send(frame(4)), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn a_large_frame_at_the_head_does_not_count() {
        let (tx, mut rx) = outbox(100);
        let catchup = Bytes::from(vec![0; 10_000]);
        tx.try_send(catchup.clone()).unwrap();
        tx.try_send(Bytes::from(vec![1; 50])).unwrap();
        assert_eq!(tx.try_send(Bytes::from(vec![2; 50])), Err(Refused::Full));
        // A large frame behind the head is refused.
        assert_eq!(rx.try_recv(), Some(catchup.clone()));
        assert_eq!(tx.try_send(catchup), Err(Refused::Full));
        // Many small frames fit where few large ones would not.
        let (tx, _rx) = outbox(64 * (1 + FRAME_COST));
        for n in 0..=64 {
            tx.try_send(frame(n)).unwrap();
        }
        assert_eq!(tx.try_send(frame(65)), Err(Refused::Full));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_frame_and_for_the_end() {
        let (tx, mut rx) = outbox(1024);
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await;
            let end = rx.recv().await;
            (first, end)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.try_send(frame(7)).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(tx);
        let (first, end) = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert_eq!((first, end), (Some(frame(7)), None));
    }

    #[tokio::test]
    async fn a_drained_outbox_gives_its_queue_back() {
        let (tx, mut rx) = outbox(1 << 20);
        for n in 0..100 {
            tx.try_send(frame(n)).unwrap();
        }
        assert!(tx.shared.lock().frames.capacity() >= 100);
        assert_eq!(tx.shared.lock().bytes, 99 * (1 + FRAME_COST));
        while rx.try_recv().is_some() {}
        assert_eq!(tx.shared.lock().frames.capacity(), 0);
        assert_eq!(tx.shared.lock().bytes, 0);
    }

    /// Many frames from another thread while the receiver waits and takes them: none lost,
    /// none reordered, no wake-up missed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_sent_from_another_thread_all_arrive_in_order() {
        const FRAMES: u32 = 20_000;
        let (tx, mut rx) = outbox(64 * (4 + FRAME_COST));
        let sender = std::thread::spawn(move || {
            let mut n = 0u32;
            while n < FRAMES {
                match tx.try_send(Bytes::from(n.to_le_bytes().to_vec())) {
                    Ok(()) => n += 1,
                    Err(Refused::Full) => std::thread::yield_now(),
                    Err(Refused::Closed) => panic!("the receiver is alive"),
                }
            }
        });
        let mut expected = 0u32;
        while let Some(frame) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap() {
            assert_eq!(frame.as_ref(), expected.to_le_bytes());
            expected += 1;
        }
        assert_eq!(expected, FRAMES);
        sender.join().unwrap();
    }
}

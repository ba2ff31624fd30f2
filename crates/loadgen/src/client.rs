//! One typing client: a WebSocket, a protocol ([`Protocol`]: doc-server's or Yjs's), a
//! [`Typist`], and the loop that types when a tick is due and reads whatever arrives.
//!
//! The loop is the same for both protocols, so they are measured the same way: a keystroke
//! is recorded in the document's ledger before its frame is handed to the socket, one frame
//! per keystroke (as the browser page sends), and a received frame is time-stamped as soon
//! as the socket yields it, before it is decoded or applied.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::ledger::{micros, Ledger, Progress, Stamp, Tally};
use crate::schedule::{Tick, Window};
use crate::typist::{Step, Typist};

/// A client's WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A keystroke, typed into the local copy and ready to send.
pub struct Outgoing {
    /// Its identity, as the peers will read it from what they receive.
    pub stamp: Stamp,
    /// The frame that carries it.
    pub frame: Vec<u8>,
    /// The batch number an acknowledgement will name, if the server acknowledges.
    pub batch: Option<u64>,
}

/// What one received frame held.
#[derive(Default)]
pub struct Incoming {
    /// The keystrokes it carried (the receiver's own ones are ignored).
    pub seen: Vec<Stamp>,
    /// The highest batch it acknowledged (as applied).
    pub acked: Option<u64>,
    /// Frames to send back.
    pub replies: Vec<Vec<u8>>,
}

/// A sync protocol, as one client speaks it after its handshake.
pub trait Protocol: Send + 'static {
    /// Types `step` into the local copy and encodes it.
    fn keystroke(&mut self, step: Step) -> Result<Outgoing, String>;
    /// Decodes and applies one binary frame from the server.
    fn receive(&mut self, frame: &[u8], incoming: &mut Incoming) -> Result<(), String>;
    /// The local copy's text.
    fn text(&self) -> String;
}

/// Bytes tungstenite reads at a time. Its default, 128 KiB, is zeroed before every read: with
/// thousands of small frames a second that memset was a fifth of the load generator's CPU.
/// Frames are tens of bytes here; a larger one simply takes several reads.
const READ_BUFFER: usize = 4096;

/// Opens a WebSocket with `TCP_NODELAY` on, as browsers do.
pub async fn connect_ws(url: &str) -> Result<Ws, String> {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    Ok(ws)
}

/// Reads the next binary frame (control frames are answered by tungstenite).
pub async fn next_binary(ws: &mut Ws) -> Result<Vec<u8>, String> {
    loop {
        match ws.next().await {
            None => return Err("connection ended".into()),
            Some(Err(e)) => return Err(format!("read: {e}")),
            Some(Ok(Message::Binary(bytes))) => return Ok(bytes.into()),
            Some(Ok(Message::Close(frame))) => return Err(format!("closed by the server: {frame:?}")),
            Some(Ok(_)) => {}
        }
    }
}

/// A client's place in the run.
pub struct Seat {
    /// Its number (the ledgers' sender id).
    pub index: u32,
    /// Its document's ledger.
    pub ledger: Arc<Ledger>,
    /// The run's counters.
    pub progress: Arc<Progress>,
    /// The run's windows.
    pub window: Window,
    /// How many other clients type into its document.
    pub peers: u64,
    /// Its typing.
    pub typist: Typist,
}

/// Types on every tick and reads until `stop`; returns what this client measured.
pub async fn drive<P: Protocol>(
    mut ws: Ws,
    mut protocol: P,
    mut seat: Seat,
    mut ticks: UnboundedReceiver<Tick>,
    stop: CancellationToken,
) -> Tally {
    let mut tally = Tally::default();
    // Batches in flight: (batch, due, measured).
    let mut inflight: VecDeque<(u64, Instant, bool)> = VecDeque::new();
    let mut ticking = true;
    let mut incoming = Incoming::default();
    let result: Result<(), String> = async {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                tick = ticks.recv(), if ticking => {
                    let Some(tick) = tick else {
                        ticking = false;
                        continue;
                    };
                    let measured = seat.window.measures(tick.due);
                    let out = protocol.keystroke(seat.typist.next())?;
                    seat.ledger.record(out.stamp, tick.due, seat.index, measured);
                    if measured {
                        tally.sent_measured += 1;
                        seat.progress.expected.fetch_add(seat.peers, Ordering::Relaxed);
                        if out.batch.is_some() {
                            seat.progress.unacked.fetch_add(1, Ordering::Relaxed);
                        }
                        tally.lag_us.push(micros(Instant::now(), tick.due));
                    }
                    if let Some(batch) = out.batch {
                        inflight.push_back((batch, tick.due, measured));
                    }
                    ws.send(Message::Binary(out.frame.into())).await.map_err(|e| format!("send: {e}"))?;
                }
                message = ws.next() => {
                    let now = Instant::now();
                    let frame = match message {
                        None => return Err("connection ended".into()),
                        Some(Err(e)) => return Err(format!("read: {e}")),
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(Message::Close(frame))) => return Err(format!("closed by the server: {frame:?}")),
                        Some(Ok(_)) => continue,
                    };
                    protocol.receive(&frame, &mut incoming)?;
                    for stamp in incoming.seen.drain(..) {
                        if let Some((due, measured)) = seat.ledger.lookup(stamp, seat.index) {
                            tally.saw(due, measured, now, &seat.window, &seat.progress);
                        }
                    }
                    if let Some(acked) = incoming.acked.take() {
                        while inflight.front().is_some_and(|&(batch, _, _)| batch <= acked) {
                            let Some((_, due, measured)) = inflight.pop_front() else { break };
                            if measured {
                                tally.ack_us.push(micros(now, due));
                                seat.progress.unacked.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                    }
                    for reply in incoming.replies.drain(..) {
                        ws.send(Message::Binary(reply.into())).await.map_err(|e| format!("send: {e}"))?;
                    }
                }
            }
        }
    }
    .await;
    if let Err(reason) = result {
        tally.closed = Some(reason);
    }
    // Whatever is still in flight was never acknowledged (the drain ended or the connection
    // closed first).
    for (_, _, measured) in inflight {
        if measured {
            tally.unacked += 1;
            seat.progress.unacked.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    tally.text = protocol.text();
    tally
}

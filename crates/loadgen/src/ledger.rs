//! Who sent which keystroke when, and what each client saw.
//!
//! A keystroke is named by a [`Stamp`] its protocol gives it: for doc-server the change's
//! `(replica, seq)`; for Yjs the inserted character's `(client, clock)`, or the deleted
//! character's with [`Stamp::DELETE`] set (a Yjs delete creates no item of its own, but a
//! typist only deletes its own characters, each once). The sender writes the stamp and the
//! keystroke's due time into its document's [`Ledger`] before the frame leaves; every other
//! client of the document looks the stamps of what it receives up there.
//!
//! Every client task keeps its own [`Tally`] (plain vectors, no sharing); the run adds them up.
//! The shared [`Progress`] counters only tell the run when the drain is over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::schedule::Window;

/// A keystroke's identity in its protocol: author and number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The replica or Yjs client that made it.
    pub author: u128,
    /// Its change seq, or the Yjs clock (with [`Stamp::DELETE`] for a delete).
    pub number: u64,
}

impl Stamp {
    /// Marks a Yjs stamp as the deletion of the character with that clock.
    pub const DELETE: u64 = 1 << 63;
}

/// A keystroke on its way.
#[derive(Clone, Copy, Debug)]
struct Sent {
    due: Instant,
    sender: u32,
    measured: bool,
}

/// The keystrokes sent into one document.
#[derive(Default)]
pub struct Ledger {
    sent: Mutex<HashMap<Stamp, Sent>>,
}

impl Ledger {
    /// Records that client `sender` sends `stamp`, due at `due`.
    pub fn record(&self, stamp: Stamp, due: Instant, sender: u32, measured: bool) {
        let mut sent = self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sent.insert(stamp, Sent { due, sender, measured });
    }

    /// What client `me` learns on receiving `stamp` at `now`: the keystroke's due time and
    /// whether it is measured, or `None` for its own keystrokes and unknown stamps.
    pub fn lookup(&self, stamp: Stamp, me: u32) -> Option<(Instant, bool)> {
        let sent = self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        sent.get(&stamp).filter(|s| s.sender != me).map(|s| (s.due, s.measured))
    }
}

/// Counters the run watches to end its drain.
#[derive(Default)]
pub struct Progress {
    /// (measured keystroke, peer) deliveries expected: each measured keystroke adds the
    /// number of other clients in its document.
    pub expected: AtomicU64,
    /// ... and seen so far.
    pub observed: AtomicU64,
    /// Measured keystrokes sent to doc-server and not acknowledged yet.
    pub unacked: AtomicU64,
}

impl Progress {
    /// Whether every measured keystroke has reached every peer and been acknowledged.
    pub fn settled(&self) -> bool {
        self.observed.load(Ordering::Relaxed) >= self.expected.load(Ordering::Relaxed)
            && self.unacked.load(Ordering::Relaxed) == 0
    }
}

/// What one client measured.
#[derive(Default, Debug)]
pub struct Tally {
    /// Due → seen here, of others' measured keystrokes, in µs.
    pub seen_us: Vec<u32>,
    /// Due → acknowledged, of own measured keystrokes, in µs (doc-server only).
    pub ack_us: Vec<u32>,
    /// Due → handed to the socket, of own measured keystrokes, in µs: how late the load
    /// generator itself was.
    pub lag_us: Vec<u32>,
    /// Others' keystrokes (measured or not) seen inside the measured window.
    pub seen_in_window: u64,
    /// Own measured keystrokes sent.
    pub sent_measured: u64,
    /// Own measured keystrokes never acknowledged.
    pub unacked: u64,
    /// Why the connection ended before the run did, if it did.
    pub closed: Option<String>,
    /// The client's text at the end (to check that every copy of a document agrees).
    pub text: String,
}

impl Tally {
    /// Records one of others' keystrokes seen at `now`.
    pub fn saw(&mut self, due: Instant, measured: bool, now: Instant, window: &Window, progress: &Progress) {
        if measured {
            self.seen_us.push(micros(now, due));
            progress.observed.fetch_add(1, Ordering::Relaxed);
        }
        if window.contains(now) {
            self.seen_in_window += 1;
        }
    }
}

/// `later - earlier` in µs, saturating.
pub fn micros(later: Instant, earlier: Instant) -> u32 {
    later.saturating_duration_since(earlier).as_micros().min(u32::MAX as u128) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_does_not_see_its_own_keystrokes() {
        let ledger = Ledger::default();
        let stamp = Stamp { author: 9, number: 1 };
        let due = Instant::now();
        ledger.record(stamp, due, 3, true);
        assert_eq!(ledger.lookup(stamp, 3), None);
        assert_eq!(ledger.lookup(stamp, 4), Some((due, true)));
        assert_eq!(ledger.lookup(Stamp { author: 9, number: 1 | Stamp::DELETE }, 4), None);
    }
}

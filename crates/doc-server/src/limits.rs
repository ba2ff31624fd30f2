//! What one client may cost the server: token buckets for a connection's changes, bytes and
//! presence updates ([`ConnectionRates`]), connections and new documents per client address
//! ([`AddressLimits`]), and the size of one document ([`DocLimits`]). PROTOCOL.md section 10
//! lists every limit with its flag, and section 9 the codes a client gets.
//!
//! A connection over its rate is *throttled*, not refused: the WebSocket loop stops reading its
//! socket until the bucket has refilled, so the client's writes back up through TCP and it
//! slows down to the rate whatever it does (a well-behaved client never notices; its
//! keystrokes are far below the rate and its bursts within a bucket). Only a connection that is
//! throttled on every message for `--flood-close-after` is closed (4005). Presence over its rate
//! is coalesced: the latest update waits and goes out when the rate allows, the ones it
//! replaced are dropped (a cursor only needs its last position).
//!
//! # Invariants
//! - A bucket never holds more than its capacity; its debt (negative tokens) is at most one
//!   message's cost, because the reader waits the debt out before it reads the next message.
//! - An address's entry is removed only when it has no connection and its new-document bucket
//!   is full, so disconnecting never resets what an address may create.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;

/// How many seconds' worth of a rate a connection may send at once.
pub const BURST_SECONDS: u32 = 5;

/// A token bucket: `rate` tokens a second, at most `capacity` saved up. Time is passed in, so
/// the arithmetic is tested without sleeping.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket; `None` when `rate` is 0 (no limit).
    pub fn new(rate: f64, capacity: f64, now: Instant) -> Option<TokenBucket> {
        (rate > 0.0).then(|| TokenBucket { rate, capacity: capacity.max(1.0), tokens: capacity.max(1.0), at: now })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.at = self.at.max(now);
    }

    /// Takes `cost` tokens, going into debt if there are fewer; returns how long until the debt
    /// is repaid (zero when there was none).
    pub fn take(&mut self, cost: f64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= cost;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Takes one token if there is one; otherwise how long until there is.
    pub fn try_take_one(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Whether the bucket has refilled to its capacity by `now`.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// One connection's buckets for what it sends.
#[derive(Debug)]
pub struct ConnectionRates {
    changes: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
    presence: Option<TokenBucket>,
    flood_close_after: Duration,
    /// Since when every message had to wait for the buckets.
    throttled_since: Option<Instant>,
}

/// What a connection's message costs it.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on now.
    Pass,
    /// Stop reading the connection for this long, then go on.
    Wait(Duration),
    /// The connection has been over its rate for `--flood-close-after` (or this one message
    /// would keep it waiting longer than that): close it.
    Flood,
}

impl ConnectionRates {
    /// The buckets `config` calls for, full.
    pub fn new(config: &Config, now: Instant) -> ConnectionRates {
        let burst = f64::from(BURST_SECONDS);
        let changes = f64::from(config.changes_per_second);
        let bytes = config.bytes_per_second as f64;
        let presence = f64::from(config.presence_per_second);
        ConnectionRates {
            changes: TokenBucket::new(changes, changes * burst, now),
            // A burst always holds the largest message, so one message never waits for more
            // than the bytes the bucket lacks.
            bytes: TokenBucket::new(bytes, (bytes * burst).max(config.max_message_bytes as f64), now),
            presence: TokenBucket::new(presence, presence, now),
            flood_close_after: config.flood_close_after,
            throttled_since: None,
        }
    }

    /// Charges a `Changes` message of `changes` changes and `bytes` bytes.
    pub fn charge(&mut self, changes: usize, bytes: usize, now: Instant) -> Verdict {
        let wait = [(&mut self.changes, changes), (&mut self.bytes, bytes)]
            .into_iter()
            .filter_map(|(bucket, cost)| Some(bucket.as_mut()?.take(cost as f64, now)))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            self.throttled_since = None;
            return Verdict::Pass;
        }
        let since = *self.throttled_since.get_or_insert(now);
        if (now + wait).saturating_duration_since(since) > self.flood_close_after {
            Verdict::Flood
        } else {
            Verdict::Wait(wait)
        }
    }

    /// Takes a presence token: `Ok` to forward an update now, otherwise how long until one may
    /// go.
    pub fn presence(&mut self, now: Instant) -> Result<(), Duration> {
        match &mut self.presence {
            Some(bucket) => bucket.try_take_one(now),
            None => Ok(()),
        }
    }
}

/// The limits on what one document may hold, checked on every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocLimits {
    /// Fields (`(name, kind)` pairs) per document: `--max-fields`.
    pub max_fields: usize,
    /// Bytes of a new field's name: `--max-field-name-bytes`.
    pub max_field_name_bytes: usize,
    /// Characters in a document's text fields, deleted ones included: `--max-text-chars`.
    pub max_text_chars: u64,
}

impl DocLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> DocLimits {
        DocLimits {
            max_fields: config.max_fields,
            max_field_name_bytes: config.max_field_name_bytes,
            max_text_chars: config.max_text_chars,
        }
    }
}

/// Per client address: how many connections it holds and how many documents it may still
/// create. Shared by the accept loop and the WebSocket sessions.
#[derive(Debug)]
pub struct AddressLimits {
    max_connections: u32,
    new_documents_per_minute: u32,
    /// A `std` mutex: held for a map lookup, never across an `.await`.
    addresses: Mutex<HashMap<IpAddr, AddressEntry>>,
}

#[derive(Debug)]
struct AddressEntry {
    connections: u32,
    new_documents: Option<TokenBucket>,
}

/// Entries beyond this many make an insertion sweep out the idle ones.
const SWEEP_ABOVE: usize = 4096;

/// One connection of an address, counted until dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<AddressLimits>,
    address: IpAddr,
}

impl AddressLimits {
    /// The limits `config` sets.
    pub fn new(config: &Config) -> Arc<AddressLimits> {
        Arc::new(AddressLimits {
            max_connections: config.max_connections_per_address,
            new_documents_per_minute: config.new_documents_per_minute,
            addresses: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, AddressEntry>> {
        self.addresses.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn entry<'a>(&self, map: &'a mut HashMap<IpAddr, AddressEntry>, address: IpAddr) -> &'a mut AddressEntry {
        if map.len() > SWEEP_ABOVE && !map.contains_key(&address) {
            let now = Instant::now();
            map.retain(|_, entry| {
                entry.connections > 0 || entry.new_documents.as_mut().is_some_and(|b| !b.is_full(now))
            });
        }
        map.entry(address).or_insert_with(|| AddressEntry { connections: 0, new_documents: None })
    }

    /// Counts a new connection from `address`; `None` if the address already holds
    /// `--max-connections-per-address`.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<ConnectionPermit> {
        let mut map = self.lock();
        let entry = self.entry(&mut map, address);
        if self.max_connections > 0 && entry.connections >= self.max_connections {
            return None;
        }
        entry.connections += 1;
        Some(ConnectionPermit { limits: Arc::clone(self), address })
    }

    /// How many connections `address` holds.
    pub fn connections(&self, address: IpAddr) -> u32 {
        self.lock().get(&address).map_or(0, |entry| entry.connections)
    }

    /// Counts one document created by `address`; `false` if it has created
    /// `--new-documents-per-minute` in the last minute (a bucket refilling at that rate).
    pub fn allow_new_document(&self, address: IpAddr, now: Instant) -> bool {
        let per_minute = f64::from(self.new_documents_per_minute);
        let mut map = self.lock();
        let entry = self.entry(&mut map, address);
        if entry.new_documents.is_none() {
            entry.new_documents = TokenBucket::new(per_minute / 60.0, per_minute, now);
        }
        entry.new_documents.as_mut().is_none_or(|bucket| bucket.try_take_one(now).is_ok())
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut map = self.limits.lock();
        if let Some(entry) = map.get_mut(&self.address) {
            entry.connections = entry.connections.saturating_sub(1);
            let now = Instant::now();
            if entry.connections == 0 && entry.new_documents.as_mut().is_none_or(|bucket| bucket.is_full(now)) {
                map.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests;

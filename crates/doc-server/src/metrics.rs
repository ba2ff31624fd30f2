//! [`Metrics`]: the server's counters, gauges and histograms, rendered in the Prometheus text
//! exposition format (version 0.0.4) for `GET /metrics`.
//!
//! Hand-written on atomics rather than a metrics crate: a dozen series do not need a registry,
//! and every update is one relaxed atomic add on the hot path (no lock, no allocation).
//!
//! # Invariants
//! - A histogram's bucket counts are cumulative only when rendered; each bucket stores the
//!   observations that fell into it alone, so one observation is one atomic add.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implicit.
const LATENCY_BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// A latency histogram with the fixed [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// One count per bucket, plus the `+Inf` bucket last.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Every metric the server exports. Shared as `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections.
    pub connections: AtomicI64,
    /// Documents loaded in memory (one actor each).
    pub open_documents: AtomicI64,
    /// Changes applied to documents (duplicates excluded).
    pub changes_applied: AtomicU64,
    /// Operations inside those changes.
    pub ops_applied: AtomicU64,
    /// Batches acknowledged as applied.
    pub batches_applied: AtomicU64,
    /// Batches acknowledged as rejected.
    pub batches_rejected: AtomicU64,
    /// Give-backs whose tag vouched for them (relayed changes a restarted server had lost).
    pub give_backs: AtomicU64,
    /// Batches that waited for room in their document's queue (`doc_actor::QUEUED_COST`).
    pub queue_waits: AtomicU64,
    /// Batches rejected because a change was authored as a replica the connection does not own.
    pub ownership_rejections: AtomicU64,
    /// Hellos refused because their replica is in use by another connection or owned by
    /// another author.
    pub replica_refusals: AtomicU64,
    /// Time to apply one batch to the in-memory document.
    pub apply_latency: Histogram,
    /// Time of one durable (fsync'd) commit of the op log.
    pub commit_latency: Histogram,
    /// WebSocket payload bytes received.
    pub bytes_in: AtomicU64,
    /// WebSocket payload bytes sent.
    pub bytes_out: AtomicU64,
    /// Connections closed because their outgoing queue overflowed or a send stalled.
    pub slow_consumer_disconnects: AtomicU64,
    /// Connections closed because they left a ping unanswered for a heartbeat interval.
    pub heartbeat_timeouts: AtomicU64,
    /// Frames refused (malformed, oversized, wrong version, text, out of order).
    pub rejected_frames: AtomicU64,
    /// Messages a connection had to wait for because it was over its change or byte rate.
    pub throttled_messages: AtomicU64,
    /// Connections closed because they stayed over their rate (close 4005).
    pub flood_closes: AtomicU64,
    /// Presence updates dropped because a later one replaced them while over the rate.
    pub presence_coalesced: AtomicU64,
    /// TCP connections refused because their address held `--max-connections-per-address`.
    pub address_refusals: AtomicU64,
    /// Connections refused because their address created too many documents (close 4006).
    pub new_document_refusals: AtomicU64,
    /// Batches rejected for a document limit: fields, field name length, text size (7, 8, 9).
    pub limit_rejections: AtomicU64,
    /// Accepts that failed (out of file descriptors, usually); each is followed by a pause.
    pub accept_errors: AtomicU64,
    /// Documents reloaded from the store to undo a half-applied batch (a bug if ever nonzero:
    /// batches are checked whole before anything applies).
    pub document_rebuilds: AtomicU64,
    /// The process's open-file limit after start (`RLIMIT_NOFILE`, raised to the hard limit).
    pub open_files_limit: AtomicI64,
    /// Time to load a document from the store (snapshot plus log suffix).
    pub load_latency: Histogram,
    /// Snapshots written.
    pub snapshots_written: AtomicU64,
    /// Bytes of op log entries handed to the store.
    pub log_bytes: AtomicU64,
    /// Bytes of snapshots handed to the store.
    pub snapshot_bytes: AtomicU64,
    /// Storage operations that failed.
    pub storage_errors: AtomicU64,
    /// Requests and connections refused for their access token, by [`AUTH_REASONS`].
    pub auth_refusals: [AtomicU64; AUTH_REASONS.len()],
    /// Batches rejected because the connection's link is view-only.
    pub read_only_rejections: AtomicU64,
    /// Heap bytes of the loaded documents, as their actors last measured them.
    pub document_memory: AtomicI64,
    /// Documents unloaded early to stay within `--memory-budget`.
    pub memory_evictions: AtomicU64,
    /// Document opens refused because the budget was spent on documents in use.
    pub memory_refusals: AtomicU64,
    /// Leases claimed (a document this server now owns, in a cluster).
    pub lease_claims: AtomicU64,
    /// Opens that gave up waiting for another server to hand a document over (close 4010).
    pub lease_refusals: AtomicU64,
    /// Documents this server stopped serving because its lease was lost (taken after expiry).
    pub leases_lost: AtomicU64,
    /// Documents handed over to another server that asked for them.
    pub leases_handed_over: AtomicU64,
    /// Writes the store refused because their lease epoch was stale (never acknowledged).
    pub fenced_writes: AtomicU64,
    /// The HTTP API's edits and the webhooks' calls.
    pub http_api: crate::webhooks::WebhookMetrics,
}

/// The `reason` labels of `doc_server_auth_refusals_total` ([`crate::auth::AuthError::label`]).
pub const AUTH_REASONS: [&str; 5] = ["missing", "malformed", "bad_signature", "expired", "forbidden"];

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds 1 to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one refusal for `error`.
    pub fn auth_refusal(&self, error: &crate::auth::AuthError) {
        if let Some(index) = AUTH_REASONS.iter().position(|reason| *reason == error.label()) {
            Metrics::inc(&self.auth_refusals[index]);
        }
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauges = [
            ("doc_server_connections", "Open WebSocket connections.", &self.connections),
            ("doc_server_open_documents", "Documents loaded in memory.", &self.open_documents),
            (
                "doc_server_document_memory_bytes",
                "Heap bytes of the loaded documents, as last measured (at most a second old).",
                &self.document_memory,
            ),
            ("doc_server_open_files_limit", "The process's open-file limit (RLIMIT_NOFILE).", &self.open_files_limit),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        // jemalloc's own counts (the binary's allocator; 0 where it is not in use): what is
        // allocated, and what its pages hold resident (the gap is free memory it keeps).
        if tikv_jemalloc_ctl::epoch::advance().is_ok() {
            let heap = [
                (
                    "doc_server_heap_allocated_bytes",
                    "Bytes allocated (jemalloc).",
                    tikv_jemalloc_ctl::stats::allocated::read(),
                ),
                (
                    "doc_server_heap_resident_bytes",
                    "Bytes in pages jemalloc holds resident, free ones included.",
                    tikv_jemalloc_ctl::stats::resident::read(),
                ),
            ];
            for (name, help, value) in heap {
                if let Ok(value) = value {
                    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
                }
            }
        }
        let counters = [
            ("doc_server_changes_applied_total", "Changes applied (duplicates excluded).", &self.changes_applied),
            ("doc_server_ops_applied_total", "Operations applied (inside applied changes).", &self.ops_applied),
            ("doc_server_batches_applied_total", "Batches acknowledged as applied.", &self.batches_applied),
            ("doc_server_batches_rejected_total", "Batches acknowledged as rejected.", &self.batches_rejected),
            (
                "doc_server_give_backs_total",
                "Give-backs accepted on their relay tag (changes a server had relayed and then lost).",
                &self.give_backs,
            ),
            (
                "doc_server_queue_waits_total",
                "Batches that waited for room in their document's queue (its connection read nothing meanwhile).",
                &self.queue_waits,
            ),
            (
                "doc_server_ownership_rejections_total",
                "Batches rejected because a change was authored as a replica the connection does not own.",
                &self.ownership_rejections,
            ),
            (
                "doc_server_replica_refusals_total",
                "Hellos refused: their replica was in use by another connection or owned by another author.",
                &self.replica_refusals,
            ),
            ("doc_server_bytes_in_total", "WebSocket payload bytes received.", &self.bytes_in),
            ("doc_server_bytes_out_total", "WebSocket payload bytes sent.", &self.bytes_out),
            (
                "doc_server_slow_consumer_disconnects_total",
                "Connections closed because their outgoing queue overflowed or a send stalled.",
                &self.slow_consumer_disconnects,
            ),
            (
                "doc_server_heartbeat_timeouts_total",
                "Connections closed after leaving a ping unanswered for a heartbeat interval.",
                &self.heartbeat_timeouts,
            ),
            (
                "doc_server_rejected_frames_total",
                "Frames refused as malformed, oversized or out of protocol.",
                &self.rejected_frames,
            ),
            (
                "doc_server_throttled_messages_total",
                "Messages that waited because their connection was over its change or byte rate.",
                &self.throttled_messages,
            ),
            (
                "doc_server_flood_closes_total",
                "Connections closed for staying over their rate (close 4005).",
                &self.flood_closes,
            ),
            (
                "doc_server_presence_coalesced_total",
                "Presence updates dropped for a later one while over the presence rate.",
                &self.presence_coalesced,
            ),
            (
                "doc_server_address_refusals_total",
                "TCP connections refused (HTTP 429) because their address held too many.",
                &self.address_refusals,
            ),
            (
                "doc_server_new_document_refusals_total",
                "Connections refused (close 4006) because their address created too many documents.",
                &self.new_document_refusals,
            ),
            (
                "doc_server_limit_rejections_total",
                "Batches rejected for a document limit: fields, field name length or text size.",
                &self.limit_rejections,
            ),
            (
                "doc_server_accept_errors_total",
                "Accepts that failed (file descriptors exhausted).",
                &self.accept_errors,
            ),
            (
                "doc_server_document_rebuilds_total",
                "Documents reloaded to undo a half-applied batch (0 unless a check is wrong).",
                &self.document_rebuilds,
            ),
            ("doc_server_snapshots_written_total", "Document snapshots written.", &self.snapshots_written),
            ("doc_server_log_bytes_total", "Bytes of op log entries handed to the store.", &self.log_bytes),
            ("doc_server_snapshot_bytes_total", "Bytes of snapshots handed to the store.", &self.snapshot_bytes),
            ("doc_server_storage_errors_total", "Storage operations that failed.", &self.storage_errors),
            (
                "doc_server_memory_evictions_total",
                "Documents nobody had open, unloaded early to stay within --memory-budget.",
                &self.memory_evictions,
            ),
            (
                "doc_server_memory_refusals_total",
                "Document opens refused: the memory budget was spent on documents in use.",
                &self.memory_refusals,
            ),
            ("doc_server_lease_claims_total", "Document leases claimed by this server.", &self.lease_claims),
            (
                "doc_server_lease_refusals_total",
                "Opens that gave up waiting for another server to hand the document over (4010).",
                &self.lease_refusals,
            ),
            ("doc_server_leases_lost_total", "Documents dropped because their lease was lost.", &self.leases_lost),
            (
                "doc_server_leases_handed_over_total",
                "Documents handed over to another server that asked for them.",
                &self.leases_handed_over,
            ),
            (
                "doc_server_fenced_writes_total",
                "Writes refused by the store because their lease epoch was stale (never acknowledged).",
                &self.fenced_writes,
            ),
            (
                "doc_server_read_only_rejections_total",
                "Batches rejected because the connection's link is view-only.",
                &self.read_only_rejections,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        self.http_api.render(&mut out);
        let name = "doc_server_auth_refusals_total";
        let _ = writeln!(out, "# HELP {name} Requests and connections refused for their access token, by reason.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (reason, value) in AUTH_REASONS.iter().zip(&self.auth_refusals) {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {}", value.load(Ordering::Relaxed));
        }
        self.apply_latency.render(
            &mut out,
            "doc_server_apply_latency_seconds",
            "Time to apply one batch of changes to the in-memory document.",
        );
        self.commit_latency.render(
            &mut out,
            "doc_server_commit_latency_seconds",
            "Time of one durable (fsync'd) op log commit.",
        );
        self.load_latency.render(
            &mut out,
            "doc_server_load_seconds",
            "Time to load a document from the store (snapshot plus log suffix).",
        );
        out
    }
}

/// Increments a gauge on creation and decrements it on drop, so early returns cannot leak it.
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl<'a> GaugeGuard<'a> {
    /// Increments `gauge` until the guard is dropped.
    pub fn new(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_when_rendered() {
        let metrics = Metrics::default();
        metrics.commit_latency.observe(Duration::from_micros(50));
        metrics.commit_latency.observe(Duration::from_millis(3));
        metrics.commit_latency.observe(Duration::from_secs(5));
        let text = metrics.render();
        assert!(text.contains("doc_server_commit_latency_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("doc_server_commit_latency_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("doc_server_commit_latency_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("doc_server_commit_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("doc_server_commit_latency_seconds_count 3\n"));
    }

    #[test]
    fn gauge_guard_restores_the_gauge() {
        let metrics = Metrics::default();
        {
            let _a = GaugeGuard::new(&metrics.connections);
            let _b = GaugeGuard::new(&metrics.connections);
            assert_eq!(metrics.connections.load(Ordering::Relaxed), 2);
        }
        assert_eq!(metrics.connections.load(Ordering::Relaxed), 0);
        assert!(metrics.render().contains("doc_server_connections 0\n"));
    }
}

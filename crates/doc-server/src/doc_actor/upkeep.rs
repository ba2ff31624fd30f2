//! What the actor does after each round besides answering: measuring the document's heap
//! for the memory gauge and budget, and recording its title for listings.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::DocActor;
use crate::metrics::Metrics;

/// How often at most an actor measures its document's heap.
pub(super) const MEASURE_EVERY: Duration = Duration::from_secs(1);

/// The register the editor keeps a document's title in (`wasm_client::session::TITLE`).
const TITLE_FIELD: &str = "title";
/// The longest title recorded for listings, in bytes (a longer one is cut at a character).
const MAX_LISTED_TITLE: usize = 200;

impl DocActor {
    /// Measures the document's heap and publishes it (to `status` and the gauge), at most every
    /// [`MEASURE_EVERY`]: the measure walks the text's runs.
    pub(super) fn publish_memory(&mut self) {
        if self.measured.1.elapsed() >= MEASURE_EVERY {
            self.measure();
        } else {
            self.memory_stale = true;
        }
    }

    /// Records the title for listings when it changed (in the background: a listing may lag,
    /// the document never waits for it).
    pub(super) fn list_title(&mut self) {
        let Some(title) = self.doc.register(TITLE_FIELD) else { return };
        if self.listed_title.as_deref() == Some(title) {
            return;
        }
        let mut end = title.len().min(MAX_LISTED_TITLE);
        while !title.is_char_boundary(end) {
            end -= 1;
        }
        self.listed_title = Some(title.to_owned());
        let (store, id, title) = (Arc::clone(&self.ctx.store), self.id.clone(), title[..end].to_owned());
        let metrics = Arc::clone(&self.ctx.metrics);
        self.ctx.tracker.spawn_blocking(move || {
            if let Err(error) = store.set_title(&id, &title) {
                Metrics::inc(&metrics.storage_errors);
                tracing::warn!(doc_id = %id, %error, "could not record the title for listings");
            }
        });
    }

    pub(super) fn measure(&mut self) {
        let bytes = i64::try_from(self.doc.heap_size()).unwrap_or(i64::MAX);
        self.ctx.metrics.document_memory.fetch_add(bytes - self.measured.0, Ordering::Relaxed);
        self.status.memory.store(u64::try_from(bytes).unwrap_or(0), Ordering::Relaxed);
        self.measured = (bytes, Instant::now());
        self.memory_stale = false;
    }
}

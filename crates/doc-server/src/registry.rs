//! [`DocRegistry`]: which documents are loaded, each with the handle of its actor.
//!
//! Documents load lazily: the first [`DocRegistry::open`] of an id spawns its actor (which
//! loads the snapshot and the log before it answers anything). An actor that unloads (idle) or
//! fails removes its own entry, identified by its *generation*, so it can never remove a newer
//! actor of the same id. A caller holding the handle of an actor that just unloaded sees its
//! send fail (or its join refused) and opens the id again, which spawns a fresh actor.
//!
//! The map is behind a `std::sync::Mutex`: it is held only to look up or insert, never across
//! an `.await`, so the blocking mutex is the right tool (as in mini-redis).
//!
//! **Memory budget.** Each actor publishes its document's heap size (measured at most every
//! second) and whether anyone has it open. Before a new document loads, the registry adds up
//! what the loaded ones use; above `--memory-budget`, it asks the documents nobody has open to
//! unload, least recently used first, until enough would be freed; if none can go, the new
//! document is refused for now ([`ServerError::OverBudget`]: close 1013, HTTP 503). A document
//! already loaded is never refused, so the people in it keep working.
//!
//! # Invariants
//! - At most one live actor per document id, and it is the one in the map.
//! - No actor is spawned once shutdown has begun.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::Instrument;

use crate::doc_actor::{self, ActorContext, DocHandle};
use crate::{DocId, ServerError};

/// The loaded documents; see the module docs.
pub struct DocRegistry {
    docs: Mutex<HashMap<DocId, DocHandle>>,
    next_generation: AtomicU64,
    ctx: ActorContext,
}

impl DocRegistry {
    /// What its actors use.
    pub fn context(&self) -> &ActorContext {
        &self.ctx
    }

    /// An empty registry whose actors use `ctx`.
    pub fn new(ctx: ActorContext) -> Arc<DocRegistry> {
        Arc::new(DocRegistry { docs: Mutex::new(HashMap::new()), next_generation: AtomicU64::new(1), ctx })
    }

    /// The handle of `id`'s actor, spawning it if the document is not loaded.
    pub fn open(self: &Arc<Self>, id: &DocId) -> Result<DocHandle, ServerError> {
        if self.ctx.shutdown.is_cancelled() {
            return Err(ServerError::ShuttingDown);
        }
        let mut docs = self.docs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(handle) = docs.get(id).filter(|handle| !handle.is_closed()) {
            return Ok(handle.clone());
        }
        self.make_room(&docs)?;
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (handle, rx) = doc_actor::channel(generation);
        docs.insert(id.clone(), handle.clone());
        // A root span: the actor outlives the connection that happened to spawn it.
        let span = tracing::info_span!(parent: None, "doc", doc_id = %id, generation);
        let status = Arc::clone(handle.status());
        let actor = doc_actor::run(id.clone(), generation, status, rx, Arc::downgrade(self), self.ctx.clone());
        self.ctx.tracker.spawn(actor.instrument(span));
        Ok(handle)
    }

    /// Keeps the loaded documents within the memory budget before one more loads: asks the
    /// least recently used documents nobody has open to unload; refuses when none can.
    fn make_room(&self, docs: &HashMap<DocId, DocHandle>) -> Result<(), ServerError> {
        let budget = self.ctx.config.memory_budget;
        let used: u64 = docs.values().map(|handle| handle.status().memory.load(Ordering::Relaxed)).sum();
        if used < budget {
            return Ok(());
        }
        // Free down to 90 % of the budget, so that the next opens do not each evict one.
        let mut to_free = used - budget / 10 * 9;
        let mut idle: Vec<(&DocId, &DocHandle)> = docs
            .iter()
            .filter(|(_, handle)| !handle.is_closed() && handle.status().connections.load(Ordering::Relaxed) == 0)
            .collect();
        idle.sort_by_key(|(_, handle)| handle.status().last_used_ms.load(Ordering::Relaxed));
        let mut asked = 0;
        for (id, handle) in idle {
            if to_free == 0 {
                break;
            }
            if handle.request_unload() {
                tracing::info!(doc_id = %id, used, budget, "over the memory budget: unloading a document nobody has open");
                to_free = to_free.saturating_sub(handle.status().memory.load(Ordering::Relaxed));
                asked += 1;
            }
        }
        if asked == 0 {
            crate::metrics::Metrics::inc(&self.ctx.metrics.memory_refusals);
            tracing::warn!(
                used,
                budget,
                "over the memory budget and every loaded document is in use: refusing to load one more"
            );
            return Err(ServerError::OverBudget);
        }
        Ok(())
    }

    /// The handle of `id`'s actor if the document is loaded.
    pub fn get(&self, id: &DocId) -> Option<DocHandle> {
        let docs = self.docs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        docs.get(id).filter(|handle| !handle.is_closed()).cloned()
    }

    /// Every loaded document with its actor's handle.
    pub fn loaded(&self) -> Vec<(DocId, DocHandle)> {
        let docs = self.docs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        docs.iter().filter(|(_, handle)| !handle.is_closed()).map(|(id, handle)| (id.clone(), handle.clone())).collect()
    }

    /// How many documents are loaded.
    pub fn len(&self) -> usize {
        self.docs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Whether no document is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps this server's leases alive while the server runs (a store without leases: returns
    /// at once). Every third of `--lease-ttl` it renews them all in one statement, then tells
    /// each loaded document what the store said: an actor whose lease is gone (taken after it
    /// expired: this server was frozen or cut off) stops serving; one another server asked for
    /// is handed over, once it has been held for a third of a lease time. When renewals fail for a whole lease time, every document is dropped:
    /// this server can no longer tell whether it owns them.
    pub async fn keep_leases(self: Arc<Self>) {
        let ttl = self.ctx.config.lease_ttl;
        let interval = (ttl / 3).max(std::time::Duration::from_millis(50));
        let mut last_renewed = tokio::time::Instant::now();
        let hold_ms = u64::try_from((ttl / 3).as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.ctx.shutdown.cancelled() => return,
            }
            // Listed before the renewal: a document claimed after this list is judged next time.
            let loaded: Vec<(DocId, DocHandle, u64)> = self
                .loaded()
                .into_iter()
                .map(|(id, handle)| {
                    let epoch = handle.status().epoch.load(Ordering::Relaxed);
                    (id, handle, epoch)
                })
                .filter(|(_, _, epoch)| *epoch > 0)
                .collect();
            let store = Arc::clone(&self.ctx.store);
            let renewed = tokio::task::spawn_blocking(move || store.renew()).await;
            match renewed {
                Ok(Ok(None)) => return,
                Ok(Ok(Some(renewal))) => {
                    last_renewed = tokio::time::Instant::now();
                    for (id, handle, epoch) in loaded {
                        match renewal.held.get(&id) {
                            Some((held, wanted)) if *held == epoch => {
                                // Held for a while before it moves again, so that a proxy
                                // that disagrees with itself for a moment (a server just
                                // marked down or back up) cannot bounce a document to and fro.
                                let claimed = handle.status().claimed_ms.load(Ordering::Relaxed);
                                let held_ms = crate::storage::now_ms().saturating_sub(claimed);
                                if *wanted && held_ms >= hold_ms {
                                    handle.lease_news(false).await;
                                }
                            }
                            _ => handle.lease_news(true).await,
                        }
                    }
                }
                Ok(Err(error)) => {
                    crate::metrics::Metrics::inc(&self.ctx.metrics.storage_errors);
                    tracing::warn!(%error, "could not renew the leases");
                    if last_renewed.elapsed() >= ttl {
                        tracing::error!("no lease renewed for a whole lease time: dropping every document");
                        for (_, handle, _) in loaded {
                            handle.lease_news(true).await;
                        }
                    }
                }
                Err(error) => tracing::error!(%error, "the lease renewal task failed"),
            }
        }
    }

    /// Removes `id`'s entry if it still belongs to the actor of `generation`.
    pub(crate) fn remove(&self, id: &DocId, generation: u64) {
        let mut docs = self.docs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if docs.get(id).is_some_and(|handle| handle.generation() == generation) {
            docs.remove(id);
        }
    }
}

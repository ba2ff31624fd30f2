//! The document's lease in a store several servers share (see `storage.rs` and ARCHITECTURE.md,
//! "Several servers"): claimed before the document loads, released when it unloads or is
//! handed over, and the actor's retreat when the lease is lost or wanted elsewhere.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{retire, retire_from_registry, ActorContext, ConnId, DocActor, JoinRefused, KickReason};
use crate::metrics::Metrics;
use crate::storage::{Claim, Epoch, StoreError};
use crate::DocId;

/// How often a document held elsewhere is claimed again while its connections wait.
const CLAIM_RETRY: Duration = Duration::from_millis(200);

/// Takes the document's lease before it is loaded (see `storage.rs`): at once when nobody holds
/// it; when another server does, that server is asked to hand it over and the claim is retried
/// until `--claim-wait`, while the connections wait for their welcome.
pub(super) async fn claim(ctx: &ActorContext, id: &DocId) -> Result<Epoch, JoinRefused> {
    let deadline = Instant::now() + ctx.config.claim_wait;
    loop {
        let (store, doc) = (Arc::clone(&ctx.store), id.clone());
        let claimed = tokio::task::spawn_blocking(move || store.claim(&doc))
            .await
            .map_err(|error| JoinRefused::Failed(error.to_string()))?;
        match claimed {
            Ok(Claim::Owned(epoch)) => {
                if epoch > 0 {
                    tracing::info!(epoch, "lease claimed");
                    Metrics::inc(&ctx.metrics.lease_claims);
                }
                return Ok(epoch);
            }
            Ok(Claim::Elsewhere(owner)) if Instant::now() < deadline => {
                tracing::debug!(%owner, "the document is held by another server; asked for it");
            }
            Ok(Claim::Elsewhere(owner)) => {
                tracing::info!(%owner, "the document stays with another server: connections told to reconnect");
                Metrics::inc(&ctx.metrics.lease_refusals);
                return Err(JoinRefused::Moved);
            }
            Err(error) => {
                tracing::warn!(%error, "could not claim the document's lease");
                Metrics::inc(&ctx.metrics.storage_errors);
                return Err(JoinRefused::Failed(error.to_string()));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CLAIM_RETRY) => {}
            _ = ctx.shutdown.cancelled() => return Err(JoinRefused::Unloading),
        }
    }
}

/// Gives the lease up so that another server can claim the document at once.
pub(super) async fn release(ctx: &ActorContext, id: &DocId, epoch: Epoch) -> Result<(), StoreError> {
    if epoch == 0 {
        return Ok(());
    }
    let (store, doc) = (Arc::clone(&ctx.store), id.clone());
    let released = tokio::task::spawn_blocking(move || store.release(&doc, epoch))
        .await
        .map_err(|error| StoreError::Config(error.to_string()))?;
    if let Err(error) = &released {
        tracing::warn!(%error, "could not release the lease (it expires by itself)");
    }
    released
}

impl DocActor {
    /// Stops serving the document because another server owns it or asked for it: every
    /// connection is told to reconnect (close 4010; the proxy takes it to the owner) and the
    /// actor retires. A document handed over (`lost == false`) had its round committed first
    /// and releases its lease; a lost one has nothing it could still write.
    pub(super) async fn move_away(&mut self, lost: bool) {
        if lost {
            tracing::warn!(epoch = self.epoch, "lease lost: another server owns the document now");
            Metrics::inc(&self.ctx.metrics.leases_lost);
        } else {
            tracing::info!(epoch = self.epoch, "handing the document over to the server that asked for it");
            Metrics::inc(&self.ctx.metrics.leases_handed_over);
        }
        let conns: Vec<ConnId> = self.peers.keys().copied().collect();
        for conn in conns {
            self.dropped.push((conn, Some(KickReason::Moved)));
        }
        self.settle_dropped();
        retire_from_registry(&self.registry, &self.id, self.generation);
        if !lost {
            let _ = release(&self.ctx, &self.id, self.epoch).await;
        }
        retire(&self.registry, &self.id, self.generation, &mut self.rx, JoinRefused::Moved, None).await;
    }
}

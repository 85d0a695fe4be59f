//! The background sweeper: expired leases go back to their queues, and finished tasks older
//! than their instance's retention are purged.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::config::Retention;
use crate::domain::now_millis;
use crate::error::Result;

/// Retention is checked this many sweeps apart: it is a bulk delete, leases are not.
const RETENTION_EVERY: u64 = 600;
/// Open delegations are re-driven this many sweeps apart.
const RECOVER_EVERY: u64 = 30;
const RECOVER_GRACE_MS: i64 = 60_000;

pub fn spawn_sweeper(engine: Engine, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis(engine.configs().root.server.sweep_interval_ms.max(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = engine
                .inner
                .registry
                .process_heartbeat(&engine.inner.boot_id, now_millis())
                .await
            {
                tracing::warn!(error = %e, "process heartbeat failed");
            }
            if let Err(e) = engine.sweep_leases().await {
                tracing::warn!(error = %e, "lease sweep failed");
            }
            // Also finishes bubbles a transient error interrupted, and runs of dead processes.
            if n.is_multiple_of(RECOVER_EVERY)
                && n > 0
                && let Err(e) = engine.recover_older_than(RECOVER_GRACE_MS).await
            {
                tracing::warn!(error = %e, "periodic recovery failed");
            }
            if n.is_multiple_of(RECOVER_EVERY)
                && let Err(e) = engine.close_idle_projects().await
            {
                tracing::warn!(error = %e, "closing idle projects failed");
            }
            if n.is_multiple_of(RETENTION_EVERY)
                && let Err(e) = engine.sweep_retention().await
            {
                tracing::warn!(error = %e, "retention sweep failed");
            }
            n = n.wrapping_add(1);
        }
    })
}

impl Engine {
    /// Returns every task whose lease ran out to its queue; the count is returned.
    pub async fn sweep_leases(&self) -> Result<usize> {
        let now = now_millis();
        let mut n = 0;
        for store in self.inner.stores.all().await {
            let expired = store.expire_leases(now).await?;
            for t in &expired {
                tracing::info!(task = %t.id, instance = %t.instance_id, "lease expired; task re-queued");
            }
            n += expired.len();
        }
        if n > 0 {
            metrics::counter!("hopper_leases_expired_total").increment(n as u64);
        }
        Ok(n)
    }

    /// Purges finished tasks and inbound events past their instance's retention; the number
    /// of rows purged.
    pub async fn sweep_retention(&self) -> Result<u64> {
        let now = now_millis();
        let nodes: Vec<_> = self.inner.nodes.read().await.values().cloned().collect();
        let mut purged = 0;
        let mut events = 0;
        for node in nodes {
            let persistence = &node.config.persistence;
            if let Retention::For(keep) = persistence.retention {
                let before = now - keep.as_millis() as i64;
                purged += node.store.purge_finished(node.id(), before).await?;
            }
            if let Retention::For(keep) = persistence.inbound_retention {
                let before = now - keep.as_millis() as i64;
                events += node.store.purge_inbound(node.id().as_str(), before).await?;
            }
        }
        if purged > 0 {
            tracing::info!(purged, "finished tasks past retention purged");
        }
        if events > 0 {
            tracing::info!(events, "inbound events past retention purged");
        }
        Ok(purged + events)
    }
}

//! The episode indexer: fills SQLite's full-text index of episodes after the commits that
//! recorded them (migration 17 says why not inside them).
//!
//! Small batches, often: one statement holds the single writer for as long as it indexes, and
//! a webhook's commit waits behind it. Indexing what a second of ingest recorded in one go put
//! 60-100 ms into paced ingest's p99 (2,000 webhooks/s, `cargo bench --bench inbound`); 500
//! episodes every 200 ms keep each hold short and are still ~100 times the rows of a group
//! commit's batch, which is what makes indexing cheaper here than in the commit.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::error::Result;

const EVERY: Duration = Duration::from_millis(200);
/// Episodes per statement.
const BATCH: i64 = 500;
/// Statements per store per round at most: 25,000 episodes a second, more than SQLite ingests,
/// so a backlog shrinks; the writer's queue is fair, so commits go between them.
const BATCHES: usize = 10;

pub fn spawn_indexer(engine: Engine, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !engine.inner.stores.memory {
            return;
        }
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = engine.index_episodes().await {
                tracing::warn!(error = %e, "episode indexing failed; the next round retries");
            }
        }
    })
}

impl Engine {
    /// Adds the episodes recorded since the last round to the full-text index of every open
    /// store (`Store::index_episodes`; a search catches up by itself too).
    pub async fn index_episodes(&self) -> Result<()> {
        if !self.inner.stores.memory {
            return Ok(());
        }
        for store in self.inner.stores.all().await {
            for _ in 0..BATCHES {
                if !store.index_episodes(BATCH).await? {
                    break;
                }
            }
        }
        Ok(())
    }
}

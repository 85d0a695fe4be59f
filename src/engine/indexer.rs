//! The episode indexer: fills the full-text index of episodes after the commits that recorded
//! them (SQLite's migration 17 and PostgreSQL's 19 say why not inside them).
//!
//! Small batches, often: on SQLite one statement holds the single writer for as long as it
//! indexes, and a webhook's commit waits behind it. Indexing what a second of ingest recorded
//! in one go put 60-100 ms into paced ingest's p99 (2,000 webhooks/s, `cargo bench --bench
//! inbound`); 500 episodes every 200 ms keep each hold short and are still ~100 times the rows
//! of a group commit's batch, which is what makes indexing cheaper here than in the commit.
//!
//! And it waits while a burst lasts: in a round in which more than [`BUSY`] episodes were
//! recorded it indexes only what waits beyond [`BACKLOG`]. The index is derived and a search
//! catches up first, so nothing is lost by waiting, while indexing beside a burst took a fifth
//! of the burst's throughput on PostgreSQL (40,000 webhooks, 64 clients: 3,659-4,430
//! deliveries/s indexing all along, 4,585-5,297 waiting; with episodes off 5,647-5,847).
//! [`BACKLOG`] bounds what a search may have to index first, and makes a sustained load pay
//! for its index as it goes.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::error::Result;
use crate::store::{Store, StoreKey};

const EVERY: Duration = Duration::from_millis(200);
/// Episodes per statement.
const BATCH: i64 = 500;
/// Statements per store per round at most: 25,000 episodes a second, more than SQLite ingests,
/// so a backlog shrinks; the writer's queue is fair, so commits go between them.
const BATCHES: usize = 10;
/// Episodes recorded in one round (200 ms) above which ingest counts as busy: 1,000 a second.
const BUSY: i64 = 200;
/// Episodes left waiting at most while ingest is busy: about four seconds of a burst.
const BACKLOG: i64 = 20_000;

pub fn spawn_indexer(engine: Engine, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !engine.inner.stores.memory {
            return;
        }
        let mut tick = tokio::time::interval(EVERY);
        let mut seen = HashMap::new();
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = engine.index_episodes_unless_busy(&mut seen).await {
                tracing::warn!(error = %e, "episode indexing failed; the next round retries");
            }
        }
    })
}

impl Engine {
    /// One round of the indexer: every store, except one whose ingest is busy (module docs).
    /// `seen`: each store's newest episode at the last round.
    async fn index_episodes_unless_busy(&self, seen: &mut HashMap<StoreKey, i64>) -> Result<()> {
        if !self.inner.stores.memory {
            return Ok(());
        }
        for store in self.inner.stores.all().await {
            let latest = store.latest_episode_seq().await?;
            let before = seen.insert(store.key().clone(), latest).unwrap_or(latest);
            let batches = match latest - before > BUSY {
                false => BATCHES,
                true => beyond_backlog(store.unindexed_episodes().await?),
            };
            index_store(&store, batches).await?;
        }
        Ok(())
    }

    /// Adds the episodes recorded since the last round to the full-text index of every open
    /// store (`Store::index_episodes`; a search catches up by itself too).
    pub async fn index_episodes(&self) -> Result<()> {
        if !self.inner.stores.memory {
            return Ok(());
        }
        for store in self.inner.stores.all().await {
            index_store(&store, BATCHES).await?;
        }
        Ok(())
    }
}

/// Batches to index while ingest is busy, `waiting` episodes unindexed: what exceeds
/// [`BACKLOG`], rounded up, at most a round's.
fn beyond_backlog(waiting: i64) -> usize {
    let over = (waiting - BACKLOG).max(0);
    usize::try_from((over + BATCH - 1) / BATCH).map_or(BATCHES, |n| n.min(BATCHES))
}

async fn index_store(store: &Store, batches: usize) -> Result<()> {
    for _ in 0..batches {
        if !store.index_episodes(BATCH).await? {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_round_indexes_only_the_excess_over_the_backlog() {
        assert_eq!(beyond_backlog(0), 0);
        assert_eq!(beyond_backlog(BACKLOG), 0);
        assert_eq!(beyond_backlog(BACKLOG + 1), 1);
        assert_eq!(beyond_backlog(BACKLOG + BATCH + 1), 2);
        assert_eq!(
            beyond_backlog(BACKLOG + BATCH * BATCHES as i64 * 3),
            BATCHES
        );
    }
}

//! Group commit on PostgreSQL.
//!
//! Under webhook load the server spent most of its CPU starting and finishing statements and
//! transactions, not changing rows: every delivery was its own statement touching the same
//! dozen tables and indexes. So writes of one kind queue here and go in together: one
//! statement takes a whole batch (its columns travel as arrays and are `unnest`ed), one commit
//! finishes it, and each caller learns whether its write took effect. A few batches run at
//! once, so the next one fills while the last one commits.
//!
//! A batch that fails is retried item by item, so one bad item never fails the others.

use std::collections::HashSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;
use tracing::field::Empty;

use crate::store::error::{StoreError, StoreResult};

const MAX_BATCH: usize = 128;
/// Batches in flight at once.
pub(super) const IN_FLIGHT: usize = 4;

/// A write that can go into a batch statement.
pub(super) trait Batched: Send + Sync + Sized + 'static {
    /// What names the item in the statement's answer.
    fn key(&self) -> &str;
    /// Writes the items in one statement; returns the keys of those that took effect.
    fn write<'a>(
        pool: &'a PgPool,
        items: &'a [&'a Self],
    ) -> BoxFuture<'a, StoreResult<HashSet<String>>>;
}

struct Queued<T> {
    item: T,
    reply: oneshot::Sender<StoreResult<bool>>,
}

/// Handle to one kind of batched write on one database. Cheap to clone.
pub(super) struct PgBatcher<T> {
    tx: mpsc::Sender<Queued<T>>,
}

impl<T> Clone for PgBatcher<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T> std::fmt::Debug for PgBatcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgBatcher")
    }
}

impl<T: Batched> PgBatcher<T> {
    /// `name` labels the batch-size metric.
    pub fn start(pool: PgPool, name: &'static str) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, rx, name));
        Self { tx }
    }

    /// Writes `item` with whatever else is queued; true if it took effect.
    pub async fn write(&self, item: T) -> StoreResult<bool> {
        let (reply, rx) = oneshot::channel();
        let closed = || StoreError::Database(sqlx::Error::PoolClosed);
        self.tx
            .send(Queued { item, reply })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

async fn run<T: Batched>(pool: PgPool, mut rx: mpsc::Receiver<Queued<T>>, name: &'static str) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // A free slot first: while every slot is busy, writes pile up into the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let queued = std::mem::take(&mut batch);
        let pool = pool.clone();
        // Debug level: with the level off this is one cached check, nothing is formatted.
        let span = tracing::debug_span!(
            parent: None,
            "pg_batch",
            write = name,
            size = queued.len(),
            outcome = Empty,
            took_effect = Empty
        );
        tokio::spawn(
            async move {
                metrics::histogram!("hopper_store_pg_batch_size", "write" => name)
                    .record(queued.len() as f64);
                commit(&pool, queued).await;
                drop(slot);
            }
            .instrument(span),
        );
    }
}

async fn commit<T: Batched>(pool: &PgPool, queued: Vec<Queued<T>>) {
    let items: Vec<&T> = queued.iter().map(|q| &q.item).collect();
    let span = tracing::Span::current();
    match T::write(pool, &items).await {
        Ok(done) => {
            span.record("outcome", "committed");
            span.record("took_effect", done.len());
            for q in queued {
                let _ = q.reply.send(Ok(done.contains(q.item.key())));
            }
        }
        Err(e) if queued.len() == 1 => {
            span.record("outcome", "failed");
            if let Some(q) = queued.into_iter().next() {
                let _ = q.reply.send(Err(e));
            }
        }
        Err(_) => {
            // Retried item by item: `took_effect` counts the items whose write took effect.
            let mut took_effect = 0usize;
            let mut failed = false;
            for q in queued {
                let result = T::write(pool, &[&q.item]).await;
                match &result {
                    Ok(done) if !done.is_empty() => took_effect += 1,
                    Ok(_) => {}
                    Err(_) => failed = true,
                }
                let _ = q.reply.send(result.map(|done| !done.is_empty()));
            }
            span.record(
                "outcome",
                if failed {
                    "retried_with_errors"
                } else {
                    "retried"
                },
            );
            span.record("took_effect", took_effect);
        }
    }
}

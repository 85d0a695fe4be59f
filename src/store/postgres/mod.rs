//! The PostgreSQL backend: one database that several Hopper processes may share (claims use
//! `FOR UPDATE SKIP LOCKED`; in-memory runs record their owning process).
//!
//! **Single statements.** A task write is one statement: a data-modifying CTE does the
//! conditional change and appends its history event (one round trip, an implicit transaction
//! instead of BEGIN, UPDATE, INSERT, COMMIT). Many connections commit in parallel and the server
//! groups their WAL flushes.
//!
//! **Relaxed pool.** Writes that start-up recovery redoes anyway (routing an inbound task,
//! inserting a delegated child task, delegation bookkeeping) use a second pool with
//! `synchronous_commit=off`: they do not wait for the WAL flush, and since PostgreSQL never
//! reorders commits, losing a suffix in a crash leaves a state recovery already handles. The
//! write a 2xx promises stays synchronous.
//!
//! **Batchers** (`batch`). The two writes every webhook makes, recording it (`record`) and
//! routing its task (`route`), queue up per kind and go in as one statement over `unnest`ed
//! arrays, up to four batches in flight; each caller learns whether its row took effect, and a
//! failed batch is retried item by item. Per-statement overhead, not row work, was what the
//! server spent its CPU on. The route batcher has connections of its own that plan index
//! lookups only: with the statistics of fast-growing tables the planner otherwise chose bitmap
//! and hash plans that walked every pending task.

mod batch;
mod record;
mod route;

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub(in crate::store) use record::Record;
pub(in crate::store) use route::Route;

use super::error::StoreResult;
use batch::PgBatcher;

/// One PostgreSQL database: its pools and batchers. Cheap to clone.
#[derive(Clone, Debug)]
pub(in crate::store) struct PgBackend {
    pool: PgPool,
    /// Commits that do not wait for the WAL flush, for writes that recovery redoes (see the
    /// module docs).
    relaxed: PgPool,
    /// Group commit for inbound records.
    records: PgBatcher<Record>,
    /// Group commit for routing stored tasks, on connections of its own (`open_route`).
    routes: PgBatcher<Route>,
}

impl PgBackend {
    pub async fn open(url: &str, size: Option<u32>) -> StoreResult<Self> {
        let pool = open_main(url, size).await?;
        let relaxed = open_relaxed(url).await?;
        let records = PgBatcher::start(pool.clone(), "inbound");
        let routes = PgBatcher::start(open_route(url).await?, "route");
        Ok(Self {
            pool,
            relaxed,
            records,
            routes,
        })
    }

    /// Reads, and writes whose answer promises they are on disk.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// For writes recovery redoes if a crash loses them (see the module docs).
    pub fn relaxed(&self) -> &PgPool {
        &self.relaxed
    }

    /// Records an inbound event with whatever else is queued; true if it was new.
    pub async fn record(&self, record: Record) -> StoreResult<bool> {
        self.records.write(record).await
    }

    /// Routes a pending task with whatever else is queued; true if it was still pending.
    pub async fn route(&self, route: Route) -> StoreResult<bool> {
        self.routes.write(route).await
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn open_main(url: &str, size: Option<u32>) -> StoreResult<PgPool> {
    // No ping before every acquire (a full round trip per statement): idle and lifetime limits
    // retire old connections, and a connection that died anyway fails one statement, is
    // dropped by the pool, and the next acquire opens a fresh one.
    Ok(PgPoolOptions::new()
        .max_connections(size.unwrap_or(16))
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?)
}

/// Connections with `synchronous_commit=off`, for writes that recovery re-drives anyway: their
/// commit does not wait for the WAL flush.
async fn open_relaxed(url: &str) -> StoreResult<PgPool> {
    let opts = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "off")]);
    Ok(PgPoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await?)
}

/// The route batcher's connections (`route`): relaxed commits like the pool above, and plans
/// made of index lookups only. Each route in a batch is one primary-key lookup per table; left
/// to itself, the planner may instead AND in a bitmap of the partial index of pending tasks
/// (which walks every pending task, the project queues included) or hash-join a full scan of
/// the events. With the statistics of a table that grows fast (a fresh database under load)
/// that halved throughput.
async fn open_route(url: &str) -> StoreResult<PgPool> {
    let opts = PgConnectOptions::from_str(url)?.options([
        ("synchronous_commit", "off"),
        ("enable_bitmapscan", "off"),
        ("enable_seqscan", "off"),
        ("enable_hashjoin", "off"),
        ("enable_mergejoin", "off"),
    ]);
    Ok(PgPoolOptions::new()
        .max_connections(batch::IN_FLIGHT as u32)
        .test_before_acquire(false)
        .idle_timeout(Duration::from_secs(300))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await?)
}

//! The PostgreSQL backend: one database that several `hopper serve` processes may share.
//!
//! **What processes share**: everything stored (registry, tasks and their leases, delegations,
//! inbound events). Each runs the migrations at open, under sqlx's advisory lock, so they
//! apply once. An instance another process created is found in the registry on first use
//! (`Engine::node`). A claim is one `UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)`
//! (`tasks/sql.rs`): two claimers never get the same row, and neither waits for a row the
//! other is claiming. A stored task's lease is in its row, so it can be claimed through one
//! process and finished through another (a run's tasks are not stored here: below). Every
//! process runs recovery and the sweeper; each of their steps is a conditional write
//! (`… WHERE status = 'pending'`, `from` states), so two processes re-driving the same
//! delegation or routing the same inbound task change it once.
//!
//! **What they do not**: orchestration runs (and their tasks) live in the memory of the
//! process that created them; another process answers 404 for them. A run records its owner
//! (`hopper_instances.owner`); each process heart-beats in `hopper_processes` at open and on
//! every sweep (migration `20261124000002_process_ownership`). A run whose parent finds it
//! missing is declared lost, and its project task re-queued (`engine/recovery.rs`), only once
//! its owner has not heart-beaten for ten sweep intervals (at least 30 s). A clean stop hands
//! its runs' tasks back at once and deletes its heartbeat row.
//!
//! **Durability.** A write whose answer promises it is stored commits on `pool`, at the
//! server's `synchronous_commit` (on by default), before the answer. A task write is one
//! statement: a data-modifying CTE does the conditional change and appends its history event
//! (an implicit transaction, one round trip). Writes that recovery redoes (routing an inbound
//! task, a delegated child task, delegation bookkeeping, marking an event routed) use
//! `relaxed`, with `synchronous_commit=off`: PostgreSQL never reorders commits, so a crash
//! loses at most a suffix of them, which leaves a state recovery already handles.
//!
//! **Batchers** (`batch`). The two writes every webhook makes, recording it (`record`, on
//! `pool`: the 202 waits for it) and routing its task (`route`, relaxed), queue per kind and go
//! in as one statement over `unnest`ed arrays, up to four batches in flight; each caller learns
//! whether its row took effect, and a failed batch is retried item by item. Per-statement
//! overhead, not row work, was what the server spent its CPU on. The route batcher's own
//! connections plan index lookups only: with the statistics of fast-growing tables the planner
//! chose bitmap and hash plans that walked every pending task.

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

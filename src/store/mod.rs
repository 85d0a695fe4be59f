//! Persistence. One [`Store`] per database; instances that name the same database share it.
//!
//! Two SQL dialects sit behind one API: SQLite (the embedded default, and — as an in-memory
//! database — the ephemeral store of orchestration runs) and PostgreSQL. Queries are written
//! once with `$n` placeholders, which both drivers accept; the `on_db!` macro runs the same
//! code against whichever pool a store holds. Only the claim query differs by dialect.

mod batch_pg;
mod checkpoint;
mod commit;
mod delegations;
mod durable;
mod events;
mod inbound;
mod instances;
mod lite;
mod open;
mod rows;
mod tasks;

use sqlx::{PgPool, SqlitePool};

pub use delegations::{Delegation, DelegationKind, DelegationState, Handover, RoutedNow};
pub use events::EventRecord;
pub use inbound::{Effect, InboundEvent, NewInboundEvent, NewTask, Recorded};
pub use instances::NewInstance;
pub use open::{StoreKey, StoreSet};
pub use tasks::{FinishRequest, NewTaskRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot open store: {0}")]
    Open(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool, once per dialect.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// A database with Hopper's schema.
#[derive(Clone, Debug)]
pub struct Store {
    /// Writes. For a SQLite file this pool has one connection: SQLite admits one writer at a
    /// time anyway, and queueing in the pool is fair and cheap where colliding connections
    /// would sleep in the busy handler.
    db: Db,
    /// Reads. A read-only pool beside the writer for SQLite (WAL lets them run concurrently);
    /// the same pool as `db` for PostgreSQL.
    reader: Db,
    /// Group commit for SQLite writes (see `commit`); `None` on PostgreSQL.
    committer: Option<commit::Committer>,
    /// PostgreSQL only: a pool whose commits do not wait for the WAL flush, for writes that
    /// start-up recovery redoes if a crash loses them (routing an inbound task, handing a
    /// delegated task to its child, delegation bookkeeping). PostgreSQL never reorders commits,
    /// so a lost suffix leaves the same state as a crash just before those writes.
    relaxed: Option<sqlx::PgPool>,
    /// PostgreSQL only: group commit for inbound records (see `batch_pg`).
    pg_records: Option<batch_pg::PgBatcher<inbound::Record>>,
    /// PostgreSQL only: group commit for routing stored tasks, on the relaxed pool.
    pg_routes: Option<batch_pg::PgBatcher<delegations::Route>>,
    key: StoreKey,
    /// Background work of this store (the checkpointer) holds only a `Weak` of this, so it
    /// ends once every handle is gone: forgetting an idle store releases its threads.
    _alive: std::sync::Arc<()>,
}

impl Store {
    pub fn key(&self) -> &StoreKey {
        &self.key
    }

    fn committer(&self) -> StoreResult<&commit::Committer> {
        self.committer
            .as_ref()
            .ok_or_else(|| StoreError::Open("this store has no group committer".into()))
    }

    /// One SQLite write transaction: `work` runs on the writer in the next group commit batch,
    /// with the batch's history-event queue, and this returns once the batch is committed.
    /// `work` may run twice (a failed batch is re-run write by write), so it borrows what it
    /// captures rather than consuming it.
    pub(crate) async fn lite_write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&rusqlite::Connection, &mut Vec<commit::PendingEvent>) -> rusqlite::Result<T>
            + Send
            + 'static,
    {
        self.committer()?.run(commit::work(work)).await
    }

    /// After a write made outside the group commit (sqlx straight on the writer, which commits
    /// without waiting for the disk): returns once it is durable. A no-op on PostgreSQL.
    pub(crate) async fn durable(&self) -> StoreResult<()> {
        match &self.committer {
            Some(c) => c.barrier().await,
            None => Ok(()),
        }
    }

    /// PostgreSQL's pool for re-drivable writes (see `relaxed`), else the main one.
    fn relaxed_or<'a>(&'a self, p: &'a sqlx::PgPool) -> &'a sqlx::PgPool {
        self.relaxed.as_ref().unwrap_or(p)
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.db {
            Db::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
            Db::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// For `/readyz`: the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        on_db!(&self.reader, p => { sqlx::query("SELECT 1").execute(p).await?; });
        Ok(())
    }

    pub async fn close(&self) {
        on_db!(&self.db, p => p.close().await);
        on_db!(&self.reader, p => p.close().await);
    }
}

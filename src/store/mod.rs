//! Persistence. One [`Store`] per database; instances that name the same database share it.
//!
//! Two SQL dialects sit behind one API: SQLite (the embedded default, and — as an in-memory
//! database — the ephemeral store of orchestration runs) and PostgreSQL. Queries are written
//! once with `$n` placeholders, which both drivers accept; the `on_db!` macro runs the same
//! code against whichever pool a store holds. Only the claim query differs by dialect.

mod checkpoint;
mod commit;
mod delegations;
mod events;
mod inbound;
mod instances;
mod open;
mod rows;
mod tasks;

use sqlx::{PgPool, SqlitePool};

pub use delegations::{Delegation, DelegationKind, DelegationState};
pub use events::EventRecord;
pub use inbound::{Effect, InboundEvent, NewInboundEvent, Recorded};
pub use instances::NewInstance;
pub use open::{StoreKey, StoreSet};
pub use tasks::{FinishRequest, NewTaskRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
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

/// Runs `$body` as one write transaction, with `$c` the connection and `$ev` a queue of history
/// events inserted with it. PostgreSQL runs it at once in its own transaction (many connections
/// commit in parallel there); SQLite hands it to the group committer. The names in `[...]` are
/// cloned for every run, since a SQLite write may be re-run alone after a failed batch: keep
/// them cheap to clone (`Arc`).
macro_rules! write_tx {
    ($store:expr, [$($cap:ident),*], |$c:ident, $ev:ident| $body:block) => {
        match &$store.db {
            $crate::store::Db::Postgres(p) => {
                let mut tx = p.begin().await?;
                let mut events: Vec<$crate::store::commit::PendingEvent> = Vec::new();
                let out = {
                    let $c: &mut sqlx::PgConnection = &mut *tx;
                    let $ev = &mut events;
                    async { Ok::<_, sqlx::Error>($body) }.await?
                };
                $crate::store::commit::flush_events!(sqlx::Postgres, tx, events).await?;
                tx.commit().await?;
                out
            }
            $crate::store::Db::Sqlite(_) => {
                $store
                    .committer()?
                    .run($crate::store::commit::work(move |$c, $ev| {
                        $(let $cap = $cap.clone();)*
                        Box::pin(async move { Ok($body) })
                    }))
                    .await?
            }
        }
    };
}
pub(crate) use write_tx;

/// One re-drivable write statement (bookkeeping that recovery redoes): on PostgreSQL through
/// the relaxed pool, on SQLite into the group commit (where it would otherwise take the single
/// writer connection for a commit of its own). `$c` is a `&mut` connection in both.
macro_rules! write_stmt {
    ($store:expr, [$($cap:ident),*], |$c:ident| $body:block) => {
        match &$store.db {
            $crate::store::Db::Postgres(p) => {
                let mut conn = $store.relaxed.as_ref().unwrap_or(p).acquire().await?;
                let $c: &mut sqlx::PgConnection = &mut conn;
                async { Ok::<_, sqlx::Error>($body) }.await?
            }
            $crate::store::Db::Sqlite(_) => {
                $store
                    .committer()?
                    .run($crate::store::commit::work(move |$c, _events| {
                        $(let $cap = $cap.clone();)*
                        Box::pin(async move { Ok($body) })
                    }))
                    .await?
            }
        }
    };
}
pub(crate) use write_stmt;

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
    key: StoreKey,
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

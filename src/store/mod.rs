//! Persistence. One [`Store`] per database; instances that name the same database share it.
//!
//! A store is one of two backends ([`Backend`]): SQLite (`sqlite/`: the embedded default, and,
//! as an in-memory database, the ephemeral store of orchestration runs) or PostgreSQL
//! (`postgres/`). Each backend owns its machinery and its write path; the module docs there say
//! how writes become durable and why they are shaped as they are.
//!
//! Layers, each using only those below it: `error` and `rows` (what each table holds, its
//! columns named once) → `sqlite`, `postgres` (connections, group commit, batchers; neither
//! knows the other) → the table modules `tasks`, `delegations`, `inbound`, `instances`,
//! `events`, `executors`, `tokens`, which implement [`Store`]'s methods.
//!
//! Statements are written once with `$n` placeholders, which both drivers (and the SQLite
//! group commit's rusqlite, see `sqlite/lite.rs`) accept (statements with many binds become
//! anonymous `?` on SQLite, see `binds`); times are epoch milliseconds, JSON is
//! text. Reads and rare writes run the same sqlx code on either backend (`on_reader!`,
//! `on_writer!`); the frequent writes take each backend's own path.
//!
//! Every write a caller is answered for is durable by construction: on SQLite the only ways to
//! the writer are the group commit (`SqliteBackend::commit`) and `SqliteBackend::write`, and
//! both return after the fsync that covers the write.

mod binds;
mod delegations;
mod deliveries;
mod episodes;
mod error;
mod events;
mod executors;
mod inbound;
mod instances;
mod memory_state;
mod open;
mod outbox;
mod postgres;
mod reports;
mod rows;
mod sqlite;
mod sync;
mod tasks;
#[cfg(test)]
mod tests;
mod tokens;

pub use deliveries::{AttemptRecord, ClaimedDelivery};
pub use episodes::EpisodeHit;
pub use error::{StoreError, StoreResult};
pub use executors::ExecutorFilter;
pub use inbound::{Effect, InboundEvent, Recorded};
pub use instances::NewInstance;
pub use memory_state::MemoryState;
pub use open::{StoreKey, StoreSet};
pub use outbox::{DeliveryTarget, NewDelivery, OutboxEntry};
pub use rows::{
    ApiToken, Delegation, DelegationKind, DelegationState, EventRecord, ExecutorEvent, Handover,
    NewInboundEvent, NewTask, NewTaskRow, RoutedNow,
};
pub use sync::SyncLink;
pub use tasks::{COUNT_CAP, FinishRequest, InstanceCounts, TaskPage};
pub use tokens::NewToken;

use postgres::PgBackend;
use sqlite::SqliteBackend;

/// The database behind a store.
#[derive(Clone, Debug)]
pub(in crate::store) enum Backend {
    Sqlite(SqliteBackend),
    Postgres(PgBackend),
}

/// Runs `$body` with `$pool` bound to the backend's pool for reads: SQLite's reader pool (WAL
/// lets it run beside the writer), PostgreSQL's main pool.
macro_rules! on_reader {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(b) => {
                let $pool = b.reader();
                $body
            }
            $crate::store::Backend::Postgres(b) => {
                let $pool = b.pool();
                $body
            }
        }
    };
}
pub(crate) use on_reader;

/// A rare write written once for both backends (registry, sweeper, retention): runs `$body`,
/// which evaluates to a `StoreResult`, with `$conn` bound to a `&mut` connection, and evaluates
/// to its result. On SQLite that is `SqliteBackend::write`, which returns once the write is
/// durable; on PostgreSQL a connection of the main pool, whose commits wait for the WAL flush.
macro_rules! on_writer {
    ($store:expr, $conn:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(b) => {
                b.write(|$conn, _| ::std::boxed::Box::pin(async move { $body }))
                    .await
            }
            $crate::store::Backend::Postgres(b) => {
                let mut conn = b.pool().acquire().await?;
                let $conn: &mut ::sqlx::PgConnection = &mut conn;
                $body
            }
        }
    };
    // A write that recovery redoes if a crash loses it: on PostgreSQL its commit does not wait
    // for the WAL flush (`PgBackend::relaxed`); SQLite commits it durably all the same.
    (relaxed $store:expr, $conn:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(b) => {
                b.write(|$conn, _| ::std::boxed::Box::pin(async move { $body }))
                    .await
            }
            $crate::store::Backend::Postgres(b) => {
                let mut conn = b.relaxed().acquire().await?;
                let $conn: &mut ::sqlx::PgConnection = &mut conn;
                $body
            }
        }
    };
}
pub(crate) use on_writer;

/// A database with Hopper's schema.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    key: StoreKey,
}

impl Store {
    pub fn key(&self) -> &StoreKey {
        &self.key
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(b) => b.migrate().await,
            Backend::Postgres(b) => b.migrate().await,
        }
    }

    /// For `/readyz`: the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        on_reader!(self, p => { sqlx::query("SELECT 1").execute(p).await?; });
        Ok(())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(b) => b.close().await,
            Backend::Postgres(b) => b.close().await,
        }
    }
}

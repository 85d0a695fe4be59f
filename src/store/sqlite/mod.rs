//! The SQLite backend: a database file (the embedded default), or the per-process in-memory
//! database that holds orchestration runs (the same schema and queries; runs do not survive a
//! restart by design, and recovery marks them lost).
//!
//! **Connections.** A file has one writer and a read-only reader pool beside it (WAL lets them
//! run concurrently). SQLite admits one writer anyway: queueing for it in-process is fair and
//! cheap where colliding connections would sleep in the busy handler. Write transactions
//! start `IMMEDIATE`, so the lock is taken up front and never upgraded from a read lock (which
//! fails instead of waiting). An in-memory database is one shared-cache connection that serves
//! both.
//!
//! **Group commit** (`commit`). Writes are re-runnable closures queued to one committer per
//! database, on its own OS thread. Each turn runs everything queued (up to 256) in one
//! transaction, appends the batch's history events, and commits once. A failed batch is rolled
//! back and re-run write by write, so each caller gets its own result.
//!
//! **rusqlite on sqlx's handle** (`lite`). The committer runs its statements through rusqlite
//! on the raw handle of its sqlx connection (sqlx's `lock_handle` exists for direct SQLite
//! calls, and both crates link the same libsqlite3). With sqlx alone every statement is a round
//! trip to the connection's worker thread, and under load each one waited for a CPU: a batch of
//! 30 inbound records took 4.5 ms of hand-offs. The SQL is the same `$N` text the PostgreSQL
//! paths use. Borrowing the handle is one of the crate's `unsafe` blocks (`commit::wrap`); the
//! WAL hook (`checkpoint::WalFrames`) is three more, and the checkpointer's sync through
//! SQLite's own file handle (`checkpoint::sync_database`) the fifth.
//!
//! **Durability** (`durable`). With `synchronous=FULL` (the default) the single writer would
//! sit idle during every commit's fsync. Instead it commits with NORMAL and hands the batch's
//! callers to an fsync thread, which syncs the WAL and only then answers them. The hand-over is
//! a rendezvous: one batch is committed during each fsync, and what arrives meanwhile becomes
//! the next batch. Every batch rewrites the last page of each B-tree it touches, so fewer,
//! larger batches write less (77 → 59 KB per inbound delivery). An answer still means "on
//! disk". `persistence.sqlite_synchronous: normal` answers at commit instead: it survives
//! process crashes, not power loss.
//!
//! **Durable by construction.** The only ways to write are [`SqliteBackend::commit`] (the group
//! commit) and [`SqliteBackend::write`] (sqlx on the writer connection for rare statements that
//! both backends share, followed by a barrier through the committer when it changed anything);
//! both return once the write is durable. The exceptions are writes whose loss in a power cut
//! is harmless by design, answered at their commit: [`SqliteBackend::commit_unsynced`] (in the
//! group commit: the workers' claims, the dispatcher's outbox deletes) and
//! [`SqliteBackend::write_unsynced`] (the episodes' full-text index: derived, redone if lost).
//!
//! **Checkpoints** (`checkpoint`). The writer never checkpoints (`wal_autocheckpoint=0`): a
//! background task runs a PASSIVE checkpoint every 50 ms on its own connection and syncs the
//! database file through that connection (never a descriptor of its own: closing one drops
//! the process's locks, and another process would then delete the WAL from under it), so no
//! commit waits for a checkpoint's copy. Under writes that never pause such a checkpoint
//! never reaches the end of the WAL, and SQLite reuses the WAL only after one has: the file
//! grew to 2 GB in a 10-second benchmark. So once a commit leaves more than 64 MiB in the WAL
//! (SQLite's WAL hook reports the count to the writer) the committer finishes the checkpoint
//! itself before its next batch (a few ms: only the frames since are left), and
//! the next batch rewinds the WAL.

mod checkpoint;
mod commit;
mod durable;
mod lite;
#[cfg(test)]
mod upgrade_tests;

use std::marker::PhantomData;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use rusqlite::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection, SqlitePool};

pub(in crate::store) use commit::PendingEvent;
pub(in crate::store) use lite::query;

use super::error::{StoreError, StoreResult};
use commit::{Committer, WriteGate, Writer};

/// What [`SqliteBackend::write`]'s closure returns: the work, borrowing the writer connection.
pub(in crate::store) type Work<'c, T> = BoxFuture<'c, StoreResult<T>>;

/// The second argument of [`SqliteBackend::write`]'s closure, there for its type only: it makes
/// `'a: 'c` an implied bound, so the work may borrow from its caller (`'a`) while it borrows
/// the connection (`'c`).
pub(in crate::store) type Scope<'c, 'a> = PhantomData<&'c &'a ()>;

/// One SQLite database: its connections and its group committer. Cheap to clone.
#[derive(Clone, Debug)]
pub(in crate::store) struct SqliteBackend {
    /// For a file, a pool of one connection for writes made outside the group commit; for an
    /// in-memory database, its one connection. Reached only through [`SqliteBackend::write`]
    /// (and the committer), so no write can skip the durability barrier.
    writer: SqlitePool,
    /// Read-only connections beside the writer (the writer itself for an in-memory database).
    reader: SqlitePool,
    committer: Committer,
    /// Taken around each use of `writer` and each committer batch (a file's; see
    /// `commit::WriteGate`).
    gate: WriteGate,
    /// Set after every write (see `take_written`); starts set.
    written: Arc<AtomicBool>,
    /// Background work of this database (the checkpointer) holds only a `Weak` of this, so it
    /// ends once every handle is gone: forgetting an idle store releases its threads.
    _alive: Arc<()>,
}

impl SqliteBackend {
    /// Opens (creating) a database file: the writer and reader pools, the committer on a
    /// connection of its own, the fsync thread under `full_sync`, and the checkpointer.
    pub async fn open_file(path: &Path, size: Option<u32>, full_sync: bool) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
        }
        let opts = options(path, full_sync);
        // A local file cannot go stale like a network connection: skip the ping sqlx would
        // otherwise send before handing out every connection (a full round trip per transaction).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(writer_options(path, full_sync))
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(size.unwrap_or(8))
            .test_before_acquire(false)
            .connect_with(opts.read_only(true))
            .await?;
        let own = writer_options(path, full_sync).connect().await?;
        let sync = match full_sync {
            true => Some(durable::WalSync::start(path)?),
            false => None,
        };
        let gate = WriteGate::default();
        let own = Writer::Own {
            conn: own,
            finish_frames: checkpoint::FINISH_FRAMES,
            gate: gate.clone(),
        };
        let committer = Committer::start(own, sync, &path.to_string_lossy())?;
        let alive = Arc::new(());
        checkpoint::spawn(path.to_owned(), writer.clone(), Arc::downgrade(&alive));
        Ok(Self {
            writer,
            reader,
            committer,
            gate,
            written: Arc::new(AtomicBool::new(true)),
            _alive: alive,
        })
    }

    /// The process's in-memory database `name`.
    pub async fn open_memory(name: &str) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(&format!(
            "sqlite:file:{name}?mode=memory&cache=shared"
        ))?
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
        // A shared-cache memory database lives while one connection is open: keep one forever.
        // One connection also sidesteps shared-cache table locks between connections.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        let committer = Committer::start(Writer::Shared(pool.clone()), None, name)?;
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            committer,
            // One connection for both already takes turns.
            gate: WriteGate::default(),
            written: Arc::new(AtomicBool::new(true)),
            _alive: Arc::new(()),
        })
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// One write transaction in the group commit: `work` runs on the writer in the next batch,
    /// with the batch's history-event queue, and this returns once the batch is durable. `work`
    /// may run twice (a failed batch is re-run write by write), so it borrows what it captures
    /// rather than consuming it.
    pub async fn commit<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut Vec<PendingEvent>) -> rusqlite::Result<T> + Send + 'static,
    {
        let done = self.committer.run(commit::work(work)).await;
        self.written.store(true, Ordering::Release);
        done
    }

    /// [`SqliteBackend::commit`] answered at the batch's commit rather than after its fsync,
    /// for writes whose loss in a power cut is harmless by design: the delivery and report
    /// workers' claims (a lost claim leaves its rows claimable, as a claim whose process died
    /// does) and the dispatcher's deletes of moved outbox rows in the project stores (a lost
    /// delete moves the events again, and the root keeps one delivery per event and
    /// executor). Whatever is done on the strength of them is written durably later, and that
    /// fsync covers them. In the group commit rather than beside it: on the sqlx writer each took a
    /// turn away from the batches (reports flowing beside ingest: 7.4-8.1k → 3.8k webhooks/s).
    pub async fn commit_unsynced<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut Vec<PendingEvent>) -> rusqlite::Result<T> + Send + 'static,
    {
        let done = self.committer.run_unsynced(commit::work(work)).await;
        self.written.store(true, Ordering::Release);
        done
    }

    /// Whether anything was written through this backend since the last call (or since it
    /// opened). The outbound dispatcher reads the outbox only of stores written since its last
    /// look: with a database file per project, reading a hundred idle outboxes per round cost
    /// more than the round's work. The flag is set after the write is committed, before the
    /// writer is answered, so a look that clears it either sees the write or is followed by
    /// another.
    pub fn take_written(&self) -> bool {
        self.written.swap(false, Ordering::AcqRel)
    }

    /// A write outside the group commit, for rare statements written once for both backends
    /// (the registry, the sweeper, retention, migrations): `work` runs through sqlx on the
    /// writer connection, and this returns once what it changed is durable. It is the only way
    /// to the writer connection, so every answered write on SQLite is on disk, whichever path
    /// it took.
    ///
    /// The writer commits without waiting for the disk (`writer_options`); a barrier through
    /// the committer, whose fsync covers every commit before it, makes it durable. A `work`
    /// that changed nothing skips it (two `total_changes()` round trips instead of an fsync:
    /// the sweeper's lease pass runs every second on every store, mostly finding nothing).
    ///
    /// `work` returns a boxed future rather than being an async closure: the higher-ranked
    /// lifetime of an async closure's future made rustc reject every caller's future as not
    /// `Send` ("implementation of `Send` is not general enough").
    pub async fn write<'a, T>(
        &self,
        work: impl for<'c> FnOnce(&'c mut SqliteConnection, Scope<'c, 'a>) -> Work<'c, T>,
    ) -> StoreResult<T> {
        let turn = self.gate.lock().await;
        let mut conn = self.writer.acquire().await?;
        let before = total_changes(&mut conn).await?;
        let result = work(&mut conn, PhantomData).await;
        // What `work` committed before an error must be durable too before anyone hears of
        // it; when in doubt, wait.
        let changed = !matches!(total_changes(&mut conn).await, Ok(n) if n == before);
        // Released first: an in-memory database's committer writes on this very connection.
        drop(conn);
        drop(turn);
        if changed {
            self.committer.barrier().await?;
            self.written.store(true, Ordering::Release);
        }
        result
    }

    /// [`SqliteBackend::write`] without the durability barrier, for writes whose loss in a
    /// power cut is harmless by design and that are written once for both backends through
    /// sqlx: the episodes' full-text index (derived; its mark moves with it). The workers'
    /// claims, which were here, ride the group commit now (`commit_unsynced`).
    pub async fn write_unsynced<'a, T>(
        &self,
        work: impl for<'c> FnOnce(&'c mut SqliteConnection, Scope<'c, 'a>) -> Work<'c, T>,
    ) -> StoreResult<T> {
        let turn = self.gate.lock().await;
        let mut conn = self.writer.acquire().await?;
        let result = work(&mut conn, PhantomData).await;
        drop(turn);
        self.written.store(true, Ordering::Release);
        result
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        self.write(|c, _| {
            Box::pin(async move {
                // `run` takes an `Acquire`, whose impl for `&mut SqliteConnection` is not
                // general enough for a boxed future; `run_direct` is sqlx's way around that.
                sqlx::migrate!("./migrations/sqlite").run_direct(c).await?;
                Ok(())
            })
        })
        .await
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Rows changed by statements on `conn` since it was opened.
async fn total_changes(conn: &mut SqliteConnection) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT total_changes()")
        .fetch_one(conn)
        .await?)
}

fn options(path: &Path, full_sync: bool) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // WAL lets readers run beside the one writer. FULL: an answered write survives power
        // loss (one fsync per group commit batch, see `durable`). NORMAL survives crashes of
        // the process only, the usual WAL trade-off, when configured.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if full_sync {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        // Other processes may share the file: they still wait for each other here.
        .busy_timeout(Duration::from_secs(10))
        .pragma("temp_store", "memory")
        // Readers keep SQLite's default 2 MB page cache: a reader's cache is dropped whenever
        // the WAL changed since its last transaction (every commit, on a busy server), so a
        // bigger one buys little and costs memory per connection per store. At 16 MB each,
        // 100,000 deliveries waiting for 10 dead executors took RSS from 17 to 113 MB; at
        // 2 MB: 54, 74, 83 MB with 30k, 100k, 300k waiting (benches/outbound, part rss).
        .pragma("cache_size", "-2000")
        // Once a checkpoint has caught up, the WAL file is cut back to this size.
        .pragma("journal_size_limit", "67108864")
        .foreign_keys(true)
}

/// The writers never checkpoint; `checkpoint` does, beside them. Nor do they fsync at commit:
/// under FULL the group committer's fsync thread does, off the write path (`durable`).
fn writer_options(path: &Path, full_sync: bool) -> SqliteConnectOptions {
    options(path, full_sync)
        // The writer's cache survives its own commits: it keeps the hot index pages.
        .pragma("cache_size", "-16000")
        .pragma("wal_autocheckpoint", "0")
        .synchronous(SqliteSynchronous::Normal)
}

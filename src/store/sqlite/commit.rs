//! Group commit for SQLite.
//!
//! SQLite has one writer. Committing each small task write on its own spends most of its time
//! in the fsync and in writing the same B-tree pages to the WAL again and again. The committer
//! owns the write path instead: concurrent writes queue up, and each turn takes everything
//! queued (up to [`MAX_BATCH`]) into one transaction, appends their history events, and
//! commits once. Nobody is answered before the commit, so "answered" still means "durable".
//!
//! The batch runs on the committer's own OS thread, directly on the writer connection's
//! handle (see `lite`): a statement is a function call, not a hand-off between threads, so a
//! batch costs its SQL and one fsync, not a wake-up per statement.
//!
//! A write is a re-runnable closure. If anything in a batch fails, the batch is rolled back and
//! every write in it is run again alone, so one bad write never takes others down with it and
//! each caller gets its own error.

use rusqlite::Connection;
use sqlx::sqlite::LockedSqliteHandle;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::WalFrames;
use super::durable::WalSync;
use super::lite;
use crate::domain::Millis;
use crate::store::error::{StoreError, StoreResult};
use crate::store::rows::{EventRecord, INSERT_TASK_EVENT};

/// Upper bound on writes per transaction: large enough to amortise the commit, small enough
/// that the first writer in a batch does not wait long for the last.
const MAX_BATCH: usize = 256;
/// Distinct statements kept prepared during a batch.
const STATEMENT_CACHE: usize = 64;

/// A history event a write wants appended in its transaction.
#[derive(Debug, Clone)]
pub(in crate::store) struct PendingEvent {
    pub task_id: String,
    pub instance_id: String,
    pub at: Millis,
    pub kind: &'static str,
    pub actor: String,
    pub detail: Option<String>,
}

impl PendingEvent {
    pub fn new(task: &str, instance: &str, at: Millis, event: &EventRecord) -> Self {
        Self {
            task_id: task.to_owned(),
            instance_id: instance.to_owned(),
            at,
            kind: event.kind,
            actor: event.actor.clone(),
            detail: event.detail_text(),
        }
    }
}

/// Appends events on the SQLite writer: one cached statement, one call per row.
fn flush_lite(c: &Connection, events: &[PendingEvent]) -> rusqlite::Result<()> {
    for e in events {
        lite::query(c, INSERT_TASK_EVENT)?
            .bind(e.task_id.as_str())
            .bind(e.instance_id.as_str())
            .bind(e.at)
            .bind(e.kind)
            .bind(e.actor.as_str())
            .bind(e.detail.as_deref())
            .execute()?;
    }
    Ok(())
}

/// A unit of work on the writer connection, inside the batch's transaction. It may run more
/// than once (see the module docs), so it must not consume what it captures.
pub(super) type Work<T> =
    Box<dyn FnMut(&Connection, &mut Vec<PendingEvent>) -> rusqlite::Result<T> + Send>;

pub(super) trait Job: Send {
    fn run(&mut self, conn: &Connection, events: &mut Vec<PendingEvent>) -> rusqlite::Result<()>;
    fn succeed(self: Box<Self>);
    fn fail(self: Box<Self>, error: StoreError);
}

struct Typed<T> {
    work: Work<T>,
    out: Option<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T: Send + 'static> Job for Typed<T> {
    fn run(&mut self, conn: &Connection, events: &mut Vec<PendingEvent>) -> rusqlite::Result<()> {
        self.out = Some((self.work)(conn, events)?);
        Ok(())
    }

    fn succeed(self: Box<Self>) {
        let result = self
            .out
            .ok_or_else(|| StoreError::Open("group commit lost a result".into()));
        // The caller may have gone away (a dropped request); the write stands regardless.
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Wraps a closure as [`Work`]; a function so the closure's signature is inferred.
pub(super) fn work<T, F>(f: F) -> Work<T>
where
    F: FnMut(&Connection, &mut Vec<PendingEvent>) -> rusqlite::Result<T> + Send + 'static,
{
    Box::new(f)
}

/// Handle to a store's committer. Cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Committer {
    tx: mpsc::Sender<Box<dyn Job>>,
}

/// The connection a committer writes on.
pub(super) enum Writer {
    /// A database file: a connection of the committer's own, held for its whole life, so its
    /// prepared statements stay prepared. The store's sqlx writer pool remains for rare writes
    /// (`SqliteBackend::write`), which wait for the committer's batches in SQLite's busy
    /// handler and then for a `barrier`.
    /// Once a commit leaves more than `finish_frames` in the WAL, the committer checkpoints
    /// before its next batch (see `checkpoint`).
    Own {
        conn: SqliteConnection,
        finish_frames: i64,
    },
    /// An in-memory database: its one connection, borrowed from the pool for each batch (a
    /// second connection to a shared-cache database would meet table locks instead).
    Shared(SqlitePool),
}

impl Committer {
    /// Starts a committer. With `wal_sync`, callers are answered once that thread has made
    /// their batch durable (see `durable`); without, at commit.
    pub fn start(writer: Writer, wal_sync: Option<WalSync>) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Open(format!("group commit runtime: {e}")))?;
        std::thread::Builder::new()
            .name("hopper-commit".into())
            .spawn(move || {
                rt.block_on(async move {
                    match writer {
                        Writer::Own {
                            conn,
                            finish_frames,
                        } => run_own(conn, rx, wal_sync.as_ref(), finish_frames).await,
                        Writer::Shared(pool) => run_shared(pool, rx, wal_sync.as_ref()).await,
                    }
                })
            })
            .map_err(|e| StoreError::Open(format!("group commit thread: {e}")))?;
        Ok(Self { tx })
    }

    /// Returns once everything committed before the call is durable.
    pub async fn barrier(&self) -> StoreResult<()> {
        self.run(work(|_, _| Ok(()))).await
    }

    /// Runs `work` in the next batch and returns its result once the batch is committed.
    pub async fn run<T: Send + 'static>(&self, work: Work<T>) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed {
            work,
            out: None,
            reply,
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        rx.await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?
    }
}

/// Wraps a locked sqlx handle for rusqlite.
///
/// SAFETY (of the callers' `unsafe` block): the pointer is sqlx's open connection. While the
/// `LockedSqliteHandle` it came from lives, sqlx's worker thread makes no call on it (that is
/// the lock's guarantee). The rusqlite wrapper does not own it (it never closes it) and each
/// caller drops it, finalizing the statements it prepared, before releasing the lock.
#[allow(unsafe_code)]
fn wrap(handle: &mut LockedSqliteHandle<'_>) -> rusqlite::Result<Connection> {
    // SAFETY: see above.
    let lite = unsafe { Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
    lite.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(lite)
}

async fn run_own(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    wal_sync: Option<&WalSync>,
    finish_frames: i64,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut handle = match conn.lock_handle().await {
        Ok(h) => h,
        Err(e) => return refuse_all(rx, &format!("writer connection: {e}")).await,
    };
    let lite = match wrap(&mut handle) {
        Ok(l) => l,
        Err(e) => return refuse_all(rx, &format!("writer connection: {e}")).await,
    };
    let wal = WalFrames::watch(&lite);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("hopper_store_commit_batch_size").record(batch.len() as f64);
        let committed = commit_batch(&lite, &mut batch);
        answer(committed, wal_sync);
        if wal.get() > finish_frames && checkpoint(&lite) {
            wal.reset();
        }
    }
    drop(wal);
    drop(lite);
    drop(handle);
    let _ = sqlx::Connection::close(conn).await;
}

async fn run_shared(
    pool: SqlitePool,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    wal_sync: Option<&WalSync>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("hopper_store_commit_batch_size").record(batch.len() as f64);
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                fail_all(&mut batch, &format!("writer connection: {e}"));
                continue;
            }
        };
        let mut handle = match conn.lock_handle().await {
            Ok(h) => h,
            Err(e) => {
                fail_all(&mut batch, &format!("writer connection: {e}"));
                continue;
            }
        };
        let committed = match wrap(&mut handle) {
            Ok(lite) => commit_batch(&lite, &mut batch),
            Err(e) => {
                fail_all(&mut batch, &format!("writer connection: {e}"));
                continue;
            }
        };
        drop(handle);
        answer(committed, wal_sync);
    }
}

/// A PASSIVE checkpoint while no batch is open. The background checkpointer has already
/// copied most of the WAL; this copies the frames written since, and since nothing is written
/// meanwhile it can reach the end, which lets the next batch restart the WAL from its start.
/// Whether it did: if not (the background pass held the checkpoint, a reader an old snapshot),
/// the next commit's frame count asks again.
fn checkpoint(c: &Connection) -> bool {
    let started = std::time::Instant::now();
    let result = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match result {
        Ok((busy, log, copied)) => {
            metrics::histogram!("hopper_store_checkpoint_seconds")
                .record(started.elapsed().as_secs_f64());
            tracing::debug!(busy, log, copied, "writer checkpoint");
            busy == 0 && log == copied
        }
        Err(e) => {
            tracing::debug!(error = %e, "writer checkpoint skipped");
            false
        }
    }
}

fn answer(committed: Vec<Box<dyn Job>>, wal_sync: Option<&WalSync>) {
    match wal_sync {
        Some(sync) => sync.after_commit(committed),
        None => committed.into_iter().for_each(|j| j.succeed()),
    }
}

/// A committer that could not get its connection fails every write it is sent.
async fn refuse_all(mut rx: mpsc::Receiver<Box<dyn Job>>, why: &str) {
    tracing::error!(error = why, "group commit has no writer connection");
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        fail_all(&mut batch, why);
    }
}

fn fail_all(batch: &mut Vec<Box<dyn Job>>, why: &str) {
    for job in batch.drain(..) {
        job.fail(StoreError::Open(why.to_owned()));
    }
}

/// Commits the batch; returns the jobs that committed (to be answered), having answered the
/// ones that failed.
fn commit_batch(c: &Connection, batch: &mut Vec<Box<dyn Job>>) -> Vec<Box<dyn Job>> {
    if batch.len() > 1 && transaction(c, batch).is_ok() {
        return std::mem::take(batch);
    }
    // One write alone, or a batch that failed: each write in its own transaction.
    let mut committed = Vec::with_capacity(batch.len());
    for mut job in batch.drain(..) {
        match transaction(c, std::slice::from_mut(&mut job)) {
            Ok(()) => committed.push(job),
            Err(e) => job.fail(e.into()),
        }
    }
    committed
}

/// Runs jobs in one transaction and commits; rolls back on any error.
fn transaction(c: &Connection, jobs: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front (waiting out other processes in the busy
    // handler) instead of failing on the upgrade from a read transaction.
    c.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let mut events = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            job.run(c, &mut events)?;
        }
        flush_lite(c, &events)?;
        c.execute_batch("COMMIT")
    })();
    if result.is_err() && !c.is_autocommit() {
        let _ = c.execute_batch("ROLLBACK");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection as _;
    use sqlx::sqlite::SqlitePoolOptions;

    async fn pool(dir: &std::path::Path) -> SqlitePool {
        let url = format!("sqlite:{}?mode=rwc", dir.join("c.db").display());
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE task_events (task_id TEXT, instance_id TEXT, at INTEGER, kind TEXT, actor TEXT, detail TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    fn insert(v: i64) -> Work<i64> {
        work(move |c, events| {
            lite::query(c, "INSERT INTO t (v) VALUES ($1)")?
                .bind(v)
                .execute()?;
            let ev = EventRecord::new("inserted", "test");
            events.push(PendingEvent::new(&v.to_string(), "i", 0, &ev));
            Ok(v)
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_does_not_take_its_batch_down() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let committer = Committer::start(Writer::Shared(pool.clone()), None).unwrap();
        // 1 is written twice: exactly one of the two must fail, everything else must land.
        let values: Vec<i64> = (0..64).chain([1]).collect();
        let results =
            futures::future::join_all(values.iter().map(|v| committer.run(insert(*v)))).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(failed, 1, "{results:?}");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM task_events")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((rows, events), (64, 64));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_the_fsync_thread_every_write_is_answered_and_stored() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&pool)
            .await
            .unwrap();
        let sync = WalSync::start(&dir.path().join("c.db")).unwrap();
        let committer = Committer::start(Writer::Shared(pool.clone()), Some(sync)).unwrap();
        let results = futures::future::join_all((0..200).map(|v| committer.run(insert(v)))).await;
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        committer.barrier().await.unwrap();
        let url = format!("sqlite:{}", dir.path().join("c.db").display());
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert_eq!(n, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_come_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let committer = Committer::start(Writer::Shared(pool.clone()), None).unwrap();
        let v = committer.run(insert(7)).await.unwrap();
        assert_eq!(v, 7);
        // A separate connection sees it: it was committed, not just written.
        let url = format!("sqlite:{}", dir.path().join("c.db").display());
        let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE v = 7")
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
}

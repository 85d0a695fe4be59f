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

use std::sync::Arc;

use rusqlite::Connection;
use sqlx::sqlite::LockedSqliteHandle;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use tracing::Dispatch;
use tracing::field::Empty;

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
    /// Whether its caller waits for the fsync (`false`: answered at the batch's commit).
    fn synced(&self) -> bool;
    fn succeed(self: Box<Self>);
    fn fail(self: Box<Self>, error: StoreError);
}

struct Typed<T> {
    work: Work<T>,
    out: Option<T>,
    reply: oneshot::Sender<StoreResult<T>>,
    synced: bool,
}

impl<T: Send + 'static> Job for Typed<T> {
    fn run(&mut self, conn: &Connection, events: &mut Vec<PendingEvent>) -> rusqlite::Result<()> {
        self.out = Some((self.work)(conn, events)?);
        Ok(())
    }

    fn synced(&self) -> bool {
        self.synced
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

/// Turns between the two writer connections of one database file: the committer's and the
/// sqlx writer pool's. Without it they met in SQLite's busy handler, which sleeps 1, 2, 5,
/// 10, ... 100 ms between tries: the delivery worker's claims and results, written beside a
/// stream of task commits, waited there (paced `benches/outbound`: p99 from a task's write
/// to its delivery 481 ms). Another process on the same file still meets the busy handler.
pub(super) type WriteGate = Arc<tokio::sync::Mutex<()>>;

/// The connection a committer writes on.
pub(super) enum Writer {
    /// A database file: a connection of the committer's own, held for its whole life, so its
    /// prepared statements stay prepared. The store's sqlx writer pool remains for writes
    /// outside the group commit (`SqliteBackend::write`), which take turns with the
    /// committer's batches through `gate` and then wait for a `barrier`.
    /// Once a commit leaves more than `finish_frames` in the WAL, the committer checkpoints
    /// before its next batch (see `checkpoint`).
    Own {
        conn: SqliteConnection,
        finish_frames: i64,
        gate: WriteGate,
    },
    /// An in-memory database: its one connection, borrowed from the pool for each batch (a
    /// second connection to a shared-cache database would meet table locks instead).
    Shared(SqlitePool),
}

impl Committer {
    /// Starts a committer. With `wal_sync`, callers are answered once that thread has made
    /// their batch durable (see `durable`); without, at commit. `db` names the database in
    /// the batches' spans (its path, or the in-memory database's name).
    ///
    /// The thread logs to the subscriber of the code that starts it (the global one in the
    /// server; a test's scoped one in tests).
    pub fn start(writer: Writer, wal_sync: Option<WalSync>, db: &str) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Open(format!("group commit runtime: {e}")))?;
        let db: Arc<str> = db.into();
        let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
        std::thread::Builder::new()
            .name("hopper-commit".into())
            .spawn(move || {
                // Without a subscriber yet, keep none of our own, so a global one set later
                // still applies here.
                let _log = (!dispatch.is::<tracing::subscriber::NoSubscriber>())
                    .then(|| tracing::dispatcher::set_default(&dispatch));
                rt.block_on(async move {
                    match writer {
                        Writer::Own {
                            conn,
                            finish_frames,
                            gate,
                        } => run_own(conn, rx, wal_sync.as_ref(), finish_frames, &gate, &db).await,
                        Writer::Shared(pool) => run_shared(pool, rx, wal_sync.as_ref(), &db).await,
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

    /// Runs `work` in the next batch and returns its result once the batch is durable.
    pub async fn run<T: Send + 'static>(&self, work: Work<T>) -> StoreResult<T> {
        self.send(work, true).await
    }

    /// Runs `work` in the next batch and returns its result once the batch is committed,
    /// without waiting for its fsync: for writes whose loss in a power cut is harmless by
    /// design (see `SqliteBackend::commit_unsynced`). The next durable answer covers it.
    pub async fn run_unsynced<T: Send + 'static>(&self, work: Work<T>) -> StoreResult<T> {
        self.send(work, false).await
    }

    async fn send<T: Send + 'static>(&self, work: Work<T>, synced: bool) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Typed {
            work,
            out: None,
            reply,
            synced,
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
    gate: &WriteGate,
    db: &str,
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
        let turn = gate.lock().await;
        batch_span(db, batch.len()).in_scope(|| {
            let committed = commit_batch(&lite, &mut batch);
            answer(committed, wal_sync);
        });
        if wal.get() > finish_frames && checkpoint(&lite) {
            wal.reset();
        }
        drop(turn);
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
    db: &str,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("hopper_store_commit_batch_size").record(batch.len() as f64);
        let span = batch_span(db, batch.len());
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                span.in_scope(|| fail_all(&mut batch, &format!("writer connection: {e}")));
                continue;
            }
        };
        let mut handle = match conn.lock_handle().await {
            Ok(h) => h,
            Err(e) => {
                span.in_scope(|| fail_all(&mut batch, &format!("writer connection: {e}")));
                continue;
            }
        };
        let _entered = span.enter();
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

/// The span of one batch: which database, how many writes; `commit_batch` records the outcome.
/// Debug level, so with the level off it is one cached check, no fields are formatted.
fn batch_span(db: &str, jobs: usize) -> tracing::Span {
    tracing::debug_span!(
        parent: None,
        "sqlite_commit",
        db,
        jobs,
        outcome = Empty,
        committed = Empty,
        failed = Empty
    )
}

/// Records a batch's outcome on the current (batch) span: `committed` (one transaction),
/// `one_by_one` (alone, or re-run write by write after a failed transaction, all committed),
/// `partial` or `failed`.
fn record_outcome(together: bool, committed: usize, failed: usize) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    let outcome = match (together, committed, failed) {
        (true, ..) => "committed",
        (false, _, 0) => "one_by_one",
        (false, 0, _) => "failed",
        (false, ..) => "partial",
    };
    span.record("outcome", outcome);
    span.record("committed", committed);
    span.record("failed", failed);
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
        Some(sync) => {
            let (synced, now): (Vec<_>, Vec<_>) = committed.into_iter().partition(|j| j.synced());
            now.into_iter().for_each(|j| j.succeed());
            if !synced.is_empty() {
                sync.after_commit(synced);
            }
        }
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
    record_outcome(false, 0, batch.len());
    for job in batch.drain(..) {
        job.fail(StoreError::Open(why.to_owned()));
    }
}

/// Commits the batch; returns the jobs that committed (to be answered), having answered the
/// ones that failed.
fn commit_batch(c: &Connection, batch: &mut Vec<Box<dyn Job>>) -> Vec<Box<dyn Job>> {
    if batch.len() > 1 && transaction(c, batch).is_ok() {
        record_outcome(true, batch.len(), 0);
        return std::mem::take(batch);
    }
    // One write alone, or a batch that failed: each write in its own transaction.
    let mut committed = Vec::with_capacity(batch.len());
    let mut failed = 0;
    for mut job in batch.drain(..) {
        match transaction(c, std::slice::from_mut(&mut job)) {
            Ok(()) => committed.push(job),
            Err(e) => {
                failed += 1;
                job.fail(e.into());
            }
        }
    }
    record_outcome(false, committed.len(), failed);
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
        let committer = Committer::start(Writer::Shared(pool.clone()), None, "c.db").unwrap();
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
        let committer = Committer::start(Writer::Shared(pool.clone()), Some(sync), "c.db").unwrap();
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
        let committer = Committer::start(Writer::Shared(pool.clone()), None, "c.db").unwrap();
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

    /// A span's name and its fields (as written with `{:?}`), new and recorded later.
    type Captured = (String, Vec<(String, String)>);

    #[derive(Clone, Default)]
    struct Spans(std::sync::Arc<std::sync::Mutex<Vec<Captured>>>);

    struct Fields<'a>(&'a mut Vec<(String, String)>);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
    }

    impl<S> tracing_subscriber::Layer<S> for Spans
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            id: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut fields = Vec::new();
            attrs.record(&mut Fields(&mut fields));
            let mut spans = self.0.lock().unwrap();
            spans.push((attrs.metadata().name().to_owned(), fields));
            // The index, to find the span again in `on_record`.
            spans
                .last_mut()
                .unwrap()
                .1
                .push(("#id".into(), id.into_u64().to_string()));
        }

        fn on_record(
            &self,
            id: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut spans = self.0.lock().unwrap();
            let id = id.into_u64().to_string();
            if let Some((_, fields)) = spans
                .iter_mut()
                .rev()
                .find(|(_, f)| f.iter().any(|(k, v)| k == "#id" && *v == id))
            {
                values.record(&mut Fields(fields));
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_batch_has_a_span_with_its_database_size_and_outcome() {
        use tracing_subscriber::layer::SubscriberExt as _;
        // The process-wide subscriber (set here, once): a thread-scoped one races with the
        // other tests' committers over SQLite callsites' cached interest. Their batches are
        // told apart by the database name.
        static SPANS: std::sync::OnceLock<Spans> = std::sync::OnceLock::new();
        let spans = SPANS.get_or_init(|| {
            let spans = Spans::default();
            let subscriber = tracing_subscriber::registry()
                .with(spans.clone())
                .with(tracing_subscriber::filter::LevelFilter::DEBUG);
            tracing::subscriber::set_global_default(subscriber).unwrap();
            spans
        });
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let committer = Committer::start(Writer::Shared(pool.clone()), None, "spans.db").unwrap();
        // Three writes queued before the committer runs: one batch of three.
        let results =
            futures::future::join_all([1, 2, 1].into_iter().map(|v| committer.run(insert(v))))
                .await;
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
        let spans = spans.0.lock().unwrap().clone();
        let batches: Vec<_> = spans
            .iter()
            .filter(|(name, fields)| {
                name == "sqlite_commit"
                    && fields
                        .iter()
                        .any(|f| f == &("db".into(), "\"spans.db\"".into()))
            })
            .map(|(_, fields)| {
                let get = |k: &str| {
                    fields
                        .iter()
                        .rev()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                (
                    get("db"),
                    get("jobs"),
                    get("outcome"),
                    get("committed"),
                    get("failed"),
                )
            })
            .collect();
        // Usually one batch of three, where the duplicate fails the transaction and the writes
        // are re-run one by one ("partial"); the committer may have woken up in between.
        let n = |v: &str| v.parse::<usize>().unwrap_or(0);
        let total = |i: fn(&(String, String, String, String, String)) -> &String| {
            batches.iter().map(|b| n(i(b))).sum::<usize>()
        };
        assert!(!batches.is_empty(), "{spans:?}");
        assert!(
            batches.iter().all(|b| [
                "\"committed\"",
                "\"one_by_one\"",
                "\"partial\"",
                "\"failed\""
            ]
            .contains(&b.2.as_str())),
            "{batches:?}"
        );
        assert_eq!(
            (total(|b| &b.1), total(|b| &b.3), total(|b| &b.4)),
            (3, 2, 1),
            "{batches:?}"
        );
    }
}

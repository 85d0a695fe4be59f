//! Group commit for SQLite.
//!
//! SQLite has one writer, and with sqlx every statement is a hand-off to the connection's
//! thread and back. Committing each small task write on its own therefore spends most of its
//! time in thread wake-ups and in writing the same B-tree pages to the WAL again and again.
//! The committer owns the write path instead: concurrent writes queue up, and each turn takes
//! everything queued (up to [`MAX_BATCH`]) into one transaction, inserts all their history
//! events with one multi-row statement, and commits once. Nobody is answered before the commit,
//! so "answered" still means "durable".
//!
//! A write is a re-runnable closure. If anything in a batch fails, the batch is rolled back and
//! every write in it is run again alone, so one bad write never takes others down with it and
//! each caller gets its own error.

use futures::future::BoxFuture;
use sqlx::{Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{EventRecord, StoreError, StoreResult};
use crate::domain::Millis;

/// Upper bound on writes per transaction: large enough to amortise the commit, small enough
/// that the first writer in a batch does not wait long for the last.
const MAX_BATCH: usize = 128;
/// Rows per multi-row event insert (6 parameters each, far below SQLite's limit).
pub(crate) const EVENT_CHUNK: usize = 500;

/// A history event a write wants appended in its transaction.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
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
            detail: event.detail.as_ref().map(|d| d.to_string()),
        }
    }
}

/// Inserts queued events with as few statements as possible. A macro because the builder's
/// database type differs per dialect.
macro_rules! flush_events {
    ($db:ty, $exec:expr, $events:expr) => {
        async {
            for chunk in $events.chunks($crate::store::commit::EVENT_CHUNK) {
                let mut b = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO task_events (task_id, instance_id, at, kind, actor, detail) ",
                );
                b.push_values(chunk, |mut row, e| {
                    row.push_bind(e.task_id.as_str())
                        .push_bind(e.instance_id.as_str())
                        .push_bind(e.at)
                        .push_bind(e.kind)
                        .push_bind(e.actor.as_str())
                        .push_bind(e.detail.as_deref());
                });
                b.build().execute(&mut *$exec).await?;
            }
            Ok::<(), sqlx::Error>(())
        }
    };
}
pub(crate) use flush_events;

/// A unit of work on the writer connection. It may run more than once (see the module docs),
/// so it must not consume what it captures.
pub(crate) type Work<T> = Box<
    dyn for<'c> FnMut(
            &'c mut SqliteConnection,
            &'c mut Vec<PendingEvent>,
        ) -> BoxFuture<'c, sqlx::Result<T>>
        + Send,
>;

trait Job: Send {
    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
        events: &'c mut Vec<PendingEvent>,
    ) -> BoxFuture<'c, sqlx::Result<()>>;
    fn succeed(self: Box<Self>);
    fn fail(self: Box<Self>, error: StoreError);
}

struct Typed<T> {
    work: Work<T>,
    out: Option<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T: Send + 'static> Job for Typed<T> {
    fn run<'c>(
        &'c mut self,
        conn: &'c mut SqliteConnection,
        events: &'c mut Vec<PendingEvent>,
    ) -> BoxFuture<'c, sqlx::Result<()>> {
        Box::pin(async move {
            self.out = Some((self.work)(conn, events).await?);
            Ok(())
        })
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

/// Wraps a closure as [`Work`]; a function so the closure's higher-ranked signature is inferred.
pub(crate) fn work<T, F>(f: F) -> Work<T>
where
    F: for<'c> FnMut(
            &'c mut SqliteConnection,
            &'c mut Vec<PendingEvent>,
        ) -> BoxFuture<'c, sqlx::Result<T>>
        + Send
        + 'static,
{
    Box::new(f)
}

/// Handle to a store's committer task. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Box<dyn Job>>,
}

impl Committer {
    /// Starts the committer for a pool. It takes the writer connection per batch, so writes
    /// outside the committer (rare, administrative) still interleave with it.
    ///
    /// The committer gets an OS thread (and a small runtime) of its own: every statement is a
    /// round trip to the connection's thread, and as one task among thousands of HTTP tasks it
    /// would wait for a turn on every round trip.
    pub fn start(pool: SqlitePool) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Open(format!("group commit runtime: {e}")))?;
        std::thread::Builder::new()
            .name("hopper-commit".into())
            .spawn(move || rt.block_on(run(pool, rx)))
            .map_err(|e| StoreError::Open(format!("group commit thread: {e}")))?;
        Ok(Self { tx })
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

async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("hopper_store_commit_batch_size").record(batch.len() as f64);
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                for job in batch.drain(..) {
                    job.fail(StoreError::Open(format!("writer connection: {msg}")));
                }
                continue;
            }
        };
        if batch.len() > 1 && together(&mut conn, &mut batch).await.is_ok() {
            for job in batch.drain(..) {
                job.succeed();
            }
            continue;
        }
        // One write alone, or a batch that failed: each write in its own transaction.
        for mut job in batch.drain(..) {
            match alone(&mut conn, job.as_mut()).await {
                Ok(()) => job.succeed(),
                Err(e) => job.fail(e.into()),
            }
        }
    }
}

async fn together(conn: &mut SqliteConnection, batch: &mut [Box<dyn Job>]) -> sqlx::Result<()> {
    let mut tx = conn.begin().await?;
    let mut events = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        job.run(&mut tx, &mut events).await?;
    }
    flush_events!(sqlx::Sqlite, tx, events).await?;
    tx.commit().await
}

async fn alone(conn: &mut SqliteConnection, job: &mut dyn Job) -> sqlx::Result<()> {
    let mut tx = conn.begin().await?;
    let mut events = Vec::new();
    job.run(&mut tx, &mut events).await?;
    flush_events!(sqlx::Sqlite, tx, events).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
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
            Box::pin(async move {
                sqlx::query("INSERT INTO t (v) VALUES ($1)")
                    .bind(v)
                    .execute(&mut *c)
                    .await?;
                let ev = EventRecord::new("inserted", "test");
                events.push(PendingEvent::new(&v.to_string(), "i", 0, &ev));
                Ok(v)
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_does_not_take_its_batch_down() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let committer = Committer::start(pool.clone()).unwrap();
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
    async fn answers_come_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path()).await;
        let committer = Committer::start(pool.clone()).unwrap();
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

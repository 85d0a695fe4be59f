//! WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside whichever
//! commit crosses the threshold, so that commit (and every write queued behind it in the group
//! commit) waits for the copy and its fsync. Instead the writer never checkpoints
//! (`wal_autocheckpoint=0`) and this task, on a connection of its own, runs a PASSIVE
//! checkpoint every quarter second: it copies what it can without blocking the writer or
//! readers, and syncs the database file.
//!
//! Under steady writes that alone never lets the WAL start over: the writer appends frames
//! while the checkpoint runs, so the checkpoint never reaches the end, and SQLite only reuses
//! the WAL from its start once a checkpoint has. The file then grows without bound (2 GB in a
//! 10-second benchmark), and every append lands on fresh blocks the file system must allocate
//! and zero. So once the WAL holds more than [`FINISH_FRAMES`], this task asks the committer
//! to run a checkpoint itself between two batches: only the frames written since are left to
//! copy, nothing is appended meanwhile, and the next batch rewinds the WAL.

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{ConnectOptions, Connection};

use super::commit::Committer;

const EVERY: Duration = Duration::from_millis(50);
/// WAL frames (pages, plus a 24-byte header each) above which the writer finishes the job:
/// 64 MiB, as `journal_size_limit` cuts the file back to.
pub(super) const FINISH_FRAMES: i64 = 16_384;

/// Runs until `writer` is closed.
pub(super) fn spawn(
    database: PathBuf,
    opts: SqliteConnectOptions,
    writer: SqlitePool,
    committer: Committer,
    finish_frames: i64,
) {
    tokio::spawn(async move {
        let Ok(mut conn) = opts.connect().await else {
            tracing::warn!("no checkpoint connection: the WAL is checkpointed on close only");
            return;
        };
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !writer.is_closed() {
            tick.tick().await;
            // (busy, frames in the WAL, frames copied)
            let done: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut conn)
                .await;
            let log = match done {
                Ok((_, log, _)) => log,
                Err(e) => {
                    tracing::debug!(error = %e, "checkpoint skipped");
                    continue;
                }
            };
            // SQLite syncs the database only after a checkpoint that reached the end of the
            // WAL, which under steady writes is never this one; the pages it copied would then
            // all be flushed by the writer's checkpoint, on the write path. Flush them here.
            let db = database.clone();
            match tokio::task::spawn_blocking(move || File::open(db)?.sync_data()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "fsync after checkpoint failed"),
                Err(e) => tracing::warn!(error = %e, "fsync after checkpoint did not run"),
            }
            if log > finish_frames {
                committer.request_checkpoint();
            }
        }
        let _ = conn.close().await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::commit::{Writer, work};
    use crate::store::durable::WalSync;
    use crate::store::lite;
    use sqlx::sqlite::{SqliteJournalMode, SqlitePoolOptions};

    /// Under writes that never pause, the WAL must still start over, so its file stays small.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_steady_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER PRIMARY KEY, pad BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        let own = opts.connect().await.unwrap();
        let sync = WalSync::start(&path).unwrap();
        let committer = Committer::start(Writer::Own(own), Some(sync)).unwrap();
        spawn(path.clone(), opts, pool.clone(), committer.clone(), 64);
        // 16 MB in rows of 4 KB, written by 32 writers that never stop.
        let rows = 4_000;
        let writers = (0..32).map(|w| {
            let committer = committer.clone();
            async move {
                for v in (w..rows).step_by(32) {
                    committer
                        .run(work(move |c, _| {
                            lite::query(c, "INSERT INTO t (v, pad) VALUES ($1, zeroblob(4096))")?
                                .bind(v)
                                .execute()
                        }))
                        .await
                        .unwrap();
                }
            }
        });
        futures::future::join_all(writers).await;
        let wal = std::fs::metadata(dir.path().join("w.db-wal"))
            .unwrap()
            .len();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, rows as i64);
        assert!(
            wal < 8 << 20,
            "the WAL grew to {wal} bytes for 16 MB written"
        );
    }
}

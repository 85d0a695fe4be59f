//! WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside whichever
//! commit crosses the threshold, so that commit (and every write queued behind it in the group
//! commit) waits for the copy and its fsync. Instead the writer never checkpoints
//! (`wal_autocheckpoint=0`) and this task, on a connection of its own, runs a PASSIVE
//! checkpoint every half second: it copies what it can without blocking the writer or readers.

use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{ConnectOptions, Connection};

const EVERY: Duration = Duration::from_millis(500);

/// Runs until `writer` is closed.
pub(super) fn spawn(opts: SqliteConnectOptions, writer: SqlitePool) {
    tokio::spawn(async move {
        let Ok(mut conn) = opts.connect().await else {
            tracing::warn!("no checkpoint connection: the WAL is checkpointed on close only");
            return;
        };
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !writer.is_closed() {
            tick.tick().await;
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut conn)
                .await
            {
                tracing::debug!(error = %e, "checkpoint skipped");
            }
        }
        let _ = conn.close().await;
    });
}

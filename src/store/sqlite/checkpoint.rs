//! WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside whichever
//! commit crosses the threshold, so that commit (and every write queued behind it in the group
//! commit) waits for the copy and its fsync. Instead the writer never checkpoints
//! (`wal_autocheckpoint=0`) and this task, on a connection of its own, runs a PASSIVE
//! checkpoint every 50 ms (`EVERY`): it copies what it can without blocking the writer or
//! readers, and syncs the database file.
//!
//! Under steady writes that alone never lets the WAL start over: the writer appends frames
//! while the checkpoint runs, so the checkpoint never reaches the end, and SQLite only reuses
//! the WAL from its start once a checkpoint has. The file then grows without bound (2 GB in a
//! 10-second benchmark), and every append lands on fresh blocks the file system must allocate
//! and zero. So once a commit leaves more than [`FINISH_FRAMES`] in the WAL (SQLite's WAL hook
//! tells the writer, see [`WalFrames`]), the committer runs a checkpoint itself before its next
//! batch: only the frames written since this task's last pass are left to copy, nothing is
//! appended meanwhile, and the next batch rewinds the WAL. The bound holds however late this
//! task runs (an earlier design had it ask the writer, and a slow fsync let the WAL run away).

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rusqlite::OpenFlags;
use rusqlite::ffi;
use sqlx::sqlite::SqlitePool;

const EVERY: Duration = Duration::from_millis(50);
/// WAL frames (pages, plus a 24-byte header each) above which the writer finishes the job:
/// 64 MiB, as `journal_size_limit` cuts the file back to.
pub(super) const FINISH_FRAMES: i64 = 16_384;

/// How many frames the WAL held after the writer's last commit, kept up to date by SQLite's
/// WAL hook on the writer connection for as long as this lives.
pub(super) struct WalFrames<'c> {
    conn: &'c rusqlite::Connection,
    frames: Box<AtomicI64>,
}

/// SQLite calls this after each commit that wrote to the WAL, on the committing thread.
extern "C" fn on_wal_commit(
    frames: *mut c_void,
    _db: *mut ffi::sqlite3,
    _schema: *const c_char,
    in_wal: c_int,
) -> c_int {
    // SAFETY: `frames` is the `AtomicI64` a live `WalFrames` registered (see `watch`).
    #[allow(unsafe_code)]
    let frames = unsafe { &*(frames as *const AtomicI64) };
    frames.store(i64::from(in_wal), Ordering::Relaxed);
    ffi::SQLITE_OK
}

impl<'c> WalFrames<'c> {
    /// Registers the hook. The writer never auto-checkpoints (`wal_autocheckpoint=0`), so this
    /// replaces nothing SQLite needs.
    #[allow(unsafe_code)]
    pub fn watch(conn: &'c rusqlite::Connection) -> Self {
        let frames = Box::new(AtomicI64::new(0));
        let arg = (&*frames as *const AtomicI64).cast_mut().cast::<c_void>();
        // SAFETY: the handle is open for `'c`; the box outlives the registration, which
        // `drop` removes before freeing it.
        unsafe { ffi::sqlite3_wal_hook(conn.handle(), Some(on_wal_commit), arg) };
        Self { conn, frames }
    }

    pub fn get(&self) -> i64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// After a checkpoint that reached the end: the next commit starts the WAL over.
    pub fn reset(&self) {
        self.frames.store(0, Ordering::Relaxed);
    }
}

impl Drop for WalFrames<'_> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: as in `watch`; afterwards SQLite holds no pointer to `frames`.
        unsafe { ffi::sqlite3_wal_hook(self.conn.handle(), None, std::ptr::null_mut()) };
    }
}

/// Runs until `writer` is closed or the store is gone (`alive` cannot be upgraded).
///
/// The pass runs on a rusqlite connection of its own (moved to a blocking thread for each
/// pass), and it syncs the database file through that connection's own file handle
/// ([`sync_database`]), never through a file this process opens and closes beside SQLite:
/// closing any descriptor of the database file drops every POSIX lock the process holds on it
/// (SQLite's "how to corrupt" 2.2). Without its shared lock, another process that closes its
/// last connection (a local `hopper` command beside `hopper serve`) believes it is the last
/// one, checkpoints, and deletes the WAL and the WAL index from under this process, whose
/// later commits then go to a deleted file while newcomers start a fresh WAL: two histories
/// checkpointed into one file, and answered writes lost.
pub(super) fn spawn(database: PathBuf, writer: SqlitePool, alive: std::sync::Weak<()>) {
    tokio::spawn(async move {
        let open = tokio::task::spawn_blocking(move || {
            rusqlite::Connection::open_with_flags(
                &database,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        });
        let Ok(Ok(mut conn)) = open.await else {
            tracing::warn!("no checkpoint connection: the WAL is checkpointed on close only");
            return;
        };
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Frames copied as of the last sync: a pass that copied nothing new needs none.
        let mut synced = 0;
        while !writer.is_closed() && alive.strong_count() > 0 {
            tick.tick().await;
            let pass = tokio::task::spawn_blocking(move || {
                let result = pass(&conn, synced);
                (conn, result)
            });
            let Ok((back, result)) = pass.await else {
                tracing::warn!("checkpoint pass did not run");
                return;
            };
            conn = back;
            match result {
                Ok(copied) => synced = copied,
                Err(e) => tracing::debug!(error = %e, "checkpoint skipped"),
            }
        }
        // Closed by SQLite, which keeps the descriptor open while the process still holds
        // locks on the file through its other connections.
        drop(tokio::task::spawn_blocking(move || drop(conn)));
    });
}

/// One PASSIVE checkpoint, then a sync of the database file if it copied anything since
/// `synced` frames. Returns the frames copied so far.
fn pass(c: &rusqlite::Connection, synced: i64) -> rusqlite::Result<i64> {
    // (busy, frames in the WAL, frames copied)
    let (_, _, copied): (i64, i64, i64) =
        c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    // SQLite syncs the database only after a checkpoint that reached the end of the WAL, which
    // under steady writes is never this one; the pages it copied would then all be flushed by
    // the writer's checkpoint, on the write path. Flush them here.
    if copied > 0 && copied != synced {
        sync_database(c)?;
    }
    Ok(copied)
}

/// fdatasync of the database file, through the connection's own descriptor (see [`spawn`]
/// for why not a descriptor of ours).
#[allow(unsafe_code)]
fn sync_database(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `c` is an open connection, used only on this thread for the duration. The file
    // control writes the main database's `sqlite3_file` (owned by the connection, open while
    // it is) into `file`; its methods' `xSync` is the VFS's own sync of that descriptor, valid
    // to call outside a transaction. Nothing is kept past the call.
    let rc = unsafe {
        let rc = ffi::sqlite3_file_control(
            c.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast::<c_void>(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
            rc
        } else {
            match (*(*file).pMethods).xSync {
                Some(sync) => sync(file, ffi::SQLITE_SYNC_NORMAL | ffi::SQLITE_SYNC_DATAONLY),
                None => ffi::SQLITE_OK,
            }
        }
    };
    match rc {
        ffi::SQLITE_OK => Ok(()),
        rc => Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::commit::{Committer, Writer, work};
    use crate::store::sqlite::durable::WalSync;
    use crate::store::sqlite::lite;
    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    /// Under writes that never pause, the WAL must still start over, so its file stays small,
    /// whenever the background pass happens to run.
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
        let own = Writer::Own {
            conn: own,
            finish_frames: 64,
            gate: Default::default(),
        };
        let committer = Committer::start(own, Some(sync), "t.db").unwrap();
        let alive = std::sync::Arc::new(());
        spawn(
            path.clone(),
            pool.clone(),
            std::sync::Arc::downgrade(&alive),
        );
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

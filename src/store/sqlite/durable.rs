//! Making SQLite commits durable off the writer's thread.
//!
//! With `synchronous=FULL` every COMMIT waits for an fsync of the WAL, and the single writer
//! sits idle for it: nothing else can be written meanwhile. Instead the writer commits with
//! `synchronous=NORMAL` (frames reach the WAL file, not yet the disk) and hands the batch's
//! callers to this thread, which fsyncs the WAL and only then answers them. The writer runs
//! the next batch during that fsync, and one fsync covers every batch committed before it.
//!
//! The hand-over is a rendezvous: the committer waits for this thread to take a batch before
//! it commits the next one. So at most one batch is committed per fsync, and the writes that
//! arrive meanwhile queue up into one large batch instead of many small ones. Each batch
//! rewrites the B-tree pages it touches (the last leaf of every table and index) into the
//! WAL, so fewer batches means far fewer pages written per write; latency does not suffer,
//! because nobody could be answered before the running fsync ends anyway. A batch of unsynced
//! writes only (`commit_unsynced`: claims, outbox deletes) is answered at its commit and not
//! handed over at all.
//!
//! "Answered" keeps meaning "on disk": the WAL is append-only between checkpoints, so an fsync
//! that starts after a commit returned covers that commit; and if a checkpoint copied the
//! frames into the database first, that checkpoint synced the database file itself. A commit
//! is visible to readers a moment before it is durable (one fsync at most); every answer that
//! depends on it comes after a later fsync, which covers it too.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::commit::Job;
use crate::store::error::StoreError;

/// Handle to the fsync thread of one database file.
#[derive(Debug)]
pub(super) struct WalSync {
    tx: mpsc::SyncSender<Vec<Box<dyn Job>>>,
}

impl WalSync {
    /// `database` is the SQLite file; its WAL is `{database}-wal`.
    pub fn start(database: &Path) -> Result<Self, StoreError> {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let dir = database.parent().map(Path::to_owned);
        let (tx, rx) = mpsc::sync_channel(0);
        std::thread::Builder::new()
            .name("hopper-fsync".into())
            .spawn(move || run(&wal, dir.as_deref(), &rx))
            .map_err(|e| StoreError::Open(format!("fsync thread: {e}")))?;
        Ok(Self { tx })
    }

    /// Answers `jobs` (all committed) once the WAL holding them is on disk. Blocks until the
    /// fsync thread is free to take them (see the module docs).
    pub fn after_commit(&self, jobs: Vec<Box<dyn Job>>) {
        if let Err(mpsc::SendError(jobs)) = self.tx.send(jobs) {
            for job in jobs {
                job.fail(StoreError::Open("the fsync thread has stopped".into()));
            }
        }
    }
}

fn run(wal: &Path, dir: Option<&Path>, rx: &mpsc::Receiver<Vec<Box<dyn Job>>>) {
    let mut dir_synced = false;
    while let Ok(mut jobs) = rx.recv() {
        // Everything committed so far rides on this one fsync.
        while let Ok(more) = rx.try_recv() {
            jobs.extend(more);
        }
        let result = sync(wal).and_then(|()| {
            // The WAL file's directory entry must be durable too, once.
            if !dir_synced && let Some(d) = dir {
                File::open(d)?.sync_all()?;
                dir_synced = true;
            }
            Ok(())
        });
        match result {
            Ok(()) => jobs.into_iter().for_each(|j| j.succeed()),
            Err(e) => {
                // After a failed fsync the kernel may have dropped the pages: nothing in this
                // group can be promised.
                tracing::error!(wal = %wal.display(), error = %e, "fsync of the WAL failed");
                for job in jobs {
                    job.fail(StoreError::Open(format!("fsync of the WAL failed: {e}")));
                }
            }
        }
    }
}

/// Opened anew each time: the WAL is deleted when the last connection closes (after a full
/// checkpoint, which synced the database) and a new one may take its place.
fn sync(wal: &Path) -> io::Result<()> {
    match File::open(wal) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

//! Two processes on one SQLite file: a running Hopper and a local `hopper` command beside it
//! (the README's `hopper events list` while `hopper serve` runs).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hopper::domain::{InstanceId, TaskDraft};

/// The WAL and WAL-index files under `dir`, with their inodes.
fn wal_files(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let meta = entry.metadata().unwrap();
            let name = path.to_string_lossy();
            if meta.is_dir() {
                dirs.push(path);
            } else if name.ends_with("-wal") || name.ends_with("-shm") {
                files.insert(path, meta.ino());
            }
        }
    }
    files
}

fn local_list(data_dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hopper"))
        .args(["list", "--json"])
        .env("HOPPER_DATA_DIR", data_dir)
        .env_remove("HOPPER_DATABASE_URL")
        .env_remove("HOPPER_URL")
        .env_remove("HOPPER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A process that closes its last connection takes an exclusive lock on the database file to
/// learn whether it was the last one anywhere; if it gets it, it checkpoints and deletes the
/// WAL and its index. The running process's shared lock must therefore hold for as long as
/// it has the file open: the background checkpoint once synced the file through a descriptor
/// of its own, and closing that descriptor dropped every lock of the process on the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_command_closing_beside_a_running_process_leaves_its_wal_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = hopper::config::ConfigSet::embedded();
    configs.root.server.data_dir = dir.path().display().to_string();
    let engine = hopper::Engine::open(configs).await.unwrap();
    engine
        .add_task(&InstanceId::global(), TaskDraft::new("before the command"))
        .await
        .unwrap();
    // Several background checkpoint passes, each with its sync of the database file.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = wal_files(dir.path());
    assert!(!before.is_empty(), "the running process has a WAL open");

    assert!(local_list(dir.path()).contains("before the command"));
    assert_eq!(
        wal_files(dir.path()),
        before,
        "the command's close deleted (or replaced) the running process's WAL files"
    );

    // And the two still share one history: what the running process writes now, the next
    // command reads.
    engine
        .add_task(&InstanceId::global(), TaskDraft::new("after the command"))
        .await
        .unwrap();
    assert!(local_list(dir.path()).contains("after the command"));
    engine.close().await;
}

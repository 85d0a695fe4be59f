//! The `hopper` binary, run as a user would: on the local database, then against a server.

use std::process::Command;

use serde_json::Value;

use crate::support::{Backend, TestEnv, TestServer};

fn hopper(args: &[&str], data_dir: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hopper"))
        .args(args)
        .env("HOPPER_DATA_DIR", data_dir)
        .env_remove("HOPPER_DATABASE_URL")
        .env_remove("HOPPER_URL")
        .env_remove("HOPPER_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn local_mode_adds_lists_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = hopper(
        &[
            "add",
            "Fix typo in README",
            "--project",
            "docs",
            "--tags",
            "docs,small",
            "--json",
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    let task: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(task["status"], "routed");
    assert!(
        dir.path().join("hopper.db").exists(),
        "embedded SQLite default"
    );

    let (ok, out, _) = hopper(
        &[
            "next",
            "--instance",
            "hopper-docs",
            "--executor",
            "me",
            "--json",
        ],
        dir.path(),
    );
    assert!(ok);
    let child: Value = serde_json::from_str(&out).unwrap();
    let id = child["id"].as_str().unwrap();
    let lease = child["lease_id"].as_str().unwrap();
    let (ok, _, err) = hopper(
        &["complete", id, "--executor", "me", "--quality", "4.5"],
        dir.path(),
    );
    assert!(!ok, "an executor must present its lease");
    let (ok, _, err2) = hopper(
        &[
            "complete",
            id,
            "--executor",
            "me",
            "--lease",
            lease,
            "--quality",
            "4.5",
        ],
        dir.path(),
    );
    assert!(ok, "{err} / {err2}");
    let (ok, out, _) = hopper(
        &["show", task["id"].as_str().unwrap(), "--json"],
        dir.path(),
    );
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["task"]["status"], "done");
    assert_eq!(shown["task"]["feedback"]["quality_score"], 4.5);

    let (ok, out, _) = hopper(&["instances", "tree"], dir.path());
    assert!(ok);
    assert!(
        out.contains("hopper-global") && out.contains("└─ hopper-docs"),
        "{out}"
    );
    let (ok, out, _) = hopper(&["list", "--instance", "hopper-docs"], dir.path());
    assert!(
        ok && out.contains("Fix typo in README") && out.contains("done"),
        "{out}"
    );

    let (ok, _, err) = hopper(&["complete", "task_nope"], dir.path());
    assert!(!ok && err.contains("task id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_mode_talks_to_a_server() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = TestServer::start(&env).await;
    let (base, token) = (server.base.clone(), server.token.clone());
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let dir = dir.path();
        let add = hopper(
            &[
                "--server",
                &base,
                "--token",
                &token,
                "add",
                "Remote task",
                "--priority",
                "high",
                "--json",
            ],
            dir,
        );
        let stats = hopper(
            &["--server", &base, "--token", &token, "stats", "--json"],
            dir,
        );
        let bad = hopper(&["--server", &base, "--token", "wrong", "stats"], dir);
        (add, stats, bad)
    })
    .await
    .unwrap();
    let (add, stats, bad) = out;
    assert!(add.0, "{}", add.2);
    let task: Value = serde_json::from_str(&add.1).unwrap();
    assert_eq!(task["priority"], "high");
    assert_eq!(task["source"]["kind"], "cli");
    let stats: Value = serde_json::from_str(&stats.1).unwrap();
    assert_eq!(stats["tasks"]["pending"], 1);
    assert!(!bad.0 && bad.2.contains("bearer token"), "{}", bad.2);
    assert_eq!(
        server
            .engine
            .stats(&hopper::domain::InstanceId::global())
            .await
            .unwrap()
            .total,
        1
    );
}

//! `hopper status`, `hopper tasks --hierarchy` and `hopper instances list` on the local
//! database, read as a user would read them.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `hopper` on the embedded database in `dir`: (success, stdout, stderr).
pub(super) fn hopper(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hopper"));
    for k in [
        "HOPPER_DATABASE_URL",
        "HOPPER_URL",
        "HOPPER_CONFIG",
        "HOPPER_LOG_FORMAT",
        "RUST_LOG",
    ] {
        cmd.env_remove(k);
    }
    let out = cmd
        .args(args)
        .env("HOPPER_DATA_DIR", dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(args: &[&str], dir: &Path) -> String {
    let (ok, out, err) = hopper(args, dir, &[]);
    assert!(ok, "hopper {args:?}: {err}");
    out
}

/// The table rows (header dropped), split into columns.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
fn status_hierarchy_and_instances_in_local_mode() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let routed: Value = serde_json::from_str(&run(
        &["add", "Fix typo", "--project", "docs", "--json"],
        dir,
    ))
    .unwrap();
    assert_eq!(routed["status"], "routed");
    let triage: Value = serde_json::from_str(&run(&["add", "Loose end", "--json"], dir)).unwrap();
    assert_eq!(
        (&triage["status"], &triage["instance_id"]),
        (&Value::from("pending"), &Value::from("hopper-global"))
    );
    let (routed_id, triage_id) = (
        routed["id"].as_str().unwrap(),
        triage["id"].as_str().unwrap(),
    );

    // status: who the instance is, its parent, its counts, its children.
    let out = run(&["status", "--instance", "hopper-docs"], dir);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "hopper-docs  scope=project  status=running",
        "{out}"
    );
    assert_eq!(lines[1], "parent: hopper-global", "{out}");
    assert!(
        lines[2].starts_with("hopper-docs: 1 tasks (") && lines[2].contains(" pending=1 "),
        "{out}"
    );
    let out = run(&["status"], dir);
    assert!(
        out.starts_with("hopper-global  scope=global  status=running\n"),
        "{out}"
    );
    assert!(!out.contains("parent:"), "the root has none: {out}");
    assert!(
        out.contains("hopper-global: 2 tasks (")
            && out.contains(" pending=1 ")
            && out.contains(" routed=1)"),
        "{out}"
    );
    assert!(out.contains("\nchildren: hopper-docs\n"), "{out}");
    let json: Value = serde_json::from_str(&run(&["status", "--json"], dir)).unwrap();
    assert_eq!(json["instance"]["scope"], "global");
    assert_eq!(json["stats"]["total"], 2);
    assert_eq!(json["stats"]["children"][0], "hopper-docs");

    // tasks: the instance's own; with --hierarchy its descendants' too, with their instance.
    let own = run(&["tasks"], dir);
    let mut own_ids: Vec<&str> = rows(&own).iter().map(|r| r[0]).collect();
    own_ids.sort();
    let mut want = vec![routed_id, triage_id];
    want.sort();
    assert_eq!(own_ids, want, "{own}");
    let all = run(&["tasks", "--hierarchy"], dir);
    let header: Vec<&str> = all.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "STATUS", "PRIO", "INSTANCE", "TITLE"],
        "{all}"
    );
    let all_rows = rows(&all);
    assert_eq!(all_rows.len(), 3, "{all}");
    let child = all_rows
        .iter()
        .find(|r| r[0] != routed_id && r[0] != triage_id)
        .unwrap();
    assert_eq!(
        child[1..],
        ["pending", "normal", "hopper-docs", "Fix", "typo"],
        "{all}"
    );
    let parent = all_rows.iter().find(|r| r[0] == routed_id).unwrap();
    assert_eq!(parent[1..4], ["routed", "normal", "hopper-global"], "{all}");
    let pending = run(&["tasks", "--hierarchy", "--status", "pending"], dir);
    assert_eq!(rows(&pending).len(), 2, "{pending}");
    assert!(!pending.contains(routed_id), "{pending}");

    // instances list: both, with scope, status and parent; filtered by scope.
    let list = run(&["instances", "list"], dir);
    let header: Vec<&str> = list.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["INSTANCE", "SCOPE", "STATUS", "PARENT"], "{list}");
    let mut got = rows(&list);
    got.sort();
    assert_eq!(
        got,
        [
            vec!["hopper-docs", "project", "running", "hopper-global"],
            vec!["hopper-global", "global", "running"],
        ],
        "{list}"
    );
    let projects = run(&["instances", "list", "--scope", "project"], dir);
    assert_eq!(
        rows(&projects),
        [vec!["hopper-docs", "project", "running", "hopper-global"]]
    );
    let json: Value = serde_json::from_str(&run(&["instances", "list", "--json"], dir)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
}

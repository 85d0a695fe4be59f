//! `HOPPER_LOG_FORMAT`: JSON lines a collector can parse, carrying the ids of the spans they
//! were logged in; text by default; anything else refused at start-up.

use serde_json::Value;

use super::cli_local::hopper;

const JSON: (&str, &str) = ("HOPPER_LOG_FORMAT", "json");

/// Every stderr line as a JSON object; panics on a line that is not one.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

/// The span named `name` among those a line was logged in.
fn span<'a>(line: &'a Value, name: &str) -> &'a Value {
    line["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no `{name}` span: {line}"))
}

#[test]
fn json_log_lines_parse_and_bad_formats_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (ok, out, err) = hopper(&["migrate"], dir, &[JSON, ("RUST_LOG", "info")]);
    assert!(ok, "{err}");
    assert_eq!(
        out, "migrations applied\n",
        "stdout is the CLI's, not the log's"
    );
    let lines = json_lines(&err);
    assert!(!lines.is_empty(), "opening a store is logged at info");
    for l in &lines {
        assert!(l["timestamp"].is_string(), "{l}");
        assert!(
            ["INFO", "WARN", "ERROR"].contains(&l["level"].as_str().unwrap()),
            "{l}"
        );
        assert!(l["fields"].is_object() && l["target"].is_string(), "{l}");
    }
    assert!(lines.iter().any(|l| message(l) == "store opened"), "{err}");

    // A fatal error is a JSON line too.
    let (ok, _, err) = hopper(&["complete", "task_nope"], dir, &[JSON]);
    assert!(!ok);
    let lines = json_lines(&err);
    let fatal = lines.last().unwrap();
    assert_eq!(fatal["level"], "ERROR", "{err}");
    assert!(message(fatal).contains("task id"), "{err}");

    // Text stays the default (and `text` says so explicitly).
    let info = ("RUST_LOG", "info");
    for env in [&[info][..], &[info, ("HOPPER_LOG_FORMAT", "Text")][..]] {
        let (ok, _, err) = hopper(&["migrate"], dir, env);
        assert!(ok, "{err}");
        let line = err.lines().find(|l| l.contains("store opened")).unwrap();
        assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
        assert!(line.contains(" INFO "), "{line}");
    }

    // Anything else stops before anything is opened.
    let fresh = tempfile::tempdir().unwrap();
    let (ok, out, err) = hopper(&["migrate"], fresh.path(), &[("HOPPER_LOG_FORMAT", "yaml")]);
    assert!(!ok && out.is_empty());
    assert_eq!(
        err.trim_end(),
        "error: HOPPER_LOG_FORMAT `yaml`: expected `text` or `json`"
    );
    assert!(
        !fresh.path().join("hopper.db").exists(),
        "nothing was opened"
    );
}

/// A line logged while routing (a project instance is created for the task) carries the task
/// id, instance and decision of the spans it was logged in; so does one logged while a child
/// task's completion bubbles up, with the finish span's executor and status.
#[test]
fn span_ids_reach_lines_logged_inside_them() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let env = [JSON, ("RUST_LOG", "info")];
    let (ok, out, err) = hopper(
        &["add", "Fix typo", "--project", "docs", "--json"],
        dir,
        &env,
    );
    assert!(ok, "{err}");
    let task: Value = serde_json::from_str(&out).unwrap();
    let id = task["id"].as_str().unwrap();
    let lines = json_lines(&err);
    let created = lines
        .iter()
        .find(|l| message(l) == "instance created")
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(created["fields"]["instance"], "hopper-docs", "{created}");
    let add = span(created, "add_task");
    assert_eq!(
        (&add["task_id"], &add["instance"]),
        (&task["id"], &task["instance_id"])
    );
    let route = span(created, "route");
    assert_eq!(route["task_id"], id, "{created}");
    assert_eq!(route["instance"], "hopper-global");
    assert_eq!(route["decision"], "Project(\"docs\")", "{created}");
    assert_eq!(created["span"]["name"], "route", "the innermost span");

    // Claim and complete the project's task with debug on for the engine: the bubble to the
    // global task is logged inside `finish` and `bubble`.
    let (ok, out, err) = hopper(
        &[
            "next",
            "--instance",
            "hopper-docs",
            "--executor",
            "w1",
            "--json",
        ],
        dir,
        &env,
    );
    assert!(ok, "{err}");
    let child: Value = serde_json::from_str(&out).unwrap();
    let (child_id, lease) = (
        child["id"].as_str().unwrap(),
        child["lease_id"].as_str().unwrap(),
    );
    let debug = [JSON, ("RUST_LOG", "info,hopper::engine=debug")];
    let (ok, _, err) = hopper(
        &["complete", child_id, "--executor", "w1", "--lease", lease],
        dir,
        &debug,
    );
    assert!(ok, "{err}");
    let lines = json_lines(&err);
    let bubbled = lines
        .iter()
        .find(|l| message(l) == "parent task finished by its child")
        .unwrap_or_else(|| panic!("{err}"));
    let finish = span(bubbled, "finish");
    assert_eq!(finish["task_id"], child_id);
    assert_eq!(finish["status"], "done");
    assert_eq!(finish["executor"], "w1");
    assert_eq!(finish["instance"], "hopper-docs");
    let bubble = span(bubbled, "bubble");
    assert_eq!(
        (&bubble["task_id"], &bubble["parent_task"]),
        (&child["id"], &task["id"])
    );

    // The same ids in text, for people.
    let (ok, _, err) = hopper(
        &["add", "Another", "--project", "blog"],
        dir,
        &[("RUST_LOG", "info")],
    );
    assert!(ok, "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("instance created"))
        .unwrap();
    assert!(
        line.contains("add_task{instance=hopper-global task_id=task_") && line.contains(":route{"),
        "{line}"
    );
}

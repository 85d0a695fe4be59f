//! Small things a hostile or careless client finds: control characters in titles and names,
//! echoed request bodies, caller-set task sources, terminal escapes in CLI output, a closed
//! pipe under the CLI.

use std::process::Command;

use hopper::domain::{InstanceId, TaskDraft, TaskId, TaskStatus, now_millis};
use serde_json::{Value, json};

use crate::support::{Backend, TestEnv, TestServer};

async fn post(server: &TestServer, path: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .bearer_auth(&server.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_api_refuses_what_would_forge_or_flood() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = TestServer::start(&env).await;
    let tasks = "/v1/instances/hopper-global/tasks";
    for title in ["two\nlines", "nul\0byte", "\u{1b}[2Jclear"] {
        let (s, b) = post(
            &server,
            tasks,
            json!({ "title": title }).to_string().into_bytes(),
        )
        .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (422, Some("invalid")),
            "{title:?}"
        );
    }
    let (s, b) = post(
        &server,
        "/v1/instances/hopper-global/next",
        json!({ "executor": "bad\u{1b}]0;x" })
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(s, 422, "{b}");

    // A forged source would make reports go to somebody's GitHub issue.
    let forged = json!({ "title": "t", "source": { "kind": "github", "repository": "o/r" } });
    let (s, b) = post(&server, tasks, forged.to_string().into_bytes()).await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("import=true")
    );
    let (s, t) = post(
        &server,
        &format!("{tasks}?import=true"),
        forged.to_string().into_bytes(),
    )
    .await;
    assert_eq!((s, t["source"]["kind"].as_str()), (201, Some("github")));
    let (s, t) = post(
        &server,
        tasks,
        json!({ "title": "plain" }).to_string().into_bytes(),
    )
    .await;
    assert_eq!((s, t["source"]["kind"].as_str()), (201, Some("api")));

    // 10 KB of a wrong field type: the error names the problem, it does not echo the input.
    let flood = format!("{{\"title\": \"t\", \"tags\": \"{}\"}}", "x".repeat(10_000));
    let (s, b) = post(&server, tasks, flood.into_bytes()).await;
    assert_eq!(s, 422);
    let message = b["error"]["message"].as_str().unwrap();
    assert!(message.len() < 400, "{} bytes", message.len());
}

fn hopper(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hopper"))
        .args(args)
        .env("HOPPER_DATA_DIR", dir)
        .env_remove("HOPPER_DATABASE_URL")
        .env_remove("HOPPER_URL")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_no_escapes_and_survives_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = hopper::config::ConfigSet::embedded();
    configs.root.server.data_dir = dir.path().display().to_string();
    let engine = hopper::Engine::open(configs).await.unwrap();
    let store = engine.stores().all().await.into_iter().next().unwrap();
    // Rows as an older version (or a direct import) could have left them, past validation.
    let hostile = TaskDraft {
        title: "\u{1b}]0;owned\u{7}\u{1b}[2JInvoice\r".into(),
        ..TaskDraft::default()
    };
    let rows = std::iter::once(hostile)
        .chain((0..1500).map(|i| TaskDraft::new(format!("filler task number {i}"))));
    for draft in rows {
        let row = hopper::store::NewTaskRow {
            id: TaskId::generate(),
            instance_id: InstanceId::global(),
            parent_task_id: None,
            draft,
            status: TaskStatus::Pending,
            routed_to: None,
            routing_reason: None,
            now: now_millis(),
        };
        store
            .insert_task(&row, &hopper::store::EventRecord::new("created", "test"))
            .await
            .unwrap();
    }
    engine.close().await;
    drop(engine);

    let out = hopper(&["list", "--limit", "5000"], dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Invoice"), "{text}");
    assert!(
        !out.stdout
            .iter()
            .any(|&b| b == 0x1b || b == 0x07 || b == b'\r'),
        "no escape sequence reaches the terminal"
    );
    let json = hopper(&["list", "--limit", "5000", "--json"], dir.path());
    assert!(
        !json.stdout.contains(&0x1b),
        "JSON escapes control characters"
    );

    // `hopper list | head -1`: the reader goes away early; the CLI must not panic.
    let piped = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' list --limit 5000 | head -1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
            env!("CARGO_BIN_EXE_hopper")
        ))
        .env("HOPPER_DATA_DIR", dir.path())
        .env_remove("HOPPER_DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&piped.stdout).trim(),
        "0",
        "{stderr}"
    );
}

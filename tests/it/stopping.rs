//! How the process stops: SIGTERM (systemd, containers) like Ctrl-C, handing the work of its
//! in-memory runs back at once; and a root configured to live in memory is refused.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hopper::domain::{InstanceId, TaskFilter, TaskStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_hands_back_runs() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hopper"))
        .arg("serve")
        .env("HOPPER_DATA_DIR", dir.path())
        .env("HOPPER_BIND", format!("127.0.0.1:{port}"))
        .env("HOPPER_ADMIN_TOKEN", "stop-token")
        .env_remove("HOPPER_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = http
        .post(format!("{base}/v1/instances/hopper-global/tasks"))
        .bearer_auth("stop-token")
        .json(&serde_json::json!({"title": "big", "tags": ["security", "feature"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");

    // The run lived in that process's memory: its project task was handed back on the way out.
    let mut configs = hopper::config::ConfigSet::embedded();
    configs.root.server.data_dir = dir.path().display().to_string();
    let engine = hopper::Engine::open(configs).await.unwrap();
    let sark = InstanceId::parse("hopper-sark").unwrap();
    let tasks = engine
        .list_tasks(&sark, &TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].status, TaskStatus::Pending);
    let history = engine.task_history(&tasks[0].id).await.unwrap();
    let requeued = history.iter().find(|e| e.kind == "requeued").unwrap();
    let reason = requeued.detail.as_ref().unwrap()["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("stopped with its process"), "{reason}");
    engine.close().await;
}

#[tokio::test]
async fn a_root_in_memory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = hopper::config::ConfigSet::defaults();
    configs.root.server.data_dir = dir.path().display().to_string();
    configs.root.persistence.storage = hopper::config::Storage::Memory;
    let err = hopper::Engine::open(configs).await.err().unwrap();
    assert!(err.to_string().contains("memory"), "{err}");
    assert!(
        !dir.path().join("hopper.db").exists(),
        "no file is made behind the user's back"
    );
}

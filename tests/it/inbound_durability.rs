//! The real binary: `mailgate` posts a message, the server is killed the moment it answers,
//! and everything it acknowledged is there after a restart (and gets routed then).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use hopper::domain::{InstanceId, TaskId, TaskStatus};
use serde_json::Value;

use crate::support::on_both;

const MAIL: &[u8] = include_bytes!("../fixtures/email/multipart_latin1.eml");

fn base_cmd(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hopper"));
    c.env("HOPPER_DATA_DIR", dir)
        .env("HOPPER_EMAIL_TOKEN", "mail-token")
        .env_remove("HOPPER_DATABASE_URL")
        .env_remove("HOPPER_URL")
        .env_remove("HOPPER_CONFIG");
    c
}

/// Starts `hopper serve` on a free port; returns the child and its base URL.
fn serve(dir: &std::path::Path) -> (Child, String) {
    let mut child = base_cmd(dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn mailgate(dir: &std::path::Path, server: &str, token: &str) -> (i32, String) {
    let mut child = base_cmd(dir)
        .env("HOPPER_EMAIL_TOKEN", token)
        .args(["mailgate", "--server", server, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(MAIL).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_mail_survives_a_kill_and_is_routed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = serve(dir.path());
    assert_eq!(
        mailgate(dir.path(), &url, "wrong").0,
        77,
        "bad token: EX_NOPERM, bounce"
    );
    let (code, out) = mailgate(dir.path(), &url, "mail-token");
    // Killed the instant the answer arrived: nothing after the 2xx may be needed.
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(code, 0);
    let receipt: Value = serde_json::from_str(&out).unwrap();
    let task_id = TaskId::parse(receipt["task_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        mailgate(dir.path(), &url, "mail-token").0,
        75,
        "server down: EX_TEMPFAIL, retry"
    );

    let mut configs = hopper::config::ConfigSet::defaults();
    configs.root.server.data_dir = dir.path().display().to_string();
    let engine = hopper::Engine::open(configs).await.unwrap();
    let event = engine
        .get_event(receipt["event_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(event.status, "accepted");
    assert_eq!(event.body, MAIL);
    // Start-up routes what the killed process had not: the plus address names project `web`.
    let task = engine.get_task(&task_id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Routed);
    assert_eq!(
        task.routed_to,
        Some(InstanceId::parse("hopper-web").unwrap())
    );
    assert!(
        engine
            .get_event(&event.id)
            .await
            .unwrap()
            .routed_at
            .is_some()
    );
    engine.close().await;

    // Inspect and replay from the command line, on the local database.
    let out = base_cmd(dir.path())
        .args(["events", "list", "--json"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let out = base_cmd(dir.path())
        .args(["events", "replay", &event.id, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replay: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replay["status"], "accepted");
    assert_ne!(replay["task_id"], receipt["task_id"]);
    let out = base_cmd(dir.path())
        .args([
            "events",
            "show",
            replay["event_id"].as_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["replay_of"], event.id);
    assert!(shown["body"].as_str().unwrap().contains("Subject:"));
}

async fn unrouted_inbound_task_is_routed_at_start_up(backend: crate::support::Backend) {
    use hopper::engine::{Fault, Ingest};
    use hopper_integration_api::{Interpretation, TaskDraft};
    let env = crate::support::TestEnv::new(backend).await;
    let engine = env.engine().await;
    engine.inject_fault(Fault::BeforeInboundRouting);
    let receipt = engine
        .ingest(Ingest {
            source: "http:test".into(),
            endpoint: "http/test".into(),
            instance: None,
            headers: serde_json::json!({}),
            body: bytes::Bytes::from_static(b"{}"),
            interpretation: Interpretation::task(
                Some("d-1".into()),
                "webhook",
                TaskDraft::new("Renew the TLS certificate").with_project("infra"),
            ),
            replay_of: None,
        })
        .await
        .unwrap();
    let id = TaskId::parse(receipt.task_id.as_deref().unwrap()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        engine.get_task(&id).await.unwrap().status,
        TaskStatus::Pending
    );
    engine.close().await;

    let engine = env.engine().await;
    let task = engine.get_task(&id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Routed);
    assert_eq!(
        task.routed_to,
        Some(InstanceId::parse("hopper-infra").unwrap())
    );
    let child =
        crate::support::tasks_in(&engine, &InstanceId::parse("hopper-infra").unwrap()).await;
    assert_eq!(child.len(), 1, "routed exactly once");
    engine.close().await;
}
on_both!(unrouted_inbound_task_is_routed_at_start_up);

/// Once the project is loaded, rules route a delivery in the commit that records it: when
/// `ingest` returns, the task is with the project and nothing is left to route or re-drive.
async fn known_project_is_routed_in_the_recording_commit(backend: crate::support::Backend) {
    use hopper::domain::TaskFilter;
    use hopper::engine::Ingest;
    use hopper_integration_api::{Interpretation, TaskDraft};
    let env = crate::support::TestEnv::new(backend).await;
    let engine = env.engine().await;
    let infra = InstanceId::parse("hopper-infra").unwrap();
    let ingest = |delivery: &str| Ingest {
        source: "http:test".into(),
        endpoint: "http/test".into(),
        instance: None,
        headers: serde_json::json!({}),
        body: bytes::Bytes::from_static(b"{}"),
        interpretation: Interpretation::task(
            Some(delivery.into()),
            "webhook",
            TaskDraft::new("Renew the TLS certificate").with_project("infra"),
        ),
        replay_of: None,
    };
    // The first delivery creates the project, after its answer.
    engine.ingest(ingest("d-1")).await.unwrap();
    crate::support::eventually(|| async {
        let tasks = engine.list_tasks(&infra, &TaskFilter::default()).await;
        tasks.is_ok_and(|t| t.len() == 1).then_some(())
    })
    .await;

    // Routing after the answer would stop here; routing in the recording commit does not.
    engine.inject_fault(hopper::engine::Fault::BeforeInboundRouting);
    let receipt = engine.ingest(ingest("d-2")).await.unwrap();
    let id = TaskId::parse(receipt.task_id.as_deref().unwrap()).unwrap();
    let event = engine.get_event(&receipt.event_id).await.unwrap();
    assert!(
        event.routed_at.is_some(),
        "marked routed in the same commit"
    );
    let task = engine.get_task(&id).await.unwrap();
    assert_eq!(task.status, TaskStatus::Routed);
    assert_eq!(task.routed_to.as_ref(), Some(&infra));
    let kinds = |h: Vec<hopper::domain::TaskEvent>| -> Vec<String> {
        h.into_iter().map(|e| e.kind).collect()
    };
    assert_eq!(
        kinds(engine.task_history(&id).await.unwrap()),
        ["created", "routed"]
    );
    let children = crate::support::tasks_in(&engine, &infra).await;
    let child = children
        .iter()
        .find(|c| c.parent_task_id.as_ref() == Some(&id))
        .expect("the child task was written with the event");
    assert_eq!(child.status, TaskStatus::Pending);
    assert_eq!(
        kinds(engine.task_history(&child.id).await.unwrap()),
        ["created"]
    );
    engine.close().await;

    // Nothing to re-drive at start-up; finishing the child finishes the parent (the
    // delegation was written with them).
    let engine = env.engine().await;
    let project = crate::support::handle(&engine, &infra);
    assert_eq!(
        project.tasks(&TaskFilter::default()).await.unwrap().len(),
        2
    );
    loop {
        let t = project.get_next("w").await.unwrap().unwrap();
        project.complete(&t, None).await.unwrap();
        if t.id == child.id {
            break;
        }
    }
    assert_eq!(engine.get_task(&id).await.unwrap().status, TaskStatus::Done);
    engine.close().await;
}
on_both!(known_project_is_routed_in_the_recording_commit);

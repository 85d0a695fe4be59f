//! GitHub webhooks over real HTTP: GitHub's documented payloads, signed as GitHub signs them.

use hopper::domain::{InstanceId, Priority, TaskStatus};
use hopper_integration_api::Secret;
use hopper_integration_api::verify::sign_hex;
use serde_json::{Value, json};

use crate::support::{Backend, TestEnv, TestServer, eventually, on_both, tasks_in};

const SECRET: &str = "It's a Secret to Everybody";
const ISSUE_OPENED: &str = include_str!("../fixtures/github/issues_opened.json");
const COMMENT: &str = include_str!("../fixtures/github/issue_comment_created.json");

fn env_with_github(env: &mut TestEnv, extra: Value) {
    let mut section = json!({ "secret": SECRET });
    if let (Some(s), Some(e)) = (section.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    env.inbound.insert("github".into(), section);
}

async fn deliver(
    server: &TestServer,
    event: &str,
    delivery: &str,
    body: &str,
    signature: Option<String>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/webhooks/github", server.base))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header("x-hub-signature-256", sig);
    }
    req.send().await.unwrap()
}

/// The task a 202 answer names.
async fn accepted_task(server: &TestServer, resp: reqwest::Response) -> hopper::domain::Task {
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let id = hopper::domain::TaskId::parse(body["task_id"].as_str().unwrap()).unwrap();
    server.engine.get_task(&id).await.unwrap()
}

fn signed(body: &str) -> Option<String> {
    Some(format!(
        "sha256={}",
        sign_hex(&Secret::new(SECRET), &[body.as_bytes()])
    ))
}

async fn issue_opened_becomes_one_routed_task(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env_with_github(&mut env, json!({}));
    let server = TestServer::start(&env).await;
    let resp = deliver(&server, "issues", "d-1", ISSUE_OPENED, signed(ISSUE_OPENED)).await;
    assert_eq!(resp.status(), 202);
    let receipt: Value = resp.json().await.unwrap();
    assert_eq!(receipt["status"], "accepted");
    let task_id = receipt["task_id"].as_str().unwrap().to_owned();

    let global = InstanceId::global();
    let tasks = tasks_in(&server.engine, &global).await;
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(t.id.to_string(), task_id);
    assert_eq!(t.title, "Spelling error in the README file");
    assert!(t.description.contains("spelled 'commit'"));
    assert_eq!(
        t.priority,
        Priority::High,
        "the `bug` label raises priority"
    );
    for tag in ["github", "issue", "bug"] {
        assert!(t.tags.contains(&tag.to_owned()), "{:?}", t.tags);
    }
    assert_eq!(t.requester.as_deref(), Some("Codertocat"));
    let src = t.source.as_ref().unwrap();
    assert_eq!(src.kind, "github");
    assert_eq!(src.container.as_deref(), Some("Codertocat/Hello-World"));
    assert_eq!(src.external_id.as_deref(), Some("Codertocat/Hello-World#1"));
    assert_eq!(
        src.url.as_deref(),
        Some("https://github.com/Codertocat/Hello-World/issues/1")
    );

    // Routing runs after the answer: the repository names the project.
    let project = InstanceId::parse("hopper-hello-world").unwrap();
    let routed = eventually(|| async {
        let t = server.engine.get_task(&t.id).await.unwrap();
        (t.status == TaskStatus::Routed).then_some(t)
    })
    .await;
    assert_eq!(routed.routed_to.as_ref(), Some(&project));
    let child = eventually(|| async { tasks_in(&server.engine, &project).await.pop() }).await;
    assert_eq!(child.parent_task_id.as_ref(), Some(&t.id));

    // The raw event is stored with its delivery id, minus the signature header.
    let events = server
        .engine
        .list_events(Some("github"), None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].delivery_id.as_deref(), Some("d-1"));
    assert_eq!(events[0].event_type, "issues.opened");
    assert_eq!(events[0].body, ISSUE_OPENED.as_bytes());
    assert!(!events[0].headers.contains("x-hub-signature"));
    assert!(
        eventually(|| async {
            let e = server.engine.get_event(&events[0].id).await.unwrap();
            e.routed_at.map(|_| true)
        })
        .await
    );
}
on_both!(issue_opened_becomes_one_routed_task);

async fn redelivery_creates_nothing_new(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env_with_github(&mut env, json!({}));
    let server = TestServer::start(&env).await;
    let first = deliver(
        &server,
        "issues",
        "same",
        ISSUE_OPENED,
        signed(ISSUE_OPENED),
    )
    .await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = deliver(
        &server,
        "issues",
        "same",
        ISSUE_OPENED,
        signed(ISSUE_OPENED),
    )
    .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["task_id"], first["task_id"]);
    assert_eq!(again["event_id"], first["event_id"]);
    assert_eq!(
        tasks_in(&server.engine, &InstanceId::global()).await.len(),
        1
    );
    assert_eq!(
        server
            .engine
            .list_events(None, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}
on_both!(redelivery_creates_nothing_new);

/// Deliveries arriving together are committed together (group commit): redeliveries among them
/// must still make exactly one task, and every other delivery its own.
async fn concurrent_deliveries_and_redeliveries(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env_with_github(&mut env, json!({}));
    let server = TestServer::start(&env).await;
    let sends = (0..32).map(|i| {
        let id = if i % 2 == 0 {
            "same".to_owned()
        } else {
            format!("d-{i}")
        };
        let server = &server;
        async move {
            let r = deliver(server, "issues", &id, ISSUE_OPENED, signed(ISSUE_OPENED)).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (id, status, body)
        }
    });
    let answers = futures::future::join_all(sends).await;
    let same: Vec<&(String, u16, Value)> = answers.iter().filter(|a| a.0 == "same").collect();
    assert_eq!(same.iter().filter(|a| a.1 == 202).count(), 1, "{same:?}");
    assert!(
        same.iter()
            .all(|a| a.1 == 202 || a.2["status"] == "duplicate")
    );
    assert!(same.iter().all(|a| a.2["task_id"] == same[0].2["task_id"]));
    assert!(answers.iter().filter(|a| a.0 != "same").all(|a| a.1 == 202));
    assert_eq!(
        tasks_in(&server.engine, &InstanceId::global()).await.len(),
        17
    );
    let stored = server.engine.list_events(None, None, 100).await.unwrap();
    assert_eq!(stored.len(), 17);
    assert!(stored.iter().all(|e| e.body == ISSUE_OPENED.as_bytes()));

    // Routing is batched too: every task reaches the project once, with its history.
    let project = InstanceId::parse("hopper-hello-world").unwrap();
    let children = eventually(|| async {
        let c = tasks_in(&server.engine, &project).await;
        (c.len() == 17).then_some(c)
    })
    .await;
    for child in &children {
        let parent = child.parent_task_id.as_ref().unwrap();
        let parent = server.engine.get_task(parent).await.unwrap();
        assert_eq!(parent.status, TaskStatus::Routed);
        assert_eq!(parent.routed_to.as_ref(), Some(&project));
        let kinds = |h: Vec<hopper::domain::TaskEvent>| -> Vec<String> {
            h.into_iter().map(|e| e.kind).collect()
        };
        let history = kinds(server.engine.task_history(&parent.id).await.unwrap());
        assert_eq!(history, ["created", "routed"]);
        let history = kinds(server.engine.task_history(&child.id).await.unwrap());
        assert_eq!(history, ["created"]);
    }
    // `eventually` fails the test if this never holds.
    eventually(|| async {
        let e = server.engine.list_events(None, None, 100).await.unwrap();
        e.iter().all(|e| e.routed_at.is_some()).then_some(())
    })
    .await;
}
on_both!(concurrent_deliveries_and_redeliveries);

async fn bad_requests_get_clear_errors_and_create_nothing(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env_with_github(&mut env, json!({ "max_body_bytes": 20000 }));
    let server = TestServer::start(&env).await;
    let cases: Vec<(reqwest::Response, u16, &str)> = vec![
        (
            deliver(&server, "issues", "a", ISSUE_OPENED, None).await,
            401,
            "unauthorized",
        ),
        (
            deliver(
                &server,
                "issues",
                "b",
                ISSUE_OPENED,
                signed("something else"),
            )
            .await,
            401,
            "unauthorized",
        ),
        (
            deliver(
                &server,
                "issues",
                "c",
                ISSUE_OPENED,
                Some("sha256=zz".into()),
            )
            .await,
            401,
            "unauthorized",
        ),
        (
            deliver(&server, "issues", "d", "{not json", signed("{not json")).await,
            400,
            "malformed",
        ),
    ];
    for (resp, status, code) in cases {
        assert_eq!(resp.status().as_u16(), status);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    // The three bad signatures are counted (other tests in this process may add to it).
    let labels = ["source=\"github\"", "reason=\"signature\""];
    let bad_signatures = server
        .metric("hopper_inbound_rejected_total", &labels)
        .await;
    assert!(bad_signatures >= 3.0, "{bad_signatures}");
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(30_000));
    let resp = deliver(&server, "issues", "e", &big, signed(&big)).await;
    assert_eq!(resp.status(), 413);
    let resp = reqwest::Client::new()
        .post(format!("{}/webhooks/github", server.base))
        .header("content-type", "text/plain")
        .header("x-github-event", "issues")
        .header("x-hub-signature-256", signed(ISSUE_OPENED).unwrap())
        .body(ISSUE_OPENED)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = reqwest::Client::new()
        .post(format!("{}/webhooks/nowhere", server.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        tasks_in(&server.engine, &InstanceId::global())
            .await
            .is_empty()
    );
    assert!(
        server
            .engine
            .list_events(None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
on_both!(bad_requests_get_clear_errors_and_create_nothing);

#[tokio::test]
async fn unconfigured_source_refuses_everything() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = TestServer::start(&env).await;
    let resp = deliver(&server, "issues", "x", ISSUE_OPENED, signed(ISSUE_OPENED)).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "source_not_configured");
}

#[tokio::test]
async fn ping_comment_commands_and_uninteresting_events() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env_with_github(&mut env, json!({}));
    let server = TestServer::start(&env).await;
    let ping = r#"{"zen":"Design for failure.","hook_id":1}"#;
    let resp = deliver(&server, "ping", "p", ping, signed(ping)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["zen"],
        "Design for failure."
    );

    let resp = deliver(&server, "issue_comment", "c1", COMMENT, signed(COMMENT)).await;
    let task = accepted_task(&server, resp).await;
    assert_eq!(task.title, "fix the spelling in the README");
    let handle = task.source.unwrap().reply_handle.unwrap();
    assert_eq!(
        handle["installation_id"], 2311213,
        "GitHub App deliveries keep the installation"
    );
    assert_eq!(handle["issue_number"], 1);

    let closed = ISSUE_OPENED.replacen("\"opened\"", "\"closed\"", 1);
    let resp = deliver(&server, "issues", "i2", &closed, signed(&closed)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ignored");
    let ignored = server
        .engine
        .list_events(None, Some("ignored"), 10)
        .await
        .unwrap();
    assert_eq!(ignored.len(), 1);
    assert!(
        ignored[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("issues.closed")
    );
    assert_eq!(
        tasks_in(&server.engine, &InstanceId::global()).await.len(),
        1
    );
}

#[tokio::test]
async fn failed_workflow_runs_make_high_priority_tasks() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env_with_github(&mut env, json!({}));
    let server = TestServer::start(&env).await;
    let fixture: Value = serde_json::from_str(ISSUE_OPENED).unwrap();
    let (repo, sender) = (fixture["repository"].clone(), fixture["sender"].clone());
    let run = |conclusion: &str| {
        json!({
            "action": "completed",
            "workflow_run": {"id": 30433642, "name": "Build", "head_branch": "main", "conclusion": conclusion,
                "status": "completed", "html_url": "https://github.com/Codertocat/Hello-World/actions/runs/30433642"},
            "workflow": {"id": 159038, "name": "Build"},
            "repository": repo, "sender": sender,
        })
        .to_string()
    };
    let failed = run("failure");
    let resp = deliver(&server, "workflow_run", "w1", &failed, signed(&failed)).await;
    let task = accepted_task(&server, resp).await;
    assert_eq!(task.title, "CI failure: Build on main");
    assert_eq!(task.priority, Priority::High);
    assert!(task.tags.contains(&"ci".to_owned()));
    let ok = run("success");
    let resp = deliver(&server, "workflow_run", "w2", &ok, signed(&ok)).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ignored");
}

#[tokio::test]
async fn valid_json_of_the_wrong_shape_is_kept_as_ignored_not_refused() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env_with_github(&mut env, json!({}));
    let server = TestServer::start(&env).await;
    // `issue` must be an object; GitHub would retry a 4xx forever, so it is kept instead.
    let odd = r#"{"action":"opened","issue":42,"sender":{"login":"octocat"}}"#;
    let resp = deliver(&server, "issues", "odd-1", odd, signed(odd)).await;
    assert_eq!(resp.status(), 200);
    let receipt: Value = resp.json().await.unwrap();
    assert_eq!(receipt["status"], "ignored");
    let stored = server
        .engine
        .get_event(receipt["event_id"].as_str().unwrap())
        .await
        .unwrap();
    assert!(
        stored
            .reason
            .as_deref()
            .unwrap()
            .contains("payload not understood"),
        "{:?}",
        stored.reason
    );
    assert_eq!(stored.delivery_id.as_deref(), Some("odd-1"));
    // An envelope of the wrong shape too.
    let odd = r#"{"action":"opened","sender":"octocat"}"#;
    let resp = deliver(&server, "issues", "odd-2", odd, signed(odd)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        tasks_in(&server.engine, &InstanceId::global())
            .await
            .is_empty()
    );
}

/// Events past `persistence.inbound_retention` go, bodies with them; newer ones and the tasks
/// they made stay.
async fn old_events_are_purged_and_their_tasks_kept(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env_with_github(&mut env, json!({}));
    env.inbound_retention = Some(hopper::config::Retention::For(
        std::time::Duration::from_secs(1),
    ));
    let server = TestServer::start(&env).await;
    let old = accepted_task(
        &server,
        deliver(&server, "issues", "old", ISSUE_OPENED, signed(ISSUE_OPENED)).await,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let resp = deliver(&server, "issues", "new", ISSUE_OPENED, signed(ISSUE_OPENED)).await;
    assert_eq!(resp.status(), 202);
    assert!(server.engine.sweep_retention().await.unwrap() >= 1);
    let events = server
        .engine
        .list_events(Some("github"), None, 10)
        .await
        .unwrap();
    let deliveries: Vec<_> = events.iter().map(|e| e.delivery_id.as_deref()).collect();
    assert_eq!(deliveries, [Some("new")]);
    // The task the purged event made is untouched.
    let kept = server.engine.get_task(&old.id).await.unwrap();
    assert_eq!(kept.title, old.title);
}
on_both!(old_events_are_purged_and_their_tasks_kept);

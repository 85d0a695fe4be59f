//! Two-way issue sync with GitHub, end to end: a loopback server speaking GitHub's issues,
//! comments and labels endpoints, octocrab (the GitHub reporter) pointed at it, and GitHub's
//! webhooks signed and sent to Hopper over HTTP.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use hopper::domain::{Actor, InstanceId, Priority, TaskDraft, TaskId, TaskStatus};
use hopper_integration_api::Secret;
use hopper_integration_api::verify::sign_hex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::outbound_support::{Server, outbound_configs, until};
use crate::support::{Backend, TestEnv, on_both, tasks_in};

const SECRET: &str = "sync-webhook-secret";
const REPO: &str = "acme/sark";

/// What the loopback GitHub holds and saw.
#[derive(Default)]
struct Gh {
    issues: Vec<Value>,
    /// Answer the next issue creation 502 after making it (the answer lost on the way).
    lose_next_answer: bool,
    /// (method and path, authorization header, body)
    seen: Vec<(String, Option<String>, Value)>,
}

type Shared = Arc<Mutex<Gh>>;

fn note(gh: &Shared, what: String, headers: &HeaderMap, body: Value) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    gh.lock().unwrap().seen.push((what, auth, body));
}

async fn open_issue(
    State(gh): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    note(
        &gh,
        format!("POST /repos/{owner}/{repo}/issues"),
        &headers,
        body.clone(),
    );
    let mut g = gh.lock().unwrap();
    let number = g.issues.len() as u64 + 1;
    let labels: Vec<Value> = body["labels"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|l| json!({ "name": l }))
        .collect();
    let issue = json!({
        "number": number,
        "title": body["title"],
        "body": body["body"],
        "labels": labels,
        "state": "open",
        "html_url": format!("https://github.example/{owner}/{repo}/issues/{number}"),
    });
    g.issues.push(issue.clone());
    if std::mem::take(&mut g.lose_next_answer) {
        return (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "message": "Bad Gateway" })),
        );
    }
    (StatusCode::CREATED, Json(issue))
}

async fn list_issues(State(gh): State<Shared>) -> Json<Value> {
    Json(Value::Array(gh.lock().unwrap().issues.clone()))
}

async fn edit_issue(
    State(gh): State<Shared>,
    Path((owner, repo, n)): Path<(String, String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    note(
        &gh,
        format!("PATCH /repos/{owner}/{repo}/issues/{n}"),
        &headers,
        body.clone(),
    );
    let mut g = gh.lock().unwrap();
    match g.issues.get_mut(n as usize - 1) {
        Some(issue) => {
            if let Some(state) = body.get("state") {
                issue["state"] = state.clone();
            }
            (StatusCode::OK, Json(issue.clone()))
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Not Found" })),
        ),
    }
}

async fn comment(
    State(gh): State<Shared>,
    Path((owner, repo, n)): Path<(String, String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    note(
        &gh,
        format!("POST /repos/{owner}/{repo}/issues/{n}/comments"),
        &headers,
        body,
    );
    let url = format!("https://github.example/{owner}/{repo}/issues/{n}#issuecomment-1");
    (
        StatusCode::CREATED,
        Json(json!({ "id": 1, "html_url": url })),
    )
}

async fn labels(
    State(gh): State<Shared>,
    Path((owner, repo, n)): Path<(String, String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    note(
        &gh,
        format!("POST /repos/{owner}/{repo}/issues/{n}/labels"),
        &headers,
        body,
    );
    Json(json!([]))
}

async fn fake_github() -> (String, Shared) {
    let gh = Shared::default();
    let app = Router::new()
        .route(
            "/repos/{owner}/{repo}/issues",
            post(open_issue).get(list_issues),
        )
        .route("/repos/{owner}/{repo}/issues/{n}", patch(edit_issue))
        .route("/repos/{owner}/{repo}/issues/{n}/comments", post(comment))
        .route("/repos/{owner}/{repo}/issues/{n}/labels", post(labels))
        .route("/", get(|| async { "ok" }))
        .with_state(gh.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, gh)
}

/// An `issues` webhook as GitHub sends it, signed.
async fn webhook(server: &Server, delivery: &str, action: &str, issue: Value) -> Value {
    let body = json!({
        "action": action,
        "issue": issue,
        "repository": { "full_name": REPO },
        "sender": { "login": "octocat" },
    })
    .to_string();
    let sig = format!(
        "sha256={}",
        sign_hex(&Secret::new(SECRET), &[body.as_bytes()])
    );
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/github", server.base))
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    // 202 when it made a task, 200 when it was recorded without one (a sync change too).
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

fn issue(number: u64, state: &str, labels: &[&str], body: &str) -> Value {
    json!({
        "number": number,
        "title": format!("Issue {number}"),
        "body": body,
        "state": state,
        "labels": labels.iter().map(|l| json!({ "name": l })).collect::<Vec<_>>(),
        "html_url": format!("https://github.example/{REPO}/issues/{number}"),
        "updated_at": chrono::Utc::now().to_rfc3339(),
    })
}

async fn start(backend: Backend) -> (Server, Shared, CancellationToken, TestEnv) {
    start_with(backend, false).await
}

async fn start_with(
    backend: Backend,
    lose_first_answer: bool,
) -> (Server, Shared, CancellationToken, TestEnv) {
    let mut env = TestEnv::new(backend).await;
    env.inbound
        .insert("github".into(), json!({ "secret": SECRET }));
    let (base, gh) = fake_github().await;
    gh.lock().unwrap().lose_next_answer = lose_first_answer;
    let mut c = outbound_configs(&env);
    c.root.reports =
        serde_json::from_value(json!({ "github": { "api_url": base, "token": "ghp_sync" } }))
            .unwrap();
    c.root.sync = serde_json::from_value(json!({
        "sark": { "provider": "github", "repository": REPO, "mode": "bidirectional",
                  "labels": ["hopper"] }
    }))
    .unwrap();
    let server = Server::start(c).await;
    let stop = CancellationToken::new();
    hopper::outbound::spawn(server.engine.clone(), stop.clone())
        .await
        .unwrap();
    (server, gh, stop, env)
}

/// The requests made to `what` (method and path).
fn seen(gh: &Shared, what: &str) -> Vec<(String, Option<String>, Value)> {
    let g = gh.lock().unwrap();
    g.seen.iter().filter(|s| s.0 == what).cloned().collect()
}

/// A task made in Hopper opens an issue and records it; the issue's own `opened` webhook is
/// not imported back; finishing the task closes the issue, and that close's webhook is its
/// echo.
async fn an_exported_task_opens_then_closes_its_issue(backend: Backend) {
    let (server, gh, stop, _env) = start(backend).await;
    let engine = &server.engine;
    let global = engine
        .add_task(
            &InstanceId::global(),
            TaskDraft::new("Rotate the signing keys").with_tags(["security"]),
        )
        .await
        .unwrap();
    until("the issue opened", || async {
        !gh.lock().unwrap().issues.is_empty()
    })
    .await;
    let opened = seen(&gh, "POST /repos/acme/sark/issues");
    assert_eq!(opened.len(), 1);
    let (_, auth, body) = &opened[0];
    assert_eq!(auth.as_deref(), Some("Bearer ghp_sync"));
    assert_eq!(body["title"], "Rotate the signing keys");
    let labels: Vec<&str> = body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(labels, ["hopper", "security", "priority:normal"]);
    let text = body["body"].as_str().unwrap();
    assert!(
        text.contains(&format!("<!-- hopper:task {} -->", global.id)),
        "{text}"
    );

    // The task records the issue.
    until("the task records its issue", || async {
        let h = engine.task_history(&global.id).await.unwrap();
        h.iter().any(|e| e.kind == "synced")
    })
    .await;
    let h = engine.task_history(&global.id).await.unwrap();
    let synced = h.iter().find(|e| e.kind == "synced").unwrap();
    let detail = synced.detail.as_ref().unwrap();
    assert_eq!(detail["number"], "1");
    assert_eq!(detail["url"], "https://github.example/acme/sark/issues/1");

    // GitHub's `opened` webhook for Hopper's own issue makes nothing.
    let own = gh.lock().unwrap().issues[0].clone();
    let r = webhook(&server, "d-open-1", "opened", own.clone()).await;
    assert_eq!(r["status"], "synced", "{r}");
    assert!(r.get("task_id").is_none_or(Value::is_null), "{r}");

    // Done in Hopper: the issue is commented on and closed.
    let work = crate::support::eventually(|| async {
        let copies = tasks_in(engine, &InstanceId::parse("hopper-sark").unwrap()).await;
        copies.into_iter().next()
    })
    .await;
    engine
        .complete(&work.id, &Actor::Admin, None)
        .await
        .unwrap();
    until("the issue closed", || async {
        gh.lock().unwrap().issues[0]["state"] == "closed"
    })
    .await;
    until("the completion comment", || async {
        !seen(&gh, "POST /repos/acme/sark/issues/1/comments").is_empty()
    })
    .await;
    // Its webhook is the echo of Hopper's close: recorded, nothing changes.
    let mut closed = gh.lock().unwrap().issues[0].clone();
    closed["updated_at"] = json!(chrono::Utc::now().to_rfc3339());
    until("the close noted", || async {
        let l = engine
            .registry_store()
            .sync_link_by_task(global.id.as_str())
            .await
            .unwrap();
        l.and_then(|l| l.pushed_state).as_deref() == Some("closed")
    })
    .await;
    let r = webhook(&server, "d-close-1", "closed", closed).await;
    assert_eq!(r["status"], "synced");
    let event = engine
        .get_event(r["event_id"].as_str().unwrap())
        .await
        .unwrap();
    assert!(
        event.reason.as_deref().unwrap_or_default().contains("echo"),
        "{:?}",
        event.reason
    );
    assert_eq!(
        seen(&gh, "POST /repos/acme/sark/issues").len(),
        1,
        "one issue, no echo"
    );
    stop.cancel();
}
on_both!(an_exported_task_opens_then_closes_its_issue);

/// An issue opened there becomes the project's task; its labels set tags and priority;
/// closing it completes the task; reopening it makes a new task for the same issue.
async fn an_imported_issue_drives_its_task(backend: Backend) {
    let (server, gh, stop, _env) = start(backend).await;
    let engine = &server.engine;
    let r = webhook(
        &server,
        "d-42-open",
        "opened",
        issue(42, "open", &["hopper"], "Flaky login test"),
    )
    .await;
    assert_eq!(r["status"], "accepted", "{r}");
    let id = TaskId::parse(r["task_id"].as_str().unwrap()).unwrap();
    let task = engine.get_task(&id).await.unwrap();
    assert_eq!(
        task.project.as_deref(),
        Some("sark"),
        "routed to the synced project"
    );
    // Not exported back: it came from that repository.
    until("routed to sark", || async {
        engine.get_task(&id).await.unwrap().status == TaskStatus::Routed
    })
    .await;

    let r = webhook(
        &server,
        "d-42-label",
        "labeled",
        issue(
            42,
            "open",
            &["hopper", "Security", "priority:high"],
            "Flaky login test",
        ),
    )
    .await;
    assert_eq!(r["status"], "synced", "{r}");
    let task = engine.get_task(&id).await.unwrap();
    assert_eq!(task.priority, Priority::High);
    assert!(
        task.tags.contains(&"security".to_owned()),
        "{:?}",
        task.tags
    );
    let copy = tasks_in(engine, &InstanceId::parse("hopper-sark").unwrap()).await;
    assert_eq!(copy[0].priority, Priority::High, "the project's copy too");

    let r = webhook(
        &server,
        "d-42-close",
        "closed",
        issue(42, "closed", &["hopper"], ""),
    )
    .await;
    assert_eq!(r["status"], "synced", "{r}");
    until("the task done", || async {
        engine.get_task(&id).await.unwrap().status == TaskStatus::Done
    })
    .await;

    let r = webhook(
        &server,
        "d-42-reopen",
        "reopened",
        issue(42, "open", &["hopper"], "Still flaky"),
    )
    .await;
    assert_eq!(r["status"], "accepted", "{r}");
    let again = r["task_id"].as_str().unwrap().to_owned();
    assert_ne!(again, id.to_string());
    let link = engine
        .registry_store()
        .sync_link_by_issue("github", REPO, "42")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.task_id, again, "the pair moved to the new task");
    assert!(
        seen(&gh, "POST /repos/acme/sark/issues").is_empty(),
        "nothing exported"
    );
    stop.cancel();
}
on_both!(an_imported_issue_drives_its_task);

/// GitHub made the issue but its answer was lost (a 502): the retry finds the issue by its
/// marker instead of opening a second one.
async fn a_lost_answer_opens_no_second_issue(backend: Backend) {
    let (server, gh, stop, _env) = start_with(backend, true).await;
    let engine = &server.engine;
    let global = engine
        .add_task(
            &InstanceId::global(),
            TaskDraft::new("Audit the MCP gate").with_tags(["mcp"]),
        )
        .await
        .unwrap();
    until("the pair recorded", || async {
        let l = engine
            .registry_store()
            .sync_link_by_task(global.id.as_str())
            .await
            .unwrap();
        l.is_some()
    })
    .await;
    assert_eq!(gh.lock().unwrap().issues.len(), 1, "one issue");
    assert_eq!(
        seen(&gh, "POST /repos/acme/sark/issues").len(),
        1,
        "opened once"
    );
    // The attempt's result is written a moment after the pair.
    until("the export recorded", || async {
        let rows = server.deliveries("report:github").await;
        rows.iter()
            .any(|d| d["event"] == "sync.export" && d["status"] == "delivered")
    })
    .await;
    let rows = server.deliveries("report:github").await;
    let export = rows.iter().find(|d| d["event"] == "sync.export").unwrap();
    assert_eq!(export["status"], "delivered", "{export}");
    assert_eq!(export["attempts"], 2, "{export}");
    stop.cancel();
}
on_both!(a_lost_answer_opens_no_second_issue);

/// Both sides changed: an issue event older than the task's last change is recorded and
/// ignored (the later change wins).
async fn the_later_change_wins(backend: Backend) {
    let (server, _gh, stop, _env) = start(backend).await;
    let engine = &server.engine;
    let mut old = issue(7, "open", &["hopper"], "Old news");
    let r = webhook(&server, "d-7-open", "opened", old.clone()).await;
    let id = TaskId::parse(r["task_id"].as_str().unwrap()).unwrap();
    until("routed", || async {
        engine.get_task(&id).await.unwrap().status == TaskStatus::Routed
    })
    .await;
    // Closed there an hour ago, delivered only now: the task has changed since.
    old["state"] = json!("closed");
    old["updated_at"] = json!((chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339());
    let r = webhook(&server, "d-7-late", "closed", old).await;
    assert_eq!(r["status"], "synced");
    let event = engine
        .get_event(r["event_id"].as_str().unwrap())
        .await
        .unwrap();
    assert!(
        event
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("Hopper's state stands"),
        "{:?}",
        event.reason
    );
    assert_eq!(
        engine.get_task(&id).await.unwrap().status,
        TaskStatus::Routed
    );
    stop.cancel();
}
on_both!(the_later_change_wins);

//! What existed without a test: claiming a task by id, releasing, failing with a reason,
//! `notify_parent`, the orchestration depth bound, retention, readiness without a database (`readiness`),
//! the CLI's status and listings (`cli_local`), and the log format switch (`logs`).

mod cli_local;
mod logs;
mod readiness;

use hopper::HopperError;
use hopper::config::Retention;
use hopper::domain::{Actor, InstanceId, TaskDraft, TaskStatus};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::{Backend, TestEnv, TestServer, global, on_both};

/// One authenticated JSON request: the status and the body (`null` when there is none).
pub(super) async fn call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", server.base))
        .bearer_auth(&server.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn history_kinds(server: &TestServer, id: &hopper::domain::TaskId) -> Vec<String> {
    let events = server.engine.task_history(id).await.unwrap();
    events.into_iter().map(|e| e.kind).collect()
}

/// `POST /v1/tasks/{id}/claim` and `engine.claim` take the task asked for, not the queue's
/// first, with a lease the holder can then use; a held task is not handed out again.
async fn claim_by_id(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let engine = &server.engine;
    let q = global(engine).get_child_hopper("queue").await.unwrap();
    let first = q.add_task(TaskDraft::new("first in line")).await.unwrap();
    let wanted = q.add_task(TaskDraft::new("the one I want")).await.unwrap();

    let path = format!("/v1/tasks/{}/claim", wanted.id);
    let (status, t) = call(
        &server,
        "POST",
        &path,
        Some(json!({ "executor": "w1", "lease_seconds": 60 })),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["id"], wanted.id.to_string());
    assert_eq!(t["status"], "claimed");
    assert_eq!(t["claimed_by"], "w1");
    let lease = t["lease_id"].as_str().unwrap().to_owned();
    assert!(lease.starts_with("lease_"), "{lease}");
    let stored = engine.get_task(&wanted.id).await.unwrap();
    assert_eq!(stored.lease_id.as_deref(), Some(lease.as_str()));
    let until = chrono::DateTime::parse_from_rfc3339(stored.lease_expires_at.as_deref().unwrap())
        .unwrap()
        .timestamp_millis();
    let left = until - hopper::domain::now_millis();
    assert!(
        (50_000..=60_000).contains(&left),
        "asked for 60 s: {left} ms"
    );

    // The queue hands out the other one; the claimed one is nobody else's.
    let next = q.get_next("w2").await.unwrap().unwrap();
    assert_eq!(next.id, first.id);
    assert!(q.get_next("w3").await.unwrap().is_none());
    let (status, err) = call(&server, "POST", &path, Some(json!({ "executor": "w2" }))).await;
    assert_eq!(status, 409, "a held task is refused: {err}");
    let why = err["error"]["message"].as_str().unwrap();
    assert!(why.contains("`w1`"), "the refusal names the holder: {why}");
    assert_eq!(
        engine.get_task(&wanted.id).await.unwrap(),
        stored,
        "the refused claim changed nothing"
    );
    let (status, _) = call(
        &server,
        "POST",
        "/v1/tasks/task_0000000000000000000000000000abcd/claim",
        Some(json!({ "executor": "w1" })),
    )
    .await;
    assert_eq!(status, 404);

    // The Rust API: the claim's holder completes it under that lease.
    let third = q.add_task(TaskDraft::new("third")).await.unwrap();
    let claimed = engine.claim(&third.id, "w3").await.unwrap();
    assert_eq!(
        (claimed.status, claimed.claimed_by.as_deref()),
        (TaskStatus::Claimed, Some("w3"))
    );
    assert!(matches!(
        engine.claim(&third.id, "w4").await.unwrap_err(),
        HopperError::Forbidden(_) | HopperError::Conflict(_)
    ));
    assert!(matches!(
        engine.claim(&third.id, " ").await.unwrap_err(),
        HopperError::Invalid(_)
    ));
    let done = engine
        .complete(&third.id, &Actor::holder(&claimed).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!(
        history_kinds(&server, &third.id).await,
        ["created", "claimed", "completed"]
    );
}
on_both!(claim_by_id);

/// The holder gives a task back with its lease (REST), an admin without one (Rust): back to
/// pending, unclaimed, and the next worker gets it.
async fn release_by_holder_and_admin(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let engine = &server.engine;
    let q = global(engine).get_child_hopper("queue").await.unwrap();
    let t = q.add_task(TaskDraft::new("hot potato")).await.unwrap();
    let claim = q.get_next("w1").await.unwrap().unwrap();
    let lease = claim.lease_id.clone().unwrap();
    let path = format!("/v1/tasks/{}/release", t.id);

    let (status, err) = call(
        &server,
        "POST",
        &path,
        Some(json!({ "executor": "w1", "lease_id": "lease_0" })),
    )
    .await;
    assert_eq!((status, &err["error"]["code"]), (409, &json!("lease_lost")));
    let (status, released) = call(
        &server,
        "POST",
        &path,
        Some(json!({ "executor": "w1", "lease_id": lease })),
    )
    .await;
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["status"], "pending");
    let stored = engine.get_task(&t.id).await.unwrap();
    assert_eq!(stored.status, TaskStatus::Pending);
    assert_eq!(stored.claimed_by, None);
    assert_eq!(stored.lease_id, None);

    let again = q.get_next("w2").await.unwrap().unwrap();
    assert_eq!((again.id.clone(), again.attempts), (t.id.clone(), 2));
    let back = engine.release(&t.id, &Actor::Admin).await.unwrap();
    assert_eq!((back.status, back.claimed_by), (TaskStatus::Pending, None));
    // The admin took it from w2: w2's lease is spent.
    assert!(matches!(
        engine
            .release(&t.id, &Actor::holder(&again).unwrap())
            .await
            .unwrap_err(),
        HopperError::LeaseLost(_)
    ));
    // Nothing to give back once it is pending.
    assert!(matches!(
        engine.release(&t.id, &Actor::Admin).await.unwrap_err(),
        HopperError::Conflict(_)
    ));
    assert_eq!(
        history_kinds(&server, &t.id).await,
        ["created", "claimed", "released", "claimed", "released"]
    );
    assert_eq!(q.get_next("w3").await.unwrap().unwrap().id, t.id);
}
on_both!(release_by_holder_and_admin);

/// A failure keeps its reason and finishes the task it was delegated from as failed, with the
/// same reason.
async fn fail_with_reason_bubbles_up(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let engine = &server.engine;
    let parent = global(engine)
        .add_task(TaskDraft::new("Deploy the docs").with_project("docs"))
        .await
        .unwrap();
    assert_eq!(parent.status, TaskStatus::Routed);
    let (status, claim) = call(
        &server,
        "POST",
        "/v1/instances/hopper-docs/next",
        Some(json!({ "executor": "w1" })),
    )
    .await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(claim["parent_task_id"], parent.id.to_string());
    let child = claim["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/tasks/{child}/fail");
    let (status, err) = call(
        &server,
        "POST",
        &path,
        Some(json!({ "executor": "w1", "lease_id": claim["lease_id"] })),
    )
    .await;
    assert_eq!(status, 422, "a reason is required: {err}");
    let as_w1 = json!({ "executor": "w1", "lease_id": claim["lease_id"], "reason": "disk full" });
    let (status, failed) = call(&server, "POST", &path, Some(as_w1.clone())).await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["failure_reason"], "disk full");

    let up = engine.get_task(&parent.id).await.unwrap();
    assert_eq!(up.status, TaskStatus::Failed);
    assert_eq!(up.failure_reason.as_deref(), Some("disk full"));
    let history = engine.task_history(&parent.id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.kind, "child_finished");
    assert_eq!(last.detail.as_ref().unwrap()["status"], "failed");

    // A retry under the same lease answers the first outcome; the parent is not touched again.
    let (status, again) = call(&server, "POST", &path, Some(as_w1)).await;
    assert_eq!(
        (status, &again["failure_reason"]),
        (200, &json!("disk full"))
    );
    assert_eq!(engine.task_history(&parent.id).await.unwrap(), history);
}
on_both!(fail_with_reason_bubbles_up);

/// `POST /v1/instances/{id}/notify` writes a `child_event` into the history of the task the
/// instance was handed, in its parent.
async fn notify_parent_records_on_the_delegated_task(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let engine = &server.engine;
    let parent = global(engine)
        .add_task(TaskDraft::new("Write the guide").with_project("docs"))
        .await
        .unwrap();
    let note = json!({ "kind": "progress", "detail": { "percent": 50 } });
    let (status, body) = call(
        &server,
        "POST",
        "/v1/instances/hopper-docs/notify",
        Some(note),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let history = engine.task_history(&parent.id).await.unwrap();
    let ev = history.iter().find(|e| e.kind == "child_event").unwrap();
    assert_eq!(ev.actor.as_deref(), Some("hopper-docs"));
    assert_eq!(
        ev.detail,
        Some(json!({ "kind": "progress", "detail": { "percent": 50 } }))
    );
    let docs = InstanceId::parse("hopper-docs").unwrap();
    let child = &crate::support::tasks_in(engine, &docs).await[0];
    assert!(
        engine
            .task_history(&child.id)
            .await
            .unwrap()
            .iter()
            .all(|e| e.kind != "child_event"),
        "the note goes up, not onto the child's own task"
    );

    let empty = json!({ "kind": "progress" });
    for (path, want) in [
        ("/v1/instances/hopper-global/notify", 409), // no parent
        ("/v1/instances/hopper-nope/notify", 404),
    ] {
        let (status, body) = call(&server, "POST", path, Some(empty.clone())).await;
        assert_eq!(status, want, "{path}: {body}");
    }
    engine
        .child(&InstanceId::global(), "idle", None)
        .await
        .unwrap();
    let (status, _) = call(
        &server,
        "POST",
        "/v1/instances/hopper-idle/notify",
        Some(empty),
    )
    .await;
    assert_eq!(
        status, 409,
        "a project holding no delegated task has nobody to tell"
    );
}
on_both!(notify_parent_records_on_the_delegated_task);

/// Run and phase fit under `child_instances.max_depth` (2); a child of a phase does not.
async fn max_depth_is_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let mut parent = None;
    for (name, scope) in [
        ("deep", "project"),
        ("run-a", "orchestration"),
        ("phase-1", "orchestration"),
    ] {
        let (status, inst) = call(
            &server,
            "POST",
            "/v1/instances",
            Some(json!({ "name": name, "parent": parent })),
        )
        .await;
        assert_eq!((status, &inst["scope"]), (201, &json!(scope)), "{inst}");
        parent = inst["instance_id"].as_str().map(str::to_owned);
    }
    assert_eq!(parent.as_deref(), Some("hopper-deep-run-a-phase-1"));
    let (status, err) = call(
        &server,
        "POST",
        "/v1/instances",
        Some(json!({ "name": "sub", "parent": parent })),
    )
    .await;
    assert_eq!((status, &err["error"]["code"]), (422, &json!("invalid")));
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_depth"), "{message}");
    let (_, all) = call(&server, "GET", "/v1/instances?include_archived=true", None).await;
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["instance_id"].as_str())
        .collect();
    assert!(!ids.iter().any(|i| i.ends_with("-sub")), "{ids:?}");

    // A lower bound: with max_depth 1 a run may have no phases at all.
    let env = TestEnv::new(backend).await;
    let mut configs = env.configs();
    configs.orchestration.child_instances.max_depth = 1;
    let engine = hopper::Engine::open(configs).await.unwrap();
    let project = engine
        .child(&InstanceId::global(), "flat", None)
        .await
        .unwrap();
    let run = engine.child(project.id(), "run-b", None).await.unwrap();
    assert!(matches!(
        engine.child(run.id(), "phase-1", None).await.unwrap_err(),
        HopperError::Invalid(_)
    ));
    engine.close().await;
}
on_both!(max_depth_is_refused);

/// Moves tasks two hours into the past (the only way to age them: retention counts hours).
async fn age_tasks(env: &TestEnv, backend: Backend, ids: &[&hopper::domain::TaskId]) {
    const AGE: &str = "UPDATE tasks SET created_at = created_at - 7200000, \
                       finished_at = finished_at - 7200000 WHERE id = $1";
    for id in ids {
        let n = match backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&env.url).await.unwrap();
                let r = sqlx::query(AGE).bind(id.to_string()).execute(&mut c).await;
                r.unwrap().rows_affected()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&env.url).await.unwrap();
                let r = sqlx::query(AGE).bind(id.to_string()).execute(&mut c).await;
                r.unwrap().rows_affected()
            }
        };
        assert_eq!(n, 1, "{id}");
    }
}

/// A project's `persistence.retention` purges its finished tasks older than that (with their
/// history); open tasks, recent ones and the global instance's (kept forever) stay.
async fn retention_purges_old_finished_tasks(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut configs = env.configs();
    configs.project.persistence.retention = Retention::parse("1h").unwrap();
    let engine = hopper::Engine::open(configs).await.unwrap();
    let p = global(&engine).get_child_hopper("kept").await.unwrap();
    let add = |title: &'static str| {
        let p = p.clone();
        async move { p.add_task(TaskDraft::new(title)).await.unwrap() }
    };
    let old_done = add("old and done").await;
    engine
        .complete(&old_done.id, &Actor::Admin, None)
        .await
        .unwrap();
    let old_failed = add("old and failed").await;
    engine
        .fail(&old_failed.id, &Actor::Admin, "no")
        .await
        .unwrap();
    let recent = add("recently done").await;
    engine
        .complete(&recent.id, &Actor::Admin, None)
        .await
        .unwrap();
    let old_open = add("old, still open").await;
    let old_claimed = add("old, being worked on").await;
    engine.claim(&old_claimed.id, "w1").await.unwrap();
    let g = global(&engine)
        .add_task(TaskDraft::new("global, done"))
        .await
        .unwrap();
    assert_eq!(
        g.instance_id,
        InstanceId::global(),
        "no project: global triage"
    );
    engine.complete(&g.id, &Actor::Admin, None).await.unwrap();
    age_tasks(
        &env,
        backend,
        &[
            &old_done.id,
            &old_failed.id,
            &old_open.id,
            &old_claimed.id,
            &g.id,
        ],
    )
    .await;

    assert_eq!(engine.sweep_retention().await.unwrap(), 2);
    for gone in [&old_done.id, &old_failed.id] {
        assert!(matches!(
            engine.get_task(gone).await.unwrap_err(),
            HopperError::NotFound(_)
        ));
        assert!(engine.task_history(gone).await.is_err());
    }
    for (kept, status) in [
        (&recent.id, TaskStatus::Done),
        (&old_open.id, TaskStatus::Pending),
        (&old_claimed.id, TaskStatus::Claimed),
        (&g.id, TaskStatus::Done),
    ] {
        assert_eq!(
            engine.get_task(kept).await.unwrap().status,
            status,
            "{kept}"
        );
    }
    assert_eq!(
        engine.sweep_retention().await.unwrap(),
        0,
        "nothing left to purge"
    );
    engine.close().await;
}
on_both!(retention_purges_old_finished_tasks);

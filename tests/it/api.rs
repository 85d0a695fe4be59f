//! The REST API over real HTTP on loopback: the story through `HopperClient`, and every kind of
//! bad input answered with the right status and a JSON error.

use std::sync::Arc;

use hopper::client::HopperClient;
use hopper::domain::{InstanceId, TaskDraft, TaskStatus};
use hopper::service::{Hopper, HopperService};
use serde_json::{Value, json};

use crate::support::{Backend, TestEnv, TestServer, on_both};

async fn client_story(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let svc: Arc<dyn HopperService> = Arc::new(HopperClient::new(&server.base, &server.token));
    let global = Hopper::new(svc.clone(), InstanceId::global());
    let t = global
        .add_task(TaskDraft::new("Write docs").with_project("waypoint"))
        .await
        .unwrap();
    assert_eq!(t.status, TaskStatus::Routed);
    let waypoint = global.get_child_hopper("waypoint").await.unwrap();
    assert_eq!(waypoint.instance_id().as_str(), "hopper-waypoint");
    let claimed = waypoint.get_next("human").await.unwrap().unwrap();
    assert!(
        waypoint.get_next("human").await.unwrap().is_none(),
        "204 maps to None"
    );
    waypoint.complete(&claimed, None).await.unwrap();
    assert_eq!(svc.get_task(&t.id).await.unwrap().status, TaskStatus::Done);
    let history = svc.task_history(&t.id).await.unwrap();
    assert_eq!(history.last().unwrap().kind, "child_finished");
    let tree = svc.instance_tree().await.unwrap();
    assert_eq!(tree.children[0].instance_id, "hopper-waypoint");
}
on_both!(client_story);

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    ctype: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), format!("{}{path}", server.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(c) = ctype {
        req = req.header("content-type", c);
    }
    let resp = req.body(body.to_vec()).send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn assert_error(got: (u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{:?}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{:?}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.body_limit = 4096;
    let server = TestServer::start(&env).await;
    let tok = Some(server.token.as_str());
    let json_ct = Some("application/json");
    let tasks = "/v1/instances/hopper-global/tasks";

    assert_error(
        send(&server, "POST", tasks, None, json_ct, b"{\"title\":\"x\"}").await,
        401,
        "unauthorized",
    );
    assert_error(
        send(
            &server,
            "POST",
            tasks,
            Some("wrong"),
            json_ct,
            b"{\"title\":\"x\"}",
        )
        .await,
        401,
        "unauthorized",
    );
    let big = json!({ "title": "x", "description": "y".repeat(10_000) }).to_string();
    assert_error(
        send(&server, "POST", tasks, tok, json_ct, big.as_bytes()).await,
        413,
        "payload_too_large",
    );
    assert_error(
        send(
            &server,
            "POST",
            tasks,
            tok,
            Some("text/plain"),
            b"{\"title\":\"x\"}",
        )
        .await,
        415,
        "unsupported_media_type",
    );
    assert_error(
        send(&server, "POST", tasks, tok, json_ct, b"{\"title\":").await,
        400,
        "malformed_json",
    );
    assert_error(
        send(
            &server,
            "POST",
            tasks,
            tok,
            json_ct,
            b"{\"description\":\"no title\"}",
        )
        .await,
        422,
        "invalid",
    );
    assert_error(
        send(&server, "POST", tasks, tok, json_ct, b"{\"title\":\"   \"}").await,
        422,
        "invalid",
    );
    assert_error(
        send(
            &server,
            "POST",
            tasks,
            tok,
            json_ct,
            b"{\"title\":\"x\",\"priority\":\"whenever\"}",
        )
        .await,
        422,
        "invalid",
    );
    assert_error(
        send(&server, "POST", tasks, tok, json_ct, b"[1,2]").await,
        422,
        "invalid",
    );
    assert_error(
        send(
            &server,
            "POST",
            "/v1/instances/hopper-nope/tasks",
            tok,
            json_ct,
            b"{\"title\":\"x\"}",
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        send(
            &server,
            "POST",
            "/v1/instances/Bad%20Id/tasks",
            tok,
            json_ct,
            b"{\"title\":\"x\"}",
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        send(&server, "GET", "/v1/tasks/not-a-task", tok, None, b"").await,
        400,
        "bad_request",
    );
    assert_error(
        send(
            &server,
            "GET",
            "/v1/tasks/task_0000000000000000000000000000abcd",
            tok,
            None,
            b"",
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        send(
            &server,
            "GET",
            "/v1/instances/hopper-global/tasks?status=sleeping",
            tok,
            None,
            b"",
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        send(
            &server,
            "DELETE",
            "/v1/instances/hopper-global",
            tok,
            None,
            b"",
        )
        .await,
        409,
        "conflict",
    );
    assert_error(
        send(
            &server,
            "POST",
            "/v1/instances",
            tok,
            json_ct,
            b"{\"name\":\"UPPER case\"}",
        )
        .await,
        422,
        "invalid",
    );

    // None of that created anything.
    let (status, list) = send(&server, "GET", tasks, tok, None, b"").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]));

    // The good path, and the state errors.
    let (status, t) = send(
        &server,
        "POST",
        tasks,
        tok,
        json_ct,
        b"{\"title\":\"triage me\"}",
    )
    .await;
    assert_eq!(status, 201);
    let id = t["id"].as_str().unwrap().to_owned();
    let (status, claim) = send(
        &server,
        "POST",
        "/v1/instances/hopper-global/next",
        tok,
        json_ct,
        b"{\"executor\":\"a\"}",
    )
    .await;
    assert_eq!(status, 200);
    let lease = claim["lease_id"].as_str().unwrap().to_owned();
    let (status, _) = send(
        &server,
        "POST",
        "/v1/instances/hopper-global/next",
        tok,
        json_ct,
        b"{\"executor\":\"b\"}",
    )
    .await;
    assert_eq!(status, 204);
    let complete = format!("/v1/tasks/{id}/complete");
    assert_error(
        send(
            &server,
            "POST",
            &complete,
            tok,
            json_ct,
            b"{\"executor\":\"b\"}",
        )
        .await,
        422,
        "invalid",
    );
    assert_error(
        send(
            &server,
            "POST",
            &complete,
            tok,
            json_ct,
            b"{\"executor\":\"b\",\"lease_id\":\"lease_0\"}",
        )
        .await,
        409,
        "lease_lost",
    );
    let as_a = format!("{{\"executor\":\"a\",\"lease_id\":\"{lease}\"");
    assert_error(
        send(
            &server,
            "POST",
            &complete,
            tok,
            json_ct,
            format!("{as_a},\"feedback\":{{\"quality_score\":9}}}}").as_bytes(),
        )
        .await,
        422,
        "invalid",
    );
    let (status, done) = send(
        &server,
        "POST",
        &complete,
        tok,
        json_ct,
        format!("{as_a}}}").as_bytes(),
    )
    .await;
    assert_eq!((status, done["status"].as_str()), (200, Some("done")));
    assert_error(
        send(
            &server,
            "POST",
            &format!("/v1/tasks/{id}/claim"),
            tok,
            json_ct,
            b"{\"executor\":\"a\"}",
        )
        .await,
        409,
        "conflict",
    );
    let (status, full) = send(&server, "GET", &format!("/v1/tasks/{id}"), tok, None, b"").await;
    assert_eq!(status, 200);
    assert_eq!(full["history"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_openapi() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = TestServer::start(&env).await;
    let tok = Some(server.token.as_str());
    assert_eq!(
        send(&server, "GET", "/healthz", None, None, b"").await.0,
        200
    );
    assert_eq!(
        send(&server, "GET", "/readyz", None, None, b"").await,
        (200, json!({ "status": "ready" }))
    );
    send(
        &server,
        "POST",
        "/v1/instances/hopper-global/tasks",
        tok,
        Some("application/json"),
        b"{\"title\":\"m\"}",
    )
    .await;
    let metrics = server.metrics().await;
    assert!(metrics.contains("hopper_tasks_added_total"), "{metrics}");
    let (status, doc) = send(&server, "GET", "/v1/openapi.json", None, None, b"").await;
    assert_eq!(status, 200);
    for path in [
        "/v1/instances/{id}/tasks",
        "/v1/instances/{id}/next",
        "/v1/tasks/{id}/complete",
        "/v1/instances/tree",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    let (status, tree) = send(&server, "GET", "/v1/instances/tree", tok, None, b"").await;
    assert_eq!(
        (status, tree["instance_id"].as_str()),
        (200, Some("hopper-global"))
    );
}

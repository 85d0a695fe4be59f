//! Scoped tokens over real HTTP: an executor token works on its own project's tasks (and its
//! runs') and nowhere else, a read token only reads, a revoked token stops working, and every
//! `/v1` route in the OpenAPI document is checked for both, so a route added without a scope
//! fails here.

use serde_json::{Value, json};

use crate::executors::{call, register};
use crate::support::{Backend, TestEnv, TestServer, on_both};

async fn add(server: &TestServer, instance: &str, title: &str, caps: &[&str]) -> String {
    let (status, t) = call(
        server,
        "POST",
        &format!("/v1/instances/{instance}/tasks"),
        &server.token,
        Some(json!({"title": title, "required_capabilities": caps})),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    t["id"].as_str().unwrap().to_owned()
}

fn code(got: &(u16, Value)) -> (u16, &str) {
    (got.0, got.1["error"]["code"].as_str().unwrap_or(""))
}

async fn executor_token_is_scoped(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let admin = server.token.clone();
    let sark = register(&server, "sark-runner", "sark", &["python"]).await;
    let tok = sark["token"].as_str().unwrap().to_owned();
    let other = register(&server, "other-runner", "other", &[]).await;
    let other_tok = other["token"].as_str().unwrap().to_owned();

    // Claims and completes a task of its project; the identity is the token's.
    let mine = add(&server, "hopper-sark", "mine", &[]).await;
    let (status, claimed) = call(
        &server,
        "POST",
        "/v1/instances/hopper-sark/next",
        &tok,
        None,
    )
    .await;
    assert_eq!(
        (status, claimed["id"].as_str()),
        (200, Some(mine.as_str())),
        "{claimed}"
    );
    assert_eq!(claimed["claimed_by"], "sark-runner");
    let lease = claimed["lease_id"].as_str().unwrap().to_owned();
    let (status, done) = call(
        &server,
        "POST",
        &format!("/v1/tasks/{mine}/complete"),
        &tok,
        Some(json!({"lease_id": lease, "feedback": {"notes": "ok"}})),
    )
    .await;
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("done")),
        "{done}"
    );

    // And in one of its project's orchestration runs.
    let run = server
        .engine
        .child(
            &hopper::domain::InstanceId::parse("hopper-sark").unwrap(),
            "run-1",
            None,
        )
        .await
        .unwrap();
    let run_id = run.id().to_string();
    let in_run = add(&server, &run_id, "in a run", &[]).await;
    let got = call(
        &server,
        "POST",
        &format!("/v1/tasks/{in_run}/claim"),
        &tok,
        None,
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
    let lease = got.1["lease_id"].as_str().unwrap().to_owned();
    let beat = call(
        &server,
        "POST",
        &format!("/v1/tasks/{in_run}/heartbeat"),
        &tok,
        Some(json!({"lease_id": lease})),
    )
    .await;
    assert_eq!(beat.0, 200, "{}", beat.1);
    let rel = call(
        &server,
        "POST",
        &format!("/v1/tasks/{in_run}/release"),
        &tok,
        Some(json!({"lease_id": lease})),
    )
    .await;
    assert_eq!(rel.1["status"], "pending", "{}", rel.1);

    // Another project's task, a body naming another executor, admin routes, other executors.
    let theirs = add(&server, "hopper-other", "theirs", &[]).await;
    for (method, path, body) in [
        ("GET", format!("/v1/tasks/{theirs}"), None),
        ("POST", format!("/v1/tasks/{theirs}/claim"), None),
        ("POST", "/v1/instances/hopper-other/next".to_owned(), None),
        ("GET", "/v1/instances/hopper-other/tasks".to_owned(), None),
        ("GET", "/v1/instances/hopper-global/tasks".to_owned(), None),
        (
            "POST",
            "/v1/instances/hopper-sark/next".to_owned(),
            Some(json!({"executor": "other-runner"})),
        ),
        (
            "POST",
            format!("/v1/tasks/{in_run}/claim"),
            Some(json!({"executor": "other-runner"})),
        ),
        (
            "POST",
            "/v1/instances".to_owned(),
            Some(json!({"name": "evil"})),
        ),
        ("GET", "/v1/events".to_owned(), None),
        ("GET", "/v1/tokens".to_owned(), None),
        (
            "POST",
            "/v1/tokens".to_owned(),
            Some(json!({"role": "admin"})),
        ),
        ("GET", "/v1/executors/other-runner".to_owned(), None),
        ("GET", "/v1/executors".to_owned(), None),
        ("POST", format!("/v1/tasks/{in_run}/cancel"), None),
    ] {
        let got = call(&server, method, &path, &tok, body).await;
        assert_eq!(code(&got), (403, "forbidden"), "{method} {path}: {}", got.1);
    }
    // The other project's executor cannot touch sark's task either.
    let got = call(
        &server,
        "POST",
        &format!("/v1/tasks/{in_run}/claim"),
        &other_tok,
        None,
    )
    .await;
    assert_eq!(got.0, 403);

    // A read token reads and changes nothing.
    let (status, minted) = call(
        &server,
        "POST",
        "/v1/tokens",
        &admin,
        Some(json!({"role": "read", "name": "dash"})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    let read = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&server, "GET", &format!("/v1/tasks/{theirs}"), &read, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, "GET", "/v1/executors", &read, None).await.0,
        200
    );
    for (method, path) in [
        ("POST", format!("/v1/tasks/{theirs}/claim")),
        ("POST", "/v1/instances".to_owned()),
        ("POST", "/v1/executors".to_owned()),
        ("DELETE", "/v1/executors/sark-runner".to_owned()),
    ] {
        let got = call(
            &server,
            method,
            &path,
            &read,
            Some(json!({"executor": "x", "name": "y"})),
        )
        .await;
        assert_eq!(code(&got), (403, "forbidden"), "{method} {path}");
    }

    // Revoked: 401 at once in this process.
    let id = minted["id"].as_str().unwrap();
    assert_eq!(
        call(&server, "DELETE", &format!("/v1/tokens/{id}"), &admin, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, "GET", "/v1/executors", &read, None).await.0,
        401
    );
    // Removing an executor revokes its tokens.
    assert_eq!(
        call(
            &server,
            "DELETE",
            "/v1/executors/other-runner",
            &admin,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &server,
            "GET",
            &format!("/v1/tasks/{theirs}"),
            &other_tok,
            None
        )
        .await
        .0,
        401
    );
}
on_both!(executor_token_is_scoped);

async fn capabilities_decide_who_gets_a_task(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = TestServer::start(&env).await;
    let admin = server.token.clone();
    let py = register(&server, "py", "sark", &["python"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let tf = register(&server, "tf", "sark", &["terraform", "python"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let needs_tf = add(&server, "hopper-sark", "infra", &["terraform"]).await;
    let nobody = add(&server, "hopper-sark", "gpu", &["cuda"]).await;

    let (_, stats) = call(
        &server,
        "GET",
        "/v1/instances/hopper-sark/stats",
        &admin,
        None,
    )
    .await;
    assert_eq!(stats["unassignable"], 1, "{stats}");
    let (_, global) = call(
        &server,
        "GET",
        "/v1/instances/hopper-global/stats",
        &admin,
        None,
    )
    .await;
    assert!(global.get("unassignable").is_none(), "{global}");

    // py lacks terraform: nothing for it (204), and claiming by id says why.
    assert_eq!(
        call(&server, "POST", "/v1/instances/hopper-sark/next", &py, None)
            .await
            .0,
        204
    );
    let got = call(
        &server,
        "POST",
        &format!("/v1/tasks/{needs_tf}/claim"),
        &py,
        None,
    )
    .await;
    assert_eq!(code(&got), (409, "conflict"), "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("terraform")
    );
    // An admin naming the registered executor gets the same rule.
    let named = call(
        &server,
        "POST",
        "/v1/instances/hopper-sark/next",
        &admin,
        Some(json!({"executor": "py"})),
    )
    .await;
    assert_eq!(named.0, 204);
    // tf has it.
    let (status, t) = call(&server, "POST", "/v1/instances/hopper-sark/next", &tf, None).await;
    assert_eq!((status, t["id"].as_str()), (200, Some(needs_tf.as_str())));
    assert_eq!(
        call(&server, "POST", "/v1/instances/hopper-sark/next", &tf, None)
            .await
            .0,
        204
    );
    // A free-form worker named by the admin is not a registered executor: unchanged behaviour.
    let (status, t) = call(
        &server,
        "POST",
        "/v1/instances/hopper-sark/next",
        &admin,
        Some(json!({"executor": "anyone"})),
    )
    .await;
    assert_eq!((status, t["id"].as_str()), (200, Some(nobody.as_str())));
}
on_both!(capabilities_decide_who_gets_a_task);

/// Every `/v1` route of the OpenAPI document, with an executor and a read token: a route
/// without a scope decision would answer something else than expected here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_has_a_scope() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = TestServer::start(&env).await;
    let reg = register(&server, "runner", "sark", &[]).await;
    let exec = reg["token"].as_str().unwrap().to_owned();
    let (_, minted) = call(
        &server,
        "POST",
        "/v1/tokens",
        &server.token,
        Some(json!({"role": "read"})),
    )
    .await;
    let read = minted["token"].as_str().unwrap().to_owned();
    let task = add(&server, "hopper-sark", "t", &[]).await;
    let (_, doc) = call(&server, "GET", "/v1/openapi.json", &server.token, None).await;
    let allowed_exec: &[(&str, &str)] = hopper::api::auth::EXECUTOR_ROUTES;
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
            continue;
        }
        let concrete = path
            .replace(
                "/instances/{id}/children/{child}",
                "/instances/hopper-sark/children/x",
            )
            .replace("/instances/{id}", "/instances/hopper-sark")
            .replace("/tasks/{id}", &format!("/tasks/{task}"))
            .replace("/executors/{id}", "/executors/runner")
            .replace("{id}", "x");
        for method in ops.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let (status, body) = call(&server, &m, &concrete, &read, Some(json!({}))).await;
            if m == "GET" {
                assert_ne!(status, 403, "read token: {m} {path}: {body}");
                assert_ne!(status, 401, "read token: {m} {path}: {body}");
            } else {
                assert_eq!(status, 403, "read token: {m} {path}: {body}");
            }
            let (status, body) = call(&server, &m, &concrete, &exec, Some(json!({}))).await;
            if allowed_exec.contains(&(m.as_str(), path.as_str())) {
                assert_ne!(status, 403, "executor token: {m} {path}: {body}");
            } else {
                assert_eq!(status, 403, "executor token: {m} {path}: {body}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations in the document");
}

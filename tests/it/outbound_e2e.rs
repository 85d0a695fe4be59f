//! The whole path: a signed GitHub `issues.opened` webhook → a task on global → routed by the
//! rules to project `sark` → a signed delivery reaches the executor registered for `sark`,
//! which verifies it with its secret → the executor claims and completes it with its own token
//! and feedback → the global task is done.

use hopper::domain::{InstanceId, TaskId, TaskStatus};
use hopper_integration_api::Secret;
use hopper_integration_api::verify::sign_hex;
use serde_json::{Value, json};

use crate::outbound_support::{Receiver, Server, TOKEN, outbound_configs, until};
use crate::support::{Backend, TestEnv, on_both};

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const ISSUE_OPENED: &str = include_str!("../fixtures/github/issues_opened.json");

async fn github_issue_reaches_the_sark_executor_and_finishes(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.inbound
        .insert("github".into(), json!({ "secret": GITHUB_SECRET }));
    let server = Server::start(outbound_configs(&env)).await;
    let http = reqwest::Client::new();

    // The executor registers: its endpoint learns the secret from the answer.
    let rx = Receiver::start(&[], &[]).await;
    let resp = http
        .post(format!("{}/v1/executors", server.base))
        .bearer_auth(TOKEN)
        .json(&json!({
            "name": "sark-runner", "kind": "project", "project": "sark",
            "capabilities": [], "webhook_url": rx.url,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let reg: Value = resp.json().await.unwrap();
    let secret = reg["secret"].as_str().unwrap().to_owned();
    let token = reg["token"].as_str().unwrap().to_owned();
    rx.set_secrets(&[&secret]);

    // An issue in the `sark` repository, labelled security: the rules route it to sark.
    let body = ISSUE_OPENED
        .replace("\"name\": \"Hello-World\"", "\"name\": \"sark\"")
        .replace("Codertocat/Hello-World", "Codertocat/sark");
    let sig = format!(
        "sha256={}",
        sign_hex(&Secret::new(GITHUB_SECRET), &[body.as_bytes()])
    );
    let resp = http
        .post(format!("{}/webhooks/github", server.base))
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "e2e-1")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let receipt: Value = resp.json().await.unwrap();
    let global_task = TaskId::parse(receipt["task_id"].as_str().unwrap()).unwrap();

    until("delivered to the executor", || async {
        !rx.received().is_empty()
    })
    .await;
    let got = rx.received()[0].clone();
    assert_eq!(
        got.verified_by,
        vec![0],
        "verified with the executor's secret"
    );
    assert_eq!(got.body["type"], "task.available");
    assert_eq!(got.body["data"]["instance_id"], "hopper-sark");
    assert_eq!(got.body["data"]["executor"], "sark-runner");
    let task = got.body["data"]["task"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        got.body["data"]["task"]["parent_task_id"],
        global_task.as_str()
    );

    // The executor claims and completes with its own token.
    let claim: Value = http
        .post(format!("{}/v1/tasks/{task}/claim", server.base))
        .bearer_auth(&token)
        .json(&json!({ "executor": "sark-runner" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lease = claim["lease_id"].as_str().expect("claimed").to_owned();
    let resp = http
        .post(format!("{}/v1/tasks/{task}/complete", server.base))
        .bearer_auth(&token)
        .json(&json!({
            "executor": "sark-runner", "lease_id": lease,
            "feedback": { "quality_score": 4.5, "notes": "fixed the typo" },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    until("the global task is done", || async {
        server.engine.get_task(&global_task).await.unwrap().status == TaskStatus::Done
    })
    .await;
    let done = server
        .engine
        .get_task(&TaskId::parse(&task).unwrap())
        .await
        .unwrap();
    assert_eq!(done.instance_id, InstanceId::parse("hopper-sark").unwrap());
    assert_eq!(
        done.feedback.and_then(|f| f.notes).as_deref(),
        Some("fixed the typo")
    );
    // The executor heard of its claim too? It subscribed to the defaults (available,
    // cancelled) only: one delivery, delivered.
    let exid = reg["executor"]["id"].as_str().unwrap();
    let list = server.deliveries(exid).await;
    assert_eq!(list.len(), 1, "{list:?}");
    until("marked delivered", || async {
        server.deliveries(exid).await[0]["status"] == "delivered"
    })
    .await;
}
on_both!(github_issue_reaches_the_sark_executor_and_finishes);

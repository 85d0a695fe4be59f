//! Signed deliveries to loopback executors: retries until the executor is back, 410 Gone,
//! refused addresses, secret rotation.

use hopper::domain::{Actor, now_millis};

use crate::outbound_support::{
    Receiver, Server, executor, outbound_configs, sark, sark_task, secret, until,
};
use crate::support::{Backend, TestEnv, on_both};

/// The executor fails the first two attempts (500, then 503 without Retry-After) and is
/// delivered to on the third; every attempt is recorded under one webhook-id, every request is
/// signed with the executor's secret.
async fn delivered_after_the_executor_comes_back(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(outbound_configs(&env)).await;
    let key = secret();
    let rx = Receiver::start(&[&key], &[500, 503]).await;
    let ex = executor(&server.engine, "sark-runner", &rx.url, &key, false).await;
    let task = sark_task(&server.engine, "Patch the MCP auth bypass").await;

    let exid = ex.id.to_string();
    until("delivered", || async {
        let d = server.deliveries(&exid).await;
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    let list = server.deliveries(&exid).await;
    let d = server.delivery(list[0]["id"].as_str().unwrap()).await;
    assert_eq!(d["event"], "task.available");
    assert_eq!(d["task_id"], task.as_str());
    assert_eq!(d["attempts"], 3);
    let history: Vec<i64> = d["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["status_code"].as_i64().unwrap())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(history, vec![500, 503, 204]);

    let got = rx.received();
    assert_eq!(got.len(), 3);
    for r in &got {
        assert_eq!(
            r.id,
            d["id"].as_str().unwrap(),
            "webhook-id is stable across retries"
        );
        assert_eq!(r.verified_by, vec![0], "signed with the executor's secret");
        assert_eq!(r.body["type"], "task.available");
        assert_eq!(r.body["data"]["task"]["id"], task.as_str());
        assert_eq!(r.body["data"]["executor"], "sark-runner");
        assert_eq!(r.body["data"]["instance_id"], "hopper-sark");
    }
    assert_eq!(
        got[0].body, d["payload"],
        "the payload shown is the body signed"
    );
}
on_both!(delivered_after_the_executor_comes_back);

/// 410 Gone disables the executor with the reason and an `executor.disabled` event; the
/// delivery stays pending and the task can still be pulled; enabled again, it is delivered.
async fn gone_disables_the_executor_and_loses_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(outbound_configs(&env)).await;
    let key = secret();
    let rx = Receiver::start(&[&key], &[410]).await;
    let ex = executor(&server.engine, "sark-gone", &rx.url, &key, false).await;
    let task = sark_task(&server.engine, "Rotate the leaked key").await;
    let root = server.engine.registry_store().clone();
    let exid = ex.id.to_string();

    until("disabled", || async {
        root.executor_state(&exid)
            .await
            .unwrap()
            .is_some_and(|s| !s.0)
    })
    .await;
    let (enabled, reason, events) = root.executor_state(&exid).await.unwrap().unwrap();
    assert!(!enabled);
    assert_eq!(reason.as_deref(), Some("endpoint answered 410 Gone"));
    assert_eq!(events, vec!["executor.disabled"]);
    let list = server.deliveries(&exid).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "pending", "nothing is lost");
    // Not sent again while disabled.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), 1);

    // The task can still be pulled.
    let claimed = server
        .engine
        .get_next(&sark(), "someone-else")
        .await
        .unwrap()
        .expect("task still available");
    assert_eq!(claimed.id.as_str(), task);
    let actor = Actor::holder(&claimed).unwrap();
    server.engine.release(&claimed.id, &actor).await.unwrap();

    root.put_executor_enabled(&exid).await.unwrap();
    until("delivered after re-enabling", || async {
        server.deliveries(&exid).await.iter().any(|d| {
            d["event"] == "task.available"
                && d["status"] == "delivered"
                && d["task_id"] == task.as_str()
        })
    })
    .await;
    assert!(rx.received().iter().all(|r| r.verified_by == vec![0]));
}
on_both!(gone_disables_the_executor_and_loses_nothing);

/// A webhook URL that points at a disallowed address (the cloud metadata address: not in the
/// test allowlist) is never sent; each attempt records why, and after the schedule the
/// delivery is dead.
async fn disallowed_address_is_not_sent(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(outbound_configs(&env)).await;
    let key = secret();
    let ex = executor(
        &server.engine,
        "sark-metadata",
        "http://169.254.169.254/latest/meta-data",
        &key,
        false,
    )
    .await;
    sark_task(&server.engine, "Audit the MCP server").await;
    let exid = ex.id.to_string();
    until("dead", || async {
        server
            .deliveries(&exid)
            .await
            .first()
            .is_some_and(|d| d["status"] == "dead")
    })
    .await;
    let id = server.deliveries(&exid).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = server.delivery(&id).await;
    let attempts = d["history"].as_array().unwrap();
    assert_eq!(attempts.len(), 4, "the whole schedule: {d}");
    for a in attempts {
        assert!(a.get("status_code").is_none(), "nothing was sent: {a}");
        let err = a["error"].as_str().unwrap();
        assert!(err.contains("refused"), "{err}");
    }
}
on_both!(disallowed_address_is_not_sent);

/// During a rotation's grace both signatures are sent: an executor that still has the old
/// secret and one that has the new both verify.
async fn rotation_signs_with_both_secrets(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(outbound_configs(&env)).await;
    let (old, new) = (secret(), secret());
    let rx = Receiver::start(&[&old, &new], &[]).await;
    let ex = executor(&server.engine, "sark-rotating", &rx.url, &old, false).await;
    let root = server.engine.registry_store().clone();
    root.put_executor_secret(ex.id.as_str(), &new, now_millis() + 3_600_000)
        .await
        .unwrap();
    sark_task(&server.engine, "During the rotation").await;
    until("received", || async { !rx.received().is_empty() }).await;
    let r = &rx.received()[0];
    assert_eq!(
        r.signatures.split_whitespace().count(),
        2,
        "{}",
        r.signatures
    );
    assert_eq!(r.verified_by, vec![0, 1], "either secret verifies");

    // After the grace only the new secret signs.
    root.put_executor_secret(ex.id.as_str(), &new, now_millis() - 1)
        .await
        .unwrap();
    sark_task(&server.engine, "After the rotation").await;
    until("second received", || async { rx.received().len() == 2 }).await;
    let r = &rx.received()[1];
    assert_eq!(r.signatures.split_whitespace().count(), 1);
    assert_eq!(r.verified_by, vec![1], "only the new secret");
}
on_both!(rotation_signs_with_both_secrets);

//! The outbox records only where someone can listen: nothing while no executor has a webhook,
//! everything from the moment a registration is answered, in the root database, in a project
//! file opened afterwards and in this process's in-memory run database.

use hopper::domain::{InstanceId, TaskDraft};
use hopper::engine::Registration;
use hopper::store::{Store, StoreKey};
use serde_json::json;

use crate::outbound_support::{Receiver, Server, TOKEN, outbound_configs, sark, sark_task, until};
use crate::support::{Backend, TestEnv, on_both};

/// Outbox rows in `store`, read from the database.
async fn outbox_rows(store: &Store) -> Vec<(String, String)> {
    store
        .outbox_batch(10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.task_id, e.event))
        .collect()
}

fn registration(name: &str, project: &str, url: Option<&str>) -> Registration {
    serde_json::from_value(json!({
        "name": name, "kind": "project", "project": project, "webhook_url": url,
    }))
    .unwrap()
}

/// No executor with a webhook: adding, claiming and finishing tasks writes no outbox row in
/// any database, and a pull-only executor changes nothing.
async fn without_a_webhook_executor_nothing_is_recorded(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // No server and so no dispatcher: whatever the triggers wrote would stay.
    let engine = hopper::Engine::open(outbound_configs(&env)).await.unwrap();
    let task = sark_task(&engine, "Nobody listens").await;
    let id = hopper::domain::TaskId::parse(&task).unwrap();
    engine.claim(&id, "someone").await.unwrap();
    engine
        .register_executor(registration("sark-puller", "sark", None))
        .await
        .unwrap();
    sark_task(&engine, "Still nobody").await;
    for store in engine.stores().all().await {
        assert!(!store.outbox_wanted().await.unwrap());
        assert_eq!(outbox_rows(&store).await, vec![], "{:?}", store.key());
    }
    engine.close().await;
}
on_both!(without_a_webhook_executor_nothing_is_recorded);

/// A task added the moment `POST /v1/executors` has answered 201 reaches the executor.
async fn a_task_added_right_after_registration_is_delivered(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(outbound_configs(&env)).await;
    // Tasks before: recorded nowhere.
    sark_task(&server.engine, "Before anyone listens").await;
    let rx = Receiver::start(&[], &[]).await;
    let resp = server
        .client()
        .post(format!("{}/v1/executors", server.base))
        .bearer_auth(TOKEN)
        .json(&json!({
            "name": "sark-runner", "kind": "project", "project": "sark", "webhook_url": rx.url,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let reg: serde_json::Value = resp.json().await.unwrap();
    rx.set_secrets(&[reg["secret"].as_str().unwrap()]);
    let task = sark_task(&server.engine, "Right after the 201").await;
    until("delivered", || async {
        rx.received()
            .iter()
            .any(|r| r.body["type"] == "task.available" && r.body["data"]["task"]["id"] == task)
    })
    .await;
    assert!(rx.received().iter().all(|r| r.verified_by == vec![0]));
    assert!(
        server
            .engine
            .registry_store()
            .outbox_wanted()
            .await
            .unwrap()
    );
}
on_both!(a_task_added_right_after_registration_is_delivered);

/// The shipped layout: a project file opened after the registration (its project created then)
/// records its tasks' events; so does one opened again after a restart.
async fn a_project_file_opened_after_registration_records(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut configs = crate::shipped_layout::shipped(&env);
    configs.root.outbound.allowlist = vec!["127.0.0.0/8".into()];
    let engine = hopper::Engine::open(configs.clone()).await.unwrap();
    engine
        .register_executor(registration(
            "other-runner",
            "other",
            Some("http://127.0.0.1:9/hook"),
        ))
        .await
        .unwrap();
    let project_store = |engine: &hopper::Engine| {
        let engine = engine.clone();
        async move {
            engine
                .stores()
                .all()
                .await
                .into_iter()
                .find(
                    |s| matches!(s.key(), StoreKey::SqliteFile(p) if p.ends_with("sark/tasks.db")),
                )
                .expect("sark's own file is open")
        }
    };
    let task = sark_task(&engine, "In a file opened later").await;
    assert!(env.dir.path().join("sark/tasks.db").exists());
    let rows = outbox_rows(&project_store(&engine).await).await;
    assert!(
        rows.contains(&(task.clone(), "task.available".into())),
        "{rows:?}"
    );
    // None for the `routed` step of the global task.
    let root_rows = outbox_rows(engine.registry_store()).await;
    assert!(
        root_rows.iter().all(|(_, e)| e == "task.available"),
        "{root_rows:?}"
    );
    engine.close().await;
    drop(engine);

    // After a restart the flag is read from the executors before the project file is opened.
    let engine = hopper::Engine::open(configs).await.unwrap();
    let t = engine
        .add_task(&sark(), TaskDraft::new("After a restart"))
        .await
        .unwrap();
    let rows = outbox_rows(&project_store(&engine).await).await;
    assert!(
        rows.contains(&(t.id.as_str().to_owned(), "task.available".into())),
        "{rows:?}"
    );
    engine.close().await;
}
on_both!(a_project_file_opened_after_registration_records);

/// An orchestration run's in-memory database, opened after the registration, records too.
async fn a_run_opened_after_registration_records(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = hopper::Engine::open(outbound_configs(&env)).await.unwrap();
    engine
        .register_executor(registration(
            "sark-runner",
            "sark",
            Some("http://127.0.0.1:9/hook"),
        ))
        .await
        .unwrap();
    let run = engine.child(&sark(), "run-1", None).await.unwrap();
    assert!(matches!(run.store.key(), StoreKey::Memory(_)));
    let run_id: InstanceId = run.id().clone();
    let t = engine
        .add_task(&run_id, TaskDraft::new("In a run"))
        .await
        .unwrap();
    let rows = outbox_rows(&run.store).await;
    assert_eq!(
        rows,
        vec![(t.id.as_str().to_owned(), "task.available".to_owned())]
    );
    engine.close().await;
}
on_both!(a_run_opened_after_registration_records);

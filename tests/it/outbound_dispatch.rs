//! The fan-out: auto-claim deliveries and their release, and a dispatcher re-run over the same
//! outbox rows (a crash between the delivery insert and the outbox delete).

use hopper::domain::{DeliveryFilter, TaskId, TaskStatus};
use hopper::outbound::dispatch;

use crate::outbound_support::{
    Receiver, Server, executor, outbound_configs, sark_task, secret, until,
};
use crate::support::{Backend, TestEnv, on_both};

/// An auto-claim executor gets the task already claimed, with its lease; when every attempt
/// fails the claim is released and someone else can take the task.
async fn auto_claim_releases_the_claim_of_a_dead_delivery(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = Server::start(outbound_configs(&env)).await;
    let key = secret();
    let rx = Receiver::start(&[&key], &[500, 500, 500, 500]).await;
    let ex = executor(&server.engine, "sark-auto", &rx.url, &key, true).await;
    let task = sark_task(&server.engine, "Claimed for you").await;
    let id = TaskId::parse(&task).unwrap();

    until("first attempt", || async { !rx.received().is_empty() }).await;
    let first = &rx.received()[0];
    assert_eq!(first.body["type"], "task.assigned");
    let lease = first.body["data"]["lease_id"].as_str().unwrap().to_owned();
    assert!(first.body["data"]["lease_expires_at"].is_string());
    assert_eq!(first.verified_by, vec![0]);
    let t = server.engine.get_task(&id).await.unwrap();
    assert_eq!(t.status, TaskStatus::Claimed);
    assert_eq!(t.claimed_by.as_deref(), Some("sark-auto"));
    assert_eq!(t.lease_id.as_deref(), Some(lease.as_str()));

    let exid = ex.id.to_string();
    until("dead", || async {
        server
            .deliveries(&exid)
            .await
            .iter()
            .any(|d| d["status"] == "dead")
    })
    .await;
    until("released", || async {
        server.engine.get_task(&id).await.unwrap().status == TaskStatus::Pending
    })
    .await;
    // Only the one delivery: the claim's own task.assigned was not sent again.
    let all = server.deliveries(&exid).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["lease_id"], lease.as_str());
    let other = server.engine.claim(&id, "someone-else").await.unwrap();
    assert_eq!(other.claimed_by.as_deref(), Some("someone-else"));
}
on_both!(auto_claim_releases_the_claim_of_a_dead_delivery);

/// Planned and inserted, then "crash" before the outbox rows are deleted: the next pass reads
/// the same rows and inserts nothing twice; every executor still has exactly its delivery.
async fn rerunning_the_dispatcher_never_duplicates_nor_loses(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // No server: the dispatcher is driven by hand.
    let engine = hopper::Engine::open(outbound_configs(&env)).await.unwrap();
    let key = secret();
    let a = executor(&engine, "sark-a", "http://127.0.0.1:9/a", &key, false).await;
    let b = executor(&engine, "sark-b", "http://127.0.0.1:9/b", &key, false).await;
    let task = sark_task(&engine, "Fan me out").await;
    let task_id = TaskId::parse(&task).unwrap();
    let (t, _) = (engine.get_task(&task_id).await.unwrap(), ());

    let root = engine.registry_store().clone();
    let mut planned = 0;
    for store in engine.stores().all().await {
        let batch = store.outbox_batch(1000).await.unwrap();
        let targets = root.delivery_targets().await.unwrap();
        let rows = dispatch::plan(&engine, &store, &batch, &targets)
            .await
            .unwrap();
        planned += rows.len();
        root.insert_deliveries(&rows, &[]).await.unwrap();
    }
    assert_eq!(planned, 2, "one task.available for each executor");
    // The same rows again (the crash left them), then again with nothing left.
    assert!(dispatch::dispatch_all(&engine).await.unwrap() > 0);
    assert_eq!(dispatch::dispatch_all(&engine).await.unwrap(), 0);
    for store in engine.stores().all().await {
        assert!(store.outbox_batch(10).await.unwrap().is_empty());
    }
    for ex in [&a, &b] {
        let f = DeliveryFilter {
            executor: Some(ex.id.to_string()),
            ..Default::default()
        };
        let list = root.list_deliveries(&f).await.unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].task_id, t.id.as_str());
        assert_eq!(list[0].event, "task.available");
    }
    engine.close().await;
}
on_both!(rerunning_the_dispatcher_never_duplicates_nor_loses);

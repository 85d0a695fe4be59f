//! Leases: a crashed worker loses no task, and concurrent workers never share one.

use std::collections::HashSet;
use std::sync::Arc;

use hopper::domain::{Actor, TaskDraft, TaskStatus};
use hopper::engine::LeaseRequest;
use tokio::sync::Mutex;

use crate::support::{Backend, TestEnv, global, handle, on_both};

async fn expired_lease_goes_to_another_worker(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.lease_seconds = 1;
    let engine = env.engine().await;
    let q = global(&engine).get_child_hopper("queue").await.unwrap();
    let t = q.add_task(TaskDraft::new("crash-prone")).await.unwrap();
    let first = q.get_next("worker-1").await.unwrap().unwrap();
    assert_eq!(first.id, t.id);
    assert!(
        q.get_next("worker-2").await.unwrap().is_none(),
        "held under lease"
    );

    // worker-1 dies: no heartbeat. After the lease the sweeper hands the task back.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(engine.sweep_leases().await.unwrap(), 1);
    let second = q.get_next("worker-2").await.unwrap().unwrap();
    assert_eq!(second.id, t.id);
    assert_eq!(second.attempts, 2);

    // The old claimer may no longer finish it; the new one may.
    let err = engine
        .complete(&t.id, &Actor::holder(&first).unwrap(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, hopper::HopperError::LeaseLost(_)));
    let done = engine
        .complete(&t.id, &Actor::holder(&second).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    let kinds: Vec<String> = engine
        .task_history(&t.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "claimed",
            "lease_expired",
            "claimed",
            "completed"
        ]
    );
}
on_both!(expired_lease_goes_to_another_worker);

async fn heartbeat_keeps_the_claim(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.lease_seconds = 1;
    let engine = env.engine().await;
    let q = global(&engine).get_child_hopper("queue").await.unwrap();
    let t = q.add_task(TaskDraft::new("long job")).await.unwrap();
    let claim = q.get_next("w1").await.unwrap().unwrap();
    let w1 = Actor::holder(&claim).unwrap();
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        engine
            .heartbeat(&t.id, &w1, LeaseRequest::default())
            .await
            .unwrap();
        assert_eq!(engine.sweep_leases().await.unwrap(), 0);
    }
    let w2 = Actor::Executor {
        name: "w2".into(),
        lease: claim.lease_id.clone().unwrap(),
    };
    assert!(
        engine
            .heartbeat(&t.id, &w2, LeaseRequest::default())
            .await
            .is_err(),
        "only the claimer heartbeats"
    );
    assert_eq!(
        engine.get_task(&t.id).await.unwrap().claimed_by.as_deref(),
        Some("w1")
    );
}
on_both!(heartbeat_keeps_the_claim);

/// Several engines (each with its own pool, as separate `hopper serve` processes would be)
/// and many workers drain one queue: every task is handed out exactly once.
async fn concurrent_get_next_never_duplicates(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let first = env.engine().await;
    let project = global(&first).get_child_hopper("load").await.unwrap();
    let id = project.instance_id().clone();
    const TASKS: usize = 400;
    for i in 0..TASKS {
        project
            .add_task(TaskDraft::new(format!("job {i}")))
            .await
            .unwrap();
    }
    let mut engines = vec![first];
    for _ in 0..3 {
        engines.push(env.engine().await);
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..16 {
        let engine = engines[w % engines.len()].clone();
        let (seen, id) = (seen.clone(), id.clone());
        workers.push(tokio::spawn(async move {
            let q = handle(&engine, &id);
            let name = format!("worker-{w}");
            while let Some(t) = q.get_next(&name).await.unwrap() {
                q.complete(&t, None).await.unwrap();
                seen.lock().await.push(t.id);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let seen = seen.lock().await;
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), TASKS, "every task handed out");
    assert_eq!(unique.len(), TASKS, "no task handed out twice");
    let stats = engines[0].stats(&id).await.unwrap();
    assert_eq!(stats.tasks["done"], TASKS as i64);
}
on_both!(concurrent_get_next_never_duplicates);

/// The scenario: A claims with a 1-second lease and stalls; B claims the task after
/// the lease ran out (no sweep in between); A's complete, heartbeat and fail are refused with
/// `lease_lost` and change nothing; B completes; the history shows both claims. Then the same
/// with A and B under one executor name.
async fn a_stale_lease_changes_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let q = global(&engine).get_child_hopper("fenced").await.unwrap();
    for (a_name, b_name) in [("worker-a", "worker-b"), ("same", "same")] {
        let t = q.add_task(TaskDraft::new("fenced job")).await.unwrap();
        let short = LeaseRequest { seconds: Some(1) };
        let a = engine
            .get_next_with(q.instance_id(), a_name, short)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.id, t.id);
        let a_lease = a.lease_id.clone().expect("a claim carries its lease");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let b = engine.claim(&t.id, b_name).await.unwrap();
        assert_ne!(
            b.lease_id.as_deref(),
            Some(a_lease.as_str()),
            "a fresh lease per claim"
        );
        let stale = Actor::holder(&a).unwrap();
        let before = engine.get_task(&t.id).await.unwrap();
        for err in [
            engine.complete(&t.id, &stale, None).await.unwrap_err(),
            engine
                .heartbeat(&t.id, &stale, LeaseRequest::default())
                .await
                .unwrap_err(),
            engine.fail(&t.id, &stale, "gave up").await.unwrap_err(),
            engine.release(&t.id, &stale).await.unwrap_err(),
        ] {
            assert!(matches!(err, hopper::HopperError::LeaseLost(_)), "{err:?}");
        }
        assert_eq!(
            engine.get_task(&t.id).await.unwrap(),
            before,
            "nothing changed"
        );
        let done = engine
            .complete(&t.id, &Actor::holder(&b).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(done.status, TaskStatus::Done);
        // A retried completion under the winning lease answers the same; the stale one 409s.
        let again = engine
            .complete(&t.id, &Actor::holder(&b).unwrap(), None)
            .await
            .unwrap();
        assert_eq!(again, done);
        assert!(matches!(
            engine.complete(&t.id, &stale, None).await.unwrap_err(),
            hopper::HopperError::LeaseLost(_)
        ));
        let claims: Vec<Option<String>> = engine
            .task_history(&t.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "claimed")
            .map(|e| e.actor)
            .collect();
        assert_eq!(
            claims,
            [Some(a_name.to_owned()), Some(b_name.to_owned())],
            "both claims in the history"
        );
    }
    // Asking for more than tasks.max_lease_seconds is refused.
    let err = engine
        .get_next_with(
            q.instance_id(),
            "greedy",
            LeaseRequest {
                seconds: Some(10_000_000),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, hopper::HopperError::Invalid(_)), "{err:?}");
}
on_both!(a_stale_lease_changes_nothing);

//! Restarts and crashes: data survives, half-done delegations are finished exactly once.

use hopper::domain::{InstanceStatus, TaskDraft, TaskFilter, TaskStatus};
use hopper::engine::Fault;

use crate::support::{Backend, TestEnv, global, on_both};

async fn restart_keeps_everything(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let g = global(&engine);
    let plain = g
        .add_task(TaskDraft::new("Fix typo").with_project("docs"))
        .await
        .unwrap();
    let orchestrated = g
        .add_task(
            TaskDraft::new("Big feature")
                .with_project("czarina")
                .with_tags(["feature"]),
        )
        .await
        .unwrap();
    let czarina = g.get_child_hopper("czarina").await.unwrap();
    let ptask = czarina
        .tasks(&TaskFilter::default())
        .await
        .unwrap()
        .remove(0);
    let run_id = ptask.routed_to.clone().unwrap();
    engine.close().await;
    drop(engine);

    let engine = env.engine().await;
    let g = global(&engine);
    assert_eq!(
        engine.get_task(&plain.id).await.unwrap().status,
        TaskStatus::Routed
    );
    let docs = g.get_child_hopper("docs").await.unwrap();
    assert_eq!(docs.tasks(&TaskFilter::default()).await.unwrap().len(), 1);
    assert_eq!(
        engine.get_instance(&run_id).await.unwrap().status,
        InstanceStatus::Lost
    );
    // The run lived in memory: its project task went back to the project queue, not lost.
    let requeued = engine.get_task(&ptask.id).await.unwrap();
    assert_eq!(requeued.status, TaskStatus::Pending);
    let czarina = g.get_child_hopper("czarina").await.unwrap();
    let t = czarina.get_next("human").await.unwrap().unwrap();
    assert_eq!(t.id, ptask.id);
    czarina.complete(&t, None).await.unwrap();
    assert_eq!(
        engine.get_task(&orchestrated.id).await.unwrap().status,
        TaskStatus::Done
    );
}
on_both!(restart_keeps_everything);

async fn crash_between_delegation_steps(backend: Backend) {
    for fault in [Fault::AfterDelegationRecorded, Fault::AfterChildInserted] {
        let env = TestEnv::new(backend).await;
        let engine = env.engine().await;
        global(&engine).get_child_hopper("sark").await.unwrap();
        engine.inject_fault(fault);
        let err = global(&engine)
            .add_task(TaskDraft::new("Add policy engine").with_project("sark"))
            .await;
        assert!(err.is_err(), "the injected crash stops add_task");
        engine.close().await;
        drop(engine);

        // Restart: recovery re-drives the delegation.
        let engine = env.engine().await;
        let g = global(&engine);
        let globals = g.tasks(&TaskFilter::default()).await.unwrap();
        assert_eq!(globals.len(), 1, "{fault:?}: the task is not lost");
        assert_eq!(globals[0].status, TaskStatus::Routed);
        let sark = g.get_child_hopper("sark").await.unwrap();
        let children = sark.tasks(&TaskFilter::default()).await.unwrap();
        assert_eq!(children.len(), 1, "{fault:?}: exactly one child task");
        assert_eq!(children[0].parent_task_id.as_ref(), Some(&globals[0].id));

        // A second restart changes nothing.
        engine.close().await;
        let engine = env.engine().await;
        let g = global(&engine);
        let sark = g.get_child_hopper("sark").await.unwrap();
        assert_eq!(sark.tasks(&TaskFilter::default()).await.unwrap().len(), 1);
        let t = sark.get_next("w").await.unwrap().unwrap();
        sark.complete(&t, None).await.unwrap();
        assert_eq!(
            engine.get_task(&globals[0].id).await.unwrap().status,
            TaskStatus::Done
        );
    }
}
on_both!(crash_between_delegation_steps);

/// Two processes on one database: the second must neither lose nor steal the first one's live
/// in-memory run; once the first is gone, its run is recovered.
async fn runs_belong_to_their_process(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let a = env.engine().await;
    let t = global(&a)
        .add_task(
            TaskDraft::new("Feature")
                .with_project("czarina")
                .with_tags(["feature"]),
        )
        .await
        .unwrap();
    let czarina = global(&a).get_child_hopper("czarina").await.unwrap();
    let ptask = czarina
        .tasks(&TaskFilter::default())
        .await
        .unwrap()
        .remove(0);
    let run_id = ptask.routed_to.clone().unwrap();

    let b = env.engine().await;
    assert_eq!(
        b.get_instance(&run_id).await.unwrap().status,
        InstanceStatus::Running
    );
    assert_eq!(
        b.get_task(&ptask.id).await.unwrap().status,
        TaskStatus::Routed
    );
    b.recover().await.unwrap();
    assert_eq!(
        b.get_task(&ptask.id).await.unwrap().status,
        TaskStatus::Routed,
        "not stolen"
    );
    // The owner still serves it.
    let root = a.get_next(&run_id, "orchestrator").await.unwrap().unwrap();
    assert_eq!(root.parent_task_id.as_ref(), Some(&ptask.id));

    a.close().await;
    drop(a);
    b.recover().await.unwrap();
    assert_eq!(
        b.get_instance(&run_id).await.unwrap().status,
        InstanceStatus::Lost
    );
    assert_eq!(
        b.get_task(&ptask.id).await.unwrap().status,
        TaskStatus::Pending,
        "requeued"
    );
    assert_eq!(b.get_task(&t.id).await.unwrap().status, TaskStatus::Routed);
}
on_both!(runs_belong_to_their_process);

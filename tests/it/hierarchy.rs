//! The design's whole story, end to end: global -> project -> orchestration run with three
//! phases -> workers -> completion and feedback back up to the global task.

use std::collections::HashSet;

use hopper::domain::{
    Actor, Feedback, InstanceFilter, InstanceId, InstanceStatus, Scope, TaskDraft, TaskFilter,
    TaskStatus,
};

use crate::support::{Backend, TestEnv, global, handle, on_both};

fn feedback(q: f64, note: &str) -> Option<Feedback> {
    Some(Feedback {
        quality_score: Some(q),
        was_good_match: Some(true),
        notes: Some(note.into()),
        ..Feedback::default()
    })
}

async fn seed_story(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let global = global(&engine);

    // Routed by the rules file (tags security + mcp -> sark); `feature` makes it an orchestration.
    let task = global
        .add_task(
            TaskDraft::new("Add MCP server support to SARK")
                .with_tags(["security", "mcp", "feature"]),
        )
        .await
        .unwrap();
    assert_eq!(task.status, TaskStatus::Routed);
    assert_eq!(task.routed_to.as_ref().unwrap().as_str(), "hopper-sark");

    // The project instance was auto-created and decided on an orchestration run.
    let projects = engine
        .list_instances(&InstanceFilter {
            scope: Some(Scope::Project),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(projects.len(), 1);
    let project = global.get_child_hopper("sark").await.unwrap();
    let ptasks = project.tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(ptasks.len(), 1);
    assert_eq!(ptasks[0].status, TaskStatus::Routed);
    assert_eq!(ptasks[0].parent_task_id.as_ref(), Some(&task.id));
    let run_id = ptasks[0].routed_to.clone().unwrap();
    assert!(run_id.as_str().starts_with("hopper-sark-run-"), "{run_id}");

    let run = handle(&engine, &run_id);
    let phases = engine
        .list_instances(&InstanceFilter {
            parent: Some(run_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let phase_ids: Vec<InstanceId> = phases.iter().map(|p| p.instance_id.clone()).collect();
    assert_eq!(phase_ids.len(), 3);
    assert_eq!(phase_ids[0].as_str(), format!("{run_id}-phase-1"));

    // The orchestrator takes the run's goal task and breaks it into phase tasks.
    let root = run.get_next("orchestrator").await.unwrap().unwrap();
    assert_eq!(root.instance_id, run_id);
    for (i, phase) in phase_ids.iter().enumerate() {
        let ph = handle(&engine, phase);
        for j in 0..2 {
            ph.add_task(TaskDraft::new(format!("phase {} step {j}", i + 1)))
                .await
                .unwrap();
        }
    }

    // Workers pull from the run: the active phase hands out work, in phase order.
    let workers = ["architect", "coder", "tester"];
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    'outer: loop {
        for w in workers {
            match run.get_next(w).await.unwrap() {
                Some(t) => {
                    assert!(seen.insert(t.id.clone()), "task handed out twice");
                    order.push(t.instance_id.clone());
                    run.complete(&t, feedback(4.0, &t.title)).await.unwrap();
                }
                None => break 'outer,
            }
        }
    }
    assert_eq!(order.len(), 6);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "phases must be drained in order");

    // Still open: the run's goal task. Nothing has bubbled yet.
    assert_eq!(
        engine.get_task(&task.id).await.unwrap().status,
        TaskStatus::Routed
    );
    run.complete(&root, feedback(5.0, "run went well"))
        .await
        .unwrap();

    // Completion and aggregated feedback reached the global task.
    let done = engine.get_task(&task.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    let fb = done.feedback.expect("aggregated feedback");
    assert_eq!(fb.children.len(), 1);
    let project_fb = fb.children[0].feedback.as_ref().unwrap();
    assert_eq!(
        project_fb.children.len(),
        7,
        "one entry per task of the run"
    );
    let expected = (6.0 * 4.0 + 5.0) / 7.0;
    assert!((fb.quality_score.unwrap() - expected).abs() < 1e-9);
    assert_eq!(fb.was_good_match, Some(true));
    assert_eq!(
        engine.get_task(&ptasks[0].id).await.unwrap().status,
        TaskStatus::Done
    );

    // The run archived a summary to the registry and deleted its ephemeral tasks.
    let archived = engine.get_instance(&run_id).await.unwrap();
    assert_eq!(archived.status, InstanceStatus::Archived);
    assert_eq!(archived.summary.as_ref().unwrap()["tasks"], 7);
    assert_eq!(archived.summary.as_ref().unwrap()["outcome"], "done");
    assert!(
        engine.get_task(&root.id).await.is_err(),
        "run tasks are deleted"
    );

    // History tells the story.
    let kinds: Vec<String> = engine
        .task_history(&task.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["routed", "child_finished"]);
}
on_both!(seed_story);

async fn concurrent_completions_bubble_once(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let g = global(&engine);
    let task = g
        .add_task(
            TaskDraft::new("Parallel")
                .with_project("czarina")
                .with_tags(["feature"]),
        )
        .await
        .unwrap();
    let project = g.get_child_hopper("czarina").await.unwrap();
    let run_id = project.tasks(&TaskFilter::default()).await.unwrap()[0]
        .routed_to
        .clone()
        .unwrap();
    let run = handle(&engine, &run_id);
    let phase = run.get_child_hopper("phase-1").await.unwrap();
    for i in 0..20 {
        phase
            .add_task(TaskDraft::new(format!("t{i}")))
            .await
            .unwrap();
    }
    let mut claimed = Vec::new();
    while let Some(t) = run.get_next("w").await.unwrap() {
        claimed.push(t);
    }
    assert_eq!(claimed.len(), 21);
    // Everything finishes at once, from many tasks.
    let futs = claimed.into_iter().map(|t| {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .complete(&t.id, &Actor::holder(&t).unwrap(), None)
                .await
        })
    });
    for r in futures::future::join_all(futs).await {
        r.unwrap().unwrap();
    }
    let done = engine.get_task(&task.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    let bubbles = engine
        .task_history(&task.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "child_finished")
        .count();
    assert_eq!(bubbles, 1, "exactly one bubble reaches the global task");
}
on_both!(concurrent_completions_bubble_once);

async fn triage_complete_idempotent_and_claimer_only(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let g = global(&engine);
    // No rule matches and no default project: the task waits in global triage.
    let t = g
        .add_task(TaskDraft::new("Water the plants"))
        .await
        .unwrap();
    assert_eq!(t.status, TaskStatus::Pending);
    assert!(t.routing_reason.unwrap().contains("no rule matched"));

    let claimed = g.get_next("alice").await.unwrap().unwrap();
    assert_eq!(claimed.id, t.id);
    assert!(g.get_next("bob").await.unwrap().is_none());
    let bob = Actor::Executor {
        name: "bob".into(),
        lease: "lease_guessed".into(),
    };
    let err = engine.complete(&t.id, &bob, None).await.unwrap_err();
    assert!(matches!(err, hopper::HopperError::LeaseLost(_)), "{err:?}");
    let first = g.complete(&claimed, feedback(3.0, "ok")).await.unwrap();
    let again = g
        .complete(&claimed, feedback(1.0, "different"))
        .await
        .unwrap();
    assert_eq!(
        first, again,
        "a retry under the same lease reports the first result"
    );
    let err = engine
        .complete(&t.id, &Actor::Admin, None)
        .await
        .unwrap_err();
    assert!(matches!(err, hopper::HopperError::Conflict(_)), "{err:?}");
    let err = engine.fail(&t.id, &Actor::Admin, "late").await.unwrap_err();
    assert!(matches!(err, hopper::HopperError::Conflict(_)));
}
on_both!(triage_complete_idempotent_and_claimer_only);

async fn priority_then_age(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let q = handle(
        &engine,
        &global(&engine)
            .get_child_hopper("queue")
            .await
            .unwrap()
            .instance_id()
            .clone(),
    );
    let low = q
        .add_task(TaskDraft::new("low").with_priority(hopper::domain::Priority::Low))
        .await
        .unwrap();
    let n1 = q.add_task(TaskDraft::new("n1")).await.unwrap();
    let urgent = q
        .add_task(TaskDraft::new("urgent").with_priority(hopper::domain::Priority::Urgent))
        .await
        .unwrap();
    let n2 = q.add_task(TaskDraft::new("n2")).await.unwrap();
    let mut got = Vec::new();
    while let Some(t) = q.get_next("w").await.unwrap() {
        got.push(t.id);
    }
    assert_eq!(got, [urgent.id, n1.id, n2.id, low.id]);
}
on_both!(priority_then_age);

async fn cancel_takes_delegated_work_down(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let g = global(&engine);
    let t = g
        .add_task(
            TaskDraft::new("Refactor")
                .with_project("czarina")
                .with_tags(["feature"]),
        )
        .await
        .unwrap();
    let project = g.get_child_hopper("czarina").await.unwrap();
    let pt = project
        .tasks(&TaskFilter::default())
        .await
        .unwrap()
        .remove(0);
    let run_id = pt.routed_to.clone().unwrap();
    engine.cancel(&t.id, &Actor::Admin).await.unwrap();
    assert_eq!(
        engine.get_task(&pt.id).await.unwrap().status,
        TaskStatus::Cancelled
    );
    assert_eq!(
        engine.get_instance(&run_id).await.unwrap().status,
        InstanceStatus::Archived
    );
}
on_both!(cancel_takes_delegated_work_down);

//! Every path that inserts a task stores it as `NewTaskRow::to_task` says it does: the check
//! that a column declared once (`rows/tasks.rs`) reaches every statement, on both backends.
//! PostgreSQL runs when `HOPPER_TEST_DATABASE_URL` names a server (a database of its own is
//! created, named like the integration tests' so their sweep drops it).

use sqlx::Connection as _;

use super::{
    Delegation, DelegationKind, DelegationState, Effect, EventRecord, Handover, NewInboundEvent,
    NewTask, NewTaskRow, Recorded, RoutedNow, Store, StoreKey, StoreSet,
};
use crate::domain::{
    InstanceId, Priority, SourceRef, Task, TaskDraft, TaskId, TaskStatus, now_millis,
};

/// A draft with every field set to something other than its default.
fn draft(title: &str) -> TaskDraft {
    TaskDraft {
        title: title.into(),
        description: "all the fields".into(),
        tags: vec!["a".into(), "b".into()],
        priority: Priority::High,
        due_at: Some("2026-12-24T19:00:00+01:00".into()),
        project: Some("p".into()),
        needs_orchestration: true,
        executor: Some("worker".into()),
        required_capabilities: vec!["rust".into()],
        requester: Some("someone".into()),
        source: Some(SourceRef {
            kind: "test".into(),
            external_id: Some("42".into()),
            ..SourceRef::default()
        }),
    }
}

fn row(instance: &InstanceId, parent: Option<&TaskId>, status: TaskStatus) -> NewTaskRow {
    NewTaskRow {
        id: TaskId::generate(),
        instance_id: instance.clone(),
        parent_task_id: parent.cloned(),
        draft: draft("columns"),
        status,
        routed_to: None,
        routing_reason: Some("because".into()),
        now: now_millis(),
    }
}

fn delegation(parent: &NewTaskRow, child: &NewTaskRow, state: DelegationState) -> Delegation {
    Delegation {
        parent_instance_id: parent.instance_id.clone(),
        parent_task_id: parent.id.clone(),
        child_instance_id: child.instance_id.clone(),
        child_task_id: child.id.clone(),
        kind: DelegationKind::Task,
        state,
        delegated_at: parent.now,
    }
}

fn inbound(id: &str, task: &NewTaskRow) -> NewInboundEvent {
    NewInboundEvent {
        id: id.into(),
        source: "test".into(),
        endpoint: "test".into(),
        delivery_id: Some(id.into()),
        event_type: "push".into(),
        received_at: task.now,
        headers: serde_json::json!({}),
        body: bytes::Bytes::from_static(b"{}"),
        status: "accepted",
        reason: None,
        instance_id: task.instance_id.as_str().into(),
        task_id: None,
        replay_of: None,
        routed_at: None,
    }
}

async fn stored(store: &Store, row: &NewTaskRow) -> Task {
    store.get_task(&row.id).await.unwrap().unwrap()
}

/// Each insert path, then the task read back.
async fn every_insert_path_stores_what_to_task_says(store: &Store) {
    let global = InstanceId::global();
    let project = InstanceId::parse("hopper-p").unwrap();
    let created = EventRecord::new("created", "test");

    // A single insert (SQLite: the group commit; PostgreSQL: one statement).
    let plain = row(&global, None, TaskStatus::Pending);
    let (task, new) = store.insert_task(&plain, &created).await.unwrap();
    assert!(new);
    // Stored to the millisecond, read back in UTC.
    assert_eq!(task.due_at.as_deref(), Some("2026-12-24T18:00:00.000Z"));
    assert_eq!(task, plain.to_task());
    assert_eq!(stored(store, &plain).await, plain.to_task());

    // With its delegation, and a delegated child (PostgreSQL: the relaxed pool).
    let parent = row(&global, None, TaskStatus::Routed);
    let child = row(&project, Some(&parent.id), TaskStatus::Pending);
    let d = delegation(&parent, &child, DelegationState::Pending);
    store
        .insert_delegating_task(&parent, &d, &created)
        .await
        .unwrap();
    store.insert_task(&child, &created).await.unwrap();
    assert_eq!(stored(store, &parent).await, parent.to_task());
    assert_eq!(stored(store, &child).await, child.to_task());

    // Recorded with an inbound event (PostgreSQL: the record batch), routed on the spot with
    // its child handed over (PostgreSQL: the delegation statement of the same batch).
    let task = row(&global, None, TaskStatus::Routed);
    let kid = row(&project, Some(&task.id), TaskStatus::Pending);
    let routed = RoutedNow {
        delegation: delegation(&task, &kid, DelegationState::Delegated),
        event: EventRecord::new("routed", "test"),
        handover: Handover {
            row: kid.clone(),
            event: created.clone(),
        },
    };
    let effect = Effect::Task(Box::new(NewTask {
        row: task.clone(),
        created: created.clone(),
        routed: Some(routed),
    }));
    let event = inbound(&format!("ev-{}", task.id), &task);
    match store.record_inbound(event, effect).await.unwrap() {
        Recorded::New(Some(t)) => assert_eq!(*t, task.to_task()),
        other => panic!("{other:?}"),
    }
    assert_eq!(stored(store, &task).await, task.to_task());
    assert_eq!(stored(store, &kid).await, kid.to_task());

    // Routed after recording, its child handed over (PostgreSQL: the route batch).
    let pending = row(&global, None, TaskStatus::Pending);
    store.insert_task(&pending, &created).await.unwrap();
    let kid = row(&project, Some(&pending.id), TaskStatus::Pending);
    let handover = Handover {
        row: kid.clone(),
        event: created.clone(),
    };
    let d = delegation(&pending, &kid, DelegationState::Delegated);
    let ev = EventRecord::new("routed", "test");
    assert!(
        store
            .route_pending(&d, "rules", &ev, Some(&handover), None)
            .await
            .unwrap()
    );
    assert_eq!(stored(store, &kid).await, kid.to_task());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let set = StoreSet::new();
    let file = set
        .get(&StoreKey::sqlite_file(&dir.path().join("t.db")))
        .await
        .unwrap();
    every_insert_path_stores_what_to_task_says(&file).await;
    let name = format!("columns_{}", uuid::Uuid::now_v7().simple());
    let memory = set.get(&StoreKey::Memory(name)).await.unwrap();
    every_insert_path_stores_what_to_task_says(&memory).await;
    set.close_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Ok(admin) = std::env::var("HOPPER_TEST_DATABASE_URL") else {
        eprintln!("HOPPER_TEST_DATABASE_URL is not set: PostgreSQL skipped");
        return;
    };
    let name = format!("hopper_t_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let set = StoreSet::new();
    let store = set
        .get(&StoreKey::Postgres(format!("{base}/{name}")))
        .await
        .unwrap();
    every_insert_path_stores_what_to_task_says(&store).await;
    set.close_all().await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
}

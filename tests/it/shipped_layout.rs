//! The layout the shipped configs describe: the global instance on PostgreSQL (or SQLite) and
//! every project instance in a SQLite file of its own. Tasks cross the two databases on the
//! way down (delegation) and back up (bubble); a restart, and a crash between the two
//! databases' writes, lose nothing and bubble once.

use std::path::Path;

use hopper::config::{ConfigSet, Overrides};
use hopper::domain::{Actor, InstanceId, TaskDraft, TaskFilter, TaskStatus};
use hopper::engine::Fault;

use crate::support::{Backend, TestEnv, on_both};

/// `config/global_hopper.yaml` as shipped, its database pointed at this test's, and the
/// project files (`.hopper/{project_name}/tasks.db`, relative to the working directory) moved
/// under this test's directory.
pub(crate) fn shipped(env: &TestEnv) -> ConfigSet {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/global_hopper.yaml");
    let data_dir = env.dir.path().display().to_string();
    let overrides = Overrides {
        database_url: Some(env.url.clone()),
        data_dir: Some(data_dir.clone()),
        ..Overrides::default()
    };
    let mut configs = ConfigSet::load(Some(&file), &overrides).unwrap();
    let path = configs.project.persistence.path.clone().unwrap();
    assert_eq!(
        path, ".hopper/{project_name}/tasks.db",
        "the shipped layout"
    );
    configs.project.persistence.path = Some(path.replacen(".hopper", &data_dir, 1));
    configs
}

fn child_finished(history: &[hopper::domain::TaskEvent]) -> usize {
    history
        .iter()
        .filter(|e| e.kind == "child_finished")
        .count()
}

async fn a_task_crosses_both_databases_and_a_restart(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = hopper::Engine::open(shipped(&env)).await.unwrap();
    let mut draft = TaskDraft::new("Tighten the MCP policy");
    draft.tags = vec!["security".into()];
    let global_task = engine.add_task(&InstanceId::global(), draft).await.unwrap();
    assert_eq!(global_task.status, TaskStatus::Routed);
    let sark = InstanceId::parse("hopper-sark").unwrap();
    assert!(
        env.dir.path().join("sark/tasks.db").exists(),
        "the project has a file of its own"
    );
    engine.close().await;
    drop(engine);

    // After a restart the project's file is found again, the task claimed and completed there,
    // and the completion bubbles into the global database.
    let engine = hopper::Engine::open(shipped(&env)).await.unwrap();
    let t = engine.get_next(&sark, "w").await.unwrap().unwrap();
    assert_eq!(t.parent_task_id.as_ref(), Some(&global_task.id));
    engine
        .complete(&t.id, &Actor::holder(&t).unwrap(), None)
        .await
        .unwrap();
    let done = engine.get_task(&global_task.id).await.unwrap();
    assert_eq!(done.status, TaskStatus::Done);
    assert_eq!(
        child_finished(&engine.task_history(&done.id).await.unwrap()),
        1
    );
    engine.close().await;
}
on_both!(a_task_crosses_both_databases_and_a_restart);

async fn a_crash_between_the_two_databases_loses_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = hopper::Engine::open(shipped(&env)).await.unwrap();
    engine.inject_fault(Fault::AfterDelegationRecorded);
    let mut draft = TaskDraft::new("Rotate the signing keys");
    draft.tags = vec!["security".into()];
    assert!(engine.add_task(&InstanceId::global(), draft).await.is_err());
    // The process dies here: the global database has the delegation, the project file not
    // yet the task.
    drop(engine);

    let engine = hopper::Engine::open(shipped(&env)).await.unwrap();
    let sark = InstanceId::parse("hopper-sark").unwrap();
    let in_project = engine
        .list_tasks(&sark, &TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(in_project.len(), 1, "recovery handed the task down once");
    // A second recovery (another restart) changes nothing.
    engine.recover().await.unwrap();
    assert_eq!(
        engine
            .list_tasks(&sark, &TaskFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let t = engine.get_next(&sark, "w").await.unwrap().unwrap();
    engine
        .complete(&t.id, &Actor::holder(&t).unwrap(), None)
        .await
        .unwrap();
    engine.recover().await.unwrap();
    let global = engine
        .list_tasks(&InstanceId::global(), &TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(global.len(), 1);
    assert_eq!(global[0].status, TaskStatus::Done);
    assert_eq!(
        child_finished(&engine.task_history(&global[0].id).await.unwrap()),
        1,
        "exactly one bubble"
    );
    engine.close().await;
}
on_both!(a_crash_between_the_two_databases_loses_nothing);

//! `memory.learning`: the `memory` provider routes by what happened to similar past tasks.
//! Feedback changes decisions (work that went well in a project goes there again, even against
//! the rules), a route corrected twice stops being chosen, a project whose tasks of a kind keep
//! failing loses that work, and with nothing similar it abstains and the rules decide. The
//! explanation names the past tasks it leaned on.

use hopper::domain::{Actor, Feedback, InstanceId, Task, TaskDraft};
use hopper::engine::RerouteRequest;
use hopper::routing::StepOutcome;

use crate::support::{Backend, TestEnv, handle, on_both};

/// An engine whose chain is the default one with learning on: `memory` first, then rules
/// (which send `security` work to sark).
async fn learning_engine(env: &TestEnv) -> hopper::Engine {
    let mut c = env.configs();
    c.root.memory.learning = true;
    hopper::Engine::open(c).await.unwrap()
}

fn draft(title: &str, tags: &[&str]) -> TaskDraft {
    TaskDraft::new(title).with_tags(tags.iter().copied())
}

/// Adds `d` on the global instance, claims its copy in the project it went to and finishes it
/// there: completed with `quality`, or failed when `None`. The global task and the ids of it and
/// its copy (an outcome is the copy's episode).
async fn run(engine: &hopper::Engine, d: TaskDraft, quality: Option<f64>) -> (Task, [String; 2]) {
    let task = engine.add_task(&InstanceId::global(), d).await.unwrap();
    let project = routed_to(engine, &task).await;
    let instance = InstanceId::parse(&format!("hopper-{project}")).unwrap();
    let claimed = handle(engine, &instance)
        .get_next("worker")
        .await
        .unwrap()
        .unwrap();
    let actor = Actor::Executor {
        name: "worker".into(),
        lease: claimed.lease_id.clone().unwrap(),
    };
    match quality {
        Some(q) => {
            let fb = Feedback {
                quality_score: Some(q),
                was_good_match: Some(true),
                ..Default::default()
            };
            engine
                .complete(&claimed.id, &actor, Some(fb))
                .await
                .unwrap();
        }
        None => {
            engine
                .fail(&claimed.id, &actor, "could not do it")
                .await
                .unwrap();
        }
    }
    let ids = [task.id.to_string(), claimed.id.to_string()];
    (task, ids)
}

/// Where the task went (without the `hopper-` prefix).
async fn routed_to(engine: &hopper::Engine, task: &Task) -> String {
    let report = engine.explain_routing(&task.id).await.unwrap();
    let to = report.routed_to.clone().unwrap_or_default();
    to.strip_prefix("hopper-").unwrap_or(&to).to_owned()
}

/// Who decided the task's (last) route, and the `memory` step's outcome and reason.
async fn decided(engine: &hopper::Engine, task: &Task) -> (String, Option<(StepOutcome, String)>) {
    let report = engine.explain_routing(&task.id).await.unwrap();
    let last = report
        .decisions
        .iter()
        .rev()
        .find(|d| !d.chain.is_empty())
        .unwrap_or_else(|| panic!("a decision with a chain: {report:#?}"));
    let memory = last
        .chain
        .iter()
        .find(|s| s.provider == "memory")
        .map(|s| (s.outcome, s.reason.clone()));
    (last.decided_by.clone().unwrap_or_default(), memory)
}

/// Three release-notes tasks completed well in waypoint: the next one goes there by `memory`,
/// though its `security` tag makes the rules say sark; the reason names those tasks.
async fn feedback_changes_decisions(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = learning_engine(&env).await;
    let mut past = Vec::new();
    for n in 1..=3 {
        let d = draft(
            &format!("Write the release notes for v1.{n}"),
            &["security"],
        )
        .with_project("waypoint");
        past.extend(run(&engine, d, Some(5.0)).await.1);
    }
    let next = engine
        .add_task(
            &InstanceId::global(),
            draft("Write the release notes for v2.0", &["security"]),
        )
        .await
        .unwrap();
    assert_eq!(routed_to(&engine, &next).await, "waypoint");
    let (by, memory) = decided(&engine, &next).await;
    assert_eq!(by, "memory");
    let (outcome, reason) = memory.unwrap();
    assert_eq!(outcome, StepOutcome::Decided);
    assert!(reason.contains("leaned on"), "{reason}");
    let named = past
        .iter()
        .filter(|id| reason.contains(id.as_str()))
        .count();
    assert_eq!(named, 3, "{reason} names three of the past tasks {past:?}");
    engine.close().await;
}
on_both!(feedback_changes_decisions);

/// Key rotations the rules send to sark, moved to vault by a person twice: the next one goes to
/// vault by `memory`. Before the corrections memory was not sure enough to decide.
async fn a_route_corrected_twice_stops_being_chosen(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = learning_engine(&env).await;
    let global = InstanceId::global();
    let rotate = |n: u32| {
        draft(
            &format!("Rotate the signing keys of region {n}"),
            &["security"],
        )
    };
    let first = engine.add_task(&global, rotate(1)).await.unwrap();
    let second = engine.add_task(&global, rotate(2)).await.unwrap();
    for t in [&first, &second] {
        assert_eq!(routed_to(&engine, t).await, "sark");
        assert_eq!(decided(&engine, t).await.0, "rules");
    }
    let req = RerouteRequest {
        project: "vault".into(),
        reason: Some("keys belong to vault".into()),
    };
    for t in [&first, &second] {
        engine.reroute(&t.id, &req, &Actor::Admin).await.unwrap();
    }
    let third = engine.add_task(&global, rotate(3)).await.unwrap();
    assert_eq!(routed_to(&engine, &third).await, "vault");
    let (by, memory) = decided(&engine, &third).await;
    assert_eq!(by, "memory");
    let reason = memory.unwrap().1;
    assert!(
        reason.contains(&first.id.to_string()) && reason.contains(&second.id.to_string()),
        "the corrected tasks are named: {reason}"
    );
    engine.close().await;
}
on_both!(a_route_corrected_twice_stops_being_chosen);

/// Token-store audits keep failing in sark (where the rules send them); one done in vault.
/// The next audit goes to vault.
async fn a_project_whose_tasks_keep_failing_loses_the_work(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = learning_engine(&env).await;
    let audit = || draft("Audit the token store", &["security"]);
    for _ in 0..3 {
        let (t, _) = run(&engine, audit(), None).await;
        assert_eq!(routed_to(&engine, &t).await, "sark");
        let (by, memory) = decided(&engine, &t).await;
        assert_eq!(by, "rules", "failures never speak for sark: {memory:?}");
    }
    run(&engine, audit().with_project("vault"), Some(4.0)).await;
    let next = engine
        .add_task(&InstanceId::global(), audit())
        .await
        .unwrap();
    assert_eq!(routed_to(&engine, &next).await, "vault");
    assert_eq!(decided(&engine, &next).await.0, "memory");
    engine.close().await;
}
on_both!(a_project_whose_tasks_keep_failing_loses_the_work);

/// Nothing like the task in memory: `memory` abstains, saying so, and the rules decide.
async fn with_nothing_similar_memory_abstains(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = learning_engine(&env).await;
    run(
        &engine,
        draft("Write the release notes", &["docs"]).with_project("waypoint"),
        Some(5.0),
    )
    .await;
    let next = engine
        .add_task(
            &InstanceId::global(),
            draft("Patch the MCP gate bypass", &["mcp"]),
        )
        .await
        .unwrap();
    assert_eq!(routed_to(&engine, &next).await, "sark");
    let (by, memory) = decided(&engine, &next).await;
    assert_eq!(by, "rules");
    let (outcome, reason) = memory.unwrap();
    assert_eq!(outcome, StepOutcome::Abstained);
    assert!(reason.contains("no similar past tasks"), "{reason}");
    engine.close().await;
}
on_both!(with_nothing_similar_memory_abstains);

/// What was learned survives a database reset: release notes went well in waypoint and were
/// consolidated into the memory repository; a server on a new, empty database first routes by
/// the rules (no episodes), then, once it loaded the profile from the repository as `hopper
/// serve` does at start-up, by `memory`, naming the profile. Its first consolidation carries the
/// repository's counts on instead of starting over.
async fn learning_survives_a_database_reset(backend: Backend) {
    use hopper::memory::consolidate::{GitRepo, RoutingProfile};
    use hopper::memory::job::{consolidate, load_learned};
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(repo_dir.path().join("memory"), "main");
    let notes = |v: &str| draft(&format!("Write the release notes for {v}"), &["security"]);
    let before = TestEnv::new(backend).await;
    let engine = learning_engine(&before).await;
    for v in ["v1.1", "v1.2", "v1.3"] {
        run(&engine, notes(v).with_project("waypoint"), Some(5.0)).await;
    }
    let first = consolidate(&engine, &repo, None, false, &|_, _| {})
        .await
        .unwrap();
    assert!(first.commit.is_some());
    engine.close().await;

    let after = TestEnv::new(backend).await;
    let engine = learning_engine(&after).await;
    let t = engine
        .add_task(&InstanceId::global(), notes("v2.0"))
        .await
        .unwrap();
    assert_eq!(
        (routed_to(&engine, &t).await, decided(&engine, &t).await.0),
        ("sark".to_owned(), "rules".to_owned()),
        "an empty database alone knows nothing"
    );
    load_learned(&engine, &repo).await;
    let t = engine
        .add_task(&InstanceId::global(), notes("v2.1"))
        .await
        .unwrap();
    assert_eq!(routed_to(&engine, &t).await, "waypoint");
    let (by, memory) = decided(&engine, &t).await;
    assert_eq!(by, "memory");
    let reason = memory.unwrap().1;
    assert!(reason.contains("consolidated profile"), "{reason}");

    let next = consolidate(&engine, &repo, None, false, &|_, _| {})
        .await
        .unwrap();
    let json = std::fs::read_to_string(repo_dir.path().join("memory/profile.json")).unwrap();
    let profile: RoutingProfile = serde_json::from_str(&json).unwrap();
    assert_eq!(
        profile.episodes,
        6 + next.episodes,
        "the first database's six episodes (three routed, three completed) are kept"
    );
    assert_eq!(profile.projects["waypoint"].successes, 3);
    engine.close().await;
}
on_both!(learning_survives_a_database_reset);

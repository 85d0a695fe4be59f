//! The global routing chain end to end: rules, capabilities, an LLM behind a loopback
//! chat-completions server and a sage decider, each decision explained, corrections recorded,
//! the rules file reloaded, decomposition planned by the LLM, and ingest never waiting on a
//! slow model.

use std::time::{Duration, Instant};

use hopper::config::{ConfigSet, DecomposeMode, ProviderKind, Secret};
use hopper::domain::{Actor, InstanceId, TaskId, TaskStatus};
use hopper::engine::{Ingest, RerouteRequest};
use hopper::routing::StepOutcome;
use hopper::{Engine, HopperError};
use hopper_integration_api::{Interpretation, TaskDraft};

use crate::fake_llm::{FakeAnswer, FakeLlm};
use crate::fake_sage::{FakeSage, SageAnswer};
use crate::support::{Backend, TestEnv, global, handle, on_both, tasks_in};

/// The test rules (`sark`) plus `waypoint`, a project the remote deciders may pick.
fn configs(env: &TestEnv) -> ConfigSet {
    let mut c = env.configs();
    c.rules.projects.insert(
        "waypoint".into(),
        hopper::config::ProjectRule {
            tags: vec!["writing".into()],
            ..Default::default()
        },
    );
    c
}

fn with_llm(env: &TestEnv, chain: &[ProviderKind], llm: &FakeLlm) -> ConfigSet {
    let mut c = configs(env);
    let i = &mut c.root.intelligence;
    i.providers = Some(chain.to_vec());
    i.model = Some("claude-sonnet-4".into());
    i.llm.base_url = Some(llm.url.clone());
    i.llm.api_key = Some(Secret::new("sk-test-key"));
    i.llm.timeout_ms = 300;
    c
}

fn project(name: &str) -> InstanceId {
    InstanceId::parse(&format!("hopper-{name}")).unwrap()
}

async fn register(engine: &Engine, name: &str, project: &str, caps: &[&str]) {
    let reg: hopper::engine::Registration = serde_json::from_value(serde_json::json!({
        "name": name, "kind": "project", "project": project,
        "capabilities": caps,
    }))
    .unwrap();
    engine.register_executor(reg).await.unwrap();
}

/// Rules find nothing, the LLM decides; `explain` shows both turns and the LLM's prompt and
/// answer; the request carried the model, the key and strict JSON mode.
async fn llm_decides_after_rules_abstain(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let llm = FakeLlm::start(vec![FakeAnswer::route("waypoint", 0.9, "an essay")]).await;
    let engine = Engine::open(with_llm(
        &env,
        &[ProviderKind::Rules, ProviderKind::Llm],
        &llm,
    ))
    .await
    .unwrap();
    let t = global(&engine)
        .add_task(TaskDraft::new("Write about rivers"))
        .await
        .unwrap();
    assert_eq!(t.status, TaskStatus::Routed);
    assert_eq!(t.routed_to.as_ref().unwrap().as_str(), "hopper-waypoint");

    let (auth, body) = llm.requests()[0].clone();
    assert_eq!(auth, "Bearer sk-test-key");
    assert_eq!(body["model"], "claude-sonnet-4");
    assert_eq!(body["response_format"]["type"], "json_object");
    assert!(body.to_string().contains("Write about rivers"));

    let report = engine.explain_routing(&t.id).await.unwrap();
    let d = &report.decisions[0];
    assert_eq!(d.decided_by.as_deref(), Some("llm"));
    assert_eq!(d.to.as_deref(), Some("hopper-waypoint"));
    assert_eq!(d.chain.len(), 2);
    assert_eq!(d.chain[0].provider, "rules");
    assert_eq!(d.chain[0].outcome, StepOutcome::Abstained);
    assert!(d.chain[0].reason.starts_with("no rule matched"));
    assert_eq!(d.chain[1].outcome, StepOutcome::Decided);
    assert_eq!(d.chain[1].reason, "an essay");
    let trace = d.chain[1].trace.as_ref().unwrap();
    assert!(trace["request"].to_string().contains("Write about rivers"));
    assert!(trace["answer"].as_str().unwrap().contains("waypoint"));
    assert!(
        !trace.to_string().contains("sk-test-key"),
        "the key is never kept"
    );
    // The project's copy is there, its history points back.
    let copies = tasks_in(&engine, &project("waypoint")).await;
    assert_eq!(copies.len(), 1);
    let via_copy = engine.explain_routing(&copies[0].id).await.unwrap();
    assert_eq!(via_copy.global_task_id, t.id.to_string());
    engine.close().await;
}
on_both!(llm_decides_after_rules_abstain);

/// Timeout, garbage, an unknown project and low confidence each pass the task on to
/// `capabilities`, with the LLM's reason kept.
async fn each_llm_failure_falls_through_with_its_reason(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let llm = FakeLlm::start(vec![
        FakeAnswer::delayed(
            Duration::from_secs(2),
            FakeAnswer::route("waypoint", 0.9, "late"),
        ),
        FakeAnswer::Garbage("<html>gateway error</html>".into()),
        FakeAnswer::route("atlantis", 0.9, "made up"),
        FakeAnswer::route("waypoint", 0.2, "a guess"),
    ])
    .await;
    let chain = [ProviderKind::Llm, ProviderKind::Capabilities];
    let engine = Engine::open(with_llm(&env, &chain, &llm)).await.unwrap();
    register(&engine, "tf-runner", "infra", &["terraform"]).await;
    let expect = [
        "timed out after 300 ms",
        "answer is not JSON",
        "unknown project \"atlantis\"",
        "a guess (confidence 0.20 below 0.50)",
    ];
    for (i, why) in expect.iter().enumerate() {
        let mut draft = TaskDraft::new(format!("Provision bucket {i}"));
        draft.required_capabilities = vec!["terraform".into()];
        let t = global(&engine).add_task(draft).await.unwrap();
        assert_eq!(
            t.routed_to.as_ref().unwrap().as_str(),
            "hopper-infra",
            "task {i}"
        );
        let d = &engine.explain_routing(&t.id).await.unwrap().decisions[0];
        assert_eq!(d.decided_by.as_deref(), Some("capabilities"));
        assert!(
            d.chain[0].reason.contains(why),
            "task {i}: {}",
            d.chain[0].reason
        );
        let expected = if i == 3 {
            StepOutcome::BelowThreshold
        } else {
            StepOutcome::Abstained
        };
        assert_eq!(d.chain[0].outcome, expected);
        assert!(
            d.chain[1].reason.contains("tf-runner"),
            "{}",
            d.chain[1].reason
        );
    }
    // Nothing decides: triage, with every reason in the task's own routing_reason.
    let t = global(&engine)
        .add_task(TaskDraft::new("Water the plants"))
        .await
        .unwrap();
    assert_eq!(t.status, TaskStatus::Pending);
    let why = t.routing_reason.unwrap();
    assert!(why.starts_with("no provider decided (llm: "), "{why}");
    assert!(why.contains("capabilities: the task has no tags"), "{why}");
    engine.close().await;
}
on_both!(each_llm_failure_falls_through_with_its_reason);

/// A webhook is answered at once while a 2 s LLM thinks; the task is routed afterwards.
async fn a_slow_llm_never_holds_up_ingest(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let llm = FakeLlm::start(vec![FakeAnswer::delayed(
        Duration::from_secs(2),
        FakeAnswer::route("waypoint", 0.9, "slow but sure"),
    )])
    .await;
    let mut configs = with_llm(&env, &[ProviderKind::Llm, ProviderKind::Rules], &llm);
    configs.root.intelligence.llm.timeout_ms = 5_000;
    let engine = Engine::open(configs).await.unwrap();
    let started = Instant::now();
    let receipt = engine
        .ingest(Ingest {
            source: "http:test".into(),
            endpoint: "http/test".into(),
            instance: None,
            headers: serde_json::json!({}),
            body: bytes::Bytes::from_static(b"{}"),
            interpretation: Interpretation::task(
                Some("d-1".into()),
                "webhook",
                TaskDraft::new("An essay on rivers"),
            ),
            replay_of: None,
        })
        .await
        .unwrap();
    let answered = started.elapsed();
    assert!(
        answered < Duration::from_secs(1),
        "answered after {answered:?}"
    );
    let id = TaskId::parse(receipt.task_id.as_deref().unwrap()).unwrap();
    assert_eq!(
        engine.get_task(&id).await.unwrap().status,
        TaskStatus::Pending
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.get_task(&id).await.unwrap().status != TaskStatus::Routed {
        assert!(Instant::now() < deadline, "never routed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let task = engine.get_task(&id).await.unwrap();
    assert_eq!(task.routed_to.unwrap().as_str(), "hopper-waypoint");
    let d = &engine.explain_routing(&id).await.unwrap().decisions;
    assert!(d.iter().any(|d| d.decided_by.as_deref() == Some("llm")));
    engine.close().await;
}
on_both!(a_slow_llm_never_holds_up_ingest);

/// Re-routing: a routed, unclaimed task moves (its copy cancelled, without cancelling the
/// global task), a triaged one is sent, a claimed copy refuses; the new copy's completion
/// finishes the global task.
async fn reroute_moves_the_task_and_records_the_correction(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = Engine::open(configs(&env)).await.unwrap();
    let g = global(&engine);
    let t = g
        .add_task(TaskDraft::new("Audit the docs").with_tags(["security"]))
        .await
        .unwrap();
    assert_eq!(t.routed_to.as_ref().unwrap().as_str(), "hopper-sark");
    let req = RerouteRequest {
        project: "waypoint".into(),
        reason: Some("it is a writing task".into()),
    };
    let moved = engine.reroute(&t.id, &req, &Actor::Admin).await.unwrap();
    assert_eq!(moved.status, TaskStatus::Routed);
    assert_eq!(
        moved.routed_to.as_ref().unwrap().as_str(),
        "hopper-waypoint"
    );
    let old = tasks_in(&engine, &project("sark")).await;
    assert_eq!(old[0].status, TaskStatus::Cancelled);
    let new = tasks_in(&engine, &project("waypoint")).await;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].status, TaskStatus::Pending);
    assert_eq!(
        engine.get_task(&t.id).await.unwrap().status,
        TaskStatus::Routed
    );

    let report = engine.explain_routing(&t.id).await.unwrap();
    let kinds: Vec<&str> = report.decisions.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(&kinds[..3], ["routed", "rerouted", "routed"], "{kinds:?}");
    let c = report.decisions[1].correction.as_ref().unwrap();
    assert_eq!(c["from"], "hopper-sark");
    assert_eq!(c["to"], "hopper-waypoint");
    assert_eq!(c["reason"], "it is a writing task");
    assert_eq!(
        report.decisions[2].decided_by.as_deref(),
        Some("correction")
    );

    // Same place again: refused. The new copy finishes the global task.
    let again = engine
        .reroute(&t.id, &req, &Actor::Admin)
        .await
        .unwrap_err();
    assert!(matches!(again, HopperError::Conflict(_)), "{again}");
    let w = handle(&engine, &project("waypoint"));
    let claimed = w.get_next("writer").await.unwrap().unwrap();
    let actor = Actor::Executor {
        name: "writer".into(),
        lease: claimed.lease_id.clone().unwrap(),
    };
    engine.complete(&claimed.id, &actor, None).await.unwrap();
    assert_eq!(
        engine.get_task(&t.id).await.unwrap().status,
        TaskStatus::Done
    );

    // A claimed copy is not taken away.
    let t2 = g
        .add_task(TaskDraft::new("Rotate keys").with_tags(["security"]))
        .await
        .unwrap();
    let s = handle(&engine, &project("sark"));
    s.get_next("guard").await.unwrap().unwrap();
    let err = engine
        .reroute(&t2.id, &req, &Actor::Admin)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("release it first"), "{err}");

    // A triaged task is sent.
    let t3 = g
        .add_task(TaskDraft::new("Water the plants"))
        .await
        .unwrap();
    assert_eq!(t3.status, TaskStatus::Pending);
    let sent = engine.reroute(&t3.id, &req, &Actor::Admin).await.unwrap();
    assert_eq!(sent.routed_to.unwrap().as_str(), "hopper-waypoint");
    let report = engine.explain_routing(&t3.id).await.unwrap();
    let c = report
        .decisions
        .iter()
        .find_map(|d| d.correction.clone())
        .unwrap();
    assert_eq!(c["from"], serde_json::Value::Null);
    engine.close().await;
}
on_both!(reroute_moves_the_task_and_records_the_correction);

/// The rules file edited on disk routes the next task differently, without a restart; a bad
/// edit keeps the previous rules.
#[tokio::test]
async fn an_edited_rules_file_is_used_without_a_restart() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let path = env.dir.path().join("rules.yaml");
    std::fs::write(&path, "projects:\n  alpha:\n    tags: [x]\n").unwrap();
    let mut c = env.configs();
    c.rules = hopper::config::RoutingRules::load(&path).unwrap();
    c.rules_file = Some(path.clone());
    c.root.intelligence.rules_reload_seconds = 1;
    let engine = Engine::open(c).await.unwrap();
    let g = global(&engine);
    let add = || g.add_task(TaskDraft::new("Something").with_tags(["x"]));
    assert_eq!(
        add().await.unwrap().routed_to.unwrap().as_str(),
        "hopper-alpha"
    );

    std::fs::write(&path, "projects:\n  beta:\n    tags: [x]\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !engine.routing_rules().projects.contains_key("beta") {
        assert!(Instant::now() < deadline, "the edit was never loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        add().await.unwrap().routed_to.unwrap().as_str(),
        "hopper-beta"
    );

    std::fs::write(&path, "projects:\n  gamma: [not, a, rule\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(engine.routing_rules().projects.contains_key("beta"));
    assert_eq!(
        add().await.unwrap().routed_to.unwrap().as_str(),
        "hopper-beta"
    );
    engine.close().await;
}

/// `intelligence.decompose: llm`: the run's phases and their tasks are the LLM's; a bad plan
/// falls back to the template, saying why.
async fn decomposition_follows_the_llm_plan(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let plan = serde_json::json!({"phases": [
        {"name": "design", "tasks": [{"title": "Sketch the API"}]},
        {"name": "build", "tasks": [{"title": "Write it", "tags": ["rust"]}, {"title": "Test it"}]},
    ]});
    let llm = FakeLlm::start(vec![
        FakeAnswer::Content(plan.to_string()),
        FakeAnswer::Garbage("nope".into()),
    ])
    .await;
    let mut configs = with_llm(&env, &[ProviderKind::Rules], &llm);
    configs.root.intelligence.decompose = DecomposeMode::Llm;
    let engine = Engine::open(configs).await.unwrap();
    let t = global(&engine)
        .add_task(TaskDraft::new("New policy engine").with_tags(["security", "feature"]))
        .await
        .unwrap();
    let copy = &tasks_in(&engine, &project("sark")).await[0];
    let run = copy.routed_to.clone().expect("the project started a run");
    let phase = |n: usize| run.child(&format!("phase-{n}")).unwrap();
    let titles = |tasks: Vec<hopper::domain::Task>| -> Vec<String> {
        let mut v: Vec<String> = tasks.into_iter().map(|t| t.title).collect();
        v.sort();
        v
    };
    assert_eq!(
        titles(tasks_in(&engine, &phase(1)).await),
        ["Sketch the API"]
    );
    assert_eq!(
        titles(tasks_in(&engine, &phase(2)).await),
        ["Test it", "Write it"]
    );
    let meta = engine.get_instance(&phase(2)).await.unwrap().metadata;
    assert_eq!(meta["phase"], "build");
    assert!(
        engine.get_instance(&phase(3)).await.is_err(),
        "only the plan's phases"
    );

    let dry = engine.plan_for(&t.id).await.unwrap();
    assert_eq!(dry.source, "template");
    assert!(dry.fallback_reason.unwrap().contains("not JSON"));
    assert!(!dry.phases.is_empty());
    engine.close().await;
}
on_both!(decomposition_follows_the_llm_plan);

/// The sage contract: a signed POST of the routing context, `{project, confidence, reason}`
/// back.
async fn sage_decides_with_a_signed_request(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let secret = hopper::outbound::generate_secret();
    let sage = FakeSage::start(
        Some(secret.clone()),
        vec![SageAnswer::route("waypoint", 0.8, "sage knows")],
    )
    .await;
    let mut c = configs(&env);
    c.root.intelligence.providers = Some(vec![ProviderKind::Sage, ProviderKind::Rules]);
    c.root.intelligence.sage.url = Some(sage.url.clone());
    c.root.intelligence.sage.secret = Some(Secret::new(secret));
    let engine = Engine::open(c).await.unwrap();
    let t = global(&engine)
        .add_task(TaskDraft::new("Anything at all").with_tags(["security"]))
        .await
        .unwrap();
    assert_eq!(t.routed_to.unwrap().as_str(), "hopper-waypoint");
    let req = &sage.requests()[0];
    assert!(req.verified, "signed like outbound webhooks");
    assert_eq!(req.body["task"]["title"], "Anything at all");
    assert!(
        req.body["projects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "sark"),
        "the rules' projects are candidates"
    );
    let d = &engine.explain_routing(&t.id).await.unwrap().decisions[0];
    assert_eq!(d.decided_by.as_deref(), Some("sage"));
    assert_eq!(d.reasoning.as_deref(), Some("sage: sage knows"));
    engine.close().await;
}
on_both!(sage_decides_with_a_signed_request);

/// A sage that fails (HTTP 500, then garbage) passes the task to the rules, its reason kept.
async fn a_failing_sage_falls_through_to_the_rules(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let sage = FakeSage::start(
        None,
        vec![
            SageAnswer::Status(500, "upstream down".into()),
            SageAnswer::Garbage("]]".into()),
        ],
    )
    .await;
    let mut c = configs(&env);
    c.root.intelligence.providers = Some(vec![ProviderKind::Sage, ProviderKind::Rules]);
    c.root.intelligence.sage.url = Some(sage.url.clone());
    let engine = Engine::open(c).await.unwrap();
    for why in ["HTTP 500", "not JSON"] {
        let t = global(&engine)
            .add_task(TaskDraft::new("Harden the proxy").with_tags(["security"]))
            .await
            .unwrap();
        assert_eq!(t.routed_to.unwrap().as_str(), "hopper-sark");
        let d = &engine.explain_routing(&t.id).await.unwrap().decisions[0];
        assert_eq!(d.decided_by.as_deref(), Some("rules"));
        assert_eq!(d.chain[0].provider, "sage");
        assert!(d.chain[0].reason.contains(why), "{}", d.chain[0].reason);
    }
    assert!(sage.requests().iter().all(|r| r.signature.is_empty()));
    engine.close().await;
}
on_both!(a_failing_sage_falls_through_to_the_rules);

//! Project names from outside never reach anything but a project instance: a task naming the
//! root (`global`, `hopper-global`), a run or a phase waits in global triage with the reason,
//! through every unauthenticated door (SMTP, GitHub, Slack) as well as the API, and a database
//! an older version left with a self-delegation starts cleanly.

use hopper::domain::{InstanceId, TaskDraft, TaskStatus};
use hopper_integration_api::Secret;
use hopper_integration_api::verify::{sign_hex, unix_now};
use serde_json::{Value, json};

use crate::support::{Backend, TestEnv, TestServer, eventually, global, on_both, tasks_in};

const GH_SECRET: &str = "gh-hostile";
const ISSUE_OPENED: &str = include_str!("../fixtures/github/issues_opened.json");

/// Every task in global is pending in triage, and nothing was created below it.
async fn only_triage(engine: &hopper::Engine, expected: usize) -> Vec<hopper::domain::Task> {
    let tasks = tasks_in(engine, &InstanceId::global()).await;
    assert_eq!(tasks.len(), expected, "{tasks:#?}");
    for t in &tasks {
        assert_eq!(t.status, TaskStatus::Pending, "{t:#?}");
        assert!(t.routed_to.is_none());
    }
    let tree = engine.tree().await.unwrap();
    assert!(
        tree.children.is_empty(),
        "no instance was created: {tree:#?}"
    );
    tasks
}

async fn the_root_and_runs_are_not_projects(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let g = global(&engine);
    for name in ["global", "hopper-global"] {
        let mut d = TaskDraft::new(format!("loop via {name}"));
        d.project = Some(name.into());
        let t = g.add_task(d).await.unwrap();
        assert_eq!(t.status, TaskStatus::Pending);
        let why = t.routing_reason.unwrap_or_default();
        assert!(why.contains("global instance"), "{why}");
    }
    only_triage(&engine, 2).await;

    // A run of a project: its id spelt as a project name must not reach it.
    let mut d = TaskDraft::new("big feature");
    d.tags = vec!["security".into(), "feature".into()];
    let t = g.add_task(d).await.unwrap();
    assert_eq!(t.status, TaskStatus::Routed);
    let runs = engine
        .list_instances(&hopper::domain::InstanceFilter {
            scope: Some(hopper::domain::Scope::Orchestration),
            ..Default::default()
        })
        .await
        .unwrap();
    let run = runs
        .iter()
        .find(|i| {
            i.instance_id.as_str().contains("-run-") && !i.instance_id.as_str().contains("-phase-")
        })
        .unwrap();
    for id in [
        run.instance_id.as_str().to_owned(),
        format!("{}-phase-1", run.instance_id),
    ] {
        let mut d = TaskDraft::new("straight into a run");
        d.project = Some(id.trim_start_matches("hopper-").to_owned());
        let t = g.add_task(d).await.unwrap();
        assert_eq!(t.status, TaskStatus::Pending, "{t:#?}");
        assert!(t.routing_reason.unwrap_or_default().contains("run"));
    }
    // A child registered by hand under a project (`hopper-sark-sub`) is not a project either.
    engine
        .child(&InstanceId::parse("hopper-sark").unwrap(), "sub", None)
        .await
        .unwrap();
    let mut d = TaskDraft::new("into an orchestration child");
    d.project = Some("sark-sub".into());
    let t = g.add_task(d).await.unwrap();
    assert_eq!(t.status, TaskStatus::Pending);
    assert!(
        t.routing_reason
            .unwrap_or_default()
            .contains("not a project"),
        "triaged with the reason"
    );

    // And the process still starts afterwards.
    drop(engine);
    let again = env.engine().await;
    assert!(!tasks_in(&again, &InstanceId::global()).await.is_empty());
}
on_both!(the_root_and_runs_are_not_projects);

async fn github_repository_named_global(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.inbound
        .insert("github".into(), json!({ "secret": GH_SECRET }));
    let server = TestServer::start(&env).await;
    let body = ISSUE_OPENED
        .replace("\"Codertocat/Hello-World\"", "\"Codertocat/global\"")
        .replace("\"Hello-World\"", "\"global\"");
    let sig = format!(
        "sha256={}",
        sign_hex(&Secret::new(GH_SECRET), &[body.as_bytes()])
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/webhooks/github", server.base))
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "d-global")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let tasks = eventually(|| async {
        let t = tasks_in(&server.engine, &InstanceId::global()).await;
        t.first()
            .is_some_and(|t| t.routing_reason.is_some())
            .then_some(t)
    })
    .await;
    assert_eq!(tasks[0].project.as_deref(), Some("global"));
    only_triage(&server.engine, 1).await;
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "still serving");
}
on_both!(github_repository_named_global);

#[tokio::test]
async fn slack_command_naming_global() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound
        .insert("slack".into(), json!({ "signing_secret": "slack-signing" }));
    let server = TestServer::start(&env).await;
    let form = "token=x&team_id=T1&channel_id=C2&user_id=U3&user_name=ana&command=%2Fhopper&text=add+x+--project+global&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=1.2.3";
    let ts = unix_now().to_string();
    let sig = sign_hex(
        &Secret::new("slack-signing"),
        &[b"v0:", ts.as_bytes(), b":", form.as_bytes()],
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/webhooks/slack/commands", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", format!("v0={sig}"))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    eventually(|| async {
        let t = tasks_in(&server.engine, &InstanceId::global()).await;
        t.first()
            .is_some_and(|t| t.routing_reason.is_some())
            .then_some(())
    })
    .await;
    only_triage(&server.engine, 1).await;
}

#[tokio::test]
async fn smtp_mail_to_hopper_plus_global() {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound.insert(
        "email".into(),
        json!({ "smtp": { "domains": ["tasks.example.com"] } }),
    );
    let server = TestServer::start(&env).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let source = hopper::gateway::smtp::email_source(&server.engine).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    hopper::gateway::smtp::spawn(server.engine.clone(), source, listener, stop.clone()).unwrap();
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    for to in [
        "hopper+global@tasks.example.com",
        "hopper+hopper-global@tasks.example.com",
    ] {
        let mail = Message::builder()
            .from("Eve <eve@example.com>".parse().unwrap())
            .to(to.parse().unwrap())
            .subject("Loop me")
            .body("forever".to_owned())
            .unwrap();
        assert!(mailer.send(mail).await.unwrap().is_positive());
    }
    eventually(|| async {
        let t = tasks_in(&server.engine, &InstanceId::global()).await;
        (t.len() == 2 && t.iter().all(|t| t.routing_reason.is_some())).then_some(())
    })
    .await;
    only_triage(&server.engine, 2).await;
    stop.cancel();
}

/// A database an older version left behind: a task delegated from global to global, its
/// delegation still pending. Start-up neither loops nor aborts; the task is back in triage.
async fn a_self_delegation_left_by_an_older_version(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let engine = env.engine().await;
    let root = InstanceId::global();
    let store = engine
        .stores()
        .get(&hopper::store::StoreKey::from_url(&env.url).unwrap())
        .await
        .unwrap();
    let id = hopper::domain::TaskId::generate();
    let now = hopper::domain::now_millis();
    let delegation = hopper::store::Delegation {
        parent_instance_id: root.clone(),
        parent_task_id: id.clone(),
        child_instance_id: root.clone(),
        child_task_id: hopper::domain::TaskId::generate(),
        kind: hopper::store::DelegationKind::Task,
        state: hopper::store::DelegationState::Pending,
        delegated_at: now - 60_000,
    };
    let mut draft = TaskDraft::new("routed to itself");
    draft.project = Some("global".into());
    let row = hopper::store::NewTaskRow {
        id: id.clone(),
        instance_id: root.clone(),
        parent_task_id: None,
        draft,
        status: TaskStatus::Routed,
        routed_to: Some(root.clone()),
        routing_reason: Some("an older version".into()),
        now: now - 60_000,
    };
    store
        .insert_delegating_task(
            &row,
            &delegation,
            &hopper::store::EventRecord::new("routed", "old"),
        )
        .await
        .unwrap();
    engine.close().await;
    drop(engine);

    let engine = env.engine().await;
    let t = engine.get_task(&id).await.unwrap();
    assert_eq!(t.status, TaskStatus::Pending, "back in triage: {t:#?}");
    let history = engine.task_history(&id).await.unwrap();
    let requeued = history.iter().find(|e| e.kind == "requeued").unwrap();
    let why: &Value = requeued.detail.as_ref().unwrap();
    assert!(
        why["reason"].as_str().unwrap().contains("not its child"),
        "{why}"
    );
    assert_eq!(tasks_in(&engine, &root).await.len(), 1, "nothing chained");
}
on_both!(a_self_delegation_left_by_an_older_version);

/// Made-up project names stop creating instances at `child_instances.max_children`; names the
/// rules know still get theirs.
async fn auto_created_projects_are_bounded(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut configs = env.configs();
    configs.root.child_instances.max_children = 3;
    let engine = hopper::Engine::open(configs).await.unwrap();
    let g = global(&engine);
    for i in 0..6 {
        let mut d = TaskDraft::new(format!("made up {i}"));
        d.project = Some(format!("made-up-{i}"));
        let t = g.add_task(d).await.unwrap();
        if i < 3 {
            assert_eq!(t.status, TaskStatus::Routed, "{i}");
        } else {
            assert_eq!(t.status, TaskStatus::Pending, "{i}");
            assert!(t.routing_reason.unwrap().contains("max_children"));
        }
    }
    let mut known = TaskDraft::new("for a known project");
    known.project = Some("sark".into());
    assert_eq!(g.add_task(known).await.unwrap().status, TaskStatus::Routed);
    let projects = engine
        .list_instances(&hopper::domain::InstanceFilter {
            scope: Some(hopper::domain::Scope::Project),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(projects.len(), 4, "three made up, one known");
}
on_both!(auto_created_projects_are_bounded);

/// A task whose routing can never succeed (its project's database cannot be opened) is not
/// retried for ever: after 5 tries it waits in triage with the reason.
#[tokio::test]
async fn routing_that_keeps_failing_is_parked_in_triage() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound
        .insert("email".into(), json!({ "token": "mail-token" }));
    let mut configs = env.configs();
    configs.project.persistence.storage = hopper::config::Storage::Sqlite;
    configs.project.persistence.path = Some("/proc/no-such-dir/{project_name}.db".into());
    let engine = hopper::Engine::open(configs.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(hopper::server::run(
        engine.clone(),
        Secret::new("t".to_owned()),
        listener,
        stop.clone(),
    ));
    let mail = b"From: ana@example.com\r\nTo: hopper+broken@example.com\r\nSubject: Unroutable\r\nMessage-ID: <u1@example.com>\r\n\r\nbody\r\n";
    let resp = reqwest::Client::new()
        .post(format!("{base}/webhooks/email"))
        .header("content-type", "message/rfc822")
        .bearer_auth("mail-token")
        .body(mail.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id = tasks_in(&engine, &InstanceId::global()).await[0].id.clone();
    for _ in 0..6 {
        engine.recover().await.unwrap();
    }
    let t = engine.get_task(&id).await.unwrap();
    assert_eq!(t.status, TaskStatus::Pending);
    let why = t.routing_reason.unwrap_or_default();
    assert!(why.contains("routing failed 5 times"), "{why}");
    stop.cancel();
}

/// Open handles on files under `dir` (what an idle project keeps open).
fn open_files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.starts_with(dir))
                .count()
        })
        .unwrap_or(0)
}

/// Projects with files of their own are closed when idle (their threads and handles go) and
/// opened again on the next use; a project holding a claim stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_project_files_are_closed_and_reopened() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let projects_dir = env.dir.path().join("projects");
    let mut configs = env.configs();
    configs.project.persistence.storage = hopper::config::Storage::Sqlite;
    configs.project.persistence.path =
        Some(format!("{}/{{project_name}}.db", projects_dir.display()));
    let engine = hopper::Engine::open(configs).await.unwrap();
    let g = global(&engine);
    for i in 0..10 {
        let mut d = TaskDraft::new(format!("job {i}"));
        d.project = Some(format!("p{i}"));
        assert_eq!(g.add_task(d).await.unwrap().status, TaskStatus::Routed);
    }
    let p3 = InstanceId::parse("hopper-p3").unwrap();
    let claimed = engine.get_next(&p3, "w").await.unwrap().unwrap();
    let open = open_files_under(&projects_dir);
    assert!(open >= 30, "ten project files open: {open}");

    assert_eq!(
        engine.close_projects_idle_for(0).await.unwrap(),
        9,
        "p3 holds a claim"
    );
    eventually(|| async {
        let open = open_files_under(&projects_dir);
        (open <= 15).then_some(())
    })
    .await;

    // Next use opens the file again; nothing was lost.
    let p5 = InstanceId::parse("hopper-p5").unwrap();
    let t = engine.get_next(&p5, "w").await.unwrap().unwrap();
    assert_eq!(t.title, "job 5");
    engine
        .complete(&t.id, &hopper::domain::Actor::holder(&t).unwrap(), None)
        .await
        .unwrap();
    engine
        .complete(
            &claimed.id,
            &hopper::domain::Actor::holder(&claimed).unwrap(),
            None,
        )
        .await
        .unwrap();
    let mut d = TaskDraft::new("again");
    d.project = Some("p7".into());
    assert_eq!(g.add_task(d).await.unwrap().status, TaskStatus::Routed);
    let done = tasks_in(&engine, &InstanceId::global())
        .await
        .into_iter()
        .filter(|t| t.status == TaskStatus::Done)
        .count();
    assert_eq!(done, 2, "both completions bubbled to global");
}

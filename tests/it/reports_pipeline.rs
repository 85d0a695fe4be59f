//! Reports back, through the outbound pipeline with an in-process reporter standing in for an
//! integration (the integrations' own tests speak to loopback GitHub, GitLab, Slack and SMTP
//! servers): what is reported when, how it reads, retries with the remote's `Retry-After`,
//! dead letters, and the rows in `GET /v1/deliveries`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hopper::Engine;
use hopper::domain::{
    Actor, DeliveryFilter, Feedback, InstanceId, SourceRef, TaskDraft, TaskStatus,
};
use hopper::reports::Reporters;
use hopper_integration_api::{Delivered, Moment, Report, ReportError, Reporter};
use tokio_util::sync::CancellationToken;

use crate::outbound_support::{outbound_configs, sark, until};
use crate::support::{Backend, TestEnv, handle, on_both};

/// Records reports; answers from a script (then `Ok`).
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<Report>>,
    script: Mutex<Vec<Result<(), ReportError>>>,
}

#[async_trait]
impl Reporter for Recorder {
    fn kind(&self) -> &'static str {
        "github"
    }
    async fn report(&self, r: &Report) -> Result<Delivered, ReportError> {
        self.got.lock().unwrap().push(r.clone());
        let next = {
            let mut s = self.script.lock().unwrap();
            if s.is_empty() { Ok(()) } else { s.remove(0) }
        };
        next.map(|_| Delivered {
            status: 201,
            detail: "https://github.example/acme/sark/issues/7#issuecomment-1".into(),
        })
    }
}

fn from_github(title: &str) -> TaskDraft {
    let mut d = TaskDraft::new(title).with_tags(["security"]);
    d.source = Some(SourceRef {
        kind: "github".into(),
        container: Some("acme/sark".into()),
        external_id: Some("acme/sark#7".into()),
        url: Some("https://github.example/acme/sark/issues/7".into()),
        reply_handle: Some(serde_json::json!({"repository": "acme/sark", "issue_number": 7})),
    });
    d
}

async fn start(env: &TestEnv, recorder: Arc<Recorder>) -> (Engine, CancellationToken) {
    let mut c = outbound_configs(env);
    c.root.reports = serde_json::from_value(serde_json::json!({
        "github": {
            "on": ["routed", "completed", "failed"],
            "labels": {"routed": ["hopper:routed/{{ project }}"], "completed": ["hopper:done"]},
            "close_on_success": true,
        }
    }))
    .unwrap();
    let engine = Engine::open(c).await.unwrap();
    let stop = CancellationToken::new();
    let reporters = Reporters::from_list(vec![recorder as Arc<dyn Reporter>]);
    hopper::outbound::spawn_with(engine.clone(), Arc::new(reporters), stop.clone())
        .await
        .unwrap();
    (engine, stop)
}

/// Routed and completed are reported, claimed is not (not in `on`); the texts, labels and
/// close follow the policy; the rows are deliveries of `report:github`.
async fn routed_and_completed_reach_the_source(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let rec = Arc::new(Recorder::default());
    let (engine, stop) = start(&env, rec.clone()).await;
    let global = engine
        .add_task(&InstanceId::global(), from_github("Patch the auth bypass"))
        .await
        .unwrap();
    until("routed reported", || async {
        !rec.got.lock().unwrap().is_empty()
    })
    .await;
    let routed = rec.got.lock().unwrap()[0].clone();
    assert_eq!(routed.moment, Moment::Routed);
    assert!(routed.text.contains("**sark**"), "{}", routed.text);
    assert_eq!(routed.add_labels, ["hopper:routed/sark"]);
    assert_eq!(routed.source.reply_handle.unwrap()["issue_number"], 7);
    assert!(!routed.close);

    let s = handle(&engine, &sark());
    let claimed = s.get_next("fixer").await.unwrap().unwrap();
    let actor = Actor::Executor {
        name: "fixer".into(),
        lease: claimed.lease_id.clone().unwrap(),
    };
    let fb = Feedback {
        notes: Some("Closed the bypass in the MCP gate".into()),
        quality_score: Some(4.0),
        ..Default::default()
    };
    engine
        .complete(&claimed.id, &actor, Some(fb))
        .await
        .unwrap();
    assert_eq!(
        engine.get_task(&global.id).await.unwrap().status,
        TaskStatus::Done
    );
    until("completed reported", || async {
        rec.got.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rec.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "claimed is not reported: {got:?}");
    let done = &got[1];
    assert_eq!(done.moment, Moment::Completed);
    assert!(
        done.text.contains("Closed the bypass in the MCP gate"),
        "{}",
        done.text
    );
    assert!(done.text.contains("Quality 4.0/5"), "{}", done.text);
    assert_eq!(done.add_labels, ["hopper:done"]);
    assert!(done.close);

    let rows = || async {
        let f = DeliveryFilter {
            executor: Some("report:github".into()),
            ..Default::default()
        };
        hopper::outbound::deliveries::list(&engine, &f)
            .await
            .unwrap()
    };
    until("both attempts recorded", || async {
        let r = rows().await;
        r.len() == 2
            && r.iter()
                .all(|d| d.status == hopper::domain::DeliveryStatus::Delivered)
    })
    .await;
    let rows = rows().await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|d| d.status == hopper::domain::DeliveryStatus::Delivered)
    );
    let mut events: Vec<&str> = rows.iter().map(|d| d.event.as_str()).collect();
    events.sort();
    assert_eq!(events, ["report.completed", "report.routed"]);
    stop.cancel();
    engine.close().await;
}
on_both!(routed_and_completed_reach_the_source);

/// While webhooks arrive faster than the busy rate the report of a new task waits (ingest
/// goes first, `engine/pace.rs`), and it goes once they slow down. The burst is the meter's
/// count (3,000 webhooks a second): a debug build on this machine cannot ingest that fast.
async fn a_report_waits_out_a_burst_of_ingest(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let rec = Arc::new(Recorder::default());
    let (engine, stop) = start(&env, rec.clone()).await;
    let burst = |engine: Engine| async move {
        for _ in 0..15 {
            for _ in 0..300 {
                engine.ingest_pace().record();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    for _ in 0..300 {
        engine.ingest_pace().record();
    }
    let burst = tokio::spawn(burst(engine.clone()));
    assert!(engine.ingest_pace().busy());
    engine
        .add_task(&InstanceId::global(), from_github("Patch the auth bypass"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        rec.got.lock().unwrap().is_empty(),
        "no report while the burst lasts"
    );
    burst.await.unwrap();
    until("routed reported after the burst", || async {
        !rec.got.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(rec.got.lock().unwrap()[0].moment, Moment::Routed);
    stop.cancel();
    engine.close().await;
}
on_both!(a_report_waits_out_a_burst_of_ingest);

/// A rate-limited attempt waits out the remote's `Retry-After`, then lands once; a
/// permanent refusal is dead at once. The task is never affected.
async fn retries_wait_and_refusals_are_dead(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let rec = Arc::new(Recorder::default());
    *rec.script.lock().unwrap() = vec![
        Err(ReportError::Retry {
            status: Some(403),
            retry_after: Some(Duration::from_secs(2)),
            message: "secondary rate limit".into(),
        }),
        Ok(()),
        Err(ReportError::Permanent {
            status: Some(404),
            message: "issue not found".into(),
        }),
    ];
    let (engine, stop) = start(&env, rec.clone()).await;
    let started = std::time::Instant::now();
    engine
        .add_task(&InstanceId::global(), from_github("First"))
        .await
        .unwrap();
    until("delivered after the wait", || async {
        rec.got.lock().unwrap().len() >= 2
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured"
    );
    let list = |status| {
        let engine = engine.clone();
        async move {
            let f = DeliveryFilter {
                executor: Some("report:github".into()),
                status: Some(status),
                ..Default::default()
            };
            hopper::outbound::deliveries::list(&engine, &f)
                .await
                .unwrap()
        }
    };
    // The result is written beside the next attempts, a moment after the remote took it.
    until("the attempt recorded", || async {
        list(hopper::domain::DeliveryStatus::Delivered).await.len() == 1
    })
    .await;
    let delivered = list(hopper::domain::DeliveryStatus::Delivered).await;
    assert_eq!(delivered[0].attempts, 2);
    let detail = hopper::outbound::deliveries::show(&engine, &delivered[0].id)
        .await
        .unwrap();
    assert_eq!(detail.history[0].status_code, Some(403));
    assert_eq!(
        detail.history[0].error.as_deref(),
        Some("secondary rate limit")
    );

    engine
        .add_task(&InstanceId::global(), from_github("Second"))
        .await
        .unwrap();
    until("dead", || async {
        !list(hopper::domain::DeliveryStatus::Dead).await.is_empty()
    })
    .await;
    assert_eq!(rec.got.lock().unwrap().len(), 3, "a refusal is not retried");
    stop.cancel();
    engine.close().await;
}
on_both!(retries_wait_and_refusals_are_dead);

/// The real path: `reports.slack` in the config builds the Slack reporter (its connection keys
/// passed on, the policy keys kept), and a task from a Slack thread gets its completion as a
/// thread reply from a loopback Slack API.
#[tokio::test]
async fn a_slack_task_is_answered_in_its_thread() {
    use axum::extract::State;
    use axum::http::HeaderMap;
    type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;
    async fn post_message(
        State(seen): State<Seen>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::Json<serde_json::Value> {
        let auth = crate::outbound_support::header(&headers, "authorization");
        seen.lock().unwrap().push((auth, body));
        axum::Json(serde_json::json!({"ok": true, "ts": "1700000000.000300"}))
    }
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/api/chat.postMessage", axum::routing::post(post_message))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = TestEnv::new(Backend::Sqlite).await;
    let mut c = outbound_configs(&env);
    c.root.reports = serde_json::from_value(serde_json::json!({
        "slack": {"api_url": api, "bot_token": "xoxb-e2e", "templates": {"completed": "Done: {{ task.title }}"}},
    }))
    .unwrap();
    let engine = Engine::open(c).await.unwrap();
    let stop = CancellationToken::new();
    hopper::outbound::spawn(engine.clone(), stop.clone())
        .await
        .unwrap();
    let mut d = TaskDraft::new("Reset my VPN");
    d.source = Some(SourceRef {
        kind: "slack".into(),
        container: Some("C024BE91L".into()),
        reply_handle: Some(
            serde_json::json!({"team": "T1", "channel": "C024BE91L", "thread_ts": "1699999999.000100"}),
        ),
        ..Default::default()
    });
    let t = engine.add_task(&InstanceId::global(), d).await.unwrap();
    assert_eq!(t.status, TaskStatus::Pending, "no rule: triage on global");
    let claimed = handle(&engine, &InstanceId::global())
        .get_next("helpdesk")
        .await
        .unwrap()
        .unwrap();
    let actor = Actor::Executor {
        name: "helpdesk".into(),
        lease: claimed.lease_id.clone().unwrap(),
    };
    engine.complete(&claimed.id, &actor, None).await.unwrap();
    until("the thread reply", || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    let (auth, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(auth, "Bearer xoxb-e2e");
    assert_eq!(body["channel"], "C024BE91L");
    assert_eq!(body["thread_ts"], "1699999999.000100");
    assert_eq!(body["text"], "Done: Reset my VPN");
    stop.cancel();
    engine.close().await;
}

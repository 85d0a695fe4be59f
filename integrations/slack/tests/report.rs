//! The Slack reporter against a loopback Slack: `chat.postMessage` (bearer token, JSON body,
//! Slack's `ok: false` errors, HTTP 429) and a slash command's `response_url`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hopper_integration_api::{Moment, Report, ReportError, Reporter, SourceRef, SourceSettings};
use serde_json::{Value, json};

/// One request the fake Slack got: the endpoint, its `Authorization`, its JSON body.
type Request = (String, Option<String>, Value);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

impl Seen {
    fn all(&self) -> Vec<Request> {
        self.0.lock().unwrap().clone()
    }
}

async fn post_message(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    seen.0
        .lock()
        .unwrap()
        .push(("chat.postMessage".into(), auth.clone(), body.clone()));
    if auth.as_deref() != Some("Bearer xoxb-good") {
        return Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    match body["channel"].as_str().unwrap_or_default() {
        "CRATE" => Json(json!({"ok": false, "error": "ratelimited"})).into_response(),
        "C429" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "3")],
            "slow down",
        )
            .into_response(),
        "CGONE" => Json(json!({"ok": false, "error": "channel_not_found"})).into_response(),
        _ => Json(json!({"ok": true, "channel": body["channel"], "ts": "1700000000.000200"}))
            .into_response(),
    }
}

async fn respond(
    State(seen): State<Seen>,
    Path(which): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    seen.0
        .lock()
        .unwrap()
        .push((format!("respond/{which}"), auth, body));
    match which.as_str() {
        "expired" => (StatusCode::NOT_FOUND, "expired_url").into_response(),
        _ => "ok".into_response(),
    }
}

async fn slack() -> (String, Seen) {
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/api/chat.postMessage", post(post_message))
        .route("/hooks/{which}", post(respond))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn reporter_with(section: Value, env: &[(&str, &str)]) -> Option<Box<dyn Reporter>> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    hopper_slack::report::reporter(&SourceSettings {
        section: &section,
        env: &lookup,
    })
    .unwrap()
}

fn reporter(base: &str, token: Option<&str>) -> Box<dyn Reporter> {
    let mut section = json!({
        "api_url": format!("{base}/api"),
        "response_url_prefix": format!("{base}/hooks/"),
    });
    if let Some(t) = token {
        section["bot_token"] = t.into();
    }
    reporter_with(section, &[]).unwrap()
}

/// A task id made `minutes_ago` (`task_` + UUIDv7), as the core makes them.
fn task_id(minutes_ago: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    format!(
        "task_{:012x}7000800000000000000a",
        now - minutes_ago * 60_000
    )
}

fn report(channel: &str, handle: Value, minutes_ago: u64) -> Report {
    Report {
        moment: Moment::Completed,
        source: SourceRef {
            kind: "slack".into(),
            container: Some(channel.into()),
            external_id: None,
            url: None,
            reply_handle: Some(handle),
        },
        task_id: task_id(minutes_ago),
        title: "Fix login".into(),
        text: "Task completed: Fix login".into(),
        add_labels: vec![],
        remove_labels: vec![],
        close: false,
    }
}

fn thread(channel: &str) -> Value {
    json!({"team": "T1", "channel": channel, "thread_ts": "1699999999.000100"})
}

fn command(channel: &str, url: &str) -> Value {
    json!({"team": "T1", "channel": channel, "user": "U1", "response_url": url})
}

#[tokio::test]
async fn a_thread_reply_goes_through_chat_post_message_with_the_bot_token() {
    let (base, seen) = slack().await;
    let r = reporter(&base, Some("xoxb-good"));
    assert_eq!(r.kind(), "slack");
    let done = r.report(&report("C1", thread("C1"), 1)).await.unwrap();
    assert_eq!(
        (done.status, done.detail.as_str()),
        (200, "1700000000.000200")
    );
    let seen = seen.all();
    assert_eq!(seen.len(), 1);
    let (path, auth, body) = &seen[0];
    assert_eq!(path, "chat.postMessage");
    assert_eq!(auth.as_deref(), Some("Bearer xoxb-good"));
    assert_eq!(
        body,
        &json!({"channel": "C1", "thread_ts": "1699999999.000100", "text": "Task completed: Fix login"})
    );
}

#[tokio::test]
async fn a_slash_command_is_answered_through_its_response_url_without_a_token() {
    let (base, seen) = slack().await;
    let r = reporter(&base, None);
    let url = format!("{base}/hooks/ok");
    let done = r
        .report(&report("C1", command("C1", &url), 5))
        .await
        .unwrap();
    assert_eq!((done.status, done.detail.as_str()), (200, "response_url"));
    let seen = seen.all();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "respond/ok");
    assert_eq!(
        seen[0].1, None,
        "the bot token is never sent to a response_url"
    );
    assert_eq!(
        seen[0].2,
        json!({"response_type": "in_channel", "text": "Task completed: Fix login"})
    );
}

#[tokio::test]
async fn an_old_slash_command_is_answered_in_its_channel_by_the_bot() {
    let (base, seen) = slack().await;
    let r = reporter(&base, Some("xoxb-good"));
    let url = format!("{base}/hooks/ok");
    let done = r
        .report(&report("C1", command("C1", &url), 45))
        .await
        .unwrap();
    assert_eq!(done.detail, "1700000000.000200");
    let seen = seen.all();
    assert_eq!(seen.len(), 1, "the stale response_url is not tried");
    assert_eq!(
        seen[0].2,
        json!({"channel": "C1", "text": "Task completed: Fix login"})
    );
}

#[tokio::test]
async fn an_expired_response_url_falls_back_to_the_bot_and_fails_without_one() {
    let (base, seen) = slack().await;
    let url = format!("{base}/hooks/expired");
    let done = reporter(&base, Some("xoxb-good"))
        .report(&report("C1", command("C1", &url), 1))
        .await
        .unwrap();
    assert_eq!(done.detail, "1700000000.000200");
    let paths: Vec<String> = seen.all().into_iter().map(|s| s.0).collect();
    assert_eq!(paths, ["respond/expired", "chat.postMessage"]);

    let err = reporter(&base, None)
        .report(&report("C1", command("C1", &url), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Permanent {
                status: Some(404),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains("/hooks/"),
        "the response_url is a credential: {err}"
    );
}

#[tokio::test]
async fn ratelimited_in_the_body_is_worth_a_retry() {
    let (base, _) = slack().await;
    let err = reporter(&base, Some("xoxb-good"))
        .report(&report("CRATE", thread("CRATE"), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Retry {
                status: Some(200),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("ratelimited"));
}

#[tokio::test]
async fn http_429_is_retried_after_what_slack_says() {
    let (base, _) = slack().await;
    let err = reporter(&base, Some("xoxb-good"))
        .report(&report("C429", thread("C429"), 1))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ReportError::Retry {
            status: Some(429),
            retry_after: Some(Duration::from_secs(3)),
            message: "chat.postMessage: HTTP 429".into(),
        }
    );
}

#[tokio::test]
async fn invalid_auth_and_a_missing_channel_are_permanent() {
    let (base, _) = slack().await;
    let err = reporter(&base, Some("xoxb-revoked"))
        .report(&report("C1", thread("C1"), 1))
        .await
        .unwrap_err();
    assert!(matches!(err, ReportError::Permanent { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid_auth"));
    assert!(!err.to_string().contains("xoxb"), "{err}");
    let err = reporter(&base, Some("xoxb-good"))
        .report(&report("CGONE", thread("CGONE"), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReportError::Permanent { .. })
            && err.to_string().contains("channel_not_found")
    );
}

#[tokio::test]
async fn without_a_token_or_a_section_there_is_no_reporter_and_a_section_answers_commands_only() {
    assert!(reporter_with(Value::Null, &[]).is_none());
    let (base, seen) = slack().await;
    let err = reporter(&base, None)
        .report(&report("C1", thread("C1"), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReportError::Permanent { status: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("HOPPER_SLACK_BOT_TOKEN"), "{err}");
    assert!(seen.all().is_empty());
}

#[tokio::test]
async fn the_token_and_the_api_url_come_from_the_environment() {
    let (base, seen) = slack().await;
    let api = format!("{base}/api");
    let r = reporter_with(
        Value::Null,
        &[
            ("HOPPER_SLACK_BOT_TOKEN", "xoxb-good"),
            ("HOPPER_SLACK_API_URL", &api),
        ],
    )
    .unwrap();
    r.report(&report("C1", thread("C1"), 1)).await.unwrap();
    assert_eq!(seen.all()[0].1.as_deref(), Some("Bearer xoxb-good"));
}

#[tokio::test]
async fn a_response_url_outside_the_prefix_is_refused_and_a_closed_port_is_retried() {
    let (base, seen) = slack().await;
    let r = reporter(&base, None);
    let err = r
        .report(&report(
            "C1",
            command("C1", "http://169.254.169.254/latest"),
            1,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, ReportError::Permanent { .. }) && err.to_string().contains("prefix"));
    assert!(seen.all().is_empty());

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = reporter(&dead, Some("xoxb-good"))
        .report(&report("C1", thread("C1"), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReportError::Retry { status: None, .. }),
        "{err:?}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let section = json!({"bot_tokn": "x"});
    let err = hopper_slack::report::reporter(&SourceSettings {
        section: &section,
        env: &|_| None,
    })
    .err()
    .unwrap();
    assert!(err.contains("bot_tokn"), "{err}");
}

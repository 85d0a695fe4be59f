//! The loopback server and fixtures the reporter tests share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hopper_github::report::reporter;
use hopper_integration_api::{Moment, Report, Reporter, SourceRef, SourceSettings};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub auth: Option<String>,
    pub body: Value,
}

pub type Answer = Arc<dyn Fn(&Seen) -> (u16, Vec<(&'static str, String)>, Value) + Send + Sync>;

#[derive(Clone)]
pub struct Server {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub answer: Answer,
}

pub async fn handle(
    State(s): State<Server>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    s.seen.lock().unwrap().push(seen.clone());
    let (status, extra, json) = (s.answer)(&seen);
    let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(json)).into_response();
    for (k, v) in extra {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

/// GitHub's answers: a comment object for a new comment, the labels for labels, the issue for
/// a PATCH, an installation token for the App.
pub fn github(seen: &Seen) -> (u16, Vec<(&'static str, String)>, Value) {
    let p = seen.path.as_str();
    if p.ends_with("/access_tokens") {
        let expires = "2099-01-01T00:00:00Z";
        return (
            201,
            vec![],
            json!({"token": "ghs_installation", "expires_at": expires, "permissions": {"issues": "write"}, "repository_selection": "all"}),
        );
    }
    if p.ends_with("/comments") {
        return (
            201,
            vec![],
            json!({
                "id": 1_234_567, "node_id": "IC_kwDOA", "body": seen.body["body"],
                "url": "https://api.github.com/repos/acme/widgets/issues/comments/1234567",
                "html_url": "https://github.com/acme/widgets/issues/7#issuecomment-1234567",
                "issue_url": "https://api.github.com/repos/acme/widgets/issues/7",
                "user": {"login": "hopper-bot", "id": 99, "type": "Bot"},
                "created_at": "2025-01-02T03:04:05Z", "updated_at": "2025-01-02T03:04:05Z",
                "author_association": "NONE"
            }),
        );
    }
    if p.ends_with("/labels/missing") {
        return (
            404,
            vec![],
            json!({"message": "Label does not exist", "documentation_url": "https://docs.github.com/rest", "status": "404"}),
        );
    }
    if p.contains("/labels") {
        return (
            200,
            vec![],
            json!([{"id": 1, "name": "done", "color": "0e8a16", "default": false}]),
        );
    }
    (
        200,
        vec![],
        json!({"number": 7, "state": "closed", "title": "Flaky test"}),
    )
}

pub async fn serve(answer: Answer) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().fallback(handle).with_state(Server {
        seen: seen.clone(),
        answer,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

pub fn build(section: Value) -> Box<dyn Reporter> {
    let env = |_: &str| None;
    let s = SourceSettings {
        section: &section,
        env: &env,
    };
    reporter(&s).unwrap().expect("configured")
}

pub fn report(handle: Option<Value>) -> Report {
    Report {
        moment: Moment::Completed,
        source: SourceRef {
            kind: "github".into(),
            container: Some("acme/widgets".into()),
            external_id: Some("acme/widgets#7".into()),
            url: None,
            reply_handle: handle,
        },
        task_id: "01J".into(),
        title: "Flaky test".into(),
        text: "**Completed** by `ci-fixer`.".into(),
        add_labels: vec![],
        remove_labels: vec![],
        close: false,
    }
}

pub fn handle7() -> Option<Value> {
    Some(json!({"repository": "acme/widgets", "issue_number": 7, "installation_id": null}))
}

pub fn failing(status: u16, headers: Vec<(&'static str, String)>, message: &str) -> Answer {
    let message = message.to_string();
    Arc::new(move |_: &Seen| {
        (
            status,
            headers.clone(),
            json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
        )
    })
}

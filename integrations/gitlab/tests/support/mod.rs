//! The loopback server and fixtures the reporter tests share.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hopper_gitlab::report::reporter;
use hopper_integration_api::{Moment, Report, Reporter, SourceRef, SourceSettings};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    /// The crate sends form-encoded bodies.
    pub form: Vec<(String, String)>,
}

pub type Answer = Arc<dyn Fn(&Seen) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync>;

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
        token: headers
            .get("private-token")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        form: serde_urlencoded::from_bytes(&body).unwrap_or_default(),
    };
    s.seen.lock().unwrap().push(seen.clone());
    let (status, extra, body) = if seen.path == "/api/v4/user"
        && seen.token.as_deref() == Some("glpat-revoked")
    {
        (
            401,
            vec![],
            json!({"message": "401 Unauthorized"}).to_string(),
        )
    } else if seen.path == "/api/v4/user" {
        let user = json!({"id": 7, "username": "hopper-bot", "name": "Hopper", "state": "active",
            "avatar_url": null, "web_url": "https://gitlab.example.com/hopper-bot"});
        (200, vec![], user.to_string())
    } else {
        (s.answer)(&seen)
    };
    let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (k, v) in extra {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

/// GitLab's answers: a note object for a new note, the issue or merge request for a PUT.
pub fn gitlab(seen: &Seen) -> (u16, Vec<(&'static str, String)>, String) {
    if seen.path.ends_with("/notes") {
        let body = seen
            .form
            .iter()
            .find(|(k, _)| k == "body")
            .map(|(_, v)| v.clone());
        let noteable = if seen.path.contains("/merge_requests/") {
            "MergeRequest"
        } else {
            "Issue"
        };
        let note = json!({
            "id": 1234, "type": null, "body": body, "attachment": null,
            "author": {"id": 7, "username": "hopper-bot", "name": "Hopper", "state": "active"},
            "created_at": "2025-01-02T03:04:05.000Z", "updated_at": "2025-01-02T03:04:05.000Z",
            "system": false, "noteable_id": 377, "noteable_type": noteable, "project_id": 99,
            "noteable_iid": 5, "resolvable": false, "confidential": false, "internal": false
        });
        return (201, vec![], note.to_string());
    }
    let object =
        json!({"id": 377, "iid": 5, "project_id": 99, "state": "closed", "labels": ["done"]});
    (200, vec![], object.to_string())
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

pub fn build(url: &str) -> Box<dyn Reporter> {
    let env = |_: &str| None;
    let section = json!({"url": url, "token": "glpat-test"});
    let s = SourceSettings {
        section: &section,
        env: &env,
    };
    reporter(&s).unwrap().expect("configured")
}

pub fn report(noteable: &str) -> Report {
    Report {
        moment: Moment::Completed,
        source: SourceRef {
            kind: "gitlab".into(),
            container: Some("acme/widgets".into()),
            external_id: Some("acme/widgets#5".into()),
            url: Some("https://gitlab.example.com/acme/widgets/-/issues/5".into()),
            reply_handle: Some(json!({"project_id": 99, "noteable_type": noteable, "iid": 5})),
        },
        task_id: "01J".into(),
        title: "Flaky test".into(),
        text: "**Completed** by `ci-fixer`.".into(),
        add_labels: vec![],
        remove_labels: vec![],
        close: false,
    }
}

pub fn calls(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<Seen> {
    seen.lock().unwrap().clone()
}

pub fn failing(status: u16, headers: Vec<(&'static str, String)>, body: &str) -> Answer {
    let body = body.to_string();
    Arc::new(move |_: &Seen| (status, headers.clone(), body.clone()))
}

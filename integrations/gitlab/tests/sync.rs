//! Two-way sync's GitLab half against a loopback GitLab (REST v4) with the `gitlab` crate's
//! real client: opening an exported task's issue, and a retry finding the one an earlier
//! attempt opened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with the reporter tests, which use all of it.
#[allow(dead_code)]
mod support;

use support::*;

use std::sync::Arc;

use hopper_integration_api::IssueDraft;
use hopper_integration_api::sync::marker;
use serde_json::json;

fn draft(retried: bool) -> IssueDraft {
    IssueDraft {
        repository: "acme/widgets".into(),
        title: "Rotate the signing keys".into(),
        body: format!("Before Friday.\n\n{}", marker("tsk_0193abc")),
        labels: vec!["hopper".into(), "priority:high".into()],
        task_id: "tsk_0193abc".into(),
        retried,
    }
}

fn issue(iid: u64, description: &str) -> serde_json::Value {
    json!({
        "id": 1000 + iid, "iid": iid, "project_id": 99, "title": "Rotate the signing keys",
        "description": description, "state": "opened",
        "web_url": format!("https://gitlab.example.com/acme/widgets/-/issues/{iid}"),
    })
}

#[tokio::test]
async fn an_exported_task_opens_an_issue_with_its_labels() {
    let answer: Answer = Arc::new(|s: &Seen| match s.method.as_str() {
        "POST" => (201, vec![], issue(12, "x").to_string()),
        _ => (404, vec![], json!({"message": "404 Not Found"}).to_string()),
    });
    let (base, seen) = serve(answer).await;
    let opened = build(&base).open_issue(&draft(false)).await.unwrap();
    assert_eq!(opened.number, "12");
    assert_eq!(
        opened.url,
        "https://gitlab.example.com/acme/widgets/-/issues/12"
    );
    assert_eq!(
        opened.handle,
        json!({"project_id": 99, "noteable_type": "Issue", "iid": 12})
    );
    let calls = calls(&seen);
    let post = calls.iter().find(|s| s.method == "POST").unwrap();
    assert_eq!(post.path, "/api/v4/projects/acme%2Fwidgets/issues");
    assert_eq!(post.token.as_deref(), Some("glpat-test"));
    let field = |k: &str| {
        post.form
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("title"), Some("Rotate the signing keys"));
    assert_eq!(field("labels"), Some("hopper,priority:high"));
    assert!(
        field("description")
            .unwrap()
            .contains("<!-- hopper:task tsk_0193abc -->")
    );
}

#[tokio::test]
async fn a_retried_export_finds_the_issue_opened_before() {
    let body = format!("Before Friday.\n\n{}", marker("tsk_0193abc"));
    let answer: Answer = Arc::new(move |s: &Seen| match s.method.as_str() {
        "GET" => {
            let list = json!([issue(3, "unrelated"), issue(7, &body)]);
            (200, vec![], list.to_string())
        }
        _ => (
            500,
            vec![],
            json!({"message": "must not be called"}).to_string(),
        ),
    });
    let (base, seen) = serve(answer).await;
    let opened = build(&base).open_issue(&draft(true)).await.unwrap();
    assert_eq!(opened.number, "7");
    let calls = calls(&seen);
    assert!(
        calls.iter().all(|s| s.method == "GET"),
        "no second issue: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|s| s.path == "/api/v4/projects/acme%2Fwidgets/issues")
    );
}

#[tokio::test]
async fn a_failed_open_is_retried_or_refused_like_a_report() {
    let (base, _) = serve(failing(502, vec![], r#"{"message":"502 Bad Gateway"}"#)).await;
    let e = build(&base).open_issue(&draft(false)).await.unwrap_err();
    assert!(
        matches!(e, hopper_integration_api::ReportError::Retry { .. }),
        "{e:?}"
    );
    let (base, _) = serve(failing(
        404,
        vec![],
        r#"{"message":"404 Project Not Found"}"#,
    ))
    .await;
    let e = build(&base).open_issue(&draft(false)).await.unwrap_err();
    assert!(
        matches!(e, hopper_integration_api::ReportError::Permanent { .. }),
        "{e:?}"
    );
}

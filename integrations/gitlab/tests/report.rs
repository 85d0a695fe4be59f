//! The GitLab reporter against a loopback server speaking GitLab's REST API (v4): the
//! `gitlab` crate's real async client, built through `reporter(&SourceSettings)`, pointed at
//! it with `url: http://127.0.0.1:PORT`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

use std::sync::Arc;
use std::time::Duration;

use hopper_gitlab::report::reporter;
use hopper_integration_api::{ReportError, SourceSettings};
use serde_json::{Value, json};

#[tokio::test]
async fn an_issue_note_lands_with_the_private_token_and_body() {
    let (base, seen) = serve(Arc::new(gitlab)).await;
    let r = build(&base);
    assert_eq!(r.kind(), "gitlab");
    let d = r.report(&report("Issue")).await.unwrap();
    assert_eq!(d.status, 201);
    assert_eq!(
        d.detail,
        "https://gitlab.example.com/acme/widgets/-/issues/5#note_1234"
    );
    let first = calls(&seen);
    let paths: Vec<(&str, &str)> = first
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("GET", "/api/v4/user"),
            ("POST", "/api/v4/projects/99/issues/5/notes")
        ]
    );
    assert!(
        first
            .iter()
            .all(|s| s.token.as_deref() == Some("glpat-test"))
    );
    assert_eq!(
        first[1].form,
        vec![(
            "body".to_string(),
            "**Completed** by `ci-fixer`.".to_string()
        )]
    );
    // The token is checked once, when the client is built.
    r.report(&report("Issue")).await.unwrap();
    let paths: Vec<String> = calls(&seen).into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths[2..],
        ["/api/v4/projects/99/issues/5/notes".to_string()]
    );
}

#[tokio::test]
async fn a_rejected_token_is_permanent() {
    let (base, seen) = serve(Arc::new(gitlab)).await;
    let env = |_: &str| None;
    let section = json!({"url": base, "token": "glpat-revoked"});
    let r = reporter(&SourceSettings {
        section: &section,
        env: &env,
    })
    .unwrap()
    .unwrap();
    let err = r.report(&report("Issue")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Permanent {
                status: Some(401),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("glpat-revoked"), "{err}");
    assert_eq!(calls(&seen).len(), 1, "no note without a working token");
}

#[tokio::test]
async fn a_merge_request_note_goes_to_the_merge_request() {
    let (base, seen) = serve(Arc::new(gitlab)).await;
    let d = build(&base).report(&report("MergeRequest")).await.unwrap();
    assert_eq!(d.status, 201);
    let seen = calls(&seen);
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].path, "/api/v4/projects/99/merge_requests/5/notes");
}

#[tokio::test]
async fn labels_and_close_are_one_edit_before_the_note() {
    for (noteable, path) in [
        ("Issue", "/api/v4/projects/99/issues/5"),
        ("MergeRequest", "/api/v4/projects/99/merge_requests/5"),
    ] {
        let (base, seen) = serve(Arc::new(gitlab)).await;
        let mut rep = report(noteable);
        rep.add_labels = vec!["done".into(), "hopper::completed".into()];
        rep.remove_labels = vec!["hopper: working".into()];
        rep.close = true;
        build(&base).report(&rep).await.unwrap();
        let seen = calls(&seen);
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(
            (seen[1].method.as_str(), seen[1].path.as_str()),
            ("PUT", path)
        );
        let form = &seen[1].form;
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("add_labels"), Some("done,hopper::completed"));
        assert_eq!(get("remove_labels"), Some("hopper: working"));
        assert_eq!(get("state_event"), Some("close"));
        assert_eq!(seen[2].path, format!("{path}/notes"));
    }
}

#[tokio::test]
async fn bad_gateway_is_retried() {
    let (base, _) = serve(failing(502, vec![], r#"{"message":"502 Bad Gateway"}"#)).await;
    let err = build(&base).report(&report("Issue")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Retry {
                status: Some(502),
                ..
            }
        ),
        "{err:?}"
    );
    let (base, _) = serve(failing(502, vec![], "<html>Bad Gateway</html>")).await;
    let err = build(&base).report(&report("Issue")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Retry {
                status: Some(502),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limited_429_is_retried_after_retry_after() {
    let headers = vec![
        ("retry-after", "7".to_string()),
        ("ratelimit-remaining", "0".to_string()),
        ("ratelimit-reset", "1735787045".to_string()),
    ];
    let (base, _) = serve(failing(429, headers, r#"{"message":"Retry later"}"#)).await;
    let err = build(&base).report(&report("Issue")).await.unwrap_err();
    assert!(
        matches!(err, ReportError::Retry { status: Some(429), retry_after: Some(d), .. } if d == Duration::from_secs(7)),
        "{err:?}"
    );
}

#[tokio::test]
async fn not_found_is_permanent() {
    let (base, _) = serve(failing(
        404,
        vec![],
        r#"{"message":"404 Project Not Found"}"#,
    ))
    .await;
    let err = build(&base).report(&report("Issue")).await.unwrap_err();
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
    assert!(err.to_string().contains("404 Project Not Found"), "{err}");
}

#[tokio::test]
async fn a_missing_or_unusable_reply_handle_is_permanent_and_sends_nothing() {
    let (base, seen) = serve(Arc::new(gitlab)).await;
    let r = build(&base);
    let mut rep = report("Issue");
    rep.source.reply_handle = None;
    let err = r.report(&rep).await.unwrap_err();
    assert!(
        matches!(err, ReportError::Permanent { status: None, .. }),
        "{err:?}"
    );
    let err = r.report(&report("Commit")).await.unwrap_err();
    assert!(
        matches!(err, ReportError::Permanent { status: None, .. }),
        "{err:?}"
    );
    assert!(calls(&seen).is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_the_token_stays_out_of_the_message() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = build(&format!("http://{addr}"))
        .report(&report("Issue"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReportError::Retry { status: None, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("glpat-test"), "{err}");
}

#[test]
fn no_token_is_not_configured_and_bad_config_is_an_error() {
    let none = |_: &str| None;
    let null = Value::Null;
    assert!(
        reporter(&SourceSettings {
            section: &null,
            env: &none
        })
        .unwrap()
        .is_none()
    );
    let env = |k: &str| (k == "HOPPER_GITLAB_TOKEN").then(|| "glpat-env".to_string());
    assert!(
        reporter(&SourceSettings {
            section: &null,
            env: &env
        })
        .unwrap()
        .is_some()
    );
    for (section, expected) in [
        (
            json!({"token": "x", "urll": "https://gitlab.com"}),
            "unknown field `urll`",
        ),
        (
            json!({"token": "x", "url": "gitlab.com"}),
            "url: not an http(s) URL",
        ),
    ] {
        let Err(e) = reporter(&SourceSettings {
            section: &section,
            env: &none,
        }) else {
            panic!("{section}")
        };
        assert!(e.contains(expected), "{e}");
    }
}

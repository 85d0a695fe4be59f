//! The GitHub reporter against a loopback server speaking GitHub's REST API: octocrab's real
//! client, built through `reporter(&SourceSettings)`, pointed at it with `api_url`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hopper_github::report::reporter;
use hopper_integration_api::{ReportError, SourceSettings};
use serde_json::{Value, json};

#[tokio::test]
async fn comment_lands_with_token_auth_and_body() {
    let (base, seen) = serve(Arc::new(github)).await;
    let r = build(json!({"api_url": base, "token": "ghp_test"}));
    assert_eq!(r.kind(), "github");
    let d = r.report(&report(handle7())).await.unwrap();
    assert_eq!(d.status, 201);
    assert_eq!(
        d.detail,
        "https://github.com/acme/widgets/issues/7#issuecomment-1234567"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/repos/acme/widgets/issues/7/comments");
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer ghp_test"));
    assert_eq!(
        seen[0].body,
        json!({"body": "**Completed** by `ci-fixer`."})
    );
}

#[tokio::test]
async fn labels_and_close_go_before_the_comment_and_a_missing_label_is_fine() {
    let (base, seen) = serve(Arc::new(github)).await;
    let r = build(json!({"api_url": format!("{base}/"), "token": "ghp_test"}));
    let mut rep = report(handle7());
    rep.add_labels = vec!["done".into()];
    rep.remove_labels = vec!["hopper: working".into(), "missing".into()];
    rep.close = true;
    let d = r.report(&rep).await.unwrap();
    assert_eq!(d.status, 201);
    let seen = seen.lock().unwrap().clone();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("POST", "/repos/acme/widgets/issues/7/labels"),
            (
                "DELETE",
                "/repos/acme/widgets/issues/7/labels/hopper%3A%20working"
            ),
            ("DELETE", "/repos/acme/widgets/issues/7/labels/missing"),
            ("PATCH", "/repos/acme/widgets/issues/7"),
            ("POST", "/repos/acme/widgets/issues/7/comments"),
        ]
    );
    assert_eq!(seen[0].body, json!({"labels": ["done"]}));
    assert_eq!(seen[3].body["state"], "closed");
    assert!(
        seen.iter()
            .all(|s| s.auth.as_deref() == Some("Bearer ghp_test"))
    );
}

#[tokio::test]
async fn bad_gateway_is_retried() {
    let (base, _) = serve(failing(502, vec![], "Server Error")).await;
    let err = build(json!({"api_url": base, "token": "ghp_test"}))
        .report(&report(handle7()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Retry {
                status: Some(502),
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limited_403_is_retried_after_retry_after() {
    let headers = vec![
        ("x-ratelimit-remaining", "0".into()),
        ("retry-after", "7".into()),
    ];
    let (base, _) = serve(failing(
        403,
        headers,
        "API rate limit exceeded for installation ID 42.",
    ))
    .await;
    let err = build(json!({"api_url": base, "token": "ghp_test"}))
        .report(&report(handle7()))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ReportError::Retry {
            status: Some(403),
            retry_after: Some(Duration::from_secs(7)),
            message:
                "GitHub answered 403 commenting: API rate limit exceeded for installation ID 42."
                    .into(),
        }
    );
}

#[tokio::test]
async fn rate_limit_reset_is_the_wait_without_retry_after() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let headers = vec![
        ("x-ratelimit-remaining", "0".into()),
        ("x-ratelimit-reset", (now + 60).to_string()),
    ];
    let (base, _) = serve(failing(403, headers, "API rate limit exceeded")).await;
    let err = build(json!({"api_url": base, "token": "ghp_test"}))
        .report(&report(handle7()))
        .await
        .unwrap_err();
    let ReportError::Retry {
        status: Some(403),
        retry_after: Some(wait),
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert!(
        wait <= Duration::from_secs(60) && wait >= Duration::from_secs(55),
        "{wait:?}"
    );
}

#[tokio::test]
async fn forbidden_without_rate_limit_and_not_found_are_permanent() {
    let (base, _) = serve(failing(404, vec![], "Not Found")).await;
    let err = build(json!({"api_url": base, "token": "ghp_test"}))
        .report(&report(handle7()))
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
    let (base, _) = serve(failing(
        403,
        vec![("x-ratelimit-remaining", "4999".into())],
        "Resource not accessible by integration",
    ))
    .await;
    let err = build(json!({"api_url": base, "token": "ghp_test"}))
        .report(&report(handle7()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Permanent {
                status: Some(403),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_reply_handle_without_repository_or_number_is_permanent_and_sends_nothing() {
    let (base, seen) = serve(Arc::new(github)).await;
    let r = build(json!({"api_url": base, "token": "ghp_test"}));
    for handle in [
        None,
        Some(json!({"repository": "acme/widgets", "issue_number": null})),
        Some(json!({"repository": "../x", "issue_number": 7})),
    ] {
        let err = r.report(&report(handle)).await.unwrap_err();
        assert!(
            matches!(err, ReportError::Permanent { status: None, .. }),
            "{err:?}"
        );
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_the_token_stays_out_of_the_message() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let r = build(json!({"api_url": format!("http://{addr}"), "token": "ghp_secret_value"}));
    let err = r.report(&report(handle7())).await.unwrap_err();
    assert!(
        matches!(err, ReportError::Retry { status: None, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("ghp_secret_value"), "{err}");
}

#[test]
fn no_token_and_no_app_is_not_configured_and_bad_config_is_an_error() {
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
    let blank = json!({"token": ""});
    assert!(
        reporter(&SourceSettings {
            section: &blank,
            env: &none
        })
        .unwrap()
        .is_none()
    );
    for (section, expected) in [
        (json!({"tokn": "x"}), "unknown field `tokn`"),
        (json!({"app_id": 1}), "private_key"),
        (
            json!({"app_id": 1, "private_key": "not a key"}),
            "private_key: not an RSA private key",
        ),
        (
            json!({"token": "x", "api_url": "ftp://example.com"}),
            "api_url",
        ),
    ] {
        let Err(e) = reporter(&SourceSettings {
            section: &section,
            env: &none,
        }) else {
            panic!("{section}")
        };
        assert!(e.contains(expected), "{e}");
        assert!(!e.contains("not a key"), "{e}");
    }
}

#[tokio::test]
async fn token_and_api_url_come_from_the_environment() {
    let (base, seen) = serve(Arc::new(github)).await;
    let env = move |k: &str| match k {
        "HOPPER_GITHUB_TOKEN" => Some("ghp_env".to_string()),
        "HOPPER_GITHUB_API_URL" => Some(base.clone()),
        _ => None,
    };
    let null = Value::Null;
    let r = reporter(&SourceSettings {
        section: &null,
        env: &env,
    })
    .unwrap()
    .expect("configured");
    r.report(&report(handle7())).await.unwrap();
    assert_eq!(
        seen.lock().unwrap()[0].auth.as_deref(),
        Some("Bearer ghp_env")
    );
}

/// A throwaway key generated for this test (`openssl genrsa -traditional 2048`).
const APP_KEY: &str = include_str!("fixtures/app-test-key.pem");

#[tokio::test]
async fn a_github_app_answers_as_the_installation() {
    let (base, seen) = serve(Arc::new(github)).await;
    let r = build(json!({"api_url": base, "app_id": 1234, "private_key": APP_KEY}));
    let handle =
        Some(json!({"repository": "acme/widgets", "issue_number": 7, "installation_id": 42}));
    r.report(&report(handle.clone())).await.unwrap();
    r.report(&report(handle)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/app/installations/42/access_tokens",
            "/repos/acme/widgets/issues/7/comments",
            "/repos/acme/widgets/issues/7/comments",
        ],
        "the installation token is fetched once and cached"
    );
    let jwt = seen[0]
        .auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap();
    assert_eq!(jwt.split('.').count(), 3, "a JWT signed with the App's key");
    assert_eq!(seen[1].auth.as_deref(), Some("Bearer ghs_installation"));
    // Without an installation id on the task, and no token, there is nobody to answer as.
    let err = r.report(&report(handle7())).await.unwrap_err();
    assert!(
        matches!(err, ReportError::Permanent { status: None, .. }),
        "{err:?}"
    );
}

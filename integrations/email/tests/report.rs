//! The email reporter in a real SMTP conversation with a small receiver on loopback: the reply
//! it submits (envelope, From, To, `Re:` subject, threading headers, body), and how 451, 550
//! and a closed port are classified.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use hopper_integration_api::{Moment, Report, ReportError, Reporter, SourceRef, SourceSettings};
use mail_parser::MessageParser;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What one SMTP session submitted.
#[derive(Debug, Clone, Default)]
struct Captured {
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

/// A receiver that answers RCPT with `rcpt_reply` and keeps every message it accepts.
async fn receiver(rcpt_reply: &'static str) -> (u16, Arc<Mutex<Vec<Captured>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = Arc::new(Mutex::new(Vec::new()));
    let kept = store.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                let mut session = Captured::default();
                write.write_all(b"220 test.local ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: String = if upper.starts_with("EHLO") {
                        "250-test.local\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n".into()
                    } else if upper.starts_with("MAIL FROM:") {
                        session.mail_from = line[10..].trim().into();
                        "250 2.1.0 OK\r\n".into()
                    } else if upper.starts_with("RCPT TO:") {
                        session.rcpt_to.push(line[8..].trim().into());
                        format!("{rcpt_reply}\r\n")
                    } else if upper.starts_with("DATA") {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(line.strip_prefix('.').unwrap_or(&line));
                        }
                        session.data = data;
                        kept.lock().unwrap().push(session.clone());
                        "250 2.0.0 queued\r\n".into()
                    } else if upper.starts_with("QUIT") {
                        write.write_all(b"221 2.0.0 bye\r\n").await.unwrap();
                        return;
                    } else {
                        "250 OK\r\n".into()
                    };
                    write.write_all(reply.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (port, store)
}

fn reporter(section: Value) -> Box<dyn Reporter> {
    build(section, None).unwrap().unwrap()
}

fn build(section: Value, env_url: Option<String>) -> Result<Option<Box<dyn Reporter>>, String> {
    let env = move |k: &str| (k == "HOPPER_SMTP_URL").then(|| env_url.clone()).flatten();
    hopper_email::report::reporter(&SourceSettings {
        section: &section,
        env: &env,
    })
}

fn report(handle: Value) -> Report {
    Report {
        moment: Moment::Completed,
        source: SourceRef {
            kind: "email".into(),
            container: Some("hopper+web@example.com".into()),
            external_id: Some("orig.123@mail.example.org".into()),
            url: None,
            reply_handle: Some(handle),
        },
        task_id: "task_0190a1b2c3d47e5f8a9b0c1d2e3f4a5b".into(),
        title: "Broken login".into(),
        text: "Task completed: Broken login\n\nThe fix is deployed.".into(),
        add_labels: vec![],
        remove_labels: vec![],
        close: false,
    }
}

fn handle() -> Value {
    json!({
        "reply_to": "alice@example.org",
        "from_name": "Alice Example",
        "message_id": "orig.123@mail.example.org",
        "subject": "Broken login",
        "attachments": [],
    })
}

#[tokio::test]
async fn a_reply_is_submitted_in_the_thread_from_the_mailbox_it_was_sent_to() {
    let (port, store) = receiver("250 2.1.5 OK").await;
    let r = reporter(json!({ "smtp_url": format!("smtp://127.0.0.1:{port}") }));
    assert_eq!(r.kind(), "email");
    let done = r.report(&report(handle())).await.unwrap();
    assert_eq!(done.status, 250);
    assert!(
        done.detail
            .starts_with("<hopper.task_0190a1b2c3d47e5f8a9b0c1d2e3f4a5b.completed.")
            && done.detail.ends_with("@example.com>"),
        "{}",
        done.detail
    );

    let captured = store.lock().unwrap().clone();
    assert_eq!(captured.len(), 1);
    let c = &captured[0];
    assert_eq!(c.mail_from, "<hopper+web@example.com>");
    assert_eq!(c.rcpt_to, ["<alice@example.org>"]);
    assert!(
        c.data
            .contains("In-Reply-To: <orig.123@mail.example.org>\r\n"),
        "{}",
        c.data
    );
    assert!(
        c.data
            .contains("References: <orig.123@mail.example.org>\r\n"),
        "{}",
        c.data
    );
    assert!(
        c.data.contains("Auto-Submitted: auto-replied\r\n"),
        "{}",
        c.data
    );

    let msg = MessageParser::default().parse(c.data.as_bytes()).unwrap();
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("hopper+web@example.com"));
    let to = msg.to().unwrap().first().unwrap();
    assert_eq!(
        (to.address(), to.name()),
        (Some("alice@example.org"), Some("Alice Example"))
    );
    assert_eq!(msg.subject(), Some("Re: Broken login"));
    assert_eq!(
        msg.in_reply_to().as_text(),
        Some("orig.123@mail.example.org")
    );
    assert_eq!(
        msg.references().as_text(),
        Some("orig.123@mail.example.org")
    );
    assert_eq!(
        msg.message_id().map(|id| format!("<{id}>")).as_deref(),
        Some(done.detail.as_str())
    );
    assert_eq!(
        msg.body_text(0).unwrap().replace("\r\n", "\n").trim_end(),
        "Task completed: Broken login\n\nThe fix is deployed."
    );
}

#[tokio::test]
async fn a_configured_sender_and_a_subject_that_already_says_re() {
    let (port, store) = receiver("250 OK").await;
    let r = build(
        json!({ "from": "Hopper <hopper@ops.example.com>" }),
        Some(format!("smtp://127.0.0.1:{port}")),
    )
    .unwrap()
    .unwrap();
    let mut h = handle();
    h["subject"] = "RE: Broken login".into();
    r.report(&report(h)).await.unwrap();
    let c = store.lock().unwrap()[0].clone();
    assert_eq!(c.mail_from, "<hopper@ops.example.com>");
    let msg = MessageParser::default().parse(c.data.as_bytes()).unwrap();
    assert_eq!(msg.subject(), Some("RE: Broken login"));
    assert_eq!(msg.from().unwrap().first().unwrap().name(), Some("Hopper"));
}

#[tokio::test]
async fn a_451_is_retried_and_a_550_is_not() {
    let (port, _) = receiver("451 4.3.0 mailbox busy, try later").await;
    let err = reporter(json!({ "smtp_url": format!("smtp://127.0.0.1:{port}") }))
        .report(&report(handle()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Retry {
                status: Some(451),
                ..
            }
        ),
        "{err:?}"
    );

    let (port, store) = receiver("550 5.1.1 no such user").await;
    let err = reporter(json!({ "smtp_url": format!("smtp://127.0.0.1:{port}") }))
        .report(&report(handle()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReportError::Permanent {
                status: Some(550),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no such user"), "{err}");
    assert!(store.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_closed_port_is_retried() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = reporter(json!({ "smtp_url": format!("smtp://127.0.0.1:{port}") }))
        .report(&report(handle()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReportError::Retry { status: None, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn no_reply_to_is_permanent_and_the_password_never_shows() {
    let (port, store) = receiver("250 OK").await;
    let r = reporter(json!({ "smtp_url": format!("smtp://127.0.0.1:{port}") }));
    let err = r
        .report(&report(json!({ "subject": "x" })))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReportError::Permanent { status: None, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("reply_to"));
    assert!(store.lock().unwrap().is_empty());

    // A password means STARTTLS, which this receiver does not offer: the attempt fails, and
    // says so without the password.
    let url = format!("smtp://hopper:hunter2%21@127.0.0.1:{port}");
    let err = reporter(json!({ "smtp_url": url }))
        .report(&report(handle()))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    assert!(store.lock().unwrap().is_empty());
}

#[test]
fn no_smtp_url_means_no_reporter_and_bad_config_is_refused() {
    assert!(build(Value::Null, None).unwrap().is_none());
    assert!(
        build(json!({ "from": "hopper@example.com" }), None)
            .unwrap()
            .is_none()
    );
    let err = build(json!({ "smtp_url": "imap://u:hunter2@x" }), None)
        .err()
        .unwrap();
    assert!(
        err.starts_with("smtp_url:") && !err.contains("hunter2"),
        "{err}"
    );
    let err = build(
        json!({ "smtp_url": "smtp://x", "from": "not an address" }),
        None,
    )
    .err()
    .unwrap();
    assert!(err.starts_with("from:"), "{err}");
    let err = build(json!({ "smtp_urll": "smtp://x" }), None)
        .err()
        .unwrap();
    assert!(err.contains("smtp_urll"), "{err}");
}

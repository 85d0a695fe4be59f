//! GitLab, Slack, generic HTTP and email over real HTTP (and real SMTP), with payloads shaped
//! as each sender documents them.

use hopper::domain::{InstanceId, Priority, TaskId};
use hopper_integration_api::Secret;
use hopper_integration_api::verify::{StandardWebhook, sign_hex, unix_now};
use serde_json::{Value, json};

use crate::support::{Backend, TestEnv, TestServer, eventually, on_both, tasks_in};

const GITLAB_ISSUE: &str = include_str!("../fixtures/gitlab/issue_open.json");
const SLACK_MENTION: &str = include_str!("../fixtures/slack/app_mention.json");
const MAIL_MULTIPART: &[u8] = include_bytes!("../fixtures/email/multipart_latin1.eml");
const MAIL_REPLY: &[u8] = include_bytes!("../fixtures/email/reply_html.eml");
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn status_and_body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn gitlab_token_and_signature(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.inbound.insert(
        "gitlab".into(),
        json!({ "token": "glt-secret", "signing_secret": WHSEC }),
    );
    let server = TestServer::start(&env).await;
    let post = |token: &str, sig: String, ts: String| {
        client()
            .post(format!("{}/webhooks/gitlab", server.base))
            .header("content-type", "application/json")
            .header("x-gitlab-event", "Issue Hook")
            .header("x-gitlab-token", token)
            .header("x-gitlab-event-uuid", "uuid-1")
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts)
            .header("webhook-signature", sig)
            .body(GITLAB_ISSUE)
            .send()
    };
    let now = unix_now().to_string();
    let good = StandardWebhook::sign(&Secret::new(WHSEC), "msg_1", &now, GITLAB_ISSUE.as_bytes());
    let (s, _) = status_and_body(post("wrong", good.clone(), now.clone()).await.unwrap()).await;
    assert_eq!(s, 401, "wrong token");
    let (s, _) = status_and_body(
        post("glt-secret", "v1,AAAA".into(), now.clone())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401, "wrong signature");
    let old = (unix_now() - 3600).to_string();
    let stale = StandardWebhook::sign(&Secret::new(WHSEC), "msg_1", &old, GITLAB_ISSUE.as_bytes());
    let (s, _) = status_and_body(post("glt-secret", stale, old).await.unwrap()).await;
    assert_eq!(s, 401, "stale timestamp");
    assert!(
        tasks_in(&server.engine, &InstanceId::global())
            .await
            .is_empty()
    );

    let (s, body) =
        status_and_body(post("glt-secret", good.clone(), now.clone()).await.unwrap()).await;
    assert_eq!(s, 202, "{body}");
    let task = server
        .engine
        .get_task(&TaskId::parse(body["task_id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(task.title, "New API: create/update/delete file");
    assert!(task.tags.contains(&"api".to_owned()) && task.tags.contains(&"gitlab".to_owned()));
    let src = task.source.unwrap();
    assert_eq!(src.external_id.as_deref(), Some("gitlabhq/gitlab-test#23"));
    assert_eq!(
        src.url.as_deref(),
        Some("http://example.com/diaspora/issues/23")
    );
    assert_eq!(task.project.as_deref(), Some("gitlab-test"));
    let (s, body) = status_and_body(post("glt-secret", good, now).await.unwrap()).await;
    assert_eq!((s, body["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(
        tasks_in(&server.engine, &InstanceId::global()).await.len(),
        1
    );
}
on_both!(gitlab_token_and_signature);

fn slack_signed(body: &str, ts: i64) -> (String, String) {
    let ts = ts.to_string();
    let sig = sign_hex(
        &Secret::new("slack-signing"),
        &[b"v0:", ts.as_bytes(), b":", body.as_bytes()],
    );
    (ts, format!("v0={sig}"))
}

#[tokio::test]
async fn slack_events_and_slash_commands() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound
        .insert("slack".into(), json!({ "signing_secret": "slack-signing" }));
    let server = TestServer::start(&env).await;
    let send = |path: &'static str, ctype: &'static str, body: String, ts: i64| {
        let (ts, sig) = slack_signed(&body, ts);
        client()
            .post(format!("{}/webhooks/slack/{path}", server.base))
            .header("content-type", ctype)
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body)
            .send()
    };
    let challenge = json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}).to_string();
    let (s, body) = status_and_body(
        send("events", "application/json", challenge, unix_now())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, body["challenge"].as_str()),
        (
            200,
            Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
        )
    );

    let (s, _) = status_and_body(
        send(
            "events",
            "application/json",
            SLACK_MENTION.into(),
            unix_now() - 600,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        s, 401,
        "a timestamp outside the 5-minute window is a replay"
    );
    let (s, body) = status_and_body(
        send(
            "events",
            "application/json",
            SLACK_MENTION.into(),
            unix_now(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    let task = server
        .engine
        .get_task(&TaskId::parse(body["task_id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(task.title, "the deploy of web failed, please look");
    assert_eq!(
        task.source.as_ref().unwrap().reply_handle.as_ref().unwrap()["thread_ts"],
        "1515449522.000016"
    );
    // Slack retries with the same event_id.
    let (s, body) = status_and_body(
        send(
            "events",
            "application/json",
            SLACK_MENTION.into(),
            unix_now(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((s, body["status"].as_str()), (200, Some("duplicate")));

    let form = "token=x&team_id=T1&channel_id=C2&user_id=U3&user_name=ana&command=%2Fhopper&text=add+Rotate+the+keys+--project+infra+--priority+urgent&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=13345224609.738474920.8088930838d88f008e0";
    let started = std::time::Instant::now();
    let (s, body) = status_and_body(
        send(
            "commands",
            "application/x-www-form-urlencoded",
            form.into(),
            unix_now(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(s, 202);
    assert_eq!(body["response_type"], "ephemeral");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("task_") && text.contains("Rotate the keys"),
        "{text}"
    );
    let usage = "command=%2Fhopper&text=frobnicate&trigger_id=t2";
    let (s, body) = status_and_body(
        send(
            "commands",
            "application/x-www-form-urlencoded",
            usage.into(),
            unix_now(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert!(body["text"].as_str().unwrap().starts_with("Usage"));
    let tasks = tasks_in(&server.engine, &InstanceId::global()).await;
    assert_eq!(tasks.len(), 2);
    let cmd = tasks.iter().find(|t| t.title == "Rotate the keys").unwrap();
    assert_eq!(
        (cmd.priority, cmd.project.as_deref()),
        (Priority::Urgent, Some("infra"))
    );
}

#[tokio::test]
async fn generic_http_standard_webhooks() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound.insert(
        "http".into(),
        json!({ "alerts": { "secret": WHSEC, "title": "/alert/name", "description": "/alert/summary", "tags": "/labels" } }),
    );
    let server = TestServer::start(&env).await;
    let body = json!({"alert": {"name": "Disk almost full on db-1", "summary": "93% used"}, "labels": ["ops", "urgent"]}).to_string();
    let ts = unix_now().to_string();
    let sig = StandardWebhook::sign(&Secret::new(WHSEC), "msg_9", &ts, body.as_bytes());
    let post = |sig: String| {
        client()
            .post(format!("{}/webhooks/http/alerts", server.base))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_9")
            .header("webhook-timestamp", ts.clone())
            .header("webhook-signature", sig)
            .body(body.clone())
            .send()
    };
    let (s, _) = status_and_body(post("v1,bm9wZQ==".into()).await.unwrap()).await;
    assert_eq!(s, 401);
    // Several signatures in one header (key rotation): one valid is enough.
    let (s, r) = status_and_body(post(format!("v1,bm9wZQ== {sig}")).await.unwrap()).await;
    assert_eq!(s, 202, "{r}");
    let task = server
        .engine
        .get_task(&TaskId::parse(r["task_id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(task.title, "Disk almost full on db-1");
    assert_eq!(task.description, "93% used");
    assert_eq!(task.priority, Priority::Urgent);
    assert_eq!(task.source.unwrap().kind, "http:alerts");
    let no_title = json!({"x": 1}).to_string();
    let sig2 = StandardWebhook::sign(&Secret::new(WHSEC), "msg_10", &ts, no_title.as_bytes());
    let resp = client()
        .post(format!("{}/webhooks/http/alerts", server.base))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_10")
        .header("webhook-timestamp", ts.clone())
        .header("webhook-signature", sig2)
        .body(no_title)
        .send()
        .await
        .unwrap();
    let (s, body) = status_and_body(resp).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("malformed"))
    );
}

async fn post_mail(server: &TestServer, raw: &[u8], token: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/webhooks/email", server.base))
        .header("content-type", "message/rfc822")
        .header("authorization", format!("Bearer {token}"))
        .body(raw.to_vec())
        .send()
        .await
        .unwrap();
    status_and_body(resp).await
}

async fn email_over_http_with_replies(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.inbound.insert(
        "email".into(),
        json!({ "token": "mail-token", "allowed_senders": ["*@example.com"] }),
    );
    let server = TestServer::start(&env).await;
    assert_eq!(post_mail(&server, MAIL_MULTIPART, "nope").await.0, 401);
    let (s, body) = post_mail(&server, MAIL_MULTIPART, "mail-token").await;
    assert_eq!(s, 202, "{body}");
    let id = TaskId::parse(body["task_id"].as_str().unwrap()).unwrap();
    let task = server.engine.get_task(&id).await.unwrap();
    assert_eq!(
        task.title, "Café menu is broken",
        "ISO-8859-1 encoded-word subject"
    );
    assert!(
        task.description
            .contains("The café page shows the wrong prices."),
        "{}",
        task.description
    );
    assert!(
        task.description.contains("screenshot.png (image/png"),
        "{}",
        task.description
    );
    assert_eq!(
        task.project.as_deref(),
        Some("web"),
        "plus address names the project"
    );
    assert_eq!(task.requester.as_deref(), Some("ana@example.com"));

    // The reply (HTML only) becomes a comment, not a new task: on the task that holds the
    // work now (the project's, which a worker may have claimed), not the global one.
    let web = InstanceId::parse("hopper-web").unwrap();
    let work = eventually(|| async {
        let filter = hopper::domain::TaskFilter::default();
        let tasks = server.engine.list_tasks(&web, &filter).await.ok()?;
        tasks.into_iter().next()
    })
    .await;
    assert_eq!(work.parent_task_id.as_ref(), Some(&id));
    let (s, body) = post_mail(&server, MAIL_REPLY, "mail-token").await;
    assert_eq!(
        (s, body["status"].as_str()),
        (200, Some("commented")),
        "{body}"
    );
    assert_eq!(body["task_id"].as_str(), Some(work.id.as_str()));
    let history = server.engine.task_history(&work.id).await.unwrap();
    let comment = history
        .iter()
        .find(|e| e.kind == "comment")
        .expect("comment event");
    assert!(
        comment.detail.as_ref().unwrap()["text"]
            .as_str()
            .unwrap()
            .contains("tea")
    );
    assert_eq!(
        tasks_in(&server.engine, &InstanceId::global()).await.len(),
        1
    );

    let stranger = b"From: eve@elsewhere.org\r\nSubject: hi\r\nMessage-ID: <e1@x>\r\n\r\nbody\r\n";
    let (s, body) = post_mail(&server, stranger, "mail-token").await;
    assert_eq!((s, body["status"].as_str()), (200, Some("ignored")));
    let (s, body) = post_mail(&server, b"", "mail-token").await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("malformed"))
    );
    assert_eq!(
        tasks_in(&server.engine, &InstanceId::global()).await.len(),
        1
    );
}
on_both!(email_over_http_with_replies);

/// The SMTP listener on a free port, for the server's engine and email config.
async fn start_smtp(server: &TestServer) -> (u16, tokio_util::sync::CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let source = hopper::gateway::smtp::email_source(&server.engine).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    hopper::gateway::smtp::spawn(server.engine.clone(), source, listener, stop.clone()).unwrap();
    (port, stop)
}

#[tokio::test]
async fn smtp_conversation_with_a_real_client() {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound.insert(
        "email".into(),
        json!({ "smtp": { "domains": ["tasks.example.com"] }, "max_message_bytes": 100000 }),
    );
    let server = TestServer::start(&env).await;
    let (port, stop) = start_smtp(&server).await;
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    let mail = |to: &str, body: String| {
        Message::builder()
            .from("Ana <ana@example.com>".parse().unwrap())
            .to(to.parse().unwrap())
            .subject("Printer on floor 3 is jammed")
            .body(body)
            .unwrap()
    };
    let sent = mailer
        .send(mail(
            "hopper+facilities@tasks.example.com",
            "It eats every page.\n.leading dot line".into(),
        ))
        .await;
    let reply = sent.unwrap();
    assert!(reply.is_positive());
    let tasks = eventually(|| async {
        let t = tasks_in(&server.engine, &InstanceId::global()).await;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].title, "Printer on floor 3 is jammed");
    assert!(
        tasks[0].description.contains(".leading dot line"),
        "dot-unstuffed: {}",
        tasks[0].description
    );
    assert_eq!(tasks[0].project.as_deref(), Some("facilities"));
    // No relaying: other domains are refused at RCPT TO.
    let refused = mailer.send(mail("someone@gmail.com", "spam".into())).await;
    assert!(refused.is_err());
    // Over the size limit: refused, nothing stored.
    let big = mailer
        .send(mail("hopper@tasks.example.com", "x".repeat(200_000)))
        .await;
    assert!(big.is_err());
    assert_eq!(
        tasks_in(&server.engine, &InstanceId::global()).await.len(),
        1
    );
    stop.cancel();
}

#[tokio::test]
async fn smtp_starttls_with_a_configured_certificate() {
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (
        env.dir.path().join("smtp.crt"),
        env.dir.path().join("smtp.key"),
    );
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    env.inbound.insert(
        "email".into(),
        json!({ "smtp": {
            "domains": ["tasks.example.com"],
            "tls_cert": cert_path, "tls_key": key_path, "require_tls": true,
        } }),
    );
    let server = TestServer::start(&env).await;
    let (port, stop) = start_smtp(&server).await;
    let mail = || {
        Message::builder()
            .from("ana@example.com".parse().unwrap())
            .to("hopper@tasks.example.com".parse().unwrap())
            .subject("Sent over TLS")
            .body("encrypted in transit".to_owned())
            .unwrap()
    };
    // Without TLS the listener refuses the mail (require_tls).
    let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    assert!(plain.send(mail()).await.is_err());
    let tls = TlsParameters::builder("localhost".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    let secure = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(tls))
        .build();
    let reply = secure.send(mail()).await.unwrap();
    assert!(reply.is_positive());
    let tasks = tasks_in(&server.engine, &InstanceId::global()).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].title, "Sent over TLS");
    stop.cancel();
}

#[tokio::test]
async fn gitlab_merge_requests_notes_and_failed_pipelines() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound
        .insert("gitlab".into(), json!({ "token": "glt" }));
    let server = TestServer::start(&env).await;
    let project = json!({"id": 15, "path_with_namespace": "acme/shop", "web_url": "http://gitlab.example.com/acme/shop"});
    let user = json!({"id": 1, "username": "root", "name": "Administrator"});
    let cases = [
        (
            "Merge Request Hook",
            json!({"object_kind": "merge_request", "user": user, "project": project,
            "object_attributes": {"iid": 7, "title": "Add cart API", "description": "Adds /cart", "action": "open", "url": "http://gitlab.example.com/acme/shop/-/merge_requests/7"},
            "labels": []}),
            Some("Merge request !7: Add cart API"),
        ),
        (
            "Note Hook",
            json!({"object_kind": "note", "user": user, "project": project,
            "object_attributes": {"note": "/hopper write the migration", "noteable_type": "Issue", "url": "http://gitlab.example.com/acme/shop/-/issues/3#note_1"},
            "issue": {"iid": 3, "title": "Carts are lost"}}),
            Some("write the migration"),
        ),
        (
            "Note Hook",
            json!({"object_kind": "note", "user": user, "project": project,
            "object_attributes": {"note": "looks good to me", "noteable_type": "Issue"}}),
            None,
        ),
        (
            "Pipeline Hook",
            json!({"object_kind": "pipeline", "user": user, "project": project,
            "object_attributes": {"id": 31, "ref": "main", "status": "failed"}}),
            Some("Pipeline failed on main"),
        ),
        (
            "Pipeline Hook",
            json!({"object_kind": "pipeline", "user": user, "project": project,
            "object_attributes": {"id": 32, "ref": "main", "status": "success"}}),
            None,
        ),
    ];
    for (i, (event, body, title)) in cases.into_iter().enumerate() {
        let resp = client()
            .post(format!("{}/webhooks/gitlab", server.base))
            .header("content-type", "application/json")
            .header("x-gitlab-event", event)
            .header("x-gitlab-token", "glt")
            .header("idempotency-key", format!("k-{i}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let (s, r) = status_and_body(resp).await;
        match title {
            Some(t) => {
                assert_eq!(s, 202, "{event}: {r}");
                let task = server
                    .engine
                    .get_task(&TaskId::parse(r["task_id"].as_str().unwrap()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(task.title, t);
                assert_eq!(task.project.as_deref(), Some("shop"));
            }
            None => assert_eq!((s, r["status"].as_str()), (200, Some("ignored")), "{event}"),
        }
    }
    let failed = tasks_in(&server.engine, &InstanceId::global()).await;
    let pipeline = failed
        .iter()
        .find(|t| t.title.starts_with("Pipeline"))
        .unwrap();
    assert_eq!(pipeline.priority, Priority::High);
}

#[tokio::test]
async fn slack_channel_messages_and_bots() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound.insert(
        "slack".into(),
        json!({ "signing_secret": "slack-signing", "channels": ["C0WATCHED"] }),
    );
    let server = TestServer::start(&env).await;
    let envelope = |id: &str, event: Value| {
        json!({"type": "event_callback", "team_id": "T1", "event_id": id, "event": event})
            .to_string()
    };
    let cases = [
        (
            envelope(
                "Ev1",
                json!({"type": "message", "channel": "C0WATCHED", "user": "U1", "text": "printer on 3 is out of toner", "ts": "1.1"}),
            ),
            "accepted",
        ),
        (
            envelope(
                "Ev2",
                json!({"type": "message", "channel": "C0OTHER", "user": "U1", "text": "lunch?", "ts": "1.2"}),
            ),
            "ignored",
        ),
        (
            envelope(
                "Ev3",
                json!({"type": "message", "channel": "C0WATCHED", "bot_id": "B1", "text": "deploy done", "ts": "1.3"}),
            ),
            "ignored",
        ),
        (
            envelope(
                "Ev4",
                json!({"type": "message", "subtype": "message_changed", "channel": "C0WATCHED", "ts": "1.4"}),
            ),
            "ignored",
        ),
    ];
    for (body, expected) in cases {
        let (ts, sig) = slack_signed(&body, unix_now());
        let resp = client()
            .post(format!("{}/webhooks/slack/events", server.base))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        let (_, r) = status_and_body(resp).await;
        assert_eq!(r["status"], expected, "{r}");
    }
    let tasks = tasks_in(&server.engine, &InstanceId::global()).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].title, "printer on 3 is out of toner");
}

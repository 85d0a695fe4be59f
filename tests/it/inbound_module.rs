//! Replay after the configuration changed: events of GitHub, email over HTTP and email over
//! SMTP are read again by their sources under a new mapping and make new tasks; an event whose
//! source is gone is a 409 with a JSON error. The second configuration is served beside the
//! first, over the same engine, the way `hopper serve` puts the API and the gateway together.

use std::sync::Arc;

use hopper::api::AppState;
use hopper::config::{ConfigSet, Secret};
use hopper::domain::{Task, TaskId};
use hopper::gateway::Gateway;
use hopper_integration_api::verify::{StandardWebhook, sign_hex, unix_now};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, TestEnv, TestServer, eventually, on_both};

const SECRET: &str = "It's a Secret to Everybody";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ISSUE_OPENED: &str = include_str!("../fixtures/github/issues_opened.json");
const MAIL: &[u8] = include_bytes!("../fixtures/email/multipart_latin1.eml");

async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn task_of(engine: &hopper::Engine, receipt: &Value) -> Task {
    let id = TaskId::parse(receipt["task_id"].as_str().unwrap()).unwrap();
    engine.get_task(&id).await.unwrap()
}

/// One event of each door: a signed GitHub issue, a mail over HTTP, a mail over SMTP and a
/// signed generic HTTP alert. Returns their event ids and first tasks, in that order.
async fn deliver_one_of_each(server: &TestServer) -> Vec<(String, Task)> {
    let http = reqwest::Client::new();
    let signature = sign_hex(&Secret::new(SECRET), &[ISSUE_OPENED.as_bytes()]);
    let github = http
        .post(format!("{}/webhooks/github", server.base))
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "d-1")
        .header("x-hub-signature-256", format!("sha256={signature}"))
        .body(ISSUE_OPENED);
    let mail = http
        .post(format!("{}/webhooks/email", server.base))
        .header("content-type", "message/rfc822")
        .header("authorization", "Bearer mail-token")
        .body(MAIL);
    let alert = json!({ "title": "Disk almost full on db-1" }).to_string();
    let ts = unix_now().to_string();
    let alert_sig = StandardWebhook::sign(&Secret::new(WHSEC), "msg_1", &ts, alert.as_bytes());
    let alert = http
        .post(format!("{}/webhooks/http/alerts", server.base))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", ts)
        .header("webhook-signature", alert_sig)
        .body(alert);
    let mut out = Vec::new();
    for req in [github, mail] {
        let (s, r) = answer(req).await;
        assert_eq!(s, 202, "{r}");
        out.push((
            r["event_id"].as_str().unwrap().to_owned(),
            task_of(&server.engine, &r).await,
        ));
    }
    out.push(send_smtp(server).await);
    let (s, r) = answer(alert).await;
    assert_eq!(s, 202, "{r}");
    out.push((
        r["event_id"].as_str().unwrap().to_owned(),
        task_of(&server.engine, &r).await,
    ));
    out
}

/// A message through the real SMTP listener; its event and task once it is committed.
async fn send_smtp(server: &TestServer) -> (String, Task) {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let source = hopper::gateway::smtp::email_source(&server.engine).unwrap();
    let stop = CancellationToken::new();
    hopper::gateway::smtp::spawn(server.engine.clone(), source, listener, stop.clone()).unwrap();
    let message = Message::builder()
        .from("Ana <ana@example.com>".parse().unwrap())
        .to("hopper+facilities@tasks.example.com".parse().unwrap())
        .subject("Printer on floor 3 is jammed")
        .body("It eats every page.".to_owned())
        .unwrap();
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    assert!(mailer.send(message).await.unwrap().is_positive());
    stop.cancel();
    let event = eventually(|| async {
        let events = server
            .engine
            .list_events(Some("email"), None, 10)
            .await
            .unwrap();
        events.into_iter().find(|e| e.endpoint == "smtp")
    })
    .await;
    let task = TaskId::parse(event.task_id.as_deref().unwrap()).unwrap();
    (event.id, server.engine.get_task(&task).await.unwrap())
}

/// Serves `configs`' sources beside the API over `engine`, as `hopper serve` would after a
/// restart with that configuration; stopped with the returned token.
async fn serve_changed(
    engine: &hopper::Engine,
    configs: &ConfigSet,
) -> (String, CancellationToken) {
    let gateway = Arc::new(Gateway::build(configs, &|_: &str| None).unwrap());
    let state = AppState {
        engine: engine.clone(),
        admin_token: Secret::new("changed-token"),
        metrics: None,
        sources: gateway.sources().clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let app = hopper::server::app(state, gateway);
    tokio::spawn(hopper::server::serve_router(
        listener,
        app,
        None,
        stop.clone(),
    ));
    (base, stop)
}

async fn replay(base: &str, id: &str) -> (u16, Value) {
    let req = reqwest::Client::new()
        .post(format!("{base}/v1/events/{id}/replay"))
        .bearer_auth("changed-token");
    answer(req).await
}

async fn replays_follow_the_new_mapping_of_each_source(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.inbound
        .insert("github".into(), json!({ "secret": SECRET }));
    env.inbound.insert(
        "email".into(),
        json!({ "token": "mail-token", "smtp": { "domains": ["tasks.example.com"] } }),
    );
    env.inbound
        .insert("http".into(), json!({ "alerts": { "secret": WHSEC } }));
    let server = TestServer::start(&env).await;
    let delivered = deliver_one_of_each(&server).await;
    let [
        (github, gh_task),
        (mail, mail_task),
        (smtp, smtp_task),
        (alert, _),
    ] = delivered.try_into().unwrap();
    assert_eq!(gh_task.project.as_deref(), Some("hello-world"));
    assert_eq!(mail_task.project.as_deref(), Some("web"));
    assert_eq!(smtp_task.project.as_deref(), Some("facilities"));
    for t in [&gh_task, &mail_task, &smtp_task] {
        assert!(!t.tags.contains(&"replayed".to_owned()), "{:?}", t.tags);
    }

    // The mappings change and the alerts source is removed.
    let mut changed = env.configs();
    changed.root.inbound.insert(
        "github".into(),
        json!({ "secret": SECRET, "mapping": {
            "tags": ["replayed"], "projects": { "Codertocat/Hello-World": "website" } } }),
    );
    changed.root.inbound.insert(
        "email".into(),
        json!({ "mapping": { "tags": ["replayed"] } }),
    );
    changed.root.inbound.remove("http");
    let (base, stop) = serve_changed(&server.engine, &changed).await;

    // GitHub: a new event and task under the new mapping, pointing back at the first.
    let (s, r) = replay(&base, &github).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("accepted")), "{r}");
    let task = task_of(&server.engine, &r).await;
    assert_ne!(task.id, gh_task.id);
    assert_eq!(task.title, gh_task.title);
    assert!(
        task.tags.contains(&"replayed".to_owned()),
        "{:?}",
        task.tags
    );
    assert_eq!(task.project.as_deref(), Some("website"));
    let event = server
        .engine
        .get_event(r["event_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(event.replay_of.as_deref(), Some(github.as_str()));
    assert_eq!(
        (event.source.as_str(), event.endpoint.as_str()),
        ("github", "github")
    );
    assert!(event.headers.contains("x-github-event"));
    assert!(!event.headers.contains("x-hub-signature"));

    // Email over HTTP: read by the email source without its door's token (the stored event
    // never had it; the new config has none either).
    let (s, r) = replay(&base, &mail).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("accepted")), "{r}");
    let task = task_of(&server.engine, &r).await;
    assert_eq!(task.title, mail_task.title);
    assert!(
        task.tags.contains(&"replayed".to_owned()),
        "{:?}",
        task.tags
    );
    assert_eq!(task.project.as_deref(), Some("web"));

    // Email over SMTP: its envelope recipient still names the project, and the new event
    // keeps the envelope as it was stored, so it can be replayed in turn.
    let (s, r) = replay(&base, &smtp).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("accepted")), "{r}");
    let task = task_of(&server.engine, &r).await;
    assert_eq!(task.title, "Printer on floor 3 is jammed");
    assert!(
        task.tags.contains(&"replayed".to_owned()),
        "{:?}",
        task.tags
    );
    assert_eq!(task.project.as_deref(), Some("facilities"));
    let again = r["event_id"].as_str().unwrap().to_owned();
    let event = server.engine.get_event(&again).await.unwrap();
    assert_eq!(
        (event.source.as_str(), event.endpoint.as_str()),
        ("email", "smtp")
    );
    let headers: Value = serde_json::from_str(&event.headers).unwrap();
    assert_eq!(
        headers["smtp-rcpt-to"],
        json!(["hopper+facilities@tasks.example.com"])
    );
    let (s, r) = replay(&base, &again).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        task_of(&server.engine, &r).await.project.as_deref(),
        Some("facilities")
    );

    // The alerts source is gone: a conflict, said in JSON, and nothing recorded.
    let before = server
        .engine
        .list_events(None, None, 100)
        .await
        .unwrap()
        .len();
    let (s, r) = replay(&base, &alert).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{r}"
    );
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("http/alerts"), "{message}");
    assert!(message.contains("not configured any more"), "{message}");
    assert_eq!(
        server
            .engine
            .list_events(None, None, 100)
            .await
            .unwrap()
            .len(),
        before
    );
    // Under the first configuration it is still there, and the replay works.
    let req = reqwest::Client::new()
        .post(format!("{}/v1/events/{alert}/replay", server.base))
        .bearer_auth(&server.token);
    let (s, r) = answer(req).await;
    assert_eq!((s, r["status"].as_str()), (200, Some("accepted")), "{r}");
    // An event that does not exist is a 404, in the same JSON shape.
    let (s, r) = replay(&base, "evt_missing").await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{r}"
    );
    stop.cancel();
}
on_both!(replays_follow_the_new_mapping_of_each_source);

/// The core hands a stored event to its source and never vouches for one itself: no
/// `Verified::vouch` outside the integrations (their own `verify` and `reinterpret`).
#[test]
fn the_core_never_vouches_for_a_request() {
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("vouch("),
                "{} vouches for a request",
                path.display()
            );
        }
    }
    assert!(files > 10, "read the core's sources");
}

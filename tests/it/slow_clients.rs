//! Clients that stall mid-request are cut off, over a real TCP connection, instead of holding
//! a connection (and a task) for good; bodies past the memory budget are turned away.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use hopper_integration_api::verify::sign_hex;

use crate::support::{Backend, TestEnv, TestServer, eventually};

async fn server(header_ms: u64, body_ms: u64) -> (TestEnv, TestServer) {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.header_read_timeout_ms = header_ms;
    env.body_read_timeout_ms = body_ms;
    env.inbound
        .insert("github".into(), json!({ "secret": "s3cret" }));
    let server = TestServer::start(&env).await;
    (env, server)
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Everything the server sends until it closes the connection.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("the server kept a stalled connection open")
        .unwrap_or_default();
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let (_env, server) = server(300, 30_000).await;
    let mut stalled = connect(&server).await;
    stalled
        .write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: hopper\r\nX-GitHub-Event: ping\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // Meanwhile a complete request on another connection is served as usual.
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let answer = until_closed(&mut stalled).await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
    assert!(!answer.contains(" 200 "), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_body_that_stalls_gets_408_and_records_nothing() {
    let (_env, server) = server(30_000, 300).await;
    let mut stalled = connect(&server).await;
    // 100 bytes announced, 7 sent.
    stalled
        .write_all(
            b"POST /webhooks/github HTTP/1.1\r\nHost: hopper\r\n\
              Content-Type: application/json\r\nX-GitHub-Event: ping\r\n\
              X-GitHub-Delivery: stalled-1\r\nX-Hub-Signature-256: sha256=00\r\n\
              Content-Length: 100\r\n\r\n{\"zen\":",
        )
        .await
        .unwrap();
    let answer = until_closed(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    let events = server.engine.list_events(None, None, 10).await.unwrap();
    assert!(events.is_empty(), "{events:?}");
    // Counted, under its own reason.
    let labels = ["source=\"github\"", "reason=\"request_timeout\""];
    let timeouts = server
        .metric("hopper_inbound_rejected_total", &labels)
        .await;
    assert!(timeouts >= 1.0, "{timeouts}");
    // And timed, like every delivery.
    let timed = server
        .metric("hopper_inbound_seconds_count", &["source=\"github\""])
        .await;
    assert!(timed >= 1.0, "{}", server.metrics().await);
}

/// A signed GitHub `ping` of about `size` bytes.
async fn ping(server: &TestServer, delivery: &str, size: usize) -> reqwest::Response {
    let body = json!({ "zen": "x".repeat(size), "hook_id": 1 }).to_string();
    let secret = hopper_integration_api::Secret::new("s3cret");
    let sig = format!("sha256={}", sign_hex(&secret, &[body.as_bytes()]));
    reqwest::Client::new()
        .post(format!("{}/webhooks/github", server.base))
        .header("content-type", "application/json")
        .header("x-github-event", "ping")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_memory_budget_get_503_until_room_is_made() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.max_inflight_body_bytes = 64 * 1024;
    env.inbound
        .insert("github".into(), json!({ "secret": "s3cret" }));
    let server = TestServer::start(&env).await;
    // A sender announces 60 KiB and sends one byte: it holds most of the budget.
    let mut hog = connect(&server).await;
    hog.write_all(
        b"POST /webhooks/github HTTP/1.1\r\nHost: hopper\r\n\
          Content-Type: application/json\r\nX-GitHub-Event: ping\r\n\
          X-GitHub-Delivery: hog\r\nX-Hub-Signature-256: sha256=00\r\n\
          Content-Length: 61440\r\n\r\n{",
    )
    .await
    .unwrap();
    // Once the hog's reservation is in, 10 KiB more does not fit: after a short wait, 503
    // with Retry-After. (Pings sent before it is in are answered and store nothing.)
    let mut attempt = 0;
    let (refused, waited) = eventually(|| {
        attempt += 1;
        let delivery = format!("probe-{attempt}");
        let server = &server;
        async move {
            let started = Instant::now();
            let r = ping(server, &delivery, 10 * 1024).await;
            (r.status() == 503).then(|| (r, started.elapsed()))
        }
    })
    .await;
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert_eq!(refused.headers()["retry-after"], "1");
    // The gauge shows the hog's share (it is process-wide: other tests only add to it).
    let reserved = server.metric("hopper_inbound_body_kib_reserved", &[]).await;
    assert!(reserved >= 60.0, "{reserved}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");
    // The hog gives up; its share comes back and the same delivery goes through.
    drop(hog);
    let resp = eventually(|| async {
        let r = ping(&server, "after-hog", 10 * 1024).await;
        (r.status() == 200).then_some(r)
    })
    .await;
    assert_eq!(resp.status(), 200);
}

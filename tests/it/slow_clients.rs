//! Clients that stall mid-request are cut off, over a real TCP connection, instead of holding
//! a connection (and a task) for good.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Backend, TestEnv, TestServer};

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
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hopper_inbound_rejected_total")
                && l.contains("reason=\"request_timeout\"")
                && l.contains("source=\"github\"")),
        "{metrics}"
    );
}

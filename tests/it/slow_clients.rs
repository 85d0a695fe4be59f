//! Clients that stall mid-request are cut off, over a real TCP connection, instead of holding
//! a connection (and a task) for good; bodies past the memory budget are turned away; bodies
//! that are announced but not sent hold nothing, and impostors with a header token are turned
//! away before their body is read (issue 12).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use hopper_integration_api::verify::sign_hex;

use crate::support::{Backend, TestEnv, TestServer, eventually};

const ISSUE_OPENED: &str = include_str!("../fixtures/github/issues_opened.json");

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
    connect_from(&server.base, "127.0.0.1").await
}

/// A connection from another loopback address (all of 127/8 is the loopback interface), so
/// the server sees another peer.
async fn connect_from(base: &str, local: &str) -> TcpStream {
    let server: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// The request line and headers of a POST announcing `announced` body bytes.
fn head(path: &str, headers: &[&str], announced: usize) -> String {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: hopper\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head + &format!("Content-Length: {announced}\r\n\r\n")
}

/// The start of what the server answers, or "" if it answers nothing within `wait`.
async fn answer_within(stream: &mut TcpStream, wait: Duration) -> String {
    let mut buf = vec![0; 4096];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        _ => String::new(),
    }
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

/// A connection that sends 60 KiB of a 60 KiB + 1 byte GitHub body and stalls.
async fn start_hog(server: &TestServer) -> TcpStream {
    let mut hog = connect(server).await;
    let headers = [
        "Content-Type: application/json",
        "X-GitHub-Event: ping",
        "X-GitHub-Delivery: hog",
        "X-Hub-Signature-256: sha256=00",
    ];
    hog.write_all(head("/webhooks/github", &headers, 61441).as_bytes())
        .await
        .unwrap();
    hog.write_all(&[b' '; 61440]).await.unwrap();
    hog
}

/// A signed GitHub `ping` of about `size` bytes.
async fn ping(server: &TestServer, delivery: &str, size: usize) -> reqwest::Response {
    ping_from(&server.base, "127.0.0.1", delivery, size).await
}

async fn ping_from(base: &str, local: &str, delivery: &str, size: usize) -> reqwest::Response {
    let body = json!({ "zen": "x".repeat(size), "hook_id": 1 }).to_string();
    deliver_from(base, local, "ping", delivery, body).await
}

/// A GitHub delivery signed with `s3cret`, sent from the loopback address `local`.
async fn deliver_from(
    base: &str,
    local: &str,
    event: &str,
    delivery: &str,
    body: String,
) -> reqwest::Response {
    let secret = hopper_integration_api::Secret::new("s3cret");
    let sig = format!("sha256={}", sign_hex(&secret, &[body.as_bytes()]));
    reqwest::Client::builder()
        .local_address(local.parse::<std::net::IpAddr>().ok())
        .build()
        .unwrap()
        .post(format!("{base}/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
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
    // A sender sends 60 KiB of a body one byte longer and stalls: it holds most of the budget
    // (what has arrived counts, not what is announced).
    let mut hog = start_hog(&server).await;
    // Once the hog's reservation is in, 10 KiB more does not fit: after a short wait, 503
    // with Retry-After. (Pings sent before it is in are answered and store nothing.) On a
    // loaded machine a probe that got in first can hold its 10 KiB past the hog's own 1 s
    // wait for the rest of its 60, and the hog is the one refused: then a new hog comes.
    let mut attempt = 0;
    let (refused, waited) = loop {
        attempt += 1;
        assert!(attempt < 1_200, "no probe refused in {attempt} attempts");
        if !answer_within(&mut hog, Duration::from_millis(1))
            .await
            .is_empty()
        {
            hog = start_hog(&server).await;
        }
        let started = Instant::now();
        let r = ping(&server, &format!("probe-{attempt}"), 10 * 1024).await;
        if r.status() == 503 {
            break (r, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
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

/// Issue 12. Unauthenticated connections announce bodies and send one byte of them, against
/// every source, and stall. The budget is 1 MiB and the sources take up to 128 KiB, so eight
/// announced bodies would fill it (at the defaults, 256 MiB and 25 MB, it took eleven): when a
/// request reserved what it announced, signed webhooks then waited 1 s and got 503 until the
/// attackers gave up. Now the 11 GitHub attackers hold 1 KiB each, the others get 401 on their
/// headers, and each signed delivery is answered in 1 to 5 ms (debug build, 2 cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_announced_but_not_sent_do_not_stop_signed_webhooks() {
    let limit = 128 * 1024;
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.max_inflight_body_bytes = 1024 * 1024;
    env.inbound.insert(
        "github".into(),
        json!({ "secret": "s3cret", "max_body_bytes": limit }),
    );
    env.inbound.insert(
        "gitlab".into(),
        json!({ "token": "glt", "max_body_bytes": limit }),
    );
    env.inbound.insert(
        "email".into(),
        json!({ "token": "mail-token", "max_message_bytes": limit }),
    );
    let server = TestServer::start(&env).await;
    let attacks: [(&str, &[&str]); 3] = [
        (
            "/webhooks/github",
            &["Content-Type: application/json", "X-GitHub-Event: issues"],
        ),
        (
            "/webhooks/gitlab",
            &[
                "Content-Type: application/json",
                "X-Gitlab-Event: Issue Hook",
                "X-Gitlab-Token: guessed",
            ],
        ),
        (
            "/webhooks/email",
            &[
                "Content-Type: message/rfc822",
                "Authorization: Bearer guessed",
            ],
        ),
    ];
    let mut attackers = Vec::new();
    for (path, headers) in attacks {
        for _ in 0..11 {
            let mut stalled = connect(&server).await;
            stalled
                .write_all(head(path, headers, limit).as_bytes())
                .await
                .unwrap();
            stalled.write_all(b"{").await.unwrap();
            attackers.push((path, stalled));
        }
    }
    // Let the server take them all in.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Signed deliveries go through, one after another, each promptly.
    for i in 0..6 {
        let started = Instant::now();
        let delivery = format!("during-attack-{i}");
        let resp = if i % 2 == 0 {
            deliver_from(
                &server.base,
                "127.0.0.1",
                "issues",
                &delivery,
                ISSUE_OPENED.into(),
            )
            .await
        } else {
            ping(&server, &delivery, 10 * 1024).await
        };
        let took = started.elapsed();
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(status == 202 || status == 200, "{i}: {status} {body}");
        assert!(took < Duration::from_millis(1500), "{i}: took {took:?}");
    }

    // A GitLab delivery with the wrong token is refused on its headers: 401 at once, though its
    // body never comes.
    let mut impostor = connect(&server).await;
    let headers = [
        "Content-Type: application/json",
        "X-Gitlab-Event: Issue Hook",
        "X-Gitlab-Token: wrong",
    ];
    let started = Instant::now();
    impostor
        .write_all(head("/webhooks/gitlab", &headers, 100_000).as_bytes())
        .await
        .unwrap();
    let answer = answer_within(&mut impostor, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    assert!(answer.contains("\"unauthorized\""), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Counted as a bad signature, as when the body was read first.
    let labels = ["source=\"gitlab\"", "reason=\"signature\""];
    let refused = server
        .metric("hopper_inbound_rejected_total", &labels)
        .await;
    assert!(refused >= 12.0, "{refused}");

    // So were the GitLab and email attackers; the GitHub ones (whose signature covers the body)
    // are still waiting for their bodies, holding what they sent.
    for (path, stalled) in &mut attackers {
        let answer = answer_within(stalled, Duration::from_millis(50)).await;
        if *path == "/webhooks/github" {
            assert_eq!(answer, "", "{path}");
        } else {
            assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer:?}");
        }
    }
    let events = server.engine.list_events(None, None, 50).await.unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
}

/// One address may hold only its share of the budget: a sender that really sends large bodies
/// on many connections, and stalls before the last byte of each, is turned away past its
/// share, while others' deliveries go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_the_whole_budget() {
    let limit = 100 * 1024;
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.max_inflight_body_bytes = 1024 * 1024;
    env.inbound.insert(
        "github".into(),
        json!({ "secret": "s3cret", "max_body_bytes": limit }),
    );
    let mut configs = env.configs();
    configs.root.server.max_inflight_body_bytes_per_peer = Some(128 * 1024);
    let (base, _stop) = start(configs).await;
    let headers = ["Content-Type: application/json", "X-GitHub-Event: issues"];
    let send_all_but_one = || async {
        let mut s = connect_from(&base, "127.0.0.2").await;
        s.write_all(head("/webhooks/github", &headers, limit).as_bytes())
            .await
            .unwrap();
        // Refused, the server stops reading and closes: the rest may not get through.
        let _ = s.write_all(&vec![b' '; limit - 1]).await;
        s
    };
    // The first body from 127.0.0.2 is in (100 of its 128 KiB)...
    let mut first = send_all_but_one().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...and ten more would take 1000 KiB more of the 1024 (with no share, ten of the eleven
    // would be in, and 30 KiB more would not fit): none of them gets far.
    let mut more = futures::future::join_all((0..10).map(|_| send_all_but_one())).await;
    for (i, stalled) in more.iter_mut().enumerate() {
        let answer = answer_within(stalled, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{i}: {answer:?}");
        assert!(answer.contains("your address"), "{i}: {answer}");
    }
    // Meanwhile another address's deliveries go through, one after another, each promptly.
    for i in 0..5 {
        let started = Instant::now();
        let resp = ping_from(&base, "127.0.0.1", &format!("other-{i}"), 30 * 1024).await;
        assert_eq!(resp.status(), 200, "{i}");
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "{i}: took {took:?}");
    }
    // The same address's do not, while its first body holds its share.
    let resp = ping_from(&base, "127.0.0.2", "same-address", 30 * 1024).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        answer_within(&mut first, Duration::from_millis(50)).await,
        ""
    );
    // Once it gives up, that address is welcome again.
    drop(first);
    let resp = eventually(|| async {
        let r = ping_from(&base, "127.0.0.2", "after", 30 * 1024).await;
        (r.status() == 200).then_some(r)
    })
    .await;
    assert_eq!(resp.status(), 200);
}

/// A server from `configs` (for keys [`TestEnv`] has no field for); stopped when the guard is
/// dropped.
async fn start(configs: hopper::config::ConfigSet) -> (String, tokio_util::sync::DropGuard) {
    let engine = hopper::Engine::open(configs).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(hopper::server::run(
        engine,
        hopper::config::Secret::new("test-admin-token"),
        listener,
        stop.clone(),
    ));
    (base, stop.drop_guard())
}

//! The SMTP listener against misbehaving and untrusted clients, over real loopback
//! conversations whose every reply is checked: per-peer connection limits, the greeting
//! timeout, protocol errors answered instead of dropped, the envelope sender on the
//! allowlist, and `require_authenticated` (over SMTP and over HTTP).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hopper::config::{ConfigSet, Overrides};
use hopper::domain::InstanceId;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, TestEnv, TestServer, eventually, tasks_in};

const RCPT: &str = "hopper@tasks.example.com";

/// A server with `email` as its `inbound.email` section and the SMTP listener on a free port.
/// The env owns the database directory, so it lives as long as the server.
async fn smtp_server(email: Value) -> (TestEnv, TestServer, u16, CancellationToken) {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    env.inbound.insert("email".into(), email);
    let server = TestServer::start(&env).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let source = hopper::gateway::smtp::email_source(&server.engine).unwrap();
    let stop = CancellationToken::new();
    hopper::gateway::smtp::spawn(server.engine.clone(), source, listener, stop.clone()).unwrap();
    (env, server, port, stop)
}

/// A raw SMTP client, so each test sees the exact replies.
struct Smtp {
    stream: BufReader<TcpStream>,
}

impl Smtp {
    async fn connect(port: u16) -> Self {
        Self::connect_from([127, 0, 0, 1], port).await
    }

    /// From another loopback address: to the listener, another peer.
    async fn connect_from(ip: [u8; 4], port: u16) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((ip, 0))).unwrap();
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = socket.connect(to).await.unwrap();
        Self {
            stream: BufReader::new(stream),
        }
    }

    /// One reply (every line of a multi-line one); "" once the server has closed.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let read = self.stream.read_line(&mut line);
            let n = tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .expect("no reply within 10 s")
                .unwrap_or(0);
            all.push_str(&line);
            if n == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        let wire = format!("{line}\r\n");
        self.stream
            .get_mut()
            .write_all(wire.as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    /// Greeting and EHLO.
    async fn hello(port: u16) -> Self {
        let mut c = Self::connect(port).await;
        expect(&c.reply().await, "220 ");
        expect(&c.cmd("EHLO client.test").await, "250-");
        c
    }

    /// One transaction; the reply to the final dot.
    async fn send(&mut self, mail_from: &str, message: &str) -> String {
        expect(&self.cmd(&format!("MAIL FROM:<{mail_from}>")).await, "250 ");
        expect(&self.cmd(&format!("RCPT TO:<{RCPT}>")).await, "250 ");
        expect(&self.cmd("DATA").await, "354 ");
        self.cmd(&format!("{message}\r\n.")).await
    }
}

#[track_caller]
fn expect(reply: &str, start: &str) {
    assert!(
        reply.starts_with(start),
        "expected `{start}…`, got {reply:?}"
    );
}

fn mail(headers: &str, subject: &str) -> String {
    format!("{headers}To: {RCPT}\r\nSubject: {subject}\r\n\r\nbody of {subject}")
}

async fn titles(server: &TestServer) -> Vec<String> {
    let tasks = tasks_in(&server.engine, &InstanceId::global()).await;
    let mut titles: Vec<String> = tasks.into_iter().map(|t| t.title).collect();
    titles.sort();
    titles
}

#[tokio::test]
async fn smtp_peer_over_its_limit_is_refused_while_others_are_served() {
    let config =
        json!({ "smtp": { "domains": ["tasks.example.com"], "max_connections_per_peer": 3 } });
    let (_env, server, port, stop) = smtp_server(config).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut c = Smtp::connect(port).await;
        expect(&c.reply().await, "220 ");
        idle.push(c);
    }
    let mut over = Smtp::connect(port).await;
    expect(&over.reply().await, "421 4.7.0 ");
    assert_eq!(over.reply().await, "", "closed after the 421");

    let mut other = Smtp::connect_from([127, 0, 0, 2], port).await;
    expect(&other.reply().await, "220 ");
    expect(&other.cmd("EHLO other.test").await, "250-");
    let from_other = mail("From: ana@example.com\r\n", "From another peer");
    expect(
        &other.send("ana@example.com", &from_other).await,
        "250 2.0.0 ",
    );
    assert_eq!(titles(&server).await, ["From another peer"]);

    // A closed session gives its peer's slot back.
    drop(idle.pop());
    eventually(|| async {
        let mut again = Smtp::connect(port).await;
        again.reply().await.starts_with("220 ").then_some(())
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn smtp_client_must_start_a_transaction_within_the_greeting_timeout() {
    let config = json!({ "smtp": {
        "domains": ["tasks.example.com"], "greeting_timeout_secs": 2, "timeout_seconds": 300,
    } });
    let (_env, _server, port, stop) = smtp_server(config).await;
    let started = Instant::now();
    let mut idler = Smtp::hello(port).await;
    // Keeping busy with NOOPs buys no time: the deadline counts from the greeting.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        expect(&idler.cmd("NOOP").await, "250 ");
    }
    expect(&idler.reply().await, "421 4.4.2 ");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_millis(3000),
        "cut off after {waited:?}"
    );
    assert_eq!(idler.reply().await, "", "closed after the 421");

    // Once MAIL FROM is in, the long timeout applies.
    let mut slow = Smtp::hello(port).await;
    expect(&slow.cmd("MAIL FROM:<ana@example.com>").await, "250 ");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    expect(&slow.cmd(&format!("RCPT TO:<{RCPT}>")).await, "250 ");
    stop.cancel();
}

#[tokio::test]
async fn smtp_protocol_errors_are_answered() {
    let config = json!({ "smtp": { "domains": ["tasks.example.com"] } });
    let (_env, server, port, stop) = smtp_server(config).await;
    let mut c = Smtp::connect(port).await;
    expect(&c.reply().await, "220 ");
    expect(&c.cmd("MAIL FROM:<ana@example.com>").await, "503 5.5.1 ");
    let long = format!("NOOP {}", "x".repeat(5000));
    expect(&c.cmd(&long).await, "500 5.5.2 line too long");
    // The rest of the long line was discarded: the session goes on in step.
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("250-ENHANCEDSTATUSCODES"), "{ehlo}");
    let message = mail("From: ana@example.com\r\n", "After the errors");
    expect(&c.send("ana@example.com", &message).await, "250 2.0.0 ");
    expect(&c.cmd("QUIT").await, "221 ");
    assert_eq!(titles(&server).await, ["After the errors"]);
    stop.cancel();
}

#[tokio::test]
async fn smtp_envelope_sender_must_be_allowed_as_well_as_from() {
    let config = json!({
        "allowed_senders": ["*@example.com"],
        "smtp": { "domains": ["tasks.example.com"] },
    });
    let (_env, server, port, stop) = smtp_server(config).await;
    let mut c = Smtp::hello(port).await;
    let forged = mail("From: ana@example.com\r\n", "Forged From");
    let reply = c.send("eve@evil.example", &forged).await;
    expect(&reply, "550 5.7.1 ");
    assert!(
        reply.contains("envelope sender `eve@evil.example`"),
        "{reply}"
    );
    let bounce = c.send("", &forged).await;
    expect(&bounce, "550 5.7.1 ");
    let stranger = mail("From: eve@evil.example\r\n", "Stranger");
    let reply = c.send("ana@example.com", &stranger).await;
    expect(&reply, "550 5.7.1 ");
    assert!(reply.contains("sender `eve@evil.example`"), "{reply}");
    let genuine = mail("From: ana@example.com\r\n", "Genuine");
    expect(&c.send("ana@example.com", &genuine).await, "250 2.0.0 ");
    assert_eq!(titles(&server).await, ["Genuine"]);
    let events = server
        .engine
        .list_events(Some("email"), None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "refused mail is not stored: {events:?}");
    stop.cancel();
}

fn authenticated() -> Value {
    json!({
        "token": "mail-token",
        "require_authenticated": true,
        "authserv_id": "mx.example.com",
        "smtp": { "domains": ["tasks.example.com"] },
    })
}

fn with_results(results: &str, subject: &str) -> String {
    let headers = format!("Authentication-Results: {results}\r\nFrom: Ana <ana@example.com>\r\n");
    mail(&headers, subject)
}

#[tokio::test]
async fn smtp_require_authenticated_trusts_only_the_configured_authserv_id() {
    let (_env, server, port, stop) = smtp_server(authenticated()).await;
    let mut c = Smtp::hello(port).await;
    let passed = with_results(
        "mx.example.com; dkim=pass (2048-bit key) header.d=example.com header.s=s1",
        "Signed",
    );
    expect(&c.send("ana@example.com", &passed).await, "250 2.0.0 ");
    let foreign = with_results("mx.attacker.net; dkim=pass header.d=example.com", "Foreign");
    let reply = c.send("ana@example.com", &foreign).await;
    expect(&reply, "550 5.7.1 ");
    assert!(
        reply.contains("no Authentication-Results from mx.example.com"),
        "{reply}"
    );
    let failed = with_results("mx.example.com; dkim=fail header.d=example.com", "Failed");
    let reply = c.send("ana@example.com", &failed).await;
    expect(&reply, "550 5.7.1 ");
    assert!(reply.contains("neither dkim=pass nor spf=pass"), "{reply}");
    let unsigned = mail("From: ana@example.com\r\n", "Unsigned");
    expect(&c.send("ana@example.com", &unsigned).await, "550 5.7.1 ");
    assert_eq!(titles(&server).await, ["Signed"]);
    stop.cancel();
}

#[tokio::test]
async fn http_require_authenticated_ignores_with_the_reason_kept() {
    let (_env, server, _port, stop) = smtp_server(authenticated()).await;
    let post = |raw: String| {
        reqwest::Client::new()
            .post(format!("{}/webhooks/email", server.base))
            .header("content-type", "message/rfc822")
            .header("authorization", "Bearer mail-token")
            .body(raw)
            .send()
    };
    let foreign = with_results(
        "mx.attacker.net; spf=pass smtp.mailfrom=example.com",
        "Foreign",
    );
    let resp = post(foreign).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ignored", "{body}");
    let events = server
        .engine
        .list_events(Some("email"), Some("ignored"), 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let reason = events[0].reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("not authenticated: no Authentication-Results from mx.example.com"),
        "{reason}"
    );
    let passed = with_results(
        "mx.example.com; spf=pass smtp.mailfrom=ana@example.com",
        "Passed",
    );
    assert_eq!(post(passed).await.unwrap().status().as_u16(), 202);
    assert_eq!(titles(&server).await, ["Passed"]);
    stop.cancel();
}

#[test]
fn require_authenticated_without_an_authserv_id_fails_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.yaml");
    std::fs::write(
        &path,
        "scope: global\ninbound:\n  email:\n    require_authenticated: true\n",
    )
    .unwrap();
    let set = ConfigSet::load(Some(&path), &Overrides::default()).unwrap();
    let err = hopper::gateway::Gateway::build(&set, &|_: &str| None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("inbound.email.authserv_id"), "{text}");
    assert!(
        text.contains("required when require_authenticated"),
        "{text}"
    );
}

//! What the outbound tests share: a server whose outbound section allows loopback executors
//! and retries within seconds, loopback executors that verify every delivery's signature with
//! the Standard Webhooks verifier, and executors written straight into the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hopper::Engine;
use hopper::config::{ConfigSet, Secret};
use hopper::domain::{Executor, ExecutorId, ExecutorKind, InstanceId, now_millis};
use hopper_integration_api::verify::StandardWebhook;
use tokio_util::sync::CancellationToken;

use crate::support::TestEnv;

pub const TOKEN: &str = "test-admin-token";

/// The test outbound section: loopback allowed, a schedule of 4 attempts a second apart, no
/// jitter.
pub fn outbound_configs(env: &TestEnv) -> ConfigSet {
    let mut c = env.configs();
    let o = &mut c.root.outbound;
    o.allowlist = vec!["127.0.0.0/8".into()];
    o.retry_schedule_seconds = vec![0, 1, 1, 1];
    o.jitter = 0.0;
    o.timeout_seconds = 5;
    c
}

pub struct Server {
    pub base: String,
    pub engine: Engine,
    stop: CancellationToken,
}

impl Server {
    pub async fn start(configs: ConfigSet) -> Self {
        let engine = Engine::open(configs).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(hopper::server::run(
            engine.clone(),
            Secret::new(TOKEN),
            listener,
            stop.clone(),
        ));
        Self { base, engine, stop }
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let r = self
            .client()
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The deliveries of `executor`, through the API.
    pub async fn deliveries(&self, executor: &str) -> Vec<serde_json::Value> {
        let v = self
            .get(&format!("/v1/deliveries?executor={executor}"))
            .await;
        v.as_array().unwrap().clone()
    }

    pub async fn delivery(&self, id: &str) -> serde_json::Value {
        self.get(&format!("/v1/deliveries/{id}")).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One request as an executor received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub signatures: String,
    pub body: serde_json::Value,
    /// Which of the receiver's secrets verified it (indexes into `secrets`).
    pub verified_by: Vec<usize>,
}

#[derive(Default)]
struct ReceiverState {
    secrets: Vec<String>,
    /// Statuses to answer, in order; once used up, 204.
    script: Vec<u16>,
    received: Vec<Received>,
}

/// A loopback executor endpoint.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    /// Answers `script`'s statuses in turn, then 204; verifies with `secrets`.
    pub async fn start(secrets: &[&str], script: &[u16]) -> Self {
        let (state, app) = Self::app(secrets, script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// The same over https at `https://localhost:PORT/hook`, presenting `tls`'s certificate.
    pub async fn start_tls(
        secrets: &[&str],
        script: &[u16],
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> Self {
        let (state, app) = Self::app(secrets, script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to serve.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state }
    }

    fn app(secrets: &[&str], script: &[u16]) -> (Arc<Mutex<ReceiverState>>, Router) {
        let state = Arc::new(Mutex::new(ReceiverState {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            script: script.to_vec(),
            received: Vec::new(),
        }));
        let app = Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        (state, app)
    }

    /// The secrets to verify with from now on (an executor learns its secret at registration).
    pub fn set_secrets(&self, secrets: &[&str]) {
        self.state.lock().unwrap().secrets = secrets.iter().map(|s| s.to_string()).collect();
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
}

/// A request header as text ("" when missing or not text).
pub fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Whether `body` carries a valid Standard Webhooks signature by `secret` in `headers`.
pub fn signed_with(headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    StandardWebhook {
        id: &header(headers, "webhook-id"),
        timestamp: &header(headers, "webhook-timestamp"),
        signatures: &header(headers, "webhook-signature"),
    }
    .verify(&Secret::new(secret), body, Duration::from_secs(300))
    .is_ok()
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    assert_eq!(header(&headers, "content-type"), "application/json");
    let mut s = state.lock().unwrap();
    let verified_by = s
        .secrets
        .iter()
        .enumerate()
        .filter(|(_, k)| signed_with(&headers, &body, k))
        .map(|(i, _)| i)
        .collect();
    s.received.push(Received {
        id: header(&headers, "webhook-id"),
        signatures: header(&headers, "webhook-signature"),
        body: serde_json::from_slice(&body).unwrap_or_default(),
        verified_by,
    });
    let status = if s.script.is_empty() {
        204
    } else {
        s.script.remove(0)
    };
    (StatusCode::from_u16(status).unwrap(), "executor says hello")
}

/// A fresh `whsec_` signing secret.
pub fn secret() -> String {
    hopper::outbound::sign::generate_secret()
}

pub fn sark() -> InstanceId {
    InstanceId::parse("hopper-sark").unwrap()
}

/// Writes an executor serving `hopper-sark` straight into the root store.
pub async fn executor(
    engine: &Engine,
    name: &str,
    url: &str,
    secret: &str,
    auto_claim: bool,
) -> Executor {
    let now = hopper::domain::millis_to_rfc3339(now_millis());
    let e = Executor {
        id: ExecutorId::generate(),
        name: name.into(),
        kind: ExecutorKind::Project,
        project: sark(),
        capabilities: vec![],
        webhook_url: Some(url.into()),
        events: hopper::domain::events::DEFAULT
            .iter()
            .map(|s| s.to_string())
            .collect(),
        auto_claim,
        velocity: None,
        sla: None,
        priority_boost: Default::default(),
        config: serde_json::json!({}),
        enabled: true,
        disabled_reason: None,
        disabled_at: None,
        failing_since: None,
        created_at: now.clone(),
        updated_at: now,
    };
    engine
        .registry_store()
        .put_executor(&e, secret, now_millis())
        .await
        .unwrap();
    // As registration does: every open store records events from now on.
    assert!(engine.refresh_outbox_wanted().await.unwrap());
    e
}

/// A task on global that the rules route to `sark`; returns the project's child task id.
pub async fn sark_task(engine: &Engine, title: &str) -> String {
    let draft = hopper::domain::TaskDraft {
        title: title.into(),
        tags: vec!["security".into()],
        ..Default::default()
    };
    engine.add_task(&InstanceId::global(), draft).await.unwrap();
    let tasks = crate::support::tasks_in(engine, &sark()).await;
    tasks
        .iter()
        .find(|t| t.title == title)
        .map(|t| t.id.as_str().to_owned())
        .expect("routed to sark")
}

/// Polls until `check` holds (up to 20 s: retries are a second apart).
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 20 s: {what}");
}

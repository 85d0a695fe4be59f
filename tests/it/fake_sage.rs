//! A loopback Sage (the external decider, `hopper::routing::sage`) for tests: answers a script
//! of [`SageAnswer`]s in turn (repeating the last) at `POST /route`, verifies every request's
//! Standard Webhooks signature with the receivers' verifier and records what it got.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::outbound_support::{header, signed_with};

#[derive(Debug, Clone)]
pub enum SageAnswer {
    /// This JSON body with 200.
    Json(serde_json::Value),
    /// This status and body.
    Status(u16, String),
    /// The inner answer after this long.
    Delay(Duration, Box<SageAnswer>),
    /// This raw body with 200.
    Garbage(String),
}

impl SageAnswer {
    pub fn route(project: &str, confidence: f64, reason: &str) -> Self {
        Self::Json(
            serde_json::json!({"project": project, "confidence": confidence,
                                      "reason": reason}),
        )
    }
}

/// One request as Sage received it.
#[derive(Debug, Clone)]
pub struct SageRequest {
    pub id: String,
    pub timestamp: String,
    /// The `webhook-signature` header ("" when none).
    pub signature: String,
    pub content_type: String,
    pub body: serde_json::Value,
    /// Whether the signature verified with the fake's secret (false without one).
    pub verified: bool,
}

#[derive(Default)]
struct SageState {
    secret: Option<String>,
    script: Vec<SageAnswer>,
    next: usize,
    received: Vec<SageRequest>,
}

pub struct FakeSage {
    /// `http://127.0.0.1:PORT/route`.
    pub url: String,
    state: Arc<Mutex<SageState>>,
}

impl FakeSage {
    /// Verifies with `secret` (a `whsec_` secret) when given.
    pub async fn start(secret: Option<String>, script: Vec<SageAnswer>) -> Self {
        let state = Arc::new(Mutex::new(SageState {
            secret,
            script,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/route", axum::routing::post(answer))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/route", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    pub fn requests(&self) -> Vec<SageRequest> {
        self.state.lock().unwrap().received.clone()
    }
}

async fn answer(
    State(state): State<Arc<Mutex<SageState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = {
        let mut s = state.lock().unwrap();
        let verified = s
            .secret
            .as_deref()
            .is_some_and(|k| signed_with(&headers, &body, k));
        s.received.push(SageRequest {
            id: header(&headers, "webhook-id"),
            timestamp: header(&headers, "webhook-timestamp"),
            signature: header(&headers, "webhook-signature"),
            content_type: header(&headers, "content-type"),
            body: serde_json::from_slice(&body).unwrap_or_default(),
            verified,
        });
        let i = s.next.min(s.script.len().saturating_sub(1));
        s.next += 1;
        s.script
            .get(i)
            .cloned()
            .unwrap_or(SageAnswer::Status(500, "empty script".into()))
    };
    render(next).await
}

async fn render(mut answer: SageAnswer) -> Response {
    while let SageAnswer::Delay(by, inner) = answer {
        tokio::time::sleep(by).await;
        answer = *inner;
    }
    let json = [("content-type", "application/json")];
    match answer {
        SageAnswer::Json(v) => (json, v.to_string()).into_response(),
        SageAnswer::Status(code, body) => {
            (StatusCode::from_u16(code).unwrap(), json, body).into_response()
        }
        SageAnswer::Garbage(body) => (json, body).into_response(),
        SageAnswer::Delay(..) => unreachable!("delays are unwrapped above"),
    }
}

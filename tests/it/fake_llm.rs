//! A loopback OpenAI-compatible chat-completions endpoint for tests: answers a script of
//! [`FakeAnswer`]s in turn (repeating the last) at `POST /v1/chat/completions` and records
//! every request's `Authorization` header and JSON body.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::outbound_support::header;

/// One answer of the fake.
#[derive(Debug, Clone)]
pub enum FakeAnswer {
    /// A proper `chat.completion` whose message content is this.
    Content(String),
    /// This status and body.
    Status(u16, String),
    /// The inner answer after this long.
    Delay(Duration, Box<FakeAnswer>),
    /// This raw body with 200 and `content-type: application/json`.
    Garbage(String),
    /// This JSON body with 200 (a completion shaped by the test).
    Json(serde_json::Value),
}

impl FakeAnswer {
    /// A routing answer as the model would write it.
    pub fn route(project: &str, confidence: f64, reason: &str) -> Self {
        Self::Content(
            serde_json::json!({"project": project, "confidence": confidence, "reason": reason,
                               "needs_orchestration": false})
            .to_string(),
        )
    }

    pub fn delayed(by: Duration, answer: FakeAnswer) -> Self {
        Self::Delay(by, Box::new(answer))
    }
}

/// A completion with `content` and finish reason `finish`.
pub fn completion(content: &str, finish: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fake-model-2026",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": finish,
        }],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
    })
}

#[derive(Default)]
struct FakeState {
    script: Vec<FakeAnswer>,
    next: usize,
    requests: Vec<(String, serde_json::Value)>,
}

pub struct FakeLlm {
    /// The base URL, `http://127.0.0.1:PORT/v1`.
    pub url: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeLlm {
    pub async fn start(script: Vec<FakeAnswer>) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            script,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/v1/chat/completions", axum::routing::post(answer))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// Every request so far: its `Authorization` header ("" when none) and JSON body.
    pub fn requests(&self) -> Vec<(String, serde_json::Value)> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn answer(
    State(state): State<Arc<Mutex<FakeState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = {
        let mut s = state.lock().unwrap();
        s.requests.push((
            header(&headers, "authorization"),
            serde_json::from_slice(&body).unwrap_or_default(),
        ));
        let i = s.next.min(s.script.len().saturating_sub(1));
        s.next += 1;
        s.script
            .get(i)
            .cloned()
            .unwrap_or(FakeAnswer::Status(500, "empty script".into()))
    };
    render(next).await
}

async fn render(mut answer: FakeAnswer) -> Response {
    while let FakeAnswer::Delay(by, inner) = answer {
        tokio::time::sleep(by).await;
        answer = *inner;
    }
    let json = [("content-type", "application/json")];
    match answer {
        FakeAnswer::Content(content) => {
            (json, completion(&content, "stop").to_string()).into_response()
        }
        FakeAnswer::Status(code, body) => {
            (StatusCode::from_u16(code).unwrap(), json, body).into_response()
        }
        FakeAnswer::Garbage(body) => (json, body).into_response(),
        FakeAnswer::Json(v) => (json, v.to_string()).into_response(),
        FakeAnswer::Delay(..) => unreachable!("delays are unwrapped above"),
    }
}

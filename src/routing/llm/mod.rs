//! The LLM decider: asks an OpenAI-compatible chat-completions endpoint
//! (`POST {base_url}/chat/completions`) where a task goes ([`LlmClient::route`]) and how to
//! split it into phases ([`LlmClient::decompose`]).
//!
//! The model must answer a JSON object (also accepted inside ```json fences or surrounded by
//! text); the answer is validated like any remote decider's ([`crate::routing::remote::judge`]).
//! Every failure abstains with a one-line reason. The API key is sent as `Authorization:
//! Bearer` when set and never appears in a trace, an error or a log line. No SSRF checks: the
//! URL is the operator's own configuration.

mod parse;
pub mod prompt;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wire::{completion, endpoint, http_error};

use super::remote::{
    Gate, Limits, MAX_TRACE_ANSWER, RemoteOutcome, RemoteTrace, RouteRequest, TaskSummary,
    describe_send_error, elapsed_ms, judge, outcome, read_body, truncate,
};
use crate::config::Secret;

/// The most of a response body read.
const MAX_BODY: usize = 1024 * 1024;

/// How to reach the model.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Like `https://api.openai.com/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    pub temperature: f64,
    /// For a whole call, connecting to the last byte of the answer.
    pub timeout: Duration,
    pub max_tokens: u32,
    /// Ask for `response_format: {"type": "json_object"}`.
    pub json_mode: bool,
    pub limits: Limits,
    /// The most candidate projects put in a prompt (0: all).
    pub max_prompt_projects: usize,
}

/// Settings that cannot make a client. Never holds the API key.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("LLM base_url `{url}` is not usable: {reason}")]
    BadBaseUrl { url: String, reason: String },
    #[error("could not build the LLM HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What [`LlmClient::decompose`] is asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DecomposeRequest {
    pub task: TaskSummary,
    /// The project the task was routed to.
    pub project: String,
    /// Phase names the project's template suggests.
    pub template_phases: Vec<String>,
    pub max_phases: usize,
    pub max_tasks_per_phase: usize,
}

/// Phases done one after the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub phases: Vec<PlannedPhase>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedPhase {
    pub name: String,
    pub tasks: Vec<PlannedTask>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedTask {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

struct Inner {
    settings: LlmSettings,
    endpoint: String,
    http: reqwest::Client,
    gate: Gate,
}

/// A chat-completions client; cheap to clone (shares one connection pool and one gate).
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("endpoint", &self.inner.endpoint)
            .field("model", &self.inner.settings.model)
            .finish_non_exhaustive()
    }
}

/// A failed call: the reason and the trace, if the call was made.
type Failure = (String, Option<RemoteTrace>);

impl LlmClient {
    pub fn new(settings: LlmSettings) -> Result<Self, LlmError> {
        let endpoint = endpoint(&settings.base_url)?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("hopper/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let gate = Gate::new(settings.limits);
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                endpoint,
                http,
                gate,
            }),
        })
    }

    pub fn model(&self) -> &str {
        &self.inner.settings.model
    }

    /// Where the task goes, or why the model gave no usable answer.
    pub async fn route(&self, req: &RouteRequest) -> RemoteOutcome {
        let messages = prompt::route_messages(req, self.inner.settings.max_prompt_projects);
        match self.chat(messages).await {
            Ok((content, trace)) => outcome(
                parse::json_object(&content).and_then(|v| judge(&v, &req.projects)),
                trace,
            ),
            Err((reason, trace)) => RemoteOutcome::Abstained { reason, trace },
        }
    }

    /// A plan for the task, or why there is none.
    pub async fn decompose(&self, req: &DecomposeRequest) -> Result<(Plan, RemoteTrace), Failure> {
        let (content, trace) = self.chat(prompt::decompose_messages(req)).await?;
        match parse::plan(&content, req.max_phases, req.max_tasks_per_phase) {
            Ok(plan) => Ok((plan, trace)),
            Err(reason) => Err((reason, Some(trace))),
        }
    }

    /// One chat completion: the message content and the trace.
    async fn chat(&self, messages: Value) -> Result<(String, RemoteTrace), Failure> {
        let s = &self.inner.settings;
        let _permit = self.inner.gate.enter().await.map_err(|r| (r, None))?;
        let mut body = json!({
            "model": s.model,
            "messages": messages,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
        });
        if s.json_mode {
            body["response_format"] = json!({"type": "json_object"});
        }
        let url = &self.inner.endpoint;
        let timeout_ms = u64::try_from(s.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut trace = RemoteTrace {
            url: url.clone(),
            model: Some(s.model.clone()),
            request: messages,
            answer: None,
            status: None,
            usage: None,
            latency_ms: 0,
        };
        let start = Instant::now();
        let mut request = self.inner.http.post(url).json(&body);
        if let Some(key) = &s.api_key {
            request = request.bearer_auth(key.expose());
        }
        let sent = request.send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                trace.latency_ms = elapsed_ms(start);
                return Err((describe_send_error(&e, url, timeout_ms), Some(trace)));
            }
        };
        let status = resp.status();
        trace.status = Some(status.as_u16());
        let text = read_body(resp, MAX_BODY, url, timeout_ms).await;
        trace.latency_ms = elapsed_ms(start);
        let text = match text {
            Ok(t) => t,
            Err(reason) => return Err((reason, Some(trace))),
        };
        trace.answer = Some(truncate(&text, MAX_TRACE_ANSWER).to_owned());
        if !status.is_success() {
            return Err((http_error(status.as_u16(), &text), Some(trace)));
        }
        match completion(&text, s.max_tokens) {
            Ok(c) => {
                trace.answer = Some(truncate(&c.content, MAX_TRACE_ANSWER).to_owned());
                trace.usage = c.usage;
                if let Some(model) = c.model {
                    trace.model = Some(model);
                }
                Ok((c.content, trace))
            }
            Err(reason) => Err((reason, Some(trace))),
        }
    }
}

//! Sage: an external decider you run yourself. Hopper asks it where a task goes over HTTP.
//!
//! ## The contract
//!
//! **Request.** `POST <url>` with `content-type: application/json` and the body
//!
//! ```json
//! {
//!   "task": {
//!     "id": "01J...", "title": "Rotate the TLS certificates", "description": "...",
//!     "tags": ["security"], "priority": "high", "required_capabilities": [],
//!     "source": {"kind": "github", "container": "acme/site"}
//!   },
//!   "projects": [
//!     {"name": "sark", "capabilities": ["security"], "executors": ["sark-bot"]}
//!   ]
//! }
//! ```
//!
//! `id` and `source` may be `null`; `priority` is `low`, `normal`, `high` or `urgent`; project
//! names carry no `hopper-` prefix.
//!
//! **Headers.** [Standard Webhooks](https://www.standardwebhooks.com): `webhook-id` (`msg_`
//! and a UUID v7, new for every request), `webhook-timestamp` (Unix seconds) and, when a
//! secret is configured, `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of
//! `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the base64-decoded part of the
//! `whsec_` secret after the prefix. To verify, recompute that HMAC over the raw body bytes,
//! compare it in constant time with any of the space-separated `v1,` entries, and refuse
//! timestamps more than a few minutes from now. Any Standard Webhooks library does this.
//! Without a secret no `webhook-signature` is sent.
//!
//! **Answer.** A 2xx status with a JSON object:
//!
//! ```json
//! {"project": "sark", "confidence": 0.85, "reason": "certificates are sark's job",
//!  "needs_orchestration": false}
//! ```
//!
//! `project` is one of the request's project names (a leading `hopper-` is accepted) or
//! `null` to decline; `confidence` is a JSON number from 0 to 1 (not a string); `reason` (a
//! string) and `needs_orchestration` (a bool) are optional. Anything else — another status,
//! a body that is not such an object, an unknown project, no answer within the timeout —
//! counts as abstaining, and Hopper's routing chain moves on to its next router. Redirects
//! are not followed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::remote::{
    Gate, Limits, MAX_TRACE_ANSWER, RemoteOutcome, RemoteTrace, RouteRequest, describe_send_error,
    elapsed_ms, judge, one_line, outcome, read_body, truncate,
};
use crate::config::Secret;
use crate::outbound::sign::{SignError, signature_header};

/// The most of an answer read.
const MAX_BODY: usize = 256 * 1024;

/// Where Sage is and how to sign for it.
#[derive(Debug, Clone)]
pub struct SageSettings {
    pub url: String,
    /// A `whsec_` secret; without one requests are not signed.
    pub secret: Option<Secret>,
    pub timeout: Duration,
    pub limits: Limits,
}

/// Settings that cannot make a client. Never holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum SageError {
    #[error("sage url `{url}` is not usable: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("sage secret is not usable: {0}")]
    BadSecret(#[from] SignError),
    #[error("could not build the sage HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

struct Inner {
    settings: SageSettings,
    http: reqwest::Client,
    gate: Gate,
}

/// A Sage client; cheap to clone.
#[derive(Clone)]
pub struct SageClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SageClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SageClient")
            .field("url", &self.inner.settings.url)
            .field("signed", &self.inner.settings.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl SageClient {
    pub fn new(settings: SageSettings) -> Result<Self, SageError> {
        let bad = |reason: String| SageError::BadUrl {
            url: settings.url.clone(),
            reason,
        };
        let parsed = reqwest::Url::parse(&settings.url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(format!(
                "scheme `{}` is not http or https",
                parsed.scheme()
            )));
        }
        if let Some(secret) = &settings.secret {
            // Refuses a malformed secret now rather than at every call.
            signature_header(&[secret.expose()], "msg_check", 0, b"")?;
        }
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
                http,
                gate,
            }),
        })
    }

    /// Where Sage says the task goes, or why it gave no usable answer.
    pub async fn route(&self, req: &RouteRequest) -> RemoteOutcome {
        let _permit = match self.inner.gate.enter().await {
            Ok(p) => p,
            Err(reason) => {
                return RemoteOutcome::Abstained {
                    reason,
                    trace: None,
                };
            }
        };
        let s = &self.inner.settings;
        let url = &s.url;
        let timeout_ms = u64::try_from(s.timeout.as_millis()).unwrap_or(u64::MAX);
        let request = serde_json::to_value(req).unwrap_or_default();
        let mut trace = RemoteTrace {
            url: url.clone(),
            model: None,
            request,
            answer: None,
            status: None,
            usage: None,
            latency_ms: 0,
        };
        let abstain = |reason: String, trace: RemoteTrace| RemoteOutcome::Abstained {
            reason,
            trace: Some(trace),
        };
        let body = match serde_json::to_vec(req) {
            Ok(b) => b,
            Err(e) => return abstain(format!("could not encode the request: {e}"), trace),
        };
        let msg_id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let timestamp = chrono::Utc::now().timestamp();
        let mut builder = self
            .inner
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(secret) = &s.secret {
            match signature_header(&[secret.expose()], &msg_id, timestamp, &body) {
                Ok(sig) => builder = builder.header("webhook-signature", sig),
                Err(e) => return abstain(format!("could not sign the request: {e}"), trace),
            }
        }
        let start = Instant::now();
        let resp = match builder.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                trace.latency_ms = elapsed_ms(start);
                return abstain(describe_send_error(&e, url, timeout_ms), trace);
            }
        };
        let status = resp.status();
        trace.status = Some(status.as_u16());
        let text = read_body(resp, MAX_BODY, url, timeout_ms).await;
        trace.latency_ms = elapsed_ms(start);
        let text = match text {
            Ok(t) => t,
            Err(reason) => return abstain(reason, trace),
        };
        trace.answer = Some(truncate(&text, MAX_TRACE_ANSWER).to_owned());
        if !status.is_success() {
            let shown = one_line(&text, 200);
            let reason = if shown.is_empty() {
                format!("HTTP {} with an empty body", status.as_u16())
            } else {
                format!("HTTP {}: {shown}", status.as_u16())
            };
            return abstain(reason, trace);
        }
        let verdict = serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| format!("answer is not JSON: {e}"))
            .and_then(|v| judge(&v, &req.projects));
        outcome(verdict, trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, secret: Option<&str>) -> SageSettings {
        SageSettings {
            url: url.into(),
            secret: secret.map(Secret::new),
            timeout: Duration::from_secs(1),
            limits: Limits::default(),
        }
    }

    #[test]
    fn bad_urls_and_secrets_are_refused_without_echoing_the_secret() {
        assert!(matches!(
            SageClient::new(settings("ftp://sage/route", None)),
            Err(SageError::BadUrl { .. })
        ));
        assert!(matches!(
            SageClient::new(settings("nowhere", None)),
            Err(SageError::BadUrl { .. })
        ));
        let err = SageClient::new(settings("http://127.0.0.1:9/route", Some("hunter2")))
            .err()
            .unwrap();
        assert!(!err.to_string().contains("hunter2"));
        assert!(SageClient::new(settings("http://127.0.0.1:9/route", None)).is_ok());
    }
}

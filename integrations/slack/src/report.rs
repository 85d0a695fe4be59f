//! Reporting back to Slack: a reply in the thread a task came from (`chat.postMessage` with the
//! bot token), or, for a slash command, a message through the command's `response_url` (no
//! token needed; valid for 30 minutes, after which the bot posts in the channel instead).
//!
//! One attempt per call; the core retries. Slack answers most errors with HTTP 200 and
//! `{"ok": false, "error": "..."}`: `ratelimited` and Slack's own failures are worth another
//! attempt, everything else (`invalid_auth`, `channel_not_found`, `not_in_channel`, ...) is not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hopper_integration_api::text::clip;
use hopper_integration_api::{
    Delivered, Report, ReportError, Reporter, ReporterResult, Secret, SourceSettings,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// How long a slash command's `response_url` accepts messages.
pub const RESPONSE_URL_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// `reports.slack` in the config. Every key has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackReportConfig {
    /// The Web API base; else `HOPPER_SLACK_API_URL`, else `https://slack.com/api`.
    pub api_url: Option<String>,
    /// A bot token (`xoxb-...`) with `chat:write`; else `HOPPER_SLACK_BOT_TOKEN`.
    pub bot_token: Option<Secret>,
    /// Only `response_url`s starting with this are posted to (the URL is stored on the task,
    /// and tasks added through the API carry whatever source their caller wrote).
    pub response_url_prefix: String,
    /// Per request.
    pub timeout_seconds: u64,
}

impl Default for SlackReportConfig {
    fn default() -> Self {
        Self {
            api_url: None,
            bot_token: None,
            response_url_prefix: "https://hooks.slack.com/".into(),
            timeout_seconds: 10,
        }
    }
}

/// Builds the Slack reporter from `reports.slack`. No bot token and no `reports.slack`
/// section: `Ok(None)`. A section without a token makes a reporter that answers slash commands
/// through their `response_url` only; reports that need the token fail as permanent.
pub fn reporter(s: &SourceSettings<'_>) -> ReporterResult {
    let config: SlackReportConfig = s.parse()?;
    let token = s.secret(config.bot_token.clone(), "HOPPER_SLACK_BOT_TOKEN");
    if token.is_none() && s.section.is_null() {
        return Ok(None);
    }
    let api_url = config
        .api_url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| (s.env)("HOPPER_SLACK_API_URL").filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| "https://slack.com/api".into());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return Err(format!("api_url: `{api_url}` is not an http(s) URL"));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_seconds.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    Ok(Some(Box::new(SlackReporter {
        http,
        api_url: api_url.trim_end_matches('/').to_owned(),
        token,
        response_url_prefix: config.response_url_prefix,
    })))
}

pub struct SlackReporter {
    http: reqwest::Client,
    api_url: String,
    token: Option<Secret>,
    response_url_prefix: String,
}

#[async_trait]
impl Reporter for SlackReporter {
    fn kind(&self) -> &'static str {
        "slack"
    }

    async fn report(&self, report: &Report) -> Result<Delivered, ReportError> {
        let handle = report.source.reply_handle.clone().unwrap_or(Value::Null);
        let field = |k: &str| handle[k].as_str().filter(|s| !s.is_empty());
        let channel = field("channel").or(report.source.container.as_deref());
        // Slack refuses more than 40,000 characters.
        let text = clip(&report.text, 39_000);
        if let Some(url) = field("response_url") {
            let fresh = task_age(&report.task_id).is_none_or(|age| age < RESPONSE_URL_LIFETIME);
            if fresh || self.token.is_none() {
                match self.respond(url, &text).await {
                    Err(ReportError::Permanent { .. })
                        if self.token.is_some() && channel.is_some() =>
                    {
                        // Expired or used up (five messages per command): the bot says it instead.
                    }
                    other => return other,
                }
            }
            return self.post(channel, None, &text).await;
        }
        self.post(channel, field("thread_ts"), &text).await
    }
}

impl SlackReporter {
    /// `POST {api_url}/chat.postMessage`.
    async fn post(
        &self,
        channel: Option<&str>,
        thread_ts: Option<&str>,
        text: &str,
    ) -> Result<Delivered, ReportError> {
        let Some(token) = &self.token else {
            return Err(permanent(
                None,
                "no Slack bot token (reports.slack.bot_token or HOPPER_SLACK_BOT_TOKEN): only \
                 slash commands can be answered, through their response_url",
            ));
        };
        let Some(channel) = channel else {
            return Err(permanent(None, "the task's Slack source names no channel"));
        };
        let mut body = json!({ "channel": channel, "text": text });
        if let Some(ts) = thread_ts {
            body["thread_ts"] = ts.into();
        }
        let response = self
            .http
            .post(format!("{}/chat.postMessage", self.api_url))
            .bearer_auth(token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| transport("chat.postMessage", e))?;
        let (status, retry_after) = (response.status().as_u16(), retry_after(&response));
        if status == 429 || status >= 500 {
            return Err(retry(
                status,
                retry_after,
                format!("chat.postMessage: HTTP {status}"),
            ));
        }
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            return Err(permanent(
                Some(status),
                format!("chat.postMessage: HTTP {status}"),
            ));
        }
        if answer["ok"].as_bool() == Some(true) {
            let ts = answer["ts"].as_str().unwrap_or_default().to_owned();
            return Ok(Delivered { status, detail: ts });
        }
        let error = answer["error"].as_str().unwrap_or("an answer without `ok`");
        let message = format!("chat.postMessage: {error}");
        match error {
            "ratelimited"
            | "rate_limited"
            | "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout" => Err(retry(status, retry_after, message)),
            _ => Err(permanent(Some(status), message)),
        }
    }

    /// `POST` to a slash command's `response_url`: no token, the URL is the credential (so it
    /// is never put in an error message).
    async fn respond(&self, url: &str, text: &str) -> Result<Delivered, ReportError> {
        if !url.starts_with(&self.response_url_prefix) {
            return Err(permanent(
                None,
                format!(
                    "response_url is not under `{}` (reports.slack.response_url_prefix)",
                    self.response_url_prefix
                ),
            ));
        }
        let response = self
            .http
            .post(url)
            .json(&json!({ "response_type": "in_channel", "text": text }))
            .send()
            .await
            .map_err(|e| transport("response_url", e.without_url()))?;
        let (status, retry_after) = (response.status().as_u16(), retry_after(&response));
        match status {
            200..=299 => Ok(Delivered {
                status,
                detail: "response_url".into(),
            }),
            429 | 500.. => Err(retry(
                status,
                retry_after,
                format!("response_url: HTTP {status}"),
            )),
            _ => {
                let body = response.text().await.unwrap_or_default();
                let msg = format!("response_url: HTTP {status} {}", clip(body.trim(), 200));
                Err(permanent(Some(status), msg.trim_end()))
            }
        }
    }
}

/// How long ago a task was made, from its id (`task_` + a UUIDv7, whose first 48 bits are the
/// Unix time in milliseconds); `None` for an id of another shape.
pub fn task_age(task_id: &str) -> Option<Duration> {
    let hex: String = task_id
        .strip_prefix("task_")
        .unwrap_or(task_id)
        .chars()
        .filter(|c| *c != '-')
        .take(12)
        .collect();
    if hex.len() != 12 {
        return None;
    }
    let millis = u64::from_str_radix(&hex, 16).ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    Some(now.saturating_sub(Duration::from_millis(millis)))
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let secs: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

fn transport(what: &str, e: reqwest::Error) -> ReportError {
    let kind = if e.is_timeout() {
        "timed out"
    } else {
        "failed"
    };
    retry_err(None, None, format!("{what}: request {kind}: {e}"))
}

fn retry(status: u16, retry_after: Option<Duration>, message: String) -> ReportError {
    retry_err(Some(status), retry_after, message)
}

fn retry_err(status: Option<u16>, retry_after: Option<Duration>, message: String) -> ReportError {
    ReportError::Retry {
        status,
        retry_after,
        message,
    }
}

fn permanent(status: Option<u16>, message: impl Into<String>) -> ReportError {
    ReportError::Permanent {
        status,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_age_reads_the_uuidv7_time() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let id = format!("task_{:012x}7abc8def0123456789ab", now - 60_000);
        let age = task_age(&id).unwrap();
        assert!(age >= Duration::from_secs(59) && age < Duration::from_secs(120));
        assert_eq!(task_age("task_xyz"), None);
        assert_eq!(task_age("42"), None);
    }
}

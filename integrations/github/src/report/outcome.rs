//! What GitHub's answer means for the report: delivered, worth another attempt, or not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hopper_integration_api::ReportError;
use http::{HeaderMap, StatusCode};
use octocrab::Octocrab;
use serde_json::Value;

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, octocrab::Error>;

/// The response's status and body, or what its failure means.
pub(super) async fn check(
    gh: &Octocrab,
    step: &str,
    response: octocrab::Result<http::Response<Body>>,
    not_found_ok: bool,
) -> Result<(u16, String), ReportError> {
    let response = response.map_err(|e| transport(step, &e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = gh
        .body_to_string(response)
        .await
        .map_err(|e| transport(step, &e))?;
    if status.is_success() || (not_found_ok && status == StatusCode::NOT_FOUND) {
        return Ok((status.as_u16(), text));
    }
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(String::from))
        .unwrap_or_default();
    Err(classify(status, &headers, step, &message))
}

/// 5xx, 429 and a rate-limit 403 are worth another attempt; any other 4xx is not.
pub(super) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    step: &str,
    message: &str,
) -> ReportError {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let lower = message.to_ascii_lowercase();
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (header("x-ratelimit-remaining") == Some("0")
                || header("retry-after").is_some()
                || lower.contains("rate limit")));
    let what = format!(
        "GitHub answered {} {step}: {}",
        status.as_u16(),
        clip(message)
    );
    if rate_limited || status.is_server_error() {
        let retry_after = header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .or_else(|| {
                let reset = header("x-ratelimit-reset")?.parse::<u64>().ok()?;
                let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
                Some(Duration::from_secs(reset.saturating_sub(now)))
            });
        retry(Some(status.as_u16()), retry_after, what)
    } else {
        permanent(Some(status.as_u16()), what)
    }
}

/// No answer: a refused connection, a timeout, a broken body are worth another attempt; a
/// failure to make the request (a JWT, a URI) is not. Only the error's own text, never the
/// request (its headers hold the token).
pub(super) fn transport(step: &str, e: &octocrab::Error) -> ReportError {
    match e {
        octocrab::Error::GitHub { source, .. } => {
            let what = format!("installation token for {step}");
            classify(
                source.status_code,
                &HeaderMap::new(),
                &what,
                &source.message,
            )
        }
        octocrab::Error::Service { .. }
        | octocrab::Error::Hyper { .. }
        | octocrab::Error::Other { .. } => retry(
            None,
            None,
            format!("GitHub unreachable {step}: {}", brief(e)),
        ),
        _ => permanent(None, format!("GitHub request failed {step}: {}", brief(e))),
    }
}

/// The error's first line (octocrab appends a backtrace).
pub(super) fn brief(e: &octocrab::Error) -> String {
    let text = match e {
        octocrab::Error::Service { source, .. } => {
            let mut text = source.to_string();
            let mut cause = source.source();
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            text
        }
        octocrab::Error::Hyper { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    clip(text.lines().next().unwrap_or(""))
}

pub(super) fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

pub(super) fn retry(
    status: Option<u16>,
    retry_after: Option<Duration>,
    message: String,
) -> ReportError {
    ReportError::Retry {
        status,
        retry_after,
        message,
    }
}

pub(super) fn permanent(status: Option<u16>, message: String) -> ReportError {
    ReportError::Permanent { status, message }
}

/// A label name as one path segment: everything but RFC 3986's unreserved characters escaped.
pub(super) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

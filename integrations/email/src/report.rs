//! Reporting back by email: a reply to the message a task came from, in its thread
//! (`Re:` subject, `In-Reply-To` and `References`), from the mailbox it was sent to, sent
//! through the SMTP server `reports.email.smtp_url` names (lettre).
//!
//! One attempt per call; the core retries. A 4xx reply or a failed connection is worth another
//! attempt, a 5xx reply is not. The URL's password never appears in an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hopper_integration_api::{
    Delivered, Report, ReportError, Reporter, ReporterResult, Secret, SourceSettings,
};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use url::Url;

/// `reports.email` in the config. Every key has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailReportConfig {
    /// Where replies are submitted; else `HOPPER_SMTP_URL`. `smtp://user:pass@host:587`
    /// (STARTTLS, required whenever the URL has a password or port 587), `smtps://...:465`
    /// (implicit TLS), `smtp://host:25` (plain). `?tls=required|opportunistic|none` overrides.
    pub smtp_url: Option<Secret>,
    /// The sender (`hopper@example.com` or `Hopper <hopper@example.com>`); by default the
    /// address the task's message was sent to.
    pub from: Option<String>,
    /// For the whole SMTP conversation.
    pub timeout_seconds: u64,
}

impl Default for EmailReportConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: None,
            timeout_seconds: 30,
        }
    }
}

/// Builds the email reporter from `reports.email`: `Ok(None)` without an SMTP URL.
pub fn reporter(s: &SourceSettings<'_>) -> ReporterResult {
    let config: EmailReportConfig = s.parse()?;
    let Some(smtp_url) = s.secret(config.smtp_url.clone(), "HOPPER_SMTP_URL") else {
        return Ok(None);
    };
    let from = match config
        .from
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        Some(f) => Some(
            f.parse::<Mailbox>()
                .map_err(|e| format!("from: `{f}` is not an address: {e}"))?,
        ),
        None => None,
    };
    let url = transport_url(smtp_url.expose())?;
    let password: Vec<String> = Url::parse(&url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
        .filter(|p| !p.is_empty())
        .map(|p| {
            let decoded = percent_encoding::percent_decode_str(&p).decode_utf8_lossy();
            vec![decoded.into_owned(), p]
        })
        .unwrap_or_default();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
        .map_err(|e| scrub(format!("smtp_url: {e}"), &password))?
        .timeout(Some(Duration::from_secs(config.timeout_seconds.max(1))))
        .build();
    Ok(Some(Box::new(EmailReporter {
        transport,
        from,
        password,
    })))
}

/// The URL lettre is given: `smtp://` gets `tls=required` (STARTTLS) when it carries a
/// password or names the submission port, and `tls=none` (which lettre does not know) is
/// dropped for a plain connection.
fn transport_url(raw: &str) -> Result<String, String> {
    let mut url = Url::parse(raw.trim()).map_err(|e| format!("smtp_url: {e}"))?;
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let tls = pairs
        .iter()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.as_str());
    match (url.scheme(), tls) {
        ("smtp", None) if url.password().is_some() || url.port() == Some(587) => {
            url.query_pairs_mut().append_pair("tls", "required");
        }
        ("smtp", Some("none")) => {
            url.set_query(None);
            for (k, v) in pairs.iter().filter(|(k, _)| k != "tls") {
                url.query_pairs_mut().append_pair(k, v);
            }
        }
        ("smtp" | "smtps", _) => {}
        (scheme, _) => {
            return Err(format!(
                "smtp_url: unknown scheme `{scheme}` (smtp:// or smtps://)"
            ));
        }
    }
    Ok(url.to_string())
}

pub struct EmailReporter {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Option<Mailbox>,
    /// The URL's password, as written and decoded, scrubbed from every error.
    password: Vec<String>,
}

#[async_trait]
impl Reporter for EmailReporter {
    fn kind(&self) -> &'static str {
        "email"
    }

    async fn report(&self, report: &Report) -> Result<Delivered, ReportError> {
        let handle = report
            .source
            .reply_handle
            .clone()
            .unwrap_or(serde_json::Value::Null);
        let field = |k: &str| handle[k].as_str().map(str::trim).filter(|s| !s.is_empty());
        let reply_to = field("reply_to")
            .ok_or_else(|| permanent(None, "the task's email source has no reply_to address"))?;
        let to_address: Address = reply_to
            .parse()
            .map_err(|e| permanent(None, format!("reply_to `{reply_to}`: {e}")))?;
        let to = Mailbox::new(field("from_name").map(str::to_owned), to_address);
        let from =
            match &self.from {
                Some(f) => f.clone(),
                None => {
                    let mailbox = report.source.container.as_deref().unwrap_or_default();
                    Mailbox::new(None, mailbox.trim().parse().map_err(|e| {
                    permanent(
                        None,
                        format!(
                            "no reports.email.from, and the task's mailbox `{mailbox}` is not \
                             an address: {e}"
                        ),
                    )
                })?)
                }
            };
        let message_id = new_message_id(&report.task_id, report.moment.as_str(), &from);
        let mut builder = Message::builder()
            .from(from)
            .to(to)
            .subject(reply_subject(field("subject"), &report.title))
            .message_id(Some(message_id.clone()))
            .header(AutoSubmitted)
            .header(ContentType::TEXT_PLAIN);
        if let Some(id) = field("message_id").and_then(bracketed) {
            builder = builder.in_reply_to(id.clone()).references(id);
        }
        let message = builder
            .body(report.text.clone())
            .map_err(|e| permanent(None, format!("building the reply: {e}")))?;
        match self.transport.send(message).await {
            Ok(response) => Ok(Delivered {
                status: code(&response.code()).unwrap_or(250),
                detail: message_id,
            }),
            Err(e) => Err(self.classify(&e)),
        }
    }
}

impl EmailReporter {
    fn classify(&self, e: &lettre::transport::smtp::Error) -> ReportError {
        let status = e.status().and_then(|c| code(&c));
        let message = scrub(format!("smtp: {e}"), &self.password);
        if e.is_permanent() || e.is_client() {
            ReportError::Permanent { status, message }
        } else {
            // 4xx, a refused or dropped connection, a timeout, a TLS failure, a garbled reply.
            ReportError::Retry {
                status,
                retry_after: None,
                message,
            }
        }
    }
}

/// `Re: <subject>`, without stacking a second `Re:`; the task's title when the message had no
/// subject.
pub fn reply_subject(original: Option<&str>, title: &str) -> String {
    let subject = original.unwrap_or(title).trim();
    let already = subject
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("re:"));
    if already {
        subject.to_owned()
    } else {
        format!("Re: {subject}")
    }
}

/// `<id>` for a message id stored without its brackets; `None` for one that would not make a
/// single well-formed header value.
fn bracketed(id: &str) -> Option<String> {
    let id = id.trim_start_matches('<').trim_end_matches('>');
    let clean = !id.is_empty()
        && id.len() <= 900
        && !id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>');
    clean.then(|| format!("<{id}>"))
}

/// `<hopper.{task}.{moment}.{nanos}@{sender's domain}>`.
fn new_message_id(task_id: &str, moment: &str, from: &Mailbox) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let task: String = task_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    format!("<hopper.{task}.{moment}.{nanos}@{}>", from.email.domain())
}

fn code(c: &lettre::transport::smtp::response::Code) -> Option<u16> {
    c.to_string().parse().ok()
}

fn scrub(message: String, password: &[String]) -> String {
    password
        .iter()
        .fold(message, |m, p| m.replace(p.as_str(), "[redacted]"))
}

fn permanent(status: Option<u16>, message: impl Into<String>) -> ReportError {
    ReportError::Permanent {
        status,
        message: message.into(),
    }
}

/// `Auto-Submitted: auto-replied` (RFC 3834): vacation responders and other robots do not
/// answer it, so Hopper and a robot cannot mail each other forever.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-replied".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_get_one_re() {
        assert_eq!(reply_subject(Some("Broken login"), "t"), "Re: Broken login");
        assert_eq!(
            reply_subject(Some("RE: Broken login"), "t"),
            "RE: Broken login"
        );
        assert_eq!(reply_subject(Some("re:x"), "t"), "re:x");
        assert_eq!(reply_subject(None, "Fix it"), "Re: Fix it");
        assert_eq!(reply_subject(Some("Ré"), "t"), "Re: Ré");
    }

    #[test]
    fn starttls_follows_the_url() {
        let t = |u: &str| transport_url(u).unwrap();
        assert_eq!(
            t("smtp://u:p@mx.example.com:587"),
            "smtp://u:p@mx.example.com:587?tls=required"
        );
        assert_eq!(
            t("smtp://mx.example.com:587"),
            "smtp://mx.example.com:587?tls=required"
        );
        assert_eq!(t("smtp://mx.example.com:25"), "smtp://mx.example.com:25");
        assert_eq!(
            t("smtp://u:p@127.0.0.1:2525?tls=none"),
            "smtp://u:p@127.0.0.1:2525"
        );
        assert_eq!(
            t("smtps://u:p@mx.example.com"),
            "smtps://u:p@mx.example.com"
        );
        let err = transport_url("http://u:secret@x").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn message_ids_are_bracketed_once_and_must_be_one_token() {
        assert_eq!(bracketed("abc@x").as_deref(), Some("<abc@x>"));
        assert_eq!(bracketed("<abc@x>").as_deref(), Some("<abc@x>"));
        assert_eq!(bracketed("a\r\nBcc: evil@x"), None);
        assert_eq!(bracketed(""), None);
    }
}

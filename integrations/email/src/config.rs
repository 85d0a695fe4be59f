use hopper_integration_api::Secret;
use hopper_integration_api::text::Mapping;
use serde::Deserialize;

/// `inbound.email` in the config. Every key has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Bearer token for `POST /webhooks/email`; else `HOPPER_EMAIL_TOKEN`.
    pub token: Option<Secret>,
    pub instance: Option<String>,
    pub max_message_bytes: usize,
    /// Only mail from these senders becomes a task (`alice@example.com`, `*@example.com`);
    /// empty allows everyone.
    pub allowed_senders: Vec<String>,
    /// The local part that receives tasks; `hopper+PROJECT@...` names a project.
    pub mailbox: String,
    /// Keep attachment contents on the task (base64, in `source.reply_handle.attachments`);
    /// by default only name, type and size are listed. The raw message is kept with the
    /// inbound event either way.
    pub store_attachments: bool,
    pub smtp: SmtpConfig,
    pub mapping: Mapping,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            token: None,
            instance: None,
            max_message_bytes: 10 * 1024 * 1024,
            allowed_senders: Vec::new(),
            mailbox: "hopper".into(),
            store_attachments: false,
            smtp: SmtpConfig::default(),
            mapping: Mapping {
                project_from_container: false,
                ..Mapping::default()
            },
        }
    }
}

/// The built-in SMTP listener (`inbound.email.smtp`). Off unless `bind` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// e.g. `127.0.0.1:2525`.
    pub bind: Option<String>,
    /// Recipient domains accepted at `RCPT TO`; anything else is refused (no open relay).
    pub domains: Vec<String>,
    /// Name in the greeting.
    pub hostname: String,
    /// Idle time allowed between commands.
    pub timeout_seconds: u64,
    /// Concurrent sessions.
    pub max_connections: usize,
    /// PEM certificate chain and private key: with both, `STARTTLS` is offered.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// Refuse mail until the client has switched to TLS.
    pub require_tls: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            bind: None,
            domains: Vec::new(),
            hostname: "hopper.localhost".into(),
            timeout_seconds: 300,
            max_connections: 64,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
        }
    }
}

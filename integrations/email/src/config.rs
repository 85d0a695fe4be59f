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
    /// Accept only mail the MTA in front has authenticated: an `Authentication-Results` header
    /// written by `authserv_id` with `dkim=pass` or `spf=pass` for the From domain (or a parent
    /// of it). Any other message is refused, whatever `allowed_senders` says.
    pub require_authenticated: bool,
    /// The authserv-id that MTA writes (usually its hostname). Headers naming another id are
    /// ignored: anyone can add them. Required with `require_authenticated`.
    pub authserv_id: Option<String>,
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
            require_authenticated: false,
            authserv_id: None,
            smtp: SmtpConfig::default(),
            mapping: Mapping {
                project_from_container: false,
                ..Mapping::default()
            },
        }
    }
}

impl EmailConfig {
    /// Combinations serde cannot refuse; the error starts with the key, as start-up reports it.
    pub fn validate(&self) -> Result<(), String> {
        if self.require_authenticated && self.authserv_id().is_none() {
            return Err(
                "authserv_id: required when require_authenticated is true (the name \
                 your MTA writes first in Authentication-Results, e.g. mx.example.com)"
                    .into(),
            );
        }
        Ok(())
    }

    /// `authserv_id`, treating blank as unset (an unset `${VAR:-}` expands to "").
    pub fn authserv_id(&self) -> Option<&str> {
        self.authserv_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
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
    /// Idle time allowed between commands once a transaction (`MAIL FROM`) has started.
    pub timeout_seconds: u64,
    /// Time a client has to start a transaction after connecting (or after the previous one
    /// ended), however busy it keeps itself with `NOOP`s, so idle sessions cannot hold slots.
    pub greeting_timeout_secs: u64,
    /// Concurrent sessions.
    pub max_connections: usize,
    /// Concurrent sessions from one address (an IPv6 peer counts by its /64), so one sender
    /// cannot take every slot. Behind a relay MTA every session comes from its address: raise
    /// this to `max_connections` there.
    pub max_connections_per_peer: usize,
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
            greeting_timeout_secs: 30,
            max_connections: 64,
            max_connections_per_peer: 8,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
        }
    }
}

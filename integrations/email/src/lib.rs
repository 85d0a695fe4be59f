//! Email as tasks. Three doors onto one parser ([`parse::interpret`], built on mail-parser):
//! the SMTP listener ([`smtp`]), `POST /webhooks/email` with a raw RFC 5322 message (bearer
//! token: the message has no signature of its own), and `hopper mailgate`, which posts a
//! message read on stdin to that endpoint.

mod config;
pub mod parse;
mod policy;
pub mod smtp;

use hopper_integration_api::{
    BuildResult, InboundError, InboundHeaders, InboundRequest, InboundSource, Interpretation,
    Plugin, Secret, SourceSettings, Verified,
};

pub use config::{EmailConfig, SmtpConfig};

pub fn plugin() -> Plugin {
    Plugin {
        name: "email",
        build,
    }
}

fn build(settings: &SourceSettings<'_>) -> BuildResult {
    Ok(vec![Box::new(EmailSource::from_settings(settings)?)])
}

/// The email source: the HTTP door's token check plus the shared parser.
pub struct EmailSource {
    pub config: EmailConfig,
    token: Option<Secret>,
}

impl EmailSource {
    pub fn new(config: EmailConfig, token: Option<Secret>) -> Self {
        Self { config, token }
    }

    /// From the `inbound.email` section (the SMTP listener builds its own copy this way).
    pub fn from_settings(settings: &SourceSettings<'_>) -> Result<Self, String> {
        let config: EmailConfig = settings.parse()?;
        config.validate()?;
        let token = settings.secret(config.token.clone(), "HOPPER_EMAIL_TOKEN");
        Ok(Self::new(config, token))
    }

    /// Interprets a raw message that arrived by SMTP (the listener already applied its
    /// recipient policy) with its envelope; see [`parse::interpret_smtp`].
    pub fn interpret_smtp(
        &self,
        raw: &[u8],
        envelope: &smtp::Envelope,
    ) -> Result<Interpretation, InboundError> {
        parse::interpret_smtp(&self.config, raw, envelope)
    }
}

impl InboundSource for EmailSource {
    fn kind(&self) -> &str {
        "email"
    }

    fn path(&self) -> &str {
        "email"
    }

    fn max_body_bytes(&self) -> usize {
        self.config.max_message_bytes
    }

    fn instance(&self) -> Option<&str> {
        self.config.instance.as_deref()
    }

    /// The bearer token is all there is to check, and it is in a header: a request without
    /// it is turned away before a byte of its (up to `max_message_bytes`) message is read.
    fn precheck(&self, headers: InboundHeaders<'_>) -> Result<(), InboundError> {
        let token = self.token.as_ref().ok_or(InboundError::NotConfigured)?;
        let presented = headers
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(InboundError::Unauthorized)?;
        if token.matches(presented.trim()) {
            Ok(())
        } else {
            Err(InboundError::Unauthorized)
        }
    }

    fn verify<'a>(
        &self,
        request: InboundRequest<'a>,
    ) -> Result<Verified<InboundRequest<'a>>, InboundError> {
        let token = self.token.as_ref().ok_or(InboundError::NotConfigured)?;
        let presented = request
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(InboundError::Unauthorized)?;
        if token.matches(presented.trim()) {
            Ok(Verified::vouch(request))
        } else {
            Err(InboundError::Unauthorized)
        }
    }

    fn interpret(
        &self,
        request: &Verified<InboundRequest<'_>>,
    ) -> Result<Interpretation, InboundError> {
        let request = request.get();
        request.require_media_type(&[
            "message/rfc822",
            "application/octet-stream",
            "text/plain",
        ])?;
        // Hosted inbound-mail services and MTAs pass the envelope recipient along.
        let rcpt: Vec<String> = ["x-original-to", "delivered-to", "x-envelope-to"]
            .iter()
            .filter_map(|h| request.header(h))
            .map(str::to_owned)
            .collect();
        parse::interpret(&self.config, request.body, &rcpt)
    }
}

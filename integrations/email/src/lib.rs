//! Email as tasks. Three doors onto one parser ([`parse::interpret`], built on mail-parser):
//! the SMTP listener ([`smtp`]), `POST /webhooks/email` with a raw RFC 5322 message (bearer
//! token: the message has no signature of its own), and `hopper mailgate`, which posts a
//! message read on stdin to that endpoint.

mod config;
pub mod parse;
mod policy;
pub mod report;
pub mod smtp;

use hopper_integration_api::{
    BuildResult, InboundError, InboundHeaders, InboundRequest, InboundSource, Interpretation,
    Plugin, Secret, SourceSettings, StoredRequest, Verified,
};

pub use config::{EmailConfig, SmtpConfig};

pub fn plugin() -> Plugin {
    Plugin {
        name: "email",
        build,
        reporter: Some(report::reporter),
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

    /// A stored message, from either door. Neither door's credential is stored (the HTTP
    /// door's bearer token; the SMTP listener checked its recipient domains on arrival), so
    /// the stored record stands for them. The message is parsed again under today's
    /// allowlist and mapping; a sender no longer allowed makes an ignored event, as at the
    /// HTTP door, not a refusal as over SMTP: a replay has no sender to refuse.
    fn reinterpret(&self, stored: StoredRequest<'_>) -> Result<Interpretation, InboundError> {
        stored.recorded_by(self.kind(), &[self.path(), smtp::ENDPOINT])?;
        if stored.endpoint == smtp::ENDPOINT {
            // An SMTP message has no content type; its envelope recipients may name the
            // project (`hopper+web@...`) as they did on arrival.
            let envelope = smtp::Envelope::from_stored(stored.request.headers);
            return parse::interpret(&self.config, stored.request.body, &envelope.recipients);
        }
        self.interpret(&Verified::vouch(stored.request))
    }
}

#[cfg(test)]
mod tests {
    use hopper_integration_api::Action;

    use super::*;

    const RAW: &[u8] = b"From: Ana <ana@example.com>\r\nTo: hopper@tasks.example.com\r\n\
        Subject: Printer jammed\r\nMessage-ID: <p1@example.com>\r\n\r\nIt eats every page.\r\n";

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn stored<'a>(
        source: &'a str,
        endpoint: &'a str,
        headers: &'a [(String, String)],
    ) -> StoredRequest<'a> {
        StoredRequest {
            event_id: "evt_1",
            source,
            endpoint,
            received_at: 0,
            request: InboundRequest { headers, body: RAW },
        }
    }

    #[test]
    fn a_stored_message_is_read_again_from_either_door_without_a_token() {
        let source = EmailSource::new(EmailConfig::default(), Some(Secret::new("t")));
        let http = pairs(&[("content-type", "message/rfc822")]);
        // The HTTP door's token is never stored: `verify` would refuse the stored request.
        let request = InboundRequest {
            headers: &http,
            body: RAW,
        };
        assert!(matches!(
            source.verify(request),
            Err(InboundError::Unauthorized)
        ));
        let again = source.reinterpret(stored("email", "email", &http)).unwrap();
        assert!(matches!(again.action, Action::Task(_)));

        // An SMTP message: the envelope as stored, one pair per recipient.
        let envelope = smtp::Envelope {
            mail_from: "ana@example.com".into(),
            recipients: vec!["hopper+web@tasks.example.com".into()],
        };
        let json = envelope.stored_headers();
        assert_eq!(json["smtp-rcpt-to"][0], "hopper+web@tasks.example.com");
        let smtp_pairs = pairs(&[
            ("smtp-mail-from", "ana@example.com"),
            ("smtp-rcpt-to", "hopper+web@tasks.example.com"),
        ]);
        let back = smtp::Envelope::from_stored(&smtp_pairs);
        assert_eq!(
            (back.mail_from, back.recipients),
            (envelope.mail_from, envelope.recipients)
        );
        let again = source.reinterpret(stored("email", "smtp", &smtp_pairs));
        let Ok(Interpretation {
            action: Action::Task(draft),
            ..
        }) = again
        else {
            panic!("not a task: {again:?}");
        };
        assert_eq!(
            draft.project.as_deref(),
            Some("web"),
            "the envelope names it"
        );

        // Another source's event, or another door's, is not the email source's to read.
        for (kind, door) in [("github", "github"), ("email", "slack/events")] {
            assert!(matches!(
                source.reinterpret(stored(kind, door, &http)),
                Err(InboundError::Refused(_))
            ));
        }
    }
}

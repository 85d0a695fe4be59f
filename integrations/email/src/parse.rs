//! One parser for every door. Real-world mail is messy (odd charsets, nested multiparts,
//! missing headers): mail-parser decodes what it can and nothing here assumes a header exists.

use hopper_integration_api::text::{clip, title};
use hopper_integration_api::{InboundError, Interpretation, SourceRef, TaskDraft};
use mail_parser::{Message, MessageParser, MimeHeaders};
use serde_json::json;

use crate::smtp::Envelope;
use crate::{EmailConfig, policy};

/// Whether `sender` matches an allowlist entry (`user@host` or `*@host`).
pub fn sender_allowed(allowed: &[String], sender: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let sender = sender.to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        match a.strip_prefix("*@") {
            Some(domain) => sender.rsplit_once('@').is_some_and(|(_, d)| d == domain),
            None => a == sender,
        }
    })
}

/// The project named by a plus address (`hopper+web@example.com` -> `web`).
pub fn plus_project(mailbox: &str, address: &str) -> Option<String> {
    let (local, _) = address.rsplit_once('@')?;
    let (base, tag) = local.split_once('+')?;
    (base.eq_ignore_ascii_case(mailbox) && !tag.is_empty()).then(|| tag.to_ascii_lowercase())
}

fn angle_trim(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

/// A message from the HTTP door: a sender turned away by policy is recorded as ignored, with
/// the reason (the caller holds the token, so it can see why in `hopper events`).
pub fn interpret(
    config: &EmailConfig,
    raw: &[u8],
    envelope_rcpt: &[String],
) -> Result<Interpretation, InboundError> {
    let msg = parse(raw)?;
    let sender = from_address(&msg);
    if let Err(reason) = policy::admit(config, &msg, &sender, None) {
        let message_id = msg.message_id().map(angle_trim);
        return Ok(Interpretation::ignored(message_id, "email", reason));
    }
    Ok(to_task(config, &msg, sender, envelope_rcpt))
}

/// A message that came over SMTP: the envelope sender must pass the allowlist as well as the
/// From header, and a refusal is [`InboundError::Refused`], which the listener answers with
/// `550 5.7.1` so the sender learns of it (nothing is stored: unauthenticated strangers could
/// otherwise fill the event log).
pub fn interpret_smtp(
    config: &EmailConfig,
    raw: &[u8],
    envelope: &Envelope,
) -> Result<Interpretation, InboundError> {
    let msg = parse(raw)?;
    let sender = from_address(&msg);
    policy::admit(config, &msg, &sender, Some(&envelope.mail_from))
        .map_err(InboundError::Refused)?;
    Ok(to_task(config, &msg, sender, &envelope.recipients))
}

fn parse(raw: &[u8]) -> Result<Message<'_>, InboundError> {
    MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| InboundError::Malformed("not an RFC 5322 message".into()))
}

/// The first From address, or "" when there is none.
pub(crate) fn from_address(msg: &Message<'_>) -> String {
    msg.from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned()
}

fn to_task(
    config: &EmailConfig,
    msg: &Message<'_>,
    sender: String,
    envelope_rcpt: &[String],
) -> Interpretation {
    let message_id = msg.message_id().map(angle_trim);
    let from = msg.from().and_then(|a| a.first());
    let recipients: Vec<String> = envelope_rcpt
        .iter()
        .cloned()
        .chain(
            msg.to()
                .into_iter()
                .flat_map(|a| a.iter())
                .filter_map(|a| a.address().map(str::to_owned)),
        )
        .collect();
    let project = recipients
        .iter()
        .find_map(|r| plus_project(&config.mailbox, r));
    let subject = msg.subject().map(str::trim).unwrap_or_default();
    let body = msg.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
    let attachments: Vec<serde_json::Value> = msg
        .attachments()
        .map(|a| {
            let ctype = a
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")))
                .unwrap_or_else(|| "application/octet-stream".into());
            let mut entry = json!({
                "name": a.attachment_name().unwrap_or("unnamed"),
                "type": ctype,
                "size": a.contents().len(),
            });
            if config.store_attachments {
                use base64::Engine as _;
                entry["content_base64"] = base64::engine::general_purpose::STANDARD
                    .encode(a.contents())
                    .into();
            }
            entry
        })
        .collect();
    let mut description = clip(body.trim(), 64 * 1024);
    if !attachments.is_empty() {
        description.push_str("\n\nAttachments:");
        for a in &attachments {
            description.push_str(&format!(
                "\n- {} ({}, {} bytes)",
                a["name"].as_str().unwrap_or(""),
                a["type"].as_str().unwrap_or(""),
                a["size"]
            ));
        }
    }
    let t = if subject.is_empty() {
        title(&body)
    } else {
        clip(subject, 200)
    };
    let mut d = TaskDraft::new(if t.is_empty() {
        "(no subject)".into()
    } else {
        t
    });
    d.description = description;
    d.tags = vec!["email".into()];
    d.project = project;
    d.requester = Some(sender.clone()).filter(|s| !s.is_empty());
    let in_reply_to = msg.in_reply_to().as_text().map(angle_trim);
    d.source = Some(SourceRef {
        kind: "email".into(),
        container: recipients.first().cloned(),
        external_id: message_id.clone(),
        url: None,
        reply_handle: Some(json!({
            "reply_to": sender,
            "from_name": from.and_then(|a| a.name()),
            "message_id": message_id,
            "subject": subject,
            "attachments": attachments,
        })),
    });
    let labels: Vec<String> = Vec::new();
    config.mapping.apply(&mut d, None, &labels);
    Interpretation::task(message_id, "email", d).replying_to(in_reply_to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_contents_only_when_configured() {
        let raw = b"From: a@x.io\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=a.csv\r\n\r\nx,y\r\n--b--\r\n";
        let listed = |config: &EmailConfig| match interpret(config, raw, &[]).unwrap().action {
            hopper_integration_api::Action::Task(d) => {
                d.source.unwrap().reply_handle.unwrap()["attachments"][0].clone()
            }
            other => panic!("{other:?}"),
        };
        let plain = listed(&EmailConfig::default());
        assert_eq!(plain["name"], "a.csv");
        assert!(plain.get("content_base64").is_none());
        let kept = listed(&EmailConfig {
            store_attachments: true,
            ..EmailConfig::default()
        });
        assert_eq!(kept["content_base64"], "eCx5");
    }

    #[test]
    fn allowlist_and_plus_addresses() {
        let allowed = vec!["*@example.com".to_owned(), "bob@other.org".to_owned()];
        assert!(sender_allowed(&allowed, "Alice@Example.com"));
        assert!(sender_allowed(&allowed, "bob@other.org"));
        assert!(!sender_allowed(&allowed, "eve@evil.example.com"));
        assert!(sender_allowed(&[], "anyone@anywhere"));
        assert_eq!(
            plus_project("hopper", "hopper+Web@x.io").as_deref(),
            Some("web")
        );
        assert_eq!(plus_project("hopper", "other+web@x.io"), None);
        assert_eq!(plus_project("hopper", "hopper@x.io"), None);
    }

    #[test]
    fn garbage_is_malformed_or_a_titled_task_never_a_panic() {
        let c = EmailConfig::default();
        assert!(matches!(
            interpret(&c, b"", &[]),
            Err(InboundError::Malformed(_))
        ));
        for raw in [
            &b"\xff\xfe\x00"[..],
            b"no headers here",
            b"Subject:\r\n\r\n",
            b"From: <>\r\n",
        ] {
            match interpret(&c, raw, &[]) {
                Err(InboundError::Malformed(_)) => {}
                Ok(i) => match i.action {
                    hopper_integration_api::Action::Task(d) => assert!(!d.title.is_empty()),
                    other => panic!("unexpected {other:?}"),
                },
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
}

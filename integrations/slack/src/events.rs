use std::sync::Arc;

use hopper_integration_api::text::{clip, title};
use hopper_integration_api::{
    Action, InboundError, InboundRequest, InboundSource, Interpretation, SourceRef, StoredRequest,
    TaskDraft, Verified,
};
use serde_json::{Value, json};

use crate::{Shared, plain};

pub(crate) struct SlackEvents(pub Arc<Shared>);

impl InboundSource for SlackEvents {
    fn kind(&self) -> &str {
        "slack"
    }

    fn path(&self) -> &str {
        "slack/events"
    }

    fn max_body_bytes(&self) -> usize {
        self.0.config.max_body_bytes
    }

    fn instance(&self) -> Option<&str> {
        self.0.config.instance.as_deref()
    }

    fn verify<'a>(
        &self,
        request: InboundRequest<'a>,
    ) -> Result<Verified<InboundRequest<'a>>, InboundError> {
        self.0.verify(request)
    }

    fn interpret(
        &self,
        request: &Verified<InboundRequest<'_>>,
    ) -> Result<Interpretation, InboundError> {
        let request = request.get();
        request.require_media_type(&["application/json"])?;
        let v: Value = serde_json::from_slice(request.body)
            .map_err(|e| InboundError::Malformed(format!("invalid JSON: {e}")))?;
        let kind = v["type"].as_str().unwrap_or_default();
        if kind == "url_verification" {
            let challenge = v["challenge"].as_str().ok_or_else(|| {
                InboundError::Malformed("url_verification without challenge".into())
            })?;
            return Ok(Interpretation::new(
                None,
                "url_verification",
                Action::Reply {
                    body: json!({ "challenge": challenge }),
                },
            ));
        }
        if kind != "event_callback" {
            return Err(InboundError::Malformed(format!(
                "unknown envelope type `{kind}`"
            )));
        }
        // Slack retries with the same event_id (X-Slack-Retry-Num counts the attempts).
        let delivery = v["event_id"].as_str().map(str::to_owned);
        let event = &v["event"];
        let event_type = event["type"].as_str().unwrap_or("unknown").to_owned();
        let channel = event["channel"].as_str().unwrap_or_default();
        let from_bot = event.get("bot_id").is_some() || event.get("subtype").is_some();
        let wanted = match event_type.as_str() {
            "app_mention" => !from_bot,
            "message" => !from_bot && self.0.config.channels.iter().any(|c| c == channel),
            _ => false,
        };
        if !wanted {
            let reason = format!("`{event_type}` in `{channel}` is not configured to create tasks");
            return Ok(Interpretation::ignored(delivery, event_type, reason));
        }
        let text = plain(event["text"].as_str().unwrap_or_default());
        let mut d = TaskDraft::new(if text.is_empty() {
            "Slack request".into()
        } else {
            title(&text)
        });
        d.description = clip(&text, 64 * 1024);
        d.tags = vec!["slack".into(), event_type.replace('_', "-")];
        d.requester = event["user"].as_str().map(str::to_owned);
        let ts = event["ts"].as_str();
        d.source = Some(SourceRef {
            kind: "slack".into(),
            container: Some(channel.to_owned()),
            external_id: ts.map(|t| format!("{channel}/{t}")),
            url: None,
            reply_handle: Some(json!({
                "team": v["team_id"],
                "channel": channel,
                "thread_ts": event["thread_ts"].as_str().or(ts),
            })),
        });
        self.0.config.mapping.apply(&mut d, Some(channel), &[]);
        Ok(Interpretation::task(delivery, event_type, d))
    }

    /// See [`Shared::stored`].
    fn reinterpret(&self, stored: StoredRequest<'_>) -> Result<Interpretation, InboundError> {
        let request = self.0.stored(self.kind(), self.path(), stored)?;
        self.interpret(&request)
    }
}

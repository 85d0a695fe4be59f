use std::collections::HashMap;
use std::sync::Arc;

use hopper_integration_api::text::clip;
use hopper_integration_api::{
    Action, InboundError, InboundRequest, InboundSource, Interpretation, Priority, Receipt,
    SourceRef, StoredRequest, TaskDraft, Verified,
};
use serde_json::{Value, json};

use crate::Shared;

pub(crate) struct SlackCommands(pub Arc<Shared>);

const USAGE: &str =
    "Usage: `/hopper add <title> [--project p] [--priority low|normal|high|urgent]`";

fn ephemeral(text: impl Into<String>) -> Value {
    json!({ "response_type": "ephemeral", "text": text.into() })
}

/// `add Fix the login page --project web --priority high`.
fn parse_add(text: &str) -> Result<TaskDraft, String> {
    let rest = text
        .trim()
        .strip_prefix("add")
        .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace))
        .ok_or_else(|| USAGE.to_owned())?;
    let mut words = Vec::new();
    let mut project = None;
    let mut priority = Priority::Normal;
    let mut it = rest.split_whitespace();
    while let Some(w) = it.next() {
        match w {
            "--project" => project = Some(it.next().ok_or("--project needs a value")?.to_owned()),
            "--priority" => {
                priority = it.next().ok_or("--priority needs a value")?.parse()?;
            }
            _ => words.push(w),
        }
    }
    let title = words.join(" ");
    if title.is_empty() {
        return Err(USAGE.into());
    }
    let mut d = TaskDraft::new(clip(&title, 200));
    d.project = project;
    d.priority = priority;
    Ok(d)
}

impl InboundSource for SlackCommands {
    fn kind(&self) -> &str {
        "slack"
    }

    fn path(&self) -> &str {
        "slack/commands"
    }

    fn max_body_bytes(&self) -> usize {
        64 * 1024
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
        request.require_media_type(&["application/x-www-form-urlencoded"])?;
        let form: HashMap<String, String> = serde_urlencoded::from_bytes(request.body)
            .map_err(|e| InboundError::Malformed(format!("form body: {e}")))?;
        let field = |k: &str| form.get(k).cloned().unwrap_or_default();
        let command = field("command");
        if command != self.0.config.command {
            return Ok(reply(format!("Hopper does not handle `{command}`.")));
        }
        let mut draft = match parse_add(&field("text")) {
            Ok(d) => d,
            Err(usage) => return Ok(reply(usage)),
        };
        let channel = field("channel_id");
        draft.tags = vec!["slack".into(), "slash-command".into()];
        draft.requester = Some(field("user_name")).filter(|u| !u.is_empty());
        draft.source = Some(SourceRef {
            kind: "slack".into(),
            container: Some(channel.clone()),
            external_id: None,
            url: None,
            reply_handle: Some(json!({
                "team": field("team_id"),
                "channel": channel,
                "user": field("user_id"),
                "response_url": field("response_url"),
            })),
        });
        self.0.config.mapping.apply(&mut draft, Some(&channel), &[]);
        // trigger_id is unique per invocation: a retried request is the same command.
        let delivery = form.get("trigger_id").cloned();
        Ok(Interpretation::task(
            delivery,
            format!("command.{command}"),
            draft,
        ))
    }

    fn acknowledge(&self, receipt: &Receipt) -> Option<Value> {
        let id = receipt.task_id.as_deref().unwrap_or("?");
        Some(match receipt.status {
            "duplicate" => ephemeral(format!("Already added as `{id}`.")),
            "ignored" => ephemeral("Nothing was added."),
            _ => ephemeral(format!(
                "Added `{id}`: {}",
                receipt.title.as_deref().unwrap_or_default()
            )),
        })
    }

    /// See [`Shared::stored`].
    fn reinterpret(&self, stored: StoredRequest<'_>) -> Result<Interpretation, InboundError> {
        let request = self.0.stored(self.kind(), self.path(), stored)?;
        self.interpret(&request)
    }
}

fn reply(text: String) -> Interpretation {
    Interpretation::new(
        None,
        "command",
        Action::Reply {
            body: ephemeral(text),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_parses_title_and_flags() {
        let d = parse_add("add Fix the login page --project web --priority high").unwrap();
        assert_eq!(d.title, "Fix the login page");
        assert_eq!(d.project.as_deref(), Some("web"));
        assert_eq!(d.priority, Priority::High);
        assert!(parse_add("remove x").is_err());
        assert!(parse_add("add --priority nope x").is_err());
        assert!(parse_add("add").is_err());
    }
}

//! Slack: the Events API (`POST /webhooks/slack/events`) and slash commands
//! (`POST /webhooks/slack/commands`).
//!
//! Both are verified the same way: `X-Slack-Signature` is `v0=` + hex HMAC-SHA256 of
//! `v0:{X-Slack-Request-Timestamp}:{body}` with the app's signing secret, and the timestamp
//! must be within five minutes (a captured request cannot be replayed later).

mod command;
mod events;
pub mod report;

use std::sync::Arc;
use std::time::Duration;

use hopper_integration_api::text::Mapping;
use hopper_integration_api::{
    BuildResult, InboundError, InboundRequest, Plugin, Secret, SourceSettings, StoredRequest,
    Verified, verify,
};
use serde::Deserialize;

pub fn plugin() -> Plugin {
    Plugin {
        name: "slack",
        build,
        reporter: Some(report::reporter),
    }
}

/// `inbound.slack` in the config. Every key has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// The app's signing secret; else `HOPPER_SLACK_SIGNING_SECRET`.
    pub signing_secret: Option<Secret>,
    pub instance: Option<String>,
    pub max_body_bytes: usize,
    /// Replay window for `X-Slack-Request-Timestamp`.
    pub tolerance_seconds: u64,
    /// Channels (ids) whose plain messages become tasks; mentions of the app always do.
    pub channels: Vec<String>,
    /// The slash command Hopper answers (`/hopper add ...`).
    pub command: String,
    pub mapping: Mapping,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            signing_secret: None,
            instance: None,
            max_body_bytes: 1024 * 1024,
            tolerance_seconds: 300,
            channels: Vec::new(),
            command: "/hopper".into(),
            mapping: Mapping {
                project_from_container: false,
                ..Mapping::default()
            },
        }
    }
}

fn build(settings: &SourceSettings<'_>) -> BuildResult {
    let config: SlackConfig = settings.parse()?;
    let secret = settings.secret(config.signing_secret.clone(), "HOPPER_SLACK_SIGNING_SECRET");
    let shared = Arc::new(Shared { config, secret });
    Ok(vec![
        Box::new(events::SlackEvents(shared.clone())),
        Box::new(command::SlackCommands(shared)),
    ])
}

pub(crate) struct Shared {
    pub config: SlackConfig,
    secret: Option<Secret>,
}

impl Shared {
    pub fn verify<'a>(
        &self,
        request: InboundRequest<'a>,
    ) -> Result<Verified<InboundRequest<'a>>, InboundError> {
        let secret = self.secret.as_ref().ok_or(InboundError::NotConfigured)?;
        let ts = request
            .header("x-slack-request-timestamp")
            .ok_or(InboundError::Unauthorized)?;
        let sig = request
            .header("x-slack-signature")
            .and_then(|s| s.trim().strip_prefix("v0="))
            .ok_or(InboundError::Unauthorized)?;
        if !verify::fresh(ts, Duration::from_secs(self.config.tolerance_seconds)) {
            return Err(InboundError::Unauthorized);
        }
        let base = [b"v0:".as_slice(), ts.trim().as_bytes(), b":", request.body];
        if verify::hmac_sha256_hex(secret, &base, sig) {
            Ok(Verified::vouch(request))
        } else {
            Err(InboundError::Unauthorized)
        }
    }

    /// A stored event of the endpoint `kind` at `path`, for a replay. `X-Slack-Signature` is
    /// never stored, so it cannot be checked again: the stored record stands for it. The
    /// timestamp is kept, but its window guards a delivery against being replayed by someone
    /// else; an operator's replay comes long after it closed, so it is not checked.
    pub fn stored<'a>(
        &self,
        kind: &str,
        path: &str,
        stored: StoredRequest<'a>,
    ) -> Result<Verified<InboundRequest<'a>>, InboundError> {
        stored.recorded_by(kind, &[path])?;
        Ok(Verified::vouch(stored.request))
    }
}

/// Slack's `<@U123>` mentions and `<url|label>` links, made readable.
pub(crate) fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            out.push_str(&rest[start..]);
            return out.trim().to_owned();
        };
        let inner = &rest[start + 1..start + end];
        if !inner.starts_with('@') {
            out.push_str(inner.rsplit('|').next().unwrap_or(inner));
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_drops_mentions_and_keeps_link_labels() {
        assert_eq!(
            super::plain("<@U0LAN0Z89> please fix <https://x.io|the login> page"),
            "please fix the login page"
        );
    }
}

//! Generic HTTP sources: `POST /webhooks/http/{name}`, one per entry under `inbound.http`.
//!
//! Any sender that signs the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature` with a `whsec_` secret; Svix, Convoy and many SaaS products do) can
//! create tasks. JSON pointers pick the title, description, tags, priority and project out of
//! the payload.

use std::collections::BTreeMap;
use std::time::Duration;

use hopper_integration_api::text::{Mapping, clip, tag, title};
use hopper_integration_api::verify::StandardWebhook;
use hopper_integration_api::{
    BuildResult, InboundError, InboundRequest, InboundSource, Interpretation, Plugin, Secret,
    SourceRef, SourceSettings, StoredRequest, TaskDraft, Verified,
};
use serde::Deserialize;
use serde_json::Value;

pub fn plugin() -> Plugin {
    Plugin {
        name: "http",
        build,
        reporter: None,
    }
}

/// One generic source (`inbound.http.<name>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSourceConfig {
    /// The `whsec_` signing secret. Required: Hopper accepts no unsigned webhooks.
    pub secret: Option<Secret>,
    pub instance: Option<String>,
    pub max_body_bytes: usize,
    pub tolerance_seconds: u64,
    /// JSON pointer to the title (required in the payload).
    pub title: String,
    pub description: Option<String>,
    /// JSON pointer to a string or an array of strings.
    pub tags: Option<String>,
    pub priority: Option<String>,
    pub project: Option<String>,
    /// JSON pointer to the sender's own id for the thing (kept as `source.external_id`).
    pub external_id: Option<String>,
    pub url: Option<String>,
    pub mapping: Mapping,
}

impl Default for HttpSourceConfig {
    fn default() -> Self {
        Self {
            secret: None,
            instance: None,
            max_body_bytes: 1024 * 1024,
            tolerance_seconds: 300,
            title: "/title".into(),
            description: Some("/description".into()),
            tags: Some("/tags".into()),
            priority: Some("/priority".into()),
            project: Some("/project".into()),
            external_id: Some("/id".into()),
            url: Some("/url".into()),
            mapping: Mapping {
                project_from_container: false,
                ..Mapping::default()
            },
        }
    }
}

fn build(settings: &SourceSettings<'_>) -> BuildResult {
    let all: BTreeMap<String, HttpSourceConfig> = settings.parse()?;
    let mut out: Vec<Box<dyn InboundSource>> = Vec::new();
    for (name, config) in all {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "{name}: source names are letters, digits, `-` and `_`"
            ));
        }
        let secret = config
            .secret
            .clone()
            .filter(|s| !s.expose().trim().is_empty());
        if let Some(s) = &secret
            && StandardWebhook::sign(s, "probe", "0", b"").is_empty()
        {
            return Err(format!("{name}.secret: not a base64 `whsec_` secret"));
        }
        out.push(Box::new(HttpSource {
            path: format!("http/{name}"),
            kind: format!("http:{name}"),
            secret,
            config,
        }));
    }
    Ok(out)
}

pub struct HttpSource {
    path: String,
    kind: String,
    secret: Option<Secret>,
    config: HttpSourceConfig,
}

fn text_at(v: &Value, pointer: Option<&String>) -> Option<String> {
    match v.pointer(pointer?)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl InboundSource for HttpSource {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    fn instance(&self) -> Option<&str> {
        self.config.instance.as_deref()
    }

    fn verify<'a>(
        &self,
        request: InboundRequest<'a>,
    ) -> Result<Verified<InboundRequest<'a>>, InboundError> {
        let secret = self.secret.as_ref().ok_or(InboundError::NotConfigured)?;
        let header = |h| request.header(h).ok_or(InboundError::Unauthorized);
        let hook = StandardWebhook {
            id: header("webhook-id")?,
            timestamp: header("webhook-timestamp")?,
            signatures: header("webhook-signature")?,
        };
        hook.verify(
            secret,
            request.body,
            Duration::from_secs(self.config.tolerance_seconds),
        )?;
        Ok(Verified::vouch(request))
    }

    fn interpret(
        &self,
        request: &Verified<InboundRequest<'_>>,
    ) -> Result<Interpretation, InboundError> {
        let request = request.get();
        request.require_media_type(&["application/json"])?;
        let v: Value = serde_json::from_slice(request.body)
            .map_err(|e| InboundError::Malformed(format!("invalid JSON: {e}")))?;
        let delivery = request.header("webhook-id").map(str::to_owned);
        let c = &self.config;
        let Some(t) = text_at(&v, Some(&c.title))
            .map(|t| title(&t))
            .filter(|t| !t.is_empty())
        else {
            return Err(InboundError::Malformed(format!(
                "no title at `{}` in the payload",
                c.title
            )));
        };
        let mut d = TaskDraft::new(t);
        d.description = clip(
            &text_at(&v, c.description.as_ref()).unwrap_or_default(),
            64 * 1024,
        );
        let labels: Vec<String> = match c.tags.as_ref().and_then(|p| v.pointer(p)) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str())
                .filter_map(tag)
                .collect(),
            Some(Value::String(s)) => s.split(',').filter_map(tag).collect(),
            _ => Vec::new(),
        };
        if let Some(p) = text_at(&v, c.priority.as_ref()) {
            d.priority = p.parse().map_err(InboundError::Malformed)?;
        }
        d.project = text_at(&v, c.project.as_ref());
        d.tags = vec!["http".into()];
        d.source = Some(SourceRef {
            kind: self.kind.clone(),
            container: None,
            external_id: text_at(&v, c.external_id.as_ref()),
            url: text_at(&v, c.url.as_ref()),
            reply_handle: None,
        });
        c.mapping.apply(&mut d, None, &labels);
        Ok(Interpretation::task(delivery, "webhook", d))
    }

    /// `webhook-signature` is never stored, so it cannot be checked again: the stored record
    /// stands for it. `webhook-timestamp` is kept, but its window (`tolerance_seconds`) was
    /// for the delivery, not for a replay, so it is not checked. The payload must still be
    /// JSON with a title where today's settings look for one.
    fn reinterpret(&self, stored: StoredRequest<'_>) -> Result<Interpretation, InboundError> {
        stored.recorded_by(self.kind(), &[self.path()])?;
        self.interpret(&Verified::vouch(stored.request))
    }
}

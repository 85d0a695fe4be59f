//! GitLab webhooks: `POST /webhooks/gitlab`.
//!
//! Verified with the `X-Gitlab-Token` secret token (constant-time) and, when a signing secret
//! is configured, GitLab's Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`, a `whsec_` key). Every check that is configured must pass.

pub mod report;

use std::time::Duration;

use hopper_integration_api::sync::{self, IssueState};
use hopper_integration_api::text::{Mapping, clip, command, title};
use hopper_integration_api::verify::{StandardWebhook, fresh};
use hopper_integration_api::{
    BuildResult, InboundError, InboundHeaders, InboundRequest, InboundSource, Interpretation,
    Plugin, Priority, Secret, SourceRef, SourceSettings, StoredRequest, TaskDraft, Verified,
};
use serde::Deserialize;
use serde_json::{Value, json};

pub use report::{GitlabReportConfig, GitlabReporter};

/// How far a signed delivery's `webhook-timestamp` may be from now (Standard Webhooks
/// suggests 5 minutes).
const TOLERANCE: Duration = Duration::from_secs(300);

pub fn plugin() -> Plugin {
    Plugin {
        name: "gitlab",
        build,
        reporter: Some(report::reporter),
    }
}

/// `inbound.gitlab` in the config. Every key has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitlabConfig {
    /// The hook's secret token; else `HOPPER_GITLAB_WEBHOOK_TOKEN`.
    pub token: Option<Secret>,
    /// A `whsec_` signing secret; else `HOPPER_GITLAB_SIGNING_SECRET`.
    pub signing_secret: Option<Secret>,
    pub instance: Option<String>,
    pub max_body_bytes: usize,
    /// Issue hook actions that create a task.
    pub issue_actions: Vec<String>,
    /// Merge request hook actions that create a task.
    pub merge_request_actions: Vec<String>,
    /// A note starting with this creates a task.
    pub command: String,
    /// Failed pipelines create a task.
    pub pipeline_failures: bool,
    pub mapping: Mapping,
}

impl Default for GitlabConfig {
    fn default() -> Self {
        Self {
            token: None,
            signing_secret: None,
            instance: None,
            max_body_bytes: 25 * 1024 * 1024,
            issue_actions: vec!["open".into(), "reopen".into()],
            merge_request_actions: vec!["open".into(), "reopen".into()],
            command: "/hopper".into(),
            pipeline_failures: true,
            mapping: Mapping::default(),
        }
    }
}

fn build(settings: &SourceSettings<'_>) -> BuildResult {
    let config: GitlabConfig = settings.parse()?;
    let token = settings.secret(config.token.clone(), "HOPPER_GITLAB_WEBHOOK_TOKEN");
    let signing = settings.secret(
        config.signing_secret.clone(),
        "HOPPER_GITLAB_SIGNING_SECRET",
    );
    if let Some(s) = &signing
        && StandardWebhook::sign(s, "probe", "0", b"").is_empty()
    {
        return Err("signing_secret: not a base64 `whsec_` secret".into());
    }
    Ok(vec![Box::new(GitlabSource {
        config,
        token,
        signing,
    })])
}

pub struct GitlabSource {
    config: GitlabConfig,
    token: Option<Secret>,
    signing: Option<Secret>,
}

impl InboundSource for GitlabSource {
    fn kind(&self) -> &str {
        "gitlab"
    }

    fn path(&self) -> &str {
        "gitlab"
    }

    fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    fn instance(&self) -> Option<&str> {
        self.config.instance.as_deref()
    }

    /// The secret token, and that the signature headers are there with a fresh timestamp:
    /// everything but the signature itself, which covers the body.
    fn precheck(&self, headers: InboundHeaders<'_>) -> Result<(), InboundError> {
        if self.token.is_none() && self.signing.is_none() {
            return Err(InboundError::NotConfigured);
        }
        if let Some(token) = &self.token {
            let presented = headers
                .header("x-gitlab-token")
                .ok_or(InboundError::Unauthorized)?;
            if !token.matches(presented) {
                return Err(InboundError::Unauthorized);
            }
        }
        if self.signing.is_some() {
            let stale = headers
                .header("webhook-timestamp")
                .is_none_or(|t| !fresh(t, TOLERANCE));
            if stale || headers.header("webhook-id").is_none() {
                return Err(InboundError::Unauthorized);
            }
            headers
                .header("webhook-signature")
                .ok_or(InboundError::Unauthorized)?;
        }
        Ok(())
    }

    fn verify<'a>(
        &self,
        request: InboundRequest<'a>,
    ) -> Result<Verified<InboundRequest<'a>>, InboundError> {
        // The gateway ran it already; running it again keeps `verify` complete on its own
        // instead of trusting every caller to have run it, for one more token comparison.
        self.precheck(request.head())?;
        if let Some(secret) = &self.signing {
            let hook = StandardWebhook {
                id: request
                    .header("webhook-id")
                    .ok_or(InboundError::Unauthorized)?,
                timestamp: request
                    .header("webhook-timestamp")
                    .ok_or(InboundError::Unauthorized)?,
                signatures: request
                    .header("webhook-signature")
                    .ok_or(InboundError::Unauthorized)?,
            };
            hook.verify(secret, request.body, TOLERANCE)?;
        }
        Ok(Verified::vouch(request))
    }

    fn interpret(
        &self,
        request: &Verified<InboundRequest<'_>>,
    ) -> Result<Interpretation, InboundError> {
        let request = request.get();
        request.require_media_type(&["application/json"])?;
        let event = request
            .header("x-gitlab-event")
            .ok_or_else(|| InboundError::Malformed("missing X-Gitlab-Event header".into()))?;
        let delivery = ["idempotency-key", "x-gitlab-event-uuid", "webhook-id"]
            .iter()
            .find_map(|h| request.header(h))
            .map(str::to_owned);
        let v: Value = serde_json::from_slice(request.body)
            .map_err(|e| InboundError::Malformed(format!("invalid JSON: {e}")))?;
        if !v.is_object() {
            return Err(InboundError::Malformed("expected a JSON object".into()));
        }
        let attrs = &v["object_attributes"];
        let action = str_at(attrs, "/action")
            .or_else(|| str_at(attrs, "/status"))
            .unwrap_or_default();
        let event_type = format!("{event}.{action}").trim_end_matches('.').to_owned();
        let draft = match event {
            "Issue Hook" if self.config.issue_actions.iter().any(|a| a == &action) => {
                Some(self.draft(
                    &v,
                    clip(&str_at(attrs, "/title").unwrap_or_default(), 200),
                    &str_at(attrs, "/description").unwrap_or_default(),
                    "issue",
                ))
            }
            "Merge Request Hook"
                if self
                    .config
                    .merge_request_actions
                    .iter()
                    .any(|a| a == &action) =>
            {
                let iid = attrs["iid"].as_u64().unwrap_or_default();
                let t = format!(
                    "Merge request !{iid}: {}",
                    str_at(attrs, "/title").unwrap_or_default()
                );
                Some(self.draft(
                    &v,
                    clip(&t, 200),
                    &str_at(attrs, "/description").unwrap_or_default(),
                    "merge-request",
                ))
            }
            "Note Hook" => {
                let note = str_at(attrs, "/note").unwrap_or_default();
                command(&note, &self.config.command).map(|cmd| {
                    let on = v["issue"]["title"]
                        .as_str()
                        .or(v["merge_request"]["title"].as_str())
                        .unwrap_or("GitLab note");
                    let t = if cmd.is_empty() {
                        format!("Follow up: {on}")
                    } else {
                        title(&cmd)
                    };
                    self.draft(&v, t, &note, "command")
                })
            }
            "Pipeline Hook" if self.config.pipeline_failures && action == "failed" => {
                let r = str_at(attrs, "/ref").unwrap_or_default();
                let mut d = self.draft(
                    &v,
                    clip(&format!("Pipeline failed on {r}"), 200),
                    &format!("Pipeline {} failed on `{r}`.", attrs["id"]),
                    "ci",
                );
                d.priority = d.priority.max(Priority::High);
                Some(d)
            }
            _ => None,
        };
        let issue = (event == "Issue Hook").then(|| issue_state(&v)).flatten();
        let interpretation = match draft {
            Some(d) => Interpretation::task(delivery, event_type, d),
            None => {
                let reason = format!("`{event_type}` is not configured to create tasks");
                Interpretation::ignored(delivery, event_type, reason)
            }
        };
        Ok(match issue {
            Some(i) => interpretation.about_issue(i),
            None => interpretation,
        })
    }

    /// The token (`X-Gitlab-Token`) and the signature (`webhook-signature`) are never stored,
    /// so neither can be checked again: the stored record stands for them. The
    /// `webhook-timestamp` is kept, but its window was for the delivery, not for a replay
    /// days later, so it is not checked. `interpret` still checks `X-Gitlab-Event` and the JSON.
    fn reinterpret(&self, stored: StoredRequest<'_>) -> Result<Interpretation, InboundError> {
        stored.recorded_by(self.kind(), &[self.path()])?;
        self.interpret(&Verified::vouch(stored.request))
    }
}

/// The issue of an `Issue Hook`, as two-way sync reads it.
fn issue_state(v: &Value) -> Option<IssueState> {
    let attrs = &v["object_attributes"];
    let repository = str_at(v, "/project/path_with_namespace")?;
    let iid = attrs["iid"].as_u64()?;
    let description = str_at(attrs, "/description").unwrap_or_default();
    Some(IssueState {
        repository,
        number: iid.to_string(),
        url: str_at(attrs, "/url").unwrap_or_default(),
        title: clip(&str_at(attrs, "/title").unwrap_or_default(), 200),
        body: clip(&description, 20_000),
        handle: json!({ "project_id": v["project"]["id"], "noteable_type": "Issue", "iid": iid }),
        open: str_at(attrs, "/state").as_deref() != Some("closed"),
        labels: v["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["title"].as_str().map(str::to_owned))
            .collect(),
        updated_at: str_at(attrs, "/updated_at").and_then(|t| millis(&t)),
        actor: str_at(v, "/user/username"),
        marked_task: sync::marked_task(&description).map(str::to_owned),
    })
}

/// GitLab writes times as RFC 3339 (`2026-12-06T10:00:00Z`) or, in older hooks, as
/// `2026-12-06 10:00:00 UTC`.
fn millis(at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S UTC")
                .map(|t| t.and_utc().timestamp_millis())
        })
        .ok()
}

fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl GitlabSource {
    fn draft(&self, v: &Value, title: String, description: &str, kind: &str) -> TaskDraft {
        let project = str_at(v, "/project/path_with_namespace");
        let attrs = &v["object_attributes"];
        let iid = attrs["iid"]
            .as_u64()
            .or_else(|| v["issue"]["iid"].as_u64())
            .or_else(|| v["merge_request"]["iid"].as_u64());
        let labels: Vec<String> = v["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["title"].as_str().map(str::to_owned))
            .collect();
        let mut d = TaskDraft::new(if title.trim().is_empty() {
            "GitLab event".into()
        } else {
            title
        });
        d.description = clip(description, 64 * 1024);
        d.tags = vec!["gitlab".into(), kind.into()];
        d.requester = str_at(v, "/user/username");
        d.source = Some(SourceRef {
            kind: "gitlab".into(),
            container: project.clone(),
            external_id: match (&project, iid) {
                (Some(p), Some(n)) => Some(format!("{p}#{n}")),
                _ => None,
            },
            url: str_at(attrs, "/url"),
            reply_handle: Some(json!({
                "project_id": v["project"]["id"],
                "noteable_type": attrs["noteable_type"].as_str().unwrap_or(match kind {
                    "merge-request" => "MergeRequest",
                    _ => "Issue",
                }),
                "iid": iid,
            })),
        });
        self.config
            .mapping
            .apply(&mut d, project.as_deref(), &labels);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopper_integration_api::verify::unix_now;

    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn source(section: Value) -> Box<dyn InboundSource> {
        let env = |_: &str| None;
        let settings = SourceSettings {
            section: &section,
            env: &env,
        };
        match build(&settings) {
            Ok(mut sources) if sources.len() == 1 => sources.remove(0),
            Ok(_) => panic!("one source expected"),
            Err(e) => panic!("{e}"),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn precheck(source: &dyn InboundSource, pairs: &[(&str, &str)]) -> Result<(), InboundError> {
        source.precheck(InboundHeaders {
            headers: &headers(pairs),
        })
    }

    #[test]
    fn precheck_wants_the_token_from_the_headers_alone() {
        let s = source(json!({ "token": "glt" }));
        assert!(precheck(s.as_ref(), &[("X-Gitlab-Token", "glt")]).is_ok());
        for wrong in [&[("x-gitlab-token", "nope")][..], &[]] {
            assert!(matches!(
                precheck(s.as_ref(), wrong),
                Err(InboundError::Unauthorized)
            ));
        }
    }

    #[test]
    fn precheck_without_a_secret_says_not_configured() {
        let s = source(Value::Null);
        assert!(matches!(
            precheck(s.as_ref(), &[("x-gitlab-token", "anything")]),
            Err(InboundError::NotConfigured)
        ));
    }

    #[test]
    fn precheck_wants_fresh_signature_headers_when_signing() {
        let s = source(json!({ "signing_secret": WHSEC }));
        let now = unix_now().to_string();
        let old = (unix_now() - 3600).to_string();
        fn signed(ts: &str) -> Vec<(&str, &str)> {
            vec![
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", ts),
                ("webhook-signature", "v1,AAAA"),
            ]
        }
        // The signature itself is not checked yet: it covers the body.
        assert!(precheck(s.as_ref(), &signed(&now)).is_ok());
        assert!(precheck(s.as_ref(), &signed(&old)).is_err());
        assert!(precheck(s.as_ref(), &signed(&now)[..2]).is_err());
        assert!(precheck(s.as_ref(), &[]).is_err());
        // And `verify` still checks it.
        let pairs = headers(&signed(&now));
        let request = InboundRequest {
            headers: &pairs,
            body: b"{}",
        };
        assert!(matches!(s.verify(request), Err(InboundError::Unauthorized)));
    }

    #[test]
    fn an_issue_hook_describes_its_issue_for_sync() {
        let v = json!({
            "object_kind": "issue",
            "user": {"username": "maria"},
            "project": {"id": 99, "path_with_namespace": "acme/widgets"},
            "object_attributes": {
                "iid": 12, "title": "Rotate keys", "state": "closed", "action": "close",
                "description": format!("Soon.\n\n{}", sync::marker("tsk_1")),
                "url": "https://gitlab.example.com/acme/widgets/-/issues/12",
                "updated_at": "2026-12-06 10:00:00 UTC"
            },
            "labels": [{"title": "hopper"}, {"title": "priority:high"}]
        });
        let i = issue_state(&v).unwrap();
        assert_eq!(
            (i.repository.as_str(), i.number.as_str()),
            ("acme/widgets", "12")
        );
        assert!(!i.open);
        assert_eq!(i.labels, ["hopper", "priority:high"]);
        assert_eq!(i.marked_task.as_deref(), Some("tsk_1"));
        assert_eq!(i.actor.as_deref(), Some("maria"));
        assert_eq!(i.handle["iid"], 12);
        assert_eq!(i.updated_at, millis("2026-12-06T10:00:00Z"));
        assert!(i.updated_at.is_some());
    }
}

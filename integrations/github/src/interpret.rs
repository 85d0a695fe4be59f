//! What a verified GitHub delivery means for Hopper.

use hopper_integration_api::sync;
use hopper_integration_api::text::{clip, command, title};
use hopper_integration_api::{
    Action, InboundError, InboundRequest, Interpretation, IssueState, Priority, SourceRef,
    TaskDraft,
};
use std::borrow::Cow;

use octocrab::models::webhook_events::payload::{
    CheckSuiteWebhookEventPayload, IssueCommentWebhookEventPayload, IssuesWebhookEventAction,
    PullRequestWebhookEventPayload, WorkflowRunWebhookEventPayload,
};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};

use crate::GithubConfig;

/// The JSON payload: GitHub sends it raw (`application/json`) or as the `payload` field of a
/// form (`application/x-www-form-urlencoded`), depending on the hook's settings.
fn payload<'a>(request: &InboundRequest<'a>) -> Result<Cow<'a, [u8]>, InboundError> {
    request.require_media_type(&["application/json", "application/x-www-form-urlencoded"])?;
    if request.media_type() == "application/json" {
        return Ok(Cow::Borrowed(request.body));
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(request.body)
        .map_err(|e| InboundError::Malformed(format!("form body: {e}")))?;
    form.into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| Cow::Owned(v.into_bytes()))
        .ok_or_else(|| InboundError::Malformed("form body has no `payload` field".into()))
}

fn action_name<T: serde::Serialize>(action: &T) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn interpret(
    config: &GithubConfig,
    request: &InboundRequest<'_>,
) -> Result<Interpretation, InboundError> {
    let event = request
        .header("x-github-event")
        .ok_or_else(|| InboundError::Malformed("missing X-GitHub-Event header".into()))?
        .to_owned();
    let delivery = request.header("x-github-delivery").map(str::to_owned);
    let body = payload(request)?;
    if event == "ping" {
        let raw: Value = serde_json::from_slice(&body)
            .map_err(|e| InboundError::Malformed(format!("invalid JSON: {e}")))?;
        return Ok(Interpretation::new(
            delivery,
            "ping",
            Action::Reply {
                body: json!({ "ok": true, "zen": raw.get("zen") }),
            },
        ));
    }
    // The envelope (repository, sender, installation) and the event's own payload are read
    // straight from the body into their types. octocrab's `WebhookEvent::try_from_header_and_body`
    // would parse every model in the envelope (dozens of URLs each) and round-trip the
    // event's part through a `serde_json::Value`: more than twice the CPU per delivery.
    let understood = match event.as_str() {
        // An `issues` model carries its envelope: the busiest event is read in one pass.
        "issues" => parse::<IssuesDelivery>(&body, &event, &delivery)?
            .ok()
            .map(|mut d| (d.envelope(), Payload::Issues(Box::new(d)))),
        other => match parse::<Envelope>(&body, &event, &delivery)?.ok() {
            Ok(envelope) => match other {
                "issue_comment" => parse(&body, &event, &delivery)?.map(Payload::IssueComment),
                "pull_request" => parse(&body, &event, &delivery)?.map(Payload::PullRequest),
                "workflow_run" => parse(&body, &event, &delivery)?.map(Payload::WorkflowRun),
                "check_suite" => parse(&body, &event, &delivery)?.map(Payload::CheckSuite),
                _ => parse::<IgnoredAny>(&body, &event, &delivery)?.map(|_| Payload::Other),
            }
            .ok()
            .map(|p| (envelope, p)),
            Err(i) => Err(i),
        },
    };
    let (envelope, parsed) = match understood {
        Ok(u) => u,
        Err(not_understood) => return Ok(not_understood),
    };
    let ctx = Context::new(envelope);
    let (event_type, draft) = match &parsed {
        Payload::Issues(p) => {
            let action = action_name(&p.action);
            let label = p.label.as_ref().map(|l| l.name.clone());
            let issue = &p.issue;
            let wanted = config.issue_actions.contains(&action)
                && (action != "labeled"
                    || label.as_ref().is_some_and(|l| {
                        config
                            .trigger_labels
                            .iter()
                            .any(|t| t.eq_ignore_ascii_case(l))
                    }));
            let draft = wanted.then(|| {
                let labels = issue.labels.iter().map(|l| l.name.clone()).collect();
                ctx.draft(
                    config,
                    clip(&issue.title, 200),
                    issue.body.as_deref().unwrap_or_default(),
                    &["issue"],
                    labels,
                    Some(issue.number),
                    Some(issue.html_url.clone()),
                )
            });
            (format!("issues.{action}"), draft)
        }
        Payload::IssueComment(p) => {
            let action = action_name(&p.action);
            let text = p.comment.body.as_deref().unwrap_or_default();
            let command = (action == "created")
                .then(|| command(text, &config.command))
                .flatten();
            let draft = command.map(|cmd| {
                let issue = &p.issue;
                let t = if cmd.is_empty() {
                    format!("Follow up: {}", issue.title)
                } else {
                    title(&cmd)
                };
                let labels = issue.labels.iter().map(|l| l.name.clone()).collect();
                let mut d = ctx.draft(
                    config,
                    t,
                    &format!("{text}\n\nOn: {} ({})", issue.title, issue.html_url),
                    &["comment", "command"],
                    labels,
                    Some(issue.number),
                    Some(p.comment.html_url.to_string()),
                );
                d.requester = Some(p.comment.user.login.clone());
                d
            });
            (format!("issue_comment.{action}"), draft)
        }
        Payload::PullRequest(p) => {
            let action = action_name(&p.action);
            let pr = &p.pull_request;
            let draft = config.pull_request_actions.contains(&action).then(|| {
                let labels = pr.labels.iter().flatten().map(|l| l.name.clone()).collect();
                let verb = if action == "review_requested" {
                    "Review"
                } else {
                    "Pull request"
                };
                let mut d = ctx.draft(
                    config,
                    clip(
                        &format!(
                            "{verb} #{}: {}",
                            p.number,
                            pr.title.clone().unwrap_or_default()
                        ),
                        200,
                    ),
                    pr.body.as_deref().unwrap_or_default(),
                    &["pull-request"],
                    labels,
                    Some(p.number),
                    pr.html_url.as_ref().map(|u| u.to_string()),
                );
                if let Some(r) = &p.requested_reviewer {
                    d.executor = None;
                    d.tags.push(format!("reviewer-{}", r.login.to_lowercase()));
                }
                d
            });
            (format!("pull_request.{action}"), draft)
        }
        Payload::WorkflowRun(p) => {
            let action = action_name(&p.action);
            let run = &p.workflow_run;
            (
                format!("workflow_run.{action}"),
                ci_failure(config, &ctx, &action, run, "workflow"),
            )
        }
        Payload::CheckSuite(p) => {
            let action = action_name(&p.action);
            let suite = &p.check_suite;
            (
                format!("check_suite.{action}"),
                ci_failure(config, &ctx, &action, suite, "check suite"),
            )
        }
        Payload::Other => (event.clone(), None),
    };
    let issue = match &parsed {
        Payload::Issues(p) => ctx.repo.as_ref().map(|repository| IssueState {
            repository: repository.clone(),
            number: p.issue.number.to_string(),
            url: p.issue.html_url.clone(),
            title: clip(&p.issue.title, 200),
            body: clip(p.issue.body.as_deref().unwrap_or_default(), 20_000),
            handle: json!({
                "repository": repository,
                "issue_number": p.issue.number,
                "installation_id": ctx.installation,
            }),
            open: p.issue.state.as_deref() != Some("closed"),
            labels: p.issue.labels.iter().map(|l| l.name.clone()).collect(),
            updated_at: p.issue.updated_at.as_deref().and_then(millis),
            actor: ctx.sender.clone(),
            marked_task: p
                .issue
                .body
                .as_deref()
                .and_then(sync::marked_task)
                .map(str::to_owned),
        }),
        _ => None,
    };
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

/// An RFC 3339 time in milliseconds since the epoch.
fn millis(at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn ci_failure(
    config: &GithubConfig,
    ctx: &Context,
    action: &str,
    run: &Value,
    what: &str,
) -> Option<TaskDraft> {
    let conclusion = run.get("conclusion").and_then(Value::as_str)?;
    if !config.ci_failures
        || action != "completed"
        || !matches!(conclusion, "failure" | "timed_out")
    {
        return None;
    }
    let name = run
        .get("name")
        .or_else(|| run.pointer("/app/name"))
        .and_then(Value::as_str)
        .unwrap_or(what);
    let branch = run
        .get("head_branch")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let url = run
        .get("html_url")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut d = ctx.draft(
        config,
        clip(&format!("CI {conclusion}: {name} on {branch}"), 200),
        &format!("The {what} `{name}` concluded `{conclusion}` on branch `{branch}`."),
        &["ci", "failure"],
        Vec::new(),
        None,
        url,
    );
    d.priority = d.priority.max(Priority::High);
    Some(d)
}

/// An `issues` delivery: octocrab's action, and of the issue only what a task uses.
///
/// `issues` is the event a busy repository sends most. octocrab's `Issue` model parses every
/// URL of the issue, its author, assignees and milestone into `Url`s (some 60 per delivery):
/// 16% of all CPU in the inbound benchmark. The fields below are all Hopper reads.
#[derive(Deserialize)]
struct IssuesDelivery {
    action: IssuesWebhookEventAction,
    issue: IssueFields,
    label: Option<Named>,
    repository: Option<Repository>,
    sender: Option<Sender>,
    installation: Option<Installation>,
}

impl IssuesDelivery {
    fn envelope(&mut self) -> Envelope {
        Envelope {
            repository: self.repository.take(),
            sender: self.sender.take(),
            installation: self.installation.take(),
        }
    }
}

#[derive(Deserialize)]
struct IssueFields {
    number: u64,
    title: String,
    body: Option<String>,
    html_url: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    labels: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

/// The parts of every delivery's envelope that Hopper uses.
#[derive(Deserialize)]
struct Envelope {
    repository: Option<Repository>,
    sender: Option<Sender>,
    installation: Option<Installation>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct Sender {
    login: String,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

/// The event-specific payloads that can make tasks, as octocrab models them (`issues`
/// excepted, see [`IssuesDelivery`]).
enum Payload {
    Issues(Box<IssuesDelivery>),
    IssueComment(Box<IssueCommentWebhookEventPayload>),
    PullRequest(Box<PullRequestWebhookEventPayload>),
    WorkflowRun(Box<WorkflowRunWebhookEventPayload>),
    CheckSuite(Box<CheckSuiteWebhookEventPayload>),
    Other,
}

enum Parsed<T> {
    Ok(T),
    /// Valid JSON that the model does not accept: recorded as ignored (and replayable) rather
    /// than refused, since GitHub would retry something that will never parse differently.
    NotUnderstood(Interpretation),
}

impl<T> Parsed<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Parsed<U> {
        match self {
            Parsed::Ok(t) => Parsed::Ok(f(t)),
            Parsed::NotUnderstood(i) => Parsed::NotUnderstood(i),
        }
    }

    fn ok(self) -> Result<T, Interpretation> {
        match self {
            Parsed::Ok(t) => Ok(t),
            Parsed::NotUnderstood(i) => Err(i),
        }
    }
}

/// Invalid JSON is the sender's mistake (400); JSON of the wrong shape is kept as ignored.
fn parse<T: DeserializeOwned>(
    body: &[u8],
    event: &str,
    delivery: &Option<String>,
) -> Result<Parsed<T>, InboundError> {
    match serde_json::from_slice(body) {
        Ok(t) => Ok(Parsed::Ok(t)),
        Err(e) if e.is_syntax() || e.is_eof() => {
            Err(InboundError::Malformed(format!("invalid JSON: {e}")))
        }
        Err(e) => Ok(Parsed::NotUnderstood(Interpretation::ignored(
            delivery.clone(),
            event.to_owned(),
            format!("payload not understood: {e}"),
        ))),
    }
}

/// What every task from one delivery shares: repository, sender, installation.
struct Context {
    repo: Option<String>,
    sender: Option<String>,
    installation: Option<u64>,
}

impl Context {
    fn new(envelope: Envelope) -> Self {
        Self {
            repo: envelope.repository.and_then(|r| r.full_name),
            sender: envelope.sender.map(|s| s.login),
            installation: envelope.installation.map(|i| i.id),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn draft(
        &self,
        config: &GithubConfig,
        title: String,
        description: &str,
        tags: &[&str],
        labels: Vec<String>,
        number: Option<u64>,
        url: Option<String>,
    ) -> TaskDraft {
        let mut d = TaskDraft::new(title);
        d.description = clip(description, 64 * 1024);
        d.tags = std::iter::once("github")
            .chain(tags.iter().copied())
            .map(str::to_owned)
            .collect();
        d.requester = self.sender.clone();
        d.source = Some(SourceRef {
            kind: "github".into(),
            container: self.repo.clone(),
            external_id: match (&self.repo, number) {
                (Some(r), Some(n)) => Some(format!("{r}#{n}")),
                _ => None,
            },
            url,
            reply_handle: Some(json!({
                "repository": self.repo,
                "issue_number": number,
                "installation_id": self.installation,
            })),
        });
        config.mapping.apply(&mut d, self.repo.as_deref(), &labels);
        d
    }
}

//! Reporting back to GitLab: a note on the issue or merge request the task came from, plus
//! labels and closing when the report asks, with the `gitlab` crate's async client and its
//! typed endpoints (`PRIVATE-TOKEN` auth, form-encoded bodies).
//!
//! One attempt per call; the core's outbox retries. The idempotent edit (labels, close) goes
//! first and the note last, so a retried report never posts its note twice.

use std::time::Duration;

use async_trait::async_trait;
use gitlab::api::projects::issues::notes::CreateIssueNote;
use gitlab::api::projects::issues::{
    CreateIssue, EditIssue, IssueSearchScope, IssueStateEvent, Issues,
};
use gitlab::api::projects::merge_requests::notes::CreateMergeRequestNote;
use gitlab::api::projects::merge_requests::{EditMergeRequest, MergeRequestStateEvent};
use gitlab::api::{self, ApiError, AsyncQuery};
use gitlab::{AsyncGitlab, GitlabBuilder, GitlabError, RestError};
use hopper_integration_api::{
    Delivered, IssueDraft, OpenedIssue, Report, ReportError, Reporter, ReporterResult, Secret,
    SourceSettings,
};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;

/// `reports.gitlab` in the config. Every key has a default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitlabReportConfig {
    /// The instance; else `HOPPER_GITLAB_URL`, else `https://gitlab.com`. A path is kept
    /// (`https://example.com/gitlab`); `http://` only for tests and private networks.
    pub url: Option<String>,
    /// A personal, project or group access token (`api` scope); else `HOPPER_GITLAB_TOKEN`.
    pub token: Option<Secret>,
}

const DEFAULT_URL: &str = "https://gitlab.com";
/// The crate's client has no timeout of its own.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the GitLab reporter from `reports.gitlab`: `None` without a token.
pub fn reporter(s: &SourceSettings<'_>) -> ReporterResult {
    let config: GitlabReportConfig = s.parse()?;
    let url = config
        .url
        .filter(|u| !u.trim().is_empty())
        .or_else(|| (s.env)("HOPPER_GITLAB_URL").filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_URL.into());
    let url = url.trim().trim_end_matches('/');
    let (insecure, host) = if let Some(rest) = url.strip_prefix("https://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (true, rest)
    } else {
        return Err(format!("url: not an http(s) URL: {url}"));
    };
    if host.is_empty() || host.contains(['?', '#', '@', ' ']) {
        return Err(format!("url: not an http(s) URL: {url}"));
    }
    let Some(token) = s.secret(config.token, "HOPPER_GITLAB_TOKEN") else {
        return Ok(None);
    };
    if http::HeaderValue::from_str(token.expose()).is_err() {
        return Err("token: contains characters not allowed in an HTTP header".into());
    }
    Ok(Some(Box::new(GitlabReporter {
        host: host.to_string(),
        insecure,
        token,
        client: OnceCell::new(),
    })))
}

pub struct GitlabReporter {
    /// `gitlab.com`, `127.0.0.1:8080` or `example.com/gitlab`: the crate adds the scheme and
    /// `/api/v4/`.
    host: String,
    insecure: bool,
    token: Secret,
    /// Built on first use: building checks the token against `GET /api/v4/user`.
    client: OnceCell<AsyncGitlab>,
}

/// Where to answer: from the reply handle the inbound side put on the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Noteable {
    Issue,
    MergeRequest,
}

struct Target {
    project: u64,
    noteable: Noteable,
    iid: u64,
}

#[derive(Deserialize)]
struct Note {
    id: u64,
}

impl GitlabReporter {
    fn target(report: &Report) -> Result<Target, ReportError> {
        let handle = report.source.reply_handle.as_ref();
        let field = |k: &str| handle.and_then(|h| h.get(k));
        let noteable = match field("noteable_type").and_then(Value::as_str) {
            Some("Issue") => Some(Noteable::Issue),
            Some("MergeRequest") => Some(Noteable::MergeRequest),
            _ => None,
        };
        let project = field("project_id").and_then(Value::as_u64);
        let iid = field("iid").and_then(Value::as_u64);
        match (project, noteable, iid) {
            (Some(project), Some(noteable), Some(iid)) => Ok(Target {
                project,
                noteable,
                iid,
            }),
            _ => Err(permanent(
                None,
                "the task's reply handle has no GitLab project, issue or merge request".into(),
            )),
        }
    }

    async fn client(&self) -> Result<&AsyncGitlab, ReportError> {
        self.client
            .get_or_try_init(|| async {
                let mut builder = GitlabBuilder::new(self.host.as_str(), self.token.expose());
                if self.insecure {
                    builder.insecure();
                }
                match tokio::time::timeout(TIMEOUT, builder.build_async()).await {
                    Ok(Ok(client)) => Ok(client),
                    Ok(Err(GitlabError::Api { source })) => {
                        Err(classify("checking the token", source))
                    }
                    Ok(Err(GitlabError::Communication { source })) => Err(retry(
                        None,
                        None,
                        format!("GitLab unreachable checking the token: {source}"),
                    )),
                    Ok(Err(e)) => Err(permanent(None, format!("GitLab client: {e}"))),
                    Err(_) => Err(timed_out("checking the token")),
                }
            })
            .await
    }

    async fn edit(&self, gl: &AsyncGitlab, t: &Target, r: &Report) -> Result<(), ReportError> {
        let step = "editing labels and state";
        let invalid = |e: String| permanent(None, format!("GitLab request {step}: {e}"));
        let query = match t.noteable {
            Noteable::Issue => {
                let mut b = EditIssue::builder();
                b.project(t.project).issue(t.iid);
                for l in &r.add_labels {
                    b.add_label(l.as_str());
                }
                for l in &r.remove_labels {
                    b.remove_label(l.as_str());
                }
                if r.close {
                    b.state_event(IssueStateEvent::Close);
                }
                let e = b.build().map_err(|e| invalid(e.to_string()))?;
                tokio::time::timeout(TIMEOUT, api::ignore(e).query_async(gl)).await
            }
            Noteable::MergeRequest => {
                let mut b = EditMergeRequest::builder();
                b.project(t.project).merge_request(t.iid);
                for l in &r.add_labels {
                    b.add_label(l.as_str());
                }
                for l in &r.remove_labels {
                    b.remove_label(l.as_str());
                }
                if r.close {
                    b.state_event(MergeRequestStateEvent::Close);
                }
                let e = b.build().map_err(|e| invalid(e.to_string()))?;
                tokio::time::timeout(TIMEOUT, api::ignore(e).query_async(gl)).await
            }
        };
        query
            .map_err(|_| timed_out(step))?
            .map_err(|e| classify(step, e))
    }

    async fn note(&self, gl: &AsyncGitlab, t: &Target, text: &str) -> Result<Note, ReportError> {
        let step = "adding a note";
        let invalid = |e: String| permanent(None, format!("GitLab request {step}: {e}"));
        let query = match t.noteable {
            Noteable::Issue => {
                let e = CreateIssueNote::builder()
                    .project(t.project)
                    .issue(t.iid)
                    .body(text)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?;
                tokio::time::timeout(TIMEOUT, e.query_async(gl)).await
            }
            Noteable::MergeRequest => {
                let e = CreateMergeRequestNote::builder()
                    .project(t.project)
                    .merge_request(t.iid)
                    .body(text)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?;
                tokio::time::timeout(TIMEOUT, e.query_async(gl)).await
            }
        };
        query
            .map_err(|_| timed_out(step))?
            .map_err(|e| classify(step, e))
    }
}

#[async_trait]
impl Reporter for GitlabReporter {
    fn kind(&self) -> &'static str {
        "gitlab"
    }

    async fn report(&self, report: &Report) -> Result<Delivered, ReportError> {
        let target = Self::target(report)?;
        let gl = self.client().await?;
        if !report.add_labels.is_empty() || !report.remove_labels.is_empty() || report.close {
            self.edit(gl, &target, report).await?;
        }
        let note = self.note(gl, &target, &report.text).await?;
        let detail = match &report.source.url {
            Some(url) => format!("{url}#note_{}", note.id),
            None => format!("note {}", note.id),
        };
        Ok(Delivered {
            status: 201,
            detail,
        })
    }

    async fn open_issue(&self, draft: &IssueDraft) -> Result<OpenedIssue, ReportError> {
        let gl = self.client().await?;
        let marker = hopper_integration_api::sync::marker(&draft.task_id);
        if draft.retried
            && let Some(found) = self.find_marked(gl, draft, &marker).await?
        {
            return Ok(found);
        }
        let step = "opening an issue";
        let e = CreateIssue::builder()
            .project(draft.repository.as_str())
            .title(draft.title.as_str())
            .description(draft.body.as_str())
            .labels(draft.labels.iter().map(String::as_str))
            .build()
            .map_err(|e| permanent(None, format!("GitLab request {step}: {e}")))?;
        let created: CreatedIssue = tokio::time::timeout(TIMEOUT, e.query_async(gl))
            .await
            .map_err(|_| timed_out(step))?
            .map_err(|e| classify(step, e))?;
        Ok(created.opened())
    }
}

/// The parts of a GitLab issue an export needs.
#[derive(Deserialize)]
struct CreatedIssue {
    iid: u64,
    project_id: u64,
    web_url: String,
    #[serde(default)]
    description: Option<String>,
}

impl CreatedIssue {
    fn opened(self) -> OpenedIssue {
        OpenedIssue {
            number: self.iid.to_string(),
            url: self.web_url,
            handle: serde_json::json!({
                "project_id": self.project_id,
                "noteable_type": "Issue",
                "iid": self.iid,
            }),
        }
    }
}

impl GitlabReporter {
    /// The issue of `draft`'s project whose description carries `marker`: what a retried
    /// export looks for before opening another.
    async fn find_marked(
        &self,
        gl: &AsyncGitlab,
        draft: &IssueDraft,
        marker: &str,
    ) -> Result<Option<OpenedIssue>, ReportError> {
        let step = "looking for an issue opened before";
        let e = Issues::builder()
            .project(draft.repository.as_str())
            .search(draft.task_id.as_str())
            .search_in(IssueSearchScope::Description)
            .build()
            .map_err(|e| permanent(None, format!("GitLab request {step}: {e}")))?;
        let found: Vec<CreatedIssue> = tokio::time::timeout(
            TIMEOUT,
            api::paged(e, api::Pagination::Limit(20)).query_async(gl),
        )
        .await
        .map_err(|_| timed_out(step))?
        .map_err(|e| classify(step, e))?;
        Ok(found
            .into_iter()
            .find(|i| i.description.as_deref().is_some_and(|d| d.contains(marker)))
            .map(CreatedIssue::opened))
    }
}

/// 5xx and 429 (with GitLab's `Retry-After`) are worth another attempt, and so is a 403 that
/// says it is a rate limit; any other 4xx is not.
fn classify(step: &str, e: ApiError<RestError>) -> ReportError {
    let by_status = |status: http::StatusCode, msg: String| {
        let what = format!("GitLab answered {} {step}: {}", status.as_u16(), clip(&msg));
        let rate_limited = status == http::StatusCode::TOO_MANY_REQUESTS
            || (status == http::StatusCode::FORBIDDEN
                && msg.to_ascii_lowercase().contains("rate limit"));
        if rate_limited || status.is_server_error() {
            retry(Some(status.as_u16()), None, what)
        } else {
            permanent(Some(status.as_u16()), what)
        }
    };
    match e {
        ApiError::GitlabRateLimited { retry_after, .. } => retry(
            Some(429),
            Some(retry_after).filter(|d| !d.is_zero()),
            format!("GitLab answered 429 {step}: rate limited"),
        ),
        ApiError::GitlabService { status, data } => {
            by_status(status, String::from_utf8_lossy(&data).into_owned())
        }
        ApiError::GitlabWithStatus { status, msg } => by_status(status, msg),
        ApiError::GitlabObjectWithStatus { status, obj }
        | ApiError::GitlabUnrecognizedWithStatus { status, obj } => {
            by_status(status, obj.to_string())
        }
        ApiError::Client {
            source: RestError::Communication { source },
        } => retry(None, None, format!("GitLab unreachable {step}: {source}")),
        other => permanent(None, format!("GitLab request failed {step}: {other}")),
    }
}

fn timed_out(step: &str) -> ReportError {
    retry(None, None, format!("GitLab timed out {step}"))
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

fn retry(status: Option<u16>, retry_after: Option<Duration>, message: String) -> ReportError {
    ReportError::Retry {
        status,
        retry_after,
        message,
    }
}

fn permanent(status: Option<u16>, message: String) -> ReportError {
    ReportError::Permanent { status, message }
}

//! Reporting back: the outbound half of an integration. When a task that came from a GitHub
//! issue, a GitLab merge request, a Slack message or an email is routed, claimed, completed or
//! failed, the core renders a [`Report`] and the integration's [`Reporter`] says it where the
//! task came from (a comment, a note, a thread reply, an email reply).
//!
//! The core stores each report in its persistent outbox and retries it on the outbound retry
//! schedule: a reporter only makes one attempt and says how it went, distinguishing what is
//! worth retrying (with the remote's `Retry-After`) from what is not.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::draft::SourceRef;
use crate::sync::{IssueDraft, OpenedIssue};

/// What happened to the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moment {
    /// A project took it (`project` says which).
    Routed,
    /// An executor claimed it.
    Claimed,
    /// Done.
    Completed,
    /// Failed.
    Failed,
}

impl Moment {
    pub fn as_str(self) -> &'static str {
        match self {
            Moment::Routed => "routed",
            Moment::Claimed => "claimed",
            Moment::Completed => "completed",
            Moment::Failed => "failed",
        }
    }
}

/// One report, rendered by the core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub moment: Moment,
    /// Where the task came from, with its reply handle (issue number, thread, message id).
    pub source: SourceRef,
    pub task_id: String,
    pub title: String,
    /// The message (Markdown; plain text for email).
    pub text: String,
    #[serde(default)]
    pub add_labels: Vec<String>,
    #[serde(default)]
    pub remove_labels: Vec<String>,
    /// Close the issue or merge request (a successful completion, when configured).
    #[serde(default)]
    pub close: bool,
}

/// A report that landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The remote's status for the main request (201 for a new comment, 250 for SMTP).
    pub status: u16,
    /// What was made, for `hopper deliveries show` (a comment URL, a message id).
    pub detail: String,
}

/// Why a report did not land.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Worth another attempt: 5xx, 429, a rate-limit 403, a timeout, a refused connection.
    /// `retry_after` when the remote said how long to wait.
    #[error("{message}")]
    Retry {
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Another attempt would fail the same way: a 4xx, bad credentials, no reply handle.
    #[error("{message}")]
    Permanent {
        status: Option<u16>,
        message: String,
    },
}

impl ReportError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ReportError::Retry { status, .. } | ReportError::Permanent { status, .. } => *status,
        }
    }
}

/// Says reports where tasks came from, for one source kind.
#[async_trait]
pub trait Reporter: Send + Sync {
    /// The [`SourceRef::kind`] it answers (`github`, `gitlab`, `slack`, `email`).
    fn kind(&self) -> &'static str;

    /// One attempt.
    async fn report(&self, report: &Report) -> Result<Delivered, ReportError>;

    /// Opens an issue for a task exported by two-way sync (one attempt). Only issue trackers
    /// (GitHub, GitLab) do; the others refuse.
    async fn open_issue(&self, draft: &IssueDraft) -> Result<OpenedIssue, ReportError> {
        Err(ReportError::Permanent {
            status: None,
            message: format!(
                "`{}` cannot open issues (sync of {} needs github or gitlab)",
                self.kind(),
                draft.repository
            ),
        })
    }
}

/// What a reporter's builder returns: `None` when it is not configured (no token: nothing
/// to say reports with), or the reason its config is wrong.
pub type ReporterResult = Result<Option<Box<dyn Reporter>>, String>;

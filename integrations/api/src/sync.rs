//! Two-way issue sync: the issue-tracker half of an integration (GitHub, GitLab).
//!
//! Outbound, the core asks a [`Reporter`](crate::Reporter) that is also a tracker to open an
//! issue for a task exported to a repository ([`IssueDraft`]); closing it again is an ordinary
//! report with `close`. Inbound, an integration describes the issue an event is about
//! ([`IssueState`], on the [`Interpretation`](crate::Interpretation)), and the core decides
//! what that changes for the task linked to it.

use serde::{Deserialize, Serialize};

/// The hidden line that marks an issue Hopper opened, so that its own `opened` webhook is
/// recognised and never imported back: `<!-- hopper:task tsk_… -->`.
pub const MARKER_PREFIX: &str = "<!-- hopper:task ";

/// The marker line for `task_id`.
pub fn marker(task_id: &str) -> String {
    format!("{MARKER_PREFIX}{task_id} -->")
}

/// The task id in a body's marker line, if it has one.
pub fn marked_task(body: &str) -> Option<&str> {
    let start = body.find(MARKER_PREFIX)? + MARKER_PREFIX.len();
    let rest = &body[start..];
    let id = rest[..rest.find("-->")?].trim();
    (!id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(id)
}

/// An issue to open for an exported task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueDraft {
    /// `owner/name` on GitHub, the project path on GitLab.
    pub repository: String,
    pub title: String,
    /// Markdown, ending with the task's [`marker`].
    pub body: String,
    pub labels: Vec<String>,
    /// The exported task's id (the one in the marker).
    pub task_id: String,
    /// Set when an earlier attempt may have opened it already (it timed out, the answer was
    /// lost): look for an issue carrying the marker before opening another.
    #[serde(default)]
    pub retried: bool,
}

/// The issue opened (or found, for a retried draft).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenedIssue {
    /// The issue's number (GitHub) or iid (GitLab), as a string.
    pub number: String,
    pub url: String,
    /// The reply handle later reports to this issue carry (as the inbound side would set it).
    pub handle: serde_json::Value,
}

/// An issue as an inbound event shows it after the change the event reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueState {
    /// The repository (`owner/name`, a GitLab project path).
    pub repository: String,
    pub number: String,
    pub url: String,
    pub title: String,
    /// The description (clipped by the integration).
    pub body: String,
    /// The reply handle reports to this issue carry (as the integration's inbound tasks have).
    pub handle: serde_json::Value,
    pub open: bool,
    pub labels: Vec<String>,
    /// When the remote says the issue last changed (milliseconds since the epoch), for the
    /// rule when both sides changed.
    pub updated_at: Option<i64>,
    /// Who made the change (a login, a username).
    pub actor: Option<String>,
    /// The Hopper task id in the issue's marker: an issue Hopper opened itself.
    pub marked_task: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips_and_rejects_junk() {
        let body = format!("Fix it\n\n{}", marker("tsk_0193abc"));
        assert_eq!(marked_task(&body), Some("tsk_0193abc"));
        assert_eq!(marked_task("no marker here"), None);
        assert_eq!(marked_task("<!-- hopper:task  -->"), None);
        assert_eq!(marked_task("<!-- hopper:task a b -->"), None);
        assert_eq!(marked_task("<!-- hopper:task tsk_1"), None);
    }
}

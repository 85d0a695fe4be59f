use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How urgent a task is. Ordered: `Urgent` sorts before `Low` when the queue is drained.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    #[serde(alias = "medium")]
    Normal,
    High,
    Urgent,
}

impl Priority {
    /// Stored as a small integer so the claim index can order by it.
    pub fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }

    pub fn from_rank(rank: i64) -> Self {
        match rank {
            i64::MIN..=0 => Priority::Low,
            1 => Priority::Normal,
            2 => Priority::High,
            _ => Priority::Urgent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Priority::Low),
            "normal" | "medium" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            "urgent" => Ok(Priority::Urgent),
            other => Err(format!(
                "unknown priority `{other}` (expected low, normal, high or urgent)"
            )),
        }
    }
}

/// Where a task came from, kept so that Hopper can report back to the source later.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SourceRef {
    /// `api`, `cli`, `mcp`, `github`, `gitlab`, `slack`, `email`, `http`, ...
    pub kind: String,
    /// Repository, project, channel or mailbox the event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The sender's id for the thing (issue number, message id, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whatever the outbound side needs to answer (thread ts, reply-to address, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub reply_handle: Option<serde_json::Value>,
}

/// A task as a caller or an integration describes it, before Hopper has stored or routed it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDraft {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub priority: Priority,
    /// When the task is due (the v1.0.0 spec's optional due date): an RFC 3339 time such as
    /// `2026-12-24T18:00:00Z`. Stored to the millisecond and returned in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// Explicit project assignment; the global instance routes straight to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Hint for a project instance: run this as an orchestration rather than a single assignment.
    #[serde(default)]
    pub needs_orchestration: bool,
    /// Only this executor may take the task with `get_next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    #[serde(default)]
    pub required_capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
}

impl TaskDraft {
    /// A draft titled `title`, made one clean line (see [`TaskDraft::clean_title`]): sources
    /// build drafts from subjects and titles that anyone can write.
    pub fn new(title: impl Into<String>) -> Self {
        let mut draft = Self {
            title: title.into(),
            ..Self::default()
        };
        draft.clean_title();
        draft
    }

    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Rejects drafts no queue should hold. Limits are generous but finite so one bad
    /// sender cannot fill the database with a single row.
    /// Makes a title from outside (an email subject, an issue title) one clean line: control
    /// characters become spaces. Events are kept whatever their subject; only a task added
    /// through the API is refused for them.
    pub fn clean_title(&mut self) {
        if self.title.chars().any(char::is_control) {
            let clean = self
                .title
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>();
            self.title = match clean.trim() {
                "" => "(untitled)".to_owned(),
                t => t.to_owned(),
            };
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.title.trim().is_empty() {
            return Err("title must not be empty".into());
        }
        if self.title.len() > 500 {
            return Err("title must be at most 500 bytes".into());
        }
        // A title is one line shown in terminals and tables: NUL, CR, LF and escape sequences
        // would break or forge them.
        if self.title.chars().any(char::is_control) {
            return Err("title must not contain control characters (NUL, CR, LF, ESC, ...)".into());
        }
        if self.description.len() > 256 * 1024 {
            return Err("description must be at most 256 KiB".into());
        }
        if self.tags.len() > 64 || self.tags.iter().any(|t| t.is_empty() || t.len() > 100) {
            return Err("tags: at most 64, each 1 to 100 bytes".into());
        }
        if let Some(due) = &self.due_at
            && chrono::DateTime::parse_from_rfc3339(due).is_err()
        {
            return Err("due_at must be an RFC 3339 time, such as 2026-12-24T18:00:00Z".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_is_optional_and_must_be_rfc3339() {
        // Clients that predate it do not send it.
        let old: TaskDraft = serde_json::from_str(r#"{"title": "t"}"#).unwrap();
        assert_eq!(old.due_at, None);
        assert!(old.validate().is_ok());
        let mut draft = TaskDraft::new("t");
        draft.due_at = Some("2026-12-24T18:00:00+01:00".into());
        assert!(draft.validate().is_ok());
        draft.due_at = Some("next tuesday".into());
        assert!(draft.validate().unwrap_err().contains("due_at"));
    }
}

//! Small text helpers every source needs when it turns a payload into a task.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Priority, TaskDraft};

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A task title from free text: its first non-empty line, trimmed and clipped.
pub fn title(s: &str) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    clip(line, 200)
}

/// A tag from a label: lower-case, inner whitespace as `-`, clipped to the tag limit.
pub fn tag(label: &str) -> Option<String> {
    let t = label
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-")
        .to_lowercase();
    (!t.is_empty()).then(|| clip(&t, 100))
}

/// A project name from a repository, channel or mailbox path: its last segment, in the
/// characters an instance id allows.
pub fn project_name(container: &str) -> Option<String> {
    let last = container.rsplit(['/', ':']).next().unwrap_or(container);
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_owned();
    (!name.is_empty()).then(|| clip(&name, 60))
}

/// The text after a command word at the start of a comment (`/hopper fix this` ->
/// `fix this`); `None` if the comment does not start with the word.
pub fn command(text: &str, word: &str) -> Option<String> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let rest = first.strip_prefix(word)?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim().to_owned())
}

fn yes() -> bool {
    true
}

/// How a source's labels and containers (repository, channel, mailbox) become tags, priority
/// and a project hint. The same keys for every source, under `inbound.<source>.mapping`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Tags put on every task from this source.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Copy the event's labels onto the task as tags.
    #[serde(default = "yes")]
    pub labels_as_tags: bool,
    /// Label -> priority; the highest matching wins.
    #[serde(default)]
    pub priority_labels: BTreeMap<String, Priority>,
    /// Container (`owner/repo`, `group/project`, channel id, mailbox) -> project.
    #[serde(default)]
    pub projects: BTreeMap<String, String>,
    /// Without an entry in `projects`, use the container's last segment as the project.
    #[serde(default = "yes")]
    pub project_from_container: bool,
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            tags: Vec::new(),
            labels_as_tags: true,
            priority_labels: [
                ("urgent", Priority::Urgent),
                ("critical", Priority::Urgent),
                ("priority: high", Priority::High),
                ("high-priority", Priority::High),
                ("bug", Priority::High),
                ("low-priority", Priority::Low),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            projects: BTreeMap::new(),
            project_from_container: true,
        }
    }
}

impl Mapping {
    /// Applies tags, priority and project to a draft.
    pub fn apply(&self, draft: &mut TaskDraft, container: Option<&str>, labels: &[String]) {
        let mut tags: Vec<String> = self.tags.iter().filter_map(|t| tag(t)).collect();
        if self.labels_as_tags {
            tags.extend(labels.iter().filter_map(|l| tag(l)));
        }
        tags.append(&mut draft.tags);
        tags.sort();
        tags.dedup();
        tags.truncate(64);
        draft.tags = tags;
        let by_label = labels
            .iter()
            .filter_map(|l| {
                self.priority_labels
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(l))
                    .map(|(_, p)| *p)
            })
            .max();
        if let Some(p) = by_label {
            draft.priority = draft.priority.max(p);
        }
        if draft.project.is_none()
            && let Some(c) = container
        {
            draft.project = self.projects.get(c).cloned().or_else(|| {
                self.project_from_container
                    .then(|| project_name(c))
                    .flatten()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_respects_char_boundaries() {
        let s = "ééééé";
        let c = clip(s, 6);
        assert!(c.len() <= 6 && c.ends_with('…'), "{c}");
        assert_eq!(clip("short", 10), "short");
    }

    #[test]
    fn mapping_sets_tags_priority_and_project() {
        let mut d = TaskDraft::new("t");
        Mapping::default().apply(
            &mut d,
            Some("octo-org/Hello_World"),
            &["bug".into(), "Needs Triage".into()],
        );
        assert_eq!(d.tags, vec!["bug", "needs-triage"]);
        assert_eq!(d.priority, Priority::High);
        assert_eq!(d.project.as_deref(), Some("hello-world"));
    }
}

//! Two-way issue sync (`sync:` per project): a project's tasks and a GitHub or GitLab
//! repository's issues, kept as pairs in `sync_links`.
//!
//! **Export** (`export.rs`): a task that becomes available in a project that exports opens
//! an issue there (title, description, tags and a `priority:` label, the sync labels, and a
//! hidden marker with the task id). It rides the report outbox as a `sync.export` row for the
//! provider's reporter, one per task whatever the retries (its event id is the task's), and the
//! worker records the pair and a `synced` history event once the issue exists. When the task
//! finishes, its report goes to that issue and closes it on success.
//!
//! **Import** (`import.rs`): an issue event of a repository a project imports (`issues.*`
//! from GitHub, `Issue Hook` from GitLab, with the state on the interpretation) makes
//! a task for that project when the issue is new to Hopper, and otherwise changes its task:
//! closed → the task's work completes; reopened after the task finished → a new task for the
//! same issue (a finished task stays finished: its completion has bubbled up once); labels →
//! tags and priority (`priority:high`).
//!
//! **No loops.** An issue Hopper opened carries its task's marker, so its `opened` webhook is
//! never imported; a change Hopper wrote (`pushed_state`) that comes back is recorded as its
//! echo; a change that leaves the task as it is changes nothing.
//!
//! **Both sides changed.** The later change wins: an issue event older than the task's last
//! change (the issue's `updated_at` against the task's) is recorded and ignored, and Hopper's
//! own state is what the issue shows after Hopper's next report.

mod export;
mod import;

pub use export::{EXPORT_EVENT, Export, closing_source, export_row, exported};
pub use import::{Inbound, inbound, linked};

use hopper_integration_api::Priority;

/// The label that carries a task's priority in a synced repository.
pub fn priority_label(p: Priority) -> String {
    format!("priority:{}", p.as_str())
}

/// Tags and priority from an issue's labels: `priority:<p>` sets the priority (normal when
/// none), every other label is a tag (lower-case, as tags are matched).
pub fn from_labels(labels: &[String], sync_labels: &[String]) -> (Vec<String>, Priority) {
    let mut priority = Priority::Normal;
    let mut tags = Vec::new();
    for l in labels {
        let lower = l.trim().to_ascii_lowercase();
        if let Some(p) = lower.strip_prefix("priority:") {
            if let Ok(p) = serde_json::from_value::<Priority>(serde_json::json!(p.trim())) {
                priority = p;
            }
            continue;
        }
        if lower.is_empty() || sync_labels.iter().any(|s| s.eq_ignore_ascii_case(&lower)) {
            continue;
        }
        if !tags.contains(&lower) {
            tags.push(lower);
        }
    }
    (tags, priority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_make_tags_and_a_priority() {
        let labels = ["Hopper", "Security", "priority:high", "security"].map(String::from);
        let (tags, p) = from_labels(&labels, &["hopper".into()]);
        assert_eq!(tags, ["security"]);
        assert_eq!(p, Priority::High);
        assert_eq!(priority_label(p), "priority:high");
        let (_, p) = from_labels(&["priority:whenever".into()], &[]);
        assert_eq!(p, Priority::Normal);
    }
}

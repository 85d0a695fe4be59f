//! An episode: one thing that happened to a task that routing can learn from.

use serde::{Deserialize, Serialize};

use crate::domain::Millis;

/// What the episode records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeKind {
    /// A routing decision: the task went to `project`.
    Routed,
    /// A person moved it from `from_project` to `project` (a re-route).
    Corrected,
    /// Its work finished well in `project` (with the feedback, if any).
    Completed,
    /// Its work failed in `project`.
    Failed,
}

impl EpisodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeKind::Routed => "routed",
            EpisodeKind::Corrected => "corrected",
            EpisodeKind::Completed => "completed",
            EpisodeKind::Failed => "failed",
        }
    }
}

/// One episode, as stored per instance and as consolidation reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Its place in its store (increasing): consolidation's watermark.
    pub seq: i64,
    pub instance_id: String,
    pub task_id: String,
    pub kind: EpisodeKind,
    pub at: Millis,
    /// Where the task went (routed, corrected to) or where its work finished.
    pub project: Option<String>,
    /// Where a correction took it from.
    pub from_project: Option<String>,
    /// The provider that decided (`rules`, `llm`, `memory`, `correction`, ...).
    pub decided_by: Option<String>,
    pub confidence: Option<f64>,
    pub title: String,
    /// The description, clipped.
    pub text: String,
    pub tags: Vec<String>,
    /// Feedback: quality 0-5, whether routing was right, notes; and how long the work took.
    pub quality: Option<f64>,
    pub routing_correct: Option<bool>,
    pub notes: Option<String>,
    pub duration_ms: Option<i64>,
}
